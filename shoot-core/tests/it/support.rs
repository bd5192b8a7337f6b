//! Shared test helpers: a real-time clock and a tokio spawner (core itself has no runtime), a
//! message builder, and a message store wrapper that counts calls and fails on demand.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use shoot_core::Timestamp;
use shoot_core::error::{PortError, PortResult};
use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::memory::MemoryMessageStore;
use shoot_core::messages::{HistoryQuery, Message, MessageStatus, MessageStore, Pin};
use shoot_core::ports::{Clock, Spawner};

/// Wall-clock time with tokio timers, for contracts that need real time.
pub(crate) struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Timestamp(ms)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        tokio::time::sleep(duration).boxed()
    }
}

/// Spawns on the current tokio runtime.
pub(crate) struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// `RealClock` as a port.
#[allow(dead_code)] // used by some test modules only
pub(crate) fn real_clock() -> Arc<dyn Clock> {
    Arc::new(RealClock)
}

/// A plain text message: no thread, reactions, pin or edits; created at `Timestamp(0)` and
/// `SAVED`. Tests set other fields with struct update syntax.
pub(crate) fn text_message(
    id: i64,
    room: RoomId,
    seq: i64,
    sender: UserId,
    temp_id: Option<&str>,
    text: &str,
) -> Message {
    Message {
        seq: Seq(seq),
        temp_id: temp_id.map(Into::into),
        status: MessageStatus::Saved,
        ..Message::new(MessageId(id), room, sender, text, Timestamp(0))
    }
}

/// The newest `limit` messages of a history.
pub(crate) fn newest(limit: usize) -> HistoryQuery {
    HistoryQuery {
        before: None,
        after: None,
        limit,
    }
}

/// A memory message store that records the temp-id look-ups, inserts and history pages asked
/// of it and fails the first two on demand; every other method goes straight to `inner`.
#[derive(Default)]
pub(crate) struct SpyMessages {
    pub(crate) inner: MemoryMessageStore,
    /// Number of `find_by_temp_id` calls.
    pub(crate) single_lookups: AtomicUsize,
    /// Number of keys of each `find_by_temp_ids` call, in call order.
    pub(crate) batch_lookups: Mutex<Vec<usize>>,
    /// While set, `find_by_temp_ids` fails with a backend error.
    pub(crate) fail_lookups: AtomicBool,
    /// If set, each `find_by_temp_ids` waits for a permit of it.
    pub(crate) lookup_gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Number of messages of each `insert_messages` call, in call order.
    pub(crate) inserts: Mutex<Vec<usize>>,
    /// Number of pages of each `histories` call, in call order.
    pub(crate) history_pages: Mutex<Vec<usize>>,
    /// How many more `insert_messages` calls fail with a backend error.
    pub(crate) insert_failures_left: AtomicUsize,
    /// Inserts of a batch holding a message with this text fail with a conflict (a poison
    /// record, never accepted).
    pub(crate) poison_text: Option<&'static str>,
}

#[async_trait]
impl MessageStore for SpyMessages {
    async fn insert_messages(&self, messages: &[Message]) -> PortResult<Vec<MessageId>> {
        self.inserts.lock().unwrap().push(messages.len());
        if self.insert_failures_left.load(Ordering::SeqCst) > 0 {
            self.insert_failures_left.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::backend("spy", "connection reset"));
        }
        if self
            .poison_text
            .is_some_and(|poison| messages.iter().any(|m| &*m.text == poison))
        {
            return Err(PortError::Conflict("poison record".into()));
        }
        self.inner.insert_messages(messages).await
    }
    async fn get_message(&self, id: MessageId) -> PortResult<Option<Message>> {
        self.inner.get_message(id).await
    }
    async fn get_messages(&self, ids: &[MessageId]) -> PortResult<Vec<Message>> {
        self.inner.get_messages(ids).await
    }
    async fn find_by_temp_id(&self, sender: UserId, temp_id: &str) -> PortResult<Option<Message>> {
        self.single_lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_temp_id(sender, temp_id).await
    }
    async fn find_by_temp_ids(&self, keys: &[(UserId, &str)]) -> PortResult<Vec<Message>> {
        self.batch_lookups.lock().unwrap().push(keys.len());
        if let Some(gate) = &self.lookup_gate {
            gate.acquire().await.expect("gate").forget();
        }
        if self.fail_lookups.load(Ordering::SeqCst) {
            return Err(PortError::backend("spy", "connection reset"));
        }
        self.inner.find_by_temp_ids(keys).await
    }
    async fn history(&self, room: RoomId, query: HistoryQuery) -> PortResult<Vec<Message>> {
        self.inner.history(room, query).await
    }
    async fn histories(&self, queries: &[(RoomId, HistoryQuery)]) -> PortResult<Vec<Vec<Message>>> {
        self.history_pages.lock().unwrap().push(queries.len());
        self.inner.histories(queries).await
    }
    async fn update_message(&self, message: &Message) -> PortResult<()> {
        self.inner.update_message(message).await
    }
    async fn add_reaction(
        &self,
        m: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        self.inner.add_reaction(m, code, user, at).await
    }
    async fn remove_reaction(
        &self,
        m: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        self.inner.remove_reaction(m, code, user, at).await
    }
    async fn set_pin(&self, m: MessageId, pin: Option<Pin>, at: Timestamp) -> PortResult<()> {
        self.inner.set_pin(m, pin, at).await
    }
    async fn pinned(&self, room: RoomId) -> PortResult<Vec<Message>> {
        self.inner.pinned(room).await
    }
    async fn thread_replies(
        &self,
        root: MessageId,
        after: Option<Seq>,
        limit: usize,
    ) -> PortResult<Vec<Message>> {
        self.inner.thread_replies(root, after, limit).await
    }
    async fn threads(&self, room: RoomId, limit: usize) -> PortResult<Vec<Message>> {
        self.inner.threads(room, limit).await
    }
    async fn search(&self, room: RoomId, query: &str, limit: usize) -> PortResult<Vec<Message>> {
        self.inner.search(room, query, limit).await
    }
    async fn unread_counts(&self, user: UserId, cursors: &[(RoomId, Seq)]) -> PortResult<Vec<u64>> {
        self.inner.unread_counts(user, cursors).await
    }
    async fn max_seq(&self, room: RoomId) -> PortResult<Seq> {
        self.inner.max_seq(room).await
    }
}
