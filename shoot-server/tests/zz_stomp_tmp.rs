#[path = "it/stomp.rs"]
mod stomp;
