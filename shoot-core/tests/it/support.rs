//! Shared test helpers: a real-time clock and a tokio spawner (core itself has no runtime).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::BoxFuture;
use shoot_core::Timestamp;
use shoot_core::ports::{Clock, Spawner};

/// Wall-clock time with tokio timers, for contracts that need real time.
pub(crate) struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Timestamp(ms)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        tokio::time::sleep(duration).boxed()
    }
}

/// Spawns on the current tokio runtime.
pub(crate) struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// `RealClock` as a port.
#[allow(dead_code)] // used by some test modules only
pub(crate) fn real_clock() -> Arc<dyn Clock> {
    Arc::new(RealClock)
}
