//! Fan-out: one message to 1 000 subscribers of a room — time from `send_message` until all
//! 1 000 subscriptions have received its `MessageCreated`.
//!
//! The subscribers are 1 000 independent subscriptions to the room topic (like 1 000
//! WebSocket sessions of a server's hub), each drained by its own task. The persistence worker
//! runs, so subscribers also receive the PROCESSING/SAVED statuses of earlier messages. One
//! engine per criterion sample; a tokio runtime with one worker (one core) and one with two.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use shoot_benches::{bench_config, insert_users, memory_engine, run_on, runtime, scaled};
use shoot_core::engine::SendMessage;
use shoot_core::events::{Event, Topic};
use shoot_core::messages::MessageType;
use tokio::sync::Notify;

fn subscribers() -> usize {
    scaled(1000, 100)
}

const DEADLINE: Duration = Duration::from_secs(30);

struct Counter {
    delivered: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

async fn run_sample(iters: u64) -> Duration {
    let (engine, _stores) = memory_engine(bench_config(100));
    engine.start().await.expect("start");
    let users = insert_users(&engine, 1, 2).await;
    let room = engine
        .create_group_room(users[0], "fan-out", vec![users[1]])
        .await
        .expect("room")
        .room
        .id;
    let counter = Arc::new(Counter {
        delivered: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        reached: Notify::new(),
    });
    let n = subscribers() as u64;
    for _ in 0..n {
        let mut stream = engine
            .subscribe_topic(Topic::Room(room))
            .await
            .expect("subscribe");
        let counter = counter.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                if matches!(&*event, Event::MessageCreated(_)) {
                    let d = counter.delivered.fetch_add(1, Ordering::Relaxed) + 1;
                    if d >= counter.target.load(Ordering::Relaxed) {
                        counter.reached.notify_one();
                    }
                }
            }
        });
    }
    let mut total = Duration::ZERO;
    for it in 0..iters {
        let target = n * (it + 1);
        counter.target.store(target, Ordering::Relaxed);
        let cmd = SendMessage {
            room_id: room,
            text: "one message for everyone".to_owned(),
            message_type: MessageType::Text,
            temp_id: format!("f-{it}"),
            thread_id: None,
            mentions: Vec::new(),
        };
        let start = Instant::now();
        engine.send_message(users[0], cmd).await.expect("send");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while counter.delivered.load(Ordering::Relaxed) < target {
            if tokio::time::timeout_at(deadline, counter.reached.notified())
                .await
                .is_err()
            {
                panic!(
                    "only {} of {target} deliveries",
                    counter.delivered.load(Ordering::Relaxed)
                );
            }
        }
        total += start.elapsed();
    }
    engine.shutdown().await.expect("shutdown");
    total
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group.sample_size(20);
    for workers in [1, 2] {
        let rt = runtime(workers);
        let name = format!(
            "{}_subscribers/{workers}_worker{}",
            subscribers(),
            if workers > 1 { "s" } else { "" }
        );
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_on(&rt, run_sample(iters)))
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
