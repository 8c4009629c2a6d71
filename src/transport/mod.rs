//! Where heartbeats enter: the TCP listener and one session actor per connection.

mod close_reason;
mod frame_budget;
mod listener;
mod session;

pub use close_reason::CloseReason;
pub(crate) use listener::{accept_loop, bind};
pub use session::Session;
pub(crate) use session::SessionServices;
