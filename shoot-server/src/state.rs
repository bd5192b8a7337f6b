//! Shared state of every handler and session.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use shoot_core::{ChatEngine, Error, ErrorCode, UserId};
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
    /// Users whose existence a request already confirmed (users are never deleted, so a
    /// positive answer stays true): a token is checked against the store once per user.
    known_users: Arc<Mutex<HashSet<UserId>>>,
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
            known_users: Arc::default(),
        }
    }

    /// The user of a valid access token who exists in the store. A well-signed token of an
    /// unknown user (issued before a database reset, or forged with the key) is
    /// `INVALID_TOKEN` like any other bad token.
    pub async fn authenticate(&self, token: &str) -> Result<UserId, Error> {
        let user = self.auth.verify_access(token)?;
        self.require_known_user(user).await
    }

    /// `user` if it exists in the store (`INVALID_TOKEN` otherwise).
    pub async fn require_known_user(&self, user: UserId) -> Result<UserId, Error> {
        if lock(&self.known_users).contains(&user) {
            return Ok(user);
        }
        match self.engine.user(user).await {
            Ok(_) => {
                let mut known = lock(&self.known_users);
                if known.len() >= KNOWN_USERS_MAX {
                    known.clear();
                }
                known.insert(user);
                Ok(user)
            }
            Err(e) if e.code() == ErrorCode::UserNotFound => Err(Error::new(
                ErrorCode::InvalidToken,
                "the token's user does not exist",
            )),
            Err(e) => Err(e),
        }
    }
}

/// Most users remembered as existing before the set starts over.
const KNOWN_USERS_MAX: usize = 1_000_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
