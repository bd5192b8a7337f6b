//! [`MemoryLocks`] and [`MemoryEphemeral`]: leases and expiring keys on a [`Clock`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use foldhash::HashMap as FastMap;

use super::lock;
use crate::error::{PortError, PortResult};
use crate::ports::{Clock, EphemeralStore, LockManager, LockToken};
use crate::time::Timestamp;

/// In-memory [`LockManager`]: leases expire on the given clock.
pub struct MemoryLocks {
    clock: Arc<dyn Clock>,
    next_token: AtomicU64,
    held: Mutex<HashMap<String, (LockToken, Timestamp)>>,
}

impl MemoryLocks {
    /// Locks whose leases run on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryLocks {
        MemoryLocks {
            clock,
            next_token: AtomicU64::new(1),
            held: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl LockManager for MemoryLocks {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> PortResult<Option<LockToken>> {
        let now = self.clock.now();
        let mut held = lock(&self.held);
        if held.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let n = self.next_token.fetch_add(1, Ordering::Relaxed);
        let token = LockToken(format!("mem-{n}"));
        held.insert(key.to_owned(), (token.clone(), now.plus(ttl)));
        Ok(Some(token))
    }

    async fn extend(&self, key: &str, token: &LockToken, ttl: Duration) -> PortResult<bool> {
        let now = self.clock.now();
        let mut held = lock(&self.held);
        match held.get_mut(key) {
            Some((t, until)) if t == token && *until > now => {
                *until = now.plus(ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, token: &LockToken) -> PortResult<bool> {
        let now = self.clock.now();
        let mut held = lock(&self.held);
        match held.get(key) {
            Some((t, until)) if t == token && *until > now => {
                held.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// In-memory [`EphemeralStore`]: keys expire on the given clock; expired keys are dropped
/// when touched and by a periodic sweep.
pub struct MemoryEphemeral {
    clock: Arc<dyn Clock>,
    state: Mutex<EphState>,
}

#[derive(Default)]
struct EphState {
    /// Hashed, not ordered: idempotency claims put thousands of keys with a long common
    /// prefix here, which an ordered map compares byte by byte on every look-up.
    /// `delete_prefix` scans instead (it only serves rare cache invalidations).
    values: FastMap<Box<str>, Value>,
    buckets: FastMap<Box<str>, Bucket>,
    /// Writes until the next sweep of expired entries.
    until_sweep: u64,
}

/// A key's value and when it expires ([`NEVER`] without a TTL). Boxed strings and a sentinel
/// rather than `String`s and an `Option<Timestamp>`: a table slot of 40 bytes instead of 64
/// (the embedded stack keeps two presence keys per connected user here).
struct Value {
    text: Box<str>,
    expires: Timestamp,
}

/// The expiry of a key without a TTL.
const NEVER: Timestamp = Timestamp(i64::MAX);

impl Value {
    fn live(&self, now: Timestamp) -> bool {
        self.expires > now
    }
}

struct Bucket {
    tokens: f64,
    last: Timestamp,
    capacity: u32,
    refill_per_sec: f64,
}

impl Bucket {
    /// When the bucket is full again (so it can be forgotten).
    fn full_at(&self) -> Timestamp {
        if self.refill_per_sec <= 0.0 {
            return Timestamp(i64::MAX);
        }
        let missing = (f64::from(self.capacity) - self.tokens).max(0.0);
        self.last
            .plus(Duration::from_secs_f64(missing / self.refill_per_sec))
    }
}

const SWEEP_EVERY: u64 = 1024;

impl EphState {
    fn live(&mut self, key: &str, now: Timestamp) -> Option<&mut Value> {
        let expired = match self.values.get(key) {
            None => return None,
            Some(value) => !value.live(now),
        };
        if expired {
            self.values.remove(key);
            return None;
        }
        self.values.get_mut(key)
    }

    /// Sets `key` to `value`, reusing the key's (and an equal old value's) allocation if
    /// present.
    fn put(&mut self, key: &str, value: &str, expires: Timestamp) {
        match self.values.get_mut(key) {
            Some(entry) => {
                if *entry.text != *value {
                    entry.text = value.into();
                }
                entry.expires = expires;
            }
            None => {
                let text = value.into();
                self.values.insert(key.into(), Value { text, expires });
            }
        }
    }

    /// Counts a write; sweeps expired entries once as many writes as there are entries
    /// (at least [`SWEEP_EVERY`]) have happened since the last sweep, so a sweep's cost is
    /// amortised to O(1) per write however many keys are live.
    fn wrote(&mut self, now: Timestamp) {
        self.until_sweep = self.until_sweep.saturating_sub(1);
        if self.until_sweep == 0 {
            self.values.retain(|_, value| value.live(now));
            self.buckets.retain(|_, b| b.full_at() > now);
            let live = (self.values.len() + self.buckets.len()) as u64;
            self.until_sweep = live.max(SWEEP_EVERY);
        }
    }
}

fn expiry(now: Timestamp, ttl: Option<Duration>) -> Timestamp {
    ttl.map_or(NEVER, |d| now.plus(d))
}

impl MemoryEphemeral {
    /// A store whose expiries run on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryEphemeral {
        MemoryEphemeral {
            clock,
            state: Mutex::new(EphState::default()),
        }
    }

    /// Number of live keys (token buckets not included).
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        lock(&self.state)
            .values
            .values()
            .filter(|value| value.live(now))
            .count()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EphemeralStore for MemoryEphemeral {
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> PortResult<()> {
        let now = self.clock.now();
        let mut st = lock(&self.state);
        st.put(key, value, expiry(now, ttl));
        st.wrote(now);
        Ok(())
    }

    async fn set_many(&self, entries: &[(&str, &str)], ttl: Option<Duration>) -> PortResult<()> {
        let now = self.clock.now();
        let mut st = lock(&self.state);
        for (key, value) in entries {
            st.put(key, value, expiry(now, ttl));
            st.wrote(now);
        }
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> PortResult<Option<String>> {
        let now = self.clock.now();
        let mut st = lock(&self.state);
        if let Some(existing) = st.live(key, now) {
            return Ok(Some(existing.text.to_string()));
        }
        st.put(key, value, expiry(now, ttl));
        st.wrote(now);
        Ok(None)
    }

    async fn get(&self, key: &str) -> PortResult<Option<String>> {
        let now = self.clock.now();
        Ok(lock(&self.state)
            .live(key, now)
            .map(|value| value.text.to_string()))
    }

    async fn get_many(&self, keys: &[String]) -> PortResult<Vec<Option<String>>> {
        let now = self.clock.now();
        let mut st = lock(&self.state);
        Ok(keys
            .iter()
            .map(|k| st.live(k, now).map(|value| value.text.to_string()))
            .collect())
    }

    async fn delete(&self, key: &str) -> PortResult<bool> {
        let now = self.clock.now();
        let mut st = lock(&self.state);
        let present = st.live(key, now).is_some();
        st.values.remove(key);
        st.buckets.remove(key);
        Ok(present)
    }

    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        let mut st = lock(&self.state);
        st.values.retain(|k, _| !k.starts_with(prefix));
        st.buckets.retain(|k, _| !k.starts_with(prefix));
        Ok(())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> PortResult<i64> {
        let now = self.clock.now();
        let mut st = lock(&self.state);
        let value = match st.live(key, now) {
            Some(value) => {
                let n: i64 = value.text.parse().map_err(|_| {
                    PortError::Conflict(format!("value at {key} is not an integer"))
                })?;
                let n = n.saturating_add(delta);
                value.text = n.to_string().into();
                n
            }
            None => {
                st.put(key, &delta.to_string(), expiry(now, ttl));
                delta
            }
        };
        st.wrote(now);
        Ok(value)
    }

    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        refill_per_sec: f64,
        now: Timestamp,
    ) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let cap = f64::from(capacity);
        if !st.buckets.contains_key(key) {
            let full = Bucket {
                tokens: cap,
                last: now,
                capacity,
                refill_per_sec,
            };
            st.buckets.insert(key.into(), full);
        }
        let bucket = st.buckets.get_mut(key).expect("inserted above");
        let elapsed = now.since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * refill_per_sec.max(0.0)).min(cap);
        bucket.last = bucket.last.max(now);
        bucket.capacity = capacity;
        bucket.refill_per_sec = refill_per_sec;
        let took = bucket.tokens >= 1.0;
        if took {
            bucket.tokens -= 1.0;
        }
        st.wrote(now);
        Ok(took)
    }
}
