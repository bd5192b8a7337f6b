//! `shoot-loadtest`: a STOMP 1.2 over WebSocket load tool for Shoot, with a destination
//! scheme preset for RabbitMQ Web-STOMP so both can be measured with the same client.
//!
//! Pure parts (unit-tested): [`frame`] (STOMP frame codec), [`seq`] (gap / duplicate /
//! reorder accounting), [`payload`] (the timestamp + sequence marker every message carries),
//! [`args`]. The rest drives real connections: [`client`], [`setup`] (REST), [`scenarios`],
//! [`bigroom`] (also across several processes and instances).

pub mod args;
pub mod bigroom;
pub mod client;
pub mod frame;
pub mod payload;
pub mod scenarios;
pub mod seq;
pub mod setup;
pub mod stats;
pub mod sys;
