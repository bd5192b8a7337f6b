//! Runtime ports of the Shoot engine on tokio: a system [`Clock`] whose `sleep` is a tokio
//! timer, and a [`Spawner`] that spawns tokio tasks.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use shoot_core::ports::Clock;
//! let clock = shoot_tokio::TokioClock;
//! let before = clock.now();
//! clock.sleep(std::time::Duration::from_millis(5)).await;
//! assert!(clock.now() >= before);
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use shoot_core::Timestamp;
use shoot_core::ports::{Clock, Spawner};

/// The system clock with tokio timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(ms as i64)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Spawns tasks on the current tokio runtime (or the one given).
#[derive(Clone, Debug)]
pub struct TokioSpawner {
    handle: tokio::runtime::Handle,
}

impl TokioSpawner {
    /// A spawner on the runtime this is called from. Panics outside a tokio runtime.
    pub fn current() -> TokioSpawner {
        TokioSpawner {
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// A spawner on `handle`.
    pub fn new(handle: tokio::runtime::Handle) -> TokioSpawner {
        TokioSpawner { handle }
    }
}

impl Spawner for TokioSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(task));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(flavor = "current_thread")]
    async fn spawned_task_runs() {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        TokioSpawner::current().spawn(Box::pin(async move { f.store(true, Ordering::SeqCst) }));
        let deadline = TokioClock.now().plus(Duration::from_secs(5));
        while !flag.load(Ordering::SeqCst) {
            assert!(TokioClock.now() < deadline, "task never ran");
            tokio::task::yield_now().await;
        }
    }
}
