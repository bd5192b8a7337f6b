//! REST, SSE and ops tests over the real router on in-memory ports (one test binary).

mod authz;
mod cluster;
mod crash;
mod faults;
mod hostile_rest;
mod jwt;
mod limits;
mod link_preview;
mod rest;
mod stomp;
mod support;
