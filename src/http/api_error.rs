//! The JSON error every endpoint of the API answers with: `{"error": code, "message": text}`.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use crate::protocol::Proj;

/// A JSON error body: `{"error":"not_found","message":"..."}`.
#[derive(Debug, Serialize)]
pub(crate) struct ApiError {
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    /// A response of `status` with this body.
    pub(crate) fn respond(
        status: StatusCode,
        error: &'static str,
        message: impl Into<String>,
    ) -> HttpResponse {
        HttpResponse::build(status).json(ApiError {
            error,
            message: message.into(),
        })
    }

    /// `400 bad_request`.
    pub(crate) fn bad_request(message: impl Into<String>) -> HttpResponse {
        Self::respond(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// `404 not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> HttpResponse {
        Self::respond(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `500 internal`.
    pub(crate) fn internal(message: impl Into<String>) -> HttpResponse {
        Self::respond(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// The `{proj}` of a request's path, or the message of the `400` that answers a bad one.
pub(crate) fn path_proj(path: &str) -> Result<Proj, String> {
    Proj::new(path).map_err(|e| format!("proj: {e}"))
}
