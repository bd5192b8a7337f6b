//! Reconnect sync: exactly the messages a client missed, by sequence.
//!
//! Sync reads the message store. A message is stored shortly after it became durable in the
//! log (`SENT_TO_KAFKA` → `SAVED`, normally a few milliseconds). So that a client reconnecting
//! in that window does not miss it, sync first waits (bounded by [`SYNC_CATCH_UP`]) until the
//! store holds every message this instance made durable in the room, and `latest_seq` is never
//! lower than that seq: if the store is slower than the bound, the reply says so (`has_more`
//! with `latest_seq` past the last returned message) and the client syncs again. Messages made
//! durable by another instance are covered by the same rule on the client side: a seq gap in
//! what it received (live or by sync) means "sync again after the last contiguous seq".

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::ChatEngine;
use crate::engine::group_read::GroupRead;
use crate::engine::messages::{MessageRecord, records};
use crate::engine::pipeline::HistoryPage;
use crate::error::{Error, ErrorCode, Result};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::{HistoryQuery, Message};
use crate::rooms::Participant;
use tracing::warn;

/// How long sync waits for the store to catch up with the log.
pub(crate) const SYNC_CATCH_UP: Duration = Duration::from_secs(2);

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
    /// The highest seq of the room known to be durable (stored, or appended by this instance).
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
        let (stored, durable, progressing) = self.wait_for_store(room).await?;
        let latest_seq = stored.max(durable.unwrap_or(Seq::ZERO));
        let page_limit = query.limit - 1;
        let mut messages = self.history_page(room, query).await?;
        let last_seen = messages
            .iter()
            .map(|m| m.seq)
            .chain(cursor)
            .max()
            .unwrap_or(Seq::ZERO);
        // The store lagged behind the log for longer than the catch-up bound but is catching
        // up: tell the client there is more after what it got, so it syncs again. A store
        // that made no progress at all (a seq that will never be stored, such as a retracted
        // duplicate) must not make clients sync in a loop.
        let store_lagging =
            req.direction == SyncDirection::After && latest_seq > last_seen && progressing;
        let has_more = messages.len() > page_limit || store_lagging;
        if has_more {
            if newest_first_trim {
                messages.drain(..messages.len() - page_limit);
            } else {
                messages.truncate(page_limit);
            }
        }
        // Combined with the other syncs meanwhile (a reconnect storm syncs every room at once).
        let participants = self.participants_combined(room).await?;
        Ok(SyncPage {
            room_id: room,
            messages: records(messages, &participants),
            has_more,
            latest_seq,
        })
    }

    /// The participants of `room`, read together with the other rooms asked for meanwhile
    /// (one [`RoomStore::participants_of`] for a burst of syncs or presence updates).
    ///
    /// [`RoomStore::participants_of`]: crate::rooms::RoomStore::participants_of
    pub(crate) async fn participants_combined(&self, room: RoomId) -> Result<Vec<Participant>> {
        self.runtime()
            .participants
            .read(
                vec![room],
                |rooms: Vec<RoomId>| async move { Ok(self.p().rooms.participants_of(&rooms).await?) },
                |p: &Participant| p.room_id,
            )
            .await
    }

    /// Waits until the store holds every message known to be durable in `room` — what this
    /// instance appended, and what the log reports (which covers appends before a restart) —
    /// at most [`SYNC_CATCH_UP`]; returns the store's highest seq, that durable seq, and
    /// whether the store advanced while it was waited for.
    async fn wait_for_store(&self, room: RoomId) -> Result<(Seq, Option<Seq>, bool)> {
        let own = self.runtime().durable_seq(room);
        let logged = match self.logged_seq(room).await {
            Ok(seq) => seq,
            Err(e) => {
                warn!(room_id = %room, error = %e, "reading the log's durable seq failed");
                None
            }
        };
        let target = own.max(logged);
        let deadline = self.now().plus(SYNC_CATCH_UP);
        let mut pause = Duration::from_millis(2);
        let mut first: Option<Seq> = None;
        loop {
            let stored = self.stored_seq(room).await?;
            let initial = *first.get_or_insert(stored);
            if target.is_none_or(|t| stored >= t) || self.now() >= deadline {
                return Ok((stored, target, stored > initial));
            }
            self.p().clock.sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// A page of `room`'s history, read together with the other syncs' pages meanwhile (one
    /// [`MessageStore::histories`](crate::messages::MessageStore::histories) per round).
    async fn history_page(&self, room: RoomId, query: HistoryQuery) -> Result<Vec<Message>> {
        let found = self
            .runtime()
            .pages
            .read(
                vec![(room, query)],
                |mut wanted: Vec<(RoomId, HistoryQuery)>| async move {
                    wanted.sort_unstable_by_key(|(room, q)| (*room, q.before, q.after, q.limit));
                    wanted.dedup();
                    let pages = self.p().messages.histories(&wanted).await?;
                    Ok(wanted
                        .into_iter()
                        .zip(pages.into_iter().map(Arc::new))
                        .collect())
                },
                |(key, _): &HistoryPage| *key,
            )
            .await?;
        Ok(found
            .into_iter()
            .next()
            .map(|(_, page)| Arc::unwrap_or_clone(page))
            .unwrap_or_default())
    }

    /// The store's highest seq of `room`, read together with the other syncs' rooms meanwhile
    /// (one [`MessageStore::max_seqs`](crate::messages::MessageStore::max_seqs) per round).
    async fn stored_seq(&self, room: RoomId) -> Result<Seq> {
        let fetch =
            |rooms: Vec<RoomId>| async move { Ok(self.p().messages.max_seqs(&rooms).await?) };
        let seq = seq_of(&self.runtime().store_seqs, room, fetch).await?;
        Ok(seq.unwrap_or(Seq::ZERO))
    }

    /// The log's durable seq of `room`, read together with the other syncs' rooms meanwhile
    /// (one [`MessageLog::durable_seqs`](crate::ports::MessageLog::durable_seqs) per round).
    async fn logged_seq(&self, room: RoomId) -> Result<Option<Seq>> {
        let fetch =
            |rooms: Vec<RoomId>| async move { Ok(self.p().log.durable_seqs(&rooms).await?) };
        seq_of(&self.runtime().log_seqs, room, fetch).await
    }
}

/// `room`'s entry of a combined per-room seq look-up (`fetch` answers `(room, seq)` pairs).
async fn seq_of<F>(
    reads: &GroupRead<RoomId, (RoomId, Seq)>,
    room: RoomId,
    fetch: impl Fn(Vec<RoomId>) -> F,
) -> Result<Option<Seq>>
where
    F: Future<Output = Result<Vec<(RoomId, Seq)>>>,
{
    let found = reads.read(vec![room], fetch, |(room, _)| *room).await?;
    Ok(found.first().map(|(_, seq)| *seq))
}
