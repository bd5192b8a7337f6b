//! STOMP 1.2 over WebSocket at `/ws/chat`.

pub mod frame;
