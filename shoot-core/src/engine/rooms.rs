//! Room use cases: direct and group rooms, participants and roles, title, announcement,
//! favourites and the caller's room list.

use std::collections::{HashMap, HashSet};

use futures::future::try_join_all;

use crate::engine::ChatEngine;
use crate::error::{Error, ErrorCode, Result, fail};
use crate::events::{Event, RoomChange, Topic};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::Message;
use crate::notifications::NotificationType;
use crate::rooms::{Participant, Role, Room, RoomType, rules};
use crate::time::Timestamp;

/// A room with its participants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomDetails {
    /// The room.
    pub room: Room,
    /// Participants, by `joined_at` then id.
    pub participants: Vec<Participant>,
}

/// One entry of a user's room list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room.
    pub room: Room,
    /// The caller's own participant row (role, favourite, read cursor).
    pub me: Participant,
    /// All participants.
    pub participants: Vec<Participant>,
    /// Latest persisted message.
    pub last_message: Option<Message>,
    /// Messages after the caller's read cursor not sent by the caller.
    pub unread_count: u64,
}

/// Sorts a room list: favourites first (most recently favourited first), then by last
/// activity, newest first, then by id for a stable order.
pub fn sort_room_list(list: &mut [RoomSummary]) {
    list.sort_by(|a, b| {
        b.me.favorite
            .cmp(&a.me.favorite)
            .then_with(|| {
                if a.me.favorite && b.me.favorite {
                    b.me.favorited_at.cmp(&a.me.favorited_at)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then_with(|| b.room.last_activity_at.cmp(&a.room.last_activity_at))
            .then_with(|| b.room.id.cmp(&a.room.id))
    });
}

fn participant(room: RoomId, user: UserId, role: Role, at: Timestamp) -> Participant {
    Participant {
        room_id: room,
        user_id: user,
        role,
        joined_at: at,
        last_read_seq: Seq::ZERO,
        favorite: false,
        favorited_at: None,
    }
}

fn room_not_found() -> Error {
    Error::new(ErrorCode::RoomNotFound, "room not found")
}

impl ChatEngine {
    /// The caller's participant row in `room` (`ROOM_NOT_FOUND` / `NOT_ROOM_PARTICIPANT`).
    pub async fn authorize_room(&self, actor: UserId, room: RoomId) -> Result<Participant> {
        self.require_participant(actor, room).await
    }

    async fn load_room(&self, room: RoomId) -> Result<Room> {
        self.p()
            .rooms
            .get_room(room)
            .await?
            .ok_or_else(room_not_found)
    }

    async fn ensure_users_exist(&self, ids: &[UserId]) -> Result<()> {
        let found = self.p().users.get_users(ids).await?;
        if let Some(missing) = ids.iter().find(|id| !found.iter().any(|u| u.id == **id)) {
            return fail(ErrorCode::UserNotFound, format!("user {missing} not found"));
        }
        Ok(())
    }

    /// Opens (or returns) the direct room of the caller and `other`. Returns `created`.
    pub async fn create_direct_room(&self, actor: UserId, other: UserId) -> Result<(Room, bool)> {
        if actor == other {
            return fail(
                ErrorCode::DirectRoomWithSelf,
                "a direct room needs another person",
            );
        }
        self.ensure_users_exist(&[other]).await?;
        if self.p().social.is_blocked_either(actor, other).await? {
            return fail(
                ErrorCode::UserBlocked,
                "you cannot open a room with this user",
            );
        }
        let now = self.now();
        let id = RoomId(self.next_id());
        let room = Room {
            id,
            room_type: RoomType::Direct,
            title: None,
            announcement: None,
            created_by: actor,
            created_at: now,
            updated_at: now,
            last_seq: Seq::ZERO,
            last_message_id: None,
            last_activity_at: now,
        };
        let a = participant(id, actor, Role::Member, now);
        let b = participant(id, other, Role::Member, now);
        let (room, created) = self.p().rooms.create_direct_room(&room, [&a, &b]).await?;
        if created {
            for user in [actor, other] {
                self.publish_room_change(
                    Topic::User(user),
                    &room,
                    RoomChange::Created,
                    Some(actor),
                )
                .await;
            }
        }
        Ok((room, created))
    }

    /// Creates a group room; the creator is OWNER, the others MEMBERs.
    pub async fn create_group_room(
        &self,
        actor: UserId,
        title: &str,
        members: Vec<UserId>,
    ) -> Result<RoomDetails> {
        let limits = self.limits();
        let title = rules::validate_title(title, limits)?;
        let members = rules::group_members(actor, &members, limits)?;
        self.ensure_users_exist(&members).await?;
        let now = self.now();
        let id = RoomId(self.next_id());
        let room = Room {
            id,
            room_type: RoomType::Group,
            title: Some(title),
            announcement: None,
            created_by: actor,
            created_at: now,
            updated_at: now,
            last_seq: Seq::ZERO,
            last_message_id: None,
            last_activity_at: now,
        };
        let participants: Vec<Participant> = members
            .iter()
            .map(|&u| {
                participant(
                    id,
                    u,
                    if u == actor {
                        Role::Owner
                    } else {
                        Role::Member
                    },
                    now,
                )
            })
            .collect();
        self.p().rooms.create_room(&room, &participants).await?;
        for p in &participants {
            self.publish_room_change(
                Topic::User(p.user_id),
                &room,
                RoomChange::Created,
                Some(actor),
            )
            .await;
        }
        let others: Vec<UserId> = members.iter().copied().filter(|u| *u != actor).collect();
        self.notify_membership(&room, actor, &others, NotificationType::AddedToRoom)
            .await;
        let participants = self.p().rooms.participants(id).await?;
        Ok(RoomDetails { room, participants })
    }

    /// A room the caller participates in, with its participants.
    pub async fn room(&self, actor: UserId, room_id: RoomId) -> Result<RoomDetails> {
        self.require_participant(actor, room_id).await?;
        let room = self.load_room(room_id).await?;
        let participants = self.p().rooms.participants(room_id).await?;
        Ok(RoomDetails { room, participants })
    }

    /// Participants of a room the caller is in.
    pub async fn participants(&self, actor: UserId, room: RoomId) -> Result<Vec<Participant>> {
        self.require_participant(actor, room).await?;
        Ok(self.p().rooms.participants(room).await?)
    }

    /// The caller's rooms: favourites first, then by last activity (newest first), each with
    /// participants, last message and unread count (one `unread_counts` call for all rooms).
    pub async fn rooms_of(&self, actor: UserId) -> Result<Vec<RoomSummary>> {
        let rows = self.p().rooms.rooms_of(actor).await?;
        self.summaries(actor, rows).await
    }

    async fn summaries(
        &self,
        actor: UserId,
        rows: Vec<(Room, Participant)>,
    ) -> Result<Vec<RoomSummary>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let cursors: Vec<(RoomId, Seq)> =
            rows.iter().map(|(r, p)| (r.id, p.last_read_seq)).collect();
        let counts = self.p().messages.unread_counts(actor, &cursors).await?;
        let last_ids: Vec<MessageId> = rows.iter().filter_map(|(r, _)| r.last_message_id).collect();
        let last_messages: HashMap<MessageId, Message> = if last_ids.is_empty() {
            HashMap::new()
        } else {
            self.p()
                .messages
                .get_messages(&last_ids)
                .await?
                .into_iter()
                .map(|m| (m.id, m))
                .collect()
        };
        let participants =
            try_join_all(rows.iter().map(|(r, _)| self.p().rooms.participants(r.id))).await?;
        let mut list: Vec<RoomSummary> = rows
            .into_iter()
            .zip(counts)
            .zip(participants)
            .map(|(((room, me), unread_count), participants)| RoomSummary {
                last_message: room
                    .last_message_id
                    .and_then(|id| last_messages.get(&id).cloned()),
                room,
                me,
                participants,
                unread_count,
            })
            .collect();
        sort_room_list(&mut list);
        Ok(list)
    }

    /// The caller's rooms whose title (or, for direct rooms, the other person's nickname or
    /// username) contains `q`, case-insensitively.
    pub async fn search_rooms(&self, actor: UserId, q: &str) -> Result<Vec<RoomSummary>> {
        let q = q.trim().to_lowercase();
        let all = self.rooms_of(actor).await?;
        if q.is_empty() {
            return Ok(all);
        }
        let others: Vec<UserId> = all
            .iter()
            .filter(|s| s.room.room_type == RoomType::Direct)
            .flat_map(|s| s.participants.iter().map(|p| p.user_id))
            .filter(|u| *u != actor)
            .collect();
        let users = if others.is_empty() {
            Vec::new()
        } else {
            self.p().users.get_users(&others).await?
        };
        let names: HashMap<UserId, String> = users
            .into_iter()
            .map(|u| {
                (
                    u.id,
                    format!(
                        "{}\n{}",
                        u.nickname.to_lowercase(),
                        u.username.to_lowercase()
                    ),
                )
            })
            .collect();
        Ok(all
            .into_iter()
            .filter(|s| {
                let title_hit = s
                    .room
                    .title
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().contains(&q));
                let name_hit = s.room.room_type == RoomType::Direct
                    && s.participants.iter().any(|p| {
                        p.user_id != actor && names.get(&p.user_id).is_some_and(|n| n.contains(&q))
                    });
                title_hit || name_hit
            })
            .collect())
    }

    /// Renames a group (OWNER/ADMIN).
    pub async fn update_room_title(
        &self,
        actor: UserId,
        room_id: RoomId,
        title: &str,
    ) -> Result<Room> {
        let me = self.require_participant(actor, room_id).await?;
        let title = rules::validate_title(title, self.limits())?;
        let mut room = self.load_room(room_id).await?;
        if room.room_type == RoomType::Direct {
            return fail(
                ErrorCode::DirectRoomMembership,
                "direct rooms have no title",
            );
        }
        rules::check_moderator(me.role)?;
        room.title = Some(title);
        room.updated_at = self.now();
        self.p().rooms.update_room(&room).await?;
        self.publish_room_change(
            Topic::Room(room_id),
            &room,
            RoomChange::Updated,
            Some(actor),
        )
        .await;
        Ok(room)
    }

    /// Sets or clears the announcement (OWNER/ADMIN; anyone in a direct room).
    pub async fn set_announcement(
        &self,
        actor: UserId,
        room_id: RoomId,
        announcement: Option<String>,
    ) -> Result<Room> {
        let me = self.require_participant(actor, room_id).await?;
        let announcement = rules::validate_announcement(announcement.as_deref(), self.limits())?;
        let mut room = self.load_room(room_id).await?;
        if room.room_type == RoomType::Group {
            rules::check_moderator(me.role)?;
        }
        room.announcement = announcement;
        room.updated_at = self.now();
        self.p().rooms.update_room(&room).await?;
        self.publish_room_change(
            Topic::Room(room_id),
            &room,
            RoomChange::Updated,
            Some(actor),
        )
        .await;
        Ok(room)
    }

    /// Adds participants to a group (any participant may invite).
    pub async fn add_participants(
        &self,
        actor: UserId,
        room_id: RoomId,
        users: Vec<UserId>,
    ) -> Result<RoomDetails> {
        self.require_participant(actor, room_id).await?;
        let room = self.load_room(room_id).await?;
        if room.room_type == RoomType::Direct {
            return fail(
                ErrorCode::DirectRoomMembership,
                "cannot add members to a direct room",
            );
        }
        let current = self.p().rooms.participants(room_id).await?;
        // Sets, not scans: adding a batch to a big room is linear in both.
        let mut seen: HashSet<UserId> = current.iter().map(|p| p.user_id).collect();
        let new: Vec<UserId> = users.into_iter().filter(|u| seen.insert(*u)).collect();
        if new.is_empty() {
            return fail(ErrorCode::AlreadyParticipant, "already participants");
        }
        rules::check_member_count(current.len() + new.len(), self.limits())?;
        self.ensure_users_exist(&new).await?;
        let now = self.now();
        let rows: Vec<Participant> = new
            .iter()
            .map(|&u| participant(room_id, u, Role::Member, now))
            .collect();
        let added = self.p().rooms.add_participants(room_id, &rows).await?;
        if !added.is_empty() {
            let change = RoomChange::ParticipantsAdded(added.clone());
            self.publish_room_change(Topic::Room(room_id), &room, change.clone(), Some(actor))
                .await;
            for u in &added {
                self.publish_room_change(Topic::User(*u), &room, change.clone(), Some(actor))
                    .await;
            }
            self.notify_membership(&room, actor, &added, NotificationType::AddedToRoom)
                .await;
        }
        let participants = self.p().rooms.participants(room_id).await?;
        Ok(RoomDetails { room, participants })
    }

    /// Removes `user` from a group: moderators remove lower roles, anyone removes themselves
    /// (which is [`leave_room`](ChatEngine::leave_room)).
    pub async fn remove_participant(
        &self,
        actor: UserId,
        room_id: RoomId,
        user: UserId,
    ) -> Result<()> {
        if actor == user {
            return self.leave_room(actor, room_id).await;
        }
        let me = self.require_participant(actor, room_id).await?;
        let room = self.load_room(room_id).await?;
        if room.room_type == RoomType::Direct {
            return fail(
                ErrorCode::DirectRoomMembership,
                "cannot remove members of a direct room",
            );
        }
        let target = self
            .p()
            .rooms
            .participant(room_id, user)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NotRoomParticipant,
                    "not a participant of this room",
                )
            })?;
        rules::check_remove(actor, me.role, user, target.role)?;
        if self.p().rooms.remove_participant(room_id, user).await? {
            let change = RoomChange::ParticipantRemoved(user);
            self.publish_room_change(Topic::Room(room_id), &room, change.clone(), Some(actor))
                .await;
            self.publish_room_change(Topic::User(user), &room, change, Some(actor))
                .await;
            self.notify_membership(&room, actor, &[user], NotificationType::RemovedFromRoom)
                .await;
        }
        Ok(())
    }

    /// Leaves a group. An owner hands ownership to the longest member; the last one out
    /// deletes the room. Direct rooms cannot be left (`DIRECT_ROOM_MEMBERSHIP`): block the
    /// other person instead.
    pub async fn leave_room(&self, actor: UserId, room_id: RoomId) -> Result<()> {
        let me = self.require_participant(actor, room_id).await?;
        let room = self.load_room(room_id).await?;
        if room.room_type == RoomType::Direct {
            return fail(
                ErrorCode::DirectRoomMembership,
                "direct rooms cannot be left",
            );
        }
        let participants = self.p().rooms.participants(room_id).await?;
        let heir = rules::heir(&participants, actor);
        if heir.is_none() {
            self.p().rooms.delete_room(room_id).await?;
            self.publish_room_change(
                Topic::Room(room_id),
                &room,
                RoomChange::Deleted,
                Some(actor),
            )
            .await;
            self.publish_room_change(Topic::User(actor), &room, RoomChange::Deleted, Some(actor))
                .await;
            return Ok(());
        }
        if me.role == Role::Owner {
            if let Some(heir) = heir {
                self.p().rooms.set_role(room_id, heir, Role::Owner).await?;
                let change = RoomChange::RoleChanged(heir, Role::Owner);
                self.publish_room_change(Topic::Room(room_id), &room, change, None)
                    .await;
            }
        }
        self.p().rooms.remove_participant(room_id, actor).await?;
        let change = RoomChange::ParticipantRemoved(actor);
        self.publish_room_change(Topic::Room(room_id), &room, change.clone(), Some(actor))
            .await;
        self.publish_room_change(Topic::User(actor), &room, change, Some(actor))
            .await;
        Ok(())
    }

    /// Marks or unmarks a room as favourite (at most `favorites_max` per user).
    pub async fn set_favorite(&self, actor: UserId, room_id: RoomId, favorite: bool) -> Result<()> {
        let me = self.require_participant(actor, room_id).await?;
        if me.favorite == favorite {
            return Ok(());
        }
        if favorite {
            let count = self
                .p()
                .rooms
                .rooms_of(actor)
                .await?
                .iter()
                .filter(|(_, p)| p.favorite)
                .count();
            if count >= self.limits().favorites_max {
                return fail(
                    ErrorCode::FavoriteLimitExceeded,
                    format!("at most {} favourite rooms", self.limits().favorites_max),
                );
            }
        }
        self.p()
            .rooms
            .set_favorite(room_id, actor, favorite, self.now())
            .await?;
        let room = self.load_room(room_id).await?;
        self.publish_room_change(
            Topic::User(actor),
            &room,
            RoomChange::FavoriteChanged(favorite),
            Some(actor),
        )
        .await;
        Ok(())
    }

    async fn publish_room_change(
        &self,
        topic: Topic,
        room: &Room,
        change: RoomChange,
        by: Option<UserId>,
    ) {
        self.publish(
            topic,
            Event::RoomChanged {
                room: room.clone(),
                change,
                by,
            },
        )
        .await;
    }

    async fn notify_membership(
        &self,
        room: &Room,
        actor: UserId,
        users: &[UserId],
        kind: NotificationType,
    ) {
        let title = room.title.clone().unwrap_or_default();
        let notes = users
            .iter()
            .filter(|u| **u != actor)
            .map(|&u| {
                let text = match kind {
                    NotificationType::RemovedFromRoom => format!("You were removed from {title}"),
                    _ => format!("You were added to {title}"),
                };
                self.new_notification(u, kind, Some(actor), Some(room.id), None, text)
            })
            .collect();
        self.notify(notes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: i64, fav: Option<i64>, activity: i64) -> RoomSummary {
        let room = Room {
            id: RoomId(id),
            room_type: RoomType::Group,
            title: None,
            announcement: None,
            created_by: UserId(1),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            last_seq: Seq::ZERO,
            last_message_id: None,
            last_activity_at: Timestamp(activity),
        };
        let me = Participant {
            favorite: fav.is_some(),
            favorited_at: fav.map(Timestamp),
            ..participant(RoomId(id), UserId(1), Role::Member, Timestamp(0))
        };
        RoomSummary {
            room,
            me,
            participants: vec![],
            last_message: None,
            unread_count: 0,
        }
    }

    fn check(input: &[(i64, Option<i64>, i64)], expect: &[i64]) {
        let mut list: Vec<_> = input.iter().map(|&(id, f, a)| summary(id, f, a)).collect();
        sort_room_list(&mut list);
        let got: Vec<i64> = list.iter().map(|s| s.room.id.0).collect();
        assert_eq!(got, expect, "{input:?}");
    }

    #[test]
    fn room_list_order() {
        check(&[(1, None, 10), (2, None, 30), (3, None, 20)], &[2, 3, 1]);
        check(&[(1, None, 10), (2, Some(5), 0), (3, None, 20)], &[2, 3, 1]);
        check(
            &[(1, Some(1), 50), (2, Some(9), 0), (3, None, 99)],
            &[2, 1, 3],
        );
        check(&[(1, None, 10), (2, None, 10)], &[2, 1]);
    }
}
