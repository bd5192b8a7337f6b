//! [`RedisLocks`]: leases as `SET key token NX PX ttl`; release and extend are Lua scripts
//! that act only while the key still holds the caller's token.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use shoot_core::error::PortResult;
use shoot_core::ports::{LockManager, LockToken};
use tracing::debug;

use crate::{backend, millis, random_token, with_retry};

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// [`LockManager`] on one Redis server (keys `{namespace}:lock:{key}`).
///
/// Tokens are 128 random bits, so an old owner whose lease lapsed can never release or
/// extend the lease of the next owner.
#[derive(Clone)]
pub struct RedisLocks {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisLocks {
    /// Locks over `conn` with keys under `{namespace}:lock:`.
    pub fn new(conn: ConnectionManager, namespace: &str) -> RedisLocks {
        RedisLocks {
            conn,
            prefix: format!("{namespace}:lock:"),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl LockManager for RedisLocks {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> PortResult<Option<LockToken>> {
        let k = self.key(key);
        let token = random_token()?;
        let mut conn = self.conn.clone();
        // Not retried: if a lost reply hid a success, the lease simply lapses after `ttl`.
        let reply: Option<String> = redis::cmd("SET")
            .arg(&k)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        debug!(key, acquired = reply.is_some(), "redis lock try_acquire");
        Ok(reply.map(|_| LockToken(token)))
    }

    async fn extend(&self, key: &str, token: &LockToken, ttl: Duration) -> PortResult<bool> {
        let k = self.key(key);
        let ms = millis(ttl);
        let n: i64 = with_retry("lock extend", || {
            let mut conn = self.conn.clone();
            let k = k.clone();
            async move {
                EXTEND
                    .key(k)
                    .arg(&token.0)
                    .arg(ms)
                    .invoke_async(&mut conn)
                    .await
            }
        })
        .await?;
        Ok(n == 1)
    }

    async fn release(&self, key: &str, token: &LockToken) -> PortResult<bool> {
        let k = self.key(key);
        let mut conn = self.conn.clone();
        // Not retried: a retry after a lost reply would report "not released" for a release
        // that happened.
        let n: i64 = RELEASE
            .key(&k)
            .arg(&token.0)
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        debug!(key, released = n == 1, "redis lock release");
        Ok(n == 1)
    }
}
