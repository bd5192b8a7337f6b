//! Social graph: friend requests, friendships, friend groups and blocking.

pub mod bfs;
pub mod rules;

use async_trait::async_trait;

use crate::error::PortResult;
use crate::ids::{FriendGroupId, FriendRequestId, UserId};
use crate::time::Timestamp;

/// Lifecycle of a friend request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum FriendRequestStatus {
    /// Awaiting an answer.
    Pending,
    /// Accepted: the two are friends.
    Accepted,
    /// Rejected by the recipient.
    Rejected,
    /// Withdrawn by the sender.
    Canceled,
}

impl FriendRequestStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FriendRequestStatus::Pending => "PENDING",
            FriendRequestStatus::Accepted => "ACCEPTED",
            FriendRequestStatus::Rejected => "REJECTED",
            FriendRequestStatus::Canceled => "CANCELED",
        }
    }
}

/// A friend request from one user to another.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FriendRequest {
    /// Id.
    pub id: FriendRequestId,
    /// Sender.
    pub from: UserId,
    /// Recipient.
    pub to: UserId,
    /// Status.
    pub status: FriendRequestStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last status change.
    pub updated_at: Timestamp,
}

/// A private label grouping some of the owner's friends.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FriendGroup {
    /// Id.
    pub id: FriendGroupId,
    /// Owner; only they see it.
    pub owner: UserId,
    /// Name, 1–30 characters, unique per owner is not required.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Members (friends of the owner), in insertion order.
    pub members: Vec<UserId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Storage of the social graph.
#[async_trait]
pub trait SocialStore: Send + Sync + 'static {
    /// Inserts a request. MUST fail with `AlreadyExists { what: "friend_request" }` when a
    /// PENDING request with the same `from` and `to` exists, also under concurrent calls.
    async fn insert_friend_request(&self, request: &FriendRequest) -> PortResult<()>;

    /// The request with this id.
    async fn get_friend_request(&self, id: FriendRequestId) -> PortResult<Option<FriendRequest>>;

    /// The PENDING request from `from` to `to`, if any (one direction only).
    async fn pending_request(&self, from: UserId, to: UserId) -> PortResult<Option<FriendRequest>>;

    /// PENDING requests addressed to `user` and sent by `user`, each newest first.
    async fn pending_requests_of(
        &self,
        user: UserId,
    ) -> PortResult<(Vec<FriendRequest>, Vec<FriendRequest>)>;

    /// Moves a PENDING request to `status`. MUST fail with `Conflict` if it is not PENDING
    /// (so of two concurrent answers exactly one wins) and `NotFound` if absent.
    async fn resolve_friend_request(
        &self,
        id: FriendRequestId,
        status: FriendRequestStatus,
        at: Timestamp,
    ) -> PortResult<FriendRequest>;

    /// Records a mutual friendship. Idempotent.
    async fn add_friendship(&self, a: UserId, b: UserId, at: Timestamp) -> PortResult<()>;

    /// Removes the mutual friendship; returns whether it existed. Also removes each from the
    /// other's friend groups.
    async fn remove_friendship(&self, a: UserId, b: UserId) -> PortResult<bool>;

    /// Whether `a` and `b` are friends.
    async fn are_friends(&self, a: UserId, b: UserId) -> PortResult<bool>;

    /// Friends of `user`, ascending by id.
    async fn friends_of(&self, user: UserId) -> PortResult<Vec<UserId>>;

    /// Friends of each of `users` in one round trip: one entry per input user, in input
    /// order, each list ascending by id. This is the batched neighbour look-up of BFS.
    async fn friends_of_many(&self, users: &[UserId]) -> PortResult<Vec<Vec<UserId>>>;

    /// Number of friends of `user`.
    async fn friend_count(&self, user: UserId) -> PortResult<usize>;

    /// `blocker` blocks `blocked`. Idempotent.
    async fn block(&self, blocker: UserId, blocked: UserId, at: Timestamp) -> PortResult<()>;

    /// Removes the block; returns whether it existed.
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> PortResult<bool>;

    /// Users `user` blocks, ascending by id.
    async fn blocked_by(&self, user: UserId) -> PortResult<Vec<UserId>>;

    /// Users who block `user`, ascending by id.
    async fn blockers_of(&self, user: UserId) -> PortResult<Vec<UserId>>;

    /// Whether either of the two blocks the other.
    async fn is_blocked_either(&self, a: UserId, b: UserId) -> PortResult<bool>;

    /// Inserts a friend group.
    async fn insert_friend_group(&self, group: &FriendGroup) -> PortResult<()>;

    /// The group with this id.
    async fn get_friend_group(&self, id: FriendGroupId) -> PortResult<Option<FriendGroup>>;

    /// Groups owned by `owner`, oldest first.
    async fn friend_groups_of(&self, owner: UserId) -> PortResult<Vec<FriendGroup>>;

    /// Replaces the group with the same id (name, description, members, updated_at).
    /// MUST fail with `NotFound` if absent.
    async fn update_friend_group(&self, group: &FriendGroup) -> PortResult<()>;

    /// Deletes the group; returns whether it existed.
    async fn delete_friend_group(&self, id: FriendGroupId) -> PortResult<bool>;
}
