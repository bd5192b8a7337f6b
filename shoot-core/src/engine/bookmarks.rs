//! Bookmark use cases: a user's private saved messages with an optional note.

use std::collections::HashMap;

use crate::bookmarks::Bookmark;
use crate::engine::ChatEngine;
use crate::error::{ErrorCode, Result, fail};
use crate::ids::{MessageId, RoomId, UserId};
use crate::messages::Message;

/// Longest bookmark note, in characters.
pub const BOOKMARK_NOTE_MAX: usize = 200;

/// A bookmark with the message it saves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookmarkEntry {
    /// The bookmark.
    pub bookmark: Bookmark,
    /// The saved message as it is now (a tombstone if deleted since).
    pub message: Message,
}

impl ChatEngine {
    /// Bookmarks a message of a room the caller participates in (`MESSAGE_NOT_FOUND`
    /// otherwise; a deleted one is `MESSAGE_DELETED`), with an optional note (trimmed, empty = none, at most 200 characters:
    /// `VALIDATION_FAILED`). Bookmarking again replaces the note.
    pub async fn bookmark_message(
        &self,
        actor: UserId,
        message_id: MessageId,
        note: Option<String>,
    ) -> Result<Bookmark> {
        let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > BOOKMARK_NOTE_MAX)
        {
            return fail(
                ErrorCode::ValidationFailed,
                format!("note must be at most {BOOKMARK_NOTE_MAX} characters"),
            );
        }
        let message = self.bookmarkable_message(actor, message_id).await?;
        let bookmark = Bookmark {
            user_id: actor,
            message_id,
            room_id: message.room_id,
            note,
            created_at: self.now(),
        };
        self.p().bookmarks.upsert_bookmark(&bookmark).await?;
        Ok(bookmark)
    }

    /// Removes the caller's bookmark on the message (`BOOKMARK_NOT_FOUND` if none).
    pub async fn remove_bookmark(&self, actor: UserId, message_id: MessageId) -> Result<()> {
        if !self
            .p()
            .bookmarks
            .delete_bookmark(actor, message_id)
            .await?
        {
            return fail(ErrorCode::BookmarkNotFound, "bookmark not found");
        }
        Ok(())
    }

    /// The caller's bookmarks, newest first, optionally of one room and/or whose note or
    /// message text contains `q` (case-insensitive). Bookmarks of rooms the caller has left
    /// are still listed (they are the caller's own copy); bookmarks whose message no longer
    /// exists are skipped.
    pub async fn bookmarks(
        &self,
        actor: UserId,
        room: Option<RoomId>,
        q: Option<&str>,
    ) -> Result<Vec<BookmarkEntry>> {
        let bookmarks = self.p().bookmarks.bookmarks_of(actor, room).await?;
        if bookmarks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<MessageId> = bookmarks.iter().map(|b| b.message_id).collect();
        let mut messages: HashMap<MessageId, Message> = self
            .p()
            .messages
            .get_messages(&ids)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let needle = q.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
        let matches = |b: &Bookmark, m: &Message| match &needle {
            None => true,
            Some(n) => {
                m.text.to_lowercase().contains(n)
                    || b.note
                        .as_ref()
                        .is_some_and(|note| note.to_lowercase().contains(n))
            }
        };
        Ok(bookmarks
            .into_iter()
            .filter_map(|bookmark| {
                let message = messages.remove(&bookmark.message_id)?;
                matches(&bookmark, &message).then_some(BookmarkEntry { bookmark, message })
            })
            .collect())
    }

    /// The message if it exists and the caller participates in its room; otherwise
    /// `MESSAGE_NOT_FOUND` (not revealing messages of other rooms). Deleted: `MESSAGE_DELETED`.
    async fn bookmarkable_message(&self, actor: UserId, id: MessageId) -> Result<Message> {
        let Some(message) = self.p().messages.get_message(id).await? else {
            return fail(ErrorCode::MessageNotFound, "message not found");
        };
        if self
            .p()
            .rooms
            .participant(message.room_id, actor)
            .await?
            .is_none()
        {
            return fail(ErrorCode::MessageNotFound, "message not found");
        }
        if message.is_deleted {
            return fail(ErrorCode::MessageDeleted, "message was deleted");
        }
        Ok(message)
    }
}
