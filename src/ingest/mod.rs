//! Every way a heartbeat arrives. Each ingest turns its input into calls of
//! [`crate::supervision::Heartbeats`], the one way into supervision.
//!
//! - [`tcp`]: the heartbeat protocol over TCP (and TLS): the listener, and one
//!   [`tcp::Connection`] per socket, driven by a task until it carries a client, then by that
//!   client's actor.
//! - [`http_ping`]: `/ping/{proj}` on its own HTTP listener (`ingest.http`), for cron jobs and
//!   scripts: one request, one heartbeat.
//! - [`udp`]: one datagram, one frame (`ingest.udp`), for devices that speak only UDP.
//!
//! HTTP and UDP have no connection to carry a client's state, so what a TCP connection keeps
//! for itself is kept per ingest here: the frame budget per source address
//! ([`source_budgets`]), and the actor of each recent client ([`route_cache`]), so that a
//! known client's heartbeat goes straight to its actor. [`dispatcher`] runs their deliveries
//! on the session arbiters, where the clients' actors live.

mod answers;
mod config;
mod dispatcher;
mod http_ping;
mod route_cache;
mod source_budgets;
pub(crate) mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::ArbiterHandle;
use actix_web::dev::ServerHandle;

pub use config::IngestConfig;

use crate::auth::Authenticator;
use crate::config::SessionConfig;
use crate::metrics::Metrics;
use crate::server::StartError;
use crate::supervision::Heartbeats;
use crate::tls::ServerTls;

/// An ingest without connections, as labelled in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ingest {
    /// `ingest.http`.
    Http,
    /// `ingest.udp`.
    Udp,
}

impl Ingest {
    /// Both, for metrics.
    pub(crate) const ALL: [Ingest; 2] = [Ingest::Http, Ingest::Udp];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ingest::Http => "http",
            Ingest::Udp => "udp",
        }
    }
}

/// What the HTTP and UDP ingests share with the TCP sessions.
pub(crate) struct IngestDeps {
    pub heartbeats: Heartbeats,
    pub auth: Option<Arc<Authenticator>>,
    pub metrics: Arc<Metrics>,
    /// The frame budget (`max_frame_rate`, `frame_burst`), per source here.
    pub session: SessionConfig,
    /// The longest frame (a UDP datagram, an HTTP request body).
    pub max_frame_bytes: usize,
    /// Where deliveries run and the ingests' clients' actors live.
    pub arbiters: Vec<ArbiterHandle>,
}

/// The HTTP and UDP ingests `config` turns on, bound: binding (what can fail) is done at the
/// start of [`crate::Builder::start`], before anything runs, and serving cannot fail.
#[derive(Default)]
pub(crate) struct BoundIngests {
    http: Option<http_ping::BoundHttp>,
    udp: Option<udp::BoundUdp>,
}

impl BoundIngests {
    /// Binds the listeners `config` turns on (the HTTP one over TLS when `tls` is given).
    pub(crate) fn bind(config: &IngestConfig, tls: Option<&ServerTls>) -> Result<Self, StartError> {
        let http = match config.http {
            Some(addr) => {
                Some(
                    http_ping::bind(addr, config, tls).map_err(|source| StartError::Bind {
                        what: "HTTP ingest",
                        addr,
                        source,
                    })?,
                )
            }
            None => None,
        };
        let udp = match config.udp {
            Some(addr) => Some(udp::bind(addr, config).map_err(|source| StartError::Bind {
                what: "UDP ingest",
                addr,
                source,
            })?),
            None => None,
        };
        if let Some(udp) = &udp {
            log::info!(
                "UDP ingest: heartbeats on {} (answers {})",
                udp.local_addr(),
                if config.udp_ack { "on" } else { "off" }
            );
        }
        if let Some(http) = &http {
            let scheme = if tls.is_some() { "https" } else { "http" };
            log::info!(
                "HTTP ingest: pings on {scheme}://{}/ping/{{proj}}",
                http.local_addr()
            );
        }
        Ok(Self { http, udp })
    }

    /// Starts serving.
    pub(crate) fn run(self, deps: IngestDeps) -> Ingests {
        let http = self.http.map(|http| {
            let local = http.local_addr();
            let (server, handle) = http.run(&deps);
            actix_rt::spawn(server);
            (handle, local)
        });
        let udp = self.udp.map(|udp| udp.run(&deps));
        Ingests { http, udp }
    }
}

/// The running HTTP and UDP ingests (either may be off).
#[derive(Default)]
pub(crate) struct Ingests {
    http: Option<(ServerHandle, SocketAddr)>,
    udp: Option<udp::UdpIngest>,
}

impl Ingests {
    /// The HTTP ingest's address, when it is on.
    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(_, addr)| *addr)
    }

    /// The UDP ingest's address, when it is on.
    pub(crate) fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().map(udp::UdpIngest::local_addr)
    }

    /// Stops both: no request or datagram is taken after this. Deliveries already handed to
    /// a session arbiter finish there (or stop with it).
    pub(crate) async fn stop(self) {
        if let Some(udp) = self.udp {
            udp.stop().await;
        }
        if let Some((http, _)) = self.http {
            http.stop(false).await;
        }
    }
}
