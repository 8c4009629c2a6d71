//! heartwatch: heartbeat detection and liveness supervision on actix.
//!
//! Clients identified by a `proj` send heartbeats (newline-delimited JSON over TCP, or any
//! transport of your own through [`Heartbeats`]); each online client has an actor whose
//! watchdog declares it offline when its heartbeats stop. Transitions go, in order, to every
//! [`events::Sink`]: the durable event log, the server log, the HTTP event stream, your
//! actors ([`EventBus`]) and your own sinks.
//!
//! # What an embedding application uses
//! - [`Builder`] starts everything inside your actix System; [`Running`] is the handle to it
//!   (addresses, [`RegistryHandle`] for queries, [`Heartbeats`] to deliver heartbeats from
//!   your own transport, [`EventBus`] to subscribe actors, [`metrics::Metrics`], `stop`).
//! - [`config`]: the typed configuration and its loader ([`ConfigLoader`]: defaults, file,
//!   environment).
//! - [`events`]: [`Event`], and the [`events::Sink`] interface for consumers of transitions.
//! - [`extension`]: handlers for frame types of your own.
//! - [`http`]: the HTTP API's routes, to mount in your own actix-web `App`.
//! - [`client`]: the heartbeat client actor (what `heartwatch beat` runs).
//! - [`protocol`]: the wire format (frames, replies, error codes, limits).
//! - [`auth`], [`tls`], [`notify`]: tokens, TLS configurations, webhook signatures.
//! - [`shutdown::signal`]: waits for SIGINT or SIGTERM.
//!
//! Internally, a heartbeat flows ingest (`ingest::tcp`, `ingest::http_ping`, `ingest::udp`)
//! → supervision (the registry and one actor per client) → events (the ordered sinks);
//! ARCHITECTURE.md maps the code.
//!
//! # Embedding
//! ```no_run
//! use actix::prelude::*;
//! use heartwatch::{Builder, Config, Event};
//!
//! struct Audit;
//! impl Actor for Audit { type Context = Context<Self>; }
//! impl Handler<Event> for Audit {
//!     type Result = ();
//!     fn handle(&mut self, event: Event, _: &mut Context<Self>) { println!("{event:?}"); }
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = Builder::new(Config::default().server)
//!         .subscribe(Audit.start().recipient())
//!         .start()
//!         .await?;
//!     heartwatch::shutdown::signal().await?;
//!     server.stop().await;
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub(crate) mod clock;
pub(crate) mod cluster;
pub mod config;
pub mod events;
pub mod extension;
pub mod http;
pub(crate) mod ingest;
pub mod metrics;
pub mod notify;
pub(crate) mod process_stats;
pub mod protocol;
pub(crate) mod server;
pub mod shutdown;
pub(crate) mod storage;
pub(crate) mod supervision;
pub mod tls;

pub use config::{Config, ConfigError, ConfigLoader};
pub use events::{Event, EventBus, OfflineReason};
pub use server::{Builder, Running, StartError};
pub use supervision::{
    BeatAck, BeatError, ClientInfo, ClientState, Full, Heartbeat, Heartbeats, List, RegistryHandle,
    Unavailable,
};

/// The README's Rust blocks (the embedding example) are compiled as doc tests, so that it
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
