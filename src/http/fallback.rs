//! What a request that no route takes gets: `405 Method Not Allowed` (with `Allow`) on a path
//! that exists, for another method; a JSON `404` on any other path. Without it actix-web
//! answers both with an empty 404, which tells a client nothing (found by schemathesis, see
//! docs/reliability.md).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::ApiError;

/// Every route of the API answers `GET` only.
const ALLOWED: &str = "GET";

/// The default service of the API's own server ([`super::start`]).
pub(crate) async fn fallback(req: HttpRequest) -> HttpResponse {
    if req.resource_map().has_resource(req.path()) {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, ALLOWED))
            .json(ApiError {
                error: "method_not_allowed",
                message: format!("{} {}: only {ALLOWED} is allowed", req.method(), req.path()),
            });
    }
    HttpResponse::NotFound().json(ApiError {
        error: "not_found",
        message: format!("no such path: {}", req.path()),
    })
}
