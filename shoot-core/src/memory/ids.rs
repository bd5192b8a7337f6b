//! Id generators: [`SequentialIds`] for tests, [`SnowflakeIds`] for production-like ids.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::ports::{Clock, IdGenerator};

/// Ids 1, 2, 3, … (thread-safe). Deterministic: the obvious choice for tests.
#[derive(Debug, Default)]
pub struct SequentialIds {
    last: AtomicI64,
}

impl SequentialIds {
    /// Starts at 1.
    pub fn new() -> SequentialIds {
        SequentialIds::default()
    }

    /// The first id returned will be `first` (must be positive).
    pub fn starting_at(first: i64) -> SequentialIds {
        SequentialIds {
            last: AtomicI64::new(first.max(1) - 1),
        }
    }
}

impl IdGenerator for SequentialIds {
    fn next_id(&self) -> i64 {
        self.last.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Snowflake ids: 41 bits of milliseconds since [`SnowflakeIds::EPOCH`], 10 bits of node
/// and 12 bits of per-millisecond sequence, read from a [`Clock`].
///
/// Ids are strictly increasing per generator even if the clock goes backwards or more than
/// 4096 ids are requested in one millisecond (the generator then borrows from the future
/// rather than blocking).
pub struct SnowflakeIds {
    clock: Arc<dyn Clock>,
    node: i64,
    /// (milliseconds since epoch, sequence) of the last id.
    last: Mutex<Option<(i64, i64)>>,
}

impl SnowflakeIds {
    /// 2024-01-01T00:00:00Z in milliseconds since the Unix epoch.
    pub const EPOCH: i64 = 1_704_067_200_000;
    /// Largest node number.
    pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;

    /// A generator for `node` (0..=1023).
    ///
    /// # Panics
    /// If `node` is greater than [`SnowflakeIds::MAX_NODE`].
    pub fn new(clock: Arc<dyn Clock>, node: u16) -> SnowflakeIds {
        assert!(
            node <= Self::MAX_NODE,
            "snowflake node {node} out of range 0..=1023"
        );
        SnowflakeIds {
            clock,
            node: i64::from(node),
            last: Mutex::new(None),
        }
    }

    /// Splits an id into (milliseconds since the Unix epoch, node, sequence).
    pub fn decode(id: i64) -> (i64, u16, u16) {
        let ms = (id >> (NODE_BITS + SEQ_BITS)) + Self::EPOCH;
        let node = ((id >> SEQ_BITS) & ((1 << NODE_BITS) - 1)) as u16;
        let seq = (id & MAX_SEQ) as u16;
        (ms, node, seq)
    }
}

const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const MAX_SEQ: i64 = (1 << SEQ_BITS) - 1;
const MAX_MS: i64 = (1 << 41) - 1;

impl IdGenerator for SnowflakeIds {
    fn next_id(&self) -> i64 {
        let now_ms = (self.clock.now().0 - Self::EPOCH).clamp(0, MAX_MS);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (ms, mut seq) = match *last {
            Some((last_ms, _)) if now_ms > last_ms => (now_ms, 0),
            Some((last_ms, last_seq)) if last_seq < MAX_SEQ => (last_ms, last_seq + 1),
            Some((last_ms, _)) => ((last_ms + 1).min(MAX_MS), 0),
            None => (now_ms, 0),
        };
        if ms == 0 && self.node == 0 && seq == 0 {
            // Ids are positive.
            seq = 1;
        }
        *last = Some((ms, seq));
        (ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq
    }
}

impl std::fmt::Debug for SnowflakeIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeIds")
            .field("node", &self.node)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ManualClock;
    use crate::time::Timestamp;
    use std::time::Duration;

    fn gen_at(ms: i64, node: u16) -> (ManualClock, SnowflakeIds) {
        let clock = ManualClock::new(Timestamp(ms));
        let ids = SnowflakeIds::new(Arc::new(clock.clone()), node);
        (clock, ids)
    }

    #[test]
    fn sequential_ids_count_from_one() {
        let ids = SequentialIds::new();
        assert_eq!((ids.next_id(), ids.next_id(), ids.next_id()), (1, 2, 3));
        assert_eq!(SequentialIds::starting_at(100).next_id(), 100);
    }

    #[test]
    fn layout_is_time_node_sequence() {
        let t = SnowflakeIds::EPOCH + 123_456;
        let (_, ids) = gen_at(t, 7);
        let a = ids.next_id();
        let b = ids.next_id();
        assert_eq!(SnowflakeIds::decode(a), (t, 7, 0));
        assert_eq!(SnowflakeIds::decode(b), (t, 7, 1));
        assert_eq!(a, (123_456 << 22) | (7 << 12));
    }

    #[test]
    fn increasing_and_positive_across_time() {
        let (clock, ids) = gen_at(SnowflakeIds::EPOCH, 0);
        let mut prev = 0;
        for i in 0..10_000 {
            if i % 100 == 0 {
                clock.advance(Duration::from_millis(1));
            }
            let id = ids.next_id();
            assert!(id > prev, "id {id} not above {prev}");
            prev = id;
        }
    }

    #[test]
    fn first_id_at_the_epoch_on_node_zero_is_positive() {
        let (_, ids) = gen_at(SnowflakeIds::EPOCH - 5_000, 0);
        assert!(ids.next_id() > 0);
    }

    #[test]
    fn monotonic_when_the_clock_goes_back() {
        let (clock, ids) = gen_at(SnowflakeIds::EPOCH + 10_000, 3);
        let a = ids.next_id();
        clock.set(Timestamp(SnowflakeIds::EPOCH + 1_000));
        let b = ids.next_id();
        let c = ids.next_id();
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(SnowflakeIds::decode(b).1, 3);
    }

    #[test]
    fn sequence_overflow_borrows_the_next_millisecond() {
        let t = SnowflakeIds::EPOCH + 50;
        let (_, ids) = gen_at(t, 1);
        let all: Vec<i64> = (0..5_000).map(|_| ids.next_id()).collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SnowflakeIds::decode(all[4095]), (t, 1, 4095));
        assert_eq!(SnowflakeIds::decode(all[4096]), (t + 1, 1, 0));
    }

    #[test]
    fn nodes_never_collide() {
        let t = SnowflakeIds::EPOCH + 99;
        let (_, a) = gen_at(t, 1);
        let (_, b) = gen_at(t, 2);
        let xs: std::collections::HashSet<i64> = (0..1_000)
            .flat_map(|_| [a.next_id(), b.next_id()])
            .collect();
        assert_eq!(xs.len(), 2_000);
    }

    #[test]
    fn node_out_of_range_is_rejected() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::default());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            SnowflakeIds::new(clock, 1024)
        }));
        assert!(r.is_err());
    }
}
