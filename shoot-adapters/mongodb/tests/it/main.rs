//! Integration tests of shoot-mongodb, one binary:
//! - `codec::*` — the pure helpers and the document ↔ model mapping; always run;
//! - `live::*` — the `RoomStore` and `MessageStore` contracts of `shoot_core::testkit` and
//!   the adapter's own promises against a real server, each in a fresh database dropped at
//!   the end; with `SHOOT_TEST_MONGODB_URL` unset they print
//!   `skipped: SHOOT_TEST_MONGODB_URL not set` and return.

mod codec;
mod live;
