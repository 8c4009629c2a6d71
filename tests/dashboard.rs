//! The dashboard at `/` in a real browser: the real `heartwatch` binary, headless Chromium
//! driven through chromedriver (WebDriver, with fantoccini), and heartbeat clients.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`: without them these tests fail
//! under CI (`CI` set) and are skipped elsewhere, saying how to install them. The tests run
//! one at a time (each starts a browser; two at once would only compete for the CPU).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{http_get, require_programs, BinServer, Client, IO_TIMEOUT};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::time::Instant;

const INSTALL: &str = "apt-get install chromium chromium-driver";

/// How long a client's row may take to appear or change (the requirement).
const ROW_WITHIN: Duration = Duration::from_secs(2);

/// One browser at a time.
static BROWSER: Mutex<()> = Mutex::new(());

/// Runs `test` with a fresh browser, unless Chromium is missing (see the module doc).
fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(programs) = require_programs(&["chromium", "chromedriver"], INSTALL) else {
        return;
    };
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    actix_rt::System::new().block_on(async move {
        let browser = Browser::start(&programs[0], &programs[1]).await;
        test(browser).await;
    });
}

/// chromedriver on a free port and one Chromium session through it. Dropping it kills both
/// (chromedriver runs in a process group of its own, which Chromium joins).
struct Browser {
    driver: Child,
    client: WebDriver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let mut driver = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let stdout = driver.stdout.take().expect("piped stdout");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // Reads the port, then keeps draining chromedriver's output.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
        });
        let port = port_rx
            .recv_timeout(IO_TIMEOUT)
            .expect("chromedriver did not say its port");
        let profile = tempfile::tempdir().expect("profile directory");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,860",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Self {
            driver,
            client,
            _profile: profile,
        }
    }

    /// Opens the dashboard of `server` and waits until it follows the event stream.
    async fn open(&self, server: &BinServer) {
        self.client
            .goto(&format!("http://{}/", server.http))
            .await
            .expect("open the dashboard");
        self.wait_for("#conn[data-status=\"live\"]", IO_TIMEOUT)
            .await;
    }

    /// The first element matching `css`, waiting up to `within` for it.
    async fn wait_for(&self, css: &str, within: Duration) -> Element {
        match self
            .client
            .wait()
            .at_most(within)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no {css} within {within:?} ({e}); page status: {:?}",
                self.text("#conn").await
            ),
        }
    }

    /// The text of the first element matching `css`.
    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(e) => format!("<{css}: {e}>"),
        }
    }

    /// Runs `script` in the page; its result.
    async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect(script)
    }

    /// The `data-proj` of the table's visible rows, in order.
    async fn visible_projs(&self) -> Vec<String> {
        let projs = self
            .eval("return [...document.querySelectorAll('#rows tr:not([hidden])')].map(r => r.dataset.proj)")
            .await;
        serde_json::from_value(projs).expect("a list of strings")
    }

    /// Saves a screenshot as `path`.
    async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

/// `target/dashboard.png`.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("dashboard.png")
}

/// Waits for `proj`'s row in `state` (by its `data-state` attribute) and returns it.
async fn row(browser: &Browser, proj: &str, state: &str, within: Duration) -> Element {
    browser
        .wait_for(
            &format!("#rows tr[data-proj=\"{proj}\"][data-state=\"{state}\"]"),
            within,
        )
        .await
}

#[test]
fn a_beating_client_appears_within_2_s_and_turns_offline() {
    with_browser(|browser| async move {
        let server = BinServer::spawn(&[]);
        browser.open(&server).await;

        let mut client = Client::connect(server.tcp).await;
        let beat = Instant::now();
        client.heartbeat_timeout("P-17", 60_000).await;
        let p17 = row(&browser, "P-17", "online", ROW_WITHIN).await;
        eprintln!("row appeared {:?} after the heartbeat", beat.elapsed());
        let badge = p17
            .find(Locator::Css(".badge"))
            .await
            .expect("a state badge");
        assert_eq!(badge.text().await.unwrap(), "online", "a text label");
        assert_eq!(browser.text("[data-count=\"online\"] .n").await, "1");
        // The timeout is not in the event: the page reads the client's record for it.
        wait_for_text(&browser, "#rows tr[data-proj=\"P-17\"] td.timeout", "1 m").await;
        let cells = browser
            .eval("return [...document.querySelector('#rows tr[data-proj=\"P-17\"]').cells].map(c => c.textContent)")
            .await;
        assert_eq!(cells[3], "1 m", "timeout: {cells}");
        assert_eq!(cells[4], client.local.to_string(), "address: {cells}");
        assert!(
            cells[2].as_str().is_some_and(|s| s.ends_with(" s ago")),
            "last seen ticks in seconds: {cells}"
        );

        // An offline frame: the row stays, greyed, in state offline; the feed says why.
        client.offline("P-17").await;
        row(&browser, "P-17", "offline", ROW_WITHIN).await;
        browser
            .wait_for(
                "#feed li[data-event=\"offline\"][data-proj=\"P-17\"]",
                ROW_WITHIN,
            )
            .await;
        assert_eq!(browser.text("[data-count=\"offline\"] .n").await, "1");
        assert_eq!(browser.text("[data-count=\"online\"] .n").await, "0");

        // A client that stops beating: its watchdog fires and the row turns offline.
        client.heartbeat_timeout("P-18", 300).await;
        row(&browser, "P-18", "online", ROW_WITHIN).await;
        let p18 = row(&browser, "P-18", "offline", IO_TIMEOUT).await;
        assert!(
            p18.text().await.unwrap().contains("timeout"),
            "the reason is shown"
        );

        server_kept_serving(&server).await;
        browser.close().await;
    });
}

/// The dashboard's own requests did not disturb the API.
async fn server_kept_serving(server: &BinServer) {
    assert_eq!(server.get("/healthz").await.status, 200);
}

#[test]
fn details_open_by_keyboard_and_the_page_is_screenshotted() {
    with_browser(|browser| async move {
        let server = BinServer::spawn(&[]);
        browser.open(&server).await;

        // A small fleet, as on the README's screenshot.
        let mut client = Client::connect(server.tcp).await;
        let fleet = [
            ("api-eu-1", 20_000),
            ("api-eu-2", 20_000),
            ("api-us-1", 20_000),
            ("db-primary", 30_000),
            ("db-replica", 30_000),
            ("edge-paris", 60_000),
            ("edge-tokyo", 60_000),
            ("queue-worker-3", 15_000),
            ("P-17", 60_000),
        ];
        for (proj, timeout) in fleet {
            client.heartbeat_timeout(proj, timeout).await;
        }
        client.heartbeat_timeout("cron-nightly", 60_000).await;
        client.offline("cron-nightly").await;
        client.heartbeat_timeout("sensor-0042", 300).await;
        row(&browser, "sensor-0042", "offline", IO_TIMEOUT).await;
        row(&browser, "P-17", "online", ROW_WITHIN).await;

        // Sorting: by proj, then reversed.
        browser
            .client
            .find(Locator::Css("th button[data-sort=\"proj\"]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait_for(
                "th[aria-sort=\"ascending\"] button[data-sort=\"proj\"]",
                ROW_WITHIN,
            )
            .await;
        let projs = browser.visible_projs().await;
        let mut sorted = projs.clone();
        sorted.sort_by_key(|p| p.to_lowercase());
        assert_eq!(projs, sorted, "sorted by proj");

        // Filter by glob, and by state.
        let filter = browser.client.find(Locator::Css("#filter")).await.unwrap();
        filter.send_keys("api-eu-*").await.unwrap();
        wait_until(&browser, "the glob filter applies", |projs| {
            projs == ["api-eu-1", "api-eu-2"]
        })
        .await;
        filter.clear().await.unwrap();
        filter.send_keys(&Key::Escape).await.unwrap();
        browser
            .client
            .find(Locator::Css("#state-filter"))
            .await
            .unwrap()
            .select_by_value("offline")
            .await
            .unwrap();
        wait_until(&browser, "the state filter applies", |projs| {
            projs.len() == 2
                && projs
                    .iter()
                    .all(|p| p == "cron-nightly" || p == "sensor-0042")
        })
        .await;
        browser
            .client
            .find(Locator::Css("#state-filter"))
            .await
            .unwrap()
            .select_by_value("")
            .await
            .unwrap();
        wait_until(&browser, "the filter is off", |projs| projs.len() == 11).await;

        // Keyboard: "/" goes to the filter, Tab to the table, arrows move, Enter opens.
        let body = browser.client.find(Locator::Css("body")).await.unwrap();
        body.send_keys("/").await.unwrap();
        let active = browser.eval("return document.activeElement.id").await;
        assert_eq!(active, "filter", "/ focuses the filter");
        let first = browser.visible_projs().await[0].clone();
        let first_row = browser
            .client
            .find(Locator::Css("#rows tr[tabindex=\"0\"]"))
            .await
            .expect("one row takes the focus");
        assert_eq!(first_row.attr("data-proj").await.unwrap(), Some(first));
        first_row.send_keys(&Key::Down).await.unwrap();
        let second = browser.visible_projs().await[1].clone();
        let focused = browser
            .eval("return document.activeElement.dataset.proj")
            .await;
        assert_eq!(focused, second.as_str(), "arrow down moves the focus");
        browser
            .client
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter)
            .await
            .unwrap();
        browser.wait_for("#detail:not([hidden])", ROW_WITHIN).await;
        assert_eq!(browser.text("#detail-title").await, second);
        // Its history: its coming online, its uptime.
        browser.wait_for("#history:not([hidden])", ROW_WITHIN).await;
        let history = browser.text("#history-list").await;
        assert!(history.contains("online"), "{history}");
        let uptime = browser.text("#history-list li[data-key='uptime']").await;
        assert!(uptime.contains("% over the last hour"), "{uptime}");
        assert!(
            browser.text("#detail-fields").await.contains("heartbeats"),
            "whatever the record holds is shown"
        );

        // The detail of P-17 for the screenshot.
        let p17 = row(&browser, "P-17", "online", ROW_WITHIN).await;
        p17.click().await.unwrap();
        browser
            .wait_for("#detail:not([hidden]) #detail-title", ROW_WITHIN)
            .await;
        wait_for_text(&browser, "#detail-title", "P-17").await;
        row(&browser, "P-17", "online", ROW_WITHIN).await;
        browser
            .wait_for(
                "#rows tr[data-proj=\"P-17\"][aria-selected=\"true\"]",
                ROW_WITHIN,
            )
            .await;
        let path = screenshot_path();
        browser.screenshot(&path).await;
        let png = std::fs::read(&path).expect("the screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        eprintln!("screenshot: {}", path.display());

        // Escape closes the details.
        browser
            .client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .send_keys(&Key::Escape)
            .await
            .unwrap();
        browser.wait_for("#detail[hidden]", ROW_WITHIN).await;
        browser.close().await;
    });
}

/// Polls the visible rows until `ok` holds (at most [`IO_TIMEOUT`]).
async fn wait_until(browser: &Browser, what: &str, ok: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let projs = browser.visible_projs().await;
        if ok(&projs) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: rows are {projs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_text(browser: &Browser, css: &str, text: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let now = browser.text(css).await;
        if now == text {
            return;
        }
        assert!(Instant::now() < deadline, "{css}: {now:?}, not {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn with_a_token_the_page_asks_for_it_and_keeps_it_in_the_tab_only() {
    with_browser(|browser| async move {
        let token = "dashboard-test-token";
        let server = BinServer::spawn_with(
            "127.0.0.1:0",
            &[("HEARTWATCH__AUTH__HTTP_TOKEN", token)],
            &[],
        );
        // The page and its files hold no data: served without the token; the data is not.
        for path in ["/", "/ui/dashboard.js", "/ui/dashboard.css"] {
            assert_eq!(http_get(server.http, path).await.status, 200, "{path}");
        }
        assert_eq!(http_get(server.http, "/api/v1/clients").await.status, 401);

        browser
            .client
            .goto(&format!("http://{}/", server.http))
            .await
            .unwrap();
        let input = browser
            .wait_for("dialog#login[open] #login-token", IO_TIMEOUT)
            .await;
        input.send_keys("wrong").await.unwrap();
        input.send_keys(&Key::Enter).await.unwrap();
        browser
            .wait_for("dialog#login[open] #login-error:not([hidden])", IO_TIMEOUT)
            .await;
        let input = browser.wait_for("#login-token", IO_TIMEOUT).await;
        input.send_keys(token).await.unwrap();
        input.send_keys(&Key::Enter).await.unwrap();
        browser
            .wait_for("#conn[data-status=\"live\"]", IO_TIMEOUT)
            .await;

        let mut client = Client::connect(server.tcp).await;
        client.heartbeat_timeout("P-17", 60_000).await;
        row(&browser, "P-17", "online", ROW_WITHIN).await;

        let kept = browser
            .eval("return [sessionStorage.getItem('heartwatch.token'), localStorage.length, document.cookie]")
            .await;
        assert_eq!(
            kept,
            json!([token, 0, ""]),
            "the tab's session storage only"
        );
        browser.close().await;
    });
}

#[test]
fn fifteen_hundred_clients_are_paged_and_counted() {
    with_browser(|browser| async move {
        let server = BinServer::spawn(&[]);
        browser.open(&server).await;
        // One connection may carry many clients (a gateway); pipeline the frames.
        let mut client = Client::connect(server.tcp).await;
        let n = 1500;
        let mut frames = String::new();
        for i in 0..n {
            frames.push_str(
                &json!({"type": "heartbeat", "proj": format!("sensor-{i:05}"), "timeout_ms": 600_000})
                    .to_string(),
            );
            frames.push('\n');
        }
        let sent = Instant::now();
        client.send_raw(frames.as_bytes()).await;
        for _ in 0..n {
            assert_eq!(client.recv().await["type"], "ack");
        }
        let count = "[data-count=\"online\"] .n";
        let deadline = Instant::now() + IO_TIMEOUT;
        while browser.text(count).await != n.to_string() {
            assert!(
                Instant::now() < deadline,
                "count: {}",
                browser.text(count).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{n} clients shown {:?} after the first frame",
            sent.elapsed()
        );

        // One page of rows in the document, however many clients there are.
        let rows = browser
            .eval("return document.querySelectorAll('#rows tr').length")
            .await;
        assert_eq!(rows, 50);
        assert_eq!(browser.text("#page-info").await, "1–50 of 1500");
        browser
            .client
            .find(Locator::Css("#next"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_text(&browser, "#page-info", "51–100 of 1500").await;
        // The same after a reload: the snapshot is read in pages of 1000.
        browser.open(&server).await;
        wait_for_text(&browser, "#page-info", "1–50 of 1500").await;
        let filter = browser.client.find(Locator::Css("#filter")).await.unwrap();
        filter.send_keys("sensor-0149?").await.unwrap();
        wait_for_text(&browser, "#page-info", "1–10 of 10 (1500 in all)").await;
        browser.close().await;
    });
}

/// Not a check but a measurement (docs/performance.md): how the page copes with 10,000
/// clients coming online at once and then all going offline. Prints the time until the counts
/// are right and the long tasks (main-thread work over 50 ms) the page had meanwhile.
///
/// `cargo test --release --test dashboard -- --ignored --nocapture ten_thousand`
#[test]
#[ignore = "a measurement, run by hand"]
fn ten_thousand_clients_measured() {
    with_browser(|browser| async move {
        let server = BinServer::spawn(&[]);
        browser.open(&server).await;
        browser
            .eval(
                "window.__long = []; new PerformanceObserver((list) => { \
                 for (const e of list.getEntries()) window.__long.push(e.duration); \
                 }).observe({ type: 'longtask' }); return true",
            )
            .await;
        let (connections, per_connection) = (10, 1000);
        let mut clients = Vec::new();
        for c in 0..connections {
            let mut client = Client::connect(server.tcp).await;
            let mut frames = String::new();
            for i in 0..per_connection {
                let proj = format!("sensor-{c:02}-{i:04}");
                frames.push_str(
                    &json!({"type": "heartbeat", "proj": proj, "timeout_ms": 600_000}).to_string(),
                );
                frames.push('\n');
            }
            client.send_raw(frames.as_bytes()).await;
            clients.push(client);
        }
        let total = connections * per_connection;
        let started = Instant::now();
        for client in &mut clients {
            for _ in 0..per_connection {
                client.recv().await;
            }
        }
        let acked = started.elapsed();
        wait_for_count(&browser, "online", total).await;
        let shown = started.elapsed();
        let long = long_tasks(&browser).await;
        eprintln!(
            "{total} online: acked in {acked:?}, counted on the page after {shown:?}; \
             long tasks: {long}"
        );

        let started = Instant::now();
        browser
            .client
            .find(Locator::Css("th button[data-sort=\"last_seen\"]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait_for(
                "th[aria-sort=\"ascending\"] button[data-sort=\"last_seen\"]",
                IO_TIMEOUT,
            )
            .await;
        eprintln!("sorting {total} rows: shown after {:?}", started.elapsed());

        let started = Instant::now();
        for (c, client) in clients.iter_mut().enumerate() {
            let mut frames = String::new();
            for i in 0..per_connection {
                let proj = format!("sensor-{c:02}-{i:04}");
                frames.push_str(&json!({"type": "offline", "proj": proj}).to_string());
                frames.push('\n');
            }
            client.send_raw(frames.as_bytes()).await;
            for _ in 0..per_connection {
                client.recv().await;
            }
        }
        wait_for_count(&browser, "offline", total).await;
        let long = long_tasks(&browser).await;
        eprintln!(
            "{total} offline: counted on the page after {:?}; long tasks: {long}",
            started.elapsed()
        );
        browser.close().await;
    });
}

async fn wait_for_count(browser: &Browser, state: &str, n: usize) {
    let css = format!("[data-count=\"{state}\"] .n");
    let deadline = Instant::now() + Duration::from_secs(60);
    while browser.text(&css).await != n.to_string() {
        assert!(
            Instant::now() < deadline,
            "{state}: {}",
            browser.text(&css).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// "N, longest X ms, total Y ms" of the long tasks observed since the last call.
async fn long_tasks(browser: &Browser) -> String {
    let durations = browser
        .eval("const l = window.__long; window.__long = []; return l")
        .await;
    let durations: Vec<f64> = serde_json::from_value(durations).unwrap_or_default();
    let longest = durations.iter().copied().fold(0.0, f64::max);
    let total: f64 = durations.iter().sum();
    format!(
        "{}, longest {longest:.0} ms, total {total:.0} ms",
        durations.len()
    )
}
