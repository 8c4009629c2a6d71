//! `auth.http_token`: the HTTP API's reads require `Authorization: Bearer <token>`;
//! `/healthz` stays open.

mod common;

use common::{test_config, TestServer};
use heartwatch::config::AuthConfig;
use heartwatch::Builder;

const TOKEN: &str = "s3cret-token";

/// The status and the body (empty for the event stream, which does not end) of `GET path`
/// with the given `Authorization` header, if any; header names are lowercase in the text.
async fn status(server: &TestServer, path: &str, authorization: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    let response = server.get_with(path, &headers).await;
    let head: String = response
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\n"))
        .collect();
    (response.status, format!("{head}\n{}", response.body))
}

async fn server_with_token() -> TestServer {
    let auth = AuthConfig {
        http_token: TOKEN.into(),
        ..AuthConfig::default()
    };
    TestServer::start_with(Builder::new(test_config()).auth(auth)).await
}

#[actix_rt::test]
async fn reads_need_the_bearer_token() {
    let server = server_with_token().await;
    let good = format!("Bearer {TOKEN}");
    for path in [
        "/api/v1/clients",
        "/api/v1/clients/P-1",
        "/metrics",
        "/api/v1/events",
    ] {
        let (code, text) = status(&server, path, None).await;
        assert_eq!(code, 401, "{path} without a token: {text}");
        assert!(text.contains("\"error\":\"unauthorized\""), "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{text}"
        );
        let (code, _) = status(&server, path, Some("Bearer wrong-token")).await;
        assert_eq!(code, 401, "{path} with a wrong token");
        let (code, _) = status(&server, path, Some(TOKEN)).await;
        assert_eq!(code, 401, "{path} with the token but no Bearer scheme");
        let (code, text) = status(&server, path, Some(&good)).await;
        let expected = if path == "/api/v1/clients/P-1" {
            404
        } else {
            200
        };
        assert_eq!(code, expected, "{path} with the token: {text}");
    }
    let (code, _) = status(&server, "/healthz", None).await;
    assert_eq!(code, 200, "health checks need no token");
    server.stop().await;
}

#[actix_rt::test]
async fn without_a_token_configured_reads_are_open() {
    let server = TestServer::start_default().await;
    let (code, _) = status(&server, "/api/v1/clients", None).await;
    assert_eq!(code, 200);
    server.stop().await;
}

#[test]
fn the_token_is_never_printed_with_the_config() {
    let auth = AuthConfig {
        http_token: TOKEN.into(),
        ..AuthConfig::default()
    };
    assert!(!format!("{auth:?}").contains(TOKEN));
}
