//! Friend recommendations over the memory ports: ranking, exclusions, depth validation,
//! pagination, one batched neighbour look-up per BFS level, and cache invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use shoot_core::engine::Recommendation;
use shoot_core::ids::{FriendGroupId, FriendRequestId};
use shoot_core::memory::MemorySocialStore;
use shoot_core::social::{FriendGroup, FriendRequest, FriendRequestStatus, SocialStore};
use shoot_core::{ErrorCode, Limits, PortResult, Timestamp, UserId};

use crate::identity::{Env, code};

/// Delegates to the memory store, counting the neighbour look-ups the BFS may use.
struct CountingSocial {
    inner: Arc<MemorySocialStore>,
    friends_of_many: AtomicUsize,
    friends_of: AtomicUsize,
}

#[async_trait]
impl SocialStore for CountingSocial {
    async fn insert_friend_request(&self, r: &FriendRequest) -> PortResult<()> {
        self.inner.insert_friend_request(r).await
    }
    async fn get_friend_request(&self, id: FriendRequestId) -> PortResult<Option<FriendRequest>> {
        self.inner.get_friend_request(id).await
    }
    async fn pending_request(&self, from: UserId, to: UserId) -> PortResult<Option<FriendRequest>> {
        self.inner.pending_request(from, to).await
    }
    async fn pending_requests_of(
        &self,
        user: UserId,
    ) -> PortResult<(Vec<FriendRequest>, Vec<FriendRequest>)> {
        self.inner.pending_requests_of(user).await
    }
    async fn resolve_friend_request(
        &self,
        id: FriendRequestId,
        status: FriendRequestStatus,
        at: Timestamp,
    ) -> PortResult<FriendRequest> {
        self.inner.resolve_friend_request(id, status, at).await
    }
    async fn add_friendship(&self, a: UserId, b: UserId, at: Timestamp) -> PortResult<()> {
        self.inner.add_friendship(a, b, at).await
    }
    async fn remove_friendship(&self, a: UserId, b: UserId) -> PortResult<bool> {
        self.inner.remove_friendship(a, b).await
    }
    async fn are_friends(&self, a: UserId, b: UserId) -> PortResult<bool> {
        self.inner.are_friends(a, b).await
    }
    async fn friends_of(&self, user: UserId) -> PortResult<Vec<UserId>> {
        self.friends_of.fetch_add(1, Ordering::SeqCst);
        self.inner.friends_of(user).await
    }
    async fn friends_of_many(&self, users: &[UserId]) -> PortResult<Vec<Vec<UserId>>> {
        self.friends_of_many.fetch_add(1, Ordering::SeqCst);
        self.inner.friends_of_many(users).await
    }
    async fn friend_count(&self, user: UserId) -> PortResult<usize> {
        self.inner.friend_count(user).await
    }
    async fn block(&self, blocker: UserId, blocked: UserId, at: Timestamp) -> PortResult<()> {
        self.inner.block(blocker, blocked, at).await
    }
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> PortResult<bool> {
        self.inner.unblock(blocker, blocked).await
    }
    async fn blocked_by(&self, user: UserId) -> PortResult<Vec<UserId>> {
        self.inner.blocked_by(user).await
    }
    async fn blockers_of(&self, user: UserId) -> PortResult<Vec<UserId>> {
        self.inner.blockers_of(user).await
    }
    async fn is_blocked_either(&self, a: UserId, b: UserId) -> PortResult<bool> {
        self.inner.is_blocked_either(a, b).await
    }
    async fn insert_friend_group(&self, g: &FriendGroup) -> PortResult<()> {
        self.inner.insert_friend_group(g).await
    }
    async fn get_friend_group(&self, id: FriendGroupId) -> PortResult<Option<FriendGroup>> {
        self.inner.get_friend_group(id).await
    }
    async fn friend_groups_of(&self, owner: UserId) -> PortResult<Vec<FriendGroup>> {
        self.inner.friend_groups_of(owner).await
    }
    async fn update_friend_group(&self, g: &FriendGroup) -> PortResult<()> {
        self.inner.update_friend_group(g).await
    }
    async fn delete_friend_group(&self, id: FriendGroupId) -> PortResult<bool> {
        self.inner.delete_friend_group(id).await
    }
}

fn summary(recs: Vec<Recommendation>) -> Vec<(String, u32, u8)> {
    recs.into_iter()
        .map(|r| (r.user.username, r.mutual_friends, r.depth))
        .collect()
}

/// alice's friends: bob, carol, dave. erin is a friend of bob and carol; fred of dave; gina
/// of bob; hank of erin; ivan of hank.
async fn graph(env: &Env) -> [UserId; 9] {
    let ids = env
        .users([
            "alice", "bob", "carol", "dave", "erin", "fred", "gina", "hank", "ivan",
        ])
        .await;
    let [alice, bob, carol, dave, erin, fred, gina, hank, ivan] = ids;
    for (a, b) in [
        (alice, bob),
        (alice, carol),
        (alice, dave),
        (bob, erin),
        (carol, erin),
        (dave, fred),
        (bob, gina),
        (erin, hank),
        (hank, ivan),
    ] {
        env.befriend(a, b).await;
    }
    ids
}

fn s(name: &str, mutual: u32, depth: u8) -> (String, u32, u8) {
    (name.to_owned(), mutual, depth)
}

#[tokio::test]
async fn ranked_by_mutual_friends_then_depth_then_id() {
    let env = Env::new();
    let [alice, ..] = graph(&env).await;
    let recs = |depth: Option<u8>| env.engine.recommendations(alice, depth, 20, 0);
    assert_eq!(
        summary(recs(None).await.unwrap()),
        [s("erin", 2, 2), s("fred", 1, 2), s("gina", 1, 2)]
    );
    assert_eq!(
        summary(recs(Some(3)).await.unwrap()),
        [
            s("erin", 2, 2),
            s("fred", 1, 2),
            s("gina", 1, 2),
            s("hank", 0, 3)
        ]
    );
    assert!(recs(Some(1)).await.unwrap().is_empty());
    assert_eq!(code(recs(Some(0)).await), ErrorCode::ValidationFailed);
    assert_eq!(code(recs(Some(4)).await), ErrorCode::ValidationFailed);
}

#[tokio::test]
async fn pending_requests_and_blocks_either_way_are_excluded() {
    let env = Env::new();
    let [alice, _, _, dave, erin, _, gina, hank, _] = graph(&env).await;
    let e = &env.engine;
    e.send_friend_request(erin, alice).await.unwrap();
    e.send_friend_request(alice, hank).await.unwrap();
    e.block_user(gina, alice).await.unwrap();
    let recs = e.recommendations(alice, Some(3), 20, 0).await.unwrap();
    assert_eq!(summary(recs), [s("fred", 1, 2)]);
    // Blocking a friend ends the friendship: dave's side of the graph moves away.
    e.block_user(alice, dave).await.unwrap();
    let recs = e.recommendations(alice, Some(3), 20, 0).await.unwrap();
    assert!(recs.is_empty(), "{recs:?}");
    e.unblock_user(alice, dave).await.unwrap();
    e.unblock_user(gina, alice).await.unwrap();
    let recs = e.recommendations(alice, Some(3), 20, 0).await.unwrap();
    assert_eq!(
        summary(recs),
        [s("gina", 1, 2)],
        "dave is no friend any more and unreachable"
    );
}

#[tokio::test]
async fn pages_with_skip_and_limit() {
    let env = Env::new();
    let [alice, ..] = graph(&env).await;
    let page = |limit, skip| env.engine.recommendations(alice, Some(3), limit, skip);
    assert_eq!(
        summary(page(2, 0).await.unwrap()),
        [s("erin", 2, 2), s("fred", 1, 2)]
    );
    assert_eq!(
        summary(page(2, 2).await.unwrap()),
        [s("gina", 1, 2), s("hank", 0, 3)]
    );
    assert!(page(2, 4).await.unwrap().is_empty());
    // A zero limit still returns one (limits are clamped to 1..=100).
    assert_eq!(page(0, 0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn one_batched_lookup_per_level_and_cached_until_invalidated_or_expired() {
    let slot: Arc<std::sync::Mutex<Option<Arc<CountingSocial>>>> = Arc::default();
    let env = Env::custom(Limits::default(), |ports| {
        let counting = Arc::new(CountingSocial {
            inner: Arc::new(MemorySocialStore::new()),
            friends_of_many: AtomicUsize::new(0),
            friends_of: AtomicUsize::new(0),
        });
        *slot.lock().unwrap() = Some(counting.clone());
        ports.social = counting;
    });
    let counting = slot.lock().unwrap().clone().unwrap();
    let [alice, bob, carol, _dave, _erin, _fred, _gina, hank, ivan] = graph(&env).await;
    let calls = || {
        (
            counting.friends_of_many.load(Ordering::SeqCst),
            counting.friends_of.load(Ordering::SeqCst),
        )
    };
    let recs = || env.engine.recommendations(alice, Some(3), 20, 0);

    let before = calls();
    let first = recs().await.unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(
        calls(),
        (before.0 + 3, before.1),
        "one friends_of_many per level, no friends_of"
    );

    // Cached: a change behind the engine's back is not seen, and nothing is looked up.
    counting
        .inner
        .add_friendship(carol, hank, Timestamp(0))
        .await
        .unwrap();
    assert_eq!(recs().await.unwrap(), first);
    assert_eq!(calls(), (before.0 + 3, before.1));

    // A friendship change through the engine drops the cache of the parties and their
    // friends (alice is carol's friend), so both new edges are seen.
    env.befriend(carol, ivan).await;
    let before = calls();
    assert_eq!(
        summary(recs().await.unwrap()),
        [
            s("erin", 2, 2),
            s("fred", 1, 2),
            s("gina", 1, 2),
            s("hank", 1, 2),
            s("ivan", 1, 2)
        ]
    );
    assert_eq!(calls().0, before.0 + 3);

    // The cache also expires after the TTL.
    counting
        .inner
        .add_friendship(bob, hank, Timestamp(0))
        .await
        .unwrap();
    assert_eq!(summary(recs().await.unwrap())[3], s("hank", 1, 2));
    env.clock
        .advance(Limits::default().recommendation_cache_ttl);
    assert_eq!(
        summary(recs().await.unwrap()),
        [
            s("erin", 2, 2),
            s("hank", 2, 2),
            s("fred", 1, 2),
            s("gina", 1, 2),
            s("ivan", 1, 2)
        ]
    );
}

#[tokio::test]
async fn default_depth_results_stay_exact_for_friends_of_the_parties() {
    let env = Env::new();
    let [alice, bob, ..] = graph(&env).await;
    let zed = env.user("zed").await.id;
    // alice's cached list does not contain zed…
    let before = env
        .engine
        .recommendations(alice, None, 20, 0)
        .await
        .unwrap();
    assert!(before.iter().all(|r| r.user.id != zed));
    // …until bob (alice's friend) befriends zed: alice's cache is dropped with bob's.
    env.befriend(bob, zed).await;
    let after = env
        .engine
        .recommendations(alice, None, 20, 0)
        .await
        .unwrap();
    assert!(
        after
            .iter()
            .any(|r| r.user.id == zed && r.mutual_friends == 1 && r.depth == 2)
    );
}
