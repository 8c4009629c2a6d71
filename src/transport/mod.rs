//! Where heartbeats enter: the TCP listener, the TLS handshake when it is on, and one session
//! actor per connection.

mod close_reason;
mod frame_budget;
mod listener;
mod session;
mod tls_handshake;
mod tls_write;

pub use close_reason::CloseReason;
pub(crate) use listener::{accept_loop, bind};
pub use session::{Session, TlsWriteHalf};
pub(crate) use session::{SessionServices, TlsAcceptor};
pub use tls_write::TlsWrite;
