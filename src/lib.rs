//! heartwatch: heartbeat detection and liveness supervision on actix.
//!
//! Clients identified by a `proj` send heartbeats over TCP (newline-delimited JSON); each online
//! client has a [`supervision::Monitor`] actor whose watchdog declares it offline when its
//! heartbeats stop. Events go to subscribers: the log, the HTTP event stream, your code.
//!
//! # Layout: the path of a heartbeat
//! - [`transport`]: the TCP listener and one [`transport::Session`] actor per connection.
//! - [`protocol`]: the wire format, its framing, error codes and limits.
//! - [`supervision`]: the [`supervision::Registry`] (`proj` → monitor, stops when empty,
//!   restarted by [`supervision::RegistryHandle`]) and the [`supervision::Monitor`]s.
//! - [`events`]: [`Event`]s and their fan-out to subscribers.
//! - [`storage`]: the durable event log, and recovery of the online clients after a restart.
//! - [`notify`]: webhooks, delivered from the event log.
//! - [`cluster`]: cluster mode on Redis: several nodes, one view, one event stream.
//! - [`http`]: the HTTP API (clients, event stream, metrics, health).
//! - [`auth`]: protocol tokens (`hello`, per-frame `token`), reloadable on SIGHUP.
//! - [`extension`]: handlers for your own frame types.
//! - [`server`]: [`Builder`] and [`Running`], to start all of it inside an actix System.
//! - [`tls`]: rustls configurations (ring provider) for both listeners and the client.
//! - [`client`]: the heartbeat client actor behind `heartwatch beat`.
//! - [`bench`]: `heartwatch bench`, the load generator.
//! - [`config`], [`logging`], [`metrics`], [`process_stats`], [`clock`], [`shutdown`],
//!   [`hangup`]: the plumbing.
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
pub mod bench;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod events;
pub mod extension;
pub mod hangup;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod process_stats;
pub mod protocol;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod supervision;
pub mod tls;

pub use config::{Config, ConfigError, ConfigLoader};
pub use events::{Event, EventBus, OfflineReason};
pub use server::{Builder, Running, StartError};
pub use supervision::{
    BeatAck, BeatError, ClientInfo, ClientState, Heartbeat, Heartbeats, RegistryHandle, Unavailable,
};
