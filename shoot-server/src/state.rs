//! Shared state of every handler and session.

use std::sync::Arc;

use shoot_core::ChatEngine;
use tokio_util::sync::CancellationToken;

use crate::auth::JwtAuth;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::sse::ReplayBuffers;

/// State shared by REST handlers, SSE streams and STOMP sessions. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: ChatEngine,
    /// Token issuing and verification.
    pub auth: Arc<JwtAuth>,
    /// Configuration in force.
    pub config: Arc<Config>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down: long-lived streams (STOMP sessions, SSE) close.
    pub shutdown: CancellationToken,
    /// Per-user SSE replay buffers (`Last-Event-ID` resume).
    pub sse: Arc<ReplayBuffers>,
}

impl AppState {
    /// State over `engine` with `config`; the JWT service uses the engine's clock.
    pub fn new(engine: ChatEngine, config: Config) -> AppState {
        AppState::with_metrics(engine, config, Arc::new(Metrics::default()))
    }

    /// Like [`new`](Self::new) with existing metrics (shared with the link fetcher).
    pub fn with_metrics(engine: ChatEngine, config: Config, metrics: Arc<Metrics>) -> AppState {
        let (secret, _) = config.jwt_key();
        let auth = JwtAuth::new(
            secret.as_bytes(),
            engine.limits().access_token_ttl,
            engine.ports().clock.clone(),
        );
        let sse = ReplayBuffers::new(config.sse_replay_events);
        AppState {
            engine,
            auth: Arc::new(auth),
            config: Arc::new(config),
            metrics,
            shutdown: CancellationToken::new(),
            sse: Arc::new(sse),
        }
    }
}
