//! # shoot-sql
//!
//! Every store port of `shoot-core` on SQLite ([`SqliteStore`], feature `sqlite`) and
//! PostgreSQL ([`PostgresStore`], feature `postgres`) through sqlx, plus the embedded durable
//! message log [`SqliteMessageLog`] used by the default single-instance stack.
//!
//! One struct per database implements all store traits (`UserStore`, `SocialStore`,
//! `RoomStore`, `MessageStore`, `BookmarkStore`, `ScheduleStore`, `NotificationStore`); the
//! SQL is shared by both dialects (`$n` placeholders, `ON CONFLICT`, `RETURNING`) except where
//! they differ (schema types, write-transaction mode, the atomic schedule claim).
//! Migrations are embedded and applied on open.
//!
//! ```no_run
//! # async fn demo() -> shoot_core::PortResult<()> {
//! use std::sync::Arc;
//! use shoot_core::identity::UserStore;
//! use shoot_sql::SqliteStore;
//!
//! let store = Arc::new(SqliteStore::open("./data/shoot.sqlite").await?);
//! let users: Arc<dyn UserStore> = store.clone();
//! assert!(users.find_by_username("nobody").await?.is_none());
//! # Ok(())
//! # }
//! ```

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod error;
#[cfg(feature = "sqlite")]
mod log;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sequence;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use log::{DEFAULT_RETENTION, SqliteLogConsumer, SqliteMessageLog};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
