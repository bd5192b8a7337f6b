//! # shoot-server
//!
//! The thin server over the Shoot engine: REST under `/api/v1`, STOMP 1.2 over WebSocket at
//! `/ws/chat`, SSE at `/api/v1/sse/subscribe`, OpenAPI at `/api-docs/openapi.json` with
//! Swagger UI at `/swagger-ui`, and `/health`, `/ready`, `/metrics`.
//!
//! Handlers extract and authorise, convert the request into an engine command, call the
//! engine and map the result to a view ([`views`]). Errors map to HTTP in one table
//! ([`error::status_of`]).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = shoot_server::config::Config::from_env()?;
//! let listener = shoot_server::listen(config.http_addr)?;
//! let server = shoot_server::serve(config, listener).await?;
//! println!("listening on {}", server.addr);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod config;
pub mod docs;
pub mod error;
pub mod link_preview;
pub mod metrics;
pub mod ops;
pub mod rest;
pub mod server;
pub mod sse;
pub mod stack;
pub mod state;
pub mod stomp;
pub mod views;
pub mod web;

pub use server::{
    LISTEN_BACKLOG, ServerHandle, app, build_engine, build_engine_with_readiness, listen, serve,
};
pub use state::AppState;
