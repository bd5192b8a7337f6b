//! Wiring: the stack from configuration, the router, and a running server with graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use shoot_core::engine::{ChatEngine, EngineConfig};
use shoot_core::identity::password::PasswordHasherConfig;
use shoot_core::memory::SnowflakeIds;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::ApiError;
use crate::link_preview::HttpLinkFetcher;
use crate::metrics::Metrics;
use crate::stack::{Readiness, Stack, build_stack};
use crate::state::AppState;
use crate::{docs, ops, rest, stomp};

/// The whole HTTP surface: `/api/v1` (REST + SSE), `/ws/chat` (STOMP), docs and ops.
pub fn app(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", rest::routes())
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .merge(stomp::routes())
        .merge(docs::routes())
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed",
            )
        })
        .layer(DefaultBodyLimit::max(state.config.http_body_limit))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), track))
        .with_state(state)
}

async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.http_request_duration.observe(start.elapsed());
    match response.status().as_u16() {
        500..=599 => metrics.http_requests_5xx.inc(),
        400..=499 => metrics.http_requests_4xx.inc(),
        _ => metrics.http_requests_2xx.inc(),
    }
    response
}

/// The snowflake node of an instance: a stable hash of its name into 0..=1023.
pub fn node_id(instance_id: &str) -> u16 {
    // FNV-1a: stable across processes and Rust versions (unlike `DefaultHasher`).
    let mut h: u32 = 0x811c_9dc5;
    for b in instance_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % (u32::from(SnowflakeIds::MAX_NODE) + 1)) as u16
}

/// Builds the engine over the configured backends (not started).
pub async fn build_engine(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<ChatEngine> {
    Ok(build_engine_with_readiness(config, metrics).await?.0)
}

/// Like [`build_engine`], also returning the readiness probes of the configured backends.
pub async fn build_engine_with_readiness(
    config: &Config,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(ChatEngine, Readiness)> {
    let Stack {
        mut ports,
        readiness,
    } = build_stack(config).await?;
    if config.link_preview_enabled {
        let fetcher = HttpLinkFetcher::new(
            config.link_preview_allow_private,
            ports.ephemeral.clone(),
            metrics,
        )
        .context("cannot build the link-preview HTTP client")?;
        ports.link_fetcher = Some(Arc::new(fetcher));
    }
    let engine_config = EngineConfig {
        limits: config.limits.clone(),
        instance_id: config.instance_id.clone(),
        password: PasswordHasherConfig {
            memory_kib: config.password_memory_kib,
            iterations: config.password_iterations,
            parallelism: 1,
        },
    };
    Ok((ChatEngine::new(ports, engine_config), readiness))
}

/// A running server.
pub struct ServerHandle {
    /// Bound address.
    pub addr: SocketAddr,
    /// The shared state (engine, auth, metrics).
    pub state: AppState,
    serve: JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The shutdown signal shared with sessions and streams.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Stops accepting, closes STOMP sessions and SSE streams, waits for in-flight requests,
    /// then drains the engine (in-flight sends and the persistence worker's batch).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the shutdown token is cancelled (by [`shutdown`](Self::shutdown) or a
    /// signal handler) and the server has drained.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.serve
            .await
            .context("server task panicked")?
            .context("server failed")?;
        self.state
            .engine
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("engine shutdown failed: {e}"))?;
        Ok(())
    }
}

/// Length of the listening socket's accept queue (the kernel caps it at
/// `net.core.somaxconn`).
///
/// `TcpListener::bind` asks for 128: a burst of connections (every client reconnecting after
/// a restart or a network blip) then overflows the queue while the accept loop waits its turn
/// on a busy core, and each overflowed connection waits a whole SYN retransmission (1 s, then
/// 2 s, …) before it is even seen. Measured with 200 concurrent connectors: 473 of 15 000
/// connections overflowed a 128 queue (BENCHMARKS.md).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with an accept queue of [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as
/// `TcpListener::bind` sets it, so a restarted server can bind while old connections linger).
pub fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Builds the stack from `config`, starts the engine and serves on `listener` until
/// [`ServerHandle::shutdown`].
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<ServerHandle> {
    let metrics = Arc::new(Metrics::default());
    let (engine, readiness) = build_engine_with_readiness(&config, metrics.clone()).await?;
    engine
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))?;
    let state = AppState::with_metrics(engine, config, metrics);
    let addr = listener.local_addr()?;
    let router = app(state.clone()).layer(axum::Extension(Arc::new(readiness)));
    let token = state.shutdown.clone();
    // No Nagle delay: frames are small and latency-bound (with Nagle, a RECEIPT written while
    // the previous frame is unacknowledged waits for the client's delayed ACK, ~20-40 ms);
    // the session writers already batch what is queued into one write.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    let serve = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(token.cancelled_owned())
        .await
    });
    tracing::info!(addr = %addr, "listening");
    Ok(ServerHandle { addr, state, serve })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_in_range() {
        assert_eq!(node_id("a"), node_id("a"));
        for name in ["", "a", "shoot-1", "shoot-2", &"x".repeat(64)] {
            assert!(node_id(name) <= SnowflakeIds::MAX_NODE);
        }
        assert_ne!(node_id("shoot-1"), node_id("shoot-2"));
    }
}
