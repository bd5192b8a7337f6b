//! Social use cases: friend requests, friendships, blocking and friend groups.
//!
//! Blocking also ends an existing friendship (as KakaoTalk and Discord do) and cancels pending
//! requests both ways; unblocking restores nothing. Every change of friendships, pending
//! requests or blocks invalidates the cached recommendations of those affected.

use std::collections::HashSet;

use tracing::{info, warn};

use crate::engine::ChatEngine;
use crate::error::{Error, ErrorCode, PortError, Result, fail};
use crate::events::{Event, RoomChange, Topic};
use crate::identity::User;
use crate::ids::{FriendGroupId, FriendRequestId, RoomId, Seq, UserId};
use crate::notifications::NotificationType;
use crate::rooms::{Participant, Role, Room, RoomType};
use crate::social::rules::{self, Answer, RequestFacts, RequestOutcome};
use crate::social::{FriendGroup, FriendRequest, FriendRequestStatus};

/// The caller's pending friend requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FriendRequests {
    /// Addressed to the caller, newest first.
    pub incoming: Vec<FriendRequest>,
    /// Sent by the caller, newest first.
    pub outgoing: Vec<FriendRequest>,
}

fn group_not_found() -> Error {
    Error::new(ErrorCode::FriendGroupNotFound, "friend group not found")
}

fn not_friends() -> Error {
    Error::new(ErrorCode::NotFriends, "not friends")
}

impl ChatEngine {
    /// Sends a friend request to `target` (see [`rules::decide_request`] for every refusal).
    /// When `target` already asked the caller, their request is accepted instead and returned
    /// ACCEPTED (the direct room is opened as by [`accept_friend_request`](Self::accept_friend_request)).
    /// The target is notified (FRIEND_REQUEST).
    pub async fn send_friend_request(
        &self,
        actor: UserId,
        target: UserId,
    ) -> Result<FriendRequest> {
        let social = &self.p().social;
        let target_user = self.p().users.get_user(target).await?;
        let reverse = social.pending_request(target, actor).await?;
        let counts = social.friends_of_many(&[actor, target]).await?;
        let facts = RequestFacts {
            target_exists: target_user.is_some(),
            blocked_either: social.is_blocked_either(actor, target).await?,
            already_friends: social.are_friends(actor, target).await?,
            pending_same_way: social.pending_request(actor, target).await?.is_some(),
            pending_reverse: reverse.is_some(),
            actor_friends: counts.first().map_or(0, Vec::len),
            target_friends: counts.get(1).map_or(0, Vec::len),
        };
        match (
            rules::decide_request(actor, target, &facts, self.limits())?,
            reverse,
        ) {
            (RequestOutcome::AcceptReverse, Some(reverse)) => {
                let (request, _room) = self.accept_pending_friend_request(actor, reverse).await?;
                Ok(request)
            }
            _ => {
                let now = self.now();
                let request = FriendRequest {
                    id: FriendRequestId(self.next_id()),
                    from: actor,
                    to: target,
                    status: FriendRequestStatus::Pending,
                    created_at: now,
                    updated_at: now,
                };
                match social.insert_friend_request(&request).await {
                    Ok(()) => {}
                    Err(PortError::AlreadyExists { .. }) => {
                        return fail(
                            ErrorCode::FriendRequestDuplicate,
                            "a friend request is already pending",
                        );
                    }
                    Err(e) => return Err(e.into()),
                }
                self.invalidate_recommendations(&[actor, target], false)
                    .await;
                let name = self.notification_name(actor).await;
                let n = self.new_notification(
                    target,
                    NotificationType::FriendRequest,
                    Some(actor),
                    None,
                    None,
                    format!("{name} sent you a friend request"),
                );
                self.notify(vec![n]).await;
                info!(from = %actor, to = %target, request_id = %request.id, "friend request sent");
                Ok(request)
            }
        }
    }

    /// Accepts a request addressed to the caller: the two become friends and their direct
    /// room is opened (or reused). Returns the ACCEPTED request and the room.
    pub async fn accept_friend_request(
        &self,
        actor: UserId,
        id: FriendRequestId,
    ) -> Result<(FriendRequest, Room)> {
        let request = self.p().social.get_friend_request(id).await?;
        rules::check_answer(request.as_ref(), actor, Answer::Accept)?;
        let Some(request) = request else {
            return fail(ErrorCode::FriendRequestNotFound, "friend request not found");
        };
        self.accept_pending_friend_request(actor, request).await
    }

    /// Rejects a request addressed to the caller.
    pub async fn reject_friend_request(
        &self,
        actor: UserId,
        id: FriendRequestId,
    ) -> Result<FriendRequest> {
        self.answer_friend_request_as(actor, id, Answer::Reject)
            .await
    }

    /// Withdraws a request the caller sent.
    pub async fn cancel_friend_request(
        &self,
        actor: UserId,
        id: FriendRequestId,
    ) -> Result<FriendRequest> {
        self.answer_friend_request_as(actor, id, Answer::Cancel)
            .await
    }

    /// The caller's pending requests, incoming and outgoing.
    pub async fn friend_requests(&self, actor: UserId) -> Result<FriendRequests> {
        let (incoming, outgoing) = self.p().social.pending_requests_of(actor).await?;
        Ok(FriendRequests { incoming, outgoing })
    }

    /// The caller's friends, ascending by id.
    pub async fn friends(&self, actor: UserId) -> Result<Vec<User>> {
        let ids = self.p().social.friends_of(actor).await?;
        self.users(&ids).await
    }

    /// Ends a friendship (mutually). `NOT_FRIENDS` if there was none. The direct room stays.
    pub async fn remove_friend(&self, actor: UserId, friend: UserId) -> Result<()> {
        if !self.p().social.remove_friendship(actor, friend).await? {
            return Err(not_friends());
        }
        self.invalidate_recommendations(&[actor, friend], true)
            .await;
        info!(user = %actor, friend = %friend, "friendship removed");
        Ok(())
    }

    /// Blocks `target` (`BLOCK_SELF`, `USER_NOT_FOUND`): pending requests between the two are
    /// canceled and an existing friendship ends. Idempotent.
    pub async fn block_user(&self, actor: UserId, target: UserId) -> Result<()> {
        rules::check_block(actor, target)?;
        if self.p().users.get_user(target).await?.is_none() {
            return fail(ErrorCode::UserNotFound, "user not found");
        }
        let social = &self.p().social;
        let now = self.now();
        social.block(actor, target, now).await?;
        for (from, to) in [(actor, target), (target, actor)] {
            if let Some(r) = social.pending_request(from, to).await? {
                match social
                    .resolve_friend_request(r.id, FriendRequestStatus::Canceled, now)
                    .await
                {
                    Ok(_) | Err(PortError::Conflict(_) | PortError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        social.remove_friendship(actor, target).await?;
        self.invalidate_recommendations(&[actor, target], true)
            .await;
        info!(blocker = %actor, blocked = %target, "user blocked");
        Ok(())
    }

    /// Unblocks `target` (`NOT_BLOCKED` if not blocked). Restores nothing.
    pub async fn unblock_user(&self, actor: UserId, target: UserId) -> Result<()> {
        if !self.p().social.unblock(actor, target).await? {
            return fail(ErrorCode::NotBlocked, "user is not blocked");
        }
        self.invalidate_recommendations(&[actor, target], false)
            .await;
        Ok(())
    }

    /// Users the caller blocks, ascending by id.
    pub async fn blocked_users(&self, actor: UserId) -> Result<Vec<User>> {
        let ids = self.p().social.blocked_by(actor).await?;
        self.users(&ids).await
    }

    /// The caller's friend groups, oldest first.
    pub async fn friend_groups(&self, actor: UserId) -> Result<Vec<FriendGroup>> {
        Ok(self.p().social.friend_groups_of(actor).await?)
    }

    /// Creates a friend group (`INVALID_FRIEND_GROUP` for a bad name or description); every
    /// member must be a friend of the caller (`NOT_FRIENDS`). Duplicate members count once.
    pub async fn create_friend_group(
        &self,
        actor: UserId,
        name: String,
        description: Option<String>,
        members: Vec<UserId>,
    ) -> Result<FriendGroup> {
        let name = rules::normalize_group_name(&name, self.limits())?;
        let description = rules::normalize_group_description(description.as_deref())?;
        let mut seen = HashSet::new();
        let members: Vec<UserId> = members.into_iter().filter(|m| seen.insert(*m)).collect();
        if !members.is_empty() {
            let friends: HashSet<UserId> = self
                .p()
                .social
                .friends_of(actor)
                .await?
                .into_iter()
                .collect();
            if members.iter().any(|m| !friends.contains(m)) {
                return Err(not_friends());
            }
        }
        let now = self.now();
        let group = FriendGroup {
            id: FriendGroupId(self.next_id()),
            owner: actor,
            name,
            description,
            members,
            created_at: now,
            updated_at: now,
        };
        self.p().social.insert_friend_group(&group).await?;
        Ok(group)
    }

    /// Renames a group and/or changes its description (`Some(None)` clears it).
    pub async fn update_friend_group(
        &self,
        actor: UserId,
        id: FriendGroupId,
        name: Option<String>,
        description: Option<Option<String>>,
    ) -> Result<FriendGroup> {
        let mut group = self.own_friend_group(actor, id).await?;
        if let Some(name) = name {
            group.name = rules::normalize_group_name(&name, self.limits())?;
        }
        if let Some(description) = description {
            group.description = rules::normalize_group_description(description.as_deref())?;
        }
        group.updated_at = self.now();
        self.save_friend_group(&group).await?;
        Ok(group)
    }

    /// Deletes one of the caller's groups.
    pub async fn delete_friend_group(&self, actor: UserId, id: FriendGroupId) -> Result<()> {
        self.own_friend_group(actor, id).await?;
        if !self.p().social.delete_friend_group(id).await? {
            return Err(group_not_found());
        }
        Ok(())
    }

    /// Adds a friend to one of the caller's groups (`NOT_FRIENDS` if not a friend; already a
    /// member is a no-op).
    pub async fn add_friend_group_member(
        &self,
        actor: UserId,
        id: FriendGroupId,
        friend: UserId,
    ) -> Result<FriendGroup> {
        let mut group = self.own_friend_group(actor, id).await?;
        if !self.p().social.are_friends(actor, friend).await? {
            return Err(not_friends());
        }
        if !group.members.contains(&friend) {
            group.members.push(friend);
            group.updated_at = self.now();
            self.save_friend_group(&group).await?;
        }
        Ok(group)
    }

    /// Removes a member from one of the caller's groups (not a member is a no-op).
    pub async fn remove_friend_group_member(
        &self,
        actor: UserId,
        id: FriendGroupId,
        friend: UserId,
    ) -> Result<FriendGroup> {
        let mut group = self.own_friend_group(actor, id).await?;
        if group.members.contains(&friend) {
            group.members.retain(|m| *m != friend);
            group.updated_at = self.now();
            self.save_friend_group(&group).await?;
        }
        Ok(group)
    }

    // ---- internals ----

    async fn own_friend_group(&self, actor: UserId, id: FriendGroupId) -> Result<FriendGroup> {
        match self.p().social.get_friend_group(id).await? {
            Some(g) if g.owner == actor => Ok(g),
            _ => Err(group_not_found()),
        }
    }

    async fn save_friend_group(&self, group: &FriendGroup) -> Result<()> {
        match self.p().social.update_friend_group(group).await {
            Ok(()) => Ok(()),
            Err(PortError::NotFound) => Err(group_not_found()),
            Err(e) => Err(e.into()),
        }
    }

    async fn answer_friend_request_as(
        &self,
        actor: UserId,
        id: FriendRequestId,
        answer: Answer,
    ) -> Result<FriendRequest> {
        let request = self.p().social.get_friend_request(id).await?;
        rules::check_answer(request.as_ref(), actor, answer)?;
        let resolved = self.resolve_friend_request_as(id, answer).await?;
        self.invalidate_recommendations(&[resolved.from, resolved.to], false)
            .await;
        Ok(resolved)
    }

    async fn resolve_friend_request_as(
        &self,
        id: FriendRequestId,
        answer: Answer,
    ) -> Result<FriendRequest> {
        match self
            .p()
            .social
            .resolve_friend_request(id, answer.status(), self.now())
            .await
        {
            Ok(r) => Ok(r),
            Err(PortError::Conflict(_)) => fail(
                ErrorCode::FriendRequestNotPending,
                "friend request is no longer pending",
            ),
            Err(PortError::NotFound) => {
                fail(ErrorCode::FriendRequestNotFound, "friend request not found")
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Accepts `request` (already checked to be addressed to `actor`).
    async fn accept_pending_friend_request(
        &self,
        actor: UserId,
        request: FriendRequest,
    ) -> Result<(FriendRequest, Room)> {
        let social = &self.p().social;
        let requester = request.from;
        if social.is_blocked_either(actor, requester).await? {
            return fail(ErrorCode::UserBlocked, "this user cannot be added");
        }
        let counts = social.friends_of_many(&[actor, requester]).await?;
        rules::check_friend_limit(
            counts.first().map_or(0, Vec::len),
            counts.get(1).map_or(0, Vec::len),
            self.limits(),
        )?;
        let accepted = self
            .resolve_friend_request_as(request.id, Answer::Accept)
            .await?;
        social.add_friendship(actor, requester, self.now()).await?;
        self.invalidate_recommendations(&[actor, requester], true)
            .await;
        let room = self.open_friend_direct_room(actor, requester).await?;
        let name = self.notification_name(actor).await;
        let n = self.new_notification(
            requester,
            NotificationType::FriendAccepted,
            Some(actor),
            Some(room.id),
            None,
            format!("{name} accepted your friend request"),
        );
        self.notify(vec![n]).await;
        info!(user = %actor, friend = %requester, room_id = %room.id, "friend request accepted");
        Ok((accepted, room))
    }

    /// Opens the direct room of the pair, or reuses it (re-adding a participant who left).
    async fn open_friend_direct_room(&self, actor: UserId, other: UserId) -> Result<Room> {
        let now = self.now();
        let room = Room {
            id: RoomId(self.next_id()),
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
        let participant = |user| Participant {
            room_id: room.id,
            user_id: user,
            role: Role::Member,
            joined_at: now,
            last_read_seq: Seq::ZERO,
            favorite: false,
            favorited_at: None,
        };
        let (a, b) = (participant(actor), participant(other));
        let (room, created) = self.p().rooms.create_direct_room(&room, [&a, &b]).await?;
        if created {
            for user in [actor, other] {
                let event = Event::RoomChanged {
                    room: room.clone(),
                    change: RoomChange::Created,
                    by: Some(actor),
                };
                self.publish(Topic::User(user), event).await;
            }
            return Ok(room);
        }
        let present: HashSet<UserId> = self
            .p()
            .rooms
            .participants(room.id)
            .await?
            .into_iter()
            .map(|p| p.user_id)
            .collect();
        let missing: Vec<Participant> = [actor, other]
            .into_iter()
            .filter(|u| !present.contains(u))
            .map(|u| Participant {
                room_id: room.id,
                ..participant(u)
            })
            .collect();
        if !missing.is_empty() {
            let added = self.p().rooms.add_participants(room.id, &missing).await?;
            if !added.is_empty() {
                let event = Event::RoomChanged {
                    room: room.clone(),
                    change: RoomChange::ParticipantsAdded(added.clone()),
                    by: Some(actor),
                };
                self.publish(Topic::Room(room.id), event.clone()).await;
                for user in added {
                    self.publish(Topic::User(user), event.clone()).await;
                }
            }
        }
        Ok(room)
    }

    /// The nickname of `user` for notification texts (falls back to the id).
    async fn notification_name(&self, user: UserId) -> String {
        match self.p().users.get_user(user).await {
            Ok(Some(u)) => u.nickname,
            _ => format!("User {user}"),
        }
    }

    /// Drops the cached recommendations of `users` and, with `with_friends`, of their friends
    /// (whose friends-of-friends changed). Default-depth results are then exact; deeper ones
    /// of users further away may be stale for up to the cache TTL. Failures are logged: a
    /// stale cache is not worth failing the use case.
    pub(crate) async fn invalidate_recommendations(&self, users: &[UserId], with_friends: bool) {
        let mut all: Vec<UserId> = users.to_vec();
        if with_friends {
            match self.p().social.friends_of_many(users).await {
                Ok(lists) => all.extend(lists.into_iter().flatten()),
                Err(e) => warn!(error = %e, "friend look-up for cache invalidation failed"),
            }
        }
        let mut seen = HashSet::new();
        for user in all.into_iter().filter(|u| seen.insert(*u)) {
            if let Err(e) = self
                .p()
                .ephemeral
                .delete_prefix(&super::recommend::cache_prefix(user))
                .await
            {
                warn!(user_id = %user, error = %e, "recommendation cache invalidation failed");
            }
        }
    }
}
