//! The HTTP API in cluster mode: the merged client list, the nodes, the event stream of the
//! whole cluster (resumable with `Last-Event-ID` on any node), and health with Redis's.

use std::collections::HashMap;
use std::convert::Infallible;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ApiState};
use crate::cluster::{Cluster, ClusterError, ClusterHealth, NodeInfo, StreamEvent};
use crate::protocol::Proj;
use crate::supervision::{ClientInfo, ClientState, List, RegistryHandle};

/// Events read back per `XRANGE` when a reader resumes.
const RESUME_PAGE: usize = 1000;
/// Pages read back at most when a reader resumes (older ones are trimmed anyway).
const RESUME_PAGES: usize = 200;

fn unavailable(e: ClusterError) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
        .json(ApiError {
            error: "cluster_unavailable",
            message: e.to_string(),
        })
}

/// Online clients of every node, in `proj` order. Those of this node show their exact last
/// heartbeat and their state (late, paused, flapping); the others, the last their node
/// recorded (its claim or checkpoint) and `online`. With `wanted`, only clients in that state
/// (filtered before paging).
pub(crate) async fn list(
    cluster: &Cluster,
    registry: &RegistryHandle,
    after: Option<Proj>,
    limit: Option<usize>,
    wanted: Option<ClientState>,
) -> HttpResponse {
    let fetch = match wanted {
        Some(_) => usize::MAX,
        None => limit.unwrap_or(usize::MAX),
    };
    let mut clients = match cluster.clients(after.as_ref(), fetch).await {
        Ok(clients) => clients,
        Err(e) => return unavailable(e),
    };
    if clients.iter().any(|c| c.node == cluster.name()) {
        // Every local client of this page is in the local page with the same bounds.
        let local = registry
            .list(List {
                after,
                limit: if wanted.is_some() { None } else { limit },
                state: None,
            })
            .await
            .unwrap_or_default();
        let local: HashMap<&Proj, &ClientInfo> = local.iter().map(|c| (&c.proj, c)).collect();
        for client in clients.iter_mut().filter(|c| c.node == cluster.name()) {
            if let Some(info) = local.get(&client.proj) {
                client.last_seen = info.last_seen;
                client.heartbeats = Some(info.heartbeats);
                client.state = info.state.as_str();
            }
        }
    }
    if let Some(wanted) = wanted {
        clients.retain(|c| c.state == wanted.as_str());
        clients.truncate(limit.unwrap_or(usize::MAX));
    }
    HttpResponse::Ok().json(clients)
}

/// One client, wherever it is connected.
pub(crate) async fn get(cluster: &Cluster, registry: &RegistryHandle, proj: Proj) -> HttpResponse {
    match cluster.client(&proj).await {
        Ok(Some(mut client)) => {
            if client.node == cluster.name() {
                if let Ok(Some(info)) = registry.get(proj).await {
                    client.last_seen = info.last_seen;
                    client.heartbeats = Some(info.heartbeats);
                    client.state = info.state.as_str();
                }
            }
            HttpResponse::Ok().json(client)
        }
        Ok(None) => ApiError::not_found(format!("client {proj} is not online")),
        Err(e) => unavailable(e),
    }
}

/// `GET /api/v1/nodes`: every node with its state and client count. Single-node mode: this
/// one node.
pub(crate) async fn nodes(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refused) = state.refusal(&req) {
        return refused;
    }
    let Some(cluster) = &state.cluster else {
        let (name, started) = &*state.node;
        return HttpResponse::Ok().json([NodeInfo {
            node: name.clone(),
            state: "alive".into(),
            clients: u64::try_from(state.metrics.clients()).unwrap_or(0),
            incarnation: String::new(),
            started: *started,
            ended: None,
            info: serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "cluster": false }),
        }]);
    };
    match cluster.nodes().await {
        Ok(nodes) => HttpResponse::Ok().json(nodes),
        Err(e) => unavailable(e),
    }
}

/// `/healthz` in cluster mode: 503 with the cause once Redis has not answered for longer than
/// `dead_after` (peers may declare this node dead: send new clients elsewhere).
pub(crate) fn health(cluster: &Cluster) -> HttpResponse {
    match cluster.health() {
        ClusterHealth::Ok => HttpResponse::Ok().content_type("text/plain").body("ok\n"),
        ClusterHealth::Degraded { cause, since } => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({
                "status": "degraded",
                "cause": cause,
                "for_ms": crate::clock::millis(since),
                "node": cluster.name(),
            }))
        }
    }
}

/// The SSE block of one event: `id: <stream id>` and `data: <json>`.
fn block(event: &StreamEvent) -> Bytes {
    Bytes::from(format!("id: {}\ndata: {}\n\n", event.id, event.json))
}

/// Whether stream id `a` comes after `b` (`<ms>-<seq>`).
fn after(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    };
    parse(a) > parse(b)
}

/// Every node's events from now on, or from after `Last-Event-ID`.
pub(crate) async fn events(cluster: &Cluster, req: &HttpRequest) -> HttpResponse {
    // Subscribe before reading back, so nothing falls between the two.
    let live = cluster.subscribe();
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '-'))
        .map(str::to_string);
    let mut backlog = Vec::new();
    let mut last = resume.clone();
    if let Some(from) = resume {
        let mut from = from;
        for _ in 0..RESUME_PAGES {
            match cluster.events_after(&from, RESUME_PAGE).await {
                Ok(page) => {
                    let done = page.len() < RESUME_PAGE;
                    if let Some(e) = page.last() {
                        from = e.id.clone();
                        last = Some(e.id.clone());
                    }
                    backlog.extend(page.iter().map(block));
                    if done {
                        break;
                    }
                }
                Err(e) => return unavailable(e),
            }
        }
    }
    let hello = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b": heartwatch events\n\n"))
    });
    let backlog = futures_util::stream::iter(backlog.into_iter().map(Ok::<_, Infallible>));
    // State: the receiver and the last id read back (live events up to it are skipped);
    // `None` once the stream ends.
    let body = futures_util::stream::unfold(Some((live, last)), |state| async move {
        let (mut receiver, mut last) = state?;
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    if last.as_deref().is_some_and(|l| !after(&event.id, l)) {
                        continue;
                    }
                    last = None;
                    return Some((Ok::<_, Infallible>(block(&event)), Some((receiver, last))));
                }
                Err(RecvError::Lagged(missed)) => {
                    return Some((
                        Ok(Bytes::from(format!(
                            "event: lagged\ndata: {{\"missed\":{missed}}}\n\n"
                        ))),
                        None,
                    ))
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(hello.chain(backlog).chain(body))
}

#[cfg(test)]
mod tests {
    use super::after;

    #[test]
    fn stream_ids_order_by_time_then_sequence() {
        assert!(after("2-0", "1-5"));
        assert!(after("1-6", "1-5"));
        assert!(!after("1-5", "1-5"));
        assert!(!after("10-0", "100-0"));
    }
}
