//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of this API.
//!
//! A static document, compiled in. `tests/openapi.rs` keeps it honest: every route mounted in
//! [`super::configure`] is documented, and every documented operation answers the real server
//! with a documented status.

use actix_web::HttpResponse;

/// The document (`src/http/openapi.json`).
pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

/// Serves the document. It holds no data, so it needs no token.
pub(crate) async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache"))
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")));
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }
}
