//! The HTTP API (actix-web): clients, the event stream, metrics, health.
//!
//! [`configure`] mounts the routes into any actix-web `App`, so an application that embeds
//! heartwatch can serve them from its own server; [`start`] runs them on their own listener.

mod clients;
mod cluster_api;
mod event_stream;
mod health;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;

pub use event_stream::SseHub;

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
    /// The bearer token reads require, if any.
    pub token: Option<Arc<str>>,
    /// Cluster mode: clients, nodes, events and health come from the cluster.
    pub cluster: Option<crate::cluster::Cluster>,
}

impl ApiState {
    /// The 401 answer if the request may not read; `None` if no token is configured or it
    /// carries `Authorization: Bearer <token>`. The comparison takes the same time whatever
    /// the first differing byte, so the token cannot be guessed byte by byte.
    pub(crate) fn refusal(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let token = self.token.as_ref()?;
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return None;
        }
        Some(
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(ApiError {
                    error: "unauthorized",
                    message: "a valid bearer token is required (auth.http_token)".into(),
                }),
        )
    }
}

/// A JSON error body: `{"error":"not_found","message":"..."}`.
#[derive(Debug, Serialize)]
pub(crate) struct ApiError {
    error: &'static str,
    message: String,
}

/// Mounts every route: `/healthz`, `/metrics`, `/api/v1/clients[/{proj}]`, `/api/v1/events`.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let bad_query = web::QueryConfig::default().error_handler(|err, _| {
            let body = ApiError {
                error: "bad_request",
                message: err.to_string(),
            };
            actix_web::error::InternalError::from_response(
                err,
                HttpResponse::BadRequest().json(body),
            )
            .into()
        });
        cfg.app_data(web::Data::new(state))
            .app_data(bad_query)
            .route("/healthz", web::get().to(health::healthz))
            .route("/metrics", web::get().to(metrics::metrics))
            .route("/api/v1/clients", web::get().to(clients::list))
            .route("/api/v1/clients/{proj}", web::get().to(clients::get))
            .route("/api/v1/nodes", web::get().to(cluster_api::nodes))
            .route("/api/v1/events", web::get().to(event_stream::events));
    }
}

/// Binds `addr` and builds the API server, over TLS when `tls` is given. The caller spawns the
/// returned [`Server`] and stops it through the handle; signals are left to the caller
/// (heartwatch owns SIGINT/SIGTERM).
pub fn start(
    addr: SocketAddr,
    workers: usize,
    state: ApiState,
    tls: Option<&ServerTls>,
) -> std::io::Result<(Server, ServerHandle, SocketAddr)> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let server = HttpServer::new(move || App::new().configure(configure(state.clone())))
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
