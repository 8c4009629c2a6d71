//! `GET /metrics` in the format the scraper asks for: OpenMetrics 1.0.0 when `Accept` prefers
//! it (as Prometheus does), the Prometheus text format 0.0.4 otherwise. The two differ where it
//! matters: an OpenMetrics counter family `x` has the sample `x_total` and the body ends with
//! `# EOF`, while in 0.0.4 the family and the sample are both `x_total`. A body parsed with the
//! other format's parser loses the counters' types. Each body is checked here against its
//! format's rules, and by promtool where it is installed.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};

use common::outside::outside_program;
use common::{event_kind, Client, EventStream, TestServer, IO_TIMEOUT};
use tokio::time::Instant;

/// What Prometheus (2.x, default scrape protocols) sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,\
    text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

const PROMTOOL_INSTALL: &str = "apt-get install --no-install-recommends prometheus \
    (the Debian package that provides /usr/bin/promtool)";

/// A server whose counters, gauges, labelled families and histograms all have something in
/// them, and its client, whose connection stays open so that the figures hold still between
/// scrapes.
async fn busy_server() -> (TestServer, Client) {
    let server = TestServer::start_default().await;
    let mut events = server.event_log();
    let mut client = server.client().await;
    client.heartbeat("M-1").await;
    client.heartbeat("M-2").await;
    client.offline("M-2").await;
    client.send("{oops").await;
    client.recv().await;
    // A second heartbeat: one heartbeat interval.
    client.heartbeat("M-1").await;
    // A timeout: one detection overshoot.
    client.heartbeat_timeout("M-3", 100).await;
    let deadline = Instant::now() + IO_TIMEOUT;
    while event_kind(&events.next().await) != "offline(timeout)" {
        assert!(Instant::now() < deadline, "M-3 did not time out");
    }
    (server, client)
}

/// The body of `GET /metrics` with `accept` (none if `None`), after checking its content type
/// is `expected`.
async fn scrape(server: &TestServer, accept: Option<&str>, expected: &str) -> String {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    let response = server.get_with("/metrics", &headers).await;
    assert_eq!(response.status, 200, "Accept {accept:?}: {response:?}");
    assert_eq!(
        response.header("content-type"),
        Some(expected),
        "Accept {accept:?}"
    );
    response.body
}

#[actix_rt::test]
async fn prometheus_gets_openmetrics_and_every_other_scraper_text_0_0_4() {
    let (server, _client) = busy_server().await;
    let cases: [(Option<&str>, &str); 12] = [
        (Some(PROMETHEUS_ACCEPT), OPENMETRICS),
        (Some("application/openmetrics-text"), OPENMETRICS),
        (
            Some("application/openmetrics-text;version=0.0.1"),
            OPENMETRICS,
        ),
        (
            Some("text/plain;q=0.5, application/openmetrics-text; version=1.0.0; q=0.9"),
            OPENMETRICS,
        ),
        (None, TEXT_0_0_4),
        (Some("*/*"), TEXT_0_0_4),
        (Some("text/plain"), TEXT_0_0_4),
        (Some("text/plain;version=0.0.4;q=0.9,*/*;q=0.1"), TEXT_0_0_4),
        // A version we do not speak, a refused one, a type we do not serve: text.
        (
            Some("application/openmetrics-text;version=2.0.0"),
            TEXT_0_0_4,
        ),
        (
            Some("application/openmetrics-text;q=0,*/*;q=0.1"),
            TEXT_0_0_4,
        ),
        (Some("application/json"), TEXT_0_0_4),
        (Some("not a media type"), TEXT_0_0_4),
    ];
    for (accept, expected) in cases {
        let body = scrape(&server, accept, expected).await;
        let problems = if expected == OPENMETRICS {
            openmetrics_problems(&body)
        } else {
            text_0_0_4_problems(&body)
        };
        assert!(
            problems.is_empty(),
            "Accept {accept:?}: not valid {expected}:\n{}\n\nbody:\n{body}",
            problems.join("\n")
        );
    }
    server.stop().await;
}

#[actix_rt::test]
async fn each_format_breaks_the_other_formats_rules() {
    // The checks below can fail: each body, read as the other format, breaks its rules (the
    // bug this negotiation fixed was an OpenMetrics body served as 0.0.4).
    let (server, _client) = busy_server().await;
    let openmetrics = scrape(&server, Some(PROMETHEUS_ACCEPT), OPENMETRICS).await;
    let text = scrape(&server, None, TEXT_0_0_4).await;
    let as_text = text_0_0_4_problems(&openmetrics);
    assert!(
        as_text.iter().any(|p| p.contains("# EOF")) && as_text.iter().any(|p| p.contains("_total")),
        "{as_text:?}"
    );
    let as_openmetrics = openmetrics_problems(&text);
    assert!(
        as_openmetrics.iter().any(|p| p.contains("# EOF"))
            && as_openmetrics.iter().any(|p| p.contains("_total")),
        "{as_openmetrics:?}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn both_bodies_carry_the_same_series() {
    let (server, _client) = busy_server().await;
    let openmetrics = scrape(&server, Some(PROMETHEUS_ACCEPT), OPENMETRICS).await;
    let text = scrape(&server, None, TEXT_0_0_4).await;
    // Process figures move between two scrapes; every other series is the same (a bucket's
    // bound is written `1.0` in OpenMetrics and `1` in 0.0.4: compared as numbers).
    let series = |body: &str| -> Vec<String> {
        let mut lines: Vec<String> = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("process_"))
            .map(canonical_bound)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(series(&openmetrics), series(&text));
    for needle in [
        "heartwatch_heartbeats_total 4",
        "heartwatch_offline_total{reason=\"offline\"} 1",
        "heartwatch_offline_total{reason=\"timeout\"} 1",
        "heartwatch_heartbeat_interval_seconds_count 1",
        "heartwatch_detection_overshoot_seconds_count 1",
        "heartwatch_frame_errors_total{code=\"bad_json\"} 1",
        "heartwatch_clients{state=\"online\"} 1",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
    server.stop().await;
}

/// `line` with its `le` label's value written as Rust writes the number.
fn canonical_bound(line: &str) -> String {
    let Some((before, rest)) = line.split_once("le=\"") else {
        return line.to_owned();
    };
    let (bound, after) = rest.split_once('"').expect("a closed le label");
    let bound = match bound {
        "+Inf" => "+Inf".to_owned(),
        _ => bound
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("le={bound:?}: {e}"))
            .to_string(),
    };
    format!("{before}le=\"{bound}\"{after}")
}

/// The histogram `family` of a body: its `(le, cumulative count)` buckets in order, its
/// `_count` and its `_sum`.
fn histogram(body: &str, family: &str) -> (Vec<(f64, u64)>, u64, f64) {
    let mut buckets = Vec::new();
    let (mut count, mut sum) = (None, None);
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Some(labels) = name.strip_prefix(&format!("{family}_bucket{{le=\"")) {
            let bound = labels.trim_end_matches("\"}");
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().expect("a numeric bound")
            };
            buckets.push((bound, value.parse().expect("an integer count")));
        } else if name == format!("{family}_count") {
            count = Some(value.parse().expect("an integer count"));
        } else if name == format!("{family}_sum") {
            sum = Some(value.parse().expect("a number"));
        }
    }
    let count = count.unwrap_or_else(|| panic!("no {family}_count in\n{body}"));
    let sum = sum.unwrap_or_else(|| panic!("no {family}_sum in\n{body}"));
    (buckets, count, sum)
}

#[actix_rt::test]
async fn histograms_are_cumulative_and_end_with_their_count() {
    let (server, _client) = busy_server().await;
    let bodies = [
        scrape(&server, Some(PROMETHEUS_ACCEPT), OPENMETRICS).await,
        scrape(&server, None, TEXT_0_0_4).await,
    ];
    server.stop().await;
    for body in &bodies {
        for (family, bound) in [
            // A second heartbeat right after the first: well under a second.
            ("heartwatch_heartbeat_interval_seconds", 1.0),
            // A timer of 100 ms declared within seconds even on a loaded machine.
            ("heartwatch_detection_overshoot_seconds", 10.0),
        ] {
            let (buckets, count, sum) = histogram(body, family);
            assert!(buckets.len() > 5, "{family}: {buckets:?}");
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family}: bounds rise and counts never fall: {buckets:?}"
            );
            assert_eq!(buckets.last(), Some(&(f64::INFINITY, count)), "{family}");
            assert_eq!(count, 1, "{family}: one observation");
            assert!((0.0..bound).contains(&sum), "{family}: sum {sum}");
            let first_with = buckets.iter().find(|(_, n)| *n == 1).expect("a bucket");
            assert!(
                first_with.0 >= sum,
                "{family}: the observation {sum} is counted in a bucket it fits, {first_with:?}"
            );
        }
    }
}

#[actix_rt::test]
async fn build_info_names_the_version() {
    let server = TestServer::start_default().await;
    let series = format!(
        "heartwatch_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(server.metric(&series).await, 1.0);
    let openmetrics = scrape(&server, Some(PROMETHEUS_ACCEPT), OPENMETRICS).await;
    assert!(
        openmetrics.contains("# TYPE heartwatch_build_info gauge\n"),
        "{openmetrics}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn event_stream_subscribers_are_counted_while_their_response_is_open() {
    const SUBSCRIBERS: &str = "heartwatch_event_stream_subscribers";
    let server = TestServer::start_default().await;
    assert_eq!(server.metric(SUBSCRIBERS).await, 0.0);
    let mut first = EventStream::open(server.http).await;
    let second = EventStream::open(server.http).await;
    assert_eq!(server.metric(SUBSCRIBERS).await, 2.0);

    // A reader that goes away is no longer counted once a write to it fails (actix-web
    // notices a closed connection only by writing to it: usually at the second event, the
    // first one going into the socket before the peer's reset comes back); the other reader
    // is served all along.
    drop(second);
    let mut events = server.event_log();
    let mut client = server.client().await;
    let deadline = Instant::now() + IO_TIMEOUT;
    for beat in 0.. {
        let proj = format!("S-{beat}");
        client.heartbeat(&proj).await;
        assert_eq!(event_kind(&events.next().await), "online");
        assert_eq!(first.next_data().await["proj"], proj.as_str());
        if server.metric(SUBSCRIBERS).await == 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream is still counted after {beat} events"
        );
    }
    drop(first);
    server.stop().await;
}

#[actix_rt::test]
async fn promtool_accepts_both_bodies() {
    let Some(promtool) = outside_program("promtool", PROMTOOL_INSTALL) else {
        return;
    };
    let (server, _client) = busy_server().await;
    let text = scrape(&server, None, TEXT_0_0_4).await;
    let openmetrics = scrape(&server, Some(PROMETHEUS_ACCEPT), OPENMETRICS).await;
    server.stop().await;

    // `promtool check metrics` parses and lints the text format 0.0.4 (it has no OpenMetrics
    // mode: given the OpenMetrics body it reports every counter, which is the bug).
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(&mut check.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write to promtool");
    let out = check.wait_with_output().expect("promtool check metrics");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics ({}): {report}\nbody:\n{text}",
        out.status
    );

    // Prometheus's own OpenMetrics parser is reached through the backfill command, which
    // wants a timestamp on every sample: the body gets one, and is otherwise passed as is.
    let dir = tempfile::tempdir().expect("temporary directory");
    let stamped: String = openmetrics
        .lines()
        .map(|line| {
            if line.starts_with('#') {
                format!("{line}\n")
            } else {
                format!("{line} 1700000000\n")
            }
        })
        .collect();
    let input = dir.path().join("metrics.om");
    std::fs::write(&input, stamped).expect("write the body");
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("blocks"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool's OpenMetrics parser refused the body ({}): {}{}\nbody:\n{openmetrics}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The rules of the two formats
// ---------------------------------------------------------------------------------------------

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The metric name of the sample line `name{label="value",...} value [timestamp]`; an error
/// says what is wrong with the line.
fn sample_name(line: &str) -> Result<&str, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        let mut chars = labels.char_indices();
        let mut in_value = false;
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match (in_value, c) {
                (true, '\\') => {
                    chars.next();
                }
                (true, '"') => in_value = false,
                (false, '"') => in_value = true,
                (false, '}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("unterminated labels")?;
        for pair in split_labels(&labels[..end]) {
            let (key, value) = pair.split_once('=').ok_or("a label without '='")?;
            if !is_metric_name(key) || key.contains(':') {
                return Err(format!("bad label name {key:?}"));
            }
            if !(value.len() >= 2 && value.starts_with('"') && value.ends_with('"')) {
                return Err(format!("label {key}: unquoted value {value:?}"));
            }
        }
        rest = &labels[end + 1..];
    }
    let mut parts = rest
        .strip_prefix(' ')
        .ok_or("no space before the value")?
        .split(' ');
    let value = parts.next().unwrap_or_default();
    let numeric = matches!(value, "+Inf" | "-Inf" | "NaN") || value.parse::<f64>().is_ok();
    if !numeric {
        return Err(format!("bad value {value:?}"));
    }
    if parts.count() > 1 {
        return Err("more than a value and a timestamp".into());
    }
    Ok(name)
}

/// The `key="value"` pairs of a label set's inside, split on the commas outside quotes.
fn split_labels(inside: &str) -> Vec<&str> {
    let mut pairs = Vec::new();
    let (mut start, mut in_value, mut escaped) = (0, false, false);
    for (i, c) in inside.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_value => escaped = true,
            '"' => in_value = !in_value,
            ',' if !in_value => {
                pairs.push(&inside[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < inside.len() {
        pairs.push(&inside[start..]);
    }
    pairs
}

/// The metric families seen so far: a family's descriptor lines (HELP, TYPE, UNIT, in any
/// order) come before its samples, and all its lines form one group.
#[derive(Default)]
struct Families {
    done: HashSet<String>,
    /// The family being read, and its type (`untyped`/`unknown` until a TYPE line says).
    current: Option<(String, String)>,
}

impl Families {
    /// A descriptor line for the family `name`, giving its `kind` if it is a TYPE line.
    fn describe(&mut self, name: &str, kind: Option<&str>, problems: &mut Vec<String>) {
        let same = self.current.as_ref().is_some_and(|(f, _)| f == name);
        if !same {
            if let Some((previous, _)) = self.current.take() {
                self.done.insert(previous);
            }
            if self.done.contains(name) {
                problems.push(format!("family {name} described in two places"));
            }
            self.current = Some((name.to_owned(), "unknown".to_owned()));
        }
        if let (Some(kind), Some(current)) = (kind, self.current.as_mut()) {
            current.1 = kind.to_owned();
        }
    }
}

/// What breaks the Prometheus text format 0.0.4 (and Prometheus's expectations of it) in
/// `body`; empty if nothing does.
fn text_0_0_4_problems(body: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut families = Families::default();
    let mut helped = HashSet::new();
    if !body.ends_with('\n') {
        problems.push("the body does not end with a newline".into());
    }
    for line in body.lines() {
        if line == "# EOF" {
            problems.push("an OpenMetrics `# EOF` line".into());
        } else if line.starts_with("# UNIT ") {
            problems.push(format!("an OpenMetrics UNIT line: {line}"));
        } else if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().unwrap_or_default();
            if !helped.insert(name.to_owned()) {
                problems.push(format!("two HELP lines for {name}"));
            }
            families.describe(name, None, &mut problems);
        } else if let Some(typed) = line.strip_prefix("# TYPE ") {
            let (name, kind) = typed.split_once(' ').unwrap_or((typed, ""));
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                problems.push(format!("{name}: type {kind:?} does not exist in 0.0.4"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                problems.push(format!("counter {name}: its name must end with _total"));
            }
            families.describe(name, Some(kind), &mut problems);
        } else if line.starts_with('#') || line.is_empty() {
            // Comments and blank lines are allowed in 0.0.4.
        } else {
            let name = match sample_name(line) {
                Ok(name) => name,
                Err(e) => {
                    problems.push(format!("{line:?}: {e}"));
                    continue;
                }
            };
            if name.ends_with("_created") {
                problems.push(format!("{}: _created series are OpenMetrics only", name));
            }
            let belongs = match &families.current {
                Some((family, kind)) => match kind.as_str() {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(family.as_str())),
                    "summary" => {
                        name == family
                            || ["_sum", "_count"]
                                .iter()
                                .any(|s| name.strip_suffix(s) == Some(family.as_str()))
                    }
                    _ => name == family,
                },
                None => false,
            };
            if !belongs {
                problems.push(format!(
                    "{}: a sample outside its declared family (the TYPE line names {:?})",
                    name,
                    families.current.as_ref().map(|(f, _)| f)
                ));
            }
        }
    }
    problems
}

/// What breaks OpenMetrics 1.0.0 in `body`; empty if nothing does.
fn openmetrics_problems(body: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut families = Families::default();
    let trimmed = body.strip_suffix('\n').unwrap_or(body);
    if !trimmed.ends_with("# EOF") || trimmed.matches("# EOF").count() != 1 {
        problems.push("the last line must be `# EOF`, and only it".into());
    }
    for line in trimmed.lines().filter(|l| *l != "# EOF") {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let (name, kind) = typed.split_once(' ').unwrap_or((typed, ""));
            let kinds = [
                "counter",
                "gauge",
                "histogram",
                "gaugehistogram",
                "stateset",
                "info",
                "summary",
                "unknown",
            ];
            if !kinds.contains(&kind) {
                problems.push(format!(
                    "{name}: type {kind:?} does not exist in OpenMetrics"
                ));
            }
            if kind == "counter" && name.ends_with("_total") {
                problems.push(format!(
                    "counter family {name}: named without _total (its sample has it)"
                ));
            }
            families.describe(name, Some(kind), &mut problems);
        } else if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# UNIT "))
        {
            let name = rest.split(' ').next().unwrap_or_default();
            families.describe(name, None, &mut problems);
        } else if line.starts_with('#') {
            problems.push(format!("{line:?}: OpenMetrics has no comments"));
        } else if line.is_empty() {
            problems.push("a blank line".into());
        } else {
            let name = match sample_name(line) {
                Ok(name) => name,
                Err(e) => {
                    problems.push(format!("{line:?}: {e}"));
                    continue;
                }
            };
            let Some((family, kind)) = &families.current else {
                problems.push(format!("{}: a sample before any TYPE line", name));
                continue;
            };
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "info" => &["_info"],
                "histogram" => &["_bucket", "_count", "_sum", "_created"],
                "gaugehistogram" => &["_bucket", "_gcount", "_gsum"],
                "summary" => &["", "_count", "_sum", "_created"],
                _ => &[""],
            };
            if !suffixes
                .iter()
                .any(|s| name.strip_suffix(s) == Some(family.as_str()))
            {
                problems.push(format!(
                    "{}: not a sample of the {kind} family {family} (a counter's sample is \
                     <family>_total)",
                    name
                ));
            }
        }
    }
    problems
}
