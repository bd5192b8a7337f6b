//! Reconnect sync: exactly the messages a client missed, by sequence.
//!
//! Sync reads the message store. A message is visible there once its `SAVED` status was
//! emitted; between `SENT_TO_KAFKA` and `SAVED` (normally a few milliseconds) it has a seq but
//! is not yet returned by sync. Clients track seqs: a gap in what they received (live or by
//! sync) means "sync again after the last contiguous seq".

use crate::engine::ChatEngine;
use crate::engine::messages::{MessageRecord, records};
use crate::error::{Error, ErrorCode, Result};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::HistoryQuery;

/// Which page to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncDirection {
    /// The newest `sync_initial_limit` messages.
    Initial,
    /// The `sync_page_limit` messages before the cursor.
    Before,
    /// The `sync_page_limit` messages after the cursor.
    After,
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// Room.
    pub room_id: RoomId,
    /// Cursor: the last seq the client has.
    pub last_seq: Option<Seq>,
    /// Cursor as a message id (used when `last_seq` is absent).
    pub last_message_id: Option<MessageId>,
    /// Direction.
    pub direction: SyncDirection,
}

/// A sync reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncPage {
    /// Room.
    pub room_id: RoomId,
    /// Messages, oldest → newest.
    pub messages: Vec<MessageRecord>,
    /// Whether more messages exist in the requested direction.
    pub has_more: bool,
    /// The highest stored seq of the room.
    pub latest_seq: Seq,
}

impl ChatEngine {
    /// The page of messages the client asks for (see [`SyncDirection`]).
    pub async fn sync(&self, actor: UserId, req: SyncRequest) -> Result<SyncPage> {
        self.require_participant(actor, req.room_id).await?;
        let room = req.room_id;
        let cursor = match (req.last_seq, req.last_message_id) {
            (Some(s), _) => Some(s),
            (None, Some(id)) => Some(
                self.p()
                    .messages
                    .get_message(id)
                    .await?
                    .filter(|m| m.room_id == room)
                    .ok_or_else(|| Error::new(ErrorCode::MessageNotFound, "message not found"))?
                    .seq,
            ),
            (None, None) => None,
        };
        let limits = self.limits();
        let (query, newest_first_trim) = match (req.direction, cursor) {
            (SyncDirection::After, c) => (
                HistoryQuery {
                    before: None,
                    after: Some(c.unwrap_or(Seq::ZERO)),
                    limit: limits.sync_page_limit + 1,
                },
                false,
            ),
            (SyncDirection::Before, Some(c)) => (
                HistoryQuery {
                    before: Some(c),
                    after: None,
                    limit: limits.sync_page_limit + 1,
                },
                true,
            ),
            (SyncDirection::Initial, _) | (SyncDirection::Before, None) => (
                HistoryQuery {
                    before: None,
                    after: None,
                    limit: limits.sync_initial_limit + 1,
                },
                true,
            ),
        };
        let page_limit = query.limit - 1;
        let mut messages = self.p().messages.history(room, query).await?;
        let has_more = messages.len() > page_limit;
        if has_more {
            if newest_first_trim {
                messages.drain(..messages.len() - page_limit);
            } else {
                messages.truncate(page_limit);
            }
        }
        let latest_seq = self.p().messages.max_seq(room).await?;
        let participants = self.p().rooms.participants(room).await?;
        Ok(SyncPage {
            room_id: room,
            messages: records(messages, &participants),
            has_more,
            latest_seq,
        })
    }
}
