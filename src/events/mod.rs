//! Liveness events, and the sinks every transition goes through: the event log, the server
//! log, the HTTP event stream, an embedding application's actors.

mod bus;
mod event;
mod log_sink;
mod pipeline;
mod sink;

pub use bus::EventBus;
pub use event::{Event, OfflineReason};
pub(crate) use log_sink::LogSink;
pub(crate) use pipeline::Pipeline;
pub use sink::{ClientTimeout, Published, Sink};
