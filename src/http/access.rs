//! Who may read and who may change state through the HTTP API.
//!
//! Two bearer tokens, both optional: `auth.http_token` lets a request read, and
//! `auth.http_admin_token` lets it read and write (pause, resume, and any later endpoint that
//! changes state). They are separate so that a dashboard, a Prometheus scraper or a
//! `heartwatch status` in a health check can hold a token that cannot silence an alert.
//!
//! | configured | reads need | writes need |
//! |---|---|---|
//! | neither | nothing | nothing (the API is open: keep it on loopback) |
//! | `http_token` only | `http_token` | `http_token` (one token for everything, as before read and write tokens were separate) |
//! | `http_admin_token` only | nothing | `http_admin_token` |
//! | both | either token | `http_admin_token` |
//!
//! Tokens are compared in constant time, so neither can be guessed byte by byte.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};

/// The two tokens, borrowed from the [`ApiState`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tokens<'a> {
    /// `auth.http_token`, if set.
    pub read: Option<&'a str>,
    /// `auth.http_admin_token`, if set.
    pub admin: Option<&'a str>,
}

/// Whose token a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// `auth.http_admin_token`.
    Admin,
    /// `auth.http_token`.
    Reader,
    /// No token, or one that matches neither.
    Nobody,
}

/// Whether `presented` equals `expected`, in time independent of where they differ.
fn same(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

impl Tokens<'_> {
    fn holder(self, presented: Option<&str>) -> Holder {
        let presented = presented.unwrap_or("");
        // Both comparisons always run, so the answer's timing does not tell which token a
        // request came close to.
        let admin = self.admin.is_some_and(|t| same(presented, t));
        let reader = self.read.is_some_and(|t| same(presented, t));
        match (admin, reader) {
            (true, _) => Holder::Admin,
            (false, true) => Holder::Reader,
            (false, false) => Holder::Nobody,
        }
    }

    /// The 401 answer if a request presenting `presented` may not read; `None` if it may.
    pub(crate) fn read_refusal(self, presented: Option<&str>) -> Option<HttpResponse> {
        if self.read.is_none() || self.holder(presented) != Holder::Nobody {
            return None;
        }
        Some(unauthorized(
            "a valid bearer token is required (auth.http_token)",
        ))
    }

    /// The answer refusing a write by a request presenting `presented`, or `None` if it may
    /// write.
    pub(crate) fn write_refusal(self, presented: Option<&str>) -> Option<HttpResponse> {
        let holder = self.holder(presented);
        match (self.read, self.admin) {
            (None, None) => None,
            (_, Some(_)) if holder == Holder::Admin => None,
            // One token: it is the key to everything.
            (Some(_), None) if holder == Holder::Reader => None,
            (Some(_), None) => Some(unauthorized(
                "a valid bearer token is required (auth.http_token)",
            )),
            _ if holder == Holder::Reader => Some(forbidden(
                "this token may only read; writes need auth.http_admin_token",
            )),
            _ => Some(unauthorized(
                "a valid bearer token is required (auth.http_admin_token)",
            )),
        }
    }
}

impl ApiState {
    fn tokens(&self) -> Tokens<'_> {
        Tokens {
            read: self.token.as_deref(),
            admin: self.admin_token.as_deref(),
        }
    }

    /// The 401 answer if the request may not read; `None` if it may.
    pub(crate) fn refusal(&self, req: &HttpRequest) -> Option<HttpResponse> {
        self.tokens().read_refusal(bearer(req))
    }

    /// The answer refusing a request that would change state, or `None` if it may: 401
    /// without a valid token, 403 with `auth.http_token` when `auth.http_admin_token` is set
    /// (the read token then only reads).
    ///
    /// Every endpoint that changes state calls this first. It is public so that an
    /// application mounting its own write routes next to [`super::configure`] can protect
    /// them with the same tokens.
    pub fn write_refusal(&self, req: &HttpRequest) -> Option<HttpResponse> {
        self.tokens().write_refusal(bearer(req))
    }
}

fn unauthorized(message: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
        .json(ApiError {
            error: "unauthorized",
            message: message.into(),
        })
}

fn forbidden(message: &str) -> HttpResponse {
    HttpResponse::Forbidden().json(ApiError {
        error: "forbidden",
        message: message.into(),
    })
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::TestRequest;

    use super::*;

    const OK: StatusCode = StatusCode::OK;
    const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
    const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;

    fn tokens(read: Option<&'static str>, admin: Option<&'static str>) -> Tokens<'static> {
        Tokens { read, admin }
    }

    fn read(t: Tokens<'_>, presented: Option<&str>) -> StatusCode {
        t.read_refusal(presented).map_or(OK, |r| r.status())
    }

    fn write(t: Tokens<'_>, presented: Option<&str>) -> StatusCode {
        t.write_refusal(presented).map_or(OK, |r| r.status())
    }

    #[test]
    fn without_tokens_everyone_reads_and_writes() {
        let t = tokens(None, None);
        assert_eq!(read(t, None), OK);
        assert_eq!(write(t, None), OK);
        assert_eq!(write(t, Some("anything")), OK);
    }

    #[test]
    fn with_only_the_http_token_it_reads_and_writes() {
        let t = tokens(Some("reader"), None);
        assert_eq!(read(t, None), UNAUTHORIZED);
        assert_eq!(read(t, Some("wrong")), UNAUTHORIZED);
        assert_eq!(read(t, Some("reader")), OK);
        assert_eq!(write(t, None), UNAUTHORIZED);
        assert_eq!(write(t, Some("wrong")), UNAUTHORIZED);
        assert_eq!(write(t, Some("reader")), OK);
    }

    #[test]
    fn with_only_the_admin_token_reads_are_open_and_writes_need_it() {
        let t = tokens(None, Some("admin"));
        assert_eq!(read(t, None), OK);
        assert_eq!(read(t, Some("wrong")), OK);
        assert_eq!(read(t, Some("admin")), OK);
        assert_eq!(write(t, None), UNAUTHORIZED);
        assert_eq!(write(t, Some("wrong")), UNAUTHORIZED);
        assert_eq!(write(t, Some("admin")), OK);
    }

    #[test]
    fn with_both_the_admin_token_reads_and_writes_and_the_read_token_only_reads() {
        let t = tokens(Some("reader"), Some("admin"));
        assert_eq!(read(t, None), UNAUTHORIZED);
        assert_eq!(read(t, Some("wrong")), UNAUTHORIZED);
        assert_eq!(read(t, Some("reader")), OK);
        assert_eq!(read(t, Some("admin")), OK);
        assert_eq!(write(t, None), UNAUTHORIZED);
        assert_eq!(write(t, Some("wrong")), UNAUTHORIZED);
        assert_eq!(write(t, Some("reader")), FORBIDDEN);
        assert_eq!(write(t, Some("admin")), OK);
    }

    #[test]
    fn a_token_is_matched_whole() {
        let t = tokens(Some("reader"), Some("admin"));
        assert_eq!(read(t, Some("reade")), UNAUTHORIZED);
        assert_eq!(read(t, Some("reader2")), UNAUTHORIZED);
        assert_eq!(write(t, Some("admi")), UNAUTHORIZED);
        assert_eq!(write(t, Some("")), UNAUTHORIZED);
    }

    #[test]
    fn only_a_bearer_authorization_header_counts() {
        let basic = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic admin"))
            .to_http_request();
        assert_eq!(bearer(&basic), None);
        let good = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer admin"))
            .to_http_request();
        assert_eq!(bearer(&good), Some("admin"));
        assert_eq!(bearer(&TestRequest::default().to_http_request()), None);
    }

    fn body_of(response: HttpResponse) -> String {
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .expect("a ready body")
            .expect("bytes");
        String::from_utf8_lossy(&body).into_owned()
    }

    #[test]
    fn refusals_are_json_and_name_the_key_that_is_needed() {
        let refused = tokens(Some("reader"), Some("admin"))
            .write_refusal(Some("reader"))
            .expect("refused");
        let text = body_of(refused);
        assert!(text.contains("\"error\":\"forbidden\""), "{text}");
        assert!(text.contains("auth.http_admin_token"), "{text}");

        let refused = tokens(None, Some("admin"))
            .write_refusal(None)
            .expect("refused");
        assert_eq!(
            refused.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
        let text = body_of(refused);
        assert!(text.contains("\"error\":\"unauthorized\""), "{text}");
        assert!(text.contains("auth.http_admin_token"), "{text}");
    }
}
