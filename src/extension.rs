//! The extension point: handlers for frame types the server does not know.
//!
//! ```no_run
//! use heartwatch::extension::{CustomFrame, HandlerContext, HandlerError};
//! use serde_json::{json, Map, Value};
//!
//! async fn status(frame: CustomFrame, ctx: HandlerContext) -> Result<Map<String, Value>, HandlerError> {
//!     #[derive(serde::Deserialize)]
//!     struct Ask { proj: String }
//!     let ask: Ask = frame.parse().map_err(|e| HandlerError::new(e.to_string()))?;
//!     let proj = ask.proj.parse().map_err(|e: heartwatch::protocol::ProjError| HandlerError::new(e.to_string()))?;
//!     // Refused unless this connection's tokens cover `proj`.
//!     let online = ctx.client(proj).await?.is_some();
//!     let Value::Object(reply) = json!({ "online": online }) else { unreachable!() };
//!     Ok(reply)
//! }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::auth::Grant;
use crate::protocol::{Proj, BUILTIN_TYPES};
use crate::supervision::{ClientInfo, Heartbeats};

/// A frame whose `type` has a registered handler.
#[derive(Debug, Clone)]
pub struct CustomFrame {
    /// Its `type`.
    pub kind: String,
    /// The whole frame, as JSON text.
    pub text: String,
    /// The connection it came from.
    pub peer: SocketAddr,
}

impl CustomFrame {
    /// Parses the frame into the handler's own type.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.text)
    }
}

/// What a handler can reach: the clients its connection may act on.
///
/// With protocol authentication on, a connection's tokens cover some `proj`s only; a handler
/// that takes a `proj` from its frame acts on it through this context, which refuses a `proj`
/// the connection could not beat for itself. (An application that means to give a handler
/// more can capture its own [`crate::RegistryHandle`] in the handler's closure.)
#[derive(Clone)]
pub struct HandlerContext {
    heartbeats: Heartbeats,
    grant: Grant,
}

impl HandlerContext {
    pub(crate) fn new(heartbeats: Heartbeats, grant: Grant) -> Self {
        Self { heartbeats, grant }
    }

    /// `Ok` if this connection may act on `proj`, else the error to answer with.
    pub fn authorize(&self, proj: &Proj) -> Result<(), HandlerError> {
        if self.grant.covers(proj.as_str()) {
            Ok(())
        } else {
            Err(HandlerError::new(format!(
                "this connection's token is not valid for proj {:?}",
                proj.as_str()
            )))
        }
    }

    /// The record of `proj` if it is online, once authorized.
    pub async fn client(&self, proj: Proj) -> Result<Option<ClientInfo>, HandlerError> {
        self.authorize(&proj)?;
        self.heartbeats
            .registry()
            .get(proj)
            .await
            .map_err(|e| HandlerError::new(e.to_string()))
    }

    /// Takes `proj` offline now, once authorized; answers whether it was online.
    pub async fn offline(&self, proj: Proj) -> Result<bool, HandlerError> {
        self.authorize(&proj)?;
        self.heartbeats
            .offline(proj)
            .await
            .map_err(|e| HandlerError::new(e.to_string()))
    }

    /// What this connection's tokens allow.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

/// A handler failed; the client gets error `handler_error` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// For the client.
    pub message: String,
}

impl HandlerError {
    /// A handler error with a message for the client.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// The reply object of a handler. If it has no `"type"` key, the server adds the request's
/// `type`, so every line a client reads has one.
pub type HandlerReply = Result<Map<String, Value>, HandlerError>;

/// A handler for one custom frame type. Implemented for every
/// `Fn(CustomFrame, HandlerContext) -> impl Future<Output = HandlerReply>`.
///
/// Handlers run on the session's arbiter thread: they must not block (use
/// `actix_web::rt::task::spawn_blocking` for blocking work). A connection's frames are
/// answered in order, so a slow handler delays only its own connection.
pub trait FrameHandler: Send + Sync + 'static {
    /// Answers one frame.
    fn handle(
        &self,
        frame: CustomFrame,
        ctx: HandlerContext,
    ) -> LocalBoxFuture<'static, HandlerReply>;
}

impl<F, Fut> FrameHandler for F
where
    F: Fn(CustomFrame, HandlerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerReply> + 'static,
{
    fn handle(
        &self,
        frame: CustomFrame,
        ctx: HandlerContext,
    ) -> LocalBoxFuture<'static, HandlerReply> {
        Box::pin(self(frame, ctx))
    }
}

/// A handler name that cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerNameError {
    /// The name is a built-in message type.
    #[error("frame type {0:?} is built in and cannot be given a handler")]
    Builtin(String),
    /// The name is empty.
    #[error("a handler's frame type must not be empty")]
    Empty,
    /// Two handlers for one name.
    #[error("frame type {0:?} has two handlers")]
    Duplicate(String),
}

/// The registered handlers, by frame type. Shared by every session.
#[derive(Clone, Default)]
pub struct Handlers {
    by_kind: Arc<HashMap<String, Arc<dyn FrameHandler>>>,
}

impl Handlers {
    /// Builds the table, refusing built-in, empty and duplicate names.
    pub fn new(
        handlers: impl IntoIterator<Item = (String, Arc<dyn FrameHandler>)>,
    ) -> Result<Self, HandlerNameError> {
        let mut by_kind = HashMap::new();
        for (kind, handler) in handlers {
            if kind.is_empty() {
                return Err(HandlerNameError::Empty);
            }
            if BUILTIN_TYPES.contains(&kind.as_str()) {
                return Err(HandlerNameError::Builtin(kind));
            }
            if by_kind.insert(kind.clone(), handler).is_some() {
                return Err(HandlerNameError::Duplicate(kind));
            }
        }
        Ok(Self {
            by_kind: Arc::new(by_kind),
        })
    }

    /// The handler for `kind`, if any.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn FrameHandler>> {
        self.by_kind.get(kind).cloned()
    }
}
