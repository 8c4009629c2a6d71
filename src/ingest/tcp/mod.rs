//! The heartbeat protocol over TCP and TLS.
//!
//! - `listener`: binding, the accept loop, handing sockets to the session arbiters.
//! - `tls_handshake`: the server side of a TLS handshake, before the connection starts.
//! - `connection`: one connection's protocol state, driven by a host.
//! - `connection_task`: the host of a connection that carries no client of its own: every
//!   connection until its first heartbeat, and connections that beat for clients whose actor
//!   already has one.
//! - `slot`: a connection's place under `server.max_connections`, a guard.
//! - `frame_budget`: the frame rate limit of one connection (and, in the HTTP and UDP
//!   ingests, of one source address).

mod close_reason;
mod connection;
mod connection_task;
mod frame_budget;
mod listener;
mod services;
mod slot;
mod tls_handshake;

pub use close_reason::CloseReason;
pub use connection::Connection;
pub(crate) use connection::{Step, FRAMES_PER_POLL};
pub(crate) use connection_task::{custom, offline, serve};
pub(crate) use frame_budget::FrameBudget;
pub(crate) use listener::{accept_loop, bind};
pub(crate) use services::{TcpServices, TlsAcceptor};
