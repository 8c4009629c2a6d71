//! `auth.http_token`: the HTTP API's reads require `Authorization: Bearer <token>`;
//! `/healthz` stays open.

mod common;

use std::time::Duration;

use common::{test_config, TestServer};
use heartwatch::config::AuthConfig;
use heartwatch::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-token";

/// The status line of `GET path` with the given `Authorization` header, if any.
async fn status(server: &TestServer, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(server.http).await.expect("connect");
    let header = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    // Read to the end, or, for the event stream that does not end, until it goes quiet.
    let mut response = Vec::new();
    let deadline = tokio::time::Instant::now() + common::IO_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(300), stream.read_buf(&mut response)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) if !response.is_empty() => break,
            Err(_) => {}
        }
    }
    assert!(!response.is_empty(), "empty response");
    let text = String::from_utf8_lossy(&response).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
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
