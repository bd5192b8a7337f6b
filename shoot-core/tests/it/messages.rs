//! Message use cases (read, edit, delete, reactions, pins, threads, forwarding, search),
//! read state and sync, over the memory ports.

use std::sync::Arc;
use std::time::Duration;

use shoot_core::engine::{ReadTarget, SyncDirection, SyncRequest};
use shoot_core::events::{Event, MessageChange, Topic};
use shoot_core::ids::{MessageId, Seq};
use shoot_core::messages::{ForwardedFrom, Message, MessageStore};
use shoot_core::notifications::NotificationType;
use shoot_core::rooms::{Role, RoomStore};
use shoot_core::{ErrorCode, RoomId, UserId};

use crate::pipeline::{Harness, code, wait_for};
use crate::support::{SpyMessages, newest};

/// A started harness with a group (alice owner, bob, carol) and one outsider (eve).
async fn setup() -> (Harness, [UserId; 4], RoomId) {
    let h = Harness::started().await;
    let users = h.users(["alice", "bob", "carol", "eve"]).await;
    let room = h.group(users[0], &users[1..3]).await;
    (h, users, room)
}

fn changes(e: &Event) -> Option<(MessageId, MessageChange)> {
    match e {
        Event::MessageChanged {
            message, change, ..
        } => Some((message.id, change.clone())),
        _ => None,
    }
}

#[tokio::test]
async fn messages_are_visible_to_participants_only_with_read_counts() {
    let (h, [alice, bob, carol, eve], room) = setup().await;
    let m = h.send_saved(alice, room, "hello").await;
    assert_eq!(h.engine.message(bob, m.id).await.unwrap().read_count, 0);
    h.engine
        .mark_read(bob, room, ReadTarget::All)
        .await
        .unwrap();
    h.engine
        .mark_read(alice, room, ReadTarget::All)
        .await
        .unwrap();
    assert_eq!(
        h.engine.message(carol, m.id).await.unwrap().read_count,
        1,
        "the sender does not count"
    );
    assert_eq!(
        code(h.engine.message(eve, m.id).await),
        ErrorCode::MessageNotFound
    );
    assert_eq!(
        code(h.engine.message(bob, MessageId(404)).await),
        ErrorCode::MessageNotFound
    );
    let page = h.engine.history(carol, room, newest(0)).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|r| (r.message.id, r.read_count))
            .collect::<Vec<_>>(),
        vec![(m.id, 1)]
    );
    assert_eq!(
        code(h.engine.history(eve, room, newest(10)).await),
        ErrorCode::NotRoomParticipant
    );
}

#[tokio::test]
async fn edits_follow_sender_window_and_deletion() {
    let (h, [alice, bob, _carol, eve], room) = setup().await;
    let m = h.send_saved(alice, room, "first").await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let edited = h
        .engine
        .edit_message(alice, m.id, " second ")
        .await
        .unwrap();
    assert_eq!((&*edited.text, edited.is_edited), ("second", true));
    assert_eq!(
        wait_for(&mut in_room, changes).await,
        (m.id, MessageChange::Edited)
    );
    assert_eq!(
        h.stores
            .messages
            .get_message(m.id)
            .await
            .unwrap()
            .unwrap()
            .text
            .as_ref(),
        "second"
    );
    let check = |actor: UserId, text: &'static str, expect: ErrorCode| {
        let h = &h;
        async move { assert_eq!(code(h.engine.edit_message(actor, m.id, text).await), expect) }
    };
    check(bob, "mine", ErrorCode::NotMessageSender).await;
    check(eve, "mine", ErrorCode::MessageNotFound).await;
    check(alice, "  ", ErrorCode::MessageEmpty).await;
    h.clock.advance(Duration::from_secs(24 * 3600 + 1));
    check(alice, "late", ErrorCode::EditWindowExpired).await;
    let fresh = h.send_saved(alice, room, "fresh").await;
    h.engine.delete_message(alice, fresh.id).await.unwrap();
    assert_eq!(
        code(h.engine.edit_message(alice, fresh.id, "x").await),
        ErrorCode::MessageDeleted
    );
}

#[tokio::test]
async fn deletes_leave_tombstones_and_follow_roles() {
    let (h, [alice, bob, carol, _eve], room) = setup().await;
    let by_bob = h.send_saved(bob, room, "bob's").await;
    let by_carol = h.send_saved(carol, room, "carol's").await;
    let pinned = h.send_saved(carol, room, "pinned").await;
    h.engine.pin_message(alice, pinned.id).await.unwrap();
    assert_eq!(
        code(h.engine.delete_message(carol, by_bob.id).await),
        ErrorCode::NotMessageSender
    );
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let gone = h.engine.delete_message(bob, by_bob.id).await.unwrap();
    assert_eq!((&*gone.text, gone.is_deleted), ("", true));
    assert_eq!(
        wait_for(&mut in_room, changes).await,
        (by_bob.id, MessageChange::Deleted)
    );
    // The owner deletes anybody's message; an admin too.
    h.engine.delete_message(alice, by_carol.id).await.unwrap();
    h.stores
        .rooms
        .set_role(room, bob, Role::Admin)
        .await
        .unwrap();
    h.engine.delete_message(bob, pinned.id).await.unwrap();
    assert!(
        h.engine
            .pinned_messages(alice, room)
            .await
            .unwrap()
            .is_empty(),
        "deleting unpins"
    );
    // Deleting twice is harmless.
    assert!(
        h.engine
            .delete_message(bob, by_bob.id)
            .await
            .unwrap()
            .is_deleted
    );
    let history = h.engine.history(alice, room, newest(10)).await.unwrap();
    let seqs: Vec<(i64, bool)> = history
        .iter()
        .map(|r| (r.message.seq.0, r.message.is_deleted))
        .collect();
    assert_eq!(
        seqs,
        vec![(1, true), (2, true), (3, true)],
        "tombstones keep their place"
    );
}

#[tokio::test]
async fn reactions_are_per_code_and_notify_the_author() {
    let (h, [alice, bob, carol, eve], room) = setup().await;
    let m = h.send_saved(alice, room, "react").await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let after = h.engine.add_reaction(bob, m.id, "like").await.unwrap();
    assert_eq!(after.reactions.get("like"), Some(&vec![bob]));
    let change = wait_for(&mut in_room, changes).await;
    assert_eq!(
        change,
        (
            m.id,
            MessageChange::Reaction {
                code: "like".into(),
                user_id: bob,
                added: true
            }
        )
    );
    h.engine.add_reaction(bob, m.id, "love").await.unwrap();
    h.engine.add_reaction(bob, m.id, "like").await.unwrap();
    h.engine.add_reaction(carol, m.id, "like").await.unwrap();
    let after = h.engine.add_reaction(alice, m.id, "wow").await.unwrap();
    assert_eq!(after.reactions.get("like"), Some(&vec![bob, carol]));
    assert_eq!(after.reactions.get("love"), Some(&vec![bob]));
    let notes = h.engine.notifications(alice, 10, 0).await.unwrap();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.kind == NotificationType::Reaction)
            .count(),
        3,
        "not for her own or repeats"
    );
    let after = h.engine.remove_reaction(bob, m.id, "love").await.unwrap();
    assert_eq!(after.reactions.get("love"), None);
    assert!(h.engine.remove_reaction(bob, m.id, "love").await.is_ok());
    assert_eq!(
        code(h.engine.add_reaction(bob, m.id, "nope").await),
        ErrorCode::UnknownReaction
    );
    assert_eq!(
        code(h.engine.add_reaction(eve, m.id, "like").await),
        ErrorCode::MessageNotFound
    );
    let types = h.engine.reaction_types().await.unwrap();
    assert_eq!(
        types.iter().map(|t| t.code.as_str()).collect::<Vec<_>>(),
        ["like", "love", "haha", "wow", "sad", "angry"]
    );
}

#[tokio::test]
async fn pins_are_limited_and_need_a_moderator_in_groups() {
    let (h, [alice, bob, _carol, eve], room) = setup().await;
    let mut ms: Vec<Message> = Vec::new();
    for i in 0..4 {
        ms.push(h.send_saved(bob, room, &format!("m{i}")).await);
    }
    assert_eq!(
        code(h.engine.pin_message(bob, ms[0].id).await),
        ErrorCode::RoomPermissionDenied
    );
    assert_eq!(
        code(h.engine.pin_message(eve, ms[0].id).await),
        ErrorCode::MessageNotFound
    );
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let pinned = h.engine.pin_message(alice, ms[0].id).await.unwrap();
    assert_eq!(pinned.pin.map(|p| p.pinned_by), Some(alice));
    assert_eq!(
        wait_for(&mut in_room, changes).await,
        (ms[0].id, MessageChange::Pinned)
    );
    assert_eq!(
        h.engine.pin_message(alice, ms[0].id).await.unwrap().pin,
        pinned.pin,
        "no-op"
    );
    h.clock.advance(Duration::from_secs(1));
    h.engine.pin_message(alice, ms[1].id).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    h.engine.toggle_pin(alice, ms[2].id).await.unwrap();
    assert_eq!(
        code(h.engine.pin_message(alice, ms[3].id).await),
        ErrorCode::PinLimitExceeded
    );
    let order: Vec<MessageId> = h
        .engine
        .pinned_messages(bob, room)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(order, vec![ms[2].id, ms[1].id, ms[0].id]);
    let unpinned = h.engine.toggle_pin(alice, ms[2].id).await.unwrap();
    assert_eq!(unpinned.pin, None);
    h.engine.unpin_message(alice, ms[2].id).await.unwrap();
    h.engine.pin_message(alice, ms[3].id).await.unwrap();
    // Anyone pins in a direct room.
    let (direct, _) = h.engine.create_direct_room(bob, eve).await.unwrap();
    let dm = h.send_saved(eve, direct.id, "dm").await;
    assert!(
        h.engine
            .pin_message(bob, dm.id)
            .await
            .unwrap()
            .pin
            .is_some()
    );
}

#[tokio::test]
async fn threads_summarise_replies() {
    let (h, [alice, bob, carol, _eve], room) = setup().await;
    let root = h.send_saved(alice, room, "root").await;
    let mut replies = Vec::new();
    for (who, text) in [(bob, "r1"), (carol, "r2"), (bob, "r3")] {
        let mut cmd = h.cmd(room, text);
        cmd.thread_id = Some(root.id);
        let r = h.engine.send_message(who, cmd).await.unwrap();
        replies.push(h.saved(r.message_id).await);
    }
    let threads = h
        .until(|| async {
            let t = h.engine.threads(alice, room, 10).await.unwrap();
            (t.first().is_some_and(|t| t.reply_count == 3)).then_some(t)
        })
        .await;
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].root.id, root.id);
    assert_eq!(
        threads[0].last_reply.as_ref().map(|m| m.id),
        Some(replies[2].id)
    );
    assert_eq!(threads[0].participants, vec![bob, carol]);
    let detail = h
        .engine
        .thread(carol, replies[0].id, Some(replies[0].seq), 10)
        .await
        .unwrap();
    assert_eq!(detail.root.id, root.id, "a reply's id resolves to its root");
    assert_eq!(
        detail.replies.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![replies[1].id, replies[2].id]
    );
}

#[tokio::test]
async fn forwarding_copies_to_rooms_the_user_is_in() {
    let (h, [alice, bob, carol, eve], room) = setup().await;
    let other = h.group(bob, &[carol]).await;
    let foreign = h.group(eve, &[carol]).await;
    let src = h.send_saved(alice, room, "original").await;
    let receipts = h
        .engine
        .forward_message(bob, src.id, vec![other, room, other], Some(" fyi ".into()))
        .await
        .unwrap();
    assert_eq!(receipts.len(), 2);
    for r in &receipts {
        let copy = h.saved(r.message_id).await;
        assert_eq!(&*copy.text, "fyi\noriginal");
        assert_eq!(copy.sender_id, bob);
        assert_eq!(
            copy.forwarded_from,
            Some(ForwardedFrom {
                message_id: src.id,
                room_id: room,
                sender_id: alice
            })
        );
    }
    // The copy's tempId is `fwd:{source}:{target}:{now}`: a repeat within the same
    // millisecond is a duplicate (double-click protection), a later one a new copy.
    let again = h
        .engine
        .forward_message(bob, src.id, vec![other], None)
        .await
        .unwrap();
    assert_eq!(
        (again[0].message_id, again[0].duplicate),
        (receipts[0].message_id, true)
    );
    h.clock.advance(Duration::from_millis(1));
    let plain = h
        .engine
        .forward_message(bob, src.id, vec![other], None)
        .await
        .unwrap();
    assert_eq!(&*h.saved(plain[0].message_id).await.text, "original");
    assert_eq!(
        code(
            h.engine
                .forward_message(bob, src.id, vec![foreign], None)
                .await
        ),
        ErrorCode::NotRoomParticipant
    );
    assert_eq!(
        code(
            h.engine
                .forward_message(eve, src.id, vec![foreign], None)
                .await
        ),
        ErrorCode::MessageNotFound
    );
    assert_eq!(
        code(h.engine.forward_message(bob, src.id, vec![], None).await),
        ErrorCode::ValidationFailed
    );
}

#[tokio::test]
async fn search_finds_live_messages_of_the_room() {
    let (h, [alice, bob, _carol, eve], room) = setup().await;
    h.send_saved(alice, room, "Rust is great").await;
    let deleted = h.send_saved(bob, room, "rust belt").await;
    h.send_saved(bob, room, "python").await;
    h.engine.delete_message(bob, deleted.id).await.unwrap();
    let found = h
        .engine
        .search_messages(bob, room, "RUST", 10)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|m| &*m.text).collect::<Vec<_>>(),
        vec!["Rust is great"]
    );
    assert!(
        h.engine
            .search_messages(bob, room, "  ", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(h.engine.search_messages(eve, room, "rust", 10).await),
        ErrorCode::NotRoomParticipant
    );
}

#[tokio::test]
async fn read_cursors_move_forward_only_and_push_updates() {
    let (h, [alice, bob, _carol, eve], room) = setup().await;
    let mut ms = Vec::new();
    for i in 0..4 {
        ms.push(h.send_saved(alice, room, &format!("m{i}")).await);
    }
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let mut bobs = h.subscribe(Topic::User(bob)).await;
    let check = |target: ReadTarget, expect: i64| {
        let h = &h;
        async move {
            assert_eq!(
                h.engine.mark_read(bob, room, target).await.unwrap(),
                Seq(expect),
                "{target:?}"
            )
        }
    };
    check(ReadTarget::Seq(Seq(2)), 2).await;
    let receipt = wait_for(&mut in_room, |e| match e {
        Event::ReadReceipt {
            user_id,
            last_read_seq,
            ..
        } => Some((*user_id, *last_read_seq)),
        _ => None,
    })
    .await;
    assert_eq!(receipt, (bob, Seq(2)));
    let unread = wait_for(&mut bobs, |e| match e {
        Event::RoomUpdate { unread_count, .. } => Some(*unread_count),
        _ => None,
    })
    .await;
    assert_eq!(unread, 2);
    check(ReadTarget::Seq(Seq(1)), 2).await;
    check(ReadTarget::Message(ms[2].id), 3).await;
    check(ReadTarget::Seq(Seq(99)), 4).await;
    check(ReadTarget::All, 4).await;
    assert_eq!(h.engine.unread_counts(bob).await.unwrap(), vec![(room, 0)]);
    assert_eq!(
        code(h.engine.mark_read(eve, room, ReadTarget::All).await),
        ErrorCode::NotRoomParticipant
    );
    assert_eq!(
        code(
            h.engine
                .mark_read(bob, room, ReadTarget::Message(MessageId(404)))
                .await
        ),
        ErrorCode::MessageNotFound
    );
}

#[tokio::test]
async fn concurrent_syncs_share_their_store_reads_and_each_gets_its_own_page() {
    let store = Arc::new(SpyMessages::default());
    let s = store.clone();
    let h = Harness::custom(|l| l.sync_page_limit = 3, move |p| p.messages = s);
    h.engine.start().await.unwrap();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let mut rooms: Vec<(RoomId, i64)> = Vec::new();
    for r in 0..5 {
        let room = h.group(alice, &[bob]).await;
        let n = r + 2;
        for i in 1..=n {
            let sent = h.send(alice, room, &format!("room {r} message {i}")).await;
            // Stored through the spy (the harness's own store is not the one in use).
            let store = &store;
            h.until(|| async move { store.inner.get_message(sent.message_id).await.unwrap() })
                .await;
        }
        rooms.push((room, n));
    }
    // Every room from every cursor, two of them asked twice, all at once.
    let mut asks: Vec<(RoomId, i64, i64)> = rooms
        .iter()
        .flat_map(|(room, n)| (0..=*n).map(move |cursor| (*room, cursor, *n)))
        .collect();
    asks.push(asks[3]);
    asks.push(asks[0]);
    store.history_pages.lock().unwrap().clear();
    let pages = futures::future::join_all(asks.iter().map(|(room, cursor, _)| {
        h.engine.sync(
            bob,
            SyncRequest {
                room_id: *room,
                last_seq: Some(Seq(*cursor)),
                last_message_id: None,
                direction: SyncDirection::After,
            },
        )
    }))
    .await;
    for ((room, cursor, n), page) in asks.iter().zip(pages) {
        let page = page.unwrap();
        let got: Vec<(RoomId, i64)> = page
            .messages
            .iter()
            .map(|r| (r.message.room_id, r.message.seq.0))
            .collect();
        let expect: Vec<(RoomId, i64)> = (cursor + 1..=*n).take(3).map(|s| (*room, s)).collect();
        assert_eq!(got, expect, "room {room}, after {cursor}");
        assert_eq!(page.room_id, *room);
        assert_eq!(page.has_more, n - cursor > 3, "room {room}, after {cursor}");
        assert_eq!(page.latest_seq, Seq(*n));
    }
    let calls = store.history_pages.lock().unwrap().clone();
    let distinct = asks.len() - 2;
    assert!(
        calls.iter().any(|pages| *pages > 1) && calls.iter().sum::<usize>() <= distinct,
        "the pages were read together, each distinct page once: {calls:?} for {} syncs",
        asks.len()
    );
}

#[tokio::test]
async fn sync_returns_exactly_the_missed_pages() {
    let h = Harness::custom(
        |l| {
            l.sync_initial_limit = 5;
            l.sync_page_limit = 3;
        },
        |_| {},
    );
    h.engine.start().await.unwrap();
    let [alice, bob, eve] = h.users(["alice", "bob", "eve"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut ids = Vec::new();
    for i in 1..=8 {
        ids.push(h.send_saved(alice, room, &format!("m{i}")).await.id);
    }
    let check = |last_seq: Option<i64>,
                 last_id: Option<MessageId>,
                 dir: SyncDirection,
                 expect: Vec<i64>,
                 more: bool| {
        let h = &h;
        async move {
            let req = SyncRequest {
                room_id: room,
                last_seq: last_seq.map(Seq),
                last_message_id: last_id,
                direction: dir,
            };
            let page = h.engine.sync(bob, req).await.unwrap();
            let got: Vec<i64> = page.messages.iter().map(|r| r.message.seq.0).collect();
            assert_eq!(
                (got, page.has_more, page.latest_seq),
                (expect, more, Seq(8)),
                "{last_seq:?} {dir:?}"
            );
        }
    };
    check(
        None,
        None,
        SyncDirection::Initial,
        vec![4, 5, 6, 7, 8],
        true,
    )
    .await;
    check(Some(0), None, SyncDirection::After, vec![1, 2, 3], true).await;
    check(Some(3), None, SyncDirection::After, vec![4, 5, 6], true).await;
    check(Some(5), None, SyncDirection::After, vec![6, 7, 8], false).await;
    check(Some(8), None, SyncDirection::After, vec![], false).await;
    check(None, Some(ids[5]), SyncDirection::After, vec![7, 8], false).await;
    check(Some(4), None, SyncDirection::Before, vec![1, 2, 3], false).await;
    check(Some(8), None, SyncDirection::Before, vec![5, 6, 7], true).await;
    check(None, None, SyncDirection::Before, vec![4, 5, 6, 7, 8], true).await;
    let none = SyncRequest {
        room_id: room,
        last_seq: None,
        last_message_id: None,
        direction: SyncDirection::Initial,
    };
    assert_eq!(
        code(h.engine.sync(eve, none.clone()).await),
        ErrorCode::NotRoomParticipant
    );
    let bad = SyncRequest {
        last_message_id: Some(MessageId(404)),
        direction: SyncDirection::After,
        ..none
    };
    assert_eq!(
        code(h.engine.sync(bob, bad).await),
        ErrorCode::MessageNotFound
    );
}
