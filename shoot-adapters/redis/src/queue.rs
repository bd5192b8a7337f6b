//! [`RedisWorkQueue`]: a work queue on one stream shared by the workers of a consumer group
//! (`XREADGROUP` to take entries, `XACK` when done, `XAUTOCLAIM` to take over entries a
//! crashed worker left pending). The engine has no port for it yet; it is a public utility.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use shoot_core::error::PortResult;
use tokio::sync::Mutex;

use crate::{Redis, backend, millis, with_retry};

/// One entry taken from a [`RedisWorkQueue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    /// Stream entry id (what [`RedisWorkQueue::ack`] takes).
    pub id: String,
    /// The payload given to [`RedisWorkQueue::push`].
    pub payload: String,
}

impl QueueEntry {
    fn from_stream(entry: &StreamId) -> QueueEntry {
        QueueEntry {
            id: entry.id.clone(),
            payload: entry.get::<String>("p").unwrap_or_default(),
        }
    }
}

/// A stream `{namespace}:queue:{name}` consumed by consumer group `group`: every entry goes
/// to one consumer of the group and stays pending until acknowledged.
#[derive(Clone)]
pub struct RedisWorkQueue {
    redis: Redis,
    key: String,
    group: String,
    /// Dedicated connection for blocking reads (they would hold up the shared one).
    blocking: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl RedisWorkQueue {
    /// The queue `name` read by `group`. Prefer [`Redis::work_queue`].
    pub fn new(redis: Redis, name: &str, group: &str) -> RedisWorkQueue {
        RedisWorkQueue {
            key: format!("{}:queue:{name}", redis.namespace()),
            redis,
            group: group.to_owned(),
            blocking: Arc::new(Mutex::new(None)),
        }
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Creates the stream and the group (reading from the stream's start) if missing.
    pub async fn ensure_group(&self) -> PortResult<()> {
        let mut conn = self.redis.connection();
        let r: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    /// Appends `payload`; returns its entry id.
    pub async fn push(&self, payload: &str) -> PortResult<String> {
        let mut conn = self.redis.connection();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("*")
            .arg("p")
            .arg(payload)
            .query_async(&mut conn)
            .await
            .map_err(backend)
    }

    /// Takes up to `max` entries never delivered to the group, as `consumer`, waiting up to
    /// `block` for some (not at all if zero). They stay pending until [`ack`](Self::ack)ed.
    pub async fn read(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> PortResult<Vec<QueueEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(consumer)
            .arg("COUNT")
            .arg(max.max(1));
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(millis(block));
        }
        cmd.arg("STREAMS").arg(&self.key).arg(">");
        let reply: Option<StreamReadReply> = if block.is_zero() {
            let mut conn = self.redis.connection();
            cmd.query_async(&mut conn).await.map_err(backend)?
        } else {
            let mut slot = self.blocking.lock().await;
            let conn = match slot.as_mut() {
                Some(c) => c,
                None => {
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(2)))
                        .set_response_timeout(Some(block + Duration::from_secs(5)));
                    let c = self
                        .redis
                        .client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .map_err(backend)?;
                    slot.insert(c)
                }
            };
            match cmd.query_async(conn).await {
                Ok(r) => r,
                Err(e) => {
                    // Reconnect on the next call.
                    *slot = None;
                    return Err(backend(e));
                }
            }
        };
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| QueueEntry::from_stream(&e))
            .collect())
    }

    /// Acknowledges entries; returns how many were pending.
    pub async fn ack(&self, ids: &[String]) -> PortResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        with_retry("xack", || {
            let mut conn = self.redis.connection();
            let cmd = redis::cmd("XACK")
                .arg(&self.key)
                .arg(&self.group)
                .arg(ids)
                .to_owned();
            async move { cmd.query_async(&mut conn).await }
        })
        .await
    }

    /// Takes over, as `consumer`, up to `max` entries pending in the group for at least
    /// `min_idle` (their worker died or stalled), walking the pending list with `XAUTOCLAIM`.
    pub async fn claim_stale(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> PortResult<Vec<QueueEntry>> {
        let mut out = Vec::new();
        let mut start = "0-0".to_owned();
        while out.len() < max {
            let mut conn = self.redis.connection();
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.key)
                .arg(&self.group)
                .arg(consumer)
                .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&start)
                .arg("COUNT")
                .arg(max - out.len())
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            out.extend(reply.claimed.iter().map(QueueEntry::from_stream));
            if reply.next_stream_id == "0-0" {
                break;
            }
            start = reply.next_stream_id;
        }
        Ok(out)
    }

    /// Number of entries delivered to the group and not yet acknowledged.
    pub async fn pending_count(&self) -> PortResult<u64> {
        let mut conn = self.redis.connection();
        let (count, _, _, _): (u64, Option<String>, Option<String>, redis::Value) =
            redis::cmd("XPENDING")
                .arg(&self.key)
                .arg(&self.group)
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
        Ok(count)
    }
}
