//! The `heartwatch` binary: parses the command line, loads the configuration, starts logging,
//! runs the library, and maps errors to exit codes (2: configuration or usage, 1: runtime).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use heartwatch::{logging, shutdown, Builder, ConfigLoader};

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
    if let Err(e) = logging::init(&config.log) {
        eprintln!("heartwatch: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }

    let outcome = actix_rt::System::new().block_on(async move {
        let server = Builder::new(config.server)
            .session(config.session)
            .start()
            .await?;
        match shutdown::signal().await {
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
