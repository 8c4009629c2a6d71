//! HTTP pings: the heartbeat protocol for clients that can run `curl` but keep no connection
//! (cron jobs, serverless functions, shell scripts), on its own listener (`ingest.http`).
//!
//! | request | is the frame |
//! |---|---|
//! | `POST` or `GET /ping/{proj}?timeout=30s&seq=N` | `{"type":"heartbeat","proj":..,"timeout_ms":..,"seq":N}` |
//! | `POST` or `GET /ping/{proj}/offline?seq=N` | `{"type":"offline","proj":..,"seq":N}` |
//!
//! The answer's body is the reply the frame would get over TCP (the ack, or the error with
//! its code), and its status says the same: 200, or 400 (`bad_proj`, `bad_utf8`,
//! `bad_timeout`, `bad_seq`), 401 (`unauthorized`), 404 and 405 (`unknown_type`: no such path
//! or method), 413 (`frame_too_large`: a body longer than `server.max_frame_bytes`), 429
//! (`rate_limited`), 503 (`unavailable`, `too_many_clients`). With protocol authentication on,
//! `Authorization: Bearer <token>` must carry a token valid for the `proj`, checked as a
//! frame's `token` is (constant time, per `proj`). A request is one frame of its source
//! address's budget (`session.max_frame_rate`), checked before anything else.
//!
//! `GET` beats too, although a GET should have no effect: the simplest cron line is
//! `curl -fsS https://host:7702/ping/backup`, and so is healthchecks.io's. Every answer says
//! `Cache-Control: no-store`, so that no cache answers a ping in the server's place.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::answers;
use super::dispatcher::Dispatcher;
use super::source_budgets::SourceBudgets;
use super::{Ingest, IngestConfig, IngestDeps};
use crate::auth::Authenticator;
use crate::clock;
use crate::config::SessionConfig;
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, Proj, Reply};
use crate::supervision::{error_code, BeatError};
use crate::tls::ServerTls;

/// What the handlers share (one per HTTP ingest, on every worker).
struct PingService {
    dispatcher: Dispatcher,
    auth: Option<Arc<Authenticator>>,
    metrics: Arc<Metrics>,
    session: SessionConfig,
    max_body_bytes: usize,
    budgets: Mutex<SourceBudgets>,
}

/// A request refused: the error reply, as the same frame would get it over TCP.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
    /// When to try again, if the server said (overloaded or stopping).
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The refusal of a heartbeat the supervision did not take.
    fn of(e: &BeatError) -> Self {
        Self {
            retry_after: e.retry_after(),
            ..Self::new(error_code(e), e.to_string())
        }
    }
}

/// What a ping asks for, once checked.
struct Ping {
    proj: Proj,
    seq: Option<u64>,
    timeout_ms: Option<u64>,
    peer: SocketAddr,
}

/// The HTTP ingest, bound but not yet serving: what can fail (the bind, the TLS set-up) has
/// been done, and [`BoundHttp::run`] cannot fail.
pub(crate) struct BoundHttp {
    local: SocketAddr,
    service: Arc<OnceLock<web::Data<PingService>>>,
    run: Box<dyn FnOnce() -> Server>,
    max_sources: NonZeroUsize,
    route_cache: usize,
}

/// Binds `addr` for the HTTP ingest (over TLS when `tls` is given).
pub(crate) fn bind(
    addr: SocketAddr,
    config: &IngestConfig,
    tls: Option<&ServerTls>,
) -> io::Result<BoundHttp> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let service: Arc<OnceLock<web::Data<PingService>>> = Arc::new(OnceLock::new());
    let shared = service.clone();
    let server = HttpServer::new(move || {
        // Set by `run` before the server starts its workers, which is when this runs.
        let service = shared
            .get()
            .expect("the ping service is set before run")
            .clone();
        App::new()
            .app_data(service)
            .service(
                web::resource("/ping/{proj}")
                    .route(web::get().to(beat))
                    .route(web::post().to(beat))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/ping/{proj}/offline")
                    .route(web::get().to(offline))
                    .route(web::post().to(offline))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(not_found))
    })
    .workers(config.http_workers)
    .disable_signals()
    .shutdown_timeout(1);
    let server = match tls {
        Some(tls) => server
            .tls_handshake_timeout(tls.handshake_timeout)
            .listen_rustls_0_23(listener, rustls::ServerConfig::clone(&tls.config))?,
        None => server.listen(listener)?,
    };
    Ok(BoundHttp {
        local,
        service,
        run: Box::new(move || server.run()),
        max_sources: NonZeroUsize::new(config.max_sources).unwrap_or(NonZeroUsize::MIN),
        route_cache: config.route_cache,
    })
}

impl BoundHttp {
    /// Where it listens.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts serving (the caller spawns the returned server, and stops it by its handle).
    pub(crate) fn run(self, deps: &IngestDeps) -> (Server, ServerHandle) {
        let service = PingService {
            dispatcher: Dispatcher::new(deps, self.route_cache),
            auth: deps.auth.clone(),
            metrics: deps.metrics.clone(),
            session: deps.session.clone(),
            max_body_bytes: deps.max_frame_bytes,
            budgets: Mutex::new(SourceBudgets::new(self.max_sources)),
        };
        // Only `run` sets it, once.
        let _ = self.service.set(web::Data::new(service));
        let server = (self.run)();
        let handle = server.handle();
        (server, handle)
    }
}

/// `/ping/{proj}`: a heartbeat.
async fn beat(
    req: HttpRequest,
    payload: web::Payload,
    service: web::Data<PingService>,
) -> HttpResponse {
    let service = service.into_inner();
    let ping = match service.check(&req, payload).await {
        Ok(ping) => ping,
        Err(refusal) => return service.refuse(refusal),
    };
    let (tx, rx) = oneshot::channel();
    let sent = service
        .dispatcher
        .beat(ping.proj, ping.peer, ping.timeout_ms, ping.seq, move |r| {
            let _ = tx.send(r);
        });
    if sent.is_err() {
        return service.refuse(busy());
    }
    match rx.await {
        Ok(Ok(ack)) => reply(StatusCode::OK, &ack),
        Ok(Err(e)) => service.refuse(Refusal::of(&e)),
        Err(_) => service.refuse(stopping()),
    }
}

/// `/ping/{proj}/offline`: an explicit offline.
async fn offline(
    req: HttpRequest,
    payload: web::Payload,
    service: web::Data<PingService>,
) -> HttpResponse {
    let service = service.into_inner();
    let ping = match service.check(&req, payload).await {
        Ok(ping) => ping,
        Err(refusal) => return service.refuse(refusal),
    };
    let (tx, rx) = oneshot::channel();
    let sent = service.dispatcher.offline(ping.proj.clone(), move |r| {
        let _ = tx.send(r);
    });
    if sent.is_err() {
        return service.refuse(busy());
    }
    match rx.await {
        Ok(Ok(_)) => reply(StatusCode::OK, &answers::offline_ack(ping.proj, ping.seq)),
        Ok(Err(e)) => service.refuse(Refusal::new(ErrorCode::Unavailable, e.to_string())),
        Err(_) => service.refuse(stopping()),
    }
}

/// Any other path.
async fn not_found(service: web::Data<PingService>) -> HttpResponse {
    service.metrics.ingest_request(Ingest::Http);
    service.refuse_with(
        StatusCode::NOT_FOUND,
        Refusal::new(
            ErrorCode::UnknownType,
            "no such path: pings go to /ping/{proj} and /ping/{proj}/offline",
        ),
    )
}

/// `/ping/...` with a method other than GET and POST.
async fn method_not_allowed(service: web::Data<PingService>) -> HttpResponse {
    service.metrics.ingest_request(Ingest::Http);
    let mut response = service.refuse_with(
        StatusCode::METHOD_NOT_ALLOWED,
        Refusal::new(ErrorCode::UnknownType, "a ping is a GET or a POST"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

fn busy() -> Refusal {
    Refusal::new(
        ErrorCode::Unavailable,
        "too many pings in flight; retry shortly",
    )
}

fn stopping() -> Refusal {
    Refusal::new(ErrorCode::Unavailable, "the server is shutting down")
}

impl PingService {
    /// Checks a ping as a frame is checked over TCP: its source's budget first, then its
    /// size, its fields, and its token.
    async fn check(&self, req: &HttpRequest, payload: web::Payload) -> Result<Ping, Refusal> {
        self.metrics.ingest_request(Ingest::Http);
        let peer = req
            .peer_addr()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let admitted = self.budgets.lock().unwrap_or_else(|e| e.into_inner()).take(
            peer.ip(),
            &self.session,
            clock::now(),
        );
        if !admitted {
            let rate = self.session.max_frame_rate;
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {rate} pings per second from {}; ping dropped",
                    peer.ip()
                ),
            ));
        }
        self.read_body(req, payload).await?;
        let proj = proj(req)?;
        let (seq, timeout_ms) = query(req.query_string())?;
        self.authorize(req, &proj)?;
        Ok(Ping {
            proj,
            seq,
            timeout_ms,
            peer,
        })
    }

    /// Reads (and drops) the body, refusing one longer than a frame may be: a ping carries
    /// nothing in it, and a client that sends megabytes must not hold a worker.
    async fn read_body(&self, req: &HttpRequest, mut payload: web::Payload) -> Result<(), Refusal> {
        let max = self.max_body_bytes;
        let too_large = || {
            Refusal::new(
                ErrorCode::FrameTooLarge,
                format!("request body longer than {max} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max as u64) {
            return Err(too_large());
        }
        let mut read = 0usize;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                Refusal::new(
                    ErrorCode::BadJson,
                    format!("the request body could not be read: {e}"),
                )
            })?;
            read += chunk.len();
            if read > max {
                return Err(too_large());
            }
        }
        Ok(())
    }

    /// With protocol authentication on: whether the bearer token may act for `proj`.
    fn authorize(&self, req: &HttpRequest, proj: &Proj) -> Result<(), Refusal> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let token = bearer(req).unwrap_or_default();
        if auth.current().authorize(token.as_bytes(), proj.as_str()) {
            return Ok(());
        }
        log::info!(
            "refusing a ping from {}: no valid token for proj {:?}",
            req.peer_addr().map_or_else(String::new, |a| a.to_string()),
            proj.as_str()
        );
        Err(Refusal::new(
            ErrorCode::Unauthorized,
            format!(
                "no valid token for proj {:?} (send Authorization: Bearer <token>)",
                proj.as_str()
            ),
        ))
    }

    /// The answer to a refused ping, counted.
    fn refuse(&self, refusal: Refusal) -> HttpResponse {
        self.refuse_with(status(refusal.code), refusal)
    }

    fn refuse_with(&self, status: StatusCode, refusal: Refusal) -> HttpResponse {
        self.metrics.ingest_error(Ingest::Http, refusal.code);
        let body = match refusal.retry_after {
            Some(after) => Reply::retry_later(refusal.code, refusal.message, after),
            None => Reply::error(refusal.code, refusal.message),
        };
        let mut response = reply(status, &body);
        let headers = response.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"heartwatch\""),
                );
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                // Whole seconds, rounded up: at least the wait the body's `retry_after_ms` asks.
                let secs = refusal
                    .retry_after
                    .map_or(1, |after| after.as_millis().div_ceil(1000).max(1));
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
            }
            _ => {}
        }
        response
    }
}

/// The HTTP status of an error code: the client's fault (4xx) or the server's state (503).
fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadJson
        | ErrorCode::BadUtf8
        | ErrorCode::BadType
        | ErrorCode::BadProj
        | ErrorCode::BadTimeout
        | ErrorCode::BadSeq => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownType => StatusCode::NOT_FOUND,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable | ErrorCode::TooManyClients | ErrorCode::TooManyConnections => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::HandlerError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A reply as the body of an answer: the JSON line the frame would get over TCP.
fn reply(status: StatusCode, reply: &Reply) -> HttpResponse {
    // Replies are plain data: serializing cannot fail.
    let mut body = serde_json::to_vec(reply).unwrap_or_default();
    body.push(b'\n');
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `proj` of `/ping/{proj}[/offline]`, percent-decoded from the raw path: the router's
/// own decoding replaces invalid UTF-8, which a frame would get `bad_utf8` for.
fn proj(req: &HttpRequest) -> Result<Proj, Refusal> {
    // The route matched `/ping/{proj}...` and a router never decodes `%2F`, so the raw path's
    // third segment is the proj, still encoded.
    let raw = req.uri().path().split('/').nth(2).unwrap_or_default();
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    let text = String::from_utf8(bytes).map_err(|e| {
        Refusal::new(
            ErrorCode::BadUtf8,
            format!(
                "proj is not valid UTF-8 once percent-decoded (at byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    Proj::new(&text).map_err(|e| Refusal::new(ErrorCode::BadProj, e.to_string()))
}

/// `seq` and the timeout (`timeout=30s`, a duration, a bare number being seconds; or
/// `timeout_ms=30000`, as in a frame) of a query string. Other parameters are ignored, as
/// a frame's other fields are.
fn query(query: &str) -> Result<(Option<u64>, Option<u64>), Refusal> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| Refusal::new(ErrorCode::BadJson, format!("bad query string: {e}")))?
        .into_inner();
    let (mut seq, mut timeout_ms) = (None, None);
    for (key, value) in pairs {
        match key.as_str() {
            "seq" => {
                if seq.is_some() {
                    return Err(Refusal::new(ErrorCode::BadSeq, "seq given twice"));
                }
                let n = value.trim().parse::<u64>().map_err(|_| {
                    Refusal::new(
                        ErrorCode::BadSeq,
                        format!("seq must be a non-negative integer, got {value:?}"),
                    )
                })?;
                seq = Some(n);
            }
            "timeout" | "timeout_ms" => {
                if timeout_ms.is_some() {
                    return Err(Refusal::new(
                        ErrorCode::BadTimeout,
                        "give one timeout (timeout or timeout_ms), once",
                    ));
                }
                timeout_ms = Some(if key == "timeout" {
                    duration_ms(&value)?
                } else {
                    match value.trim().parse::<u64>() {
                        Ok(0) | Err(_) => {
                            return Err(Refusal::new(
                                ErrorCode::BadTimeout,
                                format!("timeout_ms must be a positive integer, got {value:?}"),
                            ))
                        }
                        Ok(ms) => ms,
                    }
                });
            }
            _ => {}
        }
    }
    Ok((seq, timeout_ms))
}

/// `timeout=` in milliseconds: `30s`, `1m 30s`, `500ms`, or a bare number of seconds.
fn duration_ms(value: &str) -> Result<u64, Refusal> {
    let value = value.trim();
    let bad = |why: &str| {
        Refusal::new(
            ErrorCode::BadTimeout,
            format!("timeout must be a positive duration like 30s or 500ms, got {value:?}{why}"),
        )
    };
    let ms = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        value
            .parse::<u64>()
            .map_err(|_| bad(""))?
            .saturating_mul(1000)
    } else {
        let d = humantime::parse_duration(value).map_err(|e| bad(&format!(" ({e})")))?;
        clock::millis(d)
    };
    if ms == 0 {
        return Err(bad(" (under a millisecond)"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: std::fmt::Debug>(r: Result<T, Refusal>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn the_query_carries_seq_and_the_timeout_as_a_frame_does() {
        assert_eq!(query("").unwrap(), (None, None));
        assert_eq!(query("seq=7&timeout=30s").unwrap(), (Some(7), Some(30_000)));
        assert_eq!(query("timeout=1m%2030s").unwrap(), (None, Some(90_000)));
        assert_eq!(query("timeout=500ms").unwrap(), (None, Some(500)));
        assert_eq!(
            query("timeout=45").unwrap(),
            (None, Some(45_000)),
            "seconds"
        );
        assert_eq!(query("timeout_ms=2500").unwrap(), (None, Some(2_500)));
        assert_eq!(query("other=x&seq=0").unwrap(), (Some(0), None));
        for bad in [
            "timeout=0",
            "timeout=0s",
            "timeout=soon",
            "timeout=",
            "timeout=10us",
        ] {
            assert_eq!(code(query(bad)), ErrorCode::BadTimeout, "{bad}");
        }
        for bad in ["timeout_ms=0", "timeout_ms=1.5", "timeout=1s&timeout_ms=5"] {
            assert_eq!(code(query(bad)), ErrorCode::BadTimeout, "{bad}");
        }
        for bad in ["seq=-1", "seq=x", "seq=1&seq=2", "seq="] {
            assert_eq!(code(query(bad)), ErrorCode::BadSeq, "{bad}");
        }
    }

    #[test]
    fn every_code_has_a_fitting_status() {
        for code in ErrorCode::ALL {
            let s = status(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code}: {s}");
        }
        assert_eq!(status(ErrorCode::BadProj), StatusCode::BAD_REQUEST);
        assert_eq!(status(ErrorCode::Unauthorized), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(ErrorCode::FrameTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(ErrorCode::RateLimited),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            status(ErrorCode::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(ErrorCode::TooManyClients),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
