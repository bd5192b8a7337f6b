//! [`BookmarkStore`], [`ScheduleStore`] and [`NotificationStore`] contracts.

use std::collections::HashSet;

use futures::future::join_all;

use super::{expect_conflict, expect_not_found, fresh_id, ok, wall_now};
use crate::bookmarks::{Bookmark, BookmarkStore};
use crate::ids::{MessageId, NotificationId, RoomId, ScheduleId, UserId};
use crate::messages::MessageType;
use crate::notifications::{Notification, NotificationStore, NotificationType};
use crate::schedule::{Repeat, ScheduleOutcome, ScheduleStatus, ScheduleStore, ScheduledMessage};
use crate::time::Timestamp;

/// Runs the [`BookmarkStore`] contract.
pub async fn bookmark_store_contract(store: &dyn BookmarkStore) {
    let t = wall_now();
    let (u, v) = (UserId(fresh_id()), UserId(fresh_id()));
    let (r1, r2) = (RoomId(fresh_id()), RoomId(fresh_id()));
    let mk = |user, room, at: i64| Bookmark {
        user_id: user,
        message_id: MessageId(fresh_id()),
        room_id: room,
        note: None,
        created_at: Timestamp(t.0 + at),
    };
    let b1 = mk(u, r1, 1);
    let b2 = mk(u, r2, 2);
    let mut b3 = mk(u, r1, 3);
    let other = mk(v, r1, 4);
    for b in [&b1, &b2, &b3, &other] {
        ok(store.upsert_bookmark(b).await, "upsert_bookmark");
    }
    assert_eq!(
        ok(store.bookmarks_of(u, None).await, "bookmarks_of"),
        vec![b3.clone(), b2.clone(), b1.clone()],
        "bookmarks_of: the user's, newest first"
    );
    assert_eq!(
        ok(store.bookmarks_of(u, Some(r1)).await, "bookmarks_of"),
        vec![b3.clone(), b1.clone()],
        "bookmarks_of filtered by room"
    );
    b3.note = Some("remember".to_owned());
    b3.created_at = Timestamp(t.0 + 5);
    ok(store.upsert_bookmark(&b3).await, "upsert_bookmark replaces");
    let mine = ok(store.bookmarks_of(u, Some(r1)).await, "bookmarks_of");
    assert_eq!(
        mine,
        vec![b3.clone(), b1.clone()],
        "upsert replaces the note, no duplicate"
    );
    assert!(
        ok(
            store.delete_bookmark(u, b1.message_id).await,
            "delete_bookmark"
        ),
        "existed"
    );
    assert!(
        !ok(
            store.delete_bookmark(u, b1.message_id).await,
            "delete_bookmark"
        ),
        "already gone"
    );
    assert!(
        !ok(
            store.delete_bookmark(u, other.message_id).await,
            "delete_bookmark"
        ),
        "not u's bookmark"
    );
    assert_eq!(
        ok(store.bookmarks_of(v, None).await, "bookmarks_of"),
        vec![other]
    );
    assert!(
        ok(
            store.bookmarks_of(UserId(fresh_id()), None).await,
            "bookmarks_of"
        )
        .is_empty()
    );
}

/// Runs the [`ScheduleStore`] contract.
///
/// Works with due times in 1970 and leaves none of its schedules PENDING. Precondition: the
/// store holds no other PENDING schedule due before 1970-01-02 (only a crashed earlier run
/// could leave one).
pub async fn schedule_store_contract(store: &dyn ScheduleStore) {
    let base = Timestamp(3_600_000); // 1970-01-01T01:00Z
    let at = |ms: i64| Timestamp(base.0 + ms);
    let sender = UserId(fresh_id());
    let room = RoomId(fresh_id());
    let run = fresh_id();
    let owner = |name: &str| format!("{name}-{run}");
    let (a, b, c, d) = (owner("a"), owner("b"), owner("c"), owner("d"));
    let mk = |due: Timestamp, status: ScheduleStatus| ScheduledMessage {
        id: ScheduleId(fresh_id()),
        room_id: room,
        sender_id: sender,
        text: "scheduled".to_owned(),
        message_type: MessageType::Text,
        scheduled_at: due,
        repeat: None,
        status,
        created_at: base,
        updated_at: base,
        sent_count: 0,
        last_error: None,
        claimed_by: None,
        claim_expires_at: None,
    };
    let s1 = mk(at(-1_000), ScheduleStatus::Pending);
    let mut s2 = mk(at(-500), ScheduleStatus::Pending);
    s2.repeat = Some(Repeat::Daily);
    let s3 = mk(at(3_600_000), ScheduleStatus::Pending);
    let s4 = mk(at(-2_000), ScheduleStatus::Canceled);
    let ours: HashSet<ScheduleId> = [s1.id, s2.id, s3.id, s4.id].into_iter().collect();
    for s in [&s3, &s1, &s4, &s2] {
        ok(store.insert_schedule(s).await, "insert_schedule");
    }
    assert_eq!(
        ok(store.get_schedule(s1.id).await, "get_schedule"),
        Some(s1.clone()),
        "round trip"
    );
    assert_eq!(
        ok(
            store.get_schedule(ScheduleId(fresh_id())).await,
            "get_schedule"
        ),
        None
    );
    let listed: Vec<ScheduleId> = ok(store.schedules_of(sender).await, "schedules_of")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        vec![s4.id, s1.id, s2.id, s3.id],
        "schedules_of by scheduled_at ascending"
    );

    let mine = |v: Vec<ScheduledMessage>| -> Vec<ScheduledMessage> {
        v.into_iter().filter(|s| ours.contains(&s.id)).collect()
    };
    let ids = |v: &[ScheduledMessage]| v.iter().map(|s| s.id).collect::<Vec<_>>();

    // Claims: PENDING, due, unclaimed (or lapsed), earliest first, limited.
    let lease_a = at(60_000);
    let first = ok(store.claim_due(base, &a, lease_a, 1).await, "claim_due");
    assert_eq!(
        ids(&first),
        vec![s1.id],
        "claim_due: earliest due first, at most limit"
    );
    let claimed = mine(ok(
        store.claim_due(base, &a, lease_a, 10).await,
        "claim_due",
    ));
    assert_eq!(
        ids(&claimed),
        vec![s2.id],
        "claim_due skips live claims, future and non-PENDING schedules"
    );
    assert_eq!(
        (
            claimed[0].claimed_by.as_deref(),
            claimed[0].claim_expires_at
        ),
        (Some(a.as_str()), Some(lease_a)),
        "claim_due returns the claim it took"
    );
    let stolen = mine(ok(
        store.claim_due(at(1_000), &b, at(70_000), 10).await,
        "claim_due",
    ));
    assert!(
        stolen.is_empty(),
        "claim_due MUST NOT hand out a live claim, got {:?}",
        ids(&stolen)
    );

    // Updates are refused while claimed.
    let mut edit = s2.clone();
    edit.text = "changed".to_owned();
    edit.updated_at = at(2_000);
    expect_conflict(
        store.update_pending_schedule(&edit).await,
        "update_pending_schedule while claimed",
    );

    // The lease lapses: another owner takes over and the old owner can no longer finish.
    let lease_b = at(200_000);
    let taken = mine(ok(
        store.claim_due(at(61_000), &b, lease_b, 10).await,
        "claim_due",
    ));
    assert_eq!(
        ids(&taken),
        vec![s1.id, s2.id],
        "claim_due takes lapsed claims"
    );
    assert!(
        !ok(
            store
                .complete_claim(s1.id, &a, ScheduleOutcome::Sent, at(61_500))
                .await,
            "complete_claim"
        ),
        "complete_claim by a former owner MUST return false"
    );
    assert_eq!(
        ok(store.get_schedule(s1.id).await, "get").map(|s| s.status),
        Some(ScheduleStatus::Pending)
    );
    assert!(ok(
        store
            .complete_claim(s1.id, &b, ScheduleOutcome::Sent, at(62_000))
            .await,
        "complete_claim"
    ));
    let done = ok(store.get_schedule(s1.id).await, "get").expect("exists");
    assert_eq!(
        (done.status, done.sent_count, done.claimed_by.as_deref()),
        (ScheduleStatus::Sent, 1, None),
        "Sent: status SENT, one more sent, claim cleared"
    );
    let next = at(86_400_000);
    assert!(ok(
        store
            .complete_claim(
                s2.id,
                &b,
                ScheduleOutcome::SentAndRescheduled(next),
                at(62_000)
            )
            .await,
        "complete_claim"
    ));
    let again = ok(store.get_schedule(s2.id).await, "get").expect("exists");
    assert_eq!(
        (
            again.status,
            again.scheduled_at,
            again.sent_count,
            again.claimed_by.as_deref()
        ),
        (ScheduleStatus::Pending, next, 1, None),
        "SentAndRescheduled: stays PENDING at the next time"
    );
    assert!(
        !ok(
            store
                .complete_claim(s2.id, &b, ScheduleOutcome::Sent, at(62_000))
                .await,
            "complete_claim"
        ),
        "a finished claim cannot be completed twice"
    );

    // update_pending_schedule.
    expect_conflict(
        store.update_pending_schedule(&s1).await,
        "update_pending_schedule on a SENT schedule",
    );
    let mut edit = again.clone();
    edit.text = "changed".to_owned();
    edit.message_type = MessageType::Url;
    edit.scheduled_at = at(7_200_000);
    edit.repeat = Some(Repeat::Weekly);
    edit.updated_at = at(63_000);
    ok(
        store.update_pending_schedule(&edit).await,
        "update_pending_schedule",
    );
    let stored = ok(store.get_schedule(s2.id).await, "get").expect("exists");
    assert_eq!(
        (
            stored.text.as_str(),
            stored.message_type,
            stored.scheduled_at,
            stored.repeat,
            stored.updated_at
        ),
        (
            "changed",
            MessageType::Url,
            at(7_200_000),
            Some(Repeat::Weekly),
            at(63_000)
        ),
        "update_pending_schedule replaces text, type, time, repeat and updated_at"
    );
    expect_not_found(
        store
            .update_pending_schedule(&mk(base, ScheduleStatus::Pending))
            .await,
        "update_pending_schedule absent",
    );

    // Released and Failed.
    let late = at(8_000_000);
    let claimed = mine(ok(
        store.claim_due(late, &c, at(8_100_000), 10).await,
        "claim_due",
    ));
    assert_eq!(ids(&claimed), vec![s3.id, s2.id], "earliest due first");
    assert!(ok(
        store
            .complete_claim(s3.id, &c, ScheduleOutcome::Released, late)
            .await,
        "complete_claim"
    ));
    let released = ok(store.get_schedule(s3.id).await, "get").expect("exists");
    assert_eq!(
        (
            released.status,
            released.sent_count,
            released.claimed_by.as_deref()
        ),
        (ScheduleStatus::Pending, 0, None),
        "Released: still PENDING, unclaimed, nothing sent"
    );
    assert!(ok(
        store
            .complete_claim(
                s2.id,
                &c,
                ScheduleOutcome::Failed("left the room".to_owned()),
                late
            )
            .await,
        "complete_claim"
    ));
    let failed = ok(store.get_schedule(s2.id).await, "get").expect("exists");
    assert_eq!(
        (
            failed.status,
            failed.last_error.as_deref(),
            failed.claimed_by.as_deref()
        ),
        (ScheduleStatus::Failed, Some("left the room"), None),
        "Failed: status FAILED with the reason"
    );
    let reclaimed = mine(ok(
        store.claim_due(late, &d, at(8_100_000), 10).await,
        "claim_due",
    ));
    assert_eq!(
        ids(&reclaimed),
        vec![s3.id],
        "a released schedule is claimable again"
    );
    assert!(ok(
        store
            .complete_claim(s3.id, &d, ScheduleOutcome::Sent, late)
            .await,
        "complete_claim"
    ));

    // Concurrent claimers never share a schedule.
    let batch: Vec<ScheduledMessage> = (0..8)
        .map(|i| mk(at(10_000 + i), ScheduleStatus::Pending))
        .collect();
    for s in &batch {
        ok(store.insert_schedule(s).await, "insert_schedule");
    }
    let batch_ids: HashSet<ScheduleId> = batch.iter().map(|s| s.id).collect();
    let owners: Vec<String> = (0..4).map(|i| owner(&format!("racer{i}"))).collect();
    let results = join_all(
        owners
            .iter()
            .map(|o| store.claim_due(late, o, at(9_000_000), 3)),
    )
    .await;
    let mut seen = HashSet::new();
    let mut claims: Vec<(ScheduleId, String)> = Vec::new();
    for (o, r) in owners.iter().zip(results) {
        for s in ok(r, "concurrent claim_due") {
            if batch_ids.contains(&s.id) {
                assert!(
                    seen.insert(s.id),
                    "concurrent claim_due handed schedule {} out twice",
                    s.id
                );
                claims.push((s.id, o.clone()));
            }
        }
    }
    // A claimer may legitimately come back short under contention; sweep up the rest.
    let sweeper = owner("sweeper");
    loop {
        let rest: Vec<ScheduledMessage> = ok(
            store.claim_due(late, &sweeper, at(9_000_000), 8).await,
            "claim_due",
        )
        .into_iter()
        .filter(|s| batch_ids.contains(&s.id))
        .collect();
        if rest.is_empty() {
            break;
        }
        for s in rest {
            assert!(
                seen.insert(s.id),
                "claim_due handed schedule {} out while claimed",
                s.id
            );
            claims.push((s.id, sweeper.clone()));
        }
    }
    assert_eq!(seen.len(), 8, "every due schedule is claimed exactly once");
    for (id, o) in claims {
        assert!(ok(
            store
                .complete_claim(id, &o, ScheduleOutcome::Sent, late)
                .await,
            "complete_claim"
        ));
    }
}

/// Runs the [`NotificationStore`] contract.
pub async fn notification_store_contract(store: &dyn NotificationStore) {
    let t = wall_now();
    let (u, v) = (UserId(fresh_id()), UserId(fresh_id()));
    let mk = |user, i: i64| Notification {
        id: NotificationId(fresh_id()),
        user_id: user,
        kind: NotificationType::Mention,
        actor_id: Some(v),
        room_id: Some(RoomId(42)),
        message_id: Some(MessageId(fresh_id())),
        text: format!("notification {i}"),
        is_read: false,
        created_at: Timestamp(t.0 + i),
    };
    let ns: Vec<Notification> = (1..=5).map(|i| mk(u, i)).collect();
    let theirs = mk(v, 9);
    ok(
        store.insert_notifications(&ns).await,
        "insert_notifications",
    );
    ok(
        store
            .insert_notifications(std::slice::from_ref(&theirs))
            .await,
        "insert_notifications",
    );
    ok(
        store.insert_notifications(&[]).await,
        "insert_notifications of nothing",
    );
    let ids = |v: Vec<Notification>| v.into_iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ok(
            store.notifications_of(u, 10, 0).await,
            "notifications_of"
        )),
        ns.iter().rev().map(|n| n.id).collect::<Vec<_>>(),
        "notifications_of: newest first"
    );
    assert_eq!(
        ok(store.notifications_of(u, 2, 1).await, "notifications_of"),
        vec![ns[3].clone(), ns[2].clone()],
        "notifications_of: limit and offset"
    );
    assert!(ok(store.notifications_of(u, 10, 5).await, "notifications_of").is_empty());
    assert_eq!(
        ok(
            store.unread_notification_count(u).await,
            "unread_notification_count"
        ),
        5
    );
    assert!(ok(
        store.mark_notification_read(u, ns[0].id).await,
        "mark_notification_read"
    ));
    assert!(
        !ok(
            store.mark_notification_read(v, ns[1].id).await,
            "mark_notification_read"
        ),
        "mark_notification_read of someone else's notification is false"
    );
    assert!(!ok(
        store
            .mark_notification_read(u, NotificationId(fresh_id()))
            .await,
        "mark_notification_read"
    ));
    assert_eq!(
        ok(
            store.unread_notification_count(u).await,
            "unread_notification_count"
        ),
        4
    );
    let first = ok(store.notifications_of(u, 10, 0).await, "notifications_of");
    assert!(
        first[4].is_read && !first[3].is_read,
        "only the marked one is read"
    );
    assert_eq!(
        ok(store.mark_all_notifications_read(u).await, "mark_all"),
        4,
        "how many changed"
    );
    assert_eq!(
        ok(store.mark_all_notifications_read(u).await, "mark_all"),
        0,
        "none left"
    );
    assert_eq!(
        ok(
            store.unread_notification_count(u).await,
            "unread_notification_count"
        ),
        0
    );
    assert_eq!(
        ok(
            store.unread_notification_count(v).await,
            "unread_notification_count"
        ),
        1,
        "others untouched"
    );
    assert!(
        !ok(
            store.delete_notification(v, ns[2].id).await,
            "delete_notification"
        ),
        "not v's"
    );
    assert!(ok(
        store.delete_notification(u, ns[2].id).await,
        "delete_notification"
    ));
    assert!(
        !ok(
            store.delete_notification(u, ns[2].id).await,
            "delete_notification"
        ),
        "already deleted"
    );
    assert_eq!(
        ok(store.notifications_of(u, 10, 0).await, "notifications_of").len(),
        4
    );
}
