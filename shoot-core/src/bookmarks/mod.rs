//! Bookmarks: a user's private saved messages with an optional note.

use async_trait::async_trait;

use crate::error::PortResult;
use crate::ids::{MessageId, RoomId, UserId};
use crate::time::Timestamp;

/// A saved message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Bookmark {
    /// Owner.
    pub user_id: UserId,
    /// Message.
    pub message_id: MessageId,
    /// The message's room.
    pub room_id: RoomId,
    /// Private note.
    pub note: Option<String>,
    /// Creation (or last note change) time.
    pub created_at: Timestamp,
}

/// Storage of bookmarks.
#[async_trait]
pub trait BookmarkStore: Send + Sync + 'static {
    /// Inserts or replaces (the note of) `user`'s bookmark on the message.
    async fn upsert_bookmark(&self, bookmark: &Bookmark) -> PortResult<()>;

    /// Deletes `user`'s bookmark on the message; returns whether it existed.
    async fn delete_bookmark(&self, user: UserId, message: MessageId) -> PortResult<bool>;

    /// `user`'s bookmarks, optionally only of one room, newest first.
    async fn bookmarks_of(&self, user: UserId, room: Option<RoomId>) -> PortResult<Vec<Bookmark>>;
}
