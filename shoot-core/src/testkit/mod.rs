//! Executable port contracts: every adapter's tests call these against their implementation
//! (the [`memory`](crate::memory) ports are the reference and pass them all).
//!
//! Each contract checks every MUST clause of its port's documentation, including the
//! concurrent ones (several calls joined with `futures::future::join_all`, of which exactly
//! one may win). Contracts panic with a message naming the clause that failed.
//!
//! Rules that make them safe against a real, shared backend:
//! - every id, key, topic and name is fresh per run ([`fresh_id`]: microseconds since the
//!   epoch × 1000 plus a counter), so several runs against the same database do not collide;
//! - stores are independent ports (messages may live in MongoDB while users live in
//!   PostgreSQL): contracts insert rows referring to ids that exist in no other store, so an
//!   adapter MUST NOT enforce foreign keys across ports;
//! - time-dependent contracts (locks, ephemeral, log, bus) take the [`Clock`] the adapter
//!   runs on and only use it to wait (short TTLs, polling with a deadline) — pass a real-time
//!   clock, never a manual one;
//! - the schedule contract works in 1970 (due times long past any real schedule) and leaves
//!   none of its schedules PENDING, so it never claims real data.

mod infra;
mod messages;
mod misc;
mod rooms;
mod social;
mod users;

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{PortError, PortResult};
use crate::ports::Clock;
use crate::time::Timestamp;

pub use infra::{
    ephemeral_store_contract, event_bus_contract, lock_manager_contract, message_log_contract,
};
pub use messages::message_store_contract;
pub use misc::{bookmark_store_contract, notification_store_contract, schedule_store_contract};
pub use rooms::room_store_contract;
pub use social::social_store_contract;
pub use users::user_store_contract;

static LAST_ID: AtomicI64 = AtomicI64::new(0);

/// A positive id unique in this process and, across processes, unique with overwhelming
/// likelihood: at least microseconds since the Unix epoch × 1000, strictly increasing.
pub fn fresh_id() -> i64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let candidate = micros.saturating_mul(1000);
    let prev = LAST_ID
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(candidate.max(last + 1))
        })
        .unwrap_or_else(|last| last);
    candidate.max(prev + 1)
}

/// `n` in base 36, upper case (at most 13 characters for a positive i64).
pub fn base36(mut n: i64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The wall-clock time now.
pub fn wall_now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}

/// Unwraps a port result, panicking with `what` and the error.
#[track_caller]
fn ok<T>(r: PortResult<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

/// Asserts that `r` failed with `AlreadyExists { what }`.
#[track_caller]
fn expect_already_exists<T: Debug>(r: PortResult<T>, what: &'static str, clause: &str) {
    match r {
        Err(PortError::AlreadyExists { what: w }) => {
            assert_eq!(w, what, "{clause}: AlreadyExists names the wrong key");
        }
        other => panic!("{clause}: expected AlreadyExists {{ what: {what:?} }}, got {other:?}"),
    }
}

/// Asserts that `r` failed with `NotFound`.
#[track_caller]
fn expect_not_found<T: Debug>(r: PortResult<T>, clause: &str) {
    match r {
        Err(PortError::NotFound) => {}
        other => panic!("{clause}: expected NotFound, got {other:?}"),
    }
}

/// Asserts that `r` failed with `Conflict`.
#[track_caller]
fn expect_conflict<T: Debug>(r: PortResult<T>, clause: &str) {
    match r {
        Err(PortError::Conflict(_)) => {}
        other => panic!("{clause}: expected Conflict, got {other:?}"),
    }
}

/// Polls `check` every 20 ms (sleeping on `clock`) until it returns true or `limit` of real
/// time passes; returns whether it succeeded.
async fn eventually<F, Fut>(clock: &dyn Clock, limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        clock.sleep(Duration::from_millis(20)).await;
    }
}
