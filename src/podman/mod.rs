//! Everything that speaks Podman's libpod REST API: the connection, the wire types and the event
//! stream's line framing. Nothing here keeps state across requests or knows about the inventory.

pub mod client;
mod endpoint;
pub mod ndjson;
pub mod wire;

pub use client::{Client, ClientError, Endpoint, EventStream};
