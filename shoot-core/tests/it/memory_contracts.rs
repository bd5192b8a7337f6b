//! Every port contract against the in-memory reference implementations, plus the
//! memory-only extras (manual-clock polling, dead letters, partition sharing, bus cleanup).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::StreamExt;
use proptest::prelude::{Just, Strategy};
use shoot_core::events::{Event, Topic};
use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::memory::{
    ManualClock, MemoryBookmarkStore, MemoryBus, MemoryEphemeral, MemoryLocks, MemoryLog,
    MemoryMessageStore, MemoryNotificationStore, MemoryRoomStore, MemoryScheduleStore,
    MemorySocialStore, MemoryStores, MemoryUserStore, memory_ports,
};
use shoot_core::messages::{HistoryQuery, Message, MessageStatus, MessageStore};
use shoot_core::ports::{Clock, EphemeralStore, EventBus, LockManager, MessageLog};
use shoot_core::testkit;

use crate::support::{RealClock, TokioSpawner, newest, real_clock, text_message};

#[tokio::test]
async fn user_store() {
    testkit::user_store_contract(&MemoryUserStore::new()).await;
}

#[tokio::test]
async fn social_store() {
    testkit::social_store_contract(&MemorySocialStore::new()).await;
}

#[tokio::test]
async fn room_store() {
    testkit::room_store_contract(&MemoryRoomStore::new()).await;
}

#[tokio::test]
async fn message_store() {
    testkit::message_store_contract(&MemoryMessageStore::new()).await;
}

#[tokio::test]
async fn bookmark_store() {
    testkit::bookmark_store_contract(&MemoryBookmarkStore::new()).await;
}

#[tokio::test]
async fn schedule_store() {
    testkit::schedule_store_contract(&MemoryScheduleStore::new()).await;
}

#[tokio::test]
async fn notification_store() {
    testkit::notification_store_contract(&MemoryNotificationStore::new()).await;
}

#[tokio::test]
async fn message_log() {
    let clock = real_clock();
    let log = MemoryLog::new(clock.clone());
    testkit::message_log_contract(&log, clock.as_ref()).await;
    let dead = log.dead_letters();
    assert_eq!(dead.len(), 1, "the contract's dead letter is readable");
    assert_eq!(dead[0].1, "contract: poison record");
}

#[tokio::test]
async fn message_log_single_partition() {
    let clock = real_clock();
    testkit::message_log_contract(
        &MemoryLog::with_partitions(clock.clone(), 1),
        clock.as_ref(),
    )
    .await;
}

#[tokio::test]
async fn lock_manager() {
    let clock = real_clock();
    testkit::lock_manager_contract(&MemoryLocks::new(clock.clone()), clock.as_ref()).await;
}

#[tokio::test]
async fn ephemeral_store() {
    let clock = real_clock();
    testkit::ephemeral_store_contract(&MemoryEphemeral::new(clock.clone()), clock.as_ref()).await;
}

#[tokio::test]
async fn event_bus() {
    testkit::event_bus_contract(&MemoryBus::new(), &RealClock).await;
}

#[tokio::test]
async fn contracts_pass_twice_on_the_same_stores() {
    // Fresh ids per run: a second run against the same (persistent) store must not collide.
    let users = MemoryUserStore::new();
    let messages = MemoryMessageStore::new();
    let rooms = MemoryRoomStore::new();
    let schedules = MemoryScheduleStore::new();
    for _ in 0..2 {
        testkit::user_store_contract(&users).await;
        testkit::message_store_contract(&messages).await;
        testkit::room_store_contract(&rooms).await;
        testkit::schedule_store_contract(&schedules).await;
    }
}

#[tokio::test]
async fn memory_ports_builds_every_port() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_2024());
    let ports = memory_ports(clock.clone(), Arc::new(TokioSpawner));
    assert!(ports.link_fetcher.is_none());
    let a = ports.ids.next_id();
    let b = ports.ids.next_id();
    assert!(0 < a && a < b, "snowflake ids are positive and increasing");
    assert_eq!(ports.clock.now(), clock.now());
}

fn msg(room: RoomId, sender: UserId) -> Message {
    Message {
        status: MessageStatus::SentToKafka,
        ..text_message(0, room, 0, sender, None, "hi")
    }
}

#[tokio::test]
async fn log_poll_times_out_on_the_manual_clock() {
    let clock = ManualClock::at_2024();
    let log = MemoryLog::new(Arc::new(clock.clone()));
    let mut consumer = log.consumer("g").await.expect("consumer");
    let mut poll = consumer.poll(10, Duration::from_secs(5));
    assert!(
        (&mut poll).now_or_never().is_none(),
        "poll waits while nothing arrives"
    );
    clock.advance(Duration::from_secs(4));
    assert!(
        (&mut poll).now_or_never().is_none(),
        "still within its wait"
    );
    clock.advance(Duration::from_secs(1));
    let batch = poll
        .now_or_never()
        .expect("timed out at the deadline")
        .expect("poll");
    assert!(batch.is_empty());
}

#[tokio::test]
async fn log_poll_wakes_on_append_without_time_passing() {
    let clock = ManualClock::at_2024();
    let log = Arc::new(MemoryLog::new(Arc::new(clock.clone())));
    let mut consumer = log.consumer("g").await.expect("consumer");
    let appender = {
        let log = log.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            log.append(vec![msg(RoomId(1), UserId(1))])
                .await
                .expect("append")
        })
    };
    let batch = consumer
        .poll(10, Duration::from_secs(3600))
        .await
        .expect("poll");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].message.seq, Seq(1));
    appender.await.expect("appender");
    assert_eq!(clock.now(), ManualClock::at_2024().now(), "no time passed");
}

#[tokio::test]
async fn log_consumers_of_one_group_share_partitions_and_rebalance() {
    let clock = ManualClock::at_2024();
    let log = MemoryLog::with_partitions(Arc::new(clock.clone()), 4);
    // Rooms spread over partitions.
    let rooms: Vec<RoomId> = (1..=40).map(RoomId).collect();
    log.append(rooms.iter().map(|r| msg(*r, UserId(1))).collect())
        .await
        .expect("append");
    let mut a = log.consumer("g").await.expect("consumer");
    let mut b = log.consumer("g").await.expect("consumer");
    let got_a = a.poll(100, Duration::ZERO).await.expect("poll");
    let got_b = b.poll(100, Duration::ZERO).await.expect("poll");
    assert_eq!(
        got_a.len() + got_b.len(),
        40,
        "together they get everything"
    );
    let pa: HashSet<i32> = got_a.iter().map(|e| e.position.partition).collect();
    let pb: HashSet<i32> = got_b.iter().map(|e| e.position.partition).collect();
    assert!(
        pa.is_disjoint(&pb),
        "a partition is read by one consumer of the group"
    );
    assert!(
        !pa.is_empty() && !pb.is_empty(),
        "both consumers get partitions"
    );
    // a commits its records; b leaves without committing: a takes over b's partitions.
    let positions: Vec<_> = got_a.iter().map(|e| e.position).collect();
    a.commit(&positions).await.expect("commit");
    drop(b);
    let again = a.poll(100, Duration::ZERO).await.expect("poll");
    let again_ids: HashSet<RoomId> = again.iter().map(|e| e.message.room_id).collect();
    let b_ids: HashSet<RoomId> = got_b.iter().map(|e| e.message.room_id).collect();
    assert_eq!(
        again_ids, b_ids,
        "b's uncommitted records are redelivered to a"
    );
    assert_eq!(log.lag("g"), got_b.len() as u64);
    assert_eq!(log.lag("never"), 40);
}

#[tokio::test]
async fn log_can_be_made_to_fail() {
    let log = MemoryLog::new(Arc::new(ManualClock::at_2024()));
    log.set_failing(true);
    assert!(log.append(vec![msg(RoomId(1), UserId(1))]).await.is_err());
    log.set_failing(false);
    let out = log
        .append(vec![msg(RoomId(1), UserId(1))])
        .await
        .expect("append");
    assert_eq!(out[0].seq, Seq(1), "a failed append consumed no number");
}

#[tokio::test]
async fn locks_and_ephemeral_follow_the_manual_clock() {
    let clock = ManualClock::at_2024();
    let locks = MemoryLocks::new(Arc::new(clock.clone()));
    let eph = MemoryEphemeral::new(Arc::new(clock.clone()));
    let t = locks
        .try_acquire("k", Duration::from_secs(10))
        .await
        .expect("lock")
        .expect("free");
    clock.advance(Duration::from_millis(9_999));
    assert!(
        locks
            .try_acquire("k", Duration::from_secs(10))
            .await
            .expect("lock")
            .is_none()
    );
    clock.advance(Duration::from_millis(1));
    assert!(
        !locks
            .extend("k", &t, Duration::from_secs(1))
            .await
            .expect("extend"),
        "lapsed exactly at ttl"
    );
    eph.set("e", "v", Some(Duration::from_secs(1)))
        .await
        .expect("set");
    assert_eq!(eph.len(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(eph.get("e").await.expect("get"), None);
    assert!(eph.is_empty());
}

#[tokio::test]
async fn bus_drops_topics_whose_subscribers_left() {
    let bus = MemoryBus::with_capacity(8);
    for i in 0..200 {
        let s = bus
            .subscribe(Topic::Room(RoomId(i)))
            .await
            .expect("subscribe");
        drop(s);
    }
    assert!(
        bus.topic_count() < 200,
        "idle topics are swept, {} left",
        bus.topic_count()
    );
    let topic = Topic::User(UserId(1));
    let s = bus.subscribe(topic).await.expect("subscribe");
    assert_eq!(bus.subscriber_count(topic), 1);
    drop(s);
    bus.publish(
        topic,
        Event::ActiveUsers {
            room_id: RoomId(1),
            user_ids: vec![],
        },
    )
    .await
    .expect("publish");
    assert_eq!(bus.subscriber_count(topic), 0);
}

#[tokio::test]
async fn bus_lagging_subscriber_skips_and_continues() {
    let bus = MemoryBus::with_capacity(4);
    let topic = Topic::Room(RoomId(9));
    let mut s = bus.subscribe(topic).await.expect("subscribe");
    for n in 0..10 {
        bus.publish(
            topic,
            Event::ActiveUsers {
                room_id: RoomId(9),
                user_ids: vec![UserId(n)],
            },
        )
        .await
        .expect("publish");
    }
    let first = s.next().await.expect("stream continues after lagging");
    assert_eq!(
        *first,
        Event::ActiveUsers {
            room_id: RoomId(9),
            user_ids: vec![UserId(6)]
        },
        "oldest kept"
    );
}

#[tokio::test]
async fn stores_bundle_shares_state_with_its_ports() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_2024());
    let stores = MemoryStores::new(clock.clone());
    let ports = stores.ports(clock, Arc::new(TokioSpawner));
    let mut m = msg(RoomId(3), UserId(1));
    m.id = MessageId(77);
    m.seq = Seq(1);
    ports.messages.insert_messages(&[m]).await.expect("insert");
    assert_eq!(
        stores.messages.len(),
        1,
        "ports and stores are the same objects"
    );
}

#[tokio::test]
async fn unread_counts_for_a_thousand_rooms() {
    let store = MemoryMessageStore::new();
    let me = UserId(1);
    let mut next = 1;
    for r in 0..1_000 {
        let batch: Vec<Message> = (1..=50)
            .map(|s| {
                let mut m = msg(RoomId(r), UserId(2 + s % 2));
                m.id = MessageId(next);
                next += 1;
                m.seq = Seq(s);
                m
            })
            .collect();
        store.insert_messages(&batch).await.expect("insert");
    }
    let cursors: Vec<(RoomId, Seq)> = (0..1_000).map(|r| (RoomId(r), Seq(40))).collect();
    let counts = store.unread_counts(me, &cursors).await.expect("unread");
    assert_eq!(counts.len(), 1_000);
    assert!(counts.iter().all(|c| *c == 10), "{counts:?}");
    let page = store
        .history(
            RoomId(5),
            HistoryQuery {
                before: Some(Seq(20)),
                after: None,
                limit: 5,
            },
        )
        .await
        .expect("history");
    assert_eq!(
        page.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
        vec![15, 16, 17, 18, 19]
    );
}

/// Naive model of `history`: filter, then take the oldest (with `after`) or newest `limit`.
fn model_history(seqs: &[i64], before: Option<i64>, after: Option<i64>, limit: usize) -> Vec<i64> {
    let mut v: Vec<i64> = seqs
        .iter()
        .copied()
        .filter(|s| before.is_none_or(|b| *s < b) && after.is_none_or(|a| *s > a))
        .collect();
    v.sort_unstable();
    if after.is_some() {
        v.truncate(limit);
        v
    } else {
        v.split_off(v.len().saturating_sub(limit))
    }
}

proptest::proptest! {
    #[test]
    fn history_and_unread_match_a_model(
        order in Just((1..=30i64).collect::<Vec<_>>()).prop_shuffle(),
        batch in 1usize..8,
        senders in proptest::collection::vec(0u8..3, 30),
        before in proptest::option::of(0i64..35),
        after in proptest::option::of(0i64..35),
        limit in 0usize..12,
        cursor in 0i64..32,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let store = MemoryMessageStore::new();
            let room = RoomId(1);
            for chunk in order.chunks(batch) {
                let msgs: Vec<Message> = chunk
                    .iter()
                    .map(|s| {
                        let mut m = msg(room, UserId(i64::from(senders[(*s - 1) as usize])));
                        m.id = MessageId(1000 + s);
                        m.seq = Seq(*s);
                        m
                    })
                    .collect();
                store.insert_messages(&msgs).await.expect("insert");
            }
            let q = HistoryQuery { before: before.map(Seq), after: after.map(Seq), limit };
            let got: Vec<i64> =
                store.history(room, q).await.expect("history").iter().map(|m| m.seq.0).collect();
            assert_eq!(got, model_history(&order, before, after, limit));
            for m in store.history(room, newest(100)).await.expect("history") {
                let found = store.get_message(m.id).await.expect("get").expect("indexed");
                assert_eq!(found.seq, m.seq, "the id index follows out-of-order inserts");
            }
            let me = UserId(0);
            let unread = store.unread_counts(me, &[(room, Seq(cursor))]).await.expect("unread");
            let want = order.iter().filter(|s| **s > cursor && senders[(**s - 1) as usize] != 0).count() as u64;
            assert_eq!(unread, vec![want]);
        });
    }
}
