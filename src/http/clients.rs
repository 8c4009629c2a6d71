//! `GET /api/v1/clients` and `GET /api/v1/clients/{proj}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{path_proj, ApiError, ApiState};
use crate::protocol::Proj;
use crate::supervision::{ClientState, List, Unavailable};

/// Query string of the list: `?limit=N&after=PROJ&state=late`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    state: Option<String>,
}

/// Known clients in `proj` order, paged with `limit` and `after` (the last `proj` of the
/// previous page), optionally only those in one `state` (the filter applies before paging).
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    if let Some(refused) = state.refusal(&req) {
        return refused;
    }
    let after = match query.after.as_deref().map(Proj::new).transpose() {
        Ok(after) => after,
        Err(e) => return ApiError::bad_request(format!("after: {e}")),
    };
    let wanted = match query.state.as_deref() {
        None => None,
        Some(name) => match ClientState::parse(name) {
            Some(wanted) => Some(wanted),
            None => {
                let known: Vec<&str> = ClientState::ALL.iter().map(|s| s.as_str()).collect();
                return ApiError::bad_request(format!(
                    "state: unknown state {name:?} (known: {})",
                    known.join(", ")
                ));
            }
        },
    };
    if wanted == Some(ClientState::Offline) {
        // Not in the registry any more: the history knows them (from the event log, off the
        // worker's event loop).
        let history = state.history.clone();
        let limit = query.limit;
        return match web::block(move || history.offline(after.as_ref(), limit)).await {
            Ok(clients) => HttpResponse::Ok().json(clients),
            Err(e) => ApiError::internal(format!("history: {e}")),
        };
    }
    if let Some(cluster) = &state.cluster {
        return super::cluster_api::list(cluster, &state.registry, after, query.limit, wanted)
            .await;
    }
    let listed = state
        .registry
        .list(List {
            after,
            limit: query.limit,
            state: wanted,
        })
        .await;
    match listed {
        Ok(clients) => HttpResponse::Ok().json(clients),
        Err(e) => unavailable(e),
    }
}

/// One client, or 404 if it is not online.
pub(crate) async fn get(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(refused) = state.refusal(&req) {
        return refused;
    }
    let proj = match path_proj(&path) {
        Ok(proj) => proj,
        Err(message) => return ApiError::bad_request(message),
    };
    if let Some(cluster) = &state.cluster {
        return super::cluster_api::get(cluster, &state.registry, proj).await;
    }
    match state.registry.get(proj.clone()).await {
        Ok(Some(client)) => HttpResponse::Ok().json(client),
        Ok(None) => ApiError::not_found(format!("client {proj} is not online")),
        Err(e) => unavailable(e),
    }
}

/// The server is shutting down: nothing can be said about its clients.
pub(crate) fn unavailable(e: Unavailable) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
        .json(ApiError {
            error: "unavailable",
            message: e.to_string(),
        })
}
