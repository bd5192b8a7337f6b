//! REST, SSE and ops tests over the real router on in-memory ports (one test binary).

mod link_preview;
mod rest;
mod support;
mod stomp;
mod cluster;
