//! [`SocialStore`] contract.

use futures::future::join_all;

use super::{expect_already_exists, expect_conflict, expect_not_found, fresh_id, ok, wall_now};
use crate::ids::{FriendGroupId, FriendRequestId, UserId};
use crate::social::{FriendGroup, FriendRequest, FriendRequestStatus, SocialStore};
use crate::time::Timestamp;

fn request(from: UserId, to: UserId, at: Timestamp) -> FriendRequest {
    FriendRequest {
        id: FriendRequestId(fresh_id()),
        from,
        to,
        status: FriendRequestStatus::Pending,
        created_at: at,
        updated_at: at,
    }
}

fn group(owner: UserId, name: &str, members: Vec<UserId>, at: Timestamp) -> FriendGroup {
    FriendGroup {
        id: FriendGroupId(fresh_id()),
        owner,
        name: name.to_owned(),
        description: None,
        members,
        created_at: at,
        updated_at: at,
    }
}

/// Runs the [`SocialStore`] contract.
pub async fn social_store_contract(store: &dyn SocialStore) {
    let t = wall_now();
    let [a, b, c, d, x, y] = [(); 6].map(|_| UserId(fresh_id()));

    // Friend requests.
    let r1 = request(a, b, t);
    let r2 = request(c, a, Timestamp(t.0 + 10));
    let r3 = request(a, d, Timestamp(t.0 + 20));
    for r in [&r1, &r2, &r3] {
        ok(
            store.insert_friend_request(r).await,
            "insert_friend_request",
        );
    }
    expect_already_exists(
        store.insert_friend_request(&request(a, b, t)).await,
        "friend_request",
        "insert_friend_request with a PENDING duplicate",
    );
    let reverse = request(b, a, Timestamp(t.0 + 5));
    ok(
        store.insert_friend_request(&reverse).await,
        "a reverse pending request is a different pair",
    );
    assert_eq!(
        ok(store.get_friend_request(r1.id).await, "get"),
        Some(r1.clone()),
        "round trip"
    );
    assert_eq!(
        ok(
            store.get_friend_request(FriendRequestId(fresh_id())).await,
            "get"
        ),
        None
    );
    assert_eq!(
        ok(store.pending_request(a, b).await, "pending_request"),
        Some(r1.clone())
    );
    assert_eq!(
        ok(store.pending_request(b, a).await, "pending_request").map(|r| r.id),
        Some(reverse.id),
        "pending_request is one direction only"
    );
    let (incoming, outgoing) = ok(store.pending_requests_of(a).await, "pending_requests_of");
    let ids = |v: Vec<FriendRequest>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(incoming),
        vec![r2.id, reverse.id],
        "incoming, newest first"
    );
    assert_eq!(ids(outgoing), vec![r3.id, r1.id], "outgoing, newest first");

    let at = Timestamp(t.0 + 100);
    let done = ok(
        store
            .resolve_friend_request(r1.id, FriendRequestStatus::Accepted, at)
            .await,
        "resolve_friend_request",
    );
    assert_eq!(
        (done.status, done.updated_at),
        (FriendRequestStatus::Accepted, at)
    );
    expect_conflict(
        store
            .resolve_friend_request(r1.id, FriendRequestStatus::Rejected, at)
            .await,
        "resolve_friend_request on a non-PENDING request",
    );
    expect_not_found(
        store
            .resolve_friend_request(
                FriendRequestId(fresh_id()),
                FriendRequestStatus::Rejected,
                at,
            )
            .await,
        "resolve_friend_request absent",
    );
    assert_eq!(
        ok(store.pending_request(a, b).await, "pending_request"),
        None
    );
    ok(
        store.insert_friend_request(&request(a, b, at)).await,
        "a new request after resolution",
    );

    let answers = join_all(
        [
            FriendRequestStatus::Accepted,
            FriendRequestStatus::Rejected,
            FriendRequestStatus::Canceled,
        ]
        .map(|s| store.resolve_friend_request(r3.id, s, at)),
    )
    .await;
    assert_eq!(
        answers.iter().filter(|r| r.is_ok()).count(),
        1,
        "concurrent resolve_friend_request: exactly one MUST win"
    );
    for r in answers.into_iter().filter(|r| r.is_err()) {
        expect_conflict(r, "concurrent resolve_friend_request loser");
    }

    let racers: Vec<FriendRequest> = (0..6).map(|_| request(x, y, t)).collect();
    let results = join_all(racers.iter().map(|r| store.insert_friend_request(r))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "concurrent insert_friend_request for one pair: exactly one MUST succeed"
    );

    // Friendships.
    ok(store.add_friendship(a, b, t).await, "add_friendship");
    ok(
        store.add_friendship(b, a, t).await,
        "add_friendship is idempotent",
    );
    ok(store.add_friendship(c, a, t).await, "add_friendship");
    assert!(
        ok(store.are_friends(a, b).await, "are_friends"),
        "friendship is mutual"
    );
    assert!(
        ok(store.are_friends(b, a).await, "are_friends"),
        "friendship is mutual"
    );
    assert!(!ok(store.are_friends(b, c).await, "are_friends"));
    let mut fa = vec![b, c];
    fa.sort();
    assert_eq!(
        ok(store.friends_of(a).await, "friends_of"),
        fa,
        "friends_of ascending"
    );
    assert_eq!(ok(store.friends_of(b).await, "friends_of"), vec![a]);
    assert_eq!(
        ok(store.friends_of_many(&[b, d, a]).await, "friends_of_many"),
        vec![vec![a], vec![], fa.clone()],
        "friends_of_many: one list per input, in input order"
    );
    assert_eq!(ok(store.friend_count(a).await, "friend_count"), 2);
    assert_eq!(ok(store.friend_count(d).await, "friend_count"), 0);

    // Groups.
    let mut g1 = group(a, "Work", vec![b, c], t);
    let g2 = group(a, "Home", vec![c], Timestamp(t.0 + 1));
    let gb = group(b, "Mine", vec![a], t);
    for g in [&g1, &g2, &gb] {
        ok(store.insert_friend_group(g).await, "insert_friend_group");
    }
    let groups = ok(store.friend_groups_of(a).await, "friend_groups_of");
    assert_eq!(
        groups,
        vec![g1.clone(), g2.clone()],
        "friend_groups_of: the owner's, oldest first"
    );
    g1.name = "Office".to_owned();
    g1.description = Some("desc".to_owned());
    g1.members = vec![c, b];
    g1.updated_at = Timestamp(t.0 + 50);
    ok(store.update_friend_group(&g1).await, "update_friend_group");
    assert_eq!(
        ok(store.get_friend_group(g1.id).await, "get_friend_group"),
        Some(g1.clone())
    );
    expect_not_found(
        store.update_friend_group(&group(a, "x", vec![], t)).await,
        "update_friend_group absent",
    );

    // Unfriending also drops each from the other's groups.
    assert!(
        ok(store.remove_friendship(b, a).await, "remove_friendship"),
        "it existed"
    );
    assert!(
        !ok(store.remove_friendship(a, b).await, "remove_friendship"),
        "already removed"
    );
    assert!(!ok(store.are_friends(a, b).await, "are_friends"));
    assert_eq!(ok(store.friends_of(a).await, "friends_of"), vec![c]);
    let g1_after = ok(store.get_friend_group(g1.id).await, "get").map(|g| g.members);
    assert_eq!(
        g1_after,
        Some(vec![c]),
        "remove_friendship removes the friend from the owner's groups"
    );
    let gb_after = ok(store.get_friend_group(gb.id).await, "get").map(|g| g.members);
    assert_eq!(
        gb_after,
        Some(vec![]),
        "remove_friendship removes the owner from the friend's groups"
    );
    assert!(ok(
        store.delete_friend_group(g2.id).await,
        "delete_friend_group"
    ));
    assert!(
        !ok(
            store.delete_friend_group(g2.id).await,
            "delete_friend_group"
        ),
        "already deleted"
    );
    assert_eq!(ok(store.get_friend_group(g2.id).await, "get"), None);

    // Blocking.
    ok(store.block(a, d, t).await, "block");
    ok(store.block(a, d, t).await, "block is idempotent");
    ok(store.block(a, x, t).await, "block");
    ok(store.block(y, d, t).await, "block");
    let mut ad = vec![d, x];
    ad.sort();
    assert_eq!(
        ok(store.blocked_by(a).await, "blocked_by"),
        ad,
        "blocked_by ascending"
    );
    let mut bd = vec![a, y];
    bd.sort();
    assert_eq!(
        ok(store.blockers_of(d).await, "blockers_of"),
        bd,
        "blockers_of ascending"
    );
    assert!(
        ok(store.is_blocked_either(d, a).await, "is_blocked_either"),
        "either direction"
    );
    assert!(ok(store.is_blocked_either(a, d).await, "is_blocked_either"));
    assert!(!ok(
        store.is_blocked_either(a, y).await,
        "is_blocked_either"
    ));
    assert!(ok(store.unblock(a, d).await, "unblock"), "it existed");
    assert!(!ok(store.unblock(a, d).await, "unblock"), "already removed");
    assert!(!ok(
        store.is_blocked_either(a, d).await,
        "is_blocked_either"
    ));
    assert_eq!(ok(store.blocked_by(a).await, "blocked_by"), vec![x]);
}
