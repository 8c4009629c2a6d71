//! Liveness events, and the sinks every transition goes through: the event log, the server
//! log, the HTTP event stream, an embedding application's actors.

mod bus;
mod event;
mod evidence;
mod flapping;
mod log_sink;
mod outage;
mod pipeline;
mod sink;
mod stage;

pub use bus::EventBus;
pub use event::{Event, OfflineReason};
pub use evidence::{DetectorKind, Evidence, PhiValue};
pub use flapping::FlapConfig;
pub(crate) use log_sink::LogSink;
pub use outage::{OutageConfig, OutageWebhooks, OUTAGE_PROJS};
pub(crate) use pipeline::Pipeline;
pub use sink::{ClientTimeout, Published, Sink};
pub(crate) use stage::Stage;
