//! # shoot-server
//!
//! The thin server over the Shoot engine: REST under `/api/v1`, STOMP 1.2 over WebSocket at
//! `/ws/chat`, SSE, OpenAPI, health and metrics.

pub mod stomp;
