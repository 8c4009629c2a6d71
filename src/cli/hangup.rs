//! SIGHUP, which asks a running server to re-read `auth.tokens_file` and must not stop it.

/// The SIGHUPs a process receives from the moment this is created. Creating it also replaces
/// the default action of SIGHUP, which is to terminate the process: create it before the
/// server starts, so that a SIGHUP sent during start-up does not kill the server.
pub struct Hangups {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangups {
    /// Starts listening for SIGHUP. Must run inside a tokio runtime.
    pub fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                signal: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves at the next SIGHUP (several SIGHUPs in between count as one). Never resolves
    /// where there is no SIGHUP.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            std::future::pending::<()>().await;
        }
    }
}
