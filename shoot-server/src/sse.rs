//! Server-Sent Events: `GET /api/v1/sse/subscribe` streams the caller's user topic (room-list
//! updates with unread counts, notifications, room changes, read-state moves).
//!
//! Each user with an open stream has one pump task subscribed to the user topic; it numbers
//! every event (`{epoch}-{n}`), keeps the last `sse_replay_events` in a ring buffer and fans them
//! out to that user's open streams. A client reconnecting with `Last-Event-ID` gets what it
//! missed; when the id is unknown (too old, or from before a restart) it gets a `resync` event
//! and should reload its room list. The pump lingers a few minutes after the last stream
//! closes so that short reconnects resume without loss.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use shoot_core::events::Event;
use shoot_core::{ChatEngine, UserId};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{
    NotificationView, ReadView, RoomChangeView, RoomUpdateView, StatusView, UnreadCountView,
};

/// How long a user's pump keeps buffering after their last stream closed.
const LINGER: Duration = Duration::from_secs(300);

/// One numbered SSE event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseItem {
    /// `{epoch}-{n}`.
    pub id: String,
    /// Event name.
    pub event: &'static str,
    /// JSON data.
    pub data: String,
}

/// What a resuming client gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// The events after its id (possibly none).
    Events(Vec<SseItem>),
    /// Its id is unknown or too old: it must reload.
    Resync,
}

/// A bounded, numbered buffer of one user's recent events.
#[derive(Debug)]
pub struct Replay {
    epoch: u64,
    next: u64,
    capacity: usize,
    items: VecDeque<(u64, SseItem)>,
}

impl Replay {
    /// An empty buffer of `capacity` events whose ids start with `epoch`.
    pub fn new(epoch: u64, capacity: usize) -> Replay {
        Replay {
            epoch,
            next: 1,
            capacity: capacity.max(1),
            items: VecDeque::new(),
        }
    }

    /// Numbers and stores an event, evicting the oldest when full.
    pub fn push(&mut self, event: &'static str, data: String) -> SseItem {
        let n = self.next;
        self.next += 1;
        let item = SseItem {
            id: format!("{}-{n}", self.epoch),
            event,
            data,
        };
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back((n, item.clone()));
        item
    }

    /// The events after `last_id`, or [`Resume::Resync`] if they cannot all be given.
    pub fn since(&self, last_id: &str) -> Resume {
        let Some((epoch, n)) = last_id.trim().split_once('-') else {
            return Resume::Resync;
        };
        let (Ok(epoch), Ok(n)) = (epoch.parse::<u64>(), n.parse::<u64>()) else {
            return Resume::Resync;
        };
        if epoch != self.epoch || n >= self.next {
            return Resume::Resync;
        }
        let oldest = self.items.front().map_or(self.next, |(k, _)| *k);
        if n + 1 < oldest {
            return Resume::Resync;
        }
        Resume::Events(
            self.items
                .iter()
                .filter(|(k, _)| *k > n)
                .map(|(_, i)| i.clone())
                .collect(),
        )
    }
}

/// The SSE encoding of an event on a user topic, if it is one SSE carries.
pub fn encode(event: &Event) -> Option<(&'static str, String)> {
    let json = |v: &dyn erased::Json| v.to_json();
    let (name, data) = match event {
        Event::RoomUpdate {
            room_id,
            unread_count,
            last_message,
            at,
        } => (
            "room-update",
            json(&RoomUpdateView::new(
                *room_id,
                *unread_count,
                last_message.as_deref(),
                *at,
            )),
        ),
        Event::Notification(n) => ("notification", json(&NotificationView::from(n))),
        Event::RoomChanged { room, change, by } => {
            ("room-change", json(&RoomChangeView::new(room, change, *by)))
        }
        Event::ReadReceipt {
            room_id,
            user_id,
            last_read_seq,
            ..
        } => (
            "read",
            json(&ReadView {
                room_id: room_id.to_string(),
                user_id: user_id.to_string(),
                last_read_seq: last_read_seq.0,
            }),
        ),
        Event::Status(s) => ("message-status", json(&StatusView::from(s))),
        Event::UserStatusChanged {
            user_id,
            status,
            last_seen_at,
        } => (
            "user-status",
            serde_json::json!({
                "userId": user_id.to_string(),
                "status": status.as_str(),
                "lastSeenAt": last_seen_at.map(|t| t.to_rfc3339()),
            })
            .to_string(),
        ),
        _ => return None,
    };
    Some((name, data))
}

mod erased {
    /// Object-safe JSON serialisation for the encoder above.
    pub(super) trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned())
        }
    }
}

struct UserChannel {
    replay: Mutex<Replay>,
    tx: broadcast::Sender<SseItem>,
    clients: AtomicUsize,
}

/// Every user's replay buffer and pump.
pub struct ReplayBuffers {
    capacity: usize,
    users: Mutex<HashMap<UserId, Arc<UserChannel>>>,
}

impl std::fmt::Debug for ReplayBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayBuffers")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Decrements a channel's client count when a stream ends.
struct ClientGuard(Arc<UserChannel>, Arc<crate::metrics::Metrics>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
        self.1.sse_connections.dec();
    }
}

fn random_epoch() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) >> 16
}

impl ReplayBuffers {
    /// Buffers of `capacity` events per user.
    pub fn new(capacity: usize) -> ReplayBuffers {
        ReplayBuffers {
            capacity,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Arc<UserChannel>>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's channel, starting its pump if needed (the user topic is subscribed before
    /// this returns, so nothing published afterwards is missed).
    async fn attach(
        self: &Arc<Self>,
        engine: &ChatEngine,
        user: UserId,
        shutdown: &CancellationToken,
    ) -> Result<Arc<UserChannel>, ApiError> {
        if let Some(ch) = self.lock().get(&user).cloned() {
            ch.clients.fetch_add(1, Ordering::SeqCst);
            return Ok(ch);
        }
        let mut stream = engine.subscribe_user(user).await?;
        let (tx, _) = broadcast::channel(self.capacity.max(16));
        let fresh = Arc::new(UserChannel {
            replay: Mutex::new(Replay::new(random_epoch(), self.capacity)),
            tx,
            clients: AtomicUsize::new(1),
        });
        let ch = {
            let mut users = self.lock();
            match users.get(&user) {
                // Another request started a pump meanwhile: use it, drop our subscription.
                Some(existing) => {
                    existing.clients.fetch_add(1, Ordering::SeqCst);
                    return Ok(existing.clone());
                }
                None => {
                    users.insert(user, fresh.clone());
                    fresh
                }
            }
        };
        let buffers = Arc::clone(self);
        let pump_ch = ch.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut idle_since: Option<tokio::time::Instant> = None;
            let mut tick = tokio::time::interval(Duration::from_secs(15));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = stream.next() => {
                        let Some(event) = next else { break };
                        if let Some((name, data)) = encode(&event) {
                            let mut replay = pump_ch.replay.lock().unwrap_or_else(|p| p.into_inner());
                            let item = replay.push(name, data);
                            let _ = pump_ch.tx.send(item);
                        }
                    }
                    _ = tick.tick() => {
                        if pump_ch.clients.load(Ordering::SeqCst) > 0 {
                            idle_since = None;
                        } else if idle_since.get_or_insert_with(tokio::time::Instant::now).elapsed() >= LINGER {
                            break;
                        }
                    }
                }
            }
            let mut users = buffers.lock();
            if users.get(&user).is_some_and(|c| Arc::ptr_eq(c, &pump_ch)) {
                users.remove(&user);
            }
        });
        Ok(ch)
    }
}

/// `?token=` for clients that cannot set headers (EventSource).
#[derive(Debug, Deserialize)]
pub struct SseQuery {
    /// Access token.
    pub token: Option<String>,
    /// Resume point for clients that cannot set `Last-Event-ID`.
    #[serde(rename = "lastEventId")]
    pub last_event_id: Option<String>,
}

fn item_event(item: &SseItem) -> SseEvent {
    SseEvent::default()
        .id(item.id.clone())
        .event(item.event)
        .data(item.data.clone())
}

async fn unread_snapshot(engine: &ChatEngine, user: UserId) -> Option<SseEvent> {
    let counts = engine.unread_counts(user).await.ok()?;
    let views: Vec<UnreadCountView> = counts
        .into_iter()
        .map(|(room, n)| UnreadCountView {
            room_id: room.to_string(),
            unread_count: n,
        })
        .collect();
    Some(
        SseEvent::default()
            .event("unread-counts")
            .data(serde_json::to_string(&views).ok()?),
    )
}

/// `GET /api/v1/sse/subscribe`.
#[utoipa::path(
    get,
    path = "/api/v1/sse/subscribe",
    tag = "sse",
    params(("token" = Option<String>, Query, description = "access token when no Authorization header")),
    responses(
        (status = 200, description = "text/event-stream of room-update, unread-counts, notification, room-change, read, message-status, user-status and resync events"),
        (status = 401, body = crate::error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Query(query): Query<SseQuery>,
    headers: HeaderMap,
) -> Response {
    match subscribe_inner(state, query, headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn subscribe_inner(
    state: AppState,
    query: SseQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = crate::auth::bearer(&headers)
        .map(str::to_owned)
        .or(query.token)
        .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
    let user = state.authenticate(&token).await?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id);

    let ch = state
        .sse
        .attach(&state.engine, user, &state.shutdown)
        .await?;
    state.metrics.sse_connections.inc();
    let guard = ClientGuard(ch.clone(), state.metrics.clone());

    // Snapshot the backlog and subscribe under the replay lock: no gap, no duplicate.
    let (mut rx, backlog) = {
        let replay = ch.replay.lock().unwrap_or_else(|p| p.into_inner());
        let rx = ch.tx.subscribe();
        let backlog = match &last_id {
            Some(id) => replay.since(id),
            None => Resume::Events(Vec::new()),
        };
        (rx, backlog)
    };

    let mut initial: Vec<SseEvent> = Vec::new();
    match backlog {
        Resume::Events(items) => {
            if last_id.is_none() {
                initial.extend(unread_snapshot(&state.engine, user).await);
            }
            initial.extend(items.iter().map(item_event));
        }
        Resume::Resync => {
            state.metrics.sse_resyncs.inc();
            initial.push(SseEvent::default().event("resync").data("{}"));
            initial.extend(unread_snapshot(&state.engine, user).await);
        }
    }

    let metrics = state.metrics.clone();
    let shutdown = state.shutdown.clone();
    let stream = async_stream::stream! {
        let _guard = guard;
        for e in initial {
            metrics.sse_events_sent.inc();
            yield Ok::<SseEvent, Infallible>(e);
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = rx.recv() => match r {
                    Ok(item) => {
                        metrics.sse_events_sent.inc();
                        yield Ok(item_event(&item));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        metrics.sse_resyncs.inc();
                        yield Ok(SseEvent::default().event("resync").data("{}"));
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    };
    Ok(sse_response(stream))
}

fn sse_response<S>(stream: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: Resume) -> Vec<String> {
        match r {
            Resume::Events(items) => items.into_iter().map(|i| i.id).collect(),
            Resume::Resync => vec!["RESYNC".into()],
        }
    }

    #[test]
    fn resume_returns_what_was_missed() {
        let mut r = Replay::new(7, 3);
        for i in 0..5 {
            r.push("x", i.to_string());
        }
        // Buffer holds 3, 4, 5.
        assert_eq!(ids(r.since("7-2")), vec!["7-3", "7-4", "7-5"]);
        assert_eq!(ids(r.since("7-4")), vec!["7-5"]);
        assert_eq!(ids(r.since("7-5")), Vec::<String>::new());
        assert_eq!(ids(r.since("7-1")), vec!["RESYNC"], "event 2 was evicted");
        assert_eq!(ids(r.since("8-4")), vec!["RESYNC"], "other epoch");
        assert_eq!(ids(r.since("7-9")), vec!["RESYNC"], "from the future");
        assert_eq!(ids(r.since("garbage")), vec!["RESYNC"]);
    }

    #[test]
    fn empty_buffer_resumes_from_zero() {
        let r = Replay::new(1, 4);
        assert_eq!(ids(r.since("1-0")), Vec::<String>::new());
    }
}
