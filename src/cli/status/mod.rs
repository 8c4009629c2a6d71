//! `heartwatch status`: the clients of a running server, as a table, from its HTTP API.
//!
//! Exit code (for scripts and health checks): 0 when every listed client is online (or a
//! state that is not trouble, like `paused`), 1 when any is `late` or `offline`, or a named
//! client is not online, 2 on a usage or connection error.

mod api;
mod fleet;
mod table;

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde_json::Value;

use api::{Api, ApiError};
use fleet::Fleet;

/// `heartwatch status [PROJ] [--http ADDR] [--token T] [--state S] [--watch] [--json]`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Show this one client (with its history where the server keeps one) instead of all.
    #[arg(value_name = "PROJ")]
    proj: Option<String>,
    /// The server's HTTP API: HOST:PORT, or an http:// or https:// URL.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7701")]
    http: String,
    /// The API's bearer token (auth.http_token). Prefer the environment variable: a command
    /// line is visible to every user in `ps`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HEARTWATCH_HTTP_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Only clients in this state (online, late, offline, paused, flapping, ...).
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Keep running and redraw on every event (follows /api/v1/events); Ctrl-C ends it.
    #[arg(long)]
    watch: bool,
    /// Print JSON (one line per redraw with --watch) instead of a table.
    #[arg(long)]
    json: bool,
    /// PEM file of the CA to trust for an https:// API (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

/// Every listed client is online (or in a state that is not trouble).
const EXIT_OK: u8 = 0;
/// A listed client is late or offline, or the named one is not online.
const EXIT_NOT_ONLINE: u8 = 1;
/// Usage or connection error.
const EXIT_ERROR: u8 = 2;

/// How often `--watch` checks whether to redraw.
const TICK: Duration = Duration::from_millis(200);
/// A terminal is redrawn at least this often, so that "last seen" ticks.
const REDRAW_EVERY: Duration = Duration::from_secs(1);
/// Records re-read one by one at most; more (a fleet restarting) re-reads the list.
const ONE_BY_ONE: usize = 20;
/// Longest wait before reconnecting to a lost event stream.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Runs the subcommand.
pub(crate) fn run(args: StatusArgs) -> ExitCode {
    let code = actix_rt::System::new().block_on(async move {
        let api = match Api::new(&args.http, args.token.as_deref(), args.ca.as_deref()) {
            Ok(api) => api,
            Err(e) => return fail(&e),
        };
        let mut status = Status::new(args);
        if status.args.watch {
            status.watch(&api).await
        } else {
            match status.load(&api).await {
                Ok(()) => status.draw(),
                Err(e) => fail(&e),
            }
        }
    });
    ExitCode::from(code)
}

fn fail(e: &ApiError) -> u8 {
    eprintln!("heartwatch status: {e}");
    EXIT_ERROR
}

/// What is shown and how.
struct Status {
    args: StatusArgs,
    fleet: Fleet,
    history: Option<Value>,
    colour: bool,
    terminal: bool,
}

impl Status {
    fn new(args: StatusArgs) -> Self {
        let terminal = std::io::stdout().is_terminal();
        let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Self {
            args,
            fleet: Fleet::default(),
            history: None,
            colour,
            terminal,
        }
    }

    /// Reads the named client (and its history) or the whole list.
    async fn load(&mut self, api: &Api) -> Result<(), ApiError> {
        match self.args.proj.clone() {
            Some(proj) => {
                let record = api.client(&proj).await?;
                self.fleet.resync(record.as_slice());
                self.history = api.history(&proj).await?;
            }
            None => self.fleet.resync(&api.clients().await?),
        }
        Ok(())
    }

    /// Prints the current view; answers the exit code it stands for.
    fn draw(&self) -> u8 {
        let now = SystemTime::now();
        let mut out = String::new();
        let code = match &self.args.proj {
            Some(proj) => {
                let entry = self.fleet.get(proj);
                if self.args.json {
                    let mut json = match (entry, &self.history) {
                        (Some(entry), _) => entry.to_json(),
                        // Not online, but known to the history: what became of it.
                        (None, Some(h)) => serde_json::json!({
                            "proj": proj,
                            "state": h.get("state").cloned().unwrap_or("offline".into()),
                        }),
                        (None, None) => Value::Null,
                    };
                    if let (Value::Object(o), Some(h)) = (&mut json, &self.history) {
                        o.insert("history".into(), h.clone());
                    }
                    out = format!("{json}\n");
                } else {
                    out = table::one(proj, entry, self.history.as_ref(), now, self.colour);
                }
                if entry.is_some_and(|e| e.state == "online") {
                    EXIT_OK
                } else {
                    EXIT_NOT_ONLINE
                }
            }
            None => {
                let listed = self.fleet.listed(self.args.state.as_deref());
                if self.args.json {
                    let all: Vec<Value> = listed.iter().map(|e| e.to_json()).collect();
                    out = format!("{}\n", Value::Array(all));
                } else {
                    out.push_str(&table::table(&listed, now, self.colour));
                }
                if listed
                    .iter()
                    .any(|e| e.state == "late" || e.state == "offline")
                {
                    EXIT_NOT_ONLINE
                } else {
                    EXIT_OK
                }
            }
        };
        let mut stdout = std::io::stdout().lock();
        if self.args.watch && self.terminal && !self.args.json {
            // Home and clear: the table replaces the previous one.
            let _ = stdout.write_all(b"\x1b[H\x1b[2J");
        } else if self.args.watch && !self.args.json {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        code
    }

    /// Whether an event concerns what is shown.
    fn shows(&self, event: &Value) -> bool {
        match &self.args.proj {
            Some(proj) => event["proj"].as_str() == Some(proj),
            None => true,
        }
    }

    /// Re-reads the records events asked for, dropping any that an event overtook.
    async fn refresh(&mut self, api: &Api, wanted: BTreeSet<String>) -> Result<(), ApiError> {
        let before: Vec<(String, u64)> = wanted
            .into_iter()
            .map(|p| {
                let n = self.fleet.events_of(&p);
                (p, n)
            })
            .collect();
        let records: Vec<Value> = if before.len() <= ONE_BY_ONE {
            let mut records = Vec::new();
            for (proj, _) in &before {
                records.extend(api.client(proj).await?);
            }
            records
        } else {
            api.clients().await?
        };
        for record in records {
            let proj = record["proj"].as_str().unwrap_or_default();
            if before
                .iter()
                .any(|(p, n)| p == proj && self.fleet.events_of(p) == *n)
            {
                self.fleet.record(&record);
            }
        }
        if let Some(proj) = self.args.proj.clone() {
            self.history = api.history(&proj).await?;
        }
        Ok(())
    }

    /// `--watch`: subscribe, read the state, draw; then redraw on events until Ctrl-C. A lost
    /// stream is reconnected (and the state read again); the first connection failing is
    /// an error (exit 2). Exits with the code of the last view drawn.
    async fn watch(&mut self, api: &Api) -> u8 {
        let stop = heartwatch::shutdown::signal();
        tokio::pin!(stop);
        let mut code = EXIT_ERROR;
        let mut connected_once = false;
        let mut retry = Duration::from_secs(1);
        loop {
            let life = async {
                let mut events = api.events().await?;
                self.load(api).await?;
                Ok::<_, ApiError>(events_loop(self, api, &mut events, &mut code).await)
            };
            let ended = tokio::select! {
                ended = life => ended,
                _ = &mut stop => return code,
            };
            let message = match ended {
                Ok(message) => {
                    connected_once = true;
                    retry = Duration::from_secs(1);
                    message
                }
                Err(e) if !connected_once => return fail(&e),
                Err(e) => e.to_string(),
            };
            eprintln!(
                "heartwatch status: {message}; reconnecting in {}",
                humantime::format_duration(retry)
            );
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = &mut stop => return code,
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }
}

/// Applies events and redraws until the stream ends; answers why it ended.
async fn events_loop(
    status: &mut Status,
    api: &Api,
    events: &mut (impl futures_util::Stream<Item = Result<Value, String>> + Unpin),
    code: &mut u8,
) -> String {
    *code = status.draw();
    let mut wanted = BTreeSet::new();
    let mut dirty = false;
    let mut drawn = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) if status.shows(&event) => {
                    if let Some(proj) = status.fleet.apply(&event) {
                        wanted.insert(proj);
                    }
                    if status.args.proj.is_some() {
                        // The history changed too.
                        wanted.extend(status.args.proj.clone());
                    }
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e,
                None => return "the event stream ended".into(),
            },
            _ = tick.tick() => {
                if !wanted.is_empty() {
                    if let Err(e) = status.refresh(api, std::mem::take(&mut wanted)).await {
                        return e.to_string();
                    }
                }
                let ticking = status.terminal && drawn.elapsed() >= REDRAW_EVERY;
                if dirty || ticking {
                    *code = status.draw();
                    dirty = false;
                    drawn = tokio::time::Instant::now();
                }
            }
        }
    }
}
