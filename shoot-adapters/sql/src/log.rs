//! The embedded durable message log on SQLite: [`SqliteMessageLog`].
//!
//! Records live in their own database file with `synchronous=FULL`: an append returns only
//! once its transaction is on disk, which is what `SENT_TO_KAFKA` promises. A single writer
//! task owns the write connection and commits everything pending in one transaction (group
//! commit), so concurrent senders share one fsync. Consumers read through a separate pool
//! (WAL lets readers run beside the writer) and are woken by the writer after each commit.
//!
//! All records are in partition 0 (one file, one offset sequence), so log order is global
//! and per-room order follows.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use shoot_core::messages::Message;
use shoot_core::ports::{LogConsumer, LogEntry, LogPosition, MessageLog};
use shoot_core::{PortError, PortResult, RoomId, Seq};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, ConnectOptions, Connection, Row};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::sqlite::{BUSY_TIMEOUT, MMAP_SIZE, PAGE_CACHE_KIB, ROW_CHANNEL};

const BACKEND: &str = "sqlite";

/// The only partition of the embedded log.
const PARTITION: i32 = 0;

/// How long committed records are kept by default (a consumer group created later can still
/// read them, like Kafka's time-based retention).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// Most requests folded into one transaction.
const MAX_REQUESTS_PER_COMMIT: usize = 4096;

/// Rows per multi-row INSERT (4 variables each).
const INSERT_CHUNK: usize = 2000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_records (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    partition INTEGER NOT NULL,
    room_id   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    payload   TEXT NOT NULL,
    appended_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_room_seqs (
    room_id  INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_groups (
    name      TEXT PRIMARY KEY,
    committed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_dead_letters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id  INTEGER NOT NULL,
    partition  INTEGER NOT NULL,
    room_id    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
";

fn err(e: sqlx::Error) -> PortError {
    PortError::backend(BACKEND, e)
}

enum Request {
    Append {
        batch: Vec<Message>,
        reply: oneshot::Sender<PortResult<Vec<Message>>>,
    },
    Commit {
        group: String,
        offset: i64,
        reply: oneshot::Sender<PortResult<()>>,
    },
    DeadLetter {
        entry: Box<LogEntry>,
        reason: String,
        reply: oneshot::Sender<PortResult<()>>,
    },
}

/// Where a consumer group is, shared by the group's consumers in this process.
#[derive(Debug)]
struct GroupCursor {
    /// Highest offset handed to a consumer of the group.
    handed_out: i64,
    /// Highest committed offset.
    committed: i64,
}

struct Inner {
    requests: mpsc::Sender<Request>,
    readers: SqlitePool,
    appended: Arc<Notify>,
    groups: Mutex<HashMap<String, Arc<tokio::sync::Mutex<GroupCursor>>>>,
}

/// The embedded durable message log: records, per-room sequence counters, consumer-group
/// offsets and dead letters in one SQLite file.
///
/// Sequence numbers continue across restarts and are never reused: the counter of a room
/// is stored in the same transaction as the records it numbered. Committed records below
/// every group's offset are deleted, so the file does not grow without bound.
#[derive(Clone)]
pub struct SqliteMessageLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteMessageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMessageLog").finish_non_exhaustive()
    }
}

impl SqliteMessageLog {
    /// Opens (creating if missing) the log database at `path` (for example
    /// `data/log.sqlite`) and starts its writer task on the current tokio runtime.
    /// Records are kept for [`DEFAULT_RETENTION`] after every consumer group committed them.
    pub async fn open(path: &str) -> PortResult<SqliteMessageLog> {
        SqliteMessageLog::open_with_retention(path, DEFAULT_RETENTION).await
    }

    /// Like [`open`](Self::open): a record is deleted once every known consumer group has
    /// committed it and it is older than `retention`.
    pub async fn open_with_retention(
        path: &str,
        retention: Duration,
    ) -> PortResult<SqliteMessageLog> {
        let options = if path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path).map_err(err)?
        } else {
            SqliteConnectOptions::new().filename(path)
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        // Reads through a memory map instead of a `pread` per page; a bounded page cache.
        .pragma("mmap_size", MMAP_SIZE)
        .pragma("cache_size", PAGE_CACHE_KIB)
        .pragma("temp_store", "memory")
        .row_buffer_size(ROW_CHANNEL);
        let mut writer = options.connect().await.map_err(err)?;
        sqlx::raw_sql(SCHEMA)
            .execute(&mut writer)
            .await
            .map_err(err)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(err)?;
        let (requests, rx) = mpsc::channel(MAX_REQUESTS_PER_COMMIT);
        let appended = Arc::new(Notify::new());
        tokio::spawn(run_writer(writer, rx, appended.clone(), retention));
        tracing::info!(log = %path, "sqlite message log open");
        Ok(SqliteMessageLog {
            inner: Arc::new(Inner {
                requests,
                readers,
                appended,
                groups: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Dead-lettered records with their reasons, oldest first (for operators and tests).
    pub async fn dead_letters(&self) -> PortResult<Vec<(LogEntry, String)>> {
        let rows = sqlx::query(
            "SELECT record_id, partition, payload, reason FROM log_dead_letters ORDER BY id",
        )
        .fetch_all(&self.inner.readers)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("payload").map_err(err)?;
                Ok((
                    LogEntry {
                        position: LogPosition {
                            partition: r.try_get::<i64, _>("partition").map_err(err)? as i32,
                            offset: r.try_get("record_id").map_err(err)?,
                        },
                        message: decode(&payload)?,
                    },
                    r.try_get("reason").map_err(err)?,
                ))
            })
            .collect()
    }

    /// Number of records still stored (not yet removed by retention).
    pub async fn retained_records(&self) -> PortResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM log_records")
            .fetch_one(&self.inner.readers)
            .await
            .map_err(err)?;
        Ok(row.try_get::<i64, _>("n").map_err(err)?.max(0) as u64)
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<PortResult<T>>) -> Request,
    ) -> PortResult<T> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(make(reply))
            .await
            .map_err(|_| PortError::backend(BACKEND, "message log writer stopped"))?;
        answer
            .await
            .map_err(|_| PortError::backend(BACKEND, "message log writer stopped"))?
    }
}

fn decode(payload: &str) -> PortResult<Message> {
    serde_json::from_str(payload).map_err(|e| PortError::backend(BACKEND, e))
}

#[async_trait]
impl MessageLog for SqliteMessageLog {
    async fn append(&self, batch: Vec<Message>) -> PortResult<Vec<Message>> {
        if batch.is_empty() {
            return Ok(batch);
        }
        self.request(|reply| Request::Append { batch, reply }).await
    }

    async fn consumer(&self, group: &str) -> PortResult<Box<dyn LogConsumer>> {
        let existing = self
            .inner
            .groups
            .lock()
            .map_err(|_| PortError::backend(BACKEND, "group table poisoned"))?
            .get(group)
            .cloned();
        let cursor = match existing {
            Some(cursor) => {
                // A new consumer takes over what was handed out but never committed
                // (at-least-once: those records are delivered again).
                let mut c = cursor.lock().await;
                c.handed_out = c.committed;
                drop(c);
                cursor
            }
            None => {
                // Register the group, so retention keeps what it has not committed yet.
                let name = group.to_owned();
                self.request(|reply| Request::Commit {
                    group: name,
                    offset: 0,
                    reply,
                })
                .await?;
                let row = sqlx::query("SELECT committed FROM log_groups WHERE name = $1")
                    .bind(group)
                    .fetch_optional(&self.inner.readers)
                    .await
                    .map_err(err)?;
                let committed = match row {
                    Some(r) => r.try_get::<i64, _>("committed").map_err(err)?,
                    None => 0,
                };
                let fresh = Arc::new(tokio::sync::Mutex::new(GroupCursor {
                    handed_out: committed,
                    committed,
                }));
                self.inner
                    .groups
                    .lock()
                    .map_err(|_| PortError::backend(BACKEND, "group table poisoned"))?
                    .entry(group.to_owned())
                    .or_insert(fresh)
                    .clone()
            }
        };
        Ok(Box::new(SqliteLogConsumer {
            log: self.clone(),
            group: group.to_owned(),
            cursor,
        }))
    }

    async fn durable_seq(&self, room: RoomId) -> PortResult<Option<Seq>> {
        // Written in the same transaction as the records: exactly what is durable.
        let row = sqlx::query("SELECT last_seq FROM log_room_seqs WHERE room_id = $1")
            .bind(room.0)
            .fetch_optional(&self.inner.readers)
            .await
            .map_err(err)?;
        row.map(|r| r.try_get::<i64, _>("last_seq").map(Seq).map_err(err))
            .transpose()
    }

    async fn durable_seqs(&self, rooms: &[RoomId]) -> PortResult<Vec<(RoomId, Seq)>> {
        let mut ids: Vec<i64> = rooms.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            let q = sqlx::query(ROOM_SEQS_SQL).bind(crate::codec::json_ids(chunk));
            for row in q.fetch_all(&self.inner.readers).await.map_err(err)? {
                let room = row.try_get::<i64, _>("room_id").map_err(err)?;
                let seq = row.try_get::<i64, _>("last_seq").map_err(err)?;
                out.push((RoomId(room), Seq(seq)));
            }
        }
        Ok(out)
    }

    async fn dead_letter(&self, entry: &LogEntry, reason: &str) -> PortResult<()> {
        let entry = Box::new(entry.clone());
        let reason = reason.to_owned();
        self.request(|reply| Request::DeadLetter {
            entry,
            reason,
            reply,
        })
        .await
    }
}

/// A consumer of [`SqliteMessageLog`] in one consumer group.
pub struct SqliteLogConsumer {
    log: SqliteMessageLog,
    group: String,
    cursor: Arc<tokio::sync::Mutex<GroupCursor>>,
}

impl std::fmt::Debug for SqliteLogConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLogConsumer")
            .field("group", &self.group)
            .finish()
    }
}

impl SqliteLogConsumer {
    async fn take(&self, max: usize) -> PortResult<Vec<LogEntry>> {
        let mut cursor = self.cursor.lock().await;
        let rows = sqlx::query(
            "SELECT id, partition, payload FROM log_records WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(cursor.handed_out)
        .bind(max as i64)
        .fetch_all(&self.log.inner.readers)
        .await
        .map_err(err)?;
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            let offset: i64 = r.try_get("id").map_err(err)?;
            let payload: String = r.try_get("payload").map_err(err)?;
            cursor.handed_out = cursor.handed_out.max(offset);
            entries.push(LogEntry {
                position: LogPosition {
                    partition: r.try_get::<i64, _>("partition").map_err(err)? as i32,
                    offset,
                },
                message: decode(&payload)?,
            });
        }
        Ok(entries)
    }
}

#[async_trait]
impl LogConsumer for SqliteLogConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogEntry>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + wait;
        let appended = self.log.inner.appended.clone();
        loop {
            // Register for the wake-up before looking, so an append that commits between the
            // read and the wait is not missed.
            let notified = appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let entries = self.take(max).await?;
            if !entries.is_empty() {
                return Ok(entries);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn commit(&mut self, positions: &[LogPosition]) -> PortResult<()> {
        let Some(offset) = positions.iter().map(|p| p.offset).max() else {
            return Ok(());
        };
        let group = self.group.clone();
        self.log
            .request(|reply| Request::Commit {
                group,
                offset,
                reply,
            })
            .await?;
        let mut cursor = self.cursor.lock().await;
        cursor.committed = cursor.committed.max(offset);
        cursor.handed_out = cursor.handed_out.max(offset);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The writer task.

/// What the writer task knows of the log between transactions: it is the only writer, so
/// after loading once it never reads its own state back. Rebuilt from the file after a failed
/// transaction.
#[derive(Debug, Default)]
struct WriterState {
    /// Last assigned seq per room, as committed (rooms not here are read on first use).
    seqs: HashMap<i64, i64>,
    /// The id the next record gets (record ids are assigned here, so each transaction knows
    /// its ids without reading them back).
    next_id: i64,
    /// Committed offset of every consumer group.
    groups: HashMap<String, i64>,
    /// Highest id of each committed append transaction and when it was written, oldest first:
    /// tells which records are past the retention time without scanning the table.
    written: VecDeque<(i64, i64)>,
    /// Every record up to this id is past the retention time.
    expired_upto: i64,
    /// Every record up to this id has been deleted.
    deleted_upto: i64,
}

impl WriterState {
    async fn load(conn: &mut SqliteConnection, now: i64) -> Result<WriterState, sqlx::Error> {
        let max_id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) AS m FROM log_records")
            .fetch_one(&mut *conn)
            .await?
            .try_get("m")?;
        // AUTOINCREMENT ids are never reused, even of deleted records.
        let used: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) AS m FROM sqlite_sequence WHERE name = 'log_records'",
        )
        .fetch_one(&mut *conn)
        .await?
        .try_get("m")?;
        let min_id: i64 = sqlx::query("SELECT COALESCE(MIN(id), 0) AS m FROM log_records")
            .fetch_one(&mut *conn)
            .await?
            .try_get("m")?;
        let mut groups = HashMap::new();
        for row in sqlx::query("SELECT name, committed FROM log_groups")
            .fetch_all(&mut *conn)
            .await?
        {
            groups.insert(row.try_get("name")?, row.try_get("committed")?);
        }
        // Records written before this start count as written now: they are kept a full
        // retention period from here (never less than asked).
        let mut written = VecDeque::new();
        if max_id > 0 {
            written.push_back((max_id, now));
        }
        Ok(WriterState {
            seqs: HashMap::new(),
            next_id: max_id.max(used) + 1,
            groups,
            written,
            expired_upto: 0,
            deleted_upto: (min_id - 1).max(0),
        })
    }
}

async fn run_writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Request>,
    appended: Arc<Notify>,
    retention: Duration,
) {
    let mut state: Option<WriterState> = None;
    while let Some(first) = rx.recv().await {
        let mut requests = vec![first];
        while requests.len() < MAX_REQUESTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        let now = unix_millis();
        let result = match state.as_mut() {
            Some(st) => write(&mut conn, st, &mut requests, retention, now).await,
            None => match WriterState::load(&mut conn, now).await {
                Ok(st) => write(&mut conn, state.insert(st), &mut requests, retention, now).await,
                Err(e) => Err(e.into()),
            },
        };
        match result {
            Ok(numbered) => {
                let mut any_append = false;
                let mut numbered = numbered.into_iter();
                for r in requests {
                    match r {
                        Request::Append { reply, .. } => {
                            any_append = true;
                            let _ = reply.send(Ok(numbered.next().unwrap_or_default()));
                        }
                        Request::Commit { reply, .. } | Request::DeadLetter { reply, .. } => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
                if any_append {
                    appended.notify_waiters();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = requests.len(), "message log write failed");
                // Reloaded from the file before the next transaction.
                state = None;
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                let reason = e.to_string();
                for r in requests {
                    let failure = || PortError::backend(BACKEND, reason.clone());
                    match r {
                        Request::Append { reply, .. } => {
                            let _ = reply.send(Err(failure()));
                        }
                        Request::Commit { reply, .. } | Request::DeadLetter { reply, .. } => {
                            let _ = reply.send(Err(failure()));
                        }
                    }
                }
            }
        }
    }
    let _ = conn.close().await;
    tracing::debug!("message log writer stopped");
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A statement list bound in textual order: SQLite runs a multi-statement query in one call,
/// binding each statement's `?`s from the shared argument list in turn.
struct Script {
    sql: String,
    args: SqliteArguments<'static>,
}

impl Script {
    fn new() -> Script {
        Script {
            sql: String::with_capacity(4096),
            args: SqliteArguments::default(),
        }
    }

    fn bind<T>(&mut self, value: T) -> Result<(), sqlx::error::BoxDynError>
    where
        T: sqlx::Encode<'static, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + 'static,
    {
        self.args.add(value)
    }
}

type Written = Vec<Vec<Message>>;

/// The seq counters of the rooms (of a JSON array bound as its one parameter) that have one:
/// one statement text whatever the number of rooms, so one prepared statement.
const ROOM_SEQS_SQL: &str = "SELECT room_id, last_seq FROM log_room_seqs \
     WHERE room_id IN (SELECT value FROM json_each(?))";

/// Writes every request in one transaction, sent to SQLite as one script (one hand-off to
/// the connection's thread; a look-up of rooms not seen before is the only other). Returns
/// the numbered batches, one per append, in order. `state` is updated only on success.
async fn write(
    conn: &mut SqliteConnection,
    state: &mut WriterState,
    requests: &mut [Request],
    retention: Duration,
    now: i64,
) -> Result<Written, Box<dyn std::error::Error + Send + Sync>> {
    // Rooms whose counter is not known yet: one look-up for all of them.
    let mut unknown: Vec<i64> = Vec::new();
    for r in requests.iter() {
        if let Request::Append { batch, .. } = r {
            for m in batch {
                let room = m.room_id.0;
                if !state.seqs.contains_key(&room) && !unknown.contains(&room) {
                    unknown.push(room);
                }
            }
        }
    }
    let mut loaded: HashMap<i64, i64> = HashMap::new();
    for chunk in unknown.chunks(INSERT_CHUNK) {
        let q = sqlx::query(ROOM_SEQS_SQL).bind(crate::codec::json_ids(chunk));
        for row in q.fetch_all(&mut *conn).await? {
            loaded.insert(row.try_get("room_id")?, row.try_get("last_seq")?);
        }
    }

    let mut script = Script::new();
    script.sql.push_str("BEGIN IMMEDIATE;");
    let mut assigned: HashMap<i64, i64> = HashMap::new();
    let mut numbered = Vec::new();
    let mut records: Vec<(i64, i64, i64, String)> = Vec::new();
    let mut next_id = state.next_id;
    let mut commits: HashMap<&str, i64> = HashMap::new();
    for r in requests.iter_mut() {
        match r {
            Request::Append { batch, .. } => {
                let mut out = std::mem::take(batch);
                for m in &mut out {
                    let room = m.room_id.0;
                    let last = assigned
                        .get(&room)
                        .or_else(|| state.seqs.get(&room))
                        .or_else(|| loaded.get(&room))
                        .copied()
                        .unwrap_or(0);
                    m.seq = Seq(last + 1);
                    assigned.insert(room, last + 1);
                    records.push((next_id, room, last + 1, serde_json::to_string(&*m)?));
                    next_id += 1;
                }
                numbered.push(out);
            }
            Request::Commit { group, offset, .. } => {
                let e = commits.entry(group.as_str()).or_insert(*offset);
                *e = (*e).max(*offset);
            }
            Request::DeadLetter { entry, reason, .. } => {
                script.sql.push_str(
                    "INSERT INTO log_dead_letters (record_id, partition, room_id, seq, payload, \
                     reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?);",
                );
                script.bind(entry.position.offset)?;
                script.bind(i64::from(entry.position.partition))?;
                script.bind(entry.message.room_id.0)?;
                script.bind(entry.message.seq.0)?;
                script.bind(serde_json::to_string(&entry.message)?)?;
                script.bind(reason.clone())?;
                script.bind(now)?;
            }
        }
    }
    let wrote_records = !records.is_empty();
    for (i, (id, room, seq, payload)) in records.into_iter().enumerate() {
        if i % INSERT_CHUNK == 0 {
            if i > 0 {
                script.sql.push(';');
            }
            script.sql.push_str(
                "INSERT INTO log_records (id, partition, room_id, seq, payload, appended_at) \
                 VALUES ",
            );
        } else {
            script.sql.push(',');
        }
        // Anonymous `?`: numbered names cost SQLite a linear scan per parameter.
        let _ = write!(script.sql, "(?, {PARTITION}, ?, ?, ?, {now})");
        script.bind(id)?;
        script.bind(room)?;
        script.bind(seq)?;
        script.bind(payload)?;
    }
    if wrote_records {
        script.sql.push(';');
    }
    let rooms: Vec<(i64, i64)> = assigned.iter().map(|(r, s)| (*r, *s)).collect();
    for chunk in rooms.chunks(INSERT_CHUNK) {
        script
            .sql
            .push_str("INSERT INTO log_room_seqs (room_id, last_seq) VALUES ");
        for (i, (room, last)) in chunk.iter().enumerate() {
            if i > 0 {
                script.sql.push(',');
            }
            script.sql.push_str("(?, ?)");
            script.bind(*room)?;
            script.bind(*last)?;
        }
        script
            .sql
            .push_str(" ON CONFLICT (room_id) DO UPDATE SET last_seq = excluded.last_seq;");
    }
    let mut groups_after: Vec<(String, i64)> = Vec::new();
    for (group, offset) in &commits {
        script.sql.push_str(
            "INSERT INTO log_groups (name, committed) VALUES (?, ?) ON CONFLICT (name) \
             DO UPDATE SET committed = max(committed, excluded.committed);",
        );
        script.bind((*group).to_owned())?;
        script.bind(*offset)?;
        let committed = state.groups.get(*group).copied().unwrap_or(0).max(*offset);
        groups_after.push(((*group).to_owned(), committed));
    }
    // Retention: records past the retention time that every known group has committed; the
    // range starts where the last deletion ended, so nothing kept is ever scanned again.
    let cutoff = now.saturating_sub(retention.as_millis() as i64);
    let mut expired_upto = state.expired_upto;
    let mut expired_from = 0;
    for (i, (id, at)) in state.written.iter().enumerate() {
        if *at > cutoff {
            break;
        }
        expired_upto = expired_upto.max(*id);
        expired_from = i + 1;
    }
    if wrote_records && now <= cutoff {
        // Zero retention: what this transaction writes is past it already.
        expired_upto = expired_upto.max(next_id - 1);
    }
    let min_committed = state
        .groups
        .iter()
        .map(|(name, c)| {
            groups_after
                .iter()
                .find(|(g, _)| g == name)
                .map_or(*c, |(_, after)| *after)
        })
        .chain(
            groups_after
                .iter()
                .filter(|(g, _)| !state.groups.contains_key(g))
                .map(|(_, c)| *c),
        )
        .min()
        .unwrap_or(0);
    let delete_upto = expired_upto.min(min_committed);
    if delete_upto > state.deleted_upto {
        script
            .sql
            .push_str("DELETE FROM log_records WHERE id > ? AND id <= ?;");
        script.bind(state.deleted_upto)?;
        script.bind(delete_upto)?;
    }
    script.sql.push_str("COMMIT;");
    // Not kept in the statement cache: its shape changes with every batch.
    sqlx::query_with(&script.sql, script.args)
        .persistent(false)
        .execute(&mut *conn)
        .await?;

    // Committed: the new state.
    state.seqs.extend(loaded);
    state.seqs.extend(assigned);
    if next_id > state.next_id {
        state.written.push_back((next_id - 1, now));
        state.next_id = next_id;
    }
    state.written.drain(..expired_from);
    state.expired_upto = expired_upto;
    state.deleted_upto = state.deleted_upto.max(delete_upto);
    for (group, committed) in groups_after {
        state.groups.insert(group, committed);
    }
    Ok(numbered)
}
