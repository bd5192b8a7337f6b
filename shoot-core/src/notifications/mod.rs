//! Notifications: friend requests, mentions, replies, reactions and membership changes.

use async_trait::async_trait;

use crate::error::PortResult;
use crate::ids::{MessageId, NotificationId, RoomId, UserId};
use crate::time::Timestamp;

/// Kind of notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum NotificationType {
    /// Someone sent me a friend request.
    FriendRequest,
    /// Someone accepted my friend request.
    FriendAccepted,
    /// Someone mentioned me.
    Mention,
    /// Someone replied in a thread I started.
    Reply,
    /// Someone reacted to my message.
    Reaction,
    /// I was added to a room.
    AddedToRoom,
    /// I was removed from a room.
    RemovedFromRoom,
}

impl NotificationType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::FriendRequest => "FRIEND_REQUEST",
            NotificationType::FriendAccepted => "FRIEND_ACCEPTED",
            NotificationType::Mention => "MENTION",
            NotificationType::Reply => "REPLY",
            NotificationType::Reaction => "REACTION",
            NotificationType::AddedToRoom => "ADDED_TO_ROOM",
            NotificationType::RemovedFromRoom => "REMOVED_FROM_ROOM",
        }
    }
}

/// A notification for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Notification {
    /// Id.
    pub id: NotificationId,
    /// Recipient.
    pub user_id: UserId,
    /// Kind.
    pub kind: NotificationType,
    /// Who caused it.
    pub actor_id: Option<UserId>,
    /// Related room.
    pub room_id: Option<RoomId>,
    /// Related message.
    pub message_id: Option<MessageId>,
    /// Human-readable text.
    pub text: String,
    /// Whether read.
    pub is_read: bool,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Storage of notifications.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Inserts notifications.
    async fn insert_notifications(&self, notifications: &[Notification]) -> PortResult<()>;

    /// Notifications of `user`, newest first.
    async fn notifications_of(
        &self,
        user: UserId,
        limit: usize,
        offset: usize,
    ) -> PortResult<Vec<Notification>>;

    /// Number of unread notifications of `user`.
    async fn unread_notification_count(&self, user: UserId) -> PortResult<u64>;

    /// Marks one of `user`'s notifications read; `false` if `user` has no such notification.
    async fn mark_notification_read(&self, user: UserId, id: NotificationId) -> PortResult<bool>;

    /// Marks all of `user`'s notifications read; returns how many changed.
    async fn mark_all_notifications_read(&self, user: UserId) -> PortResult<u64>;

    /// Deletes one of `user`'s notifications; `false` if `user` has no such notification.
    async fn delete_notification(&self, user: UserId, id: NotificationId) -> PortResult<bool>;
}
