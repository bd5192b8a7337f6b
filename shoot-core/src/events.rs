//! Events the engine publishes on the [`EventBus`](crate::ports::EventBus): what a server
//! turns into STOMP and SSE frames.

use std::sync::Arc;

use crate::identity::UserStatus;
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::{Message, MessageStatus};
use crate::notifications::Notification;
use crate::rooms::{Role, Room};
use crate::time::Timestamp;

/// Where an event is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Topic {
    /// Everyone watching a room.
    Room(RoomId),
    /// Every session of one user.
    User(UserId),
}

/// A status transition of one message, for its sender and the room.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StatusUpdate {
    /// Room.
    pub room_id: RoomId,
    /// Sender.
    pub sender_id: UserId,
    /// The sender's idempotency key.
    pub temp_id: Option<Arc<str>>,
    /// The message id (the `persistedId` once SAVED); absent when rejected before an id.
    pub message_id: Option<MessageId>,
    /// Sequence, once assigned.
    pub seq: Option<Seq>,
    /// New status.
    pub status: MessageStatus,
    /// Stable error code when FAILED.
    pub error_code: Option<String>,
    /// Human-readable reason when FAILED.
    pub error_message: Option<String>,
    /// When the transition happened.
    pub at: Timestamp,
}

/// What changed about an existing message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MessageChange {
    /// Text edited.
    Edited,
    /// Soft-deleted.
    Deleted,
    /// A reaction added or removed.
    Reaction {
        /// Reaction code.
        code: String,
        /// Who.
        user_id: UserId,
        /// Added (true) or removed (false).
        added: bool,
    },
    /// Pinned.
    Pinned,
    /// Unpinned.
    Unpinned,
    /// Link preview filled in.
    PreviewAdded,
    /// A reply was added to this thread root (reply count and last reply changed).
    ThreadUpdated,
}

/// What changed about a room.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RoomChange {
    /// Created (sent to the participants' user topics).
    Created,
    /// Title or announcement changed.
    Updated,
    /// Participants joined.
    ParticipantsAdded(Vec<UserId>),
    /// A participant left or was removed.
    ParticipantRemoved(UserId),
    /// A participant's role changed (ownership hand-over).
    RoleChanged(UserId, Role),
    /// The favourite flag changed (user topic of that user only).
    FavoriteChanged(bool),
    /// Deleted (the last participant left).
    Deleted,
}

/// An event on a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Event {
    /// Room topic: a new message (thread replies too; they carry `thread_id`).
    MessageCreated(Message),
    /// Room topic: an existing message changed; carries its new state.
    MessageChanged {
        /// The message after the change.
        message: Message,
        /// What changed.
        change: MessageChange,
        /// Who changed it.
        by: UserId,
    },
    /// Room topic and the sender's user topic: a status transition.
    Status(StatusUpdate),
    /// Room topic: someone started or stopped typing.
    Typing {
        /// Room.
        room_id: RoomId,
        /// Who.
        user_id: UserId,
        /// Typing or stopped.
        typing: bool,
        /// When.
        at: Timestamp,
    },
    /// Room topic (and the reader's user topic): a read cursor moved.
    ReadReceipt {
        /// Room.
        room_id: RoomId,
        /// Reader.
        user_id: UserId,
        /// New cursor.
        last_read_seq: Seq,
        /// When.
        at: Timestamp,
    },
    /// Room topic: who is active (online) in the room.
    ActiveUsers {
        /// Room.
        room_id: RoomId,
        /// Online participants, ascending.
        user_ids: Vec<UserId>,
    },
    /// Room topic and the affected users' topics: the room itself changed.
    RoomChanged {
        /// The room after the change.
        room: Room,
        /// What changed.
        change: RoomChange,
        /// Who did it (none for system changes).
        by: Option<UserId>,
    },
    /// User topic: a room-list entry changed (new message, read state).
    RoomUpdate {
        /// Room.
        room_id: RoomId,
        /// Unread count for this user.
        unread_count: u64,
        /// Latest message of the room (one copy shared by every participant's update).
        last_message: Option<Arc<Message>>,
        /// When.
        at: Timestamp,
    },
    /// User topic: a new notification.
    Notification(Notification),
    /// User topics of friends and room topics: a user's status changed.
    UserStatusChanged {
        /// Who.
        user_id: UserId,
        /// New status.
        status: UserStatus,
        /// Last seen, when going offline.
        last_seen_at: Option<Timestamp>,
    },
}
