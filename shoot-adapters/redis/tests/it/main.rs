//! Integration tests of shoot-redis against a real Redis (`SHOOT_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379`): the bus, lock and ephemeral contracts of `shoot_core::testkit`,
//! fan-out between two instances, lock ownership across instances, recovery after every
//! client connection is killed, and the work-queue helpers. Without the variable every test
//! prints that it skipped. Each test uses its own namespace and deletes it at the end.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use shoot_core::events::{Event, Topic};
use shoot_core::ids::{RoomId, UserId};
use shoot_core::ports::{Clock, EphemeralStore, EventBus, EventStream, LockManager, LockToken};
use shoot_core::testkit::{self, base36, fresh_id};
use shoot_core::time::Timestamp;
use shoot_redis::{Redis, RedisBus, RedisBusConfig};
use shoot_tokio::TokioClock;
use tokio::sync::RwLock;

/// Tests take this shared; the one that kills every client connection takes it exclusively,
/// so it never disturbs the others of this binary.
static KILL_GUARD: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

const WAIT: Duration = Duration::from_secs(10);

fn redis_url() -> Option<String> {
    match std::env::var("SHOOT_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: SHOOT_TEST_REDIS_URL not set");
            None
        }
    }
}

fn fresh_namespace() -> String {
    format!("shoot-test:{}", base36(fresh_id()))
}

async fn connect(url: &str, namespace: &str) -> Redis {
    Redis::connect_with_namespace(url, namespace)
        .await
        .expect("connect to SHOOT_TEST_REDIS_URL")
}

/// Deletes every key of `namespace` (SCAN + UNLINK).
async fn cleanup(redis: &Redis) {
    let mut conn = redis.connection();
    let pattern = format!("{}:*", redis.namespace());
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("unlink");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

async fn next_event(stream: &mut EventStream) -> Option<Arc<Event>> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .ok()
        .flatten()
}

fn typing(room: RoomId, n: i64) -> Event {
    Event::Typing {
        room_id: room,
        user_id: UserId(n),
        typing: true,
        at: Timestamp(n),
    }
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bus_contract() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let redis = connect(&url, &fresh_namespace()).await;
    let bus = redis.bus(RedisBusConfig::default());
    testkit::event_bus_contract(&bus, &TokioClock).await;
    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_manager_contract() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let redis = connect(&url, &fresh_namespace()).await;
    testkit::lock_manager_contract(&redis.locks(), &TokioClock).await;
    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_store_contract() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let redis = connect(&url, &fresh_namespace()).await;
    testkit::ephemeral_store_contract(&redis.ephemeral(), &TokioClock).await;
    cleanup(&redis).await;
}

/// Two instances ("servers") in a fresh namespace, each with a bus of 4 shards (fewer than
/// the tests' topics, so topics share streams): A's client (for cleanup) and both buses.
async fn two_instances(url: &str) -> (Redis, RedisBus, RedisBus) {
    let ns = fresh_namespace();
    let (a, b) = (connect(url, &ns).await, connect(url, &ns).await);
    let config = RedisBusConfig {
        shards: 4,
        ..RedisBusConfig::default()
    };
    let (bus_a, bus_b) = (a.bus(config.clone()), b.bus(config));
    (a, bus_a, bus_b)
}

/// Two instances ("servers") on one Redis: 10 publisher tasks on B each publish 100 events
/// on their own topic concurrently; subscribers on A and on B receive every event of their
/// topic, in publish order, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_fan_out_in_order() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let (a, bus_a, bus_b) = two_instances(&url).await;
    let rooms: Vec<RoomId> = (0..10).map(|_| RoomId(fresh_id())).collect();
    let mut subs_a = Vec::new();
    let mut subs_b = Vec::new();
    for r in &rooms {
        subs_a.push(bus_a.subscribe(Topic::Room(*r)).await.expect("subscribe"));
        subs_b.push(bus_b.subscribe(Topic::Room(*r)).await.expect("subscribe"));
    }
    join_all(rooms.iter().map(|r| {
        let bus_b = &bus_b;
        async move {
            for n in 0..100 {
                bus_b
                    .publish(Topic::Room(*r), typing(*r, n))
                    .await
                    .expect("publish");
            }
        }
    }))
    .await;
    for (instance, subs) in [("A", &mut subs_a), ("B", &mut subs_b)] {
        for (r, sub) in rooms.iter().zip(subs.iter_mut()) {
            for n in 0..100 {
                let got = next_event(sub).await;
                assert_eq!(
                    got.as_deref(),
                    Some(&typing(*r, n)),
                    "instance {instance}: room {} event {n} in publish order",
                    r.0
                );
            }
        }
    }
    assert!(bus_a.active_readers() >= 1 && bus_a.active_readers() <= 4);
    // Readers stop once their shard has no local subscriber left.
    drop(subs_a);
    assert!(
        eventually(WAIT, || bus_a.active_readers() == 0).await,
        "readers stop when the last local subscriber leaves"
    );
    cleanup(&a).await;
}

/// A user feed on instance A reads every shard: it receives the events B publishes to many
/// user topics (spread over the shards), each user's in publish order, and no room events;
/// dropping it stops A's readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_feed_receives_every_user_topic_from_another_instance() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let (a, bus_a, bus_b) = two_instances(&url).await;
    let mut feed = bus_a
        .subscribe_user_feed()
        .await
        .expect("subscribe_user_feed")
        .expect("the Redis bus offers a user feed");
    assert_eq!(bus_a.active_readers(), 4, "a feed reads every shard");
    let room = RoomId(fresh_id());
    let users: Vec<UserId> = (0..20).map(|_| UserId(fresh_id())).collect();
    for n in 0..3 {
        let mut batch = vec![(Topic::Room(room), Arc::new(typing(room, n)))];
        batch.extend(
            users
                .iter()
                .map(|u| (Topic::User(*u), Arc::new(typing(room, n)))),
        );
        bus_b.publish_all(batch).await.expect("publish_all");
    }
    let mut got: HashMap<UserId, Vec<Event>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.values().map(Vec::len).sum::<usize>() < users.len() * 3 {
        let item = tokio::time::timeout_at(deadline, feed.next())
            .await
            .expect("every user event within the wait")
            .expect("the feed is open");
        got.entry(item.0).or_default().push((*item.1).clone());
    }
    for u in &users {
        assert_eq!(
            got.get(u).map(Vec::as_slice),
            Some([typing(room, 0), typing(room, 1), typing(room, 2)].as_slice()),
            "user {}: every event, in publish order",
            u.0
        );
    }
    assert_eq!(got.len(), users.len(), "no other topic's events");
    drop(feed);
    assert!(
        eventually(WAIT, || bus_a.active_readers() == 0).await,
        "readers stop once the feed is dropped"
    );
    cleanup(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_owned_across_instances() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let ns = fresh_namespace();
    let (a, b) = (connect(&url, &ns).await, connect(&url, &ns).await);
    let (locks_a, locks_b) = (a.locks(), b.locks());
    let key = format!("room:{}", fresh_id());
    let ttl = Duration::from_secs(30);
    let token = locks_a
        .try_acquire(&key, ttl)
        .await
        .expect("acquire")
        .expect("free lock");
    assert_eq!(
        locks_b.try_acquire(&key, ttl).await.expect("acquire"),
        None,
        "held by instance A"
    );
    let forged = LockToken(format!("not-{}", token.0));
    assert!(!locks_b.release(&key, &forged).await.expect("release"));
    assert!(!locks_b.extend(&key, &forged, ttl).await.expect("extend"));
    // A non-owner's release left the lock held.
    assert_eq!(locks_b.try_acquire(&key, ttl).await.expect("acquire"), None);
    assert!(locks_a.release(&key, &token).await.expect("release"));
    let t2 = locks_b
        .try_acquire(&key, ttl)
        .await
        .expect("acquire")
        .expect("released lock is free");
    assert!(
        !locks_a.release(&key, &token).await.expect("release"),
        "the old token cannot release B's lock"
    );
    assert!(locks_b.release(&key, &t2).await.expect("release"));
    cleanup(&a).await;
}

/// Kills every client connection (`CLIENT KILL TYPE normal`) between publishes: events
/// published while the reader is disconnected are still delivered (it resumes from its
/// last-seen id), in order, and locks and the ephemeral store keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_connections_are_killed() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.write().await;
    let ns = fresh_namespace();
    let (a, b) = (connect(&url, &ns).await, connect(&url, &ns).await);
    let (bus_a, bus_b) = (
        a.bus(RedisBusConfig::default()),
        b.bus(RedisBusConfig::default()),
    );
    let room = RoomId(fresh_id());
    let topic = Topic::Room(room);
    let mut sub = bus_a.subscribe(topic).await.expect("subscribe");
    bus_b
        .publish(topic, typing(room, 0))
        .await
        .expect("publish");
    assert_eq!(
        next_event(&mut sub).await.as_deref(),
        Some(&typing(room, 0))
    );
    let eph = a.ephemeral();
    eph.set("k", "v", None).await.expect("set");

    let killer = redis::Client::open(url.as_str()).expect("url");
    let mut killer = killer
        .get_multiplexed_async_connection()
        .await
        .expect("killer connection");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut killer)
        .await
        .expect("client kill");
    // A's manager and reader, B's manager at least.
    assert!(killed >= 3, "killed {killed} connections");

    for n in 1..=20 {
        bus_b
            .publish(topic, typing(room, n))
            .await
            .expect("publish after kill");
    }
    for n in 1..=20 {
        assert_eq!(
            next_event(&mut sub).await.as_deref(),
            Some(&typing(room, n)),
            "event {n} after the connection loss"
        );
    }
    assert_eq!(
        eph.get("k").await.expect("get after kill"),
        Some("v".to_owned())
    );
    let locks = a.locks();
    let t = locks
        .try_acquire("after-kill", Duration::from_secs(5))
        .await
        .expect("acquire after kill")
        .expect("free");
    assert!(locks.release("after-kill", &t).await.expect("release"));
    cleanup(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_acks_and_reclaims() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let redis = connect(&url, &fresh_namespace()).await;
    let q = redis.work_queue("jobs", "workers");
    q.ensure_group().await.expect("group");
    q.ensure_group()
        .await
        .expect("group creation is idempotent");
    for n in 0..3 {
        q.push(&format!("job-{n}")).await.expect("push");
    }
    let first = q
        .read("w1", 2, Duration::from_millis(100))
        .await
        .expect("read");
    let payloads: Vec<&str> = first.iter().map(|e| e.payload.as_str()).collect();
    assert_eq!(
        payloads,
        ["job-0", "job-1"],
        "in order, each to one consumer"
    );
    let second = q.read("w2", 10, Duration::ZERO).await.expect("read");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].payload, "job-2");
    assert_eq!(q.ack(&[second[0].id.clone()]).await.expect("ack"), 1);
    assert_eq!(q.pending_count().await.expect("pending"), 2);
    assert!(
        q.read("w2", 10, Duration::from_millis(100))
            .await
            .expect("read")
            .is_empty(),
        "nothing new"
    );
    // w1 "crashed": w2 takes over its entries once they have been idle long enough.
    assert!(
        q.claim_stale("w2", Duration::from_secs(60), 10)
            .await
            .expect("claim")
            .is_empty(),
        "entries not yet idle stay with their consumer"
    );
    let clock = TokioClock;
    clock.sleep(Duration::from_millis(50)).await;
    let claimed = q
        .claim_stale("w2", Duration::from_millis(20), 10)
        .await
        .expect("claim");
    assert_eq!(claimed, first, "stale entries are reclaimed");
    let ids: Vec<String> = claimed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(q.ack(&ids).await.expect("ack"), 2);
    assert_eq!(q.pending_count().await.expect("pending"), 0);
    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_keys_live_under_the_namespace() {
    let Some(url) = redis_url() else { return };
    let _g = KILL_GUARD.read().await;
    let (ns1, ns2) = (fresh_namespace(), fresh_namespace());
    let (r1, r2) = (connect(&url, &ns1).await, connect(&url, &ns2).await);
    let (e1, e2) = (r1.ephemeral(), r2.ephemeral());
    e1.set("shared*[key]", "one", None).await.expect("set");
    e2.set("shared*[key]", "two", None).await.expect("set");
    e2.set("sharedX", "other", None).await.expect("set");
    // Glob metacharacters in a prefix are literal.
    e2.delete_prefix("shared*").await.expect("delete_prefix");
    assert_eq!(
        e2.get_many(&["shared*[key]".to_owned(), "sharedX".to_owned()])
            .await
            .expect("get_many"),
        vec![None, Some("other".to_owned())]
    );
    assert_eq!(
        e1.get("shared*[key]").await.expect("get"),
        Some("one".to_owned()),
        "another namespace is untouched"
    );
    let mut conn = r1.connection();
    let raw: Option<String> = redis::cmd("GET")
        .arg(format!("{ns1}:eph:shared*[key]"))
        .query_async(&mut conn)
        .await
        .expect("get");
    assert_eq!(raw.as_deref(), Some("one"));
    cleanup(&r1).await;
    cleanup(&r2).await;
}
