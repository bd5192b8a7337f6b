//! [`SequenceAllocator`] on the store database, for message logs that cannot number records
//! themselves (Kafka).
//!
//! Each room has one row in `room_seqs` holding the highest number ever handed out. An
//! allocation is a single upsert statement (`INSERT … ON CONFLICT DO UPDATE SET last_seq =
//! last_seq + n RETURNING last_seq`), which both databases execute atomically: concurrent
//! callers on any instance serialise on the row, so no number is handed out twice, and the
//! counter is committed before the numbers are used, so a restart never reuses one (numbers
//! of a caller that fails afterwards are a gap). The first allocation in a room starts after
//! the highest seq already stored for it (messages or room), so switching an existing
//! database from the embedded log to Kafka continues the numbering.

use async_trait::async_trait;
use shoot_core::ids::{RoomId, Seq};
use shoot_core::ports::SequenceAllocator;
use shoot_core::{PortError, PortResult};

/// The first of `count` numbers whose last is `last`.
fn first_of(last: i64, count: u32) -> Seq {
    Seq(last - i64::from(count) + 1)
}

fn check_count(count: u32) -> PortResult<()> {
    if count == 0 {
        return Err(PortError::Conflict(
            "a sequence allocation reserves at least one number".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(feature = "postgres")]
const POSTGRES_ALLOCATE: &str = "INSERT INTO room_seqs (room_id, last_seq) VALUES ($1, \
     GREATEST(COALESCE((SELECT MAX(seq) FROM messages WHERE room_id = $1), 0), \
     COALESCE((SELECT last_seq FROM rooms WHERE id = $1), 0)) + $2) \
     ON CONFLICT (room_id) DO UPDATE SET last_seq = room_seqs.last_seq + $2 \
     RETURNING last_seq";

#[cfg(feature = "sqlite")]
const SQLITE_ALLOCATE: &str = "INSERT INTO room_seqs (room_id, last_seq) VALUES ($1, \
     MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE room_id = $1), 0), \
     COALESCE((SELECT last_seq FROM rooms WHERE id = $1), 0)) + $2) \
     ON CONFLICT (room_id) DO UPDATE SET last_seq = room_seqs.last_seq + $2 \
     RETURNING last_seq";

#[cfg(feature = "postgres")]
#[async_trait]
impl SequenceAllocator for crate::PostgresStore {
    async fn allocate(&self, room: RoomId, count: u32) -> PortResult<Seq> {
        check_count(count)?;
        let last: i64 = sqlx::query_scalar(POSTGRES_ALLOCATE)
            .bind(room.0)
            .bind(i64::from(count))
            .fetch_one(self.pool())
            .await
            .map_err(|e| crate::error::classify("postgres", e))?;
        Ok(first_of(last, count))
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl SequenceAllocator for crate::SqliteStore {
    async fn allocate(&self, room: RoomId, count: u32) -> PortResult<Seq> {
        check_count(count)?;
        let last: i64 = sqlx::query_scalar(SQLITE_ALLOCATE)
            .bind(room.0)
            .bind(i64::from(count))
            .fetch_one(self.pool())
            .await
            .map_err(|e| crate::error::classify("sqlite", e))?;
        Ok(first_of(last, count))
    }
}
