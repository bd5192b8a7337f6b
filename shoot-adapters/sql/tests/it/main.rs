//! Integration tests of shoot-sql: every port contract of `shoot_core::testkit` against
//! SQLite (always) and PostgreSQL (when `SHOOT_TEST_POSTGRES_URL` is set), plus tests of
//! what only these adapters promise (durable log, group commit, concurrent SQLite writers).

#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod log;
mod postgres;
mod sequence;
mod sqlite;
mod support;
