//! Shared set-up of the Shoot benchmarks (`benches/*.rs`): runtimes, engines on the memory
//! ports, users inserted straight into the store, a seeded PRNG and a seeded random graph.
//!
//! Dataset sizes follow [`scaled`]: full size in an optimised build (`cargo bench`), a small
//! fraction in a debug build, so that `cargo test -p shoot-benches` (which builds the benches
//! in the test profile and runs each benchmark once as a smoke test) stays fast.

use std::sync::Arc;
use std::time::Duration;

use shoot_core::identity::password::PasswordHasherConfig;
use shoot_core::identity::{User, UserStatus};
use shoot_core::memory::{MemoryBus, MemoryStores};
use shoot_core::ports::Clock;
use shoot_core::{ChatEngine, EngineConfig, UserId};
use shoot_tokio::{TokioClock, TokioSpawner};

/// Whether this is an optimised build (`cargo bench`) rather than a test/debug build.
pub const FULL_SIZE: bool = !cfg!(debug_assertions);

/// `full` in an optimised build, `small` in a debug build (see the crate docs).
pub fn scaled(full: usize, small: usize) -> usize {
    if FULL_SIZE { full } else { small }
}

/// A multi-thread tokio runtime with `workers` worker threads (timers enabled). Run the
/// measured code in a task spawned on it so that it executes on the workers only.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// Runs `fut` as a task on `rt` (so on its workers, not on the calling thread) and waits.
pub fn run_on<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(fut)).expect("benchmark task panicked")
}

/// Engine settings for benchmarks: rate limiting off (`messages_per_second = 0`, as SPEC §5
/// prescribes for benchmarks), cheap password hashing, group rooms up to `max_group`.
pub fn bench_config(max_group: usize) -> EngineConfig {
    let mut config = EngineConfig {
        password: PasswordHasherConfig::fast(),
        ..EngineConfig::default()
    };
    config.limits.messages_per_second = 0.0;
    config.limits.group_max_members = config.limits.group_max_members.max(max_group);
    config
}

/// Bus buffer per topic in benchmarks: large enough that no subscriber lags under a burst.
pub const BENCH_BUS_CAPACITY: usize = 1 << 17;

/// An engine on fresh memory ports, on the current tokio runtime, with a bus of
/// [`BENCH_BUS_CAPACITY`]. Returns the concrete stores too.
pub fn memory_engine(config: EngineConfig) -> (ChatEngine, MemoryStores) {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock);
    let mut stores = MemoryStores::new(clock.clone());
    stores.bus = Arc::new(MemoryBus::with_capacity(BENCH_BUS_CAPACITY));
    let ports = stores.ports(clock, Arc::new(TokioSpawner::current()));
    (ChatEngine::new(ports, config), stores)
}

/// Inserts users `first..first + n` straight into the user store (no password hashing),
/// returning their ids. Ids are `UserId(first + i)`.
pub async fn insert_users(engine: &ChatEngine, first: i64, n: usize) -> Vec<UserId> {
    let now = engine.ports().clock.now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let id = UserId(first + i);
        let user = User {
            id,
            username: format!("u{}", first + i),
            nickname: format!("User {}", first + i),
            email: format!("u{}@bench.invalid", first + i),
            password_hash: String::new(),
            status: UserStatus::Offline,
            bio: None,
            profile_image_url: None,
            user_code: format!("B{:011X}", first + i),
            last_seen_at: None,
            created_at: now,
            updated_at: now,
        };
        engine
            .ports()
            .users
            .create_user(&user)
            .await
            .expect("insert user");
        ids.push(id);
    }
    ids
}

/// SplitMix64: a tiny seeded PRNG, so every run builds the same data.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A seeded undirected graph on users `UserId(1)..=UserId(users)` with exactly `edges`
/// distinct friendships (uniformly random pairs, no self-loops): `adj[i]` is the sorted
/// friend list of `UserId(i + 1)`.
pub fn random_graph(users: usize, edges: usize, seed: u64) -> Vec<Vec<UserId>> {
    assert!(
        users >= 2 && edges <= users * (users - 1) / 2,
        "graph too dense"
    );
    let mut rng = SplitMix64::new(seed);
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(edges + edges / 8);
    while pairs.len() < edges {
        while pairs.len() < edges + edges / 16 + 16 {
            let a = rng.below(users) as u32;
            let b = rng.below(users) as u32;
            if a != b {
                pairs.push((a.min(b), a.max(b)));
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        // Drop a deterministic surplus so exactly `edges` remain.
        while pairs.len() > edges {
            let i = rng.below(pairs.len());
            pairs.swap_remove(i);
        }
    }
    let mut adj: Vec<Vec<UserId>> = vec![Vec::new(); users];
    for (a, b) in pairs {
        adj[a as usize].push(UserId(i64::from(b) + 1));
        adj[b as usize].push(UserId(i64::from(a) + 1));
    }
    for list in &mut adj {
        list.sort_unstable();
    }
    adj
}

/// Percentiles (p50, p90, p99) of `samples`, sorted in place.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    assert!(!samples.is_empty());
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_is_seeded_simple_and_exact() {
        let g = random_graph(200, 1000, 7);
        assert_eq!(g, random_graph(200, 1000, 7));
        let degree_sum: usize = g.iter().map(Vec::len).sum();
        assert_eq!(degree_sum, 2000);
        for (u, list) in g.iter().enumerate() {
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "sorted, no duplicates"
            );
            let me = UserId(u as i64 + 1);
            assert!(!list.contains(&me), "no self-loop");
            for v in list {
                assert!(g[v.0 as usize - 1].contains(&me), "symmetric");
            }
        }
    }

    #[test]
    fn percentiles_pick_ranks() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let (p50, p90, p99) = percentiles(&mut s);
        assert_eq!(
            (p50, p90, p99),
            (
                Duration::from_millis(51),
                Duration::from_millis(90),
                Duration::from_millis(99)
            )
        );
    }
}
