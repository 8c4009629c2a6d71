//! The other side: a client that beats, notices when the server is gone, and reconnects.
//!
//! [`HeartbeatClient`] is an actor an actix application starts with a [`ClientConfig`] and a
//! `Recipient<ClientEvent>`; `heartwatch beat` is a thin shell around it.

mod backoff;
mod config;
mod event;
mod heartbeat_client;

pub(crate) use backoff::Backoff;
pub use config::ClientConfig;
pub use event::{ClientEvent, DownReason};
pub use heartbeat_client::{HeartbeatClient, Shutdown};
