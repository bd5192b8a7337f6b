//! [`ManualClock`]: time that only moves when a test says so.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::ports::Clock;
use crate::time::Timestamp;

/// A [`Clock`] whose time is set and advanced by the test.
///
/// `sleep` futures complete when [`advance`](ManualClock::advance) or
/// [`set`](ManualClock::set) moves the time to or past their deadline; no runtime timer is
/// involved, so tests are deterministic. Time never moves backwards through `advance`;
/// `set` may move it backwards (sleepers keep their absolute deadlines).
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Default)]
struct ClockState {
    now: i64,
    next_sleeper: u64,
    /// Sleepers by (deadline ms, registration order).
    sleepers: BTreeMap<(i64, u64), oneshot::Sender<()>>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        let clock = ManualClock::default();
        clock.lock().now = start.0;
        clock
    }

    /// A clock at 2024-01-01T00:00:00Z, a convenient fixed start for tests.
    pub fn at_2024() -> ManualClock {
        ManualClock::new(Timestamp(1_704_067_200_000))
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the time forward by `d`, waking every sleeper whose deadline is reached.
    pub fn advance(&self, d: Duration) {
        let mut st = self.lock();
        st.now = st.now.saturating_add(d.as_millis() as i64);
        Self::wake_due(&mut st);
    }

    /// Sets the time to `t` (may go backwards), waking every sleeper whose deadline is reached.
    pub fn set(&self, t: Timestamp) {
        let mut st = self.lock();
        st.now = t.0;
        Self::wake_due(&mut st);
    }

    /// Number of pending `sleep` futures that are still awaited (not dropped). Tests use it
    /// to wait until a background task is parked on a timer before advancing time.
    pub fn sleepers(&self) -> usize {
        let mut st = self.lock();
        st.sleepers.retain(|_, tx| !tx.is_closed());
        st.sleepers.len()
    }

    /// The earliest deadline of a live sleeper, if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let mut st = self.lock();
        st.sleepers.retain(|_, tx| !tx.is_closed());
        st.sleepers.keys().next().map(|(d, _)| Timestamp(*d))
    }

    fn wake_due(st: &mut ClockState) {
        let now = st.now;
        // Keys strictly greater than (now, MAX) stay; everything up to `now` is due.
        let later = st.sleepers.split_off(&(now.saturating_add(1), 0));
        let due = std::mem::replace(&mut st.sleepers, later);
        for (_, tx) in due {
            // A dropped sleep future is fine to ignore.
            let _ = tx.send(());
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.lock().now)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut st = self.lock();
        let deadline = st.now.saturating_add(duration.as_millis() as i64);
        if deadline <= st.now {
            return futures::future::ready(()).boxed();
        }
        let (tx, rx) = oneshot::channel();
        let n = st.next_sleeper;
        st.next_sleeper += 1;
        st.sleepers.insert((deadline, n), tx);
        // An error means the clock was dropped: nothing can wake us any more, so complete.
        rx.map(|_| ()).boxed()
    }
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn now_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        c.advance(Duration::from_millis(250));
        assert_eq!(c.now(), Timestamp(1_250));
        c.set(Timestamp(500));
        assert_eq!(c.now(), Timestamp(500));
    }

    #[test]
    fn zero_sleep_is_ready_immediately() {
        let c = ManualClock::new(Timestamp(0));
        assert_eq!(c.sleep(Duration::ZERO).now_or_never(), Some(()));
        assert_eq!(c.sleepers(), 0);
    }

    #[test]
    fn sleep_completes_exactly_at_its_deadline() {
        let c = ManualClock::new(Timestamp(0));
        let mut short = c.sleep(Duration::from_millis(100));
        let mut long = c.sleep(Duration::from_millis(300));
        assert_eq!(c.sleepers(), 2);
        assert_eq!(c.next_deadline(), Some(Timestamp(100)));
        assert!((&mut short).now_or_never().is_none());
        c.advance(Duration::from_millis(99));
        assert!((&mut short).now_or_never().is_none(), "woke one ms early");
        c.advance(Duration::from_millis(1));
        assert_eq!((&mut short).now_or_never(), Some(()));
        assert!((&mut long).now_or_never().is_none());
        assert_eq!(c.sleepers(), 1);
        c.set(Timestamp(1_000));
        assert_eq!((&mut long).now_or_never(), Some(()));
        assert_eq!(c.sleepers(), 0);
    }

    #[test]
    fn dropped_sleepers_are_not_counted() {
        let c = ManualClock::new(Timestamp(0));
        let s = c.sleep(Duration::from_secs(1));
        assert_eq!(c.sleepers(), 1);
        drop(s);
        assert_eq!(c.sleepers(), 0);
    }

    #[test]
    fn setting_time_backwards_keeps_absolute_deadlines() {
        let c = ManualClock::new(Timestamp(1_000));
        let mut s = c.sleep(Duration::from_millis(100)); // deadline 1_100
        c.set(Timestamp(0));
        c.advance(Duration::from_millis(1_000));
        assert!((&mut s).now_or_never().is_none());
        c.advance(Duration::from_millis(100));
        assert_eq!(s.now_or_never(), Some(()));
    }

    #[tokio::test]
    async fn a_task_sleeping_on_the_clock_wakes_on_advance() {
        let c = ManualClock::new(Timestamp(0));
        let c2 = c.clone();
        let task = tokio::spawn(async move {
            c2.sleep(Duration::from_secs(5)).await;
            c2.now()
        });
        // Wait (bounded) until the task is parked on the clock, then release it.
        for _ in 0..10_000 {
            if c.sleepers() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(c.sleepers(), 1, "task never slept");
        c.advance(Duration::from_secs(5));
        assert_eq!(task.await.expect("task panicked"), Timestamp(5_000));
    }
}
