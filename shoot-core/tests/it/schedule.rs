//! Scheduled messages over the memory ports: validation, edits, exactly-once delivery by
//! several instances, repetition and failures.

use std::time::Duration;

use shoot_core::engine::{NewSchedule, SchedulePatch};
use shoot_core::ids::ScheduleId;
use shoot_core::messages::{MessageStore, MessageType};
use shoot_core::ports::Clock as _;
use shoot_core::schedule::{Repeat, ScheduleStatus, ScheduleStore, ScheduledMessage};
use shoot_core::{ErrorCode, RoomId, Timestamp, UserId};

use crate::pipeline::{Harness, code};
use crate::support::newest;

fn new_schedule(room: RoomId, at: Timestamp, repeat: Option<Repeat>) -> NewSchedule {
    NewSchedule {
        room_id: room,
        text: "later".into(),
        message_type: MessageType::Text,
        scheduled_at: at,
        repeat,
    }
}

async fn schedule_of(h: &Harness, id: ScheduleId) -> ScheduledMessage {
    h.stores.schedules.get_schedule(id).await.unwrap().unwrap()
}

/// Advances the clock in 100 ms steps until `done` holds for the schedule.
async fn advance_until(
    h: &Harness,
    id: ScheduleId,
    done: impl Fn(&ScheduledMessage) -> bool,
) -> ScheduledMessage {
    h.until(|| async {
        let s = schedule_of(h, id).await;
        if done(&s) {
            return Some(s);
        }
        h.clock.advance(Duration::from_millis(100));
        None
    })
    .await
}

#[tokio::test]
async fn scheduling_checks_time_membership_and_content() {
    let h = Harness::new();
    let [alice, bob, eve] = h.users(["alice", "bob", "eve"]).await;
    let room = h.group(alice, &[bob]).await;
    let now = h.clock.now();
    let later = now.plus(Duration::from_secs(60));
    let check = |actor: UserId, new: NewSchedule, expect: ErrorCode| {
        let h = &h;
        async move { assert_eq!(code(h.engine.schedule_message(actor, new).await), expect) }
    };
    check(
        alice,
        new_schedule(room, now, None),
        ErrorCode::ScheduleInPast,
    )
    .await;
    check(
        alice,
        new_schedule(room, now.minus(Duration::from_secs(1)), None),
        ErrorCode::ScheduleInPast,
    )
    .await;
    check(
        eve,
        new_schedule(room, later, None),
        ErrorCode::NotRoomParticipant,
    )
    .await;
    check(
        alice,
        NewSchedule {
            text: " ".into(),
            ..new_schedule(room, later, None)
        },
        ErrorCode::MessageEmpty,
    )
    .await;
    check(
        alice,
        NewSchedule {
            message_type: MessageType::System,
            ..new_schedule(room, later, None)
        },
        ErrorCode::InvalidMessageType,
    )
    .await;
    let s = h
        .engine
        .schedule_message(alice, new_schedule(room, later, Some(Repeat::Weekly)))
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.sender_id, s.repeat),
        (ScheduleStatus::Pending, alice, Some(Repeat::Weekly))
    );
    assert_eq!(h.engine.scheduled_messages(alice).await.unwrap(), vec![s]);
    assert!(h.engine.scheduled_messages(bob).await.unwrap().is_empty());
}

#[tokio::test]
async fn pending_schedules_can_be_edited_and_cancelled_by_their_owner() {
    let h = Harness::new();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let at = h.clock.now().plus(Duration::from_secs(60));
    let s = h
        .engine
        .schedule_message(alice, new_schedule(room, at, None))
        .await
        .unwrap();
    let later = at.plus(Duration::from_secs(60));
    let patch = SchedulePatch {
        text: Some(" new text ".into()),
        scheduled_at: Some(later),
        repeat: Some(Some(Repeat::Daily)),
    };
    let updated = h.engine.update_schedule(alice, s.id, patch).await.unwrap();
    assert_eq!(
        (&*updated.text, updated.scheduled_at, updated.repeat),
        ("new text", later, Some(Repeat::Daily))
    );
    assert_eq!(schedule_of(&h, s.id).await.text, "new text");
    let check = |actor: UserId, patch: SchedulePatch, expect: ErrorCode| {
        let h = &h;
        async move {
            assert_eq!(
                code(h.engine.update_schedule(actor, s.id, patch).await),
                expect
            )
        }
    };
    check(bob, SchedulePatch::default(), ErrorCode::ScheduleNotFound).await;
    check(
        alice,
        SchedulePatch {
            scheduled_at: Some(h.clock.now()),
            ..SchedulePatch::default()
        },
        ErrorCode::ScheduleInPast,
    )
    .await;
    check(
        alice,
        SchedulePatch {
            text: Some(String::new()),
            ..SchedulePatch::default()
        },
        ErrorCode::MessageEmpty,
    )
    .await;
    assert_eq!(
        code(h.engine.cancel_schedule(bob, s.id).await),
        ErrorCode::ScheduleNotFound
    );
    let cancelled = h.engine.cancel_schedule(alice, s.id).await.unwrap();
    assert_eq!(cancelled.status, ScheduleStatus::Canceled);
    check(
        alice,
        SchedulePatch::default(),
        ErrorCode::ScheduleNotPending,
    )
    .await;
    assert_eq!(
        code(h.engine.cancel_schedule(alice, s.id).await),
        ErrorCode::ScheduleNotPending
    );
    assert_eq!(
        code(h.engine.cancel_schedule(alice, ScheduleId(404)).await),
        ErrorCode::ScheduleNotFound
    );
    // Cancelled schedules are never sent.
    h.clock.advance(Duration::from_secs(600));
    assert_eq!(h.engine.run_due_schedules().await.unwrap(), 0);
}

#[tokio::test]
async fn two_instances_deliver_each_occurrence_exactly_once_and_on_time() {
    let h = Harness::started().await;
    let second = h.sibling("second");
    second.start().await.unwrap();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let due = h.clock.now().plus(Duration::from_secs(2));
    let s = h
        .engine
        .schedule_message(alice, new_schedule(room, due, None))
        .await
        .unwrap();
    let sent = advance_until(&h, s.id, |s| s.status != ScheduleStatus::Pending).await;
    assert_eq!((sent.status, sent.sent_count), (ScheduleStatus::Sent, 1));
    let temp = format!("schedule:{}:{}", s.id, due.as_millis());
    let msg = h
        .until(|| async {
            h.stores
                .messages
                .find_by_temp_id(alice, &temp)
                .await
                .unwrap()
        })
        .await;
    assert_eq!((msg.room_id, &*msg.text), (room, "later"));
    assert!(
        msg.created_at >= due && msg.created_at.since(due) <= Duration::from_secs(1),
        "late: {:?}",
        msg.created_at.since(due)
    );
    h.clock.advance(Duration::from_secs(5));
    let history = h.stores.messages.history(room, newest(10)).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(h.stores.log.len(), 1, "one occurrence, one message");
    second.shutdown().await.unwrap();
    h.engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn repeating_schedules_move_to_the_next_occurrence() {
    let h = Harness::started().await;
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let due = h.clock.now().plus(Duration::from_secs(1));
    let s = h
        .engine
        .schedule_message(alice, new_schedule(room, due, Some(Repeat::Daily)))
        .await
        .unwrap();
    let first = advance_until(&h, s.id, |s| s.sent_count == 1).await;
    assert_eq!(first.status, ScheduleStatus::Pending);
    assert_eq!(first.scheduled_at, due.plus(Duration::from_secs(24 * 3600)));
    h.clock.advance(Duration::from_secs(24 * 3600 - 5));
    let second = advance_until(&h, s.id, |s| s.sent_count == 2).await;
    assert_eq!(
        second.scheduled_at,
        due.plus(Duration::from_secs(2 * 24 * 3600))
    );
    let texts = h
        .until(|| async {
            let page = h.stores.messages.history(room, newest(10)).await.unwrap();
            (page.len() == 2).then_some(page)
        })
        .await;
    assert_ne!(
        texts[0].temp_id, texts[1].temp_id,
        "each occurrence has its own tempId"
    );
    h.engine.cancel_schedule(alice, s.id).await.unwrap();
}

#[tokio::test]
async fn a_schedule_whose_sender_left_fails_with_the_reason() {
    let h = Harness::new();
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let room = h.group(alice, &[bob, carol]).await;
    let due = h.clock.now().plus(Duration::from_secs(1));
    let s = h
        .engine
        .schedule_message(bob, new_schedule(room, due, None))
        .await
        .unwrap();
    h.engine.leave_room(bob, room).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(h.engine.run_due_schedules().await.unwrap(), 1);
    let failed = schedule_of(&h, s.id).await;
    assert_eq!(failed.status, ScheduleStatus::Failed);
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("NOT_ROOM_PARTICIPANT"),
        "{failed:?}"
    );
    assert_eq!(h.engine.run_due_schedules().await.unwrap(), 0);
}

#[tokio::test]
async fn a_schedule_is_released_while_the_log_is_down_and_sent_after() {
    let h = Harness::new();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let due = h.clock.now().plus(Duration::from_secs(1));
    let s = h
        .engine
        .schedule_message(alice, new_schedule(room, due, None))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    h.stores.log.set_failing(true);
    assert_eq!(h.engine.run_due_schedules().await.unwrap(), 1);
    let released = schedule_of(&h, s.id).await;
    assert_eq!(
        (released.status, released.claimed_by),
        (ScheduleStatus::Pending, None)
    );
    h.stores.log.set_failing(false);
    // The failed append's outcome may be unknown: its tempId stays claimed until the claim is
    // stale, so the schedule stays pending until then, and is sent exactly once after.
    h.engine.run_due_schedules().await.unwrap();
    assert_eq!(schedule_of(&h, s.id).await.status, ScheduleStatus::Pending);
    h.clock.advance(Duration::from_secs(31));
    // The send takes the stale claim over and answers once the store holds the message, so
    // the persistence worker runs (its scheduler may pick the schedule up first).
    h.engine.start().await.expect("start");
    let ran = h.ticking(h.engine.run_due_schedules()).await.unwrap();
    assert!(ran <= 1, "{ran} sends of one schedule");
    h.ticking(h.until(|| async {
        (schedule_of(&h, s.id).await.status == ScheduleStatus::Sent).then_some(())
    }))
    .await;
    assert_eq!(h.stores.log.len(), 1);
}
