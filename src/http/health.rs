//! `GET /healthz`.

use actix_web::{web, HttpResponse};

use super::ApiState;

/// 200 while the server runs; in cluster mode, 503 with a JSON body naming the cause once
/// Redis has not answered for longer than `cluster.dead_after`.
pub(crate) async fn healthz(state: web::Data<ApiState>) -> HttpResponse {
    if let Some(cluster) = &state.cluster {
        return super::cluster_api::health(cluster);
    }
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}
