//! BFS friend recommendations at depth 2 and 3 on a seeded random graph of 100 000 users and
//! 1 000 000 friendships (average degree 20):
//! - `pure/depth_N`: the pure algorithm (`social::bfs::recommend`) over an in-memory
//!   adjacency closure (the closure clones the friend lists, as a store would);
//! - `engine/depth_N`: `ChatEngine::recommendations` (first page of 20) over the memory
//!   stores, with the recommendation cache disabled (`recommendation_cache_ttl = 0`) so every
//!   call runs the search; `engine_cached/depth_2` with the default cache.
//!
//! Each call starts from the next of 1 000 seeded random users. Criterion reports means; the
//! per-call p50/p90/p99 over those 1 000 starts are printed after the criterion output.
//! Debug builds (`cargo test`) use a 5 000-user / 50 000-edge graph.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use shoot_benches::{
    SplitMix64, bench_config, insert_users, memory_engine, percentiles, random_graph, runtime,
    scaled,
};
use shoot_core::social::bfs;
use shoot_core::{ChatEngine, UserId};

const SEED: u64 = 0x5eed_b0f5;
const STARTS: usize = 1000;

struct Data {
    adj: Vec<Vec<UserId>>,
    starts: Vec<UserId>,
}

fn data() -> Data {
    let users = scaled(100_000, 5_000);
    let edges = scaled(1_000_000, 50_000);
    let built = Instant::now();
    let adj = random_graph(users, edges, SEED);
    let mut rng = SplitMix64::new(SEED ^ 1);
    let starts = (0..STARTS)
        .map(|_| UserId(rng.below(users) as i64 + 1))
        .collect();
    eprintln!(
        "bfs: graph of {users} users / {edges} friendships built in {:?}",
        built.elapsed()
    );
    Data { adj, starts }
}

fn pure(d: &Data, start: UserId, depth: u8) -> usize {
    let none = HashSet::new();
    bfs::recommend(start, depth, &none, |users| {
        users
            .iter()
            .map(|u| d.adj[u.0 as usize - 1].clone())
            .collect()
    })
    .len()
}

async fn load(engine: &ChatEngine, d: &Data) {
    let p = engine.ports();
    insert_users(engine, 1, d.adj.len()).await;
    let now = p.clock.now();
    for (i, list) in d.adj.iter().enumerate() {
        let me = UserId(i as i64 + 1);
        for f in list.iter().filter(|f| **f > me) {
            p.social
                .add_friendship(me, *f, now)
                .await
                .expect("friendship");
        }
    }
}

fn report(name: &str, mut f: impl FnMut(UserId) -> usize, starts: &[UserId]) {
    let mut samples: Vec<Duration> = Vec::with_capacity(starts.len());
    let mut found = 0;
    for s in starts {
        let t = Instant::now();
        found += f(*s);
        samples.push(t.elapsed());
    }
    let (p50, p90, p99) = percentiles(&mut samples);
    println!(
        "bfs/{name}: per-call p50 {p50:?}  p90 {p90:?}  p99 {p99:?}  (over {} starts, mean {} results)",
        starts.len(),
        found / starts.len()
    );
}

fn bfs_bench(c: &mut Criterion) {
    let d = data();
    let rt = runtime(1);
    let _guard = rt.enter();
    let mut uncached = bench_config(100);
    uncached.limits.recommendation_cache_ttl = Duration::ZERO;
    let (engine, _s) = memory_engine(uncached);
    let (cached_engine, _s2) = memory_engine(bench_config(100));
    let loaded = Instant::now();
    rt.block_on(load(&engine, &d));
    rt.block_on(load(&cached_engine, &d));
    eprintln!("bfs: two engines loaded in {:?}", loaded.elapsed());

    let mut group = c.benchmark_group("bfs");
    for depth in [2u8, 3] {
        let mut i = 0;
        group.bench_function(format!("pure/depth_{depth}"), |b| {
            b.iter(|| {
                i = (i + 1) % d.starts.len();
                pure(&d, d.starts[i], depth)
            })
        });
        let mut i = 0;
        group.bench_function(format!("engine/depth_{depth}"), |b| {
            b.iter(|| {
                i = (i + 1) % d.starts.len();
                rt.block_on(engine.recommendations(d.starts[i], Some(depth), 20, 0))
                    .expect("recommendations")
            })
        });
    }
    let mut i = 0;
    group.bench_function("engine_cached/depth_2", |b| {
        b.iter(|| {
            i = (i + 1) % d.starts.len();
            rt.block_on(cached_engine.recommendations(d.starts[i], Some(2), 20, 0))
                .expect("recommendations")
        })
    });
    group.finish();

    // Per-call percentiles only under `cargo bench` (criterion's `--bench` mode), not in the
    // once-per-benchmark smoke run of `cargo test`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for depth in [2u8, 3] {
        report(
            &format!("pure/depth_{depth}"),
            |s| pure(&d, s, depth),
            &d.starts,
        );
        report(
            &format!("engine/depth_{depth}"),
            |s| {
                rt.block_on(engine.recommendations(s, Some(depth), 20, 0))
                    .expect("recommendations")
                    .len()
            },
            &d.starts,
        );
    }
}

criterion_group!(benches, bfs_bench);
criterion_main!(benches);
