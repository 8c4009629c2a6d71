//! `heartwatch completions <SHELL>` and `heartwatch man [SUBCOMMAND]`: shell completions
//! (clap_complete) and a man page (clap_mangen), both generated from the command-line
//! definition itself, so they never disagree with `--help`.

use std::io::Write;
use std::process::ExitCode;

use clap_complete::Shell;

/// `heartwatch completions <SHELL>`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// `heartwatch man [SUBCOMMAND]`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// The page of one subcommand (heartwatch-serve(1), ...) instead of heartwatch(1).
    #[arg(value_name = "SUBCOMMAND")]
    subcommand: Option<String>,
}

/// Prints the completion script of `args.shell` for `cmd`.
pub(crate) fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> ExitCode {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut out);
    write_out(&out)
}

/// Prints the roff man page of `cmd` or of one of its subcommands.
pub(crate) fn man(args: &ManArgs, cmd: clap::Command) -> ExitCode {
    let mut cmd = cmd;
    cmd.build();
    let page = match &args.subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            // Named as installed: heartwatch-serve(1).
            Some(sub) => sub
                .clone()
                .name(format!("{}-{name}", cmd.get_name()))
                .version(cmd.get_version().unwrap_or_default().to_owned()),
            None => {
                let known: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                eprintln!(
                    "heartwatch man: no subcommand {name:?} (known: {})",
                    known.join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        eprintln!("heartwatch man: {e}");
        return ExitCode::from(1);
    }
    write_out(&out)
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error.
fn write_out(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heartwatch: {e}");
            ExitCode::from(1)
        }
    }
}
