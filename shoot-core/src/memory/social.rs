//! [`MemorySocialStore`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::{PortError, PortResult};
use crate::ids::{FriendGroupId, FriendRequestId, UserId};
use crate::social::{FriendGroup, FriendRequest, FriendRequestStatus, SocialStore};
use crate::time::Timestamp;

/// In-memory [`SocialStore`].
#[derive(Default)]
pub struct MemorySocialStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    requests: BTreeMap<FriendRequestId, FriendRequest>,
    /// (from, to) → the PENDING request between them.
    pending: HashMap<(UserId, UserId), FriendRequestId>,
    friends: HashMap<UserId, BTreeSet<UserId>>,
    /// (blocker, blocked).
    blocks: BTreeSet<(UserId, UserId)>,
    /// (blocked, blocker).
    blocked_rev: BTreeSet<(UserId, UserId)>,
    groups: BTreeMap<FriendGroupId, FriendGroup>,
}

impl MemorySocialStore {
    /// An empty store.
    pub fn new() -> MemorySocialStore {
        MemorySocialStore::default()
    }
}

fn newest_first(v: &mut [FriendRequest]) {
    v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
}

fn range_of(set: &BTreeSet<(UserId, UserId)>, user: UserId) -> Vec<UserId> {
    set.range((user, UserId(i64::MIN))..=(user, UserId(i64::MAX)))
        .map(|(_, b)| *b)
        .collect()
}

#[async_trait]
impl SocialStore for MemorySocialStore {
    async fn insert_friend_request(&self, request: &FriendRequest) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.requests.contains_key(&request.id) {
            return Err(PortError::AlreadyExists {
                what: "friend_request_id",
            });
        }
        let pair = (request.from, request.to);
        if request.status == FriendRequestStatus::Pending {
            if st.pending.contains_key(&pair) {
                return Err(PortError::AlreadyExists {
                    what: "friend_request",
                });
            }
            st.pending.insert(pair, request.id);
        }
        st.requests.insert(request.id, request.clone());
        Ok(())
    }

    async fn get_friend_request(&self, id: FriendRequestId) -> PortResult<Option<FriendRequest>> {
        Ok(lock(&self.state).requests.get(&id).cloned())
    }

    async fn pending_request(&self, from: UserId, to: UserId) -> PortResult<Option<FriendRequest>> {
        let st = lock(&self.state);
        Ok(st
            .pending
            .get(&(from, to))
            .and_then(|id| st.requests.get(id))
            .cloned())
    }

    async fn pending_requests_of(
        &self,
        user: UserId,
    ) -> PortResult<(Vec<FriendRequest>, Vec<FriendRequest>)> {
        let st = lock(&self.state);
        let mut incoming = Vec::new();
        let mut outgoing = Vec::new();
        for ((from, to), id) in &st.pending {
            if let Some(r) = st.requests.get(id) {
                if *to == user {
                    incoming.push(r.clone());
                }
                if *from == user {
                    outgoing.push(r.clone());
                }
            }
        }
        newest_first(&mut incoming);
        newest_first(&mut outgoing);
        Ok((incoming, outgoing))
    }

    async fn resolve_friend_request(
        &self,
        id: FriendRequestId,
        status: FriendRequestStatus,
        at: Timestamp,
    ) -> PortResult<FriendRequest> {
        let mut st = lock(&self.state);
        let Some(r) = st.requests.get_mut(&id) else {
            return Err(PortError::NotFound);
        };
        if r.status != FriendRequestStatus::Pending {
            return Err(PortError::Conflict(format!(
                "friend request {id} is {}",
                r.status.as_str()
            )));
        }
        r.status = status;
        r.updated_at = at;
        let out = r.clone();
        if status != FriendRequestStatus::Pending {
            st.pending.remove(&(out.from, out.to));
        }
        Ok(out)
    }

    async fn add_friendship(&self, a: UserId, b: UserId, _at: Timestamp) -> PortResult<()> {
        let mut st = lock(&self.state);
        st.friends.entry(a).or_default().insert(b);
        st.friends.entry(b).or_default().insert(a);
        Ok(())
    }

    async fn remove_friendship(&self, a: UserId, b: UserId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let existed = st.friends.get_mut(&a).is_some_and(|s| s.remove(&b));
        st.friends.get_mut(&b).map(|s| s.remove(&a));
        for g in st.groups.values_mut() {
            if g.owner == a {
                g.members.retain(|m| *m != b);
            } else if g.owner == b {
                g.members.retain(|m| *m != a);
            }
        }
        Ok(existed)
    }

    async fn are_friends(&self, a: UserId, b: UserId) -> PortResult<bool> {
        Ok(lock(&self.state)
            .friends
            .get(&a)
            .is_some_and(|s| s.contains(&b)))
    }

    async fn friends_of(&self, user: UserId) -> PortResult<Vec<UserId>> {
        let st = lock(&self.state);
        Ok(st
            .friends
            .get(&user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn friends_of_many(&self, users: &[UserId]) -> PortResult<Vec<Vec<UserId>>> {
        let st = lock(&self.state);
        Ok(users
            .iter()
            .map(|u| {
                st.friends
                    .get(u)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn friend_count(&self, user: UserId) -> PortResult<usize> {
        Ok(lock(&self.state)
            .friends
            .get(&user)
            .map_or(0, BTreeSet::len))
    }

    async fn block(&self, blocker: UserId, blocked: UserId, _at: Timestamp) -> PortResult<()> {
        let mut st = lock(&self.state);
        st.blocks.insert((blocker, blocked));
        st.blocked_rev.insert((blocked, blocker));
        Ok(())
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        st.blocked_rev.remove(&(blocked, blocker));
        Ok(st.blocks.remove(&(blocker, blocked)))
    }

    async fn blocked_by(&self, user: UserId) -> PortResult<Vec<UserId>> {
        Ok(range_of(&lock(&self.state).blocks, user))
    }

    async fn blockers_of(&self, user: UserId) -> PortResult<Vec<UserId>> {
        Ok(range_of(&lock(&self.state).blocked_rev, user))
    }

    async fn is_blocked_either(&self, a: UserId, b: UserId) -> PortResult<bool> {
        let st = lock(&self.state);
        Ok(st.blocks.contains(&(a, b)) || st.blocks.contains(&(b, a)))
    }

    async fn insert_friend_group(&self, group: &FriendGroup) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.groups.contains_key(&group.id) {
            return Err(PortError::AlreadyExists {
                what: "friend_group_id",
            });
        }
        st.groups.insert(group.id, group.clone());
        Ok(())
    }

    async fn get_friend_group(&self, id: FriendGroupId) -> PortResult<Option<FriendGroup>> {
        Ok(lock(&self.state).groups.get(&id).cloned())
    }

    async fn friend_groups_of(&self, owner: UserId) -> PortResult<Vec<FriendGroup>> {
        let st = lock(&self.state);
        let mut out: Vec<FriendGroup> = st
            .groups
            .values()
            .filter(|g| g.owner == owner)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn update_friend_group(&self, group: &FriendGroup) -> PortResult<()> {
        let mut st = lock(&self.state);
        let Some(g) = st.groups.get_mut(&group.id) else {
            return Err(PortError::NotFound);
        };
        g.name = group.name.clone();
        g.description = group.description.clone();
        g.members = group.members.clone();
        g.updated_at = group.updated_at;
        Ok(())
    }

    async fn delete_friend_group(&self, id: FriendGroupId) -> PortResult<bool> {
        Ok(lock(&self.state).groups.remove(&id).is_some())
    }
}
