//! What the send path needs to know about a room — its type and participants — cached
//! briefly, so that a busy room costs no store round trips per message for authorisation.
//!
//! Invalidation: every membership or room change this instance makes publishes
//! `RoomChanged` on the room's topic, and [`ChatEngine::publish`] drops the room's entry then.
//! Changes made by *another* instance are seen after at most [`SEND_ROOM_TTL`]: for that long
//! a participant removed elsewhere may still send here (and a participant added elsewhere is
//! looked up in the store at once, because a cache miss on membership always re-reads). Past
//! the TTL a big room's entry stays, and each send checks the sender's membership alone
//! (see [`SMALL_ROOM`]) unless it needs the whole list.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::pipeline::lock;
use crate::ids::{RoomId, UserId};
use crate::rooms::{Participant, RoomType};
use crate::time::Timestamp;
use foldhash::HashMap;

/// How long a cached room is trusted without a local change.
pub(crate) const SEND_ROOM_TTL: Duration = Duration::from_secs(1);
/// Rooms with at most this many participants are re-read whole when their entry is past the
/// TTL; bigger ones check only the sender's membership (one row) unless the message needs the
/// participant list.
pub(crate) const SMALL_ROOM: usize = 64;
/// Rooms kept at most; beyond it the cache starts over.
const MAX_ROOMS: usize = 100_000;

/// A room as the send path sees it.
#[derive(Debug)]
pub(crate) struct SendRoom {
    pub(crate) room_type: RoomType,
    pub(crate) participants: Vec<Participant>,
}

impl SendRoom {
    pub(crate) fn has(&self, user: UserId) -> bool {
        self.participants.iter().any(|p| p.user_id == user)
    }
}

/// Recently loaded [`SendRoom`]s by id.
#[derive(Default)]
pub(crate) struct RoomCache {
    rooms: Mutex<HashMap<RoomId, (Arc<SendRoom>, Timestamp)>>,
}

impl RoomCache {
    /// The cached room, and whether it was loaded less than [`SEND_ROOM_TTL`] ago.
    pub(crate) fn get(&self, room: RoomId, now: Timestamp) -> Option<(Arc<SendRoom>, bool)> {
        let rooms = lock(&self.rooms);
        let (entry, at) = rooms.get(&room)?;
        Some((entry.clone(), now.since(*at) < SEND_ROOM_TTL))
    }

    pub(crate) fn put(&self, room: RoomId, entry: Arc<SendRoom>, now: Timestamp) {
        let mut rooms = lock(&self.rooms);
        if rooms.len() >= MAX_ROOMS {
            rooms.clear();
        }
        rooms.insert(room, (entry, now));
    }

    pub(crate) fn forget(&self, room: RoomId) {
        lock(&self.rooms).remove(&room);
    }
}
