//! Identifier newtypes.
//!
//! Every entity is identified by a 63-bit integer produced by an [`IdGenerator`]
//! (snowflake-style in production, sequential in tests). On the wire ids are strings.
//!
//! [`IdGenerator`]: crate::ports::IdGenerator

use std::fmt;
use std::str::FromStr;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse::<i64>().map($name)
            }
        }

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                $name(v)
            }
        }
    };
}

define_id!(
    /// A user account.
    UserId
);
define_id!(
    /// A chat room (direct or group).
    RoomId
);
define_id!(
    /// A message; also its `persistedId` once saved.
    MessageId
);
define_id!(
    /// A friend request.
    FriendRequestId
);
define_id!(
    /// A private friend group (label) owned by one user.
    FriendGroupId
);
define_id!(
    /// A scheduled message.
    ScheduleId
);
define_id!(
    /// A notification.
    NotificationId
);

/// Per-room message sequence number: 1, 2, 3, … without gaps, in delivery order.
///
/// `Seq(0)` means "before the first message" (a read cursor that has read nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Seq(pub i64);

impl Seq {
    /// The cursor position before any message.
    pub const ZERO: Seq = Seq(0);

    /// The next sequence number.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
