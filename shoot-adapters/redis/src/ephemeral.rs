//! [`RedisEphemeral`]: short-lived values, counters, claims and token buckets.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use shoot_core::error::PortResult;
use shoot_core::ports::EphemeralStore;
use shoot_core::time::Timestamp;
use tracing::debug;

use crate::{backend, glob_escape, millis, with_retry};

/// `SET` only if absent, returning the value already there (portable to every Redis with
/// scripting, unlike `SET NX GET` which needs 7.0).
static SET_IF_ABSENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local old = redis.call('GET', KEYS[1])
if old then return old end
if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
    redis.call('SET', KEYS[1], ARGV[1])
end
return false",
    )
});

/// `INCRBY` that sets the expiry only when this call created the key.
static INCR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v",
    )
});

/// Token bucket on the caller's clock: hash {tokens, last}; refills `rate` tokens per
/// second of `now - last` (never backwards), capped at `cap`; takes one if available.
/// ARGV: cap, rate (tokens/s), now (ms), expiry (ms).
static TAKE_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = cap
local last = now
if state[1] then
    tokens = tonumber(state[1])
    last = tonumber(state[2])
end
if now > last then
    tokens = tokens + (now - last) / 1000 * rate
    last = now
end
if tokens > cap then tokens = cap end
local took = 0
if tokens >= 1 then
    tokens = tokens - 1
    took = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'last', string.format('%.17g', last))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return took",
    )
});

/// Longest expiry of an idle token bucket (a bucket that needs longer to refill is
/// forgotten after this; it then starts full).
const MAX_BUCKET_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Keys examined per `SCAN` step of [`EphemeralStore::delete_prefix`].
const SCAN_COUNT: usize = 1000;

/// [`EphemeralStore`] on one Redis server (keys `{namespace}:eph:{key}`).
#[derive(Clone)]
pub struct RedisEphemeral {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisEphemeral {
    /// A store over `conn` with keys under `{namespace}:eph:`.
    pub fn new(conn: ConnectionManager, namespace: &str) -> RedisEphemeral {
        RedisEphemeral {
            conn,
            prefix: format!("{namespace}:eph:"),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl EphemeralStore for RedisEphemeral {
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> PortResult<()> {
        let k = self.key(key);
        with_retry("set", || {
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("SET");
            cmd.arg(&k).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(millis(ttl));
            }
            async move { cmd.query_async::<()>(&mut conn).await }
        })
        .await
    }

    /// One pipeline of `SET`s (one round trip).
    async fn set_many(&self, entries: &[(&str, &str)], ttl: Option<Duration>) -> PortResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = entries.iter().map(|(k, _)| self.key(k)).collect();
        with_retry("set", || {
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            for (k, (_, value)) in keys.iter().zip(entries) {
                let cmd = pipe.cmd("SET").arg(k).arg(*value);
                if let Some(ttl) = ttl {
                    cmd.arg("PX").arg(millis(ttl));
                }
                cmd.ignore();
            }
            async move { pipe.query_async::<()>(&mut conn).await }
        })
        .await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> PortResult<Option<String>> {
        let mut conn = self.conn.clone();
        // Not retried: after a lost reply the retry would see this call's own value.
        SET_IF_ABSENT
            .key(self.key(key))
            .arg(value)
            .arg(ttl.map_or(0, millis))
            .invoke_async(&mut conn)
            .await
            .map_err(backend)
    }

    async fn get(&self, key: &str) -> PortResult<Option<String>> {
        let k = self.key(key);
        with_retry("get", || {
            let mut conn = self.conn.clone();
            let cmd = redis::cmd("GET").arg(&k).to_owned();
            async move { cmd.query_async(&mut conn).await }
        })
        .await
    }

    async fn get_many(&self, keys: &[String]) -> PortResult<Vec<Option<String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ks: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        with_retry("mget", || {
            let mut conn = self.conn.clone();
            let cmd = redis::cmd("MGET").arg(&ks).to_owned();
            async move { cmd.query_async(&mut conn).await }
        })
        .await
    }

    async fn delete(&self, key: &str) -> PortResult<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    /// Iterates `SCAN cursor MATCH {prefix}* COUNT 1000` (each step is short and never
    /// blocks the server) and `UNLINK`s what each step found.
    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut cursor: u64 = 0;
        let mut deleted = 0usize;
        loop {
            let (next, keys): (u64, Vec<String>) = with_retry("scan", || {
                let mut conn = self.conn.clone();
                let cmd = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .to_owned();
                async move { cmd.query_async(&mut conn).await }
            })
            .await?;
            if !keys.is_empty() {
                deleted += keys.len();
                with_retry("unlink", || {
                    let mut conn = self.conn.clone();
                    let cmd = redis::cmd("UNLINK").arg(&keys).to_owned();
                    async move { cmd.query_async::<i64>(&mut conn).await }
                })
                .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        debug!(prefix, deleted, "redis delete_prefix");
        Ok(())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> PortResult<i64> {
        let mut conn = self.conn.clone();
        INCR.key(self.key(key))
            .arg(delta)
            .arg(ttl.map_or(0, millis))
            .invoke_async(&mut conn)
            .await
            .map_err(backend)
    }

    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        refill_per_sec: f64,
        now: Timestamp,
    ) -> PortResult<bool> {
        let rate = if refill_per_sec.is_finite() && refill_per_sec > 0.0 {
            refill_per_sec
        } else {
            0.0
        };
        // Forget an idle bucket once it would be full again anyway.
        let idle = if rate > 0.0 {
            Duration::from_secs_f64((f64::from(capacity) / rate).min(MAX_BUCKET_IDLE.as_secs_f64()))
                + Duration::from_secs(1)
        } else {
            MAX_BUCKET_IDLE
        };
        let mut conn = self.conn.clone();
        let took: i64 = TAKE_TOKEN
            .key(self.key(key))
            .arg(capacity)
            .arg(format!("{rate}"))
            .arg(now.0)
            .arg(millis(idle))
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(took == 1)
    }
}
