//! Logging setup (log4rs).

use log4rs::append::console::{ConsoleAppender, Target};
use log4rs::config::{Appender, Config as Log4rsConfig, Root};
use log4rs::encode::pattern::PatternEncoder;

use heartwatch::config::LogConfig;

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log4rs file exists but is not valid.
    #[error("invalid configuration: log.config {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What log4rs said.
        message: String,
    },
    /// A logger was already installed (only once per process).
    #[error("logging is already initialized")]
    AlreadyInitialized,
}

/// Installs the global logger: from `config.config` if that file exists, else to the console
/// (stderr) at `config.level`.
pub fn init(config: &LogConfig) -> Result<(), LogError> {
    if config.config.exists() {
        return log4rs::init_file(&config.config, Default::default()).map_err(|e| LogError::File {
            path: config.config.display().to_string(),
            message: e.to_string().replace('\n', " "),
        });
    }
    let console = ConsoleAppender::builder()
        .target(Target::Stderr)
        .encoder(Box::new(PatternEncoder::new(
            "{d(%Y-%m-%dT%H:%M:%S%.3fZ)(utc)} {l:<5} {t} - {m}{n}",
        )))
        .build();
    let log_config = Log4rsConfig::builder()
        .appender(Appender::builder().build("console", Box::new(console)))
        .build(Root::builder().appender("console").build(config.level))
        .map_err(|e| LogError::File {
            path: "<console>".into(),
            message: e.to_string(),
        })?;
    log4rs::init_config(log_config)
        .map(|_| ())
        .map_err(|_| LogError::AlreadyInitialized)
}

/// Flushes every appender (before exit).
pub fn flush() {
    log::logger().flush();
}
