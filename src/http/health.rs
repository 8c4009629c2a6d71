//! `GET /healthz`.

use actix_web::HttpResponse;

/// 200 while the server runs.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}
