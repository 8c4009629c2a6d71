//! Every way a heartbeat arrives. Each ingest turns its input into calls of
//! [`crate::supervision::Heartbeats`], the one way into supervision.
//!
//! - [`tcp`]: the heartbeat protocol over TCP (and TLS): the listener, and one
//!   [`tcp::Connection`] per socket, driven by a task until it carries a client, then by that
//!   client's actor.

pub(crate) mod tcp;
