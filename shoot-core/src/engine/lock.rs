//! Running code under a distributed lock with retry, exponential backoff and jitter.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::warn;

use crate::error::{Error, ErrorCode, Result};
use crate::ports::{Clock, LockManager};

/// First retry delay.
const BASE_DELAY: Duration = Duration::from_millis(10);
/// Longest retry delay.
const MAX_DELAY: Duration = Duration::from_millis(500);

static JITTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

/// A pseudo-random number in `0..bound` (xorshift; spreading retries needs no real entropy).
fn jitter(bound: u64) -> u64 {
    let mut x = JITTER.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    JITTER.store(x, Ordering::Relaxed);
    if bound == 0 { 0 } else { x % bound }
}

/// The delay before retry number `attempt` (0-based): `BASE·2^attempt` capped, plus up to
/// half of it as jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = BASE_DELAY
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_DELAY);
    let ms = base.as_millis() as u64;
    base + Duration::from_millis(jitter(ms / 2 + 1))
}

/// Takes `key` (lease `ttl`), runs `f`, releases the lock. Retries up to `attempts` times with
/// exponential backoff and jitter while someone else holds it; then fails with `CONFLICT`.
/// The lock is released even when `f` fails.
pub async fn with_lock<T, F, Fut>(
    locks: &dyn LockManager,
    clock: &dyn Clock,
    key: &str,
    ttl: Duration,
    attempts: u32,
    f: F,
) -> Result<T>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    let token = loop {
        if let Some(token) = locks.try_acquire(key, ttl).await? {
            break token;
        }
        attempt += 1;
        if attempt >= attempts.max(1) {
            return Err(Error::new(
                ErrorCode::Conflict,
                "the resource is busy; retry",
            ));
        }
        clock.sleep(backoff(attempt - 1)).await;
    };
    let result = f().await;
    match locks.release(key, &token).await {
        Ok(true) => {}
        Ok(false) => warn!(key, "lock lease lapsed before release"),
        Err(e) => warn!(key, error = %e, "releasing lock failed"),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLocks;
    use crate::time::Timestamp;
    use futures::executor::block_on;
    use futures::future::BoxFuture;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    /// A clock whose sleeps complete at once and count themselves.
    #[derive(Default)]
    struct InstantClock {
        sleeps: AtomicU32,
    }

    impl Clock for InstantClock {
        fn now(&self) -> Timestamp {
            Timestamp(1_000)
        }
        fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
            self.sleeps.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }
    }

    #[test]
    fn runs_under_the_lock_and_releases_it() {
        let clock = Arc::new(InstantClock::default());
        let locks = MemoryLocks::new(clock.clone());
        let ttl = Duration::from_secs(5);
        let got = block_on(with_lock(&locks, &*clock, "k", ttl, 3, || async {
            let held = locks.try_acquire("k", ttl).await?;
            assert!(held.is_none(), "held while running");
            Ok(7)
        }));
        assert_eq!(got.ok(), Some(7));
        let failing: Result<()> = block_on(with_lock(&locks, &*clock, "k", ttl, 3, || async {
            Err(Error::new(ErrorCode::PinLimitExceeded, "no"))
        }));
        assert_eq!(
            failing.err().map(|e| e.code()),
            Some(ErrorCode::PinLimitExceeded)
        );
        assert!(
            block_on(locks.try_acquire("k", ttl))
                .ok()
                .flatten()
                .is_some(),
            "released"
        );
        assert_eq!(clock.sleeps.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn gives_up_with_conflict_after_the_attempts() {
        let clock = Arc::new(InstantClock::default());
        let locks = MemoryLocks::new(clock.clone());
        let ttl = Duration::from_secs(5);
        let _held = block_on(locks.try_acquire("k", ttl)).ok().flatten();
        let ran = AtomicU32::new(0);
        let got: Result<()> = block_on(with_lock(&locks, &*clock, "k", ttl, 4, || async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }));
        assert_eq!(got.err().map(|e| e.code()), Some(ErrorCode::Conflict));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(
            clock.sleeps.load(Ordering::SeqCst),
            3,
            "backs off between the 4 attempts"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            let base = BASE_DELAY
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_DELAY);
            assert!(
                d >= base && d <= base + base / 2 + Duration::from_millis(1),
                "{attempt}: {d:?}"
            );
        }
    }
}
