//! The HTTP API (actix-web): clients, the event stream, metrics, health, the dashboard and the
//! OpenAPI document.
//!
//! [`configure`] mounts the routes into any actix-web `App`, so an application that embeds
//! heartwatch can serve them from its own server ([`crate::Builder::http`] off); by default
//! [`crate::Builder`] runs them on their own listener.

mod access;
mod api_error;
mod clients;
mod cluster_api;
mod dashboard;
mod event_stream;
mod fallback;
mod health;
mod history;
mod metrics;
mod openapi;
mod pauses;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use bytes::Bytes;
use tokio::sync::broadcast;

pub use crate::storage::{ClientHistory, History, Uptime};
pub(crate) use api_error::{path_proj, ApiError};
pub(crate) use event_stream::SseHub;

use crate::metrics::Metrics;
use crate::supervision::RegistryHandle;
use crate::tls::ServerTls;

/// What the API handlers read. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The registry, for client queries.
    pub registry: RegistryHandle,
    /// The metrics to render.
    pub metrics: Arc<Metrics>,
    /// Serialized events (`data: ...\n\n` blocks) for the event stream.
    pub events: broadcast::Sender<Bytes>,
    /// Every client's recent events, for `/api/v1/clients/{proj}/history` and
    /// `?state=offline`.
    pub history: History,
    /// The bearer token reads require, if any (`auth.http_token`).
    pub token: Option<Arc<str>>,
    /// The bearer token writes require, if any (`auth.http_admin_token`); it reads too. See
    /// [`ApiState::write_refusal`].
    pub admin_token: Option<Arc<str>>,
    /// Cluster mode: clients, nodes, events and health come from the cluster.
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    /// This server's name (`cluster.node`, or host name and heartbeat port) and start time,
    /// for `/api/v1/nodes` in single-node mode.
    pub(crate) node: Arc<(String, std::time::SystemTime)>,
}

/// Mounts every route: `/healthz`, `/metrics`, `/api/v1/clients[/{proj}[/history]]`,
/// `/api/v1/events`, the pauses (`POST /api/v1/clients/{proj}/pause|resume`,
/// `POST /api/v1/pause|resume`), `/api/v1/openapi.json`, and the dashboard (`/`, `/ui/*`).
/// Each is documented in `openapi.json` (checked by `tests/openapi.rs`).
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let bad_query = web::QueryConfig::default().error_handler(|err, _| {
            let response = ApiError::bad_request(err.to_string());
            actix_web::error::InternalError::from_response(err, response).into()
        });
        cfg.app_data(web::Data::new(state))
            .app_data(bad_query)
            .route("/healthz", web::get().to(health::healthz))
            .route("/metrics", web::get().to(metrics::metrics))
            .route("/api/v1/clients", web::get().to(clients::list))
            .route("/api/v1/clients/{proj}", web::get().to(clients::get))
            .route(
                "/api/v1/clients/{proj}/history",
                web::get().to(history::history),
            )
            .route(
                "/api/v1/clients/{proj}/pause",
                web::post().to(pauses::pause),
            )
            .route(
                "/api/v1/clients/{proj}/resume",
                web::post().to(pauses::resume),
            )
            .route("/api/v1/pause", web::post().to(pauses::pause_window))
            .route("/api/v1/resume", web::post().to(pauses::resume_window))
            .route("/api/v1/nodes", web::get().to(cluster_api::nodes))
            .route("/api/v1/events", web::get().to(event_stream::events))
            .route("/api/v1/openapi.json", web::get().to(openapi::document))
            .route("/", web::get().to(dashboard::asset))
            .route("/ui/dashboard.css", web::get().to(dashboard::asset))
            .route("/ui/dashboard.js", web::get().to(dashboard::asset));
    }
}

/// Binds `addr` and builds the API server, over TLS when `tls` is given. The caller spawns the
/// returned [`Server`] and stops it through the handle; signals are left to the caller
/// (heartwatch owns SIGINT/SIGTERM).
pub(crate) fn start(
    addr: SocketAddr,
    workers: usize,
    state: ApiState,
    tls: Option<&ServerTls>,
) -> std::io::Result<(Server, ServerHandle, SocketAddr)> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .configure(configure(state.clone()))
            .default_service(web::to(fallback::fallback))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(1);
    let server = match tls {
        // actix-web adds its ALPN protocols to the configuration it is given: a copy, so the
        // heartbeat listener's stays without them.
        Some(tls) => server
            .tls_handshake_timeout(tls.handshake_timeout)
            .listen_rustls_0_23(listener, rustls::ServerConfig::clone(&tls.config))?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    Ok((server, handle, local))
}
