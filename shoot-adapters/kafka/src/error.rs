//! Errors of the Kafka log, classified into [`PortError::Backend`]`("kafka", …)` at the port
//! boundary.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use shoot_core::PortError;

use crate::BACKEND;

/// What went wrong talking to Kafka. Every variant reaches the engine as
/// [`PortError::Backend`] with backend `"kafka"`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaLogError {
    /// The broker did not acknowledge a record in time (unreachable, or the topic is missing).
    #[error(
        "record to topic {topic} not acknowledged within {timeout:?}: the broker is unreachable \
         or the topic does not exist ({source})"
    )]
    DeliveryTimeout {
        /// Topic.
        topic: String,
        /// The configured delivery timeout.
        timeout: Duration,
        /// Driver error.
        #[source]
        source: KafkaError,
    },
    /// The broker refused a record, or the producer failed it.
    #[error("record to topic {topic} failed: {source}")]
    Delivery {
        /// Topic.
        topic: String,
        /// Driver error.
        #[source]
        source: KafkaError,
    },
    /// The producer was shut down before it reported the delivery.
    #[error("record to topic {topic}: the producer shut down before its delivery report")]
    DeliveryCanceled {
        /// Topic.
        topic: String,
    },
    /// The topics do not exist and could not be created through the admin API.
    #[error(
        "topic {topic} does not exist and could not be created ({detail}); create it by hand, \
         e.g. `tansu topic create {topic} --partitions {partitions}` or `kafka-topics.sh \
         --create --topic {topic} --partitions {partitions}`"
    )]
    MissingTopic {
        /// Topic.
        topic: String,
        /// Partitions wanted.
        partitions: u32,
        /// Why creating it failed.
        detail: String,
    },
    /// A consumer or client operation failed.
    #[error("{what}: {source}")]
    Client {
        /// The operation.
        what: &'static str,
        /// Driver error.
        #[source]
        source: KafkaError,
    },
    /// A record could not be encoded.
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
    /// A blocking client call could not run.
    #[error("blocking client call failed: {0}")]
    Blocking(String),
}

impl From<KafkaLogError> for PortError {
    fn from(e: KafkaLogError) -> PortError {
        PortError::backend(BACKEND, e)
    }
}

/// Wraps a client error of operation `what`.
pub(crate) fn client(what: &'static str, source: KafkaError) -> PortError {
    KafkaLogError::Client { what, source }.into()
}

/// Classifies a failed delivery to `topic`.
pub(crate) fn delivery(topic: &str, timeout: Duration, source: KafkaError) -> PortError {
    let timed_out = matches!(
        source.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageTimedOut)
    );
    if timed_out {
        KafkaLogError::DeliveryTimeout {
            topic: topic.to_owned(),
            timeout,
            source,
        }
        .into()
    } else {
        KafkaLogError::Delivery {
            topic: topic.to_owned(),
            source,
        }
        .into()
    }
}

/// A failed `spawn_blocking`.
pub(crate) fn blocking(e: tokio::task::JoinError) -> PortError {
    KafkaLogError::Blocking(e.to_string()).into()
}
