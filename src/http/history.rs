//! `GET /api/v1/clients/{proj}/history`.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{path_proj, ApiError, ApiState};

/// A client's last events (with their reasons and evidence), its heartbeat interval statistics
/// and its uptime over the last hour and day, whether it is online or not. 404 only for a
/// proj not seen within `history.retention`.
pub(crate) async fn history(
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
    let live = match state.registry.get(proj.clone()).await {
        Ok(live) => live,
        Err(e) => return super::clients::unavailable(e),
    };
    let intervals = live.as_ref().and_then(|c| c.intervals);
    let history = state.history.clone();
    let asked = proj.clone();
    // The events are read from the event log: off the worker's event loop.
    let found = web::block(move || history.get(&asked, live.as_ref(), intervals)).await;
    match found {
        Ok(Some(history)) => HttpResponse::Ok().json(history),
        Ok(None) => ApiError::not_found(format!(
            "client {proj} was not seen within history.retention"
        )),
        Err(e) => ApiError::internal(format!("history: {e}")),
    }
}
