//! # shoot-core
//!
//! The Shoot chat engine: pure domain logic and the ports it needs, with an in-memory
//! implementation of every port. No I/O, no runtime: adapters and the server bring those.
//!
//! Bounded contexts: [`identity`], [`social`], [`rooms`], [`messages`], [`schedule`],
//! [`notifications`], [`bookmarks`]. Infrastructure ports: [`ports`]. Events published on
//! the bus: [`events`]. Business limits: [`limits`].

pub mod bookmarks;
pub mod engine;
pub mod error;
pub mod events;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod memory;
pub mod messages;
pub mod notifications;
pub mod ports;
pub mod rooms;
pub mod schedule;
pub mod social;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;

pub use engine::{ChatEngine, EngineConfig, Ports};
pub use error::{Error, ErrorCode, ErrorKind, PortError, PortResult, Result};
pub use ids::{
    FriendGroupId, FriendRequestId, MessageId, NotificationId, RoomId, ScheduleId, Seq, UserId,
};
pub use limits::Limits;
pub use time::Timestamp;
