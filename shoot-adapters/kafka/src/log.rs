//! [`KafkaMessageLog`]: producer side, topic administration and the dead-letter topic.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::future::{join_all, try_join_all};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use shoot_core::ids::RoomId;
use shoot_core::messages::Message;
use shoot_core::ports::{LogConsumer, LogEntry, MessageLog, SequenceAllocator, partition_of};
use shoot_core::{PortError, PortResult, Seq};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

use crate::consumer::KafkaLogConsumer;
use crate::envelope::Envelope;
use crate::error::{self, KafkaLogError};
use crate::{
    HEADER_ERROR, HEADER_ORIGINAL_OFFSET, HEADER_ORIGINAL_PARTITION, HEADER_ORIGINAL_TOPIC,
    KafkaConfig,
};

/// Number of per-room append locks (rooms hash onto them).
const APPEND_STRIPES: u32 = 64;

/// How long metadata and admin requests may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards librdkafka's log lines and client errors to `tracing`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility = fac, "librdkafka: {log_message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Transport errors are reported here while librdkafka reconnects by itself.
        tracing::warn!(error = %error, "kafka client error: {reason}");
    }
}

type Producer_ = FutureProducer<TracingContext>;

/// Shared by the log and its consumers.
pub(crate) struct Shared {
    pub(crate) config: KafkaConfig,
    producer: RwLock<Arc<Producer_>>,
}

impl Shared {
    fn producer(&self) -> Arc<Producer_> {
        Arc::clone(&self.producer.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the producer after a failed delivery when it cannot continue by itself:
    /// librdkafka reported a fatal error, or the broker rejected its idempotence state
    /// (fenced, unknown producer id, epoch or sequence errors — tansu answers a timed-out
    /// batch's epoch bump with `PRODUCER_FENCED`). Later appends use the new producer; the
    /// old one is destroyed on a blocking thread once its last user is done.
    fn recover_producer(&self, failed: Arc<Producer_>, error: Option<&KafkaError>) {
        let fatal = failed.client().fatal_error();
        let stale_state = error
            .and_then(KafkaError::rdkafka_error_code)
            .is_some_and(|code| {
                matches!(
                    code,
                    RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                        | RDKafkaErrorCode::UnknownProducerId
                        | RDKafkaErrorCode::OutOfOrderSequenceNumber
                        | RDKafkaErrorCode::InvalidProducerIdMapping
                        | RDKafkaErrorCode::Fatal
                )
            });
        if fatal.is_none() && !stale_state {
            return;
        }
        {
            let mut slot = self.producer.write().unwrap_or_else(|e| e.into_inner());
            if !Arc::ptr_eq(&slot, &failed) {
                return; // someone else already replaced it
            }
            match producer_config(&self.config).create_with_context::<_, Producer_>(TracingContext)
            {
                Ok(fresh) => {
                    tracing::warn!(
                        ?fatal,
                        error = ?error,
                        "kafka producer cannot continue; replaced it"
                    );
                    *slot = Arc::new(fresh);
                }
                Err(e) => {
                    tracing::error!(error = %e, "kafka producer could not be recreated");
                    return;
                }
            }
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || drop(failed));
            }
            Err(_) => drop(failed),
        }
    }

    /// Produces `payload` to the dead-letter topic and waits for its delivery report.
    pub(crate) async fn produce_dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> PortResult<()> {
        let producer = self.producer();
        let topic = self.config.dlq_topic.as_str();
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(payload)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        let outcome = producer
            .send(record, Timeout::After(self.config.message_timeout))
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err((e, _)) => {
                self.recover_producer(producer, Some(&e));
                Err(error::delivery(topic, self.config.message_timeout, e))
            }
        }
    }

    /// Headers of a dead-letter record.
    pub(crate) fn dead_letter_headers(
        &self,
        reason: &str,
        partition: i32,
        offset: i64,
    ) -> OwnedHeaders {
        let (partition, offset) = (partition.to_string(), offset.to_string());
        OwnedHeaders::new()
            .insert(Header {
                key: HEADER_ERROR,
                value: Some(reason),
            })
            .insert(Header {
                key: HEADER_ORIGINAL_TOPIC,
                value: Some(self.config.topic.as_str()),
            })
            .insert(Header {
                key: HEADER_ORIGINAL_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: HEADER_ORIGINAL_OFFSET,
                value: Some(offset.as_str()),
            })
    }
}

/// Base client configuration shared by producer, consumers and admin client.
pub(crate) fn base_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", &config.instance)
        // Reconnect quickly once a broker is back.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.timeout.ms", "10000");
    for (k, v) in &config.client_options {
        c.set(k, v);
    }
    c
}

fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = base_config(config);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "message.timeout.ms",
            config.message_timeout.as_millis().max(1).to_string(),
        )
        .set("linger.ms", "2")
        // Java-compatible key hashing, so every client agrees on a room's partition.
        .set("partitioner", "murmur2_random");
    if config.one_record_per_batch {
        c.set("batch.num.messages", "1");
    }
    for (k, v) in &config.client_options {
        c.set(k, v);
    }
    c
}

/// The durable message log on Kafka. See the [crate documentation](crate).
#[derive(Clone)]
pub struct KafkaMessageLog {
    shared: Arc<Shared>,
    seqs: Arc<dyn SequenceAllocator>,
    stripes: Arc<Vec<AsyncMutex<()>>>,
}

impl std::fmt::Debug for KafkaMessageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMessageLog")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl KafkaMessageLog {
    /// A log on `config.brokers` numbering messages with `seqs`. Connects lazily: this only
    /// fails on an invalid configuration; use [`check`](Self::check) to test the broker.
    pub fn new(
        config: KafkaConfig,
        seqs: Arc<dyn SequenceAllocator>,
    ) -> PortResult<KafkaMessageLog> {
        let producer: Producer_ = producer_config(&config)
            .create_with_context(TracingContext)
            .map_err(|e| error::client("creating the producer", e))?;
        Ok(KafkaMessageLog {
            shared: Arc::new(Shared {
                config,
                producer: RwLock::new(Arc::new(producer)),
            }),
            seqs,
            stripes: Arc::new((0..APPEND_STRIPES).map(|_| AsyncMutex::new(())).collect()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.shared.config
    }

    /// Creates the log topic and the dead-letter topic with `partitions` partitions each if
    /// they do not exist, and waits until the broker reports them. If the admin API fails
    /// (not supported, not authorised), the error tells the operator how to create them.
    pub async fn ensure_topics(&self, partitions: u32) -> PortResult<()> {
        let config = &self.shared.config;
        let admin: AdminClient<DefaultClientContext> = base_config(config)
            .create()
            .map_err(|e| error::client("creating the admin client", e))?;
        let wanted = [config.topic.as_str(), config.dlq_topic.as_str()];
        let new_topics: Vec<NewTopic<'_>> = wanted
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    partitions.max(1) as i32,
                    TopicReplication::Fixed(config.replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(Timeout::After(ADMIN_TIMEOUT)))
            .request_timeout(Some(Timeout::After(ADMIN_TIMEOUT)));
        let missing = |topic: &str, detail: String| -> PortError {
            KafkaLogError::MissingTopic {
                topic: topic.to_owned(),
                partitions,
                detail,
            }
            .into()
        };
        match admin.create_topics(&new_topics, &options).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(topic) => tracing::info!(topic, partitions, "kafka topic created"),
                        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => return Err(missing(&topic, code.to_string())),
                    }
                }
            }
            Err(e) => return Err(missing(&config.topic, e.to_string())),
        }
        // Creation is asynchronous on some brokers: wait until metadata shows both.
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        for topic in wanted {
            loop {
                match self.topic_partitions(topic).await {
                    Ok(n) if n > 0 => break,
                    Ok(_) | Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(_) => return Err(missing(topic, "no partitions reported".to_owned())),
                    Err(e) => return Err(missing(topic, e.to_string())),
                }
            }
        }
        Ok(())
    }

    /// Readiness: the broker answers and the log topic exists.
    pub async fn check(&self) -> PortResult<()> {
        let topic = self.shared.config.topic.clone();
        match self.topic_partitions(&topic).await? {
            0 => Err(KafkaLogError::MissingTopic {
                topic,
                partitions: 1,
                detail: "the broker reports no partitions".to_owned(),
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// Number of partitions of `topic` according to the broker (0 if it does not exist).
    pub async fn topic_partitions(&self, topic: &str) -> PortResult<usize> {
        let producer = self.shared.producer();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), Timeout::After(ADMIN_TIMEOUT))
                .map_err(|e| error::client("fetching metadata", e))?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len()))
        })
        .await
        .map_err(error::blocking)?
    }

    /// Locks the append stripes of `rooms` in ascending order.
    async fn lock_stripes(&self, rooms: &[(RoomId, u32)]) -> Vec<MutexGuard<'_, ()>> {
        let stripes: BTreeSet<u32> = rooms
            .iter()
            .map(|(r, _)| partition_of(*r, APPEND_STRIPES))
            .collect();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.stripes[s as usize].lock().await);
        }
        guards
    }

    /// Enqueues every record with `producer` while `guards` hold the rooms' stripes, then
    /// waits for every delivery report (acks=all).
    async fn produce(
        &self,
        producer: &Producer_,
        batch: &[Message],
        payloads: &[Vec<u8>],
        guards: Vec<MutexGuard<'_, ()>>,
    ) -> std::result::Result<(), ProduceFailure> {
        let config = &self.shared.config;
        let deadline = Instant::now() + config.message_timeout;
        let mut deliveries = Vec::with_capacity(batch.len());
        for (m, payload) in batch.iter().zip(payloads) {
            let key = m.room_id.0.to_string();
            match self.enqueue(producer, &key, payload, deadline).await {
                Ok(delivery) => deliveries.push(delivery),
                Err(error) => {
                    // Records enqueued before this one may still be delivered.
                    return Err(ProduceFailure {
                        cause: None,
                        error,
                        all_refused: false,
                    });
                }
            }
        }
        drop(guards);
        let mut failure: Option<ProduceFailure> = None;
        let mut all_refused = true;
        for outcome in join_all(deliveries).await {
            let (cause, error) = match outcome {
                Ok(Ok(_)) => {
                    all_refused = false;
                    continue;
                }
                Ok(Err((e, _))) => {
                    all_refused &= refused_before_writing(&e);
                    (
                        Some(e.clone()),
                        error::delivery(&config.topic, config.message_timeout, e),
                    )
                }
                Err(_) => {
                    all_refused = false;
                    (
                        None,
                        KafkaLogError::DeliveryCanceled {
                            topic: config.topic.clone(),
                        }
                        .into(),
                    )
                }
            };
            failure.get_or_insert(ProduceFailure {
                cause,
                error,
                all_refused: false,
            });
        }
        match failure {
            None => Ok(()),
            Some(f) => Err(ProduceFailure { all_refused, ..f }),
        }
    }

    /// Enqueues one record, waiting while the local queue is full (until `deadline`).
    async fn enqueue(
        &self,
        producer: &Producer_,
        key: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> PortResult<DeliveryFuture> {
        let topic = self.shared.config.topic.as_str();
        loop {
            let record = FutureRecord::<str, [u8]>::to(topic)
                .key(key)
                .payload(payload);
            match producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    return Err(error::delivery(
                        topic,
                        self.shared.config.message_timeout,
                        e,
                    ));
                }
            }
        }
    }
}

/// Why an append's records were not all delivered.
struct ProduceFailure {
    /// The librdkafka error of the first failed delivery, if any.
    cause: Option<KafkaError>,
    error: PortError,
    /// Every record was refused by the broker without being written.
    all_refused: bool,
}

/// Whether a failed delivery was refused by the broker for the producer's idempotence
/// state: the record was not written (unlike a timeout, whose outcome is unknown).
fn refused_before_writing(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
    )
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl MessageLog for KafkaMessageLog {
    async fn append(&self, mut batch: Vec<Message>) -> PortResult<Vec<Message>> {
        if batch.is_empty() {
            return Ok(batch);
        }
        let config = &self.shared.config;
        // Rooms in order of first appearance, with their record counts.
        let mut rooms: Vec<(RoomId, u32)> = Vec::new();
        for m in &batch {
            match rooms.iter_mut().find(|(r, _)| *r == m.room_id) {
                Some((_, n)) => *n += 1,
                None => rooms.push((m.room_id, 1)),
            }
        }
        // Lock the rooms' stripes in ascending order (no deadlock between batches): numbers
        // of a room are allocated and enqueued by one append at a time in this instance, so
        // its records reach the partition in seq order.
        let mut guards = self.lock_stripes(&rooms).await;
        let firsts = try_join_all(rooms.iter().map(|(r, n)| self.seqs.allocate(*r, *n))).await?;
        let mut next: HashMap<RoomId, i64> = rooms
            .iter()
            .zip(firsts)
            .map(|((r, _), first)| (*r, first.0))
            .collect();
        let produced_at = now_millis();
        let mut payloads = Vec::with_capacity(batch.len());
        for m in &mut batch {
            let seq = next.get_mut(&m.room_id).ok_or_else(|| {
                PortError::Conflict(format!("room {} has no allocated seq", m.room_id))
            })?;
            m.seq = Seq(*seq);
            *seq += 1;
            let envelope = Envelope::message_created(m.clone(), &config.instance, produced_at);
            payloads.push(serde_json::to_vec(&envelope).map_err(KafkaLogError::from)?);
        }
        let mut retried = false;
        loop {
            let producer = self.shared.producer();
            match self.produce(&producer, &batch, &payloads, guards).await {
                Ok(()) => return Ok(batch),
                Err(failure) => {
                    tracing::warn!(error = %failure.error, records = batch.len(), "kafka append failed");
                    self.shared
                        .recover_producer(producer, failure.cause.as_ref());
                    // Every record was refused by the broker for the producer's stale
                    // idempotence state (after a delivery timeout, tansu fences the epoch
                    // bump): nothing was written, so the same records, with the same seqs,
                    // go again once through the replacement producer.
                    if !failure.all_refused || retried {
                        return Err(failure.error);
                    }
                    retried = true;
                    guards = self.lock_stripes(&rooms).await;
                }
            }
        }
    }

    async fn consumer(&self, group: &str) -> PortResult<Box<dyn LogConsumer>> {
        Ok(Box::new(KafkaLogConsumer::new(
            Arc::clone(&self.shared),
            group,
        )?))
    }

    async fn dead_letter(&self, entry: &LogEntry, reason: &str) -> PortResult<()> {
        let config = &self.shared.config;
        let envelope =
            Envelope::message_created(entry.message.clone(), &config.instance, now_millis());
        let payload = serde_json::to_vec(&envelope).map_err(KafkaLogError::from)?;
        let key = entry.message.room_id.0.to_string();
        let headers = self.shared.dead_letter_headers(
            reason,
            entry.position.partition,
            entry.position.offset,
        );
        self.shared
            .produce_dead_letter(Some(key.as_bytes()), &payload, headers)
            .await?;
        tracing::warn!(
            message_id = %entry.message.id,
            partition = entry.position.partition,
            offset = entry.position.offset,
            reason,
            "message dead-lettered"
        );
        Ok(())
    }
}
