//! [`RedisBus`]: the cluster-wide [`EventBus`] on Redis Streams.
//!
//! Layout: a fixed number of streams `{namespace}:bus:{n}` (`n` in `0..shards`); a topic
//! always hashes to the same shard, so one stream carries all of a topic's events in one
//! order. Entries are `t` (topic, `r:{roomId}` or `u:{userId}`) and `e` (the event as JSON),
//! appended with `XADD … MAXLEN ~ {max_len}`.
//!
//! Fan-out: every instance reads, with plain `XREAD BLOCK`, each shard it has local
//! subscribers on, from its own last-seen entry id, and hands entries to the local
//! subscribers of their topic (one [`broadcast`] channel per topic, as in `MemoryBus`). The
//! user feed ([`EventBus::subscribe_user_feed`]) reads every shard and receives the entries
//! of every user topic; an entry whose topic nobody on the instance wants is not decoded.
//! Each instance reads independently, so every instance sees every entry; a consumer group
//! per instance would do the same with extra state (`XACK`, pending lists, groups to delete
//! when an instance goes away) and buys nothing for best-effort delivery.
//! Each shard has its own reader task and connection, so shards are processed in parallel
//! and `shards` bounds that parallelism (and the connections per instance). A reader that
//! loses its connection reconnects with backoff and continues from its last-seen id, so an
//! outage shorter than the stream's retention loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::try_join_all;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use shoot_core::error::{PortError, PortResult};
use shoot_core::events::{Event, Topic};
use shoot_core::ids::UserId;
use shoot_core::memory::DEFAULT_USER_FEED_CAPACITY;
use shoot_core::memory::broadcast::{self, Recv};
use shoot_core::ports::{EventBus, EventStream, UserFeed};
use tracing::{debug, info, warn};

use crate::{BACKEND, Redis, with_retry};

/// Settings of a [`RedisBus`]. Every instance of a cluster MUST use the same `shards`.
#[derive(Clone, Debug)]
pub struct RedisBusConfig {
    /// Number of streams topics are hashed over; also the most shards an instance reads in
    /// parallel (one reader task and connection each). Default 16.
    pub shards: u32,
    /// Approximate number of entries each stream keeps (`MAXLEN ~`): how far behind a reader
    /// may fall (for example during a reconnect) before it misses events. Default 10 000.
    pub max_len: usize,
    /// How long one `XREAD` blocks; an idle reader notices that its last subscriber left
    /// within this time. Default 1 s.
    pub block: Duration,
    /// Entries read per `XREAD`. Default 512.
    pub read_count: usize,
    /// Per-topic buffer of local subscribers: one this far behind misses events. Default 4096.
    pub channel_capacity: usize,
    /// Buffer of a user feed, which carries every user topic's events (a big room's message
    /// makes one room-list update per member): a feed this far behind misses events. Default
    /// [`DEFAULT_USER_FEED_CAPACITY`].
    pub feed_capacity: usize,
}

impl Default for RedisBusConfig {
    fn default() -> RedisBusConfig {
        RedisBusConfig {
            shards: 16,
            max_len: 10_000,
            block: Duration::from_secs(1),
            read_count: 512,
            channel_capacity: 4096,
            feed_capacity: DEFAULT_USER_FEED_CAPACITY,
        }
    }
}

/// A stream entry id (`ms-seq`), ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId(u64, u64);

impl EntryId {
    const ZERO: EntryId = EntryId(0, 0);

    fn parse(s: &str) -> Option<EntryId> {
        let (ms, seq) = s.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }

    fn render(self) -> String {
        format!("{}-{}", self.0, self.1)
    }
}

type Delivery = (EntryId, Arc<Event>);

#[derive(Default)]
struct ShardState {
    topics: HashMap<Topic, broadcast::Sender<Delivery>>,
    /// The user feeds taking this shard's user-topic entries.
    feeds: Vec<FeedTap>,
    reading: bool,
}

impl ShardState {
    /// Whether this instance wants the entries of `topic` (decoding the others is skipped).
    fn wants(&self, topic: Topic) -> bool {
        self.topics.contains_key(&topic)
            || (matches!(topic, Topic::User(_)) && !self.feeds.is_empty())
    }
}

/// One user feed's hold on a shard: the entries after `start` (the shard's last entry when
/// the feed was subscribed) go to `tx`.
struct FeedTap {
    tx: broadcast::Sender<(UserId, Arc<Event>)>,
    start: EntryId,
}

struct Shard {
    index: u32,
    key: String,
    state: Mutex<ShardState>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// [`EventBus`] across every instance connected to the same Redis (see the module docs).
#[derive(Clone)]
pub struct RedisBus {
    redis: Redis,
    config: Arc<RedisBusConfig>,
    shards: Arc<[Arc<Shard>]>,
}

impl RedisBus {
    /// A bus on `redis`. Prefer [`Redis::bus`].
    pub fn new(redis: Redis, mut config: RedisBusConfig) -> RedisBus {
        config.shards = config.shards.max(1);
        config.max_len = config.max_len.max(1);
        config.read_count = config.read_count.max(1);
        config.channel_capacity = config.channel_capacity.max(1);
        config.feed_capacity = config.feed_capacity.max(1);
        let shards = (0..config.shards)
            .map(|index| {
                Arc::new(Shard {
                    index,
                    key: format!("{}:bus:{index}", redis.namespace()),
                    state: Mutex::new(ShardState::default()),
                })
            })
            .collect();
        RedisBus {
            redis,
            config: Arc::new(config),
            shards,
        }
    }

    /// The stream key carrying `topic`.
    pub fn stream_key(&self, topic: Topic) -> &str {
        &self.shard_of(topic).key
    }

    /// Number of shards this instance is currently reading.
    pub fn active_readers(&self) -> usize {
        self.shards.iter().filter(|s| s.lock().reading).count()
    }

    /// Starts a reader of `shard` from `from` unless one is running (call under the shard's
    /// lock, after registering the subscriber that needs it).
    fn ensure_reader(&self, shard: &Arc<Shard>, st: &mut ShardState, from: EntryId) {
        if st.reading {
            return;
        }
        st.reading = true;
        let reader = Reader {
            redis: self.redis.clone(),
            config: self.config.clone(),
            shard: shard.clone(),
            last: from,
            swept: Instant::now(),
        };
        tokio::spawn(reader.run());
    }

    fn shard_of(&self, topic: Topic) -> &Arc<Shard> {
        &self.shards[shard_index(topic, self.config.shards) as usize]
    }
}

/// The shard of `topic` among `shards` (stable across processes and versions).
fn shard_index(topic: Topic, shards: u32) -> u32 {
    let (tag, id) = match topic {
        Topic::Room(r) => (0x5253_u64, r.0),
        Topic::User(u) => (0x5553_u64, u.0),
    };
    // SplitMix64 finaliser over the id mixed with the kind.
    let mut x = (id as u64) ^ tag.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % u64::from(shards.max(1))) as u32
}

fn encode_topic(topic: Topic) -> String {
    match topic {
        Topic::Room(r) => format!("r:{}", r.0),
        Topic::User(u) => format!("u:{}", u.0),
    }
}

fn decode_topic(s: &str) -> Option<Topic> {
    let (kind, id) = s.split_once(':')?;
    let id: i64 = id.parse().ok()?;
    match kind {
        "r" => Some(Topic::Room(shoot_core::ids::RoomId(id))),
        "u" => Some(Topic::User(shoot_core::ids::UserId(id))),
        _ => None,
    }
}

#[async_trait]
impl EventBus for RedisBus {
    /// `XADD` to the topic's shard. Calls of one publisher are sequential, and one topic
    /// always goes to one stream, so a publisher's events keep their order. A command that
    /// failed on a lost connection is retried after the reconnect (an event may, rarely,
    /// arrive twice if only the reply was lost; delivery is best-effort either way).
    async fn publish(&self, topic: Topic, event: Event) -> PortResult<()> {
        let payload = serde_json::to_string(&event)
            .map_err(|e| PortError::backend(BACKEND, format!("encode event: {e}")))?;
        let key = &self.shard_of(topic).key;
        let t = encode_topic(topic);
        let max_len = self.config.max_len;
        with_retry("xadd", || {
            let mut conn = self.redis.connection();
            let cmd = redis::cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .arg("*")
                .arg("t")
                .arg(&t)
                .arg("e")
                .arg(&payload)
                .to_owned();
            async move { cmd.query_async::<String>(&mut conn).await }
        })
        .await?;
        Ok(())
    }

    /// One pipeline of `XADD`s, in order (a pipeline's commands run in the order sent), so
    /// a batch costs one round trip; shared events are encoded from the shared value, not
    /// copied first.
    async fn publish_all(&self, events: Vec<(Topic, Arc<Event>)>) -> PortResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(events.len());
        for (topic, event) in &events {
            let payload = serde_json::to_string(&**event)
                .map_err(|e| PortError::backend(BACKEND, format!("encode event: {e}")))?;
            entries.push((&self.shard_of(*topic).key, encode_topic(*topic), payload));
        }
        let max_len = self.config.max_len;
        with_retry("xadd", || {
            let mut conn = self.redis.connection();
            let mut pipe = redis::pipe();
            for (key, t, payload) in &entries {
                pipe.cmd("XADD")
                    .arg(*key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(max_len)
                    .arg("*")
                    .arg("t")
                    .arg(t)
                    .arg("e")
                    .arg(payload)
                    .ignore();
            }
            async move { pipe.query_async::<()>(&mut conn).await }
        })
        .await
    }

    async fn publish_shared(&self, topic: Topic, event: Arc<Event>) -> PortResult<()> {
        self.publish_all(vec![(topic, event)]).await
    }

    async fn subscribe(&self, topic: Topic) -> PortResult<EventStream> {
        let shard = self.shard_of(topic).clone();
        // Everything up to the stream's current last entry was published before this call
        // returns; the subscriber skips it, so it never sees events older than itself even
        // when the shard's reader is behind.
        let start = last_entry_id(&self.redis, &shard.key).await?;
        let rx = {
            let mut st = shard.lock();
            let rx = st
                .topics
                .entry(topic)
                .or_insert_with(|| broadcast::channel(self.config.channel_capacity))
                .subscribe();
            self.ensure_reader(&shard, &mut st, start);
            rx
        };
        let stream = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Recv::Value((id, event)) if id > start => return Some((event, rx)),
                    Recv::Value(_) => {}
                    Recv::Lagged(missed) => {
                        debug!(
                            ?topic,
                            missed, "redis bus subscriber lagged; events dropped"
                        );
                    }
                    Recv::Closed => return None,
                }
            }
        });
        Ok(stream.boxed())
    }

    /// Reads every shard from its current last entry on: user topics hash over all of them.
    async fn subscribe_user_feed(&self) -> PortResult<Option<UserFeed>> {
        let starts = try_join_all(
            self.shards
                .iter()
                .map(|shard| last_entry_id(&self.redis, &shard.key)),
        )
        .await?;
        let tx = broadcast::channel(self.config.feed_capacity);
        let rx = tx.subscribe();
        for (shard, start) in self.shards.iter().zip(starts) {
            let mut st = shard.lock();
            st.feeds.push(FeedTap {
                tx: tx.clone(),
                start,
            });
            self.ensure_reader(shard, &mut st, start);
        }
        let stream = rx.into_stream(|missed| {
            debug!(missed, "redis bus user feed lagged; events dropped");
        });
        Ok(Some(stream.boxed()))
    }
}

/// Id of the newest entry of stream `key` (zero when it is empty or absent).
async fn last_entry_id(redis: &Redis, key: &str) -> PortResult<EntryId> {
    let reply: StreamRangeReply = with_retry("xrevrange", || {
        let mut conn = redis.connection();
        let cmd = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .to_owned();
        async move { cmd.query_async(&mut conn).await }
    })
    .await?;
    Ok(reply
        .ids
        .first()
        .and_then(|e| EntryId::parse(&e.id))
        .unwrap_or(EntryId::ZERO))
}

/// Reads one shard for this instance while it has local subscribers.
struct Reader {
    redis: Redis,
    config: Arc<RedisBusConfig>,
    shard: Arc<Shard>,
    last: EntryId,
    /// When channels without subscribers were last dropped.
    swept: Instant,
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Reader {
    async fn run(mut self) {
        let shard = self.shard.index;
        debug!(shard, from = %self.last.render(), "redis bus reader started");
        let mut conn: Option<MultiplexedConnection> = None;
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            if !self.has_subscribers() {
                debug!(shard, "redis bus reader stopped: no local subscribers");
                return;
            }
            let result = match conn.as_mut() {
                Some(c) => self.read(c).await,
                None => match self.connect().await {
                    Ok(c) => {
                        conn = Some(c);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(reply) => {
                    if failing {
                        info!(shard, from = %self.last.render(), "redis bus reader recovered");
                        failing = false;
                    }
                    backoff = MIN_BACKOFF;
                    self.dispatch(reply);
                }
                Err(e) => {
                    warn!(shard, error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "redis bus reader failed; reconnecting");
                    failing = true;
                    conn = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Whether the shard still has local subscribers; if not, marks it unread (under the
    /// same lock subscribers register under, so none is left without a reader). Channels
    /// whose subscribers all left are swept at most once per `block`.
    fn has_subscribers(&mut self) -> bool {
        let mut st = self.shard.lock();
        if self.swept.elapsed() >= self.config.block {
            st.topics.retain(|_, tx| tx.receiver_count() > 0);
            self.swept = Instant::now();
        }
        st.feeds.retain(|feed| feed.tx.receiver_count() > 0);
        if st.topics.is_empty() && st.feeds.is_empty() {
            st.reading = false;
            false
        } else {
            true
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        // This connection only ever carries this reader's blocking XREAD.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(self.config.block + Duration::from_secs(5)));
        self.redis
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    async fn read(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> Result<Option<StreamReadReply>, redis::RedisError> {
        redis::cmd("XREAD")
            .arg("COUNT")
            .arg(self.config.read_count)
            .arg("BLOCK")
            .arg(
                u64::try_from(self.config.block.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .arg("STREAMS")
            .arg(&self.shard.key)
            .arg(self.last.render())
            .query_async(conn)
            .await
    }

    fn dispatch(&mut self, reply: Option<StreamReadReply>) {
        let mut entries = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let Some(id) = EntryId::parse(&entry.id) else {
                warn!(id = entry.id, "redis bus: unparsable entry id");
                continue;
            };
            self.last = self.last.max(id);
            match entry.get::<String>("t").and_then(|t| decode_topic(&t)) {
                Some(topic) => entries.push((topic, id, entry)),
                None => warn!(
                    id = entry.id,
                    "redis bus: skipping an entry without a topic"
                ),
            }
        }
        // Only the entries someone here wants are decoded. A subscriber that arrives before
        // the dispatch below skips these entries anyway: its start is at or after them.
        {
            let st = self.shard.lock();
            entries.retain(|(topic, _, _)| st.wants(*topic));
        }
        let mut decoded: Vec<(Topic, EntryId, Arc<Event>)> = Vec::with_capacity(entries.len());
        for (topic, id, entry) in entries {
            let event = entry
                .get::<String>("e")
                .and_then(|e| serde_json::from_str::<Event>(&e).ok());
            match event {
                Some(event) => decoded.push((topic, id, Arc::new(event))),
                None => warn!(id = entry.id, "redis bus: skipping undecodable entry"),
            }
        }
        if decoded.is_empty() {
            return;
        }
        let mut st = self.shard.lock();
        for (topic, id, event) in decoded {
            if let Topic::User(user) = topic {
                // A feed whose receivers all left is dropped.
                st.feeds
                    .retain(|feed| id <= feed.start || feed.tx.send((user, event.clone())).is_ok());
            }
            if let Some(tx) = st.topics.get(&topic) {
                if tx.send((id, event)).is_err() {
                    // Every subscriber of this topic left.
                    st.topics.remove(&topic);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoot_core::ids::{RoomId, UserId};

    #[test]
    fn entry_ids_parse_and_order() {
        let a = EntryId::parse("1700000000000-0").expect("id");
        let b = EntryId::parse("1700000000000-1").expect("id");
        let c = EntryId::parse("1700000000001-0").expect("id");
        assert!(a < b && b < c);
        assert_eq!(a.render(), "1700000000000-0");
        assert_eq!(EntryId::parse("nope"), None);
    }

    #[test]
    fn topics_round_trip_and_shards_are_stable() {
        for topic in [Topic::Room(RoomId(42)), Topic::User(UserId(-7))] {
            assert_eq!(decode_topic(&encode_topic(topic)), Some(topic));
            assert_eq!(shard_index(topic, 16), shard_index(topic, 16));
            assert!(shard_index(topic, 16) < 16);
        }
        assert_eq!(decode_topic("x:1"), None);
        // Sequential room ids spread over every shard.
        let mut seen = [false; 16];
        for r in 0..256 {
            seen[shard_index(Topic::Room(RoomId(r)), 16) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
