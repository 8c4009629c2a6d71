//! `GET /metrics`: Prometheus text format.

use actix_web::{web, HttpRequest, HttpResponse};

use super::ApiState;

/// Every metric, in the Prometheus text exposition format.
pub(crate) async fn metrics(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refused) = state.refusal(&req) {
        return refused;
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
