//! The `heartwatch` binary: parses the command line, loads the configuration, starts logging,
//! runs the library, and maps errors to exit codes (2: configuration or usage, 1: runtime).

mod cli;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::{Actor, Context, Handler};
use clap::{CommandFactory, Parser, Subcommand};
use heartwatch::auth::{AuthError, Secret};
use heartwatch::client::{ClientConfig, ClientEvent, HeartbeatClient, Shutdown};
use heartwatch::protocol::Proj;
use heartwatch::tls::{ClientTls, ServerTls};
use heartwatch::{shutdown, Builder, ConfigLoader};

/// jemalloc: its size classes and slab layout cost the server's many small per-client
/// allocations less memory than glibc's malloc (docs/performance.md has the A/B).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use cli::beat_report::Report;
use cli::bench::BenchConfig;
use cli::hangup::Hangups;
use cli::logging;

#[derive(Debug, Parser)]
#[command(
    name = "heartwatch",
    version,
    about = "Heartbeat detection and liveness supervision server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (defaults: heartbeats on 0.0.0.0:7700, HTTP API on 127.0.0.1:7701).
    Serve(ServeArgs),
    /// Send heartbeats as one client, report the server up or down, reconnect on failure.
    Beat(BeatArgs),
    /// Load-test a server: many persistent clients, ack latency, server cost, detection delay.
    Bench(BenchArgs),
    /// Show the clients of a running server (exit 0: all online, 1: some late or offline).
    Status(cli::status::StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cli::docs::CompletionsArgs),
    /// Print the man page (roff): `heartwatch man > heartwatch.1`.
    Man(cli::docs::ManArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The server's heartbeat address (loopback unless --allow-remote).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7700")]
    server: std::net::SocketAddr,
    /// Persistent client connections.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Time between two heartbeats of one client (±10% jitter).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// The measured window.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Beating before the measured window.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Connections opened per second.
    #[arg(long, value_name = "PER_SEC", default_value_t = 5000)]
    ramp: u32,
    /// The server's HTTP API: its event stream (needed by --silence) and its CPU and memory.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// The server's pid, to read its CPU and memory from /proc.
    #[arg(long)]
    pid: Option<u32>,
    /// Fraction of clients that hang (stop beating, keep the socket) during the window.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    silence: f64,
    /// The watchdog timeout the clients ask for.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How long a heartbeat waits for its answer before it counts as an error.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    ack_timeout: Duration,
    /// Source addresses 127.0.0.2 onwards to spread connections over.
    #[arg(long, default_value_t = 200)]
    sources: u8,
    /// Prefix of the clients' proj.
    #[arg(long, default_value = "bench-")]
    proj_prefix: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Permit a server outside 127.0.0.0/8.
    #[arg(long)]
    allow_remote: bool,
    /// A cluster's Redis (redis://host:port/db): report the Redis commands per second the
    /// cluster used during the window (INFO commandstats).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// TLS and the token.
    #[command(flatten)]
    security: ClientSecurityArgs,
}

#[derive(Debug, clap::Args)]
struct BeatArgs {
    /// The server's heartbeat address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7700")]
    server: String,
    /// This client's identifier.
    #[arg(long, value_parser = parse_proj)]
    proj: Proj,
    /// Time between heartbeats (varied by ±10% jitter). Default: the interval the server
    /// suggests in its acks (a third of the client's timeout by default), 5s until it has.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    interval: Option<Duration>,
    /// How long each heartbeat waits for its ack.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    ack_timeout: Duration,
    /// Missed acks in a row before the server is declared down.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    retries: u32,
    /// The watchdog timeout to ask the server for (default: the server's own).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// The cap of the reconnect backoff.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    backoff_max: Duration,
    /// TLS and the token.
    #[command(flatten)]
    security: ClientSecurityArgs,
    /// One JSON object a line instead of text.
    #[arg(long)]
    json: bool,
    /// Also print every ack with its round-trip time.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_proj(s: &str) -> Result<Proj, String> {
    Proj::new(s).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML file layered over the defaults (config/default.toml documents every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// TCP address for heartbeats (server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// HTTP API address (server.http).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Default watchdog timeout, e.g. 20s or 500ms (server.timeout).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
}

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Beat(args) => beat(args),
        Command::Bench(args) => bench(args),
        Command::Status(args) => cli::status::run(args),
        Command::Completions(args) => cli::docs::completions(&args, Cli::command()),
        Command::Man(args) => cli::docs::man(&args, Cli::command()),
    }
}

/// How a client (`beat`, `bench`) speaks to a server with TLS or protocol tokens.
#[derive(Debug, clap::Args)]
struct ClientSecurityArgs {
    /// Speak TLS to a server with `tls.cert` set; needs --ca.
    #[arg(long, requires = "ca")]
    tls: bool,
    /// PEM file of the CA (or self-signed certificate) to trust for the server's certificate.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host part of --server).
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
    /// The token sent in a `hello` after each connect, before the first heartbeat. Prefer the
    /// environment variable: a command line is visible to every user in `ps`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HEARTWATCH_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl ClientSecurityArgs {
    /// The TLS settings, verifying `--server-name` or else `host`. A CA file that cannot be
    /// used is a usage error (exit 2), printed on one line.
    fn client_tls(&self, host: &str) -> Result<Option<ClientTls>, ExitCode> {
        let (true, Some(ca)) = (self.tls, &self.ca) else {
            return Ok(None);
        };
        ClientTls::from_ca_file(ca, self.server_name.as_deref().unwrap_or(host))
            .map(Some)
            .map_err(|e| {
                eprintln!("heartwatch: {e}");
                ExitCode::from(EXIT_CONFIG)
            })
    }

    /// The token, if one was given.
    fn token(&self) -> Option<Secret> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Secret::from)
    }
}

fn bench(args: BenchArgs) -> ExitCode {
    let ip = args.server.ip().to_string();
    let tls = match args.security.client_tls(&ip) {
        Ok(tls) => tls,
        Err(code) => return code,
    };
    let mut config = BenchConfig::new(args.server);
    config.tls = tls;
    config.token = args.security.token();
    config.clients = args.clients;
    config.interval = args.interval;
    config.duration = args.duration;
    config.warmup = args.warmup;
    config.ramp_per_sec = args.ramp;
    config.http = args.http;
    config.pid = args.pid;
    config.silence = args.silence;
    config.timeout = args.timeout;
    config.ack_timeout = args.ack_timeout;
    config.sources = args.sources;
    config.proj_prefix = args.proj_prefix;
    config.redis = args.redis;
    config.allow_remote = args.allow_remote;
    match cli::bench::run(config) {
        Ok(report) if args.json => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("heartwatch: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
        Ok(report) => {
            print!("{}", report.table());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("heartwatch: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Prints each client event on its own line, flushed at once (scripts read it live).
struct Printer(Report);

impl Actor for Printer {
    type Context = Context<Self>;
}

impl Handler<ClientEvent> for Printer {
    type Result = ();

    fn handle(&mut self, event: ClientEvent, _: &mut Context<Self>) {
        if let Some(line) = self.0.line(&event, std::time::SystemTime::now()) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host: what the server's certificate is
/// checked against unless `--server-name` says otherwise.
fn host_of(server: &str) -> &str {
    if let Some(rest) = server.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => server,
    }
}

fn beat(args: BeatArgs) -> ExitCode {
    let host = host_of(&args.server);
    let tls = match args.security.client_tls(host) {
        Ok(tls) => tls,
        Err(code) => return code,
    };
    let mut config = ClientConfig::new(args.server, args.proj);
    config.tls = tls;
    match args.interval {
        Some(interval) => config.interval = interval,
        None => config.follow_server_interval = true,
    }
    config.ack_timeout = args.ack_timeout;
    config.retries = args.retries;
    config.server_timeout = args.timeout;
    config.backoff_max = args.backoff_max;
    config.backoff_initial = config.backoff_initial.min(args.backoff_max);
    config.token = args.security.token();
    let report = Report {
        json: args.json,
        verbose: args.verbose,
    };
    actix_rt::System::new().block_on(async move {
        let printer = Printer(report).start();
        let client = HeartbeatClient::new(config, printer.clone().recipient()).start();
        if let Err(e) = shutdown::signal().await {
            eprintln!("heartwatch: cannot wait for signals: {e}");
        }
        let _ = client.send(Shutdown).await;
        // Let the printer write the last events before the System goes.
        let _ = printer.send(Flush).await;
    });
    ExitCode::SUCCESS
}

/// Answered after every event queued before it has been printed.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Flush> for Printer {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {}
}

/// The next SIGHUP, or never if SIGHUP could not be caught.
async fn next_hangup(hangups: &mut Option<Hangups>) {
    match hangups {
        Some(hangups) => hangups.recv().await,
        None => std::future::pending().await,
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut loader = ConfigLoader::new();
    if let Some(file) = args.config {
        loader = loader.file(file);
    }
    for (key, value) in [
        ("server.listen", args.listen),
        ("server.http", args.http),
        ("server.timeout", args.timeout),
    ] {
        if let Some(value) = value {
            loader = loader.set(key, value);
        }
    }
    let config = match loader.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("heartwatch: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Before logging and binding: a bad certificate is a configuration error, on one line.
    let tls = match ServerTls::load(&config.tls) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("heartwatch: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = logging::init(&config.log) {
        eprintln!("heartwatch: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }

    let outcome = actix_rt::System::new().block_on(async move {
        // Before the start: from here on a SIGHUP reloads instead of killing the process.
        let mut hangups = match Hangups::new() {
            Ok(hangups) => Some(hangups),
            Err(e) => {
                log::error!("cannot wait for SIGHUP ({e}); tokens will not be reloaded");
                None
            }
        };
        let mut builder = Builder::new(config.server)
            .phi(config.phi)
            .flap(config.flap)
            .outage(config.outage)
            .history(config.history)
            .session(config.session)
            .auth(config.auth)
            .storage(config.storage)
            .notify(config.notify)
            .cluster(config.cluster)
            .ingest(config.ingest);
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        let server = builder.start().await?;
        let stop = shutdown::signal();
        tokio::pin!(stop);
        let stopped = loop {
            tokio::select! {
                stopped = &mut stop => break stopped,
                () = next_hangup(&mut hangups) => {
                    log::info!("SIGHUP received, reloading tokens and the TLS certificate");
                    // Success and failure are logged by the reload itself.
                    if let Err(AuthError::NothingToReload) = server.reload_tokens() {
                        log::info!("SIGHUP: no auth.tokens_file is configured, nothing to reload");
                    }
                    // Logged and counted by the reload itself; the current certificate stays
                    // on error.
                    let _ = server.reload_tls();
                }
            }
        };
        match stopped {
            Ok(name) => log::info!("{name} received, shutting down"),
            Err(e) => log::error!("cannot wait for signals ({e}), shutting down"),
        }
        server.stop().await;
        Ok::<(), heartwatch::StartError>(())
    });
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("heartwatch: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    };
    logging::flush();
    code
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_server_name_defaults_to_the_host_part() {
        assert_eq!(host_of("127.0.0.1:7700"), "127.0.0.1");
        assert_eq!(host_of("hw.example.com:7700"), "hw.example.com");
        assert_eq!(host_of("[::1]:7700"), "::1");
        assert_eq!(host_of("hw.example.com"), "hw.example.com");
        assert_eq!(host_of("::1"), "::1");
    }
}
