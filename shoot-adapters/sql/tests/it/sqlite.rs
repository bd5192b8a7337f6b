//! Every store contract against SQLite (a temporary file per test), and SQLite specifics.

use std::sync::Arc;

use futures::future::join_all;
use shoot_core::ids::{RoomId, Seq, UserId};
use shoot_core::messages::{HistoryQuery, MessageStore};
use shoot_core::rooms::{Participant, Role, Room, RoomStore, RoomType};
use shoot_core::testkit::{self, fresh_id};
use shoot_core::time::Timestamp;
use shoot_sql::SqliteStore;

use crate::support::{message, sqlite};

macro_rules! contract {
    ($name:ident, $contract:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = sqlite().await;
            $contract(&db.store).await;
        }
    };
}

contract!(user_store_contract, testkit::user_store_contract);
contract!(social_store_contract, testkit::social_store_contract);
contract!(room_store_contract, testkit::room_store_contract);
contract!(message_store_contract, testkit::message_store_contract);
contract!(bookmark_store_contract, testkit::bookmark_store_contract);
contract!(schedule_store_contract, testkit::schedule_store_contract);
contract!(
    notification_store_contract,
    testkit::notification_store_contract
);

fn room(id: RoomId) -> Room {
    Room {
        id,
        room_type: RoomType::Group,
        title: Some("t".to_owned()),
        announcement: None,
        created_by: UserId(1),
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
        last_seq: Seq::ZERO,
        last_message_id: None,
        last_activity_at: Timestamp(1),
    }
}

fn participant(room: RoomId, user: UserId) -> Participant {
    Participant {
        room_id: room,
        user_id: user,
        role: Role::Member,
        joined_at: Timestamp(1),
        last_read_seq: Seq::ZERO,
        favorite: false,
        favorited_at: None,
    }
}

/// Many tasks writing through two pools on one file (as two processes would): every write
/// succeeds — writers wait for the lock (IMMEDIATE transactions + busy timeout) instead of
/// failing with SQLITE_BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_see_busy() {
    let db = sqlite().await;
    let path = db.dir.path().join("shoot.sqlite");
    let second = SqliteStore::open(path.to_str().expect("utf-8"))
        .await
        .expect("second pool");
    let stores = [Arc::new(db.store.clone()), Arc::new(second)];
    let room_id = RoomId(fresh_id());
    stores[0]
        .create_room(&room(room_id), &[])
        .await
        .expect("create room");

    let tasks = (0..16).map(|task: i64| {
        let store = stores[(task % 2) as usize].clone();
        tokio::spawn(async move {
            for batch in 0..10i64 {
                let user = UserId(task + 1);
                let msgs: Vec<_> = (0..20i64)
                    .map(|i| {
                        let mut m = message(room_id, user, "hi");
                        m.seq = Seq(task * 1000 + batch * 20 + i + 1);
                        m
                    })
                    .collect();
                let inserted = store.insert_messages(&msgs).await.expect("insert_messages");
                assert_eq!(inserted.len(), 20);
                store
                    .add_participants(room_id, &[participant(room_id, UserId(task * 100 + batch))])
                    .await
                    .expect("add_participants");
                store
                    .add_reaction(msgs[0].id, "like", user, Timestamp(2))
                    .await
                    .expect("add_reaction");
            }
        })
    });
    for r in join_all(tasks).await {
        r.expect("writer task panicked");
    }
    let all = stores[1]
        .history(
            room_id,
            HistoryQuery {
                before: None,
                after: None,
                limit: 10_000,
            },
        )
        .await
        .expect("history");
    assert_eq!(all.len(), 16 * 10 * 20);
    assert_eq!(
        stores[0]
            .participants(room_id)
            .await
            .expect("participants")
            .len(),
        160
    );
}

/// Data and migrations survive closing and reopening the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_and_migrations_are_idempotent() {
    let db = sqlite().await;
    let path = db.dir.path().join("shoot.sqlite");
    let room_id = RoomId(fresh_id());
    let mut m = message(room_id, UserId(7), "persisted");
    m.seq = Seq(1);
    db.store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .expect("insert");
    db.store.close().await;
    let reopened = SqliteStore::open(path.to_str().expect("utf-8"))
        .await
        .expect("reopen");
    assert_eq!(reopened.get_message(m.id).await.expect("get"), Some(m));
    assert_eq!(reopened.max_seq(room_id).await.expect("max_seq"), Seq(1));
}

/// Bulk insert through the persistence hot path; prints the rate (informational only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_messages() {
    let db = sqlite().await;
    crate::support::bulk_insert(&db.store, "sqlite").await;
}
