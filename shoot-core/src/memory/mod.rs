//! In-memory reference implementations of every port: deterministic, always compiled, used
//! by the engine's tests and by the embedded (single-process) mode.
//!
//! Each store keeps its state behind one `std::sync` lock, so every method is atomic. The
//! time-dependent ports ([`MemoryLocks`], [`MemoryEphemeral`], [`MemoryLog`] polls,
//! [`SnowflakeIds`]) read a [`Clock`]; with a [`ManualClock`] tests control time exactly.
//!
//! ```
//! use std::sync::Arc;
//! use shoot_core::memory::{ManualClock, MemoryStores};
//! use shoot_core::ports::Clock;
//!
//! let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_2024());
//! let stores = MemoryStores::new(clock.clone());
//! assert!(stores.log.dead_letters().is_empty());
//! ```

mod bookmarks;
pub mod broadcast;
mod bus;
mod clock;
mod ids;
mod locks;
mod log;
mod messages;
mod notifications;
mod rooms;
mod schedule;
mod social;
mod users;

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use bookmarks::MemoryBookmarkStore;
pub use bus::{
    DEFAULT_BUS_CAPACITY, DEFAULT_USER_FEED_CAPACITY, DEFAULT_USER_TOPIC_CAPACITY, MemoryBus,
};
pub use clock::ManualClock;
pub use ids::{SequentialIds, SnowflakeIds};
pub use locks::{MemoryEphemeral, MemoryLocks};
pub use log::{DEFAULT_PARTITIONS, MemoryLog};
pub use messages::MemoryMessageStore;
pub use notifications::MemoryNotificationStore;
pub use rooms::MemoryRoomStore;
pub use schedule::MemoryScheduleStore;
pub use social::MemorySocialStore;
pub use users::MemoryUserStore;

use crate::engine::Ports;
use crate::ports::{Clock, Spawner};

/// Locks a mutex, ignoring poisoning: every critical section leaves its state consistent
/// before anything that could panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// Every memory port with its concrete type, for tests that need the extras (the log's
/// dead letters, the bus's subscriber count…).
#[derive(Clone)]
pub struct MemoryStores {
    /// Users.
    pub users: Arc<MemoryUserStore>,
    /// Social graph.
    pub social: Arc<MemorySocialStore>,
    /// Rooms.
    pub rooms: Arc<MemoryRoomStore>,
    /// Messages.
    pub messages: Arc<MemoryMessageStore>,
    /// Bookmarks.
    pub bookmarks: Arc<MemoryBookmarkStore>,
    /// Schedules.
    pub schedules: Arc<MemoryScheduleStore>,
    /// Notifications.
    pub notifications: Arc<MemoryNotificationStore>,
    /// Event bus.
    pub bus: Arc<MemoryBus>,
    /// Message log.
    pub log: Arc<MemoryLog>,
    /// Locks.
    pub locks: Arc<MemoryLocks>,
    /// Ephemeral state.
    pub ephemeral: Arc<MemoryEphemeral>,
    /// Ids (snowflake, node 0).
    pub ids: Arc<SnowflakeIds>,
}

impl MemoryStores {
    /// Fresh, empty memory ports whose time-dependent parts run on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryStores {
        MemoryStores {
            users: Arc::new(MemoryUserStore::new()),
            social: Arc::new(MemorySocialStore::new()),
            rooms: Arc::new(MemoryRoomStore::new()),
            messages: Arc::new(MemoryMessageStore::new()),
            bookmarks: Arc::new(MemoryBookmarkStore::new()),
            schedules: Arc::new(MemoryScheduleStore::new()),
            notifications: Arc::new(MemoryNotificationStore::new()),
            bus: Arc::new(MemoryBus::new()),
            log: Arc::new(MemoryLog::new(clock.clone())),
            locks: Arc::new(MemoryLocks::new(clock.clone())),
            ephemeral: Arc::new(MemoryEphemeral::new(clock.clone())),
            ids: Arc::new(SnowflakeIds::new(clock, 0)),
        }
    }

    /// The engine's [`Ports`] over these stores (no link fetcher).
    pub fn ports(&self, clock: Arc<dyn Clock>, spawner: Arc<dyn Spawner>) -> Ports {
        Ports {
            users: self.users.clone(),
            social: self.social.clone(),
            rooms: self.rooms.clone(),
            messages: self.messages.clone(),
            bookmarks: self.bookmarks.clone(),
            schedules: self.schedules.clone(),
            notifications: self.notifications.clone(),
            bus: self.bus.clone(),
            log: self.log.clone(),
            locks: self.locks.clone(),
            ephemeral: self.ephemeral.clone(),
            clock,
            ids: self.ids.clone(),
            spawner,
            link_fetcher: None,
        }
    }
}

/// Every port in memory, over `clock` and `spawner`, with snowflake ids (node 0) and no
/// link fetcher.
pub fn memory_ports(clock: Arc<dyn Clock>, spawner: Arc<dyn Spawner>) -> Ports {
    MemoryStores::new(clock.clone()).ports(clock, spawner)
}
