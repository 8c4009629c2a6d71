//! `GET /metrics`: OpenMetrics for scrapers that ask for it, Prometheus text 0.0.4 otherwise.

use actix_web::http::header::{Accept, Header};
use actix_web::{web, HttpRequest, HttpResponse};

use super::ApiState;
use crate::metrics::Format;

/// Every metric, in the format the request's `Accept` prefers.
pub(crate) async fn metrics(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refused) = state.refusal(&req) {
        return refused;
    }
    let format = negotiate(&req);
    // The per-state counts are read from the registry now; a registry that is stopping
    // leaves them as its last scrape and its comings and goings left them.
    if let Ok(counts) = state.registry.count_states().await {
        state.metrics.set_states(&counts);
    }
    HttpResponse::Ok()
        .content_type(format.content_type())
        .body(state.metrics.render(format))
}

/// The format of the most preferred media range we can serve. Prometheus sends
/// `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`;
/// `curl` sends `*/*`. Without an `Accept` we can read, or one that names nothing we serve,
/// the answer is text 0.0.4, which every scraper understands.
fn negotiate(req: &HttpRequest) -> Format {
    let Ok(accept) = Accept::parse(req) else {
        return Format::PrometheusText;
    };
    // `ranked` keeps ranges refused with q=0; drop them first.
    let acceptable = Accept(
        accept
            .0
            .into_iter()
            .filter(|range| range.quality > actix_web::http::header::Quality::ZERO)
            .collect(),
    );
    acceptable
        .ranked()
        .iter()
        .find_map(served_as)
        .unwrap_or(Format::PrometheusText)
}

/// The format we answer `range` with, if we serve it.
fn served_as(range: &actix_web::mime::Mime) -> Option<Format> {
    let version = range.get_param("version").map(|v| v.as_str());
    match (range.type_().as_str(), range.subtype().as_str()) {
        ("application", "openmetrics-text") => {
            matches!(version, None | Some("1.0.0" | "0.0.1")).then_some(Format::OpenMetrics)
        }
        ("text", "plain") => {
            matches!(version, None | Some("0.0.4")).then_some(Format::PrometheusText)
        }
        ("text", "*") | ("*", "*") => Some(Format::PrometheusText),
        _ => None,
    }
}
