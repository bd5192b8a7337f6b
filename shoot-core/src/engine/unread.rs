//! Unread counts of the room-list updates pushed after each persisted batch, kept up to date
//! incrementally instead of being counted from the store for every participant every time.
//!
//! Counting from the store costs O(unread messages) per participant; a room whose members
//! don't read grows that cost with every message. The persistence worker instead remembers,
//! per (room, user), the exact count it last computed and the cursor and seq it was computed
//! at, and adds the new messages of each batch to it. An entry is used only while it is
//! provably current:
//!
//! - the participant's read cursor is still the one the count was computed for (a read moves
//!   it and forces an exact count);
//! - the new messages continue the entry's seq without a gap (a message this worker did not
//!   see — a dead-lettered record, another instance's partition — forces an exact count);
//! - the entry is younger than [`EXACT_EVERY`]: deletes on other instances are not seen here,
//!   so every count is exact again after at most that long. Deletes on this instance drop the
//!   room's entries at once ([`UnreadCache::forget_room`]).
//!
//! `GET /chatrooms` and `mark_read` always count from the store.

use std::sync::Mutex;
use std::time::Duration;

use crate::engine::pipeline::lock;
use crate::ids::{RoomId, Seq, UserId};
use crate::messages::Message;
use crate::time::Timestamp;
use foldhash::HashMap;

/// Longest time an incrementally maintained count is trusted before it is counted again.
pub(crate) const EXACT_EVERY: Duration = Duration::from_secs(5);
/// Entries kept at most; beyond it the cache starts over (the counts are recomputed).
const MAX_ENTRIES: usize = 200_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The read cursor the count is relative to.
    cursor: Seq,
    /// The highest seq the count includes.
    upto: Seq,
    count: u64,
    /// When the count was last exact.
    exact_at: Timestamp,
}

/// Per (room, user) unread counts maintained by the persistence worker.
#[derive(Default)]
pub(crate) struct UnreadCache {
    entries: Mutex<HashMap<(RoomId, UserId), Entry>>,
}

impl UnreadCache {
    /// The count of `user` in `room` after `fresh` (newly stored messages of the room in seq
    /// order, non-empty) if the remembered count is current, updating it; `None` when it must
    /// be counted from the store.
    pub(crate) fn advance(
        &self,
        room: RoomId,
        user: UserId,
        cursor: Seq,
        fresh: &[&Message],
        now: Timestamp,
    ) -> Option<u64> {
        let first = fresh.first()?.seq;
        let last = fresh.last()?.seq;
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(&(room, user))?;
        let current = entry.cursor == cursor
            && Seq(entry.upto.0 + 1) == first
            && now.since(entry.exact_at) < EXACT_EVERY
            && is_contiguous(fresh);
        if !current {
            return None;
        }
        let added = fresh
            .iter()
            .filter(|m| m.seq > cursor && m.sender_id != user && !m.is_deleted)
            .count() as u64;
        entry.count += added;
        entry.upto = last;
        Some(entry.count)
    }

    /// Remembers an exact count of `user` in `room` for `cursor`, including every message up
    /// to `upto`.
    pub(crate) fn set_exact(
        &self,
        room: RoomId,
        user: UserId,
        cursor: Seq,
        upto: Seq,
        count: u64,
        now: Timestamp,
    ) {
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&(room, user)) {
            entries.clear();
        }
        entries.insert(
            (room, user),
            Entry {
                cursor,
                upto,
                count,
                exact_at: now,
            },
        );
    }

    /// Drops every count of `room` (a message of it was deleted or changed room membership).
    pub(crate) fn forget_room(&self, room: RoomId) {
        lock(&self.entries).retain(|(r, _), _| *r != room);
    }
}

/// Whether the seqs of `fresh` follow each other without a gap.
fn is_contiguous(fresh: &[&Message]) -> bool {
    fresh.windows(2).all(|w| w[1].seq.0 == w[0].seq.0 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;
    use crate::messages::MessageStatus;

    fn msg(seq: i64, sender: i64) -> Message {
        Message {
            seq: Seq(seq),
            status: MessageStatus::Saved,
            ..Message::new(MessageId(seq), RoomId(1), UserId(sender), "x", Timestamp(0))
        }
    }

    const ROOM: RoomId = RoomId(1);
    const ME: UserId = UserId(7);

    #[test]
    fn counts_only_others_messages_after_the_cursor() {
        let cache = UnreadCache::default();
        cache.set_exact(ROOM, ME, Seq(2), Seq(4), 2, Timestamp(0));
        let (a, b, c) = (msg(5, 1), msg(6, 7), msg(7, 2));
        assert_eq!(
            cache.advance(ROOM, ME, Seq(2), &[&a, &b, &c], Timestamp(10)),
            Some(4)
        );
        let d = msg(8, 3);
        assert_eq!(
            cache.advance(ROOM, ME, Seq(2), &[&d], Timestamp(20)),
            Some(5)
        );
    }

    #[test]
    fn a_moved_cursor_a_gap_or_an_old_count_forces_an_exact_count() {
        let cache = UnreadCache::default();
        cache.set_exact(ROOM, ME, Seq(2), Seq(4), 2, Timestamp(0));
        let (gap, next) = (msg(6, 1), msg(5, 1));
        assert_eq!(
            cache.advance(ROOM, ME, Seq(3), &[&next], Timestamp(1)),
            None
        );
        assert_eq!(cache.advance(ROOM, ME, Seq(2), &[&gap], Timestamp(1)), None);
        let late = Timestamp(EXACT_EVERY.as_millis() as i64);
        assert_eq!(cache.advance(ROOM, ME, Seq(2), &[&next], late), None);
        assert_eq!(
            cache.advance(ROOM, ME, Seq(2), &[&next, &gap], Timestamp(1)),
            Some(4)
        );
        cache.forget_room(ROOM);
        let after = msg(7, 1);
        assert_eq!(
            cache.advance(ROOM, ME, Seq(2), &[&after], Timestamp(2)),
            None
        );
    }
}
