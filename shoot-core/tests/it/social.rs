//! Social use cases over the memory ports: friend requests, friendships, the direct room they
//! open, blocking, friend groups, and the notification and bookmark use cases.

use shoot_core::events::{Event, RoomChange, Topic};
use shoot_core::ids::{FriendGroupId, FriendRequestId, MessageId, NotificationId, RoomId, Seq};
use shoot_core::messages::Message;
use shoot_core::messages::MessageStore as _;
use shoot_core::notifications::NotificationType;
use shoot_core::ports::{Clock as _, IdGenerator as _};
use shoot_core::rooms::RoomStore as _;
use shoot_core::rooms::{Participant, Role, Room, RoomType};
use shoot_core::social::FriendRequestStatus;
use shoot_core::social::SocialStore as _;
use shoot_core::{ErrorCode, Limits, UserId};

use crate::identity::{Env, code, drain, next_event};
use crate::support::text_message;

#[tokio::test]
async fn a_request_notifies_the_target_and_is_listed_both_sides() {
    let env = Env::new();
    let [alice, bob] = env.users(["alice", "bob"]).await;
    let mut to_bob = env.subscribe(Topic::User(bob)).await;
    let request = env.engine.send_friend_request(alice, bob).await.unwrap();
    assert_eq!(
        (request.from, request.to, request.status),
        (alice, bob, FriendRequestStatus::Pending)
    );
    let Event::Notification(n) = &*next_event(&mut to_bob).await else {
        panic!("expected a notification")
    };
    assert_eq!(
        (n.user_id, n.kind, n.actor_id),
        (bob, NotificationType::FriendRequest, Some(alice))
    );
    assert_eq!(&*n.text, "Alice sent you a friend request");
    assert_eq!(env.engine.unread_notification_count(bob).await.unwrap(), 1);
    let bobs = env.engine.friend_requests(bob).await.unwrap();
    assert_eq!(
        (bobs.incoming, bobs.outgoing.len()),
        (vec![request.clone()], 0)
    );
    let alices = env.engine.friend_requests(alice).await.unwrap();
    assert_eq!((alices.incoming.len(), alices.outgoing), (0, vec![request]));
}

#[tokio::test]
async fn requests_are_refused_with_the_precise_code() {
    let env = Env::new();
    let [alice, bob, carol, dave] = env.users(["alice", "bob", "carol", "dave"]).await;
    env.befriend(alice, carol).await;
    env.engine.send_friend_request(alice, bob).await.unwrap();
    env.engine.block_user(dave, alice).await.unwrap();
    let e = &env.engine;
    let check = |target: UserId, expect: ErrorCode| async move {
        assert_eq!(
            code(e.send_friend_request(alice, target).await),
            expect,
            "{target}"
        );
    };
    check(alice, ErrorCode::FriendRequestToSelf).await;
    check(UserId(404), ErrorCode::UserNotFound).await;
    check(bob, ErrorCode::FriendRequestDuplicate).await;
    check(carol, ErrorCode::AlreadyFriends).await;
    check(dave, ErrorCode::UserBlocked).await;
    // Blocked the other way round too.
    assert_eq!(
        code(env.engine.send_friend_request(dave, alice).await),
        ErrorCode::UserBlocked
    );
}

#[tokio::test]
async fn accepting_befriends_opens_the_direct_room_and_notifies() {
    let env = Env::new();
    let [alice, bob] = env.users(["alice", "bob"]).await;
    let request = env.engine.send_friend_request(alice, bob).await.unwrap();
    let mut to_alice = env.subscribe(Topic::User(alice)).await;
    let mut to_bob = env.subscribe(Topic::User(bob)).await;
    let (accepted, room) = env
        .engine
        .accept_friend_request(bob, request.id)
        .await
        .unwrap();
    assert_eq!(
        (accepted.id, accepted.status),
        (request.id, FriendRequestStatus::Accepted)
    );
    assert_eq!(
        (room.room_type, room.title.as_deref()),
        (RoomType::Direct, None)
    );
    let participants = env.stores.rooms.participants(room.id).await.unwrap();
    let mut members: Vec<(UserId, Role)> =
        participants.iter().map(|p| (p.user_id, p.role)).collect();
    members.sort();
    assert_eq!(members, [(alice, Role::Member), (bob, Role::Member)]);
    let friends = env.engine.friends(alice).await.unwrap();
    assert_eq!(friends.iter().map(|u| u.id).collect::<Vec<_>>(), [bob]);
    assert_eq!(env.engine.friends(bob).await.unwrap()[0].id, alice);

    let created = Event::RoomChanged {
        room: room.clone(),
        change: RoomChange::Created,
        by: Some(bob),
    };
    let alice_events = drain(&mut to_alice).await;
    assert!(
        alice_events.iter().any(|e| **e == created),
        "{alice_events:?}"
    );
    let accepted_note = alice_events.iter().find_map(|e| match &**e {
        Event::Notification(n) => Some(n.clone()),
        _ => None,
    });
    let n = accepted_note.expect("FRIEND_ACCEPTED notification");
    assert_eq!(
        (n.kind, n.actor_id, n.room_id),
        (NotificationType::FriendAccepted, Some(bob), Some(room.id))
    );
    assert_eq!(*next_event(&mut to_bob).await, created);

    // Answering again: no longer pending.
    assert_eq!(
        code(env.engine.accept_friend_request(bob, request.id).await),
        ErrorCode::FriendRequestNotPending
    );
    assert_eq!(
        code(env.engine.reject_friend_request(bob, request.id).await),
        ErrorCode::FriendRequestNotPending
    );
}

#[tokio::test]
async fn befriending_again_reuses_the_direct_room() {
    let env = Env::new();
    let [alice, bob] = env.users(["alice", "bob"]).await;
    let request = env.engine.send_friend_request(alice, bob).await.unwrap();
    let (_, first) = env
        .engine
        .accept_friend_request(bob, request.id)
        .await
        .unwrap();
    env.engine.remove_friend(bob, alice).await.unwrap();
    // Alice left the room meanwhile; re-friending brings her back into the same room.
    env.stores
        .rooms
        .remove_participant(first.id, alice)
        .await
        .unwrap();
    let mut to_bob = env.subscribe(Topic::User(bob)).await;
    let request = env.engine.send_friend_request(bob, alice).await.unwrap();
    let (_, again) = env
        .engine
        .accept_friend_request(alice, request.id)
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert!(
        env.stores
            .rooms
            .participant(first.id, alice)
            .await
            .unwrap()
            .is_some()
    );
    let events = drain(&mut to_bob).await;
    assert!(
        !events.iter().any(|e| matches!(
            &**e,
            Event::RoomChanged {
                change: RoomChange::Created,
                ..
            }
        )),
        "no second Created: {events:?}"
    );
}

#[tokio::test]
async fn a_reverse_pending_request_plus_a_new_one_is_an_accept() {
    let env = Env::new();
    let [alice, bob] = env.users(["alice", "bob"]).await;
    let first = env.engine.send_friend_request(alice, bob).await.unwrap();
    let answer = env.engine.send_friend_request(bob, alice).await.unwrap();
    assert_eq!(
        (answer.id, answer.status),
        (first.id, FriendRequestStatus::Accepted)
    );
    assert_eq!(env.engine.friends(bob).await.unwrap()[0].id, alice);
    assert!(
        env.stores
            .rooms
            .find_direct_room(alice, bob)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        env.engine.friend_requests(alice).await.unwrap().outgoing,
        vec![]
    );
}

#[tokio::test]
async fn only_the_right_side_answers_and_others_see_not_found() {
    let env = Env::new();
    let [alice, bob, carol] = env.users(["alice", "bob", "carol"]).await;
    let r = env.engine.send_friend_request(alice, bob).await.unwrap();
    let e = &env.engine;
    assert_eq!(
        code(e.accept_friend_request(alice, r.id).await),
        ErrorCode::FriendRequestNotFound
    );
    assert_eq!(
        code(e.accept_friend_request(carol, r.id).await),
        ErrorCode::FriendRequestNotFound
    );
    assert_eq!(
        code(e.reject_friend_request(alice, r.id).await),
        ErrorCode::FriendRequestNotFound
    );
    assert_eq!(
        code(e.cancel_friend_request(bob, r.id).await),
        ErrorCode::FriendRequestNotFound
    );
    assert_eq!(
        code(e.cancel_friend_request(carol, r.id).await),
        ErrorCode::FriendRequestNotFound
    );
    assert_eq!(
        code(e.accept_friend_request(bob, FriendRequestId(1)).await),
        ErrorCode::FriendRequestNotFound
    );

    let rejected = e.reject_friend_request(bob, r.id).await.unwrap();
    assert_eq!(rejected.status, FriendRequestStatus::Rejected);
    assert!(e.friends(alice).await.unwrap().is_empty());
    // A rejected request does not stop a new one.
    let r2 = e.send_friend_request(alice, bob).await.unwrap();
    let canceled = e.cancel_friend_request(alice, r2.id).await.unwrap();
    assert_eq!(canceled.status, FriendRequestStatus::Canceled);
    assert_eq!(
        code(e.accept_friend_request(bob, r2.id).await),
        ErrorCode::FriendRequestNotPending
    );
    assert!(e.friend_requests(bob).await.unwrap().incoming.is_empty());
}

#[tokio::test]
async fn the_friend_limit_applies_to_both_sides() {
    let mut limits = Limits::default();
    limits.friends_max = 1;
    let env = Env::with_limits(limits);
    let [alice, bob, carol, dave] = env.users(["alice", "bob", "carol", "dave"]).await;
    let pending = env.engine.send_friend_request(carol, alice).await.unwrap();
    env.befriend(alice, bob).await;
    assert_eq!(
        code(env.engine.send_friend_request(alice, carol).await),
        ErrorCode::FriendLimitExceeded
    );
    assert_eq!(
        code(env.engine.send_friend_request(dave, alice).await),
        ErrorCode::FriendLimitExceeded
    );
    assert_eq!(
        code(env.engine.accept_friend_request(alice, pending.id).await),
        ErrorCode::FriendLimitExceeded
    );
    env.befriend(carol, dave).await;
}

#[tokio::test]
async fn removal_is_mutual() {
    let env = Env::new();
    let [alice, bob] = env.users(["alice", "bob"]).await;
    env.befriend(alice, bob).await;
    env.engine.remove_friend(bob, alice).await.unwrap();
    assert!(env.engine.friends(alice).await.unwrap().is_empty());
    assert!(env.engine.friends(bob).await.unwrap().is_empty());
    assert_eq!(
        code(env.engine.remove_friend(alice, bob).await),
        ErrorCode::NotFriends
    );
}

#[tokio::test]
async fn blocking_cancels_requests_ends_friendship_and_unblock_restores_nothing() {
    let env = Env::new();
    let [alice, bob, carol, dave] = env.users(["alice", "bob", "carol", "dave"]).await;
    let e = &env.engine;
    assert_eq!(code(e.block_user(alice, alice).await), ErrorCode::BlockSelf);
    assert_eq!(
        code(e.block_user(alice, UserId(404)).await),
        ErrorCode::UserNotFound
    );
    let outgoing = e.send_friend_request(alice, carol).await.unwrap();
    let incoming = e.send_friend_request(dave, alice).await.unwrap();
    env.befriend(alice, bob).await;

    e.block_user(alice, carol).await.unwrap();
    e.block_user(alice, carol).await.unwrap(); // idempotent
    e.block_user(alice, dave).await.unwrap();
    for r in [outgoing, incoming] {
        let r = env
            .stores
            .social
            .get_friend_request(r.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, FriendRequestStatus::Canceled, "{r:?}");
    }
    assert!(e.friend_requests(alice).await.unwrap().outgoing.is_empty());
    assert!(e.friend_requests(alice).await.unwrap().incoming.is_empty());

    e.block_user(bob, alice).await.unwrap();
    assert!(
        e.friends(alice).await.unwrap().is_empty(),
        "blocking ends the friendship"
    );
    assert!(e.friends(bob).await.unwrap().is_empty());
    assert_eq!(
        e.blocked_users(alice)
            .await
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        [carol, dave]
    );
    e.unblock_user(bob, alice).await.unwrap();
    assert_eq!(
        code(e.unblock_user(bob, alice).await),
        ErrorCode::NotBlocked
    );
    assert!(
        e.friends(bob).await.unwrap().is_empty(),
        "unblock restores nothing"
    );
    e.send_friend_request(bob, alice).await.unwrap();
}

#[tokio::test]
async fn friend_groups_hold_only_friends_and_are_private() {
    let env = Env::new();
    let [alice, bob, carol, dave] = env.users(["alice", "bob", "carol", "dave"]).await;
    env.befriend(alice, bob).await;
    env.befriend(alice, carol).await;
    let e = &env.engine;
    let g = e
        .create_friend_group(
            alice,
            " Work ".into(),
            Some(" colleagues ".into()),
            vec![bob, bob],
        )
        .await
        .unwrap();
    assert_eq!(
        (g.name.as_str(), g.description.as_deref(), g.members.clone()),
        ("Work", Some("colleagues"), vec![bob])
    );
    assert_eq!(e.friend_groups(alice).await.unwrap(), vec![g.clone()]);
    assert!(e.friend_groups(bob).await.unwrap().is_empty());

    let check = |r: shoot_core::Result<shoot_core::social::FriendGroup>, expect: ErrorCode| {
        assert_eq!(code(r), expect);
    };
    check(
        e.create_friend_group(alice, "  ".into(), None, vec![])
            .await,
        ErrorCode::InvalidFriendGroup,
    );
    check(
        e.create_friend_group(alice, "x".repeat(31), None, vec![])
            .await,
        ErrorCode::InvalidFriendGroup,
    );
    check(
        e.create_friend_group(alice, "ok".into(), Some("d".repeat(201)), vec![])
            .await,
        ErrorCode::InvalidFriendGroup,
    );
    check(
        e.create_friend_group(alice, "ok".into(), None, vec![dave])
            .await,
        ErrorCode::NotFriends,
    );
    check(
        e.add_friend_group_member(alice, g.id, dave).await,
        ErrorCode::NotFriends,
    );
    check(
        e.add_friend_group_member(bob, g.id, alice).await,
        ErrorCode::FriendGroupNotFound,
    );
    check(
        e.update_friend_group(bob, g.id, Some("Mine".into()), None)
            .await,
        ErrorCode::FriendGroupNotFound,
    );
    check(
        e.update_friend_group(alice, g.id, Some("".into()), None)
            .await,
        ErrorCode::InvalidFriendGroup,
    );
    check(
        e.remove_friend_group_member(alice, FriendGroupId(1), bob)
            .await,
        ErrorCode::FriendGroupNotFound,
    );
    assert_eq!(
        code(e.delete_friend_group(bob, g.id).await),
        ErrorCode::FriendGroupNotFound
    );

    let g = e.add_friend_group_member(alice, g.id, carol).await.unwrap();
    let g = e.add_friend_group_member(alice, g.id, carol).await.unwrap();
    assert_eq!(g.members, [bob, carol]);
    let g = e
        .update_friend_group(alice, g.id, Some("Team".into()), Some(None))
        .await
        .unwrap();
    assert_eq!((g.name.as_str(), g.description.as_deref()), ("Team", None));
    let g = e
        .remove_friend_group_member(alice, g.id, bob)
        .await
        .unwrap();
    assert_eq!(g.members, [carol]);
    assert_eq!(e.friend_groups(alice).await.unwrap(), vec![g.clone()]);
    e.delete_friend_group(alice, g.id).await.unwrap();
    assert!(e.friend_groups(alice).await.unwrap().is_empty());
    assert_eq!(
        code(e.delete_friend_group(alice, g.id).await),
        ErrorCode::FriendGroupNotFound
    );
}

#[tokio::test]
async fn notification_use_cases_only_touch_the_callers_own() {
    let env = Env::new();
    let [alice, bob, carol] = env.users(["alice", "bob", "carol"]).await;
    let e = &env.engine;
    e.send_friend_request(alice, bob).await.unwrap();
    e.send_friend_request(carol, bob).await.unwrap();
    let list = e.notifications(bob, 10, 0).await.unwrap();
    assert_eq!(
        list.iter().map(|n| n.actor_id).collect::<Vec<_>>(),
        [Some(carol), Some(alice)]
    );
    assert_eq!(
        e.notifications(bob, 1, 1).await.unwrap(),
        vec![list[1].clone()]
    );
    assert_eq!(e.unread_notification_count(bob).await.unwrap(), 2);

    assert_eq!(
        code(e.mark_notification_read(alice, list[0].id).await),
        ErrorCode::NotificationNotFound
    );
    assert_eq!(
        code(e.delete_notification(alice, list[0].id).await),
        ErrorCode::NotificationNotFound
    );
    assert_eq!(
        code(e.mark_notification_read(bob, NotificationId(1)).await),
        ErrorCode::NotificationNotFound
    );
    e.mark_notification_read(bob, list[0].id).await.unwrap();
    assert_eq!(e.unread_notification_count(bob).await.unwrap(), 1);
    assert_eq!(e.mark_all_notifications_read(bob).await.unwrap(), 1);
    assert_eq!(e.unread_notification_count(bob).await.unwrap(), 0);
    e.delete_notification(bob, list[1].id).await.unwrap();
    assert_eq!(e.notifications(bob, 10, 0).await.unwrap().len(), 1);
    assert_eq!(
        code(e.delete_notification(bob, list[1].id).await),
        ErrorCode::NotificationNotFound
    );
}

/// A group room with `members` and one saved message per text, inserted directly in the
/// stores (the message use cases belong to another module).
async fn room_with_messages(
    env: &Env,
    members: &[UserId],
    texts: &[&str],
) -> (RoomId, Vec<MessageId>) {
    let now = env.clock.now();
    let room = Room {
        id: RoomId(env.stores.ids.next_id()),
        room_type: RoomType::Group,
        title: Some("room".into()),
        announcement: None,
        created_by: members[0],
        created_at: now,
        updated_at: now,
        last_seq: Seq::ZERO,
        last_message_id: None,
        last_activity_at: now,
    };
    let participants: Vec<Participant> = members
        .iter()
        .map(|&user_id| Participant {
            room_id: room.id,
            user_id,
            role: Role::Member,
            joined_at: now,
            last_read_seq: Seq::ZERO,
            favorite: false,
            favorited_at: None,
        })
        .collect();
    env.stores
        .rooms
        .create_room(&room, &participants)
        .await
        .unwrap();
    let messages: Vec<Message> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| Message {
            created_at: now,
            ..text_message(
                env.stores.ids.next_id(),
                room.id,
                i as i64 + 1,
                members[0],
                None,
                text,
            )
        })
        .collect();
    env.stores
        .messages
        .insert_messages(&messages)
        .await
        .unwrap();
    (room.id, messages.iter().map(|m| m.id).collect())
}

#[tokio::test]
async fn bookmarks_need_visibility_and_filter_by_room_and_text() {
    let env = Env::new();
    let [alice, bob] = env.users(["alice", "bob"]).await;
    let (r1, m1) = room_with_messages(
        &env,
        &[alice, bob],
        &["Lunch at noon", "The Deploy is done"],
    )
    .await;
    let (r2, m2) = room_with_messages(&env, &[bob], &["bob's secret plans"]).await;
    let e = &env.engine;

    assert_eq!(
        code(e.bookmark_message(alice, m2[0], None).await),
        ErrorCode::MessageNotFound
    );
    assert_eq!(
        code(e.bookmark_message(alice, MessageId(5), None).await),
        ErrorCode::MessageNotFound
    );
    assert_eq!(
        code(
            e.bookmark_message(alice, m1[0], Some("n".repeat(201)))
                .await
        ),
        ErrorCode::ValidationFailed
    );

    let b = e
        .bookmark_message(alice, m1[0], Some("  food ".into()))
        .await
        .unwrap();
    assert_eq!((b.room_id, b.note.as_deref()), (r1, Some("food")));
    env.clock.advance(std::time::Duration::from_secs(1));
    e.bookmark_message(alice, m1[1], Some("   ".into()))
        .await
        .unwrap();
    e.bookmark_message(bob, m2[0], None).await.unwrap();

    let texts = |entries: Vec<shoot_core::engine::BookmarkEntry>| {
        entries
            .into_iter()
            .map(|b| b.message.text.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(e.bookmarks(alice, None, None).await.unwrap()),
        ["The Deploy is done", "Lunch at noon"]
    );
    assert_eq!(
        texts(e.bookmarks(alice, Some(r1), Some("deploy")).await.unwrap()),
        ["The Deploy is done"]
    );
    assert_eq!(
        texts(e.bookmarks(alice, None, Some("FOOD")).await.unwrap()),
        ["Lunch at noon"]
    );
    assert!(e.bookmarks(alice, Some(r2), None).await.unwrap().is_empty());
    assert_eq!(
        texts(e.bookmarks(bob, None, Some(" ")).await.unwrap()),
        ["bob's secret plans"]
    );

    // Re-bookmarking replaces the note.
    e.bookmark_message(alice, m1[0], Some("team lunch".into()))
        .await
        .unwrap();
    let all = e.bookmarks(alice, None, Some("team")).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].bookmark.note.as_deref(), Some("team lunch"));

    e.remove_bookmark(alice, m1[0]).await.unwrap();
    assert_eq!(
        code(e.remove_bookmark(alice, m1[0]).await),
        ErrorCode::BookmarkNotFound
    );
    assert_eq!(
        code(e.remove_bookmark(alice, m2[0]).await),
        ErrorCode::BookmarkNotFound
    );
    assert_eq!(e.bookmarks(alice, None, None).await.unwrap().len(), 1);
}
