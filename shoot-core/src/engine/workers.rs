//! Background workers and the engine lifecycle: the persistence worker (log → message store),
//! the scheduler, link-preview fetching, `start` and `shutdown`.
//!
//! Every task is spawned through the [`Spawner`](crate::ports::Spawner) port and sleeps on the
//! [`Clock`](crate::ports::Clock) port, so a manual clock drives them deterministically.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use futures::future::{Either, select};
use tokio::sync::{Notify, watch};
use tracing::{debug, error, info, warn};

use crate::engine::ChatEngine;
use crate::engine::pipeline::{SendMessage, lock, push_status};
use crate::engine::schedule::next_occurrence;
use crate::engine::unread::UnreadCache;
use crate::error::{Error, ErrorCode, ErrorKind, PortError, PortResult, Result};
use crate::events::{Event, MessageChange, Topic};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::links::first_url;
use crate::messages::status::{self, StatusEvent};
use crate::messages::{Message, MessageStatus, UrlPreview};
use crate::notifications::NotificationType;
use crate::ports::{LogConsumer, LogEntry};
use crate::rooms::RoomActivity;
use crate::schedule::{ScheduleOutcome, ScheduledMessage};
use crate::time::Timestamp;

/// Consumer group of the persistence worker (shared by every instance).
pub const PERSISTENCE_GROUP: &str = "persistence";
/// Most records per persistence batch.
const POLL_MAX: usize = 500;
/// How long one poll waits for records.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Backoff bounds for retrying a failing backend.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most schedules claimed per scheduler tick.
const SCHEDULE_BATCH: usize = 100;

/// Lifecycle state of the background workers.
pub(crate) struct WorkerState {
    started: AtomicBool,
    stop: watch::Sender<bool>,
    running: AtomicUsize,
    finished: Notify,
    /// Unread counts of the room-list updates, maintained incrementally.
    pub(crate) unread: UnreadCache,
}

impl WorkerState {
    pub(crate) fn new() -> WorkerState {
        WorkerState {
            started: AtomicBool::new(false),
            stop: watch::channel(false).0,
            running: AtomicUsize::new(0),
            finished: Notify::new(),
            unread: UnreadCache::default(),
        }
    }
}

/// Decrements the running-worker count when a worker task ends, however it ends.
struct RunningGuard(ChatEngine);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let w = &self.0.runtime().workers;
        w.running.fetch_sub(1, Ordering::SeqCst);
        w.finished.notify_waiters();
    }
}

impl ChatEngine {
    /// Starts the background workers (persistence worker and scheduler) through the Spawner.
    /// Calling it again is a no-op. Fails if the message log cannot open a consumer.
    pub async fn start(&self) -> Result<()> {
        let w = &self.runtime().workers;
        if w.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let consumer = match self.p().log.consumer(PERSISTENCE_GROUP).await {
            Ok(c) => c,
            Err(e) => {
                w.started.store(false, Ordering::SeqCst);
                return Err(e.into());
            }
        };
        w.running.fetch_add(2, Ordering::SeqCst);
        let engine = self.clone();
        self.p().spawner.spawn(Box::pin(async move {
            let guard = RunningGuard(engine.clone());
            engine.persistence_loop(consumer).await;
            drop(guard);
        }));
        let engine = self.clone();
        self.p().spawner.spawn(Box::pin(async move {
            let guard = RunningGuard(engine.clone());
            engine.scheduler_loop().await;
            drop(guard);
        }));
        info!(instance = %self.instance_id(), "engine workers started");
        Ok(())
    }

    /// Stops accepting sends (they fail with `BACKEND_UNAVAILABLE` "shutting down"), waits
    /// for in-flight appends, then for the workers to finish their current batch and commit.
    pub async fn shutdown(&self) -> Result<()> {
        let rt = self.runtime();
        rt.close_lanes().await;
        rt.workers.stop.send_replace(true);
        loop {
            let finished = rt.workers.finished.notified();
            let mut finished = pin!(finished);
            finished.as_mut().enable();
            if rt.workers.running.load(Ordering::SeqCst) == 0 {
                break;
            }
            finished.await;
        }
        info!(instance = %self.instance_id(), "engine shut down");
        Ok(())
    }

    /// Runs `fut` unless shutdown is requested first (`None` then).
    async fn unless_stopped<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        let mut stop = self.runtime().workers.stop.subscribe();
        if *stop.borrow_and_update() {
            return None;
        }
        let stopped = async move {
            while stop.changed().await.is_ok() {
                if *stop.borrow() {
                    return;
                }
            }
        };
        match select(pin!(fut), pin!(stopped)).await {
            Either::Left((v, _)) => Some(v),
            Either::Right(_) => None,
        }
    }

    fn stop_requested(&self) -> bool {
        *self.runtime().workers.stop.borrow()
    }

    /// Retries `f` while it fails with a backend error, with exponential backoff on the
    /// clock. `None` if shutdown was requested while waiting.
    async fn retry_backend<T, F, Fut>(&self, what: &'static str, mut f: F) -> Option<PortResult<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = PortResult<T>>,
    {
        let mut delay = BACKOFF_MIN;
        loop {
            match f().await {
                Err(e @ PortError::Backend { .. }) => {
                    warn!(operation = what, error = %e, retry_in_ms = delay.as_millis() as u64, "backend failed; retrying");
                    self.unless_stopped(self.p().clock.sleep(delay)).await?;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
                other => return Some(other),
            }
        }
    }

    async fn persistence_loop(&self, mut consumer: Box<dyn LogConsumer>) {
        let mut delay = BACKOFF_MIN;
        loop {
            if self.stop_requested() {
                break;
            }
            let polled = self
                .unless_stopped(consumer.poll(POLL_MAX, POLL_WAIT))
                .await;
            match polled {
                None => break,
                Some(Ok(batch)) => {
                    delay = BACKOFF_MIN;
                    if !batch.is_empty() && !self.persist_batch(&mut *consumer, batch).await {
                        break;
                    }
                }
                Some(Err(e)) => {
                    warn!(error = %e, "persistence poll failed");
                    if self
                        .unless_stopped(self.p().clock.sleep(delay))
                        .await
                        .is_none()
                    {
                        break;
                    }
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
        debug!("persistence worker stopped");
    }

    /// Persists one polled batch and commits it. Returns `false` if shutdown interrupted it
    /// (nothing is committed then: the records are delivered again).
    pub(crate) async fn persist_batch(
        &self,
        consumer: &mut dyn LogConsumer,
        batch: Vec<LogEntry>,
    ) -> bool {
        let ids: Vec<MessageId> = batch.iter().map(|e| e.message.id).collect();
        self.runtime().wait_published(&ids).await;
        let processing = status::next(MessageStatus::SentToKafka, StatusEvent::ProcessingStarted)
            .unwrap_or(MessageStatus::Processing);
        let at = self.now();
        let mut events = Vec::with_capacity(batch.len() * 2);
        for entry in &batch {
            push_status(&mut events, &entry.message, processing, None, true, at);
        }
        self.publish_all(events).await;

        // The records move into the messages to store; a poison one is rebuilt as it was read.
        let mut positions = Vec::with_capacity(batch.len());
        let mut read_statuses = Vec::with_capacity(batch.len());
        let messages: Vec<Message> = batch
            .into_iter()
            .map(|e| {
                positions.push(e.position);
                read_statuses.push(e.message.status);
                Message {
                    status: MessageStatus::Saved,
                    ..e.message
                }
            })
            .collect();
        let mut poisoned: Vec<bool> = vec![false; messages.len()];
        let mut inserted: Vec<MessageId> = Vec::new();
        match self
            .retry_backend("insert_messages", || {
                self.p().messages.insert_messages(&messages)
            })
            .await
        {
            None => return false,
            Some(Ok(ids)) => inserted = ids,
            Some(Err(_)) => {
                // One record breaks a store rule: insert one by one to isolate it.
                for (i, m) in messages.iter().enumerate() {
                    let one = std::slice::from_ref(m);
                    match self
                        .retry_backend("insert_message", || self.p().messages.insert_messages(one))
                        .await
                    {
                        None => return false,
                        Some(Ok(ids)) => inserted.extend(ids),
                        Some(Err(e)) => {
                            poisoned[i] = true;
                            let entry = LogEntry {
                                position: positions[i],
                                message: Message {
                                    status: read_statuses[i],
                                    ..m.clone()
                                },
                            };
                            if !self.dead_letter(&entry, &e).await {
                                return false;
                            }
                        }
                    }
                }
            }
        }

        let inserted: HashSet<MessageId> = inserted.into_iter().collect();
        let saved: Vec<&Message> = messages
            .iter()
            .zip(&poisoned)
            .filter(|(_, p)| !**p)
            .map(|(m, _)| m)
            .collect();
        let superseded = self.supersede_duplicates(&saved, &inserted).await;
        let saved: Vec<&Message> = saved
            .into_iter()
            .filter(|m| !superseded.contains(&m.id))
            .collect();
        let mut last_per_room: BTreeMap<RoomId, &Message> = BTreeMap::new();
        for m in &saved {
            let e = last_per_room.entry(m.room_id).or_insert(m);
            if m.seq > e.seq {
                *e = m;
            }
        }
        let activity: Vec<RoomActivity> = last_per_room
            .values()
            .map(|m| RoomActivity {
                room: m.room_id,
                seq: m.seq,
                message: m.id,
                at: m.created_at,
            })
            .collect();
        let r = self
            .retry_backend("record_activity", || {
                self.p().rooms.record_activity(&activity)
            })
            .await;
        match r {
            None => return false,
            Some(Err(e)) => warn!(error = %e, "recording room activity failed"),
            Some(Ok(())) => {}
        }

        let saved_status = status::next(MessageStatus::Processing, StatusEvent::Stored)
            .unwrap_or(MessageStatus::Saved);
        let at = self.now();
        let mut events = Vec::with_capacity(saved.len() * 2 + last_per_room.len() * 8);
        for m in &saved {
            push_status(&mut events, m, saved_status, None, true, at);
        }

        let fresh: Vec<&Message> = saved
            .iter()
            .copied()
            .filter(|m| inserted.contains(&m.id))
            .collect();
        self.room_updates(&last_per_room, &fresh, at, &mut events)
            .await;
        self.publish_all(events).await;
        for m in &saved {
            let preview = lock(&self.runtime().previews).remove(&m.id);
            if let Some(preview) = preview {
                self.apply_preview(m.id, preview).await;
            }
        }
        self.after_insert(&fresh).await;

        let mut last_positions: HashMap<i32, crate::ports::LogPosition> = HashMap::new();
        for pos in positions {
            let p = last_positions.entry(pos.partition).or_insert(pos);
            if pos.offset > p.offset {
                *p = pos;
            }
        }
        let positions: Vec<_> = last_positions.into_values().collect();
        let mut delay = BACKOFF_MIN;
        loop {
            match consumer.commit(&positions).await {
                Ok(()) => return true,
                Err(e @ PortError::Backend { .. }) => {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "commit failed; retrying");
                    if self
                        .unless_stopped(self.p().clock.sleep(delay))
                        .await
                        .is_none()
                    {
                        return false;
                    }
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
                Err(e) => {
                    error!(error = %e, "committing the persistence batch failed");
                    return true;
                }
            }
        }
    }

    /// Messages the store skipped although their id is not stored: another message with the
    /// same `(sender, tempId)` is (a send whose append was reported failed but reached the log
    /// anyway, then retried). The stored one is the message: its sender is told so (SAVED with
    /// its id and seq) and the room is told to drop the duplicate, which was announced live
    /// (`MessageChanged` / deleted). Returns the duplicates' ids.
    async fn supersede_duplicates(
        &self,
        saved: &[&Message],
        inserted: &HashSet<MessageId>,
    ) -> HashSet<MessageId> {
        let mut out = HashSet::new();
        let skipped: Vec<&Message> = saved
            .iter()
            .copied()
            .filter(|m| !inserted.contains(&m.id) && m.temp_id.is_some())
            .collect();
        if skipped.is_empty() {
            return out;
        }
        let ids: Vec<MessageId> = skipped.iter().map(|m| m.id).collect();
        let stored: HashSet<MessageId> = match self.p().messages.get_messages(&ids).await {
            Ok(found) => found.into_iter().map(|m| m.id).collect(),
            Err(e) => {
                warn!(error = %e, "checking skipped messages failed");
                return out;
            }
        };
        for m in skipped.into_iter().filter(|m| !stored.contains(&m.id)) {
            let temp_id = m.temp_id.as_deref().unwrap_or_default();
            let existing = match self
                .p()
                .messages
                .find_by_temp_id(m.sender_id, temp_id)
                .await
            {
                Ok(Some(existing)) if existing.id != m.id => existing,
                Ok(_) => continue,
                Err(e) => {
                    warn!(error = %e, "looking up a duplicate tempId failed");
                    continue;
                }
            };
            warn!(
                message_id = %m.id,
                stored_id = %existing.id,
                "a duplicate of a stored (sender, tempId) reached the log; it is retracted"
            );
            self.emit_status(&existing, existing.status, None, true)
                .await;
            let retracted = Message {
                text: "".into(),
                is_deleted: true,
                mentions: Vec::new(),
                url_preview: None,
                ..m.clone()
            };
            self.publish(
                Topic::Room(m.room_id),
                Event::MessageChanged {
                    message: retracted,
                    change: MessageChange::Deleted,
                    by: m.sender_id,
                },
            )
            .await;
            out.insert(m.id);
        }
        out
    }

    async fn dead_letter(&self, entry: &LogEntry, error: &PortError) -> bool {
        let reason = error.to_string();
        warn!(message_id = %entry.message.id, reason = %reason, "poison record sent to the dead-letter log");
        let r = self
            .retry_backend("dead_letter", || self.p().log.dead_letter(entry, &reason))
            .await;
        match r {
            None => return false,
            Some(Err(e)) => error!(error = %e, "dead-lettering failed"),
            Some(Ok(())) => {}
        }
        let e = Error::new(ErrorCode::ValidationFailed, reason);
        self.emit_status(&entry.message, MessageStatus::Failed, Some(&e), true)
            .await;
        true
    }

    /// Room-list entries (unread count and last message) of every participant of every room
    /// of the batch, added to `events`. `last_per_room` is each room's newest stored message,
    /// `fresh` the messages this batch stored. Counts come from the [`UnreadCache`] when it is
    /// current; the others are counted from the store with one query for the whole batch
    /// (a burst over many rooms would otherwise make one query per participant).
    async fn room_updates(
        &self,
        last_per_room: &BTreeMap<RoomId, &Message>,
        fresh: &[&Message],
        at: Timestamp,
        events: &mut Vec<(Topic, Arc<Event>)>,
    ) {
        // Every room's participants with one look-up.
        let rooms: Vec<RoomId> = last_per_room.keys().copied().collect();
        let participants = match self.p().rooms.participants_of(&rooms).await {
            Ok(p) => p,
            Err(e) => {
                warn!(rooms = rooms.len(), error = %e, "loading participants failed");
                return;
            }
        };
        let mut fresh_by_room: HashMap<RoomId, Vec<&Message>> = HashMap::new();
        for m in fresh {
            fresh_by_room.entry(m.room_id).or_default().push(m);
        }
        for list in fresh_by_room.values_mut() {
            list.sort_by_key(|m| m.seq);
        }
        let cache = &self.runtime().workers.unread;
        let mut counts: Vec<Option<u64>> = participants
            .iter()
            .map(|p| {
                let room_fresh = fresh_by_room.get(&p.room_id).map_or(&[][..], Vec::as_slice);
                cache.advance(p.room_id, p.user_id, p.last_read_seq, room_fresh, at)
            })
            .collect();
        let missing: Vec<usize> = (0..participants.len())
            .filter(|&i| counts[i].is_none())
            .collect();
        if !missing.is_empty() {
            let cursors: Vec<(UserId, RoomId, Seq)> = missing
                .iter()
                .map(|&i| {
                    let p = &participants[i];
                    (p.user_id, p.room_id, p.last_read_seq)
                })
                .collect();
            match self.p().messages.unread_counts_of(&cursors).await {
                Ok(exact) => {
                    for (&i, n) in missing.iter().zip(exact) {
                        let p = &participants[i];
                        if let Some(last) = last_per_room.get(&p.room_id) {
                            cache.set_exact(p.room_id, p.user_id, p.last_read_seq, last.seq, n, at);
                            counts[i] = Some(n);
                        }
                    }
                }
                Err(e) => warn!(count = cursors.len(), error = %e, "unread counts failed"),
            }
        }
        // One copy of each room's last message, shared by its participants' updates (a room
        // of 50 000 makes 50 000 updates per batch).
        let last_shared: HashMap<RoomId, Arc<Message>> = last_per_room
            .iter()
            .map(|(room, m)| (*room, Arc::new((*m).clone())))
            .collect();
        for (p, count) in participants.iter().zip(counts) {
            let (Some(unread_count), Some(last)) = (count, last_shared.get(&p.room_id)) else {
                continue;
            };
            let event = Event::RoomUpdate {
                room_id: p.room_id,
                unread_count,
                last_message: Some(last.clone()),
                at,
            };
            events.push((Topic::User(p.user_id), Arc::new(event)));
        }
    }

    /// Thread updates and notifications (mentions, replies) of newly stored messages.
    async fn after_insert(&self, fresh: &[&Message]) {
        let mut notes = Vec::new();
        for m in fresh {
            for u in &m.mentions {
                if *u != m.sender_id {
                    notes.push(self.new_notification(
                        *u,
                        NotificationType::Mention,
                        Some(m.sender_id),
                        Some(m.room_id),
                        Some(m.id),
                        preview_text(&m.text),
                    ));
                }
            }
        }
        let mut roots: Vec<MessageId> = fresh.iter().filter_map(|m| m.thread_id).collect();
        roots.sort();
        roots.dedup();
        if !roots.is_empty() {
            match self.p().messages.get_messages(&roots).await {
                Ok(root_messages) => {
                    let by_id: HashMap<MessageId, &Message> =
                        root_messages.iter().map(|m| (m.id, m)).collect();
                    for m in fresh {
                        let Some(root) = m.thread_id.and_then(|r| by_id.get(&r)) else {
                            continue;
                        };
                        if root.sender_id != m.sender_id && !m.mentions.contains(&root.sender_id) {
                            notes.push(self.new_notification(
                                root.sender_id,
                                NotificationType::Reply,
                                Some(m.sender_id),
                                Some(m.room_id),
                                Some(m.id),
                                preview_text(&m.text),
                            ));
                        }
                    }
                    for root in &root_messages {
                        let by = fresh
                            .iter()
                            .filter(|m| m.thread_id == Some(root.id))
                            .map(|m| m.sender_id)
                            .next_back()
                            .unwrap_or(root.sender_id);
                        let event = Event::MessageChanged {
                            message: root.clone(),
                            change: MessageChange::ThreadUpdated,
                            by,
                        };
                        self.publish(Topic::Room(root.room_id), event).await;
                    }
                }
                Err(e) => warn!(error = %e, "loading thread roots failed"),
            }
        }
        self.notify(notes).await;
    }

    /// Fetches the preview of the first link of a just-appended message in the background.
    pub(crate) fn start_link_preview(&self, message: &Message) {
        let Some(fetcher) = self.p().link_fetcher.clone() else {
            return;
        };
        let Some(url) = first_url(&message.text).map(str::to_owned) else {
            return;
        };
        let engine = self.clone();
        let id = message.id;
        self.p().spawner.spawn(Box::pin(async move {
            let preview = match fetcher.fetch_preview(&url).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    debug!(message_id = %id, error = %e, "link preview fetch failed");
                    return;
                }
            };
            engine.preview_fetched(id, preview).await;
        }));
    }

    /// Hands a fetched preview over: whoever sees both "fetched" and "saved" first applies it.
    /// The local persistence worker takes it from the map when it saves the message; if the
    /// message is saved elsewhere (another instance's worker) this polls the store a while.
    async fn preview_fetched(&self, id: MessageId, preview: UrlPreview) {
        lock(&self.runtime().previews).insert(id, preview);
        let mut delay = BACKOFF_MIN;
        for _ in 0..12 {
            let saved = matches!(self.p().messages.get_message(id).await, Ok(Some(_)));
            if saved {
                let taken = lock(&self.runtime().previews).remove(&id);
                if let Some(p) = taken {
                    self.apply_preview(id, p).await;
                }
                return;
            }
            if !lock(&self.runtime().previews).contains_key(&id) {
                return;
            }
            if self
                .unless_stopped(self.p().clock.sleep(delay))
                .await
                .is_none()
            {
                break;
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        lock(&self.runtime().previews).remove(&id);
    }

    async fn apply_preview(&self, id: MessageId, preview: UrlPreview) {
        let message = match self.p().messages.get_message(id).await {
            Ok(Some(m)) if !m.is_deleted => m,
            Ok(_) => return,
            Err(e) => {
                warn!(message_id = %id, error = %e, "loading message for preview failed");
                return;
            }
        };
        let message = Message {
            url_preview: Some(preview),
            ..message
        };
        if let Err(e) = self.p().messages.update_message(&message).await {
            warn!(message_id = %id, error = %e, "storing link preview failed");
            return;
        }
        let by = message.sender_id;
        let room = message.room_id;
        self.publish(
            Topic::Room(room),
            Event::MessageChanged {
                message,
                change: MessageChange::PreviewAdded,
                by,
            },
        )
        .await;
    }

    async fn scheduler_loop(&self) {
        let interval = self.limits().schedule_poll_interval;
        loop {
            if self
                .unless_stopped(self.p().clock.sleep(interval))
                .await
                .is_none()
            {
                break;
            }
            if let Err(e) = self.run_due_schedules().await {
                warn!(error = %e, "scheduler tick failed");
            }
        }
        debug!("scheduler stopped");
    }

    /// One scheduler tick: claims due schedules and sends them. Returns how many were claimed.
    pub async fn run_due_schedules(&self) -> Result<usize> {
        let now = self.now();
        let lease = now.plus(self.limits().schedule_claim_lease);
        let claimed = self
            .p()
            .schedules
            .claim_due(now, self.instance_id(), lease, SCHEDULE_BATCH)
            .await?;
        let n = claimed.len();
        for s in claimed {
            self.deliver_schedule(s).await;
        }
        Ok(n)
    }

    async fn deliver_schedule(&self, s: ScheduledMessage) {
        let cmd = SendMessage {
            room_id: s.room_id,
            text: s.text.clone(),
            message_type: s.message_type,
            temp_id: format!("schedule:{}:{}", s.id, s.scheduled_at.as_millis()),
            thread_id: None,
            mentions: Vec::new(),
        };
        let outcome = match self.send_message(s.sender_id, cmd).await {
            Ok(_) => match s.repeat {
                Some(repeat) => {
                    let now = self.now();
                    let mut next = next_occurrence(s.scheduled_at, repeat);
                    while next <= now {
                        next = next_occurrence(next, repeat);
                    }
                    ScheduleOutcome::SentAndRescheduled(next)
                }
                None => ScheduleOutcome::Sent,
            },
            Err(e) if retryable(&e) => ScheduleOutcome::Released,
            Err(e) => ScheduleOutcome::Failed(format!("{}: {}", e.code(), e.message())),
        };
        debug!(schedule_id = %s.id, ?outcome, "scheduled message processed");
        match self
            .p()
            .schedules
            .complete_claim(s.id, self.instance_id(), outcome, self.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => warn!(schedule_id = %s.id, "schedule claim lost before completion"),
            Err(e) => warn!(schedule_id = %s.id, error = %e, "completing schedule claim failed"),
        }
    }
}

fn retryable(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Internal
    ) || e.code() == ErrorCode::Conflict
}

/// The first 100 characters of a message, for notification texts.
fn preview_text(text: &str) -> String {
    let mut s: String = text.chars().take(100).collect();
    if text.chars().count() > 100 {
        s.push('…');
    }
    s
}
