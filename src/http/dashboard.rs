//! `GET /` and `GET /ui/*`: the live dashboard, static files compiled into the binary.
//!
//! The files (in `dashboard/`) hold no data: the page reads `/api/v1/clients` and
//! `/api/v1/events` like any other client, with the bearer token when `auth.http_token` is
//! set, so they are served without one. Nothing is fetched from elsewhere (the
//! Content-Security-Policy forbids it), so the dashboard works offline and behind a firewall.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// One compiled-in file.
pub(crate) struct Asset {
    /// Where it is served.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// Every file of the dashboard, by path.
pub(crate) const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("dashboard/index.html"),
    },
    Asset {
        path: "/ui/dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/dashboard.css"),
    },
    Asset {
        path: "/ui/dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/dashboard.js"),
    },
];

/// Only this origin, no inline script or style, no framing: a client name that somehow held
/// markup could not run anything (the page writes data with `textContent` anyway).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The strong ETag of each asset (a hash of its bytes), computed once: a reload revalidates
/// with `If-None-Match` and gets a 304 until the binary changes.
fn etags() -> &'static [String; 3] {
    static ETAGS: OnceLock<[String; 3]> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS.map(|asset| {
            let digest = Sha256::digest(asset.body.as_bytes());
            format!("\"{}\"", hex::encode(&digest[..12]))
        })
    })
}

/// Serves the asset mounted at the request's path.
pub(crate) async fn asset(req: HttpRequest) -> HttpResponse {
    let Some(index) = ASSETS.iter().position(|a| a.path == req.path()) else {
        return HttpResponse::NotFound().finish();
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag.as_str()))
        // Revalidate every time: a new binary must never run with an old script.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        return response.finish();
    }
    response.content_type(asset.content_type).body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_that_are_served() {
        let page = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(page.contains(asset.path), "{} is not used", asset.path);
        }
        for reference in page.split(['"', '\'']).filter(|s| s.starts_with('/')) {
            assert!(
                ASSETS.iter().any(|a| a.path == reference),
                "the page refers to {reference}, which is not served"
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        let script = ASSETS[2].body;
        assert!(!script.contains("http://") && !script.contains("https://"));
        assert!(
            !script.contains("innerHTML"),
            "data is written as text only"
        );
    }

    #[test]
    fn etags_differ_per_asset() {
        let etags = etags();
        assert_ne!(etags[0], etags[1]);
        assert_ne!(etags[1], etags[2]);
        assert!(etags.iter().all(|e| e.starts_with('"') && e.ends_with('"')));
    }
}
