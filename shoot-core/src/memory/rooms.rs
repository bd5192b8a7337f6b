//! [`MemoryRoomStore`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use foldhash::HashMap;

use super::lock;
use crate::error::{PortError, PortResult};
use crate::ids::{RoomId, Seq, UserId};
use crate::rooms::{Participant, Role, Room, RoomActivity, RoomStore};
use crate::time::Timestamp;

/// In-memory [`RoomStore`].
#[derive(Default)]
pub struct MemoryRoomStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomId, Room>,
    participants: HashMap<RoomId, BTreeMap<UserId, Participant>>,
    rooms_by_user: HashMap<UserId, BTreeSet<RoomId>>,
    /// Unordered pair (low, high) → direct room.
    direct: HashMap<(UserId, UserId), RoomId>,
    direct_pair_of: HashMap<RoomId, (UserId, UserId)>,
}

fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a <= b { (a, b) } else { (b, a) }
}

impl State {
    fn insert(&mut self, room: &Room, participants: &[&Participant]) -> PortResult<()> {
        if self.rooms.contains_key(&room.id) {
            return Err(PortError::AlreadyExists { what: "room" });
        }
        self.rooms.insert(room.id, room.clone());
        let rows = self.participants.entry(room.id).or_default();
        for p in participants {
            let mut p = (*p).clone();
            p.room_id = room.id;
            rows.insert(p.user_id, p);
        }
        for p in participants {
            self.rooms_by_user
                .entry(p.user_id)
                .or_default()
                .insert(room.id);
        }
        Ok(())
    }

    fn participant_mut(&mut self, room: RoomId, user: UserId) -> PortResult<&mut Participant> {
        self.participants
            .get_mut(&room)
            .and_then(|rows| rows.get_mut(&user))
            .ok_or(PortError::NotFound)
    }
}

impl MemoryRoomStore {
    /// An empty store.
    pub fn new() -> MemoryRoomStore {
        MemoryRoomStore::default()
    }
}

#[async_trait]
impl RoomStore for MemoryRoomStore {
    async fn create_room(&self, room: &Room, participants: &[Participant]) -> PortResult<()> {
        let refs: Vec<&Participant> = participants.iter().collect();
        lock(&self.state).insert(room, &refs)
    }

    async fn create_direct_room(
        &self,
        room: &Room,
        participants: [&Participant; 2],
    ) -> PortResult<(Room, bool)> {
        let mut st = lock(&self.state);
        let key = pair(participants[0].user_id, participants[1].user_id);
        if let Some(existing) = st.direct.get(&key).and_then(|id| st.rooms.get(id)) {
            return Ok((existing.clone(), false));
        }
        st.insert(room, &participants)?;
        st.direct.insert(key, room.id);
        st.direct_pair_of.insert(room.id, key);
        Ok((room.clone(), true))
    }

    async fn find_direct_room(&self, a: UserId, b: UserId) -> PortResult<Option<Room>> {
        let st = lock(&self.state);
        Ok(st
            .direct
            .get(&pair(a, b))
            .and_then(|id| st.rooms.get(id))
            .cloned())
    }

    async fn get_room(&self, id: RoomId) -> PortResult<Option<Room>> {
        Ok(lock(&self.state).rooms.get(&id).cloned())
    }

    async fn update_room(&self, room: &Room) -> PortResult<()> {
        let mut st = lock(&self.state);
        let stored = st.rooms.get_mut(&room.id).ok_or(PortError::NotFound)?;
        stored.title = room.title.clone();
        stored.announcement = room.announcement.clone();
        stored.updated_at = room.updated_at;
        Ok(())
    }

    async fn delete_room(&self, id: RoomId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let existed = st.rooms.remove(&id).is_some();
        if let Some(rows) = st.participants.remove(&id) {
            for user in rows.keys() {
                if let Some(set) = st.rooms_by_user.get_mut(user) {
                    set.remove(&id);
                }
            }
        }
        if let Some(key) = st.direct_pair_of.remove(&id) {
            st.direct.remove(&key);
        }
        Ok(existed)
    }

    async fn record_activity(&self, activity: &[RoomActivity]) -> PortResult<()> {
        let mut st = lock(&self.state);
        for a in activity {
            // A room deleted meanwhile has nothing to record: not an error for the caller.
            if let Some(r) = st.rooms.get_mut(&a.room) {
                if a.seq > r.last_seq {
                    r.last_seq = a.seq;
                    r.last_message_id = Some(a.message);
                    r.last_activity_at = r.last_activity_at.max(a.at);
                }
            }
        }
        Ok(())
    }

    async fn participants(&self, room: RoomId) -> PortResult<Vec<Participant>> {
        let st = lock(&self.state);
        let mut out: Vec<Participant> = st
            .participants
            .get(&room)
            .map(|rows| rows.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| {
            a.joined_at
                .cmp(&b.joined_at)
                .then(a.user_id.cmp(&b.user_id))
        });
        Ok(out)
    }

    async fn participant(&self, room: RoomId, user: UserId) -> PortResult<Option<Participant>> {
        let st = lock(&self.state);
        Ok(st
            .participants
            .get(&room)
            .and_then(|rows| rows.get(&user))
            .cloned())
    }

    async fn add_participants(
        &self,
        room: RoomId,
        participants: &[Participant],
    ) -> PortResult<Vec<UserId>> {
        let mut st = lock(&self.state);
        if !st.rooms.contains_key(&room) {
            return Err(PortError::NotFound);
        }
        let mut added = Vec::new();
        let rows = st.participants.entry(room).or_default();
        for p in participants {
            if rows.contains_key(&p.user_id) {
                continue;
            }
            let mut p = p.clone();
            p.room_id = room;
            added.push(p.user_id);
            rows.insert(p.user_id, p);
        }
        for user in &added {
            st.rooms_by_user.entry(*user).or_default().insert(room);
        }
        Ok(added)
    }

    async fn remove_participant(&self, room: RoomId, user: UserId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let removed = st
            .participants
            .get_mut(&room)
            .is_some_and(|rows| rows.remove(&user).is_some());
        if removed {
            if let Some(set) = st.rooms_by_user.get_mut(&user) {
                set.remove(&room);
            }
        }
        Ok(removed)
    }

    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> PortResult<()> {
        lock(&self.state).participant_mut(room, user)?.role = role;
        Ok(())
    }

    async fn rooms_of(&self, user: UserId) -> PortResult<Vec<(Room, Participant)>> {
        let st = lock(&self.state);
        let Some(ids) = st.rooms_by_user.get(&user) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| {
                let room = st.rooms.get(id)?;
                let me = st.participants.get(id)?.get(&user)?;
                Some((room.clone(), me.clone()))
            })
            .collect())
    }

    async fn set_favorite(
        &self,
        room: RoomId,
        user: UserId,
        favorite: bool,
        at: Timestamp,
    ) -> PortResult<()> {
        let mut st = lock(&self.state);
        let p = st.participant_mut(room, user)?;
        if !favorite {
            p.favorited_at = None;
        } else if !p.favorite {
            p.favorited_at = Some(at);
        }
        p.favorite = favorite;
        Ok(())
    }

    async fn advance_read_cursor(&self, room: RoomId, user: UserId, seq: Seq) -> PortResult<Seq> {
        let mut st = lock(&self.state);
        let p = st.participant_mut(room, user)?;
        p.last_read_seq = p.last_read_seq.max(seq);
        Ok(p.last_read_seq)
    }
}
