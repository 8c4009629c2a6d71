//! Wire protocol v1: newline-delimited JSON over TCP.
//!
//! This module is the single source of truth for what docs/protocol.md describes: the message
//! types ([`Request`] and [`ClientFrame`] from clients, [`Reply`] from the server), the error codes ([`ErrorCode`]), the limits
//! ([`MAX_PROJ_BYTES`], the configurable frame size) and the framing ([`FrameDecoder`],
//! [`LineEncoder`]).

mod client_frame;
mod codec;
mod error_code;
mod proj;
mod reply;
mod request;
mod token;

pub use client_frame::ClientFrame;
pub use codec::{EncodeError, FrameDecoder, FrameError, LineEncoder};
pub use error_code::ErrorCode;
pub use proj::{Proj, ProjError, ProjRef, MAX_PROJ_BYTES};
pub use reply::Reply;
pub use request::{Request, RequestError, BUILTIN_TYPES};
pub use token::{without_token, Token};
