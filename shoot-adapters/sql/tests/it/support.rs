//! Shared fixtures.

use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::messages::{Message, MessageStatus};
use shoot_core::testkit::{base36, fresh_id};
use shoot_core::time::Timestamp;
use shoot_sql::{PostgresStore, SqliteStore};
use tempfile::TempDir;

/// A fresh SQLite store in its own temporary directory (deleted on drop).
pub(crate) struct SqliteFixture {
    pub(crate) store: SqliteStore,
    pub(crate) dir: TempDir,
}

pub(crate) async fn sqlite() -> SqliteFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shoot.sqlite");
    let store = SqliteStore::open(path.to_str().expect("utf-8 path"))
        .await
        .expect("open sqlite");
    SqliteFixture { store, dir }
}

/// A PostgreSQL store in a fresh schema, or `None` (after printing that the test skipped)
/// when `SHOOT_TEST_POSTGRES_URL` is not set.
/// The schema is dropped by [`finish`](PgFixture::finish), or on drop when a test panicked.
pub(crate) struct PgFixture {
    pub(crate) store: PostgresStore,
    schema: String,
    url: String,
    finished: bool,
}

pub(crate) async fn postgres() -> Option<PgFixture> {
    let Ok(url) = std::env::var("SHOOT_TEST_POSTGRES_URL") else {
        println!("skipped: SHOOT_TEST_POSTGRES_URL not set");
        return None;
    };
    let schema = format!("shoot_test_{}", base36(fresh_id()).to_lowercase());
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect postgres");
    Some(PgFixture {
        store,
        schema,
        url,
        finished: false,
    })
}

impl PgFixture {
    /// Drops the schema and closes the pool.
    pub(crate) async fn finish(mut self) {
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .execute(self.store.pool())
            .await
            .expect("drop test schema");
        self.store.close().await;
        self.finished = true;
    }
}

impl Drop for PgFixture {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A failed test: drop the schema from a separate thread with its own runtime.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        let _ = sqlx::query(&sql).execute(&mut conn).await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

/// A TEXT message with a fresh id and temp id, `seq` 0 (unassigned).
pub(crate) fn message(room: RoomId, sender: UserId, text: &str) -> Message {
    let id = fresh_id();
    Message {
        temp_id: Some(format!("tmp-{id}").into()),
        status: MessageStatus::SentToKafka,
        ..Message::new(
            MessageId(id),
            room,
            sender,
            text,
            Timestamp(1_700_000_000_000),
        )
    }
}

/// Inserts 20 000 messages in batches of 500 through `insert_messages`, prints the rate
/// (informational only, never asserted) and checks the result.
pub(crate) async fn bulk_insert(store: &dyn shoot_core::messages::MessageStore, label: &str) {
    let room_id = RoomId(fresh_id());
    let total = 20_000i64;
    let batch = 500;
    let msgs: Vec<_> = (1..=total)
        .map(|i| {
            let mut m = message(room_id, UserId(i % 7 + 1), "a typical short chat message");
            m.seq = Seq(i);
            m
        })
        .collect();
    let start = std::time::Instant::now();
    for chunk in msgs.chunks(batch) {
        let inserted = store.insert_messages(chunk).await.expect("insert");
        assert_eq!(inserted.len(), chunk.len());
    }
    let elapsed = start.elapsed();
    println!(
        "{label} insert_messages: {total} rows in batches of {batch}: {:.0} rows/s",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(store.max_seq(room_id).await.expect("max_seq"), Seq(total));
    let counts = store
        .unread_counts(UserId(1), &[(room_id, Seq(total - 70))])
        .await
        .expect("unread");
    assert_eq!(counts, vec![60], "70 newest minus the 10 sent by user 1");
}
