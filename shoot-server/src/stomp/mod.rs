//! STOMP 1.2 over WebSocket at `/ws/chat`.
//!
//! - [`frame`]: the pure frame decoder/encoder (fuzzable: [`frame::decode`]).
//! - [`hub`]: the per-instance fan-out hub: one bus subscription per topic with local
//!   subscribers, one rendering per event and destination kind, bounded per-session queues.
//! - [`routing`]: subscribable destinations, their authorisation, and event → destination
//!   routing and JSON bodies (the wire contract, documented there).
//! - [`app`]: the `SEND /app/...` handlers (documented there).
//! - `session`: one task per connection, reading and writing.
//!
//! Authentication: `?token=` or `Authorization: Bearer` on the handshake, or the CONNECT
//! frame's `Authorization: Bearer …` (also `passcode` / `login`). Sub-protocols `v12.stomp`,
//! `v11.stomp` and `v10.stomp` are accepted, plain WebSocket too.

pub mod app;
pub mod frame;
pub mod hub;
mod outbox;
pub mod routing;
mod session;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use crate::state::AppState;
use frame::FrameLimits;
use hub::Hub;

/// Tunables of the STOMP endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StompSettings {
    /// Frame size limits (a violation is an ERROR and closes the session).
    pub frame_limits: FrameLimits,
    /// How often the server can send heart-beats (ms; `cx` of CONNECTED's `heart-beat`).
    pub heartbeat_send_ms: u64,
    /// How often the server wants heart-beats (ms; `cy`).
    pub heartbeat_receive_ms: u64,
    /// Frames queued per session before the slow-consumer policy applies.
    pub outbox_capacity: usize,
    /// How long an overflowed (slow) consumer's socket may take its final `ERROR` frame
    /// before the session drops the socket anyway.
    pub slow_consumer_grace: Duration,
    /// Subscriptions per session.
    pub max_subscriptions: usize,
    /// Time allowed between the handshake and CONNECT.
    pub connect_timeout: Duration,
    /// How often a connected session refreshes its presence.
    pub presence_refresh: Duration,
    /// WebSocket read buffer per connection (bytes). Every connection holds it while idle;
    /// a frame larger than it is still read whole (in several reads). Chat frames are a few
    /// hundred bytes, so 1 KiB reads them in one go and saves 1 KiB per idle connection over
    /// 2 KiB (BENCHMARKS.md).
    pub ws_read_buffer: usize,
    /// WebSocket write buffer target per connection (bytes).
    pub ws_write_buffer: usize,
}

impl Default for StompSettings {
    fn default() -> StompSettings {
        StompSettings {
            frame_limits: FrameLimits::default(),
            heartbeat_send_ms: 10_000,
            heartbeat_receive_ms: 10_000,
            outbox_capacity: 1024,
            slow_consumer_grace: Duration::from_secs(5),
            max_subscriptions: 1000,
            connect_timeout: Duration::from_secs(10),
            presence_refresh: Duration::from_secs(20),
            ws_read_buffer: 1024,
            ws_write_buffer: 16 * 1024,
        }
    }
}

impl StompSettings {
    /// The settings in force for `state`: the configured ones, with presence refreshed three
    /// times per presence TTL.
    pub fn for_state(state: &AppState) -> StompSettings {
        let ttl = state.engine.limits().presence_ttl;
        StompSettings {
            presence_refresh: (ttl / 3).max(Duration::from_millis(100)),
            ..state.config.stomp.clone()
        }
    }
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// The endpoint's lazily built per-instance state (one hub per router).
#[derive(Default)]
struct Endpoint {
    inner: OnceLock<(Hub, Arc<StompSettings>)>,
}

impl Endpoint {
    fn get(&self, state: &AppState) -> (Hub, Arc<StompSettings>) {
        let (hub, settings) = self.inner.get_or_init(|| {
            (
                Hub::for_engine(state.engine.clone(), state.metrics.clone()),
                Arc::new(StompSettings::for_state(state)),
            )
        });
        (hub.clone(), settings.clone())
    }
}

/// `GET /ws/chat`: the STOMP endpoint. Owns one fan-out [`Hub`] for the instance.
pub fn routes() -> Router<AppState> {
    let endpoint = Arc::new(Endpoint::default());
    Router::new().route(
        "/ws/chat",
        get(
            move |ws: WebSocketUpgrade,
                  State(state): State<AppState>,
                  Query(query): Query<WsQuery>,
                  headers: HeaderMap| {
                let endpoint = endpoint.clone();
                async move { upgrade(ws, state, query, headers, &endpoint) }
            },
        ),
    )
}

fn upgrade(
    ws: WebSocketUpgrade,
    state: AppState,
    query: WsQuery,
    headers: HeaderMap,
    endpoint: &Endpoint,
) -> Response {
    let (hub, settings) = endpoint.get(&state);
    let token = query
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or_else(|| crate::auth::bearer(&headers));
    let handshake_auth = token.map(|t| state.auth.verify_access(t));
    let limits = settings.frame_limits;
    ws.protocols(["v12.stomp", "v11.stomp", "v10.stomp"])
        .read_buffer_size(settings.ws_read_buffer)
        .write_buffer_size(settings.ws_write_buffer)
        .max_message_size(limits.max_frame_bytes + 1024)
        .max_frame_size(limits.max_frame_bytes + 1024)
        .on_upgrade(move |socket| session::run(socket, state, hub, settings, handshake_auth))
}
