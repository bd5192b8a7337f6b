//! [`MemoryMessageStore`]: per-room vectors sorted by seq, so history pages and unread
//! counts are binary searches.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use foldhash::{HashMap, HashSet, HashSetExt};

use super::{read, write};
use crate::error::{PortError, PortResult};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::{HistoryQuery, Message, MessageStore, Pin};
use crate::time::Timestamp;

/// In-memory [`MessageStore`].
#[derive(Default)]
pub struct MemoryMessageStore {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Messages of each room, sorted by seq (ties by insertion).
    rooms: HashMap<RoomId, Vec<Message>>,
    /// Message id → (room, index in that room's vector).
    index: HashMap<MessageId, (RoomId, usize)>,
    /// sender → temp id → message id (nested so that a look-up by `&str` allocates nothing).
    temp_ids: HashMap<UserId, HashMap<Arc<str>, MessageId>>,
    /// Thread root → its replies as (seq, id), sorted.
    replies: HashMap<MessageId, Vec<(Seq, MessageId)>>,
    /// (room, sender) → seqs of the sender's messages in the room, sorted: with `deleted`,
    /// makes an unread count two binary searches instead of a scan of the unread messages.
    by_sender: HashMap<(RoomId, UserId), Vec<Seq>>,
    /// Room → its deleted messages as (seq, sender), sorted (tombstones are rare).
    deleted: HashMap<RoomId, Vec<(Seq, UserId)>>,
}

impl State {
    fn get(&self, id: MessageId) -> Option<&Message> {
        let (room, i) = self.index.get(&id)?;
        self.rooms.get(room)?.get(*i)
    }

    fn get_mut(&mut self, id: MessageId) -> PortResult<&mut Message> {
        let (room, i) = *self.index.get(&id).ok_or(PortError::NotFound)?;
        self.rooms
            .get_mut(&room)
            .and_then(|v| v.get_mut(i))
            .ok_or(PortError::NotFound)
    }

    fn is_duplicate(&self, m: &Message) -> bool {
        self.index.contains_key(&m.id)
            || m.temp_id
                .as_ref()
                .is_some_and(|t| self.by_temp_id(m.sender_id, t).is_some())
    }

    fn by_temp_id(&self, sender: UserId, temp_id: &str) -> Option<MessageId> {
        self.temp_ids.get(&sender)?.get(temp_id).copied()
    }

    fn insert(&mut self, m: Message) {
        let room = m.room_id;
        let pos = after_seq(self.room(room), m.seq, |x| x.seq);
        if let Some(t) = &m.temp_id {
            self.temp_ids
                .entry(m.sender_id)
                .or_default()
                .insert(t.clone(), m.id);
        }
        if let Some(root) = m.thread_id {
            let list = self.replies.entry(root).or_default();
            let at = list.partition_point(|(s, _)| *s <= m.seq);
            list.insert(at, (m.seq, m.id));
        }
        let seqs = self.by_sender.entry((room, m.sender_id)).or_default();
        seqs.insert(after_seq(seqs, m.seq, |s| *s), m.seq);
        if m.is_deleted {
            self.mark_deleted(room, m.seq, m.sender_id, true);
        }
        let msgs = self.rooms.entry(room).or_default();
        self.index.insert(m.id, (room, pos));
        msgs.insert(pos, m);
        // Out-of-order insert: re-point the index of every message that moved.
        for (i, later) in msgs.iter().enumerate().skip(pos + 1) {
            self.index.insert(later.id, (room, i));
        }
    }

    /// Records (or forgets) that the message `(seq, sender)` of `room` is deleted.
    fn mark_deleted(&mut self, room: RoomId, seq: Seq, sender: UserId, deleted: bool) {
        let list = self.deleted.entry(room).or_default();
        let at = list.partition_point(|e| *e < (seq, sender));
        let present = list.get(at) == Some(&(seq, sender));
        if deleted && !present {
            list.insert(at, (seq, sender));
        } else if !deleted && present {
            list.remove(at);
        }
    }

    /// Messages after `cursor` in `room`, not deleted and not sent by `user`.
    fn unread(&self, user: UserId, room: RoomId, cursor: Seq) -> u64 {
        let msgs = self.room(room);
        let all = msgs.len() - msgs.partition_point(|m| m.seq <= cursor);
        let own = self
            .by_sender
            .get(&(room, user))
            .map_or(0, |v| v.len() - v.partition_point(|s| *s <= cursor));
        let (deleted, own_deleted) = self.deleted.get(&room).map_or((0, 0), |v| {
            let after = &v[v.partition_point(|(s, _)| *s <= cursor)..];
            (
                after.len(),
                after.iter().filter(|(_, u)| *u == user).count(),
            )
        });
        (all + own_deleted - own - deleted) as u64
    }

    fn room(&self, room: RoomId) -> &[Message] {
        self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Where a new element with `seq` goes in `sorted` (after every element with a seq `<=` it).
/// Messages arrive in seq order almost always: the end is checked first, which spares a
/// binary search over a large vector (a cache miss per probe).
fn after_seq<T>(sorted: &[T], seq: Seq, seq_of: impl Fn(&T) -> Seq) -> usize {
    match sorted.last() {
        Some(last) if seq_of(last) > seq => sorted.partition_point(|x| seq_of(x) <= seq),
        _ => sorted.len(),
    }
}

impl MemoryMessageStore {
    /// An empty store.
    pub fn new() -> MemoryMessageStore {
        MemoryMessageStore::default()
    }

    /// Number of stored messages (all rooms).
    pub fn len(&self) -> usize {
        read(&self.state).index.len()
    }

    /// Whether no message is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl MessageStore for MemoryMessageStore {
    async fn insert_messages(&self, messages: &[Message]) -> PortResult<Vec<MessageId>> {
        let mut st = write(&self.state);
        let mut inserted = Vec::new();
        for m in messages {
            if st.is_duplicate(m) {
                continue;
            }
            let (thread, created_at) = (m.thread_id, m.created_at);
            st.insert(m.clone());
            inserted.push(m.id);
            if let Some(root) = thread {
                if let Ok(root) = st.get_mut(root) {
                    root.reply_count += 1;
                    root.last_reply_at =
                        Some(root.last_reply_at.map_or(created_at, |t| t.max(created_at)));
                }
            }
        }
        Ok(inserted)
    }

    async fn get_message(&self, id: MessageId) -> PortResult<Option<Message>> {
        Ok(read(&self.state).get(id).cloned())
    }

    async fn get_messages(&self, ids: &[MessageId]) -> PortResult<Vec<Message>> {
        let st = read(&self.state);
        let mut seen = HashSet::new();
        Ok(ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| st.get(*id).cloned())
            .collect())
    }

    async fn find_by_temp_id(&self, sender: UserId, temp_id: &str) -> PortResult<Option<Message>> {
        let st = read(&self.state);
        Ok(st
            .by_temp_id(sender, temp_id)
            .and_then(|id| st.get(id))
            .cloned())
    }

    async fn find_by_temp_ids(&self, keys: &[(UserId, &str)]) -> PortResult<Vec<Message>> {
        let st = read(&self.state);
        let mut seen = HashSet::new();
        Ok(keys
            .iter()
            .filter_map(|(sender, temp_id)| st.by_temp_id(*sender, temp_id))
            .filter(|id| seen.insert(*id))
            .filter_map(|id| st.get(id).cloned())
            .collect())
    }

    async fn history(&self, room: RoomId, query: HistoryQuery) -> PortResult<Vec<Message>> {
        let st = read(&self.state);
        let msgs = st.room(room);
        let hi = query
            .before
            .map_or(msgs.len(), |b| msgs.partition_point(|m| m.seq < b));
        let lo = query
            .after
            .map_or(0, |a| msgs.partition_point(|m| m.seq <= a))
            .min(hi);
        let page = if query.after.is_some() {
            &msgs[lo..hi.min(lo.saturating_add(query.limit))]
        } else {
            &msgs[hi.saturating_sub(query.limit).max(lo)..hi]
        };
        Ok(page.to_vec())
    }

    async fn update_message(&self, message: &Message) -> PortResult<()> {
        let mut st = write(&self.state);
        let m = st.get_mut(message.id)?;
        let was_deleted = m.is_deleted;
        let (room, seq, sender) = (m.room_id, m.seq, m.sender_id);
        m.text = message.text.clone();
        m.is_edited = message.is_edited;
        m.is_deleted = message.is_deleted;
        m.url_preview = message.url_preview.clone();
        m.mentions = message.mentions.clone();
        m.updated_at = message.updated_at;
        if was_deleted != message.is_deleted {
            st.mark_deleted(room, seq, sender, message.is_deleted);
        }
        Ok(())
    }

    async fn add_reaction(
        &self,
        message: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        let mut st = write(&self.state);
        let m = st.get_mut(message)?;
        let users = m.reactions.entry(code.to_owned()).or_default();
        if users.contains(&user) {
            return Ok(false);
        }
        users.push(user);
        m.updated_at = Some(at);
        Ok(true)
    }

    async fn remove_reaction(
        &self,
        message: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        let mut st = write(&self.state);
        let m = st.get_mut(message)?;
        let Some(users) = m.reactions.get_mut(code) else {
            return Ok(false);
        };
        let before = users.len();
        users.retain(|u| *u != user);
        let removed = users.len() != before;
        if users.is_empty() {
            m.reactions.remove(code);
        }
        if removed {
            m.updated_at = Some(at);
        }
        Ok(removed)
    }

    async fn set_pin(&self, message: MessageId, pin: Option<Pin>, at: Timestamp) -> PortResult<()> {
        let mut st = write(&self.state);
        let m = st.get_mut(message)?;
        m.pin = pin;
        m.updated_at = Some(at);
        Ok(())
    }

    async fn pinned(&self, room: RoomId) -> PortResult<Vec<Message>> {
        let st = read(&self.state);
        let mut out: Vec<Message> = st
            .room(room)
            .iter()
            .filter(|m| m.pin.is_some())
            .cloned()
            .collect();
        out.sort_by_key(|m| std::cmp::Reverse((m.pin.map(|p| p.pinned_at), m.seq)));
        Ok(out)
    }

    async fn thread_replies(
        &self,
        root: MessageId,
        after: Option<Seq>,
        limit: usize,
    ) -> PortResult<Vec<Message>> {
        let st = read(&self.state);
        let Some(list) = st.replies.get(&root) else {
            return Ok(Vec::new());
        };
        let from = after.map_or(0, |a| list.partition_point(|(s, _)| *s <= a));
        Ok(list[from..]
            .iter()
            .take(limit)
            .filter_map(|(_, id)| st.get(*id).cloned())
            .collect())
    }

    async fn threads(&self, room: RoomId, limit: usize) -> PortResult<Vec<Message>> {
        let st = read(&self.state);
        let mut out: Vec<Message> = st
            .room(room)
            .iter()
            .filter(|m| m.reply_count > 0)
            .cloned()
            .collect();
        out.sort_by_key(|m| std::cmp::Reverse((m.last_reply_at, m.seq)));
        out.truncate(limit);
        Ok(out)
    }

    async fn search(&self, room: RoomId, query: &str, limit: usize) -> PortResult<Vec<Message>> {
        let q = query.to_lowercase();
        let st = read(&self.state);
        Ok(st
            .room(room)
            .iter()
            .rev()
            .filter(|m| !m.is_deleted && m.text.to_lowercase().contains(&q))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn unread_counts(&self, user: UserId, cursors: &[(RoomId, Seq)]) -> PortResult<Vec<u64>> {
        let st = read(&self.state);
        Ok(cursors
            .iter()
            .map(|(room, cursor)| st.unread(user, *room, *cursor))
            .collect())
    }

    async fn max_seq(&self, room: RoomId) -> PortResult<Seq> {
        Ok(read(&self.state)
            .room(room)
            .last()
            .map_or(Seq::ZERO, |m| m.seq))
    }

    async fn max_seqs(&self, rooms: &[RoomId]) -> PortResult<Vec<(RoomId, Seq)>> {
        let st = read(&self.state);
        let mut out: Vec<(RoomId, Seq)> = rooms
            .iter()
            .filter_map(|room| st.room(*room).last().map(|m| (*room, m.seq)))
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
