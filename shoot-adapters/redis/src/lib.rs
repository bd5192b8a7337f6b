//! Shoot Redis adapter.
//!
//! - [`RedisBus`]: the [`EventBus`](shoot_core::ports::EventBus) across instances on Redis
//!   Streams (a fixed number of hash-sharded streams, every instance reading every shard it
//!   has local subscribers on from its own last-seen id).
//! - [`RedisLocks`]: the [`LockManager`](shoot_core::ports::LockManager) (`SET NX PX`, Lua
//!   compare-and-delete / compare-and-pexpire on the owner token).
//! - [`RedisEphemeral`]: the [`EphemeralStore`](shoot_core::ports::EphemeralStore) (values,
//!   counters, claims, token buckets; `SCAN`-based prefix deletion).
//! - [`RedisWorkQueue`]: consumer-group helpers for workers (`XREADGROUP`, `XACK`,
//!   `XAUTOCLAIM`), a public utility the engine has no port for yet.
//!
//! Start from [`Redis::connect`]; every key lives under its namespace.

mod bus;
mod ephemeral;
mod locks;
mod queue;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use shoot_core::error::PortError;
use tracing::warn;

pub use bus::{RedisBus, RedisBusConfig};
pub use ephemeral::RedisEphemeral;
pub use locks::RedisLocks;
pub use queue::{QueueEntry, RedisWorkQueue};

/// Backend name used in [`PortError::Backend`].
pub(crate) const BACKEND: &str = "redis";

/// Default namespace: every key starts with `shoot:`.
pub const DEFAULT_NAMESPACE: &str = "shoot";

/// A connection to one Redis server, shared by the adapters built from it.
///
/// Commands go through one auto-reconnecting multiplexed connection
/// ([`ConnectionManager`]); blocking stream reads get connections of their own.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    manager: ConnectionManager,
    namespace: String,
}

impl Redis {
    /// Connects to `url` (`redis://host:port/db`) with [`DEFAULT_NAMESPACE`]. Fails if the
    /// server cannot be reached now; later connection losses are repaired in the background.
    pub async fn connect(url: &str) -> Result<Redis, PortError> {
        Redis::connect_with_namespace(url, DEFAULT_NAMESPACE).await
    }

    /// Connects to `url`; every key this adapter writes starts with `{namespace}:`.
    pub async fn connect_with_namespace(url: &str, namespace: &str) -> Result<Redis, PortError> {
        let client = Client::open(url).map_err(backend)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(8)
            .set_max_delay(Duration::from_secs(2))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(backend)?;
        Ok(Redis {
            client,
            manager,
            namespace: namespace.to_owned(),
        })
    }

    /// The namespace every key starts with.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The shared auto-reconnecting connection (for health checks and tests).
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// An event bus with `config`. Readers start when the first local subscriber of a shard
    /// arrives and stop when its last one leaves.
    pub fn bus(&self, config: RedisBusConfig) -> RedisBus {
        RedisBus::new(self.clone(), config)
    }

    /// The lock manager (keys `{namespace}:lock:{key}`).
    pub fn locks(&self) -> RedisLocks {
        RedisLocks::new(self.manager.clone(), &self.namespace)
    }

    /// The ephemeral store (keys `{namespace}:eph:{key}`).
    pub fn ephemeral(&self) -> RedisEphemeral {
        RedisEphemeral::new(self.manager.clone(), &self.namespace)
    }

    /// A work queue on stream `{namespace}:queue:{name}` read by consumer group `group`.
    pub fn work_queue(&self, name: &str, group: &str) -> RedisWorkQueue {
        RedisWorkQueue::new(self.clone(), name, group)
    }
}

/// Maps a driver error.
pub(crate) fn backend(e: RedisError) -> PortError {
    PortError::backend(BACKEND, e)
}

/// Whether `e` means the connection went away (the manager is reconnecting).
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error() || e.is_timeout()
}

/// Runs `op` up to three times while it fails on a lost connection (the
/// [`ConnectionManager`] reconnects in between). Only for commands whose repetition is
/// harmless.
pub(crate) async fn with_retry<T, F, Fut>(what: &'static str, mut op: F) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RedisError>>,
{
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 3 && is_connection_error(&e) => {
                warn!(command = what, attempt, error = %e, "redis connection lost; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

/// Milliseconds of `d`, at least 1 (Redis rejects a zero expiry).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `s` with the glob metacharacters of `SCAN MATCH` escaped.
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A 128-bit random token in hex.
pub(crate) fn random_token() -> Result<String, PortError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PortError::backend(BACKEND, e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escape_escapes_metacharacters() {
        assert_eq!(glob_escape("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
        assert_eq!(glob_escape("plain:key"), "plain:key");
    }

    #[test]
    fn random_tokens_differ() {
        let a = random_token().expect("token");
        let b = random_token().expect("token");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn millis_is_never_zero() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_millis(250)), 250);
    }
}
