//! The stores on PostgreSQL: [`PostgresStore`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::migrate::{Embedded, migrator};

/// Longest wait for a pooled connection: while PostgreSQL is away, requests fail fast with
/// `BACKEND_UNAVAILABLE` instead of hanging (the persistence worker retries by itself).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

type Db = sqlx::Postgres;
type Store = PostgresStore;

const BACKEND: &str = "postgres";

/// PostgreSQL only has `$n` placeholders.
const ANONYMOUS_PARAMS: bool = false;

/// `IN` a list of ids bound as one parameter (`$1`, see [`bind_ids`]): one statement text
/// whatever the list's length, so one prepared statement in each connection's cache.
const IN_IDS: &str = "= ANY($1)";

/// Binds `ids` as the one parameter of [`IN_IDS`]: a `bigint[]`.
fn bind_ids<'q>(
    q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
    ids: &[i64],
) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
    q.bind(ids.to_vec())
}

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "room_seqs",
        include_str!("../migrations/postgres/0002_room_seqs.sql"),
    ),
]);

/// Claims with `FOR UPDATE SKIP LOCKED`: concurrent claimers on any instance lock disjoint
/// rows, and a row claimed by a transaction that committed meanwhile is re-checked and
/// skipped.
const CLAIM_DUE_SQL: &str = "UPDATE scheduled_messages SET claimed_by = $1, claim_expires_at = $2 \
     WHERE id IN (SELECT id FROM scheduled_messages WHERE status = 'PENDING' \
     AND scheduled_at <= $3 AND (claimed_by IS NULL OR claim_expires_at IS NULL \
     OR claim_expires_at <= $3) ORDER BY scheduled_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING *";

async fn begin_write(pool: &PgPool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// Every store port on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and applies the embedded migrations (several
    /// instances starting together apply them once, under an advisory lock).
    pub async fn connect(url: &str) -> shoot_core::PortResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url).map_err(err)?;
        PostgresStore::connect_with(options).await
    }

    /// Like [`connect`](Self::connect), with every table in `schema` (created if missing):
    /// lets several deployments or test runs share one database.
    pub async fn connect_in_schema(
        url: &str,
        schema: &str,
    ) -> shoot_core::PortResult<PostgresStore> {
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(shoot_core::PortError::Conflict(format!(
                "invalid schema name {schema:?} (use [A-Za-z0-9_])"
            )));
        }
        let options = PgConnectOptions::from_str(url).map_err(err)?;
        let setup = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(err)?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&setup)
            .await
            .map_err(err)?;
        setup.close().await;
        PostgresStore::connect_with(options.options([("search_path", schema)])).await
    }

    /// Connects with explicit options and applies the migrations.
    pub async fn connect_with(options: PgConnectOptions) -> shoot_core::PortResult<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(err)?;
        migrator(MIGRATIONS)
            .await
            .map_err(|e| shoot_core::PortError::backend(BACKEND, e))?
            .run(&pool)
            .await
            .map_err(|e| shoot_core::PortError::backend(BACKEND, e))?;
        tracing::info!("postgres store connected");
        Ok(PostgresStore { pool })
    }

    /// The connection pool (for tools and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

include!("common.rs");
