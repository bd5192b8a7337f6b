mod memory_contracts;
mod support;
mod identity;
mod recommend;
mod social;
mod pipeline;
mod rooms;
mod messages;
