//! What a request that no route takes gets: `405 Method Not Allowed` (with `Allow`) on a path
//! that exists, for another method; a JSON `404` on any other path. Without it actix-web
//! answers both with an empty 404, which tells a client nothing (found by schemathesis, see
//! docs/reliability.md).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::ApiError;

/// The one method `path` (a route that exists) answers: `POST` for the pauses, `GET` for
/// every other route.
fn allowed(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').collect();
    let pause = matches!(
        segments.as_slice(),
        ["", "api", "v1", "pause" | "resume"] | ["", "api", "v1", "clients", _, "pause" | "resume"]
    );
    if pause {
        "POST"
    } else {
        "GET"
    }
}

/// The default service of the API's own server ([`super::start`]).
pub(crate) async fn fallback(req: HttpRequest) -> HttpResponse {
    if req.resource_map().has_resource(req.path()) {
        let allowed = allowed(req.path());
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allowed))
            .json(ApiError {
                error: "method_not_allowed",
                message: format!("{} {}: only {allowed} is allowed", req.method(), req.path()),
            });
    }
    ApiError::not_found(format!("no such path: {}", req.path()))
}
