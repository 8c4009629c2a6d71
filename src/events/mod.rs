//! Liveness events and the subscribers they go to: the log, the HTTP event stream, user code.

mod bus;
mod event;
mod log_sink;

pub use bus::EventBus;
pub use event::{Event, OfflineReason};
pub use log_sink::LogSink;
