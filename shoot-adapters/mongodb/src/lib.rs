//! # shoot-mongodb
//!
//! [`MongoStore`]: the `RoomStore` and `MessageStore` ports of `shoot-core` on MongoDB
//! through the official `mongodb` driver (tokio runtime).
//!
//! Collections: `rooms`, `participants` and `messages` (reactions embedded in their
//! message). Every write the port contracts require to be atomic is a single-document
//! operation (`$addToSet`/`$pull` for reactions, `$max` for read cursors and reply counts, a
//! conditional update for room activity, unique indexes for one direct room per pair and
//! idempotent inserts), so no multi-document transaction — and no replica set — is needed.
//! The indexes are created by [`MongoStore::connect`] / [`MongoStore::new`].
//!
//! ```no_run
//! # async fn demo() -> shoot_core::PortResult<()> {
//! use std::sync::Arc;
//! use shoot_core::messages::MessageStore;
//! use shoot_mongodb::MongoStore;
//!
//! let store = Arc::new(MongoStore::connect("mongodb://127.0.0.1:27017", "shoot").await?);
//! let messages: Arc<dyn MessageStore> = store.clone();
//! # let _ = messages;
//! # Ok(())
//! # }
//! ```

pub mod codec;
mod error;
mod messages;
mod rooms;

/// The driver, re-exported so callers can build a [`Database`] for [`MongoStore::new`].
pub use mongodb;

use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use shoot_core::{PortError, PortResult};

/// Name of the unique partial index making a direct room unique per unordered pair.
pub const IX_ROOMS_DIRECT_KEY: &str = "ux_rooms_direct_key";
/// Name of the unique index on `participants (room_id, user_id)`.
pub const IX_PARTICIPANTS_ROOM_USER: &str = "ux_participants_room_user";
/// Name of the index on `participants (user_id)`.
pub const IX_PARTICIPANTS_USER: &str = "ix_participants_user";
/// Name of the unique index on `messages (room_id, seq)` (history, unread counts, max seq).
pub const IX_MESSAGES_ROOM_SEQ: &str = "ux_messages_room_seq";
/// Name of the unique partial index on `messages (sender_id, temp_id)` (idempotent sends).
pub const IX_MESSAGES_SENDER_TEMP: &str = "ux_messages_sender_temp";
/// Name of the index on `messages (thread_id, seq, created_at)`: thread replies in order,
/// and a covered recount of a thread's replies and latest reply time.
pub const IX_MESSAGES_THREAD: &str = "ix_messages_thread";
/// Name of the partial index on pinned messages `(room_id, pin.pinned_at desc)`.
pub const IX_MESSAGES_PINNED: &str = "ix_messages_pinned";
/// Name of the partial index on thread roots `(room_id, last_reply_at desc)`.
pub const IX_MESSAGES_THREADS: &str = "ix_messages_threads";

/// Rooms and messages on MongoDB. Cheap to clone (the driver's client is a handle to a
/// shared connection pool).
#[derive(Clone, Debug)]
pub struct MongoStore {
    db: Database,
    rooms: Collection<Document>,
    participants: Collection<Document>,
    messages: Collection<Document>,
}

impl MongoStore {
    /// Connects to `url` (a `mongodb://` or `mongodb+srv://` connection string), uses the
    /// database `database` and creates the indexes (idempotent).
    pub async fn connect(url: &str, database: &str) -> PortResult<MongoStore> {
        let client = Client::with_uri_str(url)
            .await
            .map_err(|e| PortError::backend("mongodb", e))?;
        MongoStore::new(client.database(database)).await
    }

    /// A store on an already configured database handle; creates the indexes.
    pub async fn new(db: Database) -> PortResult<MongoStore> {
        let store = MongoStore {
            rooms: db.collection("rooms"),
            participants: db.collection("participants"),
            messages: db.collection("messages"),
            db,
        };
        store.create_indexes().await?;
        Ok(store)
    }

    /// The database handle (e.g. to drop a test database).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Checks that the server answers (`ping`), for readiness probes.
    pub async fn ping(&self) -> PortResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| PortError::backend("mongodb", e))
    }

    async fn create_indexes(&self) -> PortResult<()> {
        let ix = |keys: Document, name: &str, unique: bool, partial: Option<Document>| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(unique.then_some(true))
                        .partial_filter_expression(partial)
                        .build(),
                )
                .build()
        };
        let err = |e| PortError::backend("mongodb", e);
        self.rooms
            .create_indexes([ix(
                doc! { "direct_key": 1 },
                IX_ROOMS_DIRECT_KEY,
                true,
                Some(doc! { "direct_key": { "$type": "string" } }),
            )])
            .await
            .map_err(err)?;
        self.participants
            .create_indexes([
                ix(
                    doc! { "room_id": 1, "user_id": 1 },
                    IX_PARTICIPANTS_ROOM_USER,
                    true,
                    None,
                ),
                ix(doc! { "user_id": 1 }, IX_PARTICIPANTS_USER, false, None),
            ])
            .await
            .map_err(err)?;
        self.messages
            .create_indexes([
                ix(
                    doc! { "room_id": 1, "seq": 1 },
                    IX_MESSAGES_ROOM_SEQ,
                    true,
                    None,
                ),
                ix(
                    doc! { "sender_id": 1, "temp_id": 1 },
                    IX_MESSAGES_SENDER_TEMP,
                    true,
                    Some(doc! { "temp_id": { "$type": "string" } }),
                ),
                ix(
                    doc! { "thread_id": 1, "seq": 1, "created_at": 1 },
                    IX_MESSAGES_THREAD,
                    false,
                    None,
                ),
                ix(
                    doc! { "room_id": 1, "pin.pinned_at": -1 },
                    IX_MESSAGES_PINNED,
                    false,
                    Some(doc! { "pin": { "$exists": true } }),
                ),
                ix(
                    doc! { "room_id": 1, "last_reply_at": -1 },
                    IX_MESSAGES_THREADS,
                    false,
                    Some(doc! { "reply_count": { "$gt": 0 } }),
                ),
            ])
            .await
            .map_err(err)?;
        Ok(())
    }
}
