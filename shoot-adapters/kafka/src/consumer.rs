//! [`KafkaLogConsumer`]: one consumer-group member reading the log topic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use shoot_core::PortResult;
use shoot_core::ports::{LogConsumer, LogEntry, LogPosition};
use tokio::time::Instant;

use crate::envelope::Envelope;
use crate::error;
use crate::log::{Shared, TracingContext, base_config};

/// After the first record of a poll, how long to wait for each further one.
const LINGER: Duration = Duration::from_millis(5);

/// Records partitions whose ownership changed, so the consumer forgets their state.
#[derive(Default)]
pub(crate) struct GroupContext {
    changed: Mutex<Vec<i32>>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        TracingContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let tpl = match rebalance {
            Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) => tpl,
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "kafka consumer rebalance failed");
                return;
            }
        };
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        tracing::debug!(
            ?partitions,
            assign = matches!(rebalance, Rebalance::Assign(_)),
            "kafka rebalance"
        );
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(partitions);
    }
}

type Stream = StreamConsumer<GroupContext>;

/// A record that could not be decoded.
#[derive(Debug)]
struct Poison {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    reason: String,
}

/// What this consumer handed out but the caller did not commit yet, per partition.
#[derive(Debug, Default)]
struct PartitionState {
    /// Offsets returned by `poll` and not yet committed.
    outstanding: BTreeSet<i64>,
    /// Poison offsets sent to the dead-letter topic and not yet committed (committing them
    /// would also commit outstanding records before them, so they wait for those).
    poison: BTreeSet<i64>,
    /// Poison records whose dead-lettering failed (broker unavailable): retried at each
    /// poll; no commit goes past them until they are dead-lettered.
    unsent: BTreeMap<i64, Poison>,
}

impl PartitionState {
    /// The next offset to commit so that everything up to `committed` (the caller's
    /// position, if any) and every dead-lettered poison record not preceded by an
    /// outstanding record is covered, never past a record not yet dead-lettered; `None` if
    /// there is nothing to commit.
    fn commit_target(&mut self, committed: Option<i64>) -> Option<i64> {
        if let Some(c) = committed {
            self.outstanding.retain(|&o| o > c);
        }
        let limit = self.outstanding.first().copied().unwrap_or(i64::MAX);
        let poison = self.poison.range(..limit).next_back().copied();
        let mut next = match (committed, poison) {
            (Some(c), Some(p)) => c.max(p) + 1,
            (Some(c), None) => c + 1,
            (None, Some(p)) => p + 1,
            (None, None) => return None,
        };
        if let Some(&unsent) = self.unsent.keys().next() {
            next = next.min(unsent);
        }
        self.poison.retain(|&p| p >= next);
        Some(next)
    }
}

/// A member of a consumer group of the log topic. Created by
/// [`KafkaMessageLog::consumer`](shoot_core::ports::MessageLog::consumer).
///
/// Offsets are committed only by [`commit`](LogConsumer::commit) (synchronously), so a
/// record polled but not committed is delivered again after a restart or rebalance.
/// Poison records are dead-lettered and committed past as soon as every earlier record of
/// their partition is committed (a record whose dead-lettering failed is retried at each
/// poll, and no commit goes past it until it succeeds).
pub struct KafkaLogConsumer {
    shared: Arc<Shared>,
    consumer: Option<Arc<Stream>>,
    group: String,
    partitions: HashMap<i32, PartitionState>,
}

impl std::fmt::Debug for KafkaLogConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLogConsumer")
            .field("group", &self.group)
            .field("topic", &self.shared.config.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaLogConsumer {
    pub(crate) fn new(shared: Arc<Shared>, group: &str) -> PortResult<KafkaLogConsumer> {
        let config = &shared.config;
        let mut c = base_config(config);
        c.set("group.id", group)
            // Static membership: a restarted instance (same instance name) takes over its
            // dead predecessor's member and partitions at once. Without it the dead member
            // stays in the group until its session expires, gets partitions at the
            // restart's rebalance, and tansu 0.6 then expires it without a new generation
            // (the survivors' rejoin gets the old assignment back), so its partitions
            // stay owned by nobody until the next membership change.
            .set("group.instance.id", &config.instance)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false")
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().max(1).to_string(),
            )
            // Heart-beats also tell members of a rebalance: at most every 3 s (Kafka's
            // default), and several times per session.
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout.as_millis() / 4)
                    .clamp(100, 3_000)
                    .to_string(),
            );
        for (k, v) in &config.client_options {
            c.set(k, v);
        }
        let consumer: Stream = c
            .create_with_context(GroupContext::default())
            .map_err(|e| error::client("creating a consumer", e))?;
        consumer
            .subscribe(&[config.topic.as_str()])
            .map_err(|e| error::client("subscribing", e))?;
        tracing::debug!(group, topic = %config.topic, "kafka consumer subscribed");
        Ok(KafkaLogConsumer {
            shared,
            consumer: Some(Arc::new(consumer)),
            group: group.to_owned(),
            partitions: HashMap::new(),
        })
    }

    fn stream(&self) -> &Arc<Stream> {
        // Only `Drop` takes it.
        self.consumer
            .as_ref()
            .unwrap_or_else(|| unreachable!("consumer used after drop"))
    }

    /// Forgets the state of partitions that were revoked or (re)assigned meanwhile: their
    /// uncommitted records will be delivered again from the committed offset.
    fn apply_rebalances(&mut self) {
        let changed: Vec<i32> = std::mem::take(
            &mut *self
                .stream()
                .context()
                .changed
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for p in changed {
            self.partitions.remove(&p);
        }
    }

    /// Commits `offsets` (`(partition, next offset)`) synchronously.
    async fn commit_offsets(&self, offsets: Vec<(i32, i64)>) -> PortResult<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, next) in &offsets {
            tpl.add_partition_offset(&self.shared.config.topic, *partition, Offset::Offset(*next))
                .map_err(|e| error::client("building the commit", e))?;
        }
        let consumer = Arc::clone(self.stream());
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(error::blocking)?
            .map_err(|e| error::client("committing offsets", e))?;
        tracing::trace!(group = %self.group, ?offsets, "kafka offsets committed");
        Ok(())
    }

    /// Dead-letters a record that cannot be decoded, then commits past it if nothing before
    /// it is outstanding. If the dead-letter topic cannot be reached, the record is kept and
    /// retried at the next poll, and no commit goes past it meanwhile.
    async fn handle_poison(&mut self, partition: i32, offset: i64, poison: Poison) {
        tracing::warn!(
            partition,
            offset,
            reason = %poison.reason,
            group = %self.group,
            "poison record: dead-lettering"
        );
        let headers = self
            .shared
            .dead_letter_headers(&poison.reason, partition, offset);
        let sent = self
            .shared
            .produce_dead_letter(poison.key.as_deref(), &poison.payload, headers)
            .await;
        let state = self.partitions.entry(partition).or_default();
        if let Err(e) = sent {
            tracing::warn!(partition, offset, error = %e, "dead-lettering failed; will retry");
            state.unsent.insert(offset, poison);
            return;
        }
        state.poison.insert(offset);
        if let Some(next) = state.commit_target(None) {
            if let Err(e) = self.commit_offsets(vec![(partition, next)]).await {
                // Committed later with the caller's next commit.
                tracing::warn!(partition, next, error = %e, "committing past a poison record failed");
            }
        }
    }

    /// Retries dead-lettering of poison records that failed before.
    async fn retry_unsent(&mut self) {
        let pending: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .flat_map(|(p, s)| s.unsent.keys().map(move |o| (*p, *o)))
            .collect();
        for (partition, offset) in pending {
            let Some(poison) = self
                .partitions
                .get_mut(&partition)
                .and_then(|s| s.unsent.remove(&offset))
            else {
                continue;
            };
            self.handle_poison(partition, offset, poison).await;
        }
    }
}

#[async_trait]
impl LogConsumer for KafkaLogConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogEntry>> {
        self.apply_rebalances();
        self.retry_unsent().await;
        let deadline = Instant::now() + wait;
        let mut out: Vec<LogEntry> = Vec::new();
        while out.len() < max {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let budget = if out.is_empty() {
                deadline - now
            } else {
                (deadline - now).min(LINGER)
            };
            let consumer = Arc::clone(self.stream());
            let received = tokio::time::timeout(budget, async {
                // The borrowed message never crosses an await.
                consumer.recv().await.map(|m| {
                    let position = LogPosition {
                        partition: m.partition(),
                        offset: m.offset(),
                    };
                    match Envelope::decode(m.payload()) {
                        Ok(message) => Ok(LogEntry { position, message }),
                        Err(reason) => Err((
                            position,
                            Poison {
                                key: m.key().map(<[u8]>::to_vec),
                                payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                                reason,
                            },
                        )),
                    }
                })
            })
            .await;
            match received {
                Err(_elapsed) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, group = %self.group, "kafka consume error");
                    if out.is_empty() {
                        return Err(error::client("consuming", e));
                    }
                    break;
                }
                Ok(Ok(Ok(entry))) => {
                    self.partitions
                        .entry(entry.position.partition)
                        .or_default()
                        .outstanding
                        .insert(entry.position.offset);
                    out.push(entry);
                }
                Ok(Ok(Err((position, poison)))) => {
                    self.handle_poison(position.partition, position.offset, poison)
                        .await;
                }
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, positions: &[LogPosition]) -> PortResult<()> {
        self.apply_rebalances();
        let mut highest: HashMap<i32, i64> = HashMap::new();
        for p in positions {
            let h = highest.entry(p.partition).or_insert(p.offset);
            *h = (*h).max(p.offset);
        }
        let mut offsets = Vec::with_capacity(highest.len());
        for (partition, offset) in highest {
            let state = self.partitions.entry(partition).or_default();
            let next = state.commit_target(Some(offset)).unwrap_or(offset + 1);
            offsets.push((partition, next));
        }
        offsets.sort_unstable();
        self.commit_offsets(offsets).await
    }
}

/// How long a dropped consumer waits for its partitions to be revoked before closing.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// Leaves the group, then closes the consumer. A static member (`group.instance.id`) sends
/// no LeaveGroup when it is closed (KIP-345), so its partitions would wait for its session
/// to expire (and on tansu 0.6 stay with nobody): unsubscribing does send it, once the
/// revocation has been served, which only polling the consumer does.
fn leave_and_close(consumer: Arc<Stream>) {
    consumer.unsubscribe();
    let deadline = std::time::Instant::now() + LEAVE_WAIT;
    let assigned = |c: &Stream| c.assignment().is_ok_and(|a| a.count() > 0);
    while assigned(&consumer) && std::time::Instant::now() < deadline {
        // Serves the revocation; a record received meanwhile is not committed, so the
        // partition's next owner gets it again.
        drop(futures::FutureExt::now_or_never(consumer.recv()));
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(consumer);
}

impl Drop for KafkaLogConsumer {
    fn drop(&mut self) {
        // Leaving the group (so the partitions move at once) blocks on network round
        // trips: do it off the async worker threads when there is a runtime.
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || leave_and_close(consumer));
            }
            Err(_) => leave_and_close(consumer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PartitionState, Poison};

    fn poison() -> Poison {
        Poison {
            key: None,
            payload: Vec::new(),
            reason: "test".to_owned(),
        }
    }

    #[test]
    fn caller_commit_is_offset_plus_one() {
        let mut s = PartitionState::default();
        s.outstanding.extend([3, 4, 5]);
        assert_eq!(s.commit_target(Some(4)), Some(5));
        assert_eq!(s.outstanding.iter().copied().collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn poison_waits_for_earlier_outstanding_records() {
        let mut s = PartitionState::default();
        s.outstanding.extend([3, 4]);
        s.poison.insert(5);
        // Nothing may be committed past outstanding 3 and 4 on the consumer's own.
        assert_eq!(s.commit_target(None), None);
        // Once the caller commits 4, the poison right after it is covered too.
        assert_eq!(s.commit_target(Some(4)), Some(6));
        assert!(s.poison.is_empty());
    }

    #[test]
    fn poison_with_nothing_outstanding_is_committed_at_once() {
        let mut s = PartitionState::default();
        s.poison.insert(7);
        assert_eq!(s.commit_target(None), Some(8));
        assert!(s.poison.is_empty());
    }

    #[test]
    fn poison_after_a_later_outstanding_record_stays() {
        let mut s = PartitionState::default();
        s.outstanding.extend([3, 6]);
        s.poison.extend([5, 8]);
        // The caller commits 3: poison 5 is covered, 8 still waits for outstanding 6.
        assert_eq!(s.commit_target(Some(3)), Some(6));
        assert_eq!(s.poison.iter().copied().collect::<Vec<_>>(), vec![8]);
        assert_eq!(s.commit_target(Some(6)), Some(9));
    }

    #[test]
    fn no_commit_goes_past_a_record_not_yet_dead_lettered() {
        let mut s = PartitionState::default();
        s.outstanding.extend([3, 5]);
        s.unsent.insert(4, poison());
        assert_eq!(
            s.commit_target(Some(5)),
            Some(4),
            "clamped to the unsent record"
        );
    }
}
