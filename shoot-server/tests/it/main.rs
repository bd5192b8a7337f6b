//! REST, SSE and ops tests over the real router on in-memory ports (one test binary).

mod cluster;
mod link_preview;
mod rest;
mod stomp;
mod support;
