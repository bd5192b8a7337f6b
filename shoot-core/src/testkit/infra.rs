//! [`MessageLog`], [`LockManager`], [`EphemeralStore`] and [`EventBus`] contracts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::{Either, join, join_all, select};

use super::{eventually, fresh_id, ok, wall_now};
use crate::events::{Event, Topic};
use crate::identity::UserStatus;
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::{Message, MessageStatus};
use crate::ports::{
    Clock, EphemeralStore, EventBus, EventStream, LockManager, LogConsumer, LogEntry, LogPosition,
    MessageLog, UserFeed,
};
use crate::time::Timestamp;

/// How long contracts wait for something that should happen promptly.
const PATIENCE: Duration = Duration::from_secs(30);

fn log_message(room: RoomId) -> Message {
    let id = fresh_id();
    Message {
        temp_id: Some(format!("log-{id}").into()),
        status: MessageStatus::SentToKafka,
        ..Message::new(
            MessageId(id),
            room,
            UserId(7),
            format!("log contract {id}"),
            wall_now(),
        )
    }
}

/// Polls until `want` records of `rooms` arrived (or [`PATIENCE`] ran out); returns them and
/// the highest position seen per partition (records of other rooms included).
async fn poll_ours(
    consumer: &mut dyn LogConsumer,
    rooms: &HashSet<RoomId>,
    want: usize,
) -> (Vec<LogEntry>, Vec<LogPosition>) {
    let start = Instant::now();
    let mut ours = Vec::new();
    let mut highest: HashMap<i32, i64> = HashMap::new();
    while ours.len() < want && start.elapsed() < PATIENCE {
        let batch = ok(consumer.poll(100, Duration::from_millis(200)).await, "poll");
        assert!(batch.len() <= 100, "poll MUST return at most max records");
        for e in batch {
            let h = highest
                .entry(e.position.partition)
                .or_insert(e.position.offset);
            *h = (*h).max(e.position.offset);
            if rooms.contains(&e.message.room_id) {
                ours.push(e);
            }
        }
    }
    let positions = highest
        .into_iter()
        .map(|(partition, offset)| LogPosition { partition, offset })
        .collect();
    (ours, positions)
}

/// Keeps polling until a poll returns nothing of `rooms`; returns what arrived.
async fn drain_ours(consumer: &mut dyn LogConsumer, rooms: &HashSet<RoomId>) -> Vec<LogEntry> {
    let mut out = Vec::new();
    loop {
        let batch = ok(consumer.poll(100, Duration::from_millis(300)).await, "poll");
        let mine: Vec<LogEntry> = batch
            .into_iter()
            .filter(|e| rooms.contains(&e.message.room_id))
            .collect();
        if mine.is_empty() {
            return out;
        }
        out.extend(mine);
    }
}

fn message_ids(v: &[LogEntry]) -> Vec<MessageId> {
    v.iter().map(|e| e.message.id).collect()
}

/// Asserts that, per room, `entries` hold seqs 1..=n in order.
#[track_caller]
fn assert_room_order(entries: &[LogEntry], what: &str) {
    let mut per_room: HashMap<RoomId, Vec<i64>> = HashMap::new();
    for e in entries {
        per_room
            .entry(e.message.room_id)
            .or_default()
            .push(e.message.seq.0);
    }
    for (room, seqs) in per_room {
        let want: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(
            seqs, want,
            "{what}: records of room {room} MUST arrive in seq order"
        );
    }
}

/// Runs the [`MessageLog`] contract. `clock` is the (real-time) clock the log waits on.
pub async fn message_log_contract(log: &dyn MessageLog, clock: &dyn Clock) {
    let [r1, r2, r3, r4] = [(); 4].map(|_| RoomId(fresh_id()));

    // Seq assignment: per room, consecutive, in input order.
    let batch = vec![
        log_message(r1),
        log_message(r1),
        log_message(r2),
        log_message(r1),
    ];
    let input_ids: Vec<MessageId> = batch.iter().map(|m| m.id).collect();
    let out = ok(log.append(batch).await, "append");
    assert_eq!(
        out.iter().map(|m| m.id).collect::<Vec<_>>(),
        input_ids,
        "append returns input order"
    );
    assert_eq!(
        out.iter().map(|m| (m.room_id, m.seq.0)).collect::<Vec<_>>(),
        vec![(r1, 1), (r1, 2), (r2, 1), (r1, 3)],
        "append numbers each room consecutively from 1"
    );
    let out2 = ok(
        log.append(vec![log_message(r2), log_message(r1)]).await,
        "append",
    );
    assert_eq!(
        out2.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
        vec![2, 4],
        "append continues from the highest seq assigned in the room"
    );
    // Durable seqs: a log that knows a room's seq knows it exactly (the last appended), and
    // the batched form agrees with the single one; a room never appended to is unknown.
    let expected = [(r1, Seq(4)), (r2, Seq(2))];
    let known = ok(log.durable_seqs(&[r2, r1, r4, r1]).await, "durable_seqs");
    for (room, seq) in expected {
        match ok(log.durable_seq(room).await, "durable_seq") {
            Some(s) => {
                assert_eq!(s, seq, "durable_seq is the last appended seq");
                assert_eq!(
                    known.iter().filter(|k| **k == (room, seq)).count(),
                    1,
                    "durable_seqs lists a known room once, with its durable_seq"
                );
            }
            None => assert!(
                known.iter().all(|k| k.0 != room),
                "durable_seqs lists only rooms durable_seq knows"
            ),
        }
    }
    assert!(
        known.iter().all(|k| k.0 != r4),
        "a room never appended to has no durable seq"
    );
    assert_eq!(ok(log.durable_seq(r4).await, "durable_seq"), None);
    assert!(ok(log.durable_seqs(&[]).await, "durable_seqs").is_empty());
    let appends = join_all((0..8).map(|_| log.append(vec![log_message(r3)]))).await;
    let r3_msgs: Vec<Message> = appends
        .into_iter()
        .flat_map(|r| ok(r, "concurrent append"))
        .collect();
    let mut r3_seqs: Vec<i64> = r3_msgs.iter().map(|m| m.seq.0).collect();
    r3_seqs.sort_unstable();
    assert_eq!(
        r3_seqs,
        (1..=8).collect::<Vec<_>>(),
        "concurrent appends: no seq given twice, no gap"
    );
    let first_rooms: HashSet<RoomId> = [r1, r2, r3].into_iter().collect();
    let first_ids: HashSet<MessageId> = out.iter().chain(&out2).map(|m| m.id).collect();

    // A consumer group gets everything, in order per room.
    let group = format!("contract-{}", fresh_id());
    let mut c1 = ok(log.consumer(&group).await, "consumer");
    let small = ok(c1.poll(2, Duration::from_millis(500)).await, "poll");
    assert!(
        small.len() <= 2,
        "poll MUST return at most max records, got {}",
        small.len()
    );
    let mut seen: Vec<LogEntry> = small
        .into_iter()
        .filter(|e| first_rooms.contains(&e.message.room_id))
        .collect();
    let (more, _) = poll_ours(c1.as_mut(), &first_rooms, 14 - seen.len()).await;
    seen.extend(more);
    assert_eq!(seen.len(), 14, "the group receives every appended record");
    assert_room_order(&seen, "first delivery");
    let appended: HashMap<MessageId, Seq> = out
        .iter()
        .chain(&out2)
        .chain(&r3_msgs)
        .map(|m| (m.id, m.seq))
        .collect();
    for e in &seen {
        assert_eq!(
            appended.get(&e.message.id),
            Some(&e.message.seq),
            "a record carries the message and the seq append returned"
        );
    }
    drop(c1);

    // Uncommitted records are delivered again to a new consumer of the group.
    let mut c2 = ok(log.consumer(&group).await, "consumer");
    let (again, positions) = poll_ours(c2.as_mut(), &first_rooms, 14).await;
    assert_eq!(
        again.len(),
        14,
        "uncommitted records MUST be redelivered to a new consumer"
    );
    assert_room_order(&again, "redelivery");
    ok(c2.commit(&positions).await, "commit");
    drop(c2);

    // After a commit a new consumer resumes at the first uncommitted record.
    let tail = vec![log_message(r1), log_message(r1), log_message(r1)];
    let tail = ok(log.append(tail).await, "append");
    assert_eq!(
        tail.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    let tail_ids: Vec<MessageId> = tail.iter().map(|m| m.id).collect();
    let mut c3 = ok(log.consumer(&group).await, "consumer");
    let (got, _) = poll_ours(c3.as_mut(), &first_rooms, 3).await;
    let mut got_ids = message_ids(&got);
    got_ids.extend(message_ids(&drain_ours(c3.as_mut(), &first_rooms).await));
    assert_eq!(
        got_ids, tail_ids,
        "a new consumer resumes after the committed records"
    );
    // Commit only the first of the three: the other two come again.
    ok(c3.commit(&[got[0].position]).await, "commit");
    drop(c3);
    let mut c4 = ok(log.consumer(&group).await, "consumer");
    let (rest, positions) = poll_ours(c4.as_mut(), &first_rooms, 2).await;
    let mut rest_ids = message_ids(&rest);
    rest_ids.extend(message_ids(&drain_ours(c4.as_mut(), &first_rooms).await));
    assert_eq!(
        rest_ids,
        tail_ids[1..].to_vec(),
        "commit covers records up to and including the position"
    );
    ok(c4.commit(&positions).await, "commit");

    // poll waits for records instead of returning early, and wakes up when they arrive.
    let r4_only: HashSet<RoomId> = [r4].into_iter().collect();
    let empty = drain_ours(c4.as_mut(), &first_rooms).await;
    assert!(
        empty.is_empty(),
        "nothing is redelivered after a full commit"
    );
    let start = Instant::now();
    let wait = Duration::from_secs(15);
    let (polled, appended) = join(
        async {
            let mut mine = Vec::new();
            while mine.is_empty() && start.elapsed() < wait {
                let batch = ok(c4.poll(10, wait).await, "poll");
                mine.extend(
                    batch
                        .into_iter()
                        .filter(|e| r4_only.contains(&e.message.room_id)),
                );
            }
            mine
        },
        async {
            clock.sleep(Duration::from_millis(100)).await;
            ok(log.append(vec![log_message(r4)]).await, "append")
        },
    )
    .await;
    assert_eq!(
        message_ids(&polled),
        vec![appended[0].id],
        "a waiting poll returns the new record"
    );
    assert!(
        start.elapsed() < Duration::from_secs(12),
        "a waiting poll wakes up when records arrive"
    );
    ok(c4.commit(&[polled[0].position]).await, "commit");
    drop(c4);

    // Another group reads the same records independently, from the start.
    let other = format!("contract-other-{}", fresh_id());
    let mut h = ok(log.consumer(&other).await, "consumer");
    let (all, _) = poll_ours(h.as_mut(), &first_rooms, 17).await;
    assert_eq!(all.len(), 17, "each consumer group receives every record");
    assert_room_order(&all, "second group");
    assert!(
        first_ids
            .iter()
            .all(|id| all.iter().any(|e| e.message.id == *id))
    );

    // Dead letters are accepted.
    ok(
        log.dead_letter(&all[0], "contract: poison record").await,
        "dead_letter",
    );
}

/// Runs the [`LockManager`] contract. `clock` is the (real-time) clock the locks run on.
pub async fn lock_manager_contract(locks: &dyn LockManager, clock: &dyn Clock) {
    let run = fresh_id();
    let key = format!("contract:lock:{run}:a");
    let long = Duration::from_secs(30);
    let t1 = ok(locks.try_acquire(&key, long).await, "try_acquire")
        .expect("a free lock MUST be acquired");
    assert_eq!(
        ok(locks.try_acquire(&key, long).await, "try_acquire"),
        None,
        "a held lock MUST NOT be acquired"
    );
    assert!(
        ok(locks.extend(&key, &t1, long).await, "extend"),
        "the owner extends"
    );
    let stranger = crate::ports::LockToken(format!("stranger-{run}"));
    assert!(
        !ok(locks.extend(&key, &stranger, long).await, "extend"),
        "a stranger cannot extend"
    );
    assert!(
        !ok(locks.release(&key, &stranger).await, "release"),
        "a stranger cannot release"
    );
    assert!(
        ok(locks.release(&key, &t1).await, "release"),
        "the owner releases"
    );
    assert!(
        !ok(locks.release(&key, &t1).await, "release"),
        "releasing twice"
    );
    let t2 =
        ok(locks.try_acquire(&key, long).await, "try_acquire").expect("a released lock is free");
    assert_ne!(t1, t2, "every acquisition has a new token");
    assert!(
        !ok(locks.release(&key, &t1).await, "release"),
        "an old token cannot release a new owner's lock"
    );
    assert!(ok(locks.release(&key, &t2).await, "release"));

    // Leases lapse.
    let key = format!("contract:lock:{run}:b");
    let short = Duration::from_millis(200);
    let old = ok(locks.try_acquire(&key, short).await, "try_acquire").expect("free");
    let start = Instant::now();
    let new = loop {
        if let Some(t) = ok(locks.try_acquire(&key, long).await, "try_acquire") {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a lock whose lease lapsed MUST be acquirable"
        );
        clock.sleep(Duration::from_millis(20)).await;
    };
    assert!(
        !ok(locks.extend(&key, &old, long).await, "extend"),
        "a lapsed owner cannot extend"
    );
    assert!(
        !ok(locks.release(&key, &old).await, "release"),
        "release MUST NOT release a lock another owner took after the lease lapsed"
    );
    assert!(
        ok(locks.extend(&key, &new, long).await, "extend"),
        "the new owner holds it"
    );
    assert!(ok(locks.release(&key, &new).await, "release"));

    // Extending keeps a lease alive past its original TTL.
    let key = format!("contract:lock:{run}:c");
    let t = ok(
        locks.try_acquire(&key, Duration::from_millis(300)).await,
        "try_acquire",
    )
    .expect("free");
    assert!(ok(locks.extend(&key, &t, long).await, "extend"));
    clock.sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ok(locks.try_acquire(&key, long).await, "try_acquire"),
        None,
        "an extended lease is still held"
    );
    assert!(ok(locks.release(&key, &t).await, "release"));

    // Exactly one of concurrent acquirers wins.
    let key = format!("contract:lock:{run}:d");
    let results = join_all((0..8).map(|_| locks.try_acquire(&key, long))).await;
    let winners: Vec<crate::ports::LockToken> = results
        .into_iter()
        .filter_map(|r| ok(r, "concurrent try_acquire"))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "concurrent try_acquire: exactly one MUST win"
    );
    assert!(ok(locks.release(&key, &winners[0]).await, "release"));
}

/// Runs the [`EphemeralStore`] contract. `clock` is the (real-time) clock the store runs on.
pub async fn ephemeral_store_contract(store: &dyn EphemeralStore, clock: &dyn Clock) {
    let p = format!("contract:eph:{}:", fresh_id());
    let k = |s: &str| format!("{p}{s}");
    let long = Some(Duration::from_secs(60));

    ok(store.set(&k("a"), "1", None).await, "set");
    assert_eq!(ok(store.get(&k("a")).await, "get"), Some("1".to_owned()));
    ok(store.set(&k("a"), "2", long).await, "set overwrites");
    assert_eq!(ok(store.get(&k("a")).await, "get"), Some("2".to_owned()));
    assert_eq!(ok(store.get(&k("missing")).await, "get"), None);

    assert_eq!(
        ok(
            store.set_if_absent(&k("b"), "first", long).await,
            "set_if_absent"
        ),
        None,
        "absent: set"
    );
    assert_eq!(
        ok(
            store.set_if_absent(&k("b"), "second", long).await,
            "set_if_absent"
        ),
        Some("first".to_owned()),
        "present: returns the value already there"
    );
    assert_eq!(
        ok(store.get(&k("b")).await, "get"),
        Some("first".to_owned()),
        "not overwritten"
    );
    let values: Vec<String> = (0..8).map(|i| format!("v{i}")).collect();
    let key = k("race");
    let results = join_all(values.iter().map(|v| store.set_if_absent(&key, v, long))).await;
    let results: Vec<Option<String>> = results
        .into_iter()
        .map(|r| ok(r, "concurrent set_if_absent"))
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_none()).count(),
        1,
        "concurrent set_if_absent: exactly one MUST set"
    );
    let winner = ok(store.get(&key).await, "get").expect("set");
    assert!(
        results.iter().flatten().all(|v| *v == winner),
        "every loser sees the winner's value"
    );

    ok(store.set_many(&[], long).await, "set_many of nothing");
    let (m1, m2) = (k("many1"), k("many2"));
    ok(store.set(&m2, "old", None).await, "set");
    ok(
        store
            .set_many(&[(m1.as_str(), "one"), (m2.as_str(), "two")], long)
            .await,
        "set_many",
    );
    assert_eq!(
        ok(store.get_many(&[m1.clone(), m2.clone()]).await, "get_many"),
        vec![Some("one".to_owned()), Some("two".to_owned())],
        "set_many sets every entry, overwriting"
    );

    assert_eq!(
        ok(
            store.get_many(&[k("b"), k("missing"), k("a")]).await,
            "get_many"
        ),
        vec![Some("first".to_owned()), None, Some("2".to_owned())],
        "get_many in input order"
    );
    assert!(ok(store.get_many(&[]).await, "get_many").is_empty());

    assert!(ok(store.delete(&k("a")).await, "delete"), "present");
    assert!(
        !ok(store.delete(&k("a")).await, "delete"),
        "already deleted"
    );
    assert_eq!(ok(store.get(&k("a")).await, "get"), None);

    // delete_prefix.
    for s in ["x:1", "x:2", "x:3:deep", "x", "y:1"] {
        ok(store.set(&k(s), "v", long).await, "set");
    }
    ok(store.delete_prefix(&k("x")).await, "delete_prefix");
    let left = ok(
        store
            .get_many(&[k("x:1"), k("x:2"), k("x:3:deep"), k("x"), k("y:1")])
            .await,
        "get_many",
    );
    assert_eq!(
        left,
        vec![None, None, None, None, Some("v".to_owned())],
        "delete_prefix deletes exactly the keys starting with the prefix"
    );

    // incr.
    assert_eq!(
        ok(store.incr(&k("n"), 5, None).await, "incr"),
        5,
        "absent counts as 0"
    );
    assert_eq!(ok(store.incr(&k("n"), -2, None).await, "incr"), 3);
    let counter = k("n");
    let results = join_all((0..10).map(|_| store.incr(&counter, 1, None))).await;
    for r in results {
        ok(r, "concurrent incr");
    }
    assert_eq!(
        ok(store.get(&k("n")).await, "get"),
        Some("13".to_owned()),
        "concurrent increments all count"
    );

    // TTL expiry (real time).
    let short = Some(Duration::from_millis(200));
    ok(store.set(&k("ttl"), "v", short).await, "set");
    assert_eq!(ok(store.incr(&k("ttl-n"), 1, short).await, "incr"), 1);
    assert_eq!(
        ok(store.incr(&k("ttl-n"), 1, long).await, "incr"),
        2,
        "ttl only applies on creation"
    );
    ok(
        store.set_if_absent(&k("ttl-claim"), "mine", short).await,
        "set_if_absent",
    );
    ok(
        store
            .set_many(&[(k("ttl-many").as_str(), "v")], short)
            .await,
        "set_many",
    );
    assert_eq!(
        ok(store.get(&k("ttl")).await, "get"),
        Some("v".to_owned()),
        "alive before its TTL"
    );
    let expired = eventually(clock, Duration::from_secs(10), || async {
        let vals = ok(
            store
                .get_many(&[k("ttl"), k("ttl-n"), k("ttl-claim"), k("ttl-many")])
                .await,
            "get_many",
        );
        vals.iter().all(Option::is_none)
    })
    .await;
    assert!(
        expired,
        "keys MUST expire after their TTL (incr keeps the TTL of the key it created; set_many applies its TTL)"
    );
    assert_eq!(
        ok(
            store.set_if_absent(&k("ttl-claim"), "again", long).await,
            "set_if_absent"
        ),
        None,
        "set_if_absent succeeds on an expired key"
    );
    assert_eq!(
        ok(store.get(&k("b")).await, "get"),
        Some("first".to_owned()),
        "long TTLs are still alive"
    );

    // Token bucket, on the caller's `now`.
    let now = Timestamp(1_700_000_000_000);
    let bucket = k("bucket");
    let mut took = Vec::new();
    for _ in 0..4 {
        took.push(ok(
            store.take_token(&bucket, 3, 1.0, now).await,
            "take_token",
        ));
    }
    assert_eq!(
        took,
        vec![true, true, true, false],
        "a fresh bucket holds `capacity` tokens"
    );
    assert!(
        !ok(
            store
                .take_token(&bucket, 3, 1.0, now.plus(Duration::from_millis(500)))
                .await,
            "take_token"
        ),
        "half a token is not a token"
    );
    assert!(
        ok(
            store
                .take_token(&bucket, 3, 1.0, now.plus(Duration::from_millis(1_000)))
                .await,
            "take_token"
        ),
        "refilled at refill_per_sec"
    );
    let later = now.plus(Duration::from_secs(100));
    let mut took = Vec::new();
    for _ in 0..4 {
        took.push(ok(
            store.take_token(&bucket, 3, 1.0, later).await,
            "take_token",
        ));
    }
    assert_eq!(
        took,
        vec![true, true, true, false],
        "a bucket never holds more than capacity"
    );
    let race = k("bucket-race");
    let results = join_all((0..10).map(|_| store.take_token(&race, 5, 0.001, now))).await;
    let granted = results
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(
        granted, 5,
        "concurrent take_token MUST grant exactly the tokens available"
    );
    ok(store.delete_prefix(&p).await, "delete_prefix cleanup");
}

/// Waits up to `limit` for the next event of `stream`.
async fn next_event(
    stream: &mut EventStream,
    clock: &dyn Clock,
    limit: Duration,
) -> Option<Arc<Event>> {
    match select(stream.next(), clock.sleep(limit)).await {
        Either::Left((event, _)) => event,
        Either::Right(_) => None,
    }
}

fn typing(room: RoomId, n: i64) -> Event {
    Event::Typing {
        room_id: room,
        user_id: UserId(n),
        typing: n % 2 == 0,
        at: Timestamp(n),
    }
}

async fn next_of_feed(
    feed: &mut UserFeed,
    clock: &dyn Clock,
    limit: Duration,
) -> Option<(UserId, Arc<Event>)> {
    match select(feed.next(), clock.sleep(limit)).await {
        Either::Left((item, _)) => item,
        Either::Right(_) => None,
    }
}

/// The user feed part of the [`EventBus`] contract, where the bus offers one: every user
/// topic's events with their user, in each topic's order, and no other topic's events.
async fn user_feed_contract(bus: &dyn EventBus, clock: &dyn Clock) {
    let Some(mut feed) = ok(bus.subscribe_user_feed().await, "subscribe_user_feed") else {
        return;
    };
    let wait = Duration::from_secs(10);
    let room = RoomId(fresh_id());
    let (u1, u2) = (UserId(fresh_id()), UserId(fresh_id()));
    let mut per_topic = ok(bus.subscribe(Topic::User(u1)).await, "subscribe");
    ok(
        bus.publish(Topic::User(u1), typing(room, 1)).await,
        "publish",
    );
    ok(
        bus.publish(Topic::Room(room), typing(room, 2)).await,
        "publish",
    );
    ok(
        bus.publish(Topic::User(u2), typing(room, 3)).await,
        "publish",
    );
    let shared = Arc::new(typing(room, 4));
    ok(
        bus.publish_all(vec![
            (Topic::User(u1), shared.clone()),
            (Topic::Room(room), shared.clone()),
            (Topic::User(u2), shared.clone()),
        ])
        .await,
        "publish_all",
    );
    let mut got = Vec::new();
    while got.len() < 4 {
        let Some((user, event)) = next_of_feed(&mut feed, clock, wait).await else {
            break;
        };
        // A shared bus may carry other users' events too.
        if user == u1 || user == u2 {
            got.push((user, (*event).clone()));
        }
    }
    // Order is promised per topic, not across topics.
    let of = |u: UserId| -> Vec<Event> {
        got.iter()
            .filter(|(user, _)| *user == u)
            .map(|(_, e)| e.clone())
            .collect()
    };
    assert_eq!(
        (of(u1), of(u2)),
        (
            vec![typing(room, 1), typing(room, 4)],
            vec![typing(room, 3), typing(room, 4)]
        ),
        "the user feed carries every user topic's events with their user, in order"
    );
    for n in [1, 4] {
        assert_eq!(
            next_event(&mut per_topic, clock, wait).await.as_deref(),
            Some(&typing(room, n)),
            "a user topic's own subscribers still receive its events"
        );
    }
}

/// Runs the [`EventBus`] contract. `clock` is the (real-time) clock used to wait.
pub async fn event_bus_contract(bus: &dyn EventBus, clock: &dyn Clock) {
    user_feed_contract(bus, clock).await;
    let room = RoomId(fresh_id());
    let user = UserId(fresh_id());
    let (t1, t2) = (Topic::Room(room), Topic::User(user));
    let wait = Duration::from_secs(10);

    let mut a = ok(bus.subscribe(t1).await, "subscribe");
    let mut b = ok(bus.subscribe(t1).await, "subscribe");
    let mut c = ok(bus.subscribe(t2).await, "subscribe");
    let status = |s| Event::UserStatusChanged {
        user_id: user,
        status: s,
        last_seen_at: None,
    };
    ok(bus.publish(t2, status(UserStatus::Away)).await, "publish");
    for n in 1..=50 {
        ok(bus.publish(t1, typing(room, n)).await, "publish");
    }
    ok(bus.publish(t2, status(UserStatus::Busy)).await, "publish");

    for (name, s) in [("first", &mut a), ("second", &mut b)] {
        for n in 1..=50 {
            let got = next_event(s, clock, wait).await;
            assert_eq!(
                got.as_deref(),
                Some(&typing(room, n)),
                "{name} subscriber: every event of a topic, in publish order"
            );
        }
    }
    assert_eq!(
        next_event(&mut c, clock, wait).await.as_deref(),
        Some(&status(UserStatus::Away))
    );
    assert_eq!(
        next_event(&mut c, clock, wait).await.as_deref(),
        Some(&status(UserStatus::Busy)),
        "a subscriber receives only its topic's events"
    );

    // A late subscriber sees only what is published after it subscribed.
    let mut d = ok(bus.subscribe(t1).await, "subscribe");
    ok(bus.publish(t1, typing(room, 100)).await, "publish");
    assert_eq!(
        next_event(&mut d, clock, wait).await.as_deref(),
        Some(&typing(room, 100)),
        "no replay of older events"
    );

    // Dropping a subscription does not disturb the others.
    drop(b);
    ok(bus.publish(t1, typing(room, 101)).await, "publish");
    assert_eq!(
        next_event(&mut a, clock, wait).await.as_deref(),
        Some(&typing(room, 100))
    );
    assert_eq!(
        next_event(&mut a, clock, wait).await.as_deref(),
        Some(&typing(room, 101))
    );
    assert_eq!(
        next_event(&mut d, clock, wait).await.as_deref(),
        Some(&typing(room, 101))
    );

    // One shared event published to two topics reaches both, in order with plain publishes.
    let shared = Arc::new(typing(room, 102));
    ok(
        bus.publish_shared(t1, shared.clone()).await,
        "publish_shared",
    );
    ok(
        bus.publish_shared(t2, shared.clone()).await,
        "publish_shared",
    );
    ok(bus.publish(t1, typing(room, 103)).await, "publish");
    for n in [102, 103] {
        assert_eq!(
            next_event(&mut a, clock, wait).await.as_deref(),
            Some(&typing(room, n)),
            "publish_shared keeps the topic's publish order"
        );
    }
    assert_eq!(
        next_event(&mut c, clock, wait).await.as_deref(),
        Some(&*shared),
        "publish_shared reaches every topic it is published to"
    );

    // publish_all: in order within the call, interleaved topics, and in order with plain
    // publishes around it; an empty call is fine.
    ok(bus.publish_all(Vec::new()).await, "publish_all of nothing");
    let batch: Vec<(Topic, Arc<Event>)> = (104..=120)
        .map(|n| {
            let topic = if n % 3 == 0 { t2 } else { t1 };
            (topic, Arc::new(typing(room, n)))
        })
        .chain([(Topic::Room(RoomId(fresh_id())), Arc::new(typing(room, 1)))])
        .collect();
    ok(bus.publish_all(batch).await, "publish_all");
    ok(bus.publish(t1, typing(room, 121)).await, "publish");
    for n in (104..=121).filter(|n| n % 3 != 0) {
        assert_eq!(
            next_event(&mut a, clock, wait).await.as_deref(),
            Some(&typing(room, n)),
            "publish_all keeps the order of its events and of later publishes"
        );
    }
    for n in (104..=120).filter(|n| n % 3 == 0) {
        assert_eq!(
            next_event(&mut c, clock, wait).await.as_deref(),
            Some(&typing(room, n)),
            "publish_all reaches each event's own topic, in order"
        );
    }

    // Publishing to a topic nobody watches is fine.
    ok(
        bus.publish(Topic::Room(RoomId(fresh_id())), typing(room, 1))
            .await,
        "publish without subscribers",
    );
    ok(
        bus.publish_shared(Topic::Room(RoomId(fresh_id())), shared)
            .await,
        "publish_shared without subscribers",
    );
    // Nothing stray arrived on c.
    assert_eq!(
        next_event(&mut c, clock, Duration::from_millis(200)).await,
        None,
        "no stray events"
    );
}
