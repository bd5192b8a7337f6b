//! Send → delivered: messages/s from `send_message` to `MessageCreated` at one room
//! subscriber, on the memory ports, rate limiting off, persistence worker running.
//!
//! Scenarios (all on a multi-thread tokio runtime, so spawned tasks are real tasks):
//! - `single_room/32_senders/1_worker`: 32 concurrent senders in one room;
//! - `16_rooms/4_senders/1_worker`: 64 senders spread over 16 rooms (one subscriber each) —
//!   the headline figure (one core);
//! - `16_rooms/4_senders/2_workers`: the same on two worker threads;
//! - `16_rooms/4_senders/1_worker/until_saved`: also waits until the persistence worker has
//!   stored and committed everything (end-to-end sustained throughput).
//!
//! Each sender awaits its receipt before sending the next message (like a client waiting
//! for its `SENT_TO_KAFKA`); one criterion iteration is a batch of `BATCH` messages. Every
//! sample runs on a fresh engine (set-up not timed) so memory stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use shoot_benches::{bench_config, insert_users, memory_engine, run_on, runtime, scaled};
use shoot_core::engine::{PERSISTENCE_GROUP, SendMessage};
use shoot_core::events::Event;
use shoot_core::messages::MessageType;
use shoot_core::{ChatEngine, RoomId, UserId};
use tokio::sync::Notify;

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    rooms: usize,
    senders_per_room: usize,
    workers: usize,
    until_saved: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "single_room/32_senders/1_worker",
        rooms: 1,
        senders_per_room: 32,
        workers: 1,
        until_saved: false,
    },
    Scenario {
        name: "16_rooms/4_senders/1_worker",
        rooms: 16,
        senders_per_room: 4,
        workers: 1,
        until_saved: false,
    },
    Scenario {
        name: "16_rooms/4_senders/2_workers",
        rooms: 16,
        senders_per_room: 4,
        workers: 2,
        until_saved: false,
    },
    Scenario {
        name: "16_rooms/4_senders/1_worker/until_saved",
        rooms: 16,
        senders_per_room: 4,
        workers: 1,
        until_saved: true,
    },
];

/// Messages per criterion iteration.
fn batch() -> usize {
    scaled(4096, 256)
}

/// Longest wait for a batch before the benchmark fails (a lagging subscriber would hang).
const DEADLINE: Duration = Duration::from_secs(60);

struct Counter {
    delivered: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

async fn setup(
    engine: &ChatEngine,
    sc: Scenario,
    counter: &Arc<Counter>,
) -> Vec<(RoomId, Vec<UserId>)> {
    let per_room = sc.senders_per_room + 1;
    let users = insert_users(engine, 1, sc.rooms * per_room).await;
    let mut rooms = Vec::new();
    for chunk in users.chunks(per_room) {
        let (reader, senders) = chunk.split_last().expect("non-empty");
        let details = engine
            .create_group_room(senders[0], "bench", chunk[1..].to_vec())
            .await
            .expect("create room");
        let room = details.room.id;
        let mut stream = engine
            .subscribe_room(*reader, room)
            .await
            .expect("subscribe");
        let counter = counter.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                if matches!(&*event, Event::MessageCreated(_)) {
                    let n = counter.delivered.fetch_add(1, Ordering::Relaxed) + 1;
                    if n >= counter.target.load(Ordering::Relaxed) {
                        counter.reached.notify_one();
                    }
                }
            }
        });
        rooms.push((room, senders.to_vec()));
    }
    rooms
}

async fn wait_delivered(counter: &Counter, target: u64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while counter.delivered.load(Ordering::Relaxed) < target {
        if tokio::time::timeout_at(deadline, counter.reached.notified())
            .await
            .is_err()
        {
            panic!(
                "only {} of {target} messages delivered within {DEADLINE:?}",
                counter.delivered.load(Ordering::Relaxed)
            );
        }
    }
}

/// Runs `iters` batches on a fresh engine; returns the time spent in the batches only.
async fn run_sample(sc: Scenario, iters: u64) -> Duration {
    let (engine, stores) = memory_engine(bench_config(100));
    engine.start().await.expect("start");
    let counter = Arc::new(Counter {
        delivered: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        reached: Notify::new(),
    });
    let rooms = setup(&engine, sc, &counter).await;
    let senders = sc.rooms * sc.senders_per_room;
    let per_sender = (batch() / senders).max(1);
    let per_batch = (per_sender * senders) as u64;
    let mut total = Duration::ZERO;
    for it in 0..iters {
        let target = per_batch * (it + 1);
        counter.target.store(target, Ordering::Relaxed);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(senders);
        for (room, users) in &rooms {
            for user in users {
                let (engine, room, user) = (engine.clone(), *room, *user);
                tasks.push(tokio::spawn(async move {
                    for k in 0..per_sender {
                        let cmd = SendMessage {
                            room_id: room,
                            text: "hello from the benchmark".to_owned(),
                            message_type: MessageType::Text,
                            temp_id: format!("{it}-{k}"),
                            thread_id: None,
                            mentions: Vec::new(),
                        };
                        engine.send_message(user, cmd).await.expect("send");
                    }
                }));
            }
        }
        wait_delivered(&counter, target).await;
        if sc.until_saved {
            let deadline = Instant::now() + DEADLINE;
            while stores.log.lag(PERSISTENCE_GROUP) > 0 {
                assert!(Instant::now() < deadline, "persistence did not catch up");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        total += start.elapsed();
        for t in tasks {
            t.await.expect("sender panicked");
        }
    }
    engine.shutdown().await.expect("shutdown");
    total
}

fn send_delivered(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_delivered");
    group.sample_size(10);
    for sc in SCENARIOS {
        let rt = runtime(sc.workers);
        let senders = sc.rooms * sc.senders_per_room;
        group.throughput(Throughput::Elements(
            ((batch() / senders).max(1) * senders) as u64,
        ));
        group.bench_function(sc.name, |b| {
            b.iter_custom(|iters| run_on(&rt, run_sample(sc, iters)))
        });
    }
    group.finish();
}

criterion_group!(benches, send_delivered);
criterion_main!(benches);
