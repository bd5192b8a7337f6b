//! # shoot-server
//!
//! The thin server over the Shoot engine: REST under `/api/v1`, STOMP 1.2 over WebSocket at
//! `/ws/chat`, SSE, OpenAPI, health and metrics.

pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod sse;
pub mod state;
pub mod stomp;
pub mod views;

pub use state::AppState;
