//! Read state: per (room, user) read cursor and unread counts.

use std::sync::Arc;

use crate::engine::ChatEngine;
use crate::error::{Error, ErrorCode, PortError, Result};
use crate::events::{Event, Topic};
use crate::ids::{MessageId, RoomId, Seq, UserId};

/// What `mark_read` marks as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadTarget {
    /// Everything in the room.
    All,
    /// Everything up to and including this sequence (clamped to the latest message).
    Seq(Seq),
    /// Everything up to and including this message.
    Message(MessageId),
}

impl ChatEngine {
    /// Moves the caller's read cursor forward (never back) and returns the cursor after the
    /// call. Publishes a `ReadReceipt` on the room topic and a `RoomUpdate` with the new unread
    /// count on the caller's user topic (for their other sessions).
    pub async fn mark_read(&self, actor: UserId, room: RoomId, target: ReadTarget) -> Result<Seq> {
        self.require_participant(actor, room).await?;
        let latest = self.p().messages.max_seq(room).await?;
        let seq = match target {
            ReadTarget::All => latest,
            ReadTarget::Seq(s) => s.min(latest),
            ReadTarget::Message(id) => {
                let m = self
                    .p()
                    .messages
                    .get_message(id)
                    .await?
                    .filter(|m| m.room_id == room)
                    .ok_or_else(|| Error::new(ErrorCode::MessageNotFound, "message not found"))?;
                m.seq
            }
        };
        let cursor = match self
            .p()
            .rooms
            .advance_read_cursor(room, actor, seq.max(Seq::ZERO))
            .await
        {
            Ok(c) => c,
            Err(PortError::NotFound) => {
                return Err(Error::new(
                    ErrorCode::NotRoomParticipant,
                    "not a participant of this room",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let at = self.now();
        self.publish(
            Topic::Room(room),
            Event::ReadReceipt {
                room_id: room,
                user_id: actor,
                last_read_seq: cursor,
                at,
            },
        )
        .await;
        let unread_count = self
            .p()
            .messages
            .unread_counts(actor, &[(room, cursor)])
            .await?;
        let last_message = match self
            .p()
            .rooms
            .get_room(room)
            .await?
            .and_then(|r| r.last_message_id)
        {
            Some(id) => self.p().messages.get_message(id).await?.map(Arc::new),
            None => None,
        };
        self.publish(
            Topic::User(actor),
            Event::RoomUpdate {
                room_id: room,
                unread_count: unread_count.first().copied().unwrap_or(0),
                last_message,
                at,
            },
        )
        .await;
        Ok(cursor)
    }

    /// Unread count of every room of the caller (one store round trip for the counts).
    pub async fn unread_counts(&self, actor: UserId) -> Result<Vec<(RoomId, u64)>> {
        let rows = self.p().rooms.rooms_of(actor).await?;
        let cursors: Vec<(RoomId, Seq)> =
            rows.iter().map(|(r, p)| (r.id, p.last_read_seq)).collect();
        if cursors.is_empty() {
            return Ok(Vec::new());
        }
        let counts = self.p().messages.unread_counts(actor, &cursors).await?;
        Ok(cursors.into_iter().map(|(r, _)| r).zip(counts).collect())
    }
}
