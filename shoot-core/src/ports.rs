//! Infrastructure ports: time, ids, task spawning, the room bus, the durable message log,
//! locks, ephemeral state and link fetching. Store ports live with their bounded context
//! (for example [`MessageStore`](crate::messages::MessageStore)).
//!
//! Every port is dyn-compatible and `Send + Sync + 'static`; the engine holds `Arc<dyn _>`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::error::PortResult;
use crate::events::{Event, Topic};
use crate::ids::{RoomId, Seq, UserId};
use crate::messages::{Message, UrlPreview};
use crate::time::Timestamp;

/// Wall-clock time and timers. Tests use a manual clock to make time deterministic.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Completes after `duration` has elapsed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Generates unique ids.
pub trait IdGenerator: Send + Sync + 'static {
    /// A new id: positive, unique across the cluster, roughly increasing with time.
    fn next_id(&self) -> i64;
}

/// Runs background tasks. The engine never picks a runtime itself.
pub trait Spawner: Send + Sync + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// A stream of events from one subscription.
pub type EventStream = BoxStream<'static, Arc<Event>>;

/// A stream of the events of every user topic, each with its user
/// ([`EventBus::subscribe_user_feed`]).
pub type UserFeed = BoxStream<'static, (UserId, Arc<Event>)>;

/// Publish/subscribe of events per topic, across every instance of the cluster.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `event` to every subscriber of `topic` on every instance.
    ///
    /// MUST deliver events published on one topic by one publisher in publish order.
    /// Delivery is best-effort (not durable): clients recover gaps with sync.
    async fn publish(&self, topic: Topic, event: Event) -> PortResult<()>;

    /// Publishes an event the caller shares with other topics (a status goes to the room and
    /// to the sender's user topic): the same contract as [`publish`](EventBus::publish). The
    /// default publishes `event` itself when this is its last reference, a copy otherwise; an
    /// in-process bus hands the `Arc` to its subscribers as is.
    async fn publish_shared(&self, topic: Topic, event: Arc<Event>) -> PortResult<()> {
        self.publish(topic, Arc::unwrap_or_clone(event)).await
    }

    /// Publishes `events` in order, as if by [`publish_shared`](EventBus::publish_shared) one
    /// after the other: per-topic order holds within the call and across calls. The engine
    /// publishes what one batch of messages produces (statuses, the messages, room-list
    /// updates) in one call, so an adapter can send it in one round trip.
    ///
    /// MUST attempt every event even when one fails (delivery is best-effort) and then return
    /// the first error. The default publishes them one by one.
    async fn publish_all(&self, events: Vec<(Topic, Arc<Event>)>) -> PortResult<()> {
        let mut first_error = None;
        for (topic, event) in events {
            if let Err(e) = self.publish_shared(topic, event).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Subscribes to `topic`. Every event published after this returns is delivered, until
    /// the stream is dropped. A subscriber that falls too far behind MAY miss events.
    async fn subscribe(&self, topic: Topic) -> PortResult<EventStream>;

    /// Subscribes to every user topic ([`Topic::User`]) at once: every event published to
    /// a user topic after this returns is delivered with its user, in each topic's publish
    /// order, until the stream is dropped; events of other topics are not. A server serves
    /// all its connected users' personal topics from this one subscription instead of one
    /// per user. A subscriber that falls too far behind MAY miss events.
    ///
    /// `Ok(None)` (the default) when the bus does not offer it: subscribe per topic.
    async fn subscribe_user_feed(&self) -> PortResult<Option<UserFeed>> {
        Ok(None)
    }
}

/// Position of a record in the durable log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogPosition {
    /// Partition (records of one room are always in the same partition).
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A record read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Where it is.
    pub position: LogPosition,
    /// The message, with its seq.
    pub message: Message,
}

/// The durable message log (Kafka, or the embedded log): the point after which a message is
/// never lost (`SENT_TO_KAFKA`).
#[async_trait]
pub trait MessageLog: Send + Sync + 'static {
    /// Assigns each message its per-room sequence number and makes the batch durable,
    /// returning the messages with `seq` set, in input order.
    ///
    /// MUST assign, per room, consecutive numbers continuing from the highest ever assigned
    /// in that room (also across restarts), in input order. MUST NOT return before every
    /// record is durable. On error the batch is either not durable at all (and its numbers
    /// are assigned again by later appends) or, if the outcome is unknown, may still reach
    /// consumers exactly as numbered; a number is never given to two messages.
    async fn append(&self, batch: Vec<Message>) -> PortResult<Vec<Message>>;

    /// Opens a consumer in consumer group `group`. Consumers of one group share the records;
    /// each record is delivered to the group at least once until committed.
    async fn consumer(&self, group: &str) -> PortResult<Box<dyn LogConsumer>>;

    /// Moves a record that cannot be processed to the dead-letter log, with the reason.
    async fn dead_letter(&self, entry: &LogEntry, reason: &str) -> PortResult<()>;

    /// The highest seq of `room` that is durable in the log, if the log knows it exactly
    /// (`None`: it does not, e.g. when seqs are allocated outside the log and an allocated
    /// seq may never have been appended). Sync waits for the store to reach it, so that a
    /// message durable before a restart but not yet stored is not silently missed.
    ///
    /// MUST NOT return a seq that was never appended.
    async fn durable_seq(&self, _room: RoomId) -> PortResult<Option<Seq>> {
        Ok(None)
    }

    /// [`durable_seq`](Self::durable_seq) of several rooms: `(room, seq)` of each of `rooms`
    /// whose durable seq the log knows exactly, in any order; a room given twice is listed
    /// once. Concurrent syncs are combined into one call.
    async fn durable_seqs(&self, rooms: &[RoomId]) -> PortResult<Vec<(RoomId, Seq)>> {
        let mut out = Vec::with_capacity(rooms.len());
        for (i, room) in rooms.iter().enumerate() {
            if rooms[..i].contains(room) {
                continue;
            }
            if let Some(seq) = self.durable_seq(*room).await? {
                out.push((*room, seq));
            }
        }
        Ok(out)
    }
}

/// A consumer of the message log.
#[async_trait]
pub trait LogConsumer: Send + 'static {
    /// Waits up to `wait` for records and returns at most `max` uncommitted ones, in log order
    /// per partition (so per room). Returns an empty batch when none arrived in time. After a
    /// restart the group resumes at its first uncommitted record.
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogEntry>>;

    /// Commits every record up to and including each position (per partition).
    async fn commit(&mut self, positions: &[LogPosition]) -> PortResult<()>;
}

/// Allocates per-room sequence numbers for a [`MessageLog`] that cannot number records
/// itself (Kafka). Backed by the durable store, so numbers survive restarts of everything.
#[async_trait]
pub trait SequenceAllocator: Send + Sync + 'static {
    /// Reserves `count` (≥ 1) consecutive numbers in `room` and returns the first.
    ///
    /// MUST never hand out a number twice, across concurrent callers on every instance and
    /// across restarts, and MUST continue after the highest number ever handed out in the
    /// room. Numbers reserved by a caller that then fails are lost (a gap), never reused.
    async fn allocate(&self, room: RoomId, count: u32) -> PortResult<crate::ids::Seq>;
}

/// Ownership proof of a lock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockToken(pub String);

/// Distributed mutual exclusion with leases.
#[async_trait]
pub trait LockManager: Send + Sync + 'static {
    /// Takes `key` for `ttl` if nobody holds it (or the holder's lease lapsed). Returns the
    /// owner token, or `None` if it is held.
    async fn try_acquire(&self, key: &str, ttl: Duration) -> PortResult<Option<LockToken>>;

    /// Extends the lease if `token` still owns `key`; returns whether it did.
    async fn extend(&self, key: &str, token: &LockToken, ttl: Duration) -> PortResult<bool>;

    /// Releases `key` if `token` still owns it; returns whether it did. Never releases a lock
    /// that another owner took after this one's lease lapsed.
    async fn release(&self, key: &str, token: &LockToken) -> PortResult<bool>;
}

/// Short-lived shared state with expiry: presence, typing throttles, rate-limit buckets,
/// idempotency claims and caches.
#[async_trait]
pub trait EphemeralStore: Send + Sync + 'static {
    /// Sets `key` to `value`, expiring after `ttl` (never if `None`).
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> PortResult<()>;

    /// Sets every `(key, value)` of `entries`, each expiring after `ttl`: the same as calling
    /// [`set`](EphemeralStore::set) for each (not atomic as a whole). The default does exactly
    /// that; adapters send them in one round trip.
    async fn set_many(&self, entries: &[(&str, &str)], ttl: Option<Duration>) -> PortResult<()> {
        for (key, value) in entries {
            self.set(key, value, ttl).await?;
        }
        Ok(())
    }

    /// Sets `key` only if absent (or expired). Returns `None` if it was set, or the value
    /// already there. Atomic across instances.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> PortResult<Option<String>>;

    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> PortResult<Option<String>>;

    /// Values of several keys, in input order.
    async fn get_many(&self, keys: &[String]) -> PortResult<Vec<Option<String>>>;

    /// Deletes `key`; returns whether it was present.
    async fn delete(&self, key: &str) -> PortResult<bool>;

    /// Deletes every key starting with `prefix` (cache invalidation). MUST NOT scan the
    /// whole keyspace of a shared server with blocking commands.
    async fn delete_prefix(&self, prefix: &str) -> PortResult<()>;

    /// Adds `delta` to the integer at `key` (absent = 0) and returns the new value. `ttl`
    /// is applied when the key is created by this call.
    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> PortResult<i64>;

    /// Token bucket at `key` holding at most `capacity` tokens, refilled at `refill_per_sec`:
    /// atomically takes one token if available at `now` and returns whether it did.
    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        refill_per_sec: f64,
        now: Timestamp,
    ) -> PortResult<bool>;
}

/// Fetches link-preview metadata. Implementations enforce timeouts, size caps and SSRF rules.
#[async_trait]
pub trait LinkFetcher: Send + Sync + 'static {
    /// Metadata of the page at `url`, `None` if it has none or is refused.
    async fn fetch_preview(&self, url: &str) -> PortResult<Option<UrlPreview>>;
}

/// The partition of a room in a log with `partitions` partitions (stable across processes).
pub fn partition_of(room: RoomId, partitions: u32) -> u32 {
    // SplitMix64 finaliser: cheap and spreads sequential ids evenly.
    let mut x = room.0 as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % u64::from(partitions.max(1))) as u32
}
