//! Room use cases over the memory ports.

use std::time::Duration;

use shoot_core::events::{Event, RoomChange, Topic};
use shoot_core::notifications::NotificationType;
use shoot_core::ports::Clock as _;
use shoot_core::rooms::{Role, RoomStore, RoomType};
use shoot_core::social::SocialStore;
use shoot_core::{ErrorCode, RoomId, UserId};

use crate::pipeline::{Harness, code, wait_for};

fn roles(details: &[shoot_core::rooms::Participant]) -> Vec<(UserId, Role)> {
    details.iter().map(|p| (p.user_id, p.role)).collect()
}

#[tokio::test]
async fn a_direct_room_is_one_per_pair() {
    let h = Harness::new();
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let mut bobs = h.subscribe(Topic::User(bob)).await;
    let (room, created) = h.engine.create_direct_room(alice, bob).await.unwrap();
    assert!(created);
    assert_eq!(room.room_type, RoomType::Direct);
    let (again, created_again) = h.engine.create_direct_room(bob, alice).await.unwrap();
    assert_eq!((again.id, created_again), (room.id, false));
    let change = wait_for(&mut bobs, |e| match e {
        Event::RoomChanged { room, change, .. } => Some((room.id, change.clone())),
        _ => None,
    })
    .await;
    assert_eq!(change, (room.id, RoomChange::Created));
    h.stores
        .social
        .block(carol, alice, h.clock.now())
        .await
        .unwrap();
    let check = |other: UserId, expect: ErrorCode| {
        let h = &h;
        async move {
            assert_eq!(
                code(h.engine.create_direct_room(alice, other).await),
                expect,
                "{other}"
            )
        }
    };
    check(alice, ErrorCode::DirectRoomWithSelf).await;
    check(UserId(404), ErrorCode::UserNotFound).await;
    check(carol, ErrorCode::UserBlocked).await;
    assert_eq!(
        code(h.engine.add_participants(alice, room.id, vec![carol]).await),
        ErrorCode::DirectRoomMembership
    );
    assert_eq!(
        code(h.engine.leave_room(alice, room.id).await),
        ErrorCode::DirectRoomMembership
    );
}

#[tokio::test]
async fn concurrent_direct_room_creation_yields_one_room() {
    let h = std::sync::Arc::new(Harness::new());
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let (a, b) = if i % 2 == 0 {
                    (alice, bob)
                } else {
                    (bob, alice)
                };
                h.engine.create_direct_room(a, b).await.unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (room, c) = t.await.unwrap();
        ids.push(room.id);
        created += usize::from(c);
    }
    ids.dedup();
    assert_eq!((ids.len(), created), (1, 1));
}

#[tokio::test]
async fn group_creation_checks_title_members_and_users() {
    let h = Harness::with_limits(|l| {
        l.group_max_members = 3;
        l.room_title_max = 10;
    });
    let [alice, bob, carol, dave] = h.users(["alice", "bob", "carol", "dave"]).await;
    let check = |title: &'static str, members: Vec<UserId>, expect: ErrorCode| {
        let h = &h;
        async move {
            assert_eq!(
                code(
                    h.engine
                        .create_group_room(alice, title, members.clone())
                        .await
                ),
                expect,
                "{title:?} {members:?}"
            );
        }
    };
    check("", vec![bob], ErrorCode::InvalidRoomTitle).await;
    check("   ", vec![bob], ErrorCode::InvalidRoomTitle).await;
    check("01234567890", vec![bob], ErrorCode::InvalidRoomTitle).await;
    check("team", vec![], ErrorCode::RoomMemberLimit).await;
    check("team", vec![alice], ErrorCode::RoomMemberLimit).await;
    check("team", vec![bob, carol, dave], ErrorCode::RoomMemberLimit).await;
    check("team", vec![bob, UserId(404)], ErrorCode::UserNotFound).await;

    let mut bobs = h.subscribe(Topic::User(bob)).await;
    let details = h
        .engine
        .create_group_room(alice, " team ", vec![bob, bob, alice, carol])
        .await
        .unwrap();
    assert_eq!(details.room.title.as_deref(), Some("team"));
    assert_eq!(
        roles(&details.participants),
        vec![
            (alice, Role::Owner),
            (bob, Role::Member),
            (carol, Role::Member)
        ]
    );
    let note = wait_for(&mut bobs, |e| match e {
        Event::Notification(n) => Some(n.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (note.kind, note.room_id),
        (NotificationType::AddedToRoom, Some(details.room.id))
    );
    assert_eq!(
        h.engine.notifications(alice, 10, 0).await.unwrap().len(),
        0,
        "no notification for the creator"
    );
}

#[tokio::test]
async fn adding_participants_respects_kind_membership_and_size() {
    let h = Harness::with_limits(|l| l.group_max_members = 4);
    let [alice, bob, carol, dave, erin, eve] = h
        .users(["alice", "bob", "carol", "dave", "erin", "eve"])
        .await;
    let room = h.group(alice, &[bob]).await;
    let check = |actor: UserId, users: Vec<UserId>, expect: ErrorCode| {
        let h = &h;
        async move {
            assert_eq!(
                code(h.engine.add_participants(actor, room, users).await),
                expect
            )
        }
    };
    check(eve, vec![carol], ErrorCode::NotRoomParticipant).await;
    check(bob, vec![alice, bob], ErrorCode::AlreadyParticipant).await;
    check(bob, vec![carol, dave, erin], ErrorCode::RoomMemberLimit).await;
    check(bob, vec![UserId(404)], ErrorCode::UserNotFound).await;
    assert_eq!(
        code(
            h.engine
                .add_participants(bob, RoomId(404), vec![carol])
                .await
        ),
        ErrorCode::RoomNotFound
    );
}

#[tokio::test]
async fn members_can_invite_and_invitees_are_notified() {
    let h = Harness::new();
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let details = h
        .engine
        .add_participants(bob, room, vec![carol, carol])
        .await
        .unwrap();
    assert_eq!(details.participants.len(), 3);
    let change = wait_for(&mut in_room, |e| match e {
        Event::RoomChanged { change, .. } => Some(change.clone()),
        _ => None,
    })
    .await;
    assert_eq!(change, RoomChange::ParticipantsAdded(vec![carol]));
    let notes = h.engine.notifications(carol, 10, 0).await.unwrap();
    assert_eq!(
        (notes.len(), notes[0].kind, notes[0].actor_id),
        (1, NotificationType::AddedToRoom, Some(bob))
    );
}

#[tokio::test]
async fn title_and_announcement_need_a_moderator() {
    let h = Harness::with_limits(|l| l.announcement_max = 5);
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let room = h.group(alice, &[bob, carol]).await;
    h.stores
        .rooms
        .set_role(room, bob, Role::Admin)
        .await
        .unwrap();
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    assert_eq!(
        h.engine
            .update_room_title(bob, room, "new")
            .await
            .unwrap()
            .title
            .as_deref(),
        Some("new")
    );
    let change = wait_for(&mut in_room, |e| match e {
        Event::RoomChanged { change, room, .. } => Some((change.clone(), room.title.clone())),
        _ => None,
    })
    .await;
    assert_eq!(change, (RoomChange::Updated, Some("new".into())));
    assert_eq!(
        code(h.engine.update_room_title(carol, room, "mine").await),
        ErrorCode::RoomPermissionDenied
    );
    assert_eq!(
        code(h.engine.update_room_title(alice, room, "").await),
        ErrorCode::InvalidRoomTitle
    );
    let r = h
        .engine
        .set_announcement(alice, room, Some(" hi ".into()))
        .await
        .unwrap();
    assert_eq!(r.announcement.as_deref(), Some("hi"));
    assert_eq!(
        code(
            h.engine
                .set_announcement(alice, room, Some("123456".into()))
                .await
        ),
        ErrorCode::AnnouncementTooLong
    );
    assert_eq!(
        code(h.engine.set_announcement(carol, room, None).await),
        ErrorCode::RoomPermissionDenied
    );
    assert_eq!(
        h.engine
            .set_announcement(alice, room, Some("  ".into()))
            .await
            .unwrap()
            .announcement,
        None
    );
}

#[tokio::test]
async fn removal_follows_roles() {
    let h = Harness::new();
    let [owner, admin, admin2, m1, m2] = h.users(["owner", "admin", "admin2", "m1", "m2"]).await;
    let room = h.group(owner, &[admin, admin2, m1, m2]).await;
    h.stores
        .rooms
        .set_role(room, admin, Role::Admin)
        .await
        .unwrap();
    h.stores
        .rooms
        .set_role(room, admin2, Role::Admin)
        .await
        .unwrap();
    let check = |actor: UserId, target: UserId, expect: Option<ErrorCode>| {
        let h = &h;
        async move {
            let got = h
                .engine
                .remove_participant(actor, room, target)
                .await
                .err()
                .map(|e| e.code());
            assert_eq!(got, expect, "{actor} removes {target}");
        }
    };
    check(m1, m2, Some(ErrorCode::RoomPermissionDenied)).await;
    check(admin, admin2, Some(ErrorCode::RoomPermissionDenied)).await;
    check(admin, owner, Some(ErrorCode::RoomPermissionDenied)).await;
    check(admin, UserId(404), Some(ErrorCode::NotRoomParticipant)).await;
    let mut m1s = h.subscribe(Topic::User(m1)).await;
    check(admin, m1, None).await;
    let change = wait_for(&mut m1s, |e| match e {
        Event::RoomChanged { change, .. } => Some(change.clone()),
        _ => None,
    })
    .await;
    assert_eq!(change, RoomChange::ParticipantRemoved(m1));
    let notes = h.engine.notifications(m1, 10, 0).await.unwrap();
    assert_eq!(notes[0].kind, NotificationType::RemovedFromRoom);
    check(owner, admin2, None).await;
    check(m2, m2, None).await;
    assert_eq!(
        code(h.engine.room(m1, room).await),
        ErrorCode::NotRoomParticipant
    );
    let left: Vec<UserId> = h
        .engine
        .participants(owner, room)
        .await
        .unwrap()
        .iter()
        .map(|p| p.user_id)
        .collect();
    assert_eq!(left, vec![owner, admin]);
}

#[tokio::test]
async fn the_owner_leaving_hands_over_and_the_last_one_deletes() {
    let h = Harness::new();
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let room = h.group(alice, &[bob]).await;
    h.clock.advance(Duration::from_secs(5));
    h.engine
        .add_participants(alice, room, vec![carol])
        .await
        .unwrap();
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    h.engine.leave_room(alice, room).await.unwrap();
    let handed = wait_for(&mut in_room, |e| match e {
        Event::RoomChanged {
            change: RoomChange::RoleChanged(u, r),
            ..
        } => Some((*u, *r)),
        _ => None,
    })
    .await;
    assert_eq!(handed, (bob, Role::Owner));
    assert_eq!(
        roles(&h.engine.participants(bob, room).await.unwrap()),
        vec![(bob, Role::Owner), (carol, Role::Member)]
    );
    h.engine.leave_room(carol, room).await.unwrap();
    h.engine.leave_room(bob, room).await.unwrap();
    assert!(h.stores.rooms.get_room(room).await.unwrap().is_none());
    assert_eq!(
        code(h.engine.room(bob, room).await),
        ErrorCode::RoomNotFound
    );
}

#[tokio::test]
async fn favourites_are_limited_and_sorted_first() {
    let h = Harness::with_limits(|l| l.favorites_max = 2);
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let mut rooms: Vec<RoomId> = Vec::new();
    for _ in 0..4 {
        rooms.push(h.group(alice, &[bob]).await);
        h.clock.advance(Duration::from_secs(1));
    }
    h.engine.set_favorite(alice, rooms[0], true).await.unwrap();
    h.engine.set_favorite(alice, rooms[0], true).await.unwrap();
    h.engine.set_favorite(alice, rooms[1], true).await.unwrap();
    assert_eq!(
        code(h.engine.set_favorite(alice, rooms[2], true).await),
        ErrorCode::FavoriteLimitExceeded
    );
    h.engine.set_favorite(alice, rooms[0], false).await.unwrap();
    h.engine.set_favorite(alice, rooms[2], true).await.unwrap();
    let order: Vec<RoomId> = h
        .engine
        .rooms_of(alice)
        .await
        .unwrap()
        .iter()
        .map(|s| s.room.id)
        .collect();
    assert_eq!(order, vec![rooms[2], rooms[1], rooms[3], rooms[0]]);
    assert_eq!(
        code(h.engine.set_favorite(alice, RoomId(404), true).await),
        ErrorCode::RoomNotFound
    );
}

#[tokio::test]
async fn the_room_list_carries_last_message_and_unread_counts() {
    let h = Harness::started().await;
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let quiet = h.group(alice, &[bob]).await;
    let busy = h.group(alice, &[bob, carol]).await;
    h.send_saved(bob, busy, "one").await;
    h.send_saved(carol, busy, "two").await;
    let last = h.send_saved(alice, busy, "three").await;
    let list = h
        .until(|| async {
            let l = h.engine.rooms_of(bob).await.unwrap();
            (l[0].room.last_seq.0 == 3).then_some(l)
        })
        .await;
    assert_eq!(
        list.iter().map(|s| s.room.id).collect::<Vec<_>>(),
        vec![busy, quiet]
    );
    assert_eq!(
        (
            list[0].unread_count,
            list[0].last_message.as_ref().map(|m| m.id)
        ),
        (2, Some(last.id))
    );
    assert_eq!(list[0].participants.len(), 3);
    assert_eq!(list[0].me.user_id, bob);
    assert_eq!(
        (list[1].unread_count, list[1].last_message.clone()),
        (0, None)
    );
    assert_eq!(
        h.engine
            .unread_counts(bob)
            .await
            .unwrap()
            .iter()
            .find(|(r, _)| *r == busy),
        Some(&(busy, 2))
    );
}

#[tokio::test]
async fn room_search_matches_titles_and_direct_partners() {
    let h = Harness::new();
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let team = h
        .engine
        .create_group_room(alice, "Rust Team", vec![bob])
        .await
        .unwrap()
        .room
        .id;
    let (direct, _) = h.engine.create_direct_room(alice, carol).await.unwrap();
    let check = |q: &'static str, expect: Vec<RoomId>| {
        let h = &h;
        async move {
            let mut got: Vec<RoomId> = h
                .engine
                .search_rooms(alice, q)
                .await
                .unwrap()
                .iter()
                .map(|s| s.room.id)
                .collect();
            got.sort();
            let mut expect = expect;
            expect.sort();
            assert_eq!(got, expect, "{q:?}");
        }
    };
    check("rust", vec![team]).await;
    check("CAROL", vec![direct.id]).await;
    check("alice", vec![]).await;
    check("", vec![team, direct.id]).await;
    assert_eq!(
        h.engine.authorize_room(bob, team).await.unwrap().role,
        Role::Member
    );
    assert_eq!(
        code(h.engine.authorize_room(carol, team).await),
        ErrorCode::NotRoomParticipant
    );
}
