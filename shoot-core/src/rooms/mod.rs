//! Rooms: direct and group rooms, participants and roles, favourites, announcements and the
//! per-participant read cursor.

pub mod rules;

use async_trait::async_trait;

use crate::error::PortResult;
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::time::Timestamp;

/// Kind of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum RoomType {
    /// Exactly two people, one room per pair.
    Direct,
    /// A titled group.
    Group,
}

impl RoomType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomType::Direct => "DIRECT",
            RoomType::Group => "GROUP",
        }
    }
}

/// Role of a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum Role {
    /// Creator or heir; one per group room.
    Owner,
    /// Moderator.
    Admin,
    /// Everyone else.
    Member,
}

impl Role {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Member => "MEMBER",
        }
    }

    /// Whether this role may moderate (edit the room, pin, delete others' messages).
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// A chat room.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Room {
    /// Id.
    pub id: RoomId,
    /// Direct or group.
    pub room_type: RoomType,
    /// Title (groups; direct rooms have none and are shown by the other person's name).
    pub title: Option<String>,
    /// Announcement (notice), at most 200 characters by default.
    pub announcement: Option<String>,
    /// Creator.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of title or announcement.
    pub updated_at: Timestamp,
    /// Highest persisted message sequence.
    pub last_seq: Seq,
    /// Id of the message with `last_seq`.
    pub last_message_id: Option<MessageId>,
    /// Time of the last message (or creation), for ordering room lists.
    pub last_activity_at: Timestamp,
}

/// A user's membership in a room, with their own room settings and read cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Participant {
    /// Room.
    pub room_id: RoomId,
    /// User.
    pub user_id: UserId,
    /// Role.
    pub role: Role,
    /// When they joined (ownership passes to the longest member).
    pub joined_at: Timestamp,
    /// Highest sequence they have read.
    pub last_read_seq: Seq,
    /// Whether the room is among their favourites.
    pub favorite: bool,
    /// When they marked it favourite.
    pub favorited_at: Option<Timestamp>,
}

/// A persisted message's mark on its room (see [`RoomStore::record_activity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomActivity {
    pub room: RoomId,
    pub seq: Seq,
    pub message: MessageId,
    pub at: Timestamp,
}

/// Storage of rooms and participants.
#[async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Inserts a group room with its participants atomically.
    async fn create_room(&self, room: &Room, participants: &[Participant]) -> PortResult<()>;

    /// Inserts a direct room for the unordered pair of the two participants, or returns the
    /// existing one. Returns `(room, created)`. MUST yield one room per pair even under
    /// concurrent calls from several instances.
    async fn create_direct_room(
        &self,
        room: &Room,
        participants: [&Participant; 2],
    ) -> PortResult<(Room, bool)>;

    /// The direct room of the unordered pair, if any.
    async fn find_direct_room(&self, a: UserId, b: UserId) -> PortResult<Option<Room>>;

    /// The room with this id.
    async fn get_room(&self, id: RoomId) -> PortResult<Option<Room>>;

    /// Replaces title, announcement and `updated_at`. MUST fail with `NotFound` if absent.
    async fn update_room(&self, room: &Room) -> PortResult<()>;

    /// Deletes the room and its participants; returns whether it existed. Messages stay.
    async fn delete_room(&self, id: RoomId) -> PortResult<bool>;

    /// Records persisted messages, one [`RoomActivity`] each (several rooms in one call): a
    /// room's `last_seq` and `last_message_id` move forward only to a higher `seq` than the
    /// stored `last_seq`, and `last_activity_at` only to a later time (idempotent, order-free;
    /// of several entries for one room the highest `seq` wins). A room that no longer exists
    /// is skipped, not an error.
    async fn record_activity(&self, activity: &[RoomActivity]) -> PortResult<()>;

    /// Participants of the room, ordered by `joined_at` then user id.
    async fn participants(&self, room: RoomId) -> PortResult<Vec<Participant>>;

    /// Participants of every room in `rooms` (one look-up for all of them), grouped by room in
    /// the order of `rooms`, each room's as [`participants`](RoomStore::participants) orders
    /// them. A room given twice is listed once; unknown rooms have none. The default asks
    /// room by room.
    async fn participants_of(&self, rooms: &[RoomId]) -> PortResult<Vec<Participant>> {
        let mut out = Vec::new();
        let mut seen = Vec::with_capacity(rooms.len());
        for room in rooms {
            if !seen.contains(room) {
                seen.push(*room);
                out.extend(self.participants(*room).await?);
            }
        }
        Ok(out)
    }

    /// One participant.
    async fn participant(&self, room: RoomId, user: UserId) -> PortResult<Option<Participant>>;

    /// The participant rows of these `(room, user)` pairs, for the pairs where the user is a
    /// participant: each once, in any order. A pair given twice yields its row once; an empty
    /// `pairs` returns an empty list.
    ///
    /// The engine checks the membership of concurrent room-scoped calls (a reconnect storm's
    /// subscriptions) with one call, so an adapter SHOULD answer in one round trip per chunk
    /// of pairs. The default asks [`participant`](RoomStore::participant) per distinct pair.
    async fn memberships(&self, pairs: &[(RoomId, UserId)]) -> PortResult<Vec<Participant>> {
        let mut out = Vec::new();
        for (i, (room, user)) in pairs.iter().enumerate() {
            if pairs[..i].contains(&(*room, *user)) {
                continue;
            }
            if let Some(p) = self.participant(*room, *user).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Adds participants; those already present are left unchanged. Returns the ones added.
    async fn add_participants(
        &self,
        room: RoomId,
        participants: &[Participant],
    ) -> PortResult<Vec<UserId>>;

    /// Removes a participant; returns whether they were one.
    async fn remove_participant(&self, room: RoomId, user: UserId) -> PortResult<bool>;

    /// Sets a participant's role. MUST fail with `NotFound` if not a participant.
    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> PortResult<()>;

    /// Rooms `user` participates in, each with the user's own participant row, in any order.
    async fn rooms_of(&self, user: UserId) -> PortResult<Vec<(Room, Participant)>>;

    /// The `(user, room)` pairs of every room each of these users participates in, in any
    /// order; a user given twice is listed once. An empty `users` returns an empty list.
    ///
    /// Presence asks this for concurrent connects and disconnects at once, so an adapter
    /// SHOULD answer in one round trip per chunk of users. The default asks
    /// [`rooms_of`](RoomStore::rooms_of) per distinct user.
    async fn room_ids_of(&self, users: &[UserId]) -> PortResult<Vec<(UserId, RoomId)>> {
        let mut out = Vec::new();
        for (i, user) in users.iter().enumerate() {
            if users[..i].contains(user) {
                continue;
            }
            out.extend(
                self.rooms_of(*user)
                    .await?
                    .into_iter()
                    .map(|(room, _)| (*user, room.id)),
            );
        }
        Ok(out)
    }

    /// Sets or clears the favourite flag. MUST fail with `NotFound` if not a participant.
    async fn set_favorite(
        &self,
        room: RoomId,
        user: UserId,
        favorite: bool,
        at: Timestamp,
    ) -> PortResult<()>;

    /// Moves the read cursor forward to `seq` (never backwards). Returns the cursor after the
    /// call, or `NotFound` if not a participant.
    async fn advance_read_cursor(&self, room: RoomId, user: UserId, seq: Seq) -> PortResult<Seq>;
}
