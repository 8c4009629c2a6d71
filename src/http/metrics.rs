//! `GET /metrics`: Prometheus text format.

use actix_web::{web, HttpResponse};

use super::ApiState;

/// Every metric, in the Prometheus text exposition format.
pub(crate) async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
