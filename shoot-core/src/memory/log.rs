//! [`MemoryLog`]: the message log within one process, with Kafka-like consumer groups.

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use foldhash::{HashMap, HashMapExt};
use futures::future::{Either, select};
use tokio::sync::Notify;

use super::lock;
use crate::error::{PortError, PortResult};
use crate::ids::RoomId;
use crate::messages::Message;
use crate::ports::{Clock, LogConsumer, LogEntry, LogPosition, MessageLog, partition_of};

/// Default number of partitions.
pub const DEFAULT_PARTITIONS: u32 = 8;

/// In-memory [`MessageLog`].
///
/// Records of a room go to partition [`partition_of`]`(room, partitions)`; each room's seq
/// continues from the highest ever assigned. Consumer groups work like Kafka's: the
/// partitions are spread over the group's live consumers (each partition read by one
/// consumer at a time, so per-room order holds), and whenever a consumer joins or leaves the
/// group rebalances and every partition resumes at its first uncommitted record, so records
/// polled but not committed are delivered again (at least once). "Durable" means "in this
/// process": everything is lost when the log is dropped.
pub struct MemoryLog {
    shared: Arc<Shared>,
}

struct Shared {
    clock: Arc<dyn Clock>,
    partitions: u32,
    appended: Notify,
    state: Mutex<LogState>,
}

struct LogState {
    records: Vec<Vec<LogEntry>>,
    seqs: HashMap<RoomId, i64>,
    groups: HashMap<String, Group>,
    dead: Vec<(LogEntry, String)>,
    next_consumer: u64,
    failing: bool,
}

struct Group {
    /// Next offset to commit, per partition (everything below is committed).
    committed: Vec<i64>,
    /// Next offset to hand out, per partition (reset to `committed` on rebalance).
    fetched: Vec<i64>,
    /// Live consumers, by id; partition `p` belongs to the `p % n`-th.
    members: BTreeSet<u64>,
}

impl Group {
    fn new(partitions: usize) -> Group {
        Group {
            committed: vec![0; partitions],
            fetched: vec![0; partitions],
            members: BTreeSet::new(),
        }
    }

    fn rebalance(&mut self) {
        self.fetched.clone_from(&self.committed);
    }

    fn owns(&self, consumer: u64, partition: usize) -> bool {
        let n = self.members.len();
        n > 0 && self.members.iter().nth(partition % n) == Some(&consumer)
    }
}

impl MemoryLog {
    /// A log with [`DEFAULT_PARTITIONS`] partitions whose polls time out on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryLog {
        MemoryLog::with_partitions(clock, DEFAULT_PARTITIONS)
    }

    /// A log with `partitions` partitions (at least 1).
    pub fn with_partitions(clock: Arc<dyn Clock>, partitions: u32) -> MemoryLog {
        let partitions = partitions.max(1);
        MemoryLog {
            shared: Arc::new(Shared {
                clock,
                partitions,
                appended: Notify::new(),
                state: Mutex::new(LogState {
                    records: vec![Vec::new(); partitions as usize],
                    seqs: HashMap::new(),
                    groups: HashMap::new(),
                    dead: Vec::new(),
                    next_consumer: 1,
                    failing: false,
                }),
            }),
        }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.shared.partitions
    }

    /// Every record moved to the dead-letter log, with its reason, oldest first.
    pub fn dead_letters(&self) -> Vec<(LogEntry, String)> {
        lock(&self.shared.state).dead.clone()
    }

    /// Number of records in every partition.
    pub fn len(&self) -> usize {
        lock(&self.shared.state).records.iter().map(Vec::len).sum()
    }

    /// Whether nothing was ever appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records not yet committed by `group` (all records if the group never existed).
    pub fn lag(&self, group: &str) -> u64 {
        let st = lock(&self.shared.state);
        st.records
            .iter()
            .enumerate()
            .map(|(p, recs)| {
                let committed = st.groups.get(group).map_or(0, |g| g.committed[p]);
                (recs.len() as i64 - committed).max(0) as u64
            })
            .sum()
    }

    /// Makes `append` fail with a backend error (nothing appended) while `failing` is set,
    /// to test how callers handle an unavailable log.
    pub fn set_failing(&self, failing: bool) {
        lock(&self.shared.state).failing = failing;
    }
}

#[async_trait]
impl MessageLog for MemoryLog {
    async fn append(&self, batch: Vec<Message>) -> PortResult<Vec<Message>> {
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut st = lock(&self.shared.state);
            if st.failing {
                return Err(PortError::backend("memory-log", "log set to fail"));
            }
            for mut m in batch {
                let seq = st.seqs.entry(m.room_id).or_insert(0);
                *seq += 1;
                m.seq = crate::ids::Seq(*seq);
                let p = partition_of(m.room_id, self.shared.partitions) as usize;
                let offset = st.records[p].len() as i64;
                let position = LogPosition {
                    partition: p as i32,
                    offset,
                };
                st.records[p].push(LogEntry {
                    position,
                    message: m.clone(),
                });
                out.push(m);
            }
        }
        self.shared.appended.notify_waiters();
        Ok(out)
    }

    async fn consumer(&self, group: &str) -> PortResult<Box<dyn LogConsumer>> {
        let mut st = lock(&self.shared.state);
        let id = st.next_consumer;
        st.next_consumer += 1;
        let partitions = self.shared.partitions as usize;
        let g = st
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| Group::new(partitions));
        g.members.insert(id);
        g.rebalance();
        Ok(Box::new(MemoryConsumer {
            shared: self.shared.clone(),
            group: group.to_owned(),
            id,
            next_partition: 0,
        }))
    }

    async fn durable_seq(&self, room: RoomId) -> PortResult<Option<crate::ids::Seq>> {
        Ok(lock(&self.shared.state)
            .seqs
            .get(&room)
            .map(|s| crate::ids::Seq(*s)))
    }

    async fn durable_seqs(&self, rooms: &[RoomId]) -> PortResult<Vec<(RoomId, crate::ids::Seq)>> {
        let st = lock(&self.shared.state);
        let mut out: Vec<(RoomId, crate::ids::Seq)> = rooms
            .iter()
            .filter_map(|room| st.seqs.get(room).map(|s| (*room, crate::ids::Seq(*s))))
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    async fn dead_letter(&self, entry: &LogEntry, reason: &str) -> PortResult<()> {
        lock(&self.shared.state)
            .dead
            .push((entry.clone(), reason.to_owned()));
        Ok(())
    }
}

struct MemoryConsumer {
    shared: Arc<Shared>,
    group: String,
    id: u64,
    /// Partition to start the next poll at, so no partition starves.
    next_partition: usize,
}

impl MemoryConsumer {
    fn take(&mut self, max: usize) -> Vec<LogEntry> {
        let mut st = lock(&self.shared.state);
        let LogState {
            records, groups, ..
        } = &mut *st;
        let Some(g) = groups.get_mut(&self.group) else {
            return Vec::new();
        };
        let n = records.len();
        let mut out = Vec::new();
        for k in 0..n {
            if out.len() >= max {
                break;
            }
            let p = (self.next_partition + k) % n;
            if !g.owns(self.id, p) {
                continue;
            }
            let from = g.fetched[p] as usize;
            let to = records[p].len().min(from + (max - out.len()));
            if from < to {
                out.extend_from_slice(&records[p][from..to]);
                g.fetched[p] = to as i64;
            }
        }
        self.next_partition = (self.next_partition + 1) % n;
        out
    }
}

#[async_trait]
impl LogConsumer for MemoryConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogEntry>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let shared = self.shared.clone();
        let mut timeout = shared.clock.sleep(wait);
        loop {
            // Register for the wake-up before looking, so an append in between is not missed.
            let mut notified = pin!(shared.appended.notified());
            notified.as_mut().enable();
            let batch = self.take(max);
            if !batch.is_empty() {
                return Ok(batch);
            }
            match select(notified, &mut timeout).await {
                Either::Left(_) => continue,
                Either::Right(_) => return Ok(self.take(max)),
            }
        }
    }

    async fn commit(&mut self, positions: &[LogPosition]) -> PortResult<()> {
        let mut st = lock(&self.shared.state);
        let g = st.groups.get_mut(&self.group).ok_or(PortError::NotFound)?;
        for pos in positions {
            let p = pos.partition as usize;
            if p >= g.committed.len() {
                return Err(PortError::Conflict(format!("no partition {p}")));
            }
            g.committed[p] = g.committed[p].max(pos.offset + 1);
            g.fetched[p] = g.fetched[p].max(g.committed[p]);
        }
        Ok(())
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        if let Some(g) = st.groups.get_mut(&self.group) {
            g.members.remove(&self.id);
            g.rebalance();
        }
    }
}
