//! `GET /api/v1/openapi.json` against the real routes: every route mounted in
//! `src/http/mod.rs` is documented, every documented operation answers the real binary with a
//! documented status and media type, and JSON bodies have the documented shape.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;

use common::{BinServer, Client, EventStream, IO_TIMEOUT};
use serde_json::Value;

/// The document as the server serves it.
async fn document(server: &BinServer) -> Value {
    let response = server.get("/api/v1/openapi.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    response.json()
}

/// `(method, path)` of every route mounted by `http::configure`, read from its source.
fn mounted_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs"))
        .expect("read src/http/mod.rs");
    let mut routes = BTreeSet::new();
    for call in source.split(".route(").skip(1) {
        let path = call.split('"').nth(1).expect("a route path");
        let method = call
            .split("web::")
            .nth(1)
            .and_then(|rest| rest.split("()").next())
            .expect("a route method");
        routes.insert((method.to_owned(), path.to_owned()));
    }
    assert!(routes.len() >= 5, "routes found: {routes:?}");
    routes
}

/// `(method, path)` of every documented operation.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            routes.insert((method.clone(), path.clone()));
        }
    }
    routes
}

#[actix_rt::test]
async fn every_mounted_route_is_documented_and_nothing_else() {
    let server = BinServer::spawn(&[]);
    let doc = document(&server).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(mounted_routes(), documented_routes(&doc));
}

/// A `$ref` resolved against the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            resolve(doc, doc.pointer(pointer).expect("the reference exists"))
        }
        None => value,
    }
}

/// Checks `value` against the parts of JSON Schema the document uses: `type`, `required`,
/// `properties`, `items`, `enum`, `const`, `minimum`.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if let Some(kind) = schema["type"].as_str() {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => panic!("{at}: schema type {other} not handled"),
        };
        assert!(ok, "{at}: {value} is not a {kind}");
    }
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(allowed.contains(value), "{at}: {value} not in {allowed:?}");
    }
    if let Some(expected) = schema.get("const") {
        assert_eq!(value, expected, "{at}");
    }
    if let Some(minimum) = schema["minimum"].as_f64() {
        assert!(
            value.as_f64().is_some_and(|v| v >= minimum),
            "{at}: {value} < {minimum}"
        );
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap();
        assert!(
            value.get(key).is_some(),
            "{at}: no required {key} in {value}"
        );
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object())
    {
        for (key, item) in object {
            if let Some(property) = properties.get(key) {
                check(doc, property, item, &format!("{at}.{key}"));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"));
        }
    }
}

/// A raw `GET` with extra header lines; the status, the content type and the body.
fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    request(addr, "GET", path, headers)
}

/// A raw request without a body; the status, the content type and the body.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String, String) {
    request_with_body(addr, method, path, headers, "")
}

/// A raw `POST` of a JSON body; the status, the content type and the body.
fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String, String) {
    request_with_body(
        addr,
        "POST",
        path,
        "Content-Type: application/json\r\n",
        body,
    )
}

/// A raw request; the status, the content type and the body.
fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// Asserts that `status` and `content_type` are documented for `op`, and that a JSON body
/// has the documented shape.
fn assert_documented(doc: &Value, op: &Value, what: &str, answer: &(u16, String, String)) {
    let (status, content_type, body) = answer;
    let response = op["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{what}: status {status} is not documented ({body})"));
    let response = resolve(doc, response);
    let Some(content) = response["content"].as_object() else {
        assert!(
            body.is_empty(),
            "{what}: {status} documents no body: {body}"
        );
        return;
    };
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let documented = content
        .get(media)
        .unwrap_or_else(|| panic!("{what}: {status} is not documented as {media}"));
    if media == "application/json" {
        let value: Value = serde_json::from_str(body).expect("a JSON body");
        check(doc, &documented["schema"], &value, what);
    }
}

/// Fills `{proj}` with `proj`.
fn concrete(path: &str, proj: &str) -> String {
    path.replace("{proj}", proj)
}

#[actix_rt::test]
async fn every_operation_answers_with_a_documented_status() {
    let server = BinServer::spawn(&[]);
    let doc = document(&server).await;
    let mut client = Client::connect(server.tcp).await;
    client.heartbeat_timeout("P-17", 60_000).await;

    for (path, item) in doc["paths"].as_object().unwrap() {
        let op = &item["get"];
        if op.is_null() {
            continue;
        }
        let media_200: Vec<&String> = op["responses"]["200"]["content"]
            .as_object()
            .map(|c| c.keys().collect())
            .unwrap_or_default();
        if media_200.iter().any(|m| *m == "text/event-stream") {
            // A stream does not end: open it and check its head.
            EventStream::open(server.http).await;
            continue;
        }
        let answer = get(server.http, &concrete(path, "P-17"), "");
        assert_eq!(answer.0, 200, "GET {path}: {answer:?}");
        assert_documented(&doc, op, &format!("GET {path}"), &answer);

        // Parameters out of their documented range get a documented answer too.
        if path.contains("{proj}") {
            for proj in ["nobody", "%01", &"x".repeat(300)] {
                let answer = get(server.http, &concrete(path, proj), "");
                assert!(
                    matches!(answer.0, 400 | 404),
                    "GET {path} {proj}: {answer:?}"
                );
                assert_documented(&doc, op, &format!("GET {path} with {proj:?}"), &answer);
            }
        }
        for param in op["parameters"].as_array().into_iter().flatten() {
            if param["in"] != "query" {
                continue;
            }
            let name = param["name"].as_str().unwrap();
            for bad in ["", "-1", "%01"] {
                let answer = get(server.http, &format!("{path}?{name}={bad}"), "");
                assert_documented(&doc, op, &format!("GET {path}?{name}={bad}"), &answer);
            }
        }
        // Static files revalidate: 304 is documented where an ETag is sent.
        if op["responses"].get("304").is_some() {
            let etag = {
                let mut stream = std::net::TcpStream::connect(server.http).unwrap();
                write!(
                    stream,
                    "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut raw = String::new();
                stream.read_to_string(&mut raw).unwrap();
                raw.lines()
                    .find_map(|l| l.strip_prefix("etag: ").map(str::to_owned))
                    .expect("an ETag")
            };
            let answer = get(server.http, path, &format!("If-None-Match: {etag}\r\n"));
            assert_eq!(answer.0, 304, "GET {path} with its ETag: {answer:?}");
            assert_documented(&doc, op, &format!("GET {path} (304)"), &answer);
        }
    }

    // The writes (the pauses): a good request, and bad ones.
    for (path, item) in doc["paths"].as_object().unwrap() {
        let op = &item["post"];
        if op.is_null() {
            continue;
        }
        let good = match (path.contains("{proj}"), path.ends_with("/pause")) {
            (true, true) => r#"{"for":"1m"}"#,
            (true, false) => "{}",
            (false, true) => r#"{"proj":"P-*","for":"1m"}"#,
            (false, false) => r#"{"proj":"P-*"}"#,
        };
        let answer = post(server.http, &concrete(path, "P-17"), good);
        assert_eq!(answer.0, 200, "POST {path}: {answer:?}");
        assert_documented(&doc, op, &format!("POST {path}"), &answer);
        for bad in [
            r#"{"unknown":1}"#,
            "not json",
            "[null]",
            r#"{"proj":"P-*","for":"0s"}"#,
        ] {
            let answer = post(server.http, &concrete(path, "P-17"), bad);
            assert_eq!(answer.0, 400, "POST {path} {bad}: {answer:?}");
            assert_documented(&doc, op, &format!("POST {path} with {bad}"), &answer);
        }
        if path.contains("{proj}") {
            for proj in ["nobody", "%01"] {
                let answer = post(server.http, &concrete(path, proj), "");
                assert!(
                    matches!(answer.0, 400 | 404),
                    "POST {path} {proj}: {answer:?}"
                );
                assert_documented(&doc, op, &format!("POST {path} with {proj:?}"), &answer);
            }
        }
    }
}

#[actix_rt::test]
async fn with_a_token_protected_operations_answer_a_documented_401() {
    let server = BinServer::spawn_with(
        "127.0.0.1:0",
        &[
            ("HEARTWATCH__AUTH__HTTP_TOKEN", "openapi-test-token"),
            ("HEARTWATCH__AUTH__HTTP_ADMIN_TOKEN", "openapi-admin-token"),
        ],
        &[],
    );
    let doc = document(&server).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !item["post"].is_null() {
            // A write: 401 without a token, 403 with the read token (the admin token writes).
            let op = &item["post"];
            let answer = post(server.http, &concrete(path, "P-17"), r#"{"proj":"P-*"}"#);
            assert_eq!(answer.0, 401, "POST {path} without a token: {answer:?}");
            assert_documented(&doc, op, &format!("POST {path} without a token"), &answer);
            let answer = request_with_body(
                server.http,
                "POST",
                &concrete(path, "P-17"),
                "Authorization: Bearer openapi-test-token\r\n",
                "",
            );
            assert_eq!(answer.0, 403, "POST {path} with the read token: {answer:?}");
            assert_documented(
                &doc,
                op,
                &format!("POST {path} with the read token"),
                &answer,
            );
            continue;
        }
        let op = &item["get"];
        let open = op["security"].as_array().is_some_and(Vec::is_empty);
        let answer = get(server.http, &concrete(path, "P-17"), "");
        if open {
            assert_eq!(answer.0, 200, "GET {path} needs no token: {answer:?}");
        } else {
            assert_eq!(answer.0, 401, "GET {path} needs the token: {answer:?}");
        }
        assert_documented(&doc, op, &format!("GET {path} without a token"), &answer);
    }
}

#[actix_rt::test]
async fn other_methods_get_405_with_allow_and_unknown_paths_a_json_404() {
    let server = BinServer::spawn(&[]);
    let doc = document(&server).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let documented = item.as_object().unwrap();
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "TRACE"] {
            if documented.contains_key(&method.to_ascii_lowercase()) {
                continue;
            }
            let (status, content_type, body) =
                request(server.http, method, &concrete(path, "P-17"), "");
            assert_eq!(status, 405, "{method} {path}: {body}");
            assert_eq!(content_type, "application/json", "{method} {path}");
            let error: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(error["error"], "method_not_allowed");
            check(&doc, &doc["components"]["schemas"]["Error"], &error, path);
        }
    }
    let mut stream = std::net::TcpStream::connect(server.http).unwrap();
    write!(
        stream,
        "DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(
        raw.to_ascii_lowercase().contains("\r\nallow: get\r\n"),
        "{raw}"
    );

    for path in ["/nope", "/api/v1/clients/P-17/nothing", "/ui/other.js"] {
        let (status, content_type, body) = get(server.http, path, "");
        assert_eq!(
            (status, content_type.as_str()),
            (404, "application/json"),
            "{path}"
        );
        let error: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(error["error"], "not_found", "{path}");
    }
}
