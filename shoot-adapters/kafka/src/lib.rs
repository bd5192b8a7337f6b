//! # shoot-kafka
//!
//! The durable message log of the distributed stack on Kafka: [`KafkaMessageLog`]
//! implements [`MessageLog`](shoot_core::ports::MessageLog) with rdkafka (its bundled,
//! current librdkafka, built from source).
//!
//! - Records go to one topic (default [`DEFAULT_TOPIC`], `chat-messages`) keyed by room id,
//!   so every record of a room lands in the same partition, in append order. Each record is a
//!   JSON event `{"type": "MESSAGE_CREATED", "data": <Message>, "metadata": {"instance",
//!   "producedAt", "seq"}}`.
//! - The producer is idempotent (`enable.idempotence=true`, `acks=all`): broker-side retries
//!   never duplicate or reorder a partition. `append` returns only once every record of the
//!   batch has a successful delivery report, and fails after the configured
//!   [`message_timeout`](KafkaConfig::message_timeout) when the broker is unreachable.
//! - Kafka cannot number records per room, so seqs come from an injected
//!   [`SequenceAllocator`](shoot_core::ports::SequenceAllocator) (`shoot-sql` implements it
//!   on the store database): one allocation per room per batch, then the records are
//!   enqueued under a per-room lock so that, within an instance, a room's records reach the
//!   partition in seq order.
//! - Consumers are consumer-group members (`enable.auto.commit=false`,
//!   `auto.offset.reset=earliest`) that commit explicitly; a record that cannot be decoded
//!   (poison) goes to the dead-letter topic (default `chat-messages.dlq`) with the error in
//!   a header and is committed past, never returned.
//!
//! Topics are not created implicitly: call [`KafkaMessageLog::ensure_topics`] at start-up
//! (it uses the admin API, and explains how to create them by hand when that fails).
//!
//! ```no_run
//! # async fn demo(seqs: std::sync::Arc<dyn shoot_core::ports::SequenceAllocator>)
//! # -> shoot_core::PortResult<()> {
//! use shoot_kafka::{KafkaConfig, KafkaMessageLog};
//!
//! let log = KafkaMessageLog::new(KafkaConfig::new("127.0.0.1:9092"), seqs)?;
//! log.ensure_topics(8).await?;
//! log.check().await?; // readiness
//! # Ok(())
//! # }
//! ```

mod consumer;
mod envelope;
mod error;
mod log;

use std::collections::BTreeMap;
use std::time::Duration;

pub use consumer::KafkaLogConsumer;
pub use envelope::{EVENT_MESSAGE_CREATED, Envelope, EnvelopeMetadata};
pub use error::KafkaLogError;
pub use log::KafkaMessageLog;

/// Backend name used in [`PortError::Backend`](shoot_core::PortError::Backend).
pub const BACKEND: &str = "kafka";

/// Default topic of the message log.
pub const DEFAULT_TOPIC: &str = "chat-messages";

/// Suffix of the dead-letter topic (`chat-messages.dlq`).
pub const DLQ_SUFFIX: &str = ".dlq";

/// Header of a dead-letter record holding the reason it was dead-lettered.
pub const HEADER_ERROR: &str = "error";
/// Header of a dead-letter record naming the topic the record came from.
pub const HEADER_ORIGINAL_TOPIC: &str = "original-topic";
/// Header of a dead-letter record holding the partition the record came from.
pub const HEADER_ORIGINAL_PARTITION: &str = "original-partition";
/// Header of a dead-letter record holding the offset the record had.
pub const HEADER_ORIGINAL_OFFSET: &str = "original-offset";

/// Connection and behaviour settings of [`KafkaMessageLog`].
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// Topic of the message log.
    pub topic: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Name of this instance, written into every record's metadata and used as
    /// `client.id` and as the consumers' `group.instance.id` (static membership: a
    /// restarted instance with the same name takes over its partitions at once). Two live
    /// processes must never share it.
    pub instance: String,
    /// How long a record may wait for its delivery report before `append` fails
    /// (`message.timeout.ms`).
    pub message_timeout: Duration,
    /// Consumer group session timeout (`session.timeout.ms`): how long a consumer that
    /// vanished without leaving keeps its partitions. Default 45 s (Apache Kafka's own
    /// default): it must outlast a broker outage, because on tansu 0.6 a member that expires
    /// while the group is formed leaves its partitions with nobody (RELIABILITY.md, findings
    /// 1 and 6); a restarted instance with the same name takes its partitions over at once
    /// anyway (static membership).
    pub session_timeout: Duration,
    /// Replication factor of topics created by [`KafkaMessageLog::ensure_topics`].
    pub replication_factor: i32,
    /// Sends every record in a record batch of its own (`batch.num.messages=1`). Needed on
    /// tansu 0.6, whose fetch skips the rest of a batch when a consumer resumes from an
    /// offset inside it (records after a commit point would be lost); costs throughput on
    /// brokers that do not need it. Default `true`.
    pub one_record_per_batch: bool,
    /// Extra librdkafka properties applied to every client (overriding the defaults), e.g.
    /// `security.protocol`.
    pub client_options: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Defaults for `brokers`: topic [`DEFAULT_TOPIC`], its `.dlq`, a 10 s message timeout,
    /// a 45 s session timeout, replication factor 1, one record per batch.
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        let instance = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "shoot".to_owned());
        KafkaConfig {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.to_owned(),
            dlq_topic: format!("{DEFAULT_TOPIC}{DLQ_SUFFIX}"),
            instance: format!("{instance}-{}", std::process::id()),
            message_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(45),
            replication_factor: 1,
            one_record_per_batch: true,
            client_options: BTreeMap::new(),
        }
    }

    /// Uses `topic` and `{topic}.dlq`.
    pub fn with_topic(mut self, topic: impl Into<String>) -> KafkaConfig {
        self.topic = topic.into();
        self.dlq_topic = format!("{}{DLQ_SUFFIX}", self.topic);
        self
    }

    /// Sets the instance name.
    pub fn with_instance(mut self, instance: impl Into<String>) -> KafkaConfig {
        self.instance = instance.into();
        self
    }

    /// Sets the delivery timeout of appends.
    pub fn with_message_timeout(mut self, timeout: Duration) -> KafkaConfig {
        self.message_timeout = timeout;
        self
    }
}
