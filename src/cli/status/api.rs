//! The HTTP API as `heartwatch status` reads it (awc): the client list, one client, its
//! history, and the event stream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use heartwatch::tls::ClientTls;

/// Clients read per request of the list.
const PAGE: usize = 1000;

/// How long a request may take to answer (the event stream's body has no limit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the API could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// `--http` is not an address or URL.
    #[error("--http {0:?}: expected HOST:PORT or an http:// or https:// URL")]
    BadAddress(String),
    /// The `--ca` file cannot be used.
    #[error("{0}")]
    Tls(#[from] heartwatch::tls::TlsError),
    /// No answer (connection refused, timeout, TLS failure...).
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// 401: a token is needed, or the one given is wrong.
    #[error("{url}: 401 unauthorized: pass the API token with --token or HEARTWATCH_HTTP_TOKEN")]
    Unauthorized {
        /// What was asked.
        url: String,
    },
    /// Any other unexpected answer.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// What was asked.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A body that is not the JSON expected.
    #[error("{url}: unexpected answer: {message}")]
    Body {
        /// What was asked.
        url: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The server's HTTP API.
pub(crate) struct Api {
    client: awc::Client,
    base: String,
}

impl Api {
    /// The API at `http` (`HOST:PORT` or a URL), sending `token` if given, trusting `ca` (or
    /// the system's roots) for `https://`. Must be called inside an actix System.
    pub(crate) fn new(
        http: &str,
        token: Option<&str>,
        ca: Option<&Path>,
    ) -> Result<Self, ApiError> {
        let base = if http.starts_with("http://") || http.starts_with("https://") {
            http.trim_end_matches('/').to_owned()
        } else if !http.is_empty() && !http.contains('/') {
            format!("http://{http}")
        } else {
            return Err(ApiError::BadAddress(http.to_owned()));
        };
        let uri: awc::http::Uri = base
            .parse()
            .map_err(|_| ApiError::BadAddress(http.to_owned()))?;
        let host = uri
            .host()
            .ok_or_else(|| ApiError::BadAddress(http.to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let mut connector = awc::Connector::new().timeout(REQUEST_TIMEOUT);
        if uri.scheme_str() == Some("https") {
            let config = match ca {
                Some(ca) => {
                    let mut config = ClientTls::from_ca_file(ca, host)?.config.as_ref().clone();
                    config.alpn_protocols = vec![b"http/1.1".to_vec()];
                    Arc::new(config)
                }
                None => heartwatch::tls::https_client_config(Path::new(""))?,
            };
            connector = connector.rustls_0_23(config);
        }
        let mut builder = awc::Client::builder()
            .connector(connector)
            .timeout(REQUEST_TIMEOUT);
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            builder = builder.bearer_auth(token);
        }
        Ok(Self {
            client: builder.finish(),
            base,
        })
    }

    /// `GET path`: the JSON body of a 200, `None` for a 404.
    async fn get(&self, path: &str) -> Result<Option<Value>, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .client
            .get(&url)
            .insert_header(("Accept", "application/json"))
            .send()
            .await
            .map_err(|e| ApiError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = response
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| ApiError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
        check(&url, status, &body)?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ApiError::Body {
                url,
                message: e.to_string(),
            })
    }

    /// Every client, in `proj` order, read a page at a time.
    pub(crate) async fn clients(&self) -> Result<Vec<Value>, ApiError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/clients?limit={PAGE}");
            if let Some(after) = &after {
                path.push_str("&after=");
                path.push_str(&percent_encode(after));
            }
            let page = match self.get(&path).await? {
                Some(Value::Array(page)) => page,
                _ => {
                    return Err(ApiError::Body {
                        url: format!("{}{path}", self.base),
                        message: "not a list of clients".into(),
                    })
                }
            };
            let full = page.len() == PAGE;
            after = page
                .last()
                .and_then(|c| c["proj"].as_str())
                .map(str::to_owned);
            all.extend(page);
            if !full || after.is_none() {
                return Ok(all);
            }
        }
    }

    /// One client, or `None` if the server does not know it.
    pub(crate) async fn client(&self, proj: &str) -> Result<Option<Value>, ApiError> {
        self.get(&format!("/api/v1/clients/{}", percent_encode(proj)))
            .await
    }

    /// A client's history, or `None` where the server has no history endpoint (or no
    /// history of this client).
    pub(crate) async fn history(&self, proj: &str) -> Result<Option<Value>, ApiError> {
        self.get(&format!("/api/v1/clients/{}/history", percent_encode(proj)))
            .await
    }

    /// The event stream: each item is one event's JSON, or `Err` when the stream broke or
    /// the server said the reader fell behind (`event: lagged`). The stream is subscribed
    /// when this returns.
    pub(crate) async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<Value, String>> + Unpin, ApiError> {
        let url = format!("{}/api/v1/events", self.base);
        let response = self
            .client
            .get(&url)
            .insert_header(("Accept", "text/event-stream"))
            .send()
            .await
            .map_err(|e| ApiError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
        check(&url, response.status(), b"")?;
        let blocks = SseBlocks::default();
        Ok(Box::pin(futures_util::stream::unfold(
            (response, blocks, false),
            |(mut response, mut blocks, ended)| async move {
                if ended {
                    return None;
                }
                loop {
                    if let Some(block) = blocks.next_block() {
                        match parse_block(&block) {
                            Some(Ok(event)) => return Some((Ok(event), (response, blocks, false))),
                            Some(Err(e)) => return Some((Err(e), (response, blocks, true))),
                            None => continue,
                        }
                    }
                    match response.next().await {
                        Some(Ok(chunk)) => blocks.push(&chunk),
                        Some(Err(e)) => {
                            return Some((Err(e.to_string()), (response, blocks, true)))
                        }
                        None => {
                            return Some((
                                Err("the server closed the event stream".into()),
                                (response, blocks, true),
                            ))
                        }
                    }
                }
            },
        )))
    }
}

/// An error for any status but 200.
fn check(url: &str, status: StatusCode, body: &[u8]) -> Result<(), ApiError> {
    match status {
        StatusCode::OK => Ok(()),
        StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized {
            url: url.to_owned(),
        }),
        other => Err(ApiError::Status {
            url: url.to_owned(),
            status: other.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        }),
    }
}

/// `proj` as a path segment or query value: everything but unreserved characters escaped.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Splits a `text/event-stream` body into blocks (separated by a blank line).
#[derive(Default)]
struct SseBlocks {
    buffer: BytesMut,
}

impl SseBlocks {
    fn push(&mut self, chunk: &Bytes) {
        self.buffer.extend_from_slice(chunk);
    }

    fn next_block(&mut self) -> Option<String> {
        let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
        let block = self.buffer.split_to(end + 2);
        Some(String::from_utf8_lossy(&block[..end]).replace('\r', ""))
    }
}

/// One block: `None` for a comment or a block without data, `Some(Err)` for
/// `event: lagged`, else the event's JSON.
fn parse_block(block: &str) -> Option<Result<Value, String>> {
    let mut name = "message";
    let mut data = String::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim();
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if name == "lagged" {
        return Some(Err(format!(
            "fell behind the event stream (lagged: {data})"
        )));
    }
    if name != "message" || data.is_empty() {
        return None;
    }
    serde_json::from_str(&data).ok().map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_split_at_blank_lines_across_chunks() {
        let mut blocks = SseBlocks::default();
        blocks.push(&Bytes::from_static(
            b": heartwatch events\n\ndata: {\"event\":",
        ));
        assert_eq!(blocks.next_block().as_deref(), Some(": heartwatch events"));
        assert_eq!(blocks.next_block(), None);
        blocks.push(&Bytes::from_static(b"\"online\"}\n\n"));
        let block = blocks.next_block().unwrap();
        assert_eq!(
            parse_block(&block).unwrap().unwrap(),
            serde_json::json!({"event": "online"})
        );
        assert!(parse_block(": comment").is_none());
        assert!(parse_block("event: lagged\ndata: {\"missed\":3}")
            .unwrap()
            .is_err());
    }

    #[test]
    fn projs_are_escaped_in_urls() {
        assert_eq!(percent_encode("P-17"), "P-17");
        assert_eq!(percent_encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn an_address_without_a_scheme_is_http() {
        actix_rt::System::new().block_on(async {
            assert_eq!(
                Api::new("127.0.0.1:7701", None, None).unwrap().base,
                "http://127.0.0.1:7701"
            );
            assert_eq!(
                Api::new("https://hw.example:7701/", None, None)
                    .unwrap()
                    .base,
                "https://hw.example:7701"
            );
            assert!(Api::new("ftp://x/y", None, None).is_err());
            assert!(Api::new("", None, None).is_err());
        });
    }
}
