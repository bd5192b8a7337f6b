//! `SequenceAllocator` on the store databases: consecutive, never twice under concurrency,
//! continuing after what the store already holds, surviving a reopen.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use shoot_core::ids::{RoomId, Seq, UserId};
use shoot_core::messages::MessageStore;
use shoot_core::ports::SequenceAllocator;
use shoot_core::testkit::fresh_id;
use shoot_sql::SqliteStore;

use crate::support::{message, postgres, sqlite};

/// Checks what every allocator must do; `store` also holds messages.
async fn allocator_contract<S>(store: Arc<S>)
where
    S: SequenceAllocator + MessageStore,
{
    let room = RoomId(fresh_id());
    assert_eq!(
        store.allocate(room, 1).await.unwrap(),
        Seq(1),
        "first seq is 1"
    );
    assert_eq!(
        store.allocate(room, 3).await.unwrap(),
        Seq(2),
        "reserves 2..=4"
    );
    assert_eq!(
        store.allocate(room, 1).await.unwrap(),
        Seq(5),
        "continues after 4"
    );
    assert!(store.allocate(room, 0).await.is_err(), "count 0 is refused");

    // 40 concurrent callers reserving 1..=3 numbers each: disjoint ranges without a gap.
    let other = RoomId(fresh_id());
    let calls = (0..40u32).map(|i| {
        let store = store.clone();
        let count = i % 3 + 1;
        tokio::spawn(async move { (store.allocate(other, count).await.unwrap(), count) })
    });
    let mut taken = HashSet::new();
    let mut total = 0i64;
    for r in join_all(calls).await {
        let (first, count) = r.unwrap();
        for s in first.0..first.0 + i64::from(count) {
            assert!(taken.insert(s), "seq {s} handed out twice");
        }
        total += i64::from(count);
    }
    assert_eq!(
        taken,
        (1..=total).collect::<HashSet<_>>(),
        "concurrent allocations are consecutive"
    );

    // A room that already has stored messages continues after its highest seq.
    let seeded = RoomId(fresh_id());
    let mut m = message(seeded, UserId(7), "before the allocator");
    m.seq = Seq(41);
    store.insert_messages(&[m]).await.unwrap();
    assert_eq!(
        store.allocate(seeded, 2).await.unwrap(),
        Seq(42),
        "the first allocation continues after the stored messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sequence_allocator() {
    let fx = sqlite().await;
    let path = fx.dir.path().join("shoot.sqlite");
    let store = Arc::new(fx.store);
    allocator_contract(store.clone()).await;

    let room = RoomId(fresh_id());
    assert_eq!(store.allocate(room, 5).await.unwrap(), Seq(1));
    store.pool().close().await;
    drop(store);
    let reopened = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(
        reopened.allocate(room, 1).await.unwrap(),
        Seq(6),
        "numbers survive a reopen"
    );
    drop(fx.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sequence_allocator() {
    let Some(pg) = postgres().await else { return };
    let store = Arc::new(pg.store.clone());
    allocator_contract(store).await;
    pg.finish().await;
}
