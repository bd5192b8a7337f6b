//! [`MemoryBookmarkStore`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::bookmarks::{Bookmark, BookmarkStore};
use crate::error::PortResult;
use crate::ids::{MessageId, RoomId, UserId};

/// In-memory [`BookmarkStore`].
#[derive(Default)]
pub struct MemoryBookmarkStore {
    state: Mutex<BTreeMap<(UserId, MessageId), Bookmark>>,
}

impl MemoryBookmarkStore {
    /// An empty store.
    pub fn new() -> MemoryBookmarkStore {
        MemoryBookmarkStore::default()
    }
}

#[async_trait]
impl BookmarkStore for MemoryBookmarkStore {
    async fn upsert_bookmark(&self, bookmark: &Bookmark) -> PortResult<()> {
        lock(&self.state).insert((bookmark.user_id, bookmark.message_id), bookmark.clone());
        Ok(())
    }

    async fn delete_bookmark(&self, user: UserId, message: MessageId) -> PortResult<bool> {
        Ok(lock(&self.state).remove(&(user, message)).is_some())
    }

    async fn bookmarks_of(&self, user: UserId, room: Option<RoomId>) -> PortResult<Vec<Bookmark>> {
        let st = lock(&self.state);
        let mut out: Vec<Bookmark> = st
            .range((user, MessageId(i64::MIN))..=(user, MessageId(i64::MAX)))
            .map(|(_, b)| b)
            .filter(|b| room.is_none_or(|r| b.room_id == r))
            .cloned()
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse((b.created_at, b.message_id)));
        Ok(out)
    }
}
