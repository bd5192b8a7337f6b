//! Unread counts of a user who is in 1 000 rooms, each with 10 messages from someone else
//! and a read cursor at seq 0, 5 or 10 (so 10, 5 or 0 unread): `unread_counts` (the counts
//! only) and `rooms_of` (the full room list with participants, last message and counts).
//! Messages are inserted straight into the message store (as the persistence worker would)
//! to keep the set-up fast.

use criterion::{Criterion, criterion_group, criterion_main};
use shoot_benches::{bench_config, insert_users, memory_engine, runtime, scaled};
use shoot_core::messages::{Message, MessageStatus};
use shoot_core::rooms::RoomActivity;
use shoot_core::{ChatEngine, MessageId, RoomId, Seq, UserId};

const PER_ROOM: i64 = 10;

fn rooms() -> usize {
    scaled(1000, 50)
}

fn message(id: i64, room: RoomId, seq: i64, sender: UserId, at: shoot_core::Timestamp) -> Message {
    Message {
        seq: Seq(seq),
        temp_id: Some(format!("t{id}").into()),
        status: MessageStatus::Saved,
        ..Message::new(MessageId(id), room, sender, format!("message {seq}"), at)
    }
}

/// The user in `rooms()` rooms and the expected total of unread messages.
async fn setup(engine: &ChatEngine) -> (UserId, u64) {
    let users = insert_users(engine, 1, 2).await;
    let (me, other) = (users[0], users[1]);
    let p = engine.ports();
    let mut next_id = 1_000_000;
    let mut expected = 0;
    for r in 0..rooms() {
        let room = engine
            .create_group_room(other, &format!("room {r}"), vec![me])
            .await
            .expect("room")
            .room
            .id;
        let at = p.clock.now();
        let batch: Vec<Message> = (1..=PER_ROOM)
            .map(|seq| {
                next_id += 1;
                message(next_id, room, seq, other, at)
            })
            .collect();
        p.messages.insert_messages(&batch).await.expect("insert");
        let last = batch.last().expect("non-empty");
        p.rooms
            .record_activity(&[RoomActivity {
                room,
                seq: last.seq,
                message: last.id,
                at,
            }])
            .await
            .expect("activity");
        let cursor = (r % 3) as i64 * 5;
        p.rooms
            .advance_read_cursor(room, me, Seq(cursor))
            .await
            .expect("cursor");
        expected += (PER_ROOM - cursor) as u64;
    }
    (me, expected)
}

fn unread(c: &mut Criterion) {
    let rt = runtime(1);
    let _guard = rt.enter();
    let (engine, _stores) = memory_engine(bench_config(100));
    let (me, expected) = rt.block_on(setup(&engine));
    let counts = rt.block_on(engine.unread_counts(me)).expect("counts");
    assert_eq!(counts.len(), rooms());
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), expected);

    let mut group = c.benchmark_group("unread");
    group.bench_function(format!("unread_counts/{}_rooms", rooms()), |b| {
        b.iter(|| rt.block_on(engine.unread_counts(me)).expect("counts"))
    });
    group.bench_function(format!("rooms_of/{}_rooms", rooms()), |b| {
        b.iter(|| rt.block_on(engine.rooms_of(me)).expect("rooms"))
    });
    group.finish();
}

criterion_group!(benches, unread);
criterion_main!(benches);
