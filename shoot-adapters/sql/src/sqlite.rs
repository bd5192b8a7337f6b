//! The stores on SQLite: [`SqliteStore`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::migrate::{Embedded, migrator};

type Db = sqlx::Sqlite;
type Store = SqliteStore;

const BACKEND: &str = "sqlite";

/// SQLite serialises writers; a waiting writer retries for this long before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// SQLite's page cache per connection, in KiB (negative: a size, not a page count; SQLite's
/// default is 2 000 KiB). The cache is heap memory and fills as the database grows, so it is
/// what bounds SQLite's heap (13 connections: the store's 8, the log's writer and its 4
/// readers). With the memory map, pages not in the WAL are read from the map, so a small
/// cache costs little; with the default, a 10-minute soak's heap kept growing for minutes
/// (heaptrack: SQLite's page caches were the largest live allocation).
pub(crate) const PAGE_CACHE_KIB: &str = "-1024";
/// Bytes of the database file mapped into memory per connection (address space, not RSS:
/// pages are shared with the OS page cache).
pub(crate) const MMAP_SIZE: &str = "268435456";

/// Rows a statement's thread may hand over before the reader takes them (sqlx's default is
/// 50). Each SQLite connection runs on a thread of its own, which blocks whenever the channel
/// is full: reading a big room's 15 000 participants then took ≈ 300 thread switches, and
/// on the single core of the big-room benchmark a quarter of the server's CPU went to the
/// SQLite threads, a third of that to switching (`perf`). The channel grows only as rows
/// queue up, so a larger bound costs nothing while reads are small.
pub(crate) const ROW_CHANNEL: usize = 1024;

/// Large statements bound in order use `?` (see `sequential_placeholders`).
const ANONYMOUS_PARAMS: bool = true;

/// `IN` a list of ids bound as one parameter (`$1`, see [`bind_ids`]): one statement text
/// whatever the list's length, so one prepared statement in each connection's cache.
const IN_IDS: &str = "IN (SELECT value FROM json_each($1))";

/// Binds `ids` as the one parameter of [`IN_IDS`]: a JSON array.
fn bind_ids<'q>(
    q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
    ids: &[i64],
) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
    q.bind(crate::codec::json_ids(ids))
}

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "room_seqs",
        include_str!("../migrations/sqlite/0002_room_seqs.sql"),
    ),
]);

/// One UPDATE … RETURNING inside an IMMEDIATE transaction: the write lock is taken before
/// the due rows are read, so two claimers never see the same rows.
const CLAIM_DUE_SQL: &str = "UPDATE scheduled_messages SET claimed_by = $1, claim_expires_at = $2 \
     WHERE id IN (SELECT id FROM scheduled_messages WHERE status = 'PENDING' \
     AND scheduled_at <= $3 AND (claimed_by IS NULL OR claim_expires_at IS NULL \
     OR claim_expires_at <= $3) ORDER BY scheduled_at, id LIMIT $4) RETURNING *";

/// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front (waiting up to the
/// busy timeout), so a transaction that reads before it writes never fails with
/// `SQLITE_BUSY` on lock upgrade.
async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Every store port on one SQLite database file.
///
/// The database runs in WAL mode with `synchronous=NORMAL` (a committed transaction survives
/// a process crash; a power loss may lose the last ones — the message log, not this store, is
/// the durability point of messages), foreign keys on and a busy timeout, so concurrent
/// writers wait for each other instead of failing.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path_or_url` — a file path or a
    /// `sqlite:` URL — and applies the embedded migrations.
    pub async fn open(path_or_url: &str) -> shoot_core::PortResult<SqliteStore> {
        let options = if path_or_url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path_or_url).map_err(err)?
        } else {
            SqliteConnectOptions::new().filename(path_or_url)
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        // Reads through a memory map instead of a `pread` per page; a bounded page cache.
        .pragma("mmap_size", MMAP_SIZE)
        .pragma("cache_size", PAGE_CACHE_KIB)
        .pragma("temp_store", "memory")
        .row_buffer_size(ROW_CHANNEL);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(err)?;
        migrator(MIGRATIONS)
            .await
            .map_err(|e| shoot_core::PortError::backend(BACKEND, e))?
            .run(&pool)
            .await
            .map_err(|e| shoot_core::PortError::backend(BACKEND, e))?;
        tracing::info!(database = %path_or_url, "sqlite store open");
        Ok(SqliteStore { pool })
    }

    /// The connection pool (for tools and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

include!("common.rs");
