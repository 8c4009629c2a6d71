//! What a connection's tokens allow, for code that acts on its behalf later.

use std::sync::Arc;

use super::authenticator::Authenticator;
use super::secret::Secret;

/// The `proj`s a connection may act on, as shown by its tokens: given to a custom handler
/// with each frame, so that a handler that takes a `proj` from the frame acts only on what
/// the connection itself could beat for or take offline.
///
/// It keeps the tokens, not a list of projs, and checks them against the store in force
/// when asked: a reload (SIGHUP) that revokes a token also revokes what a handler may do.
#[derive(Clone)]
pub enum Grant {
    /// Authentication is off (or the caller is the embedding application): everything.
    All,
    /// Whatever these tokens cover (the connection's hello token and the frame's own).
    Tokens {
        /// The tokens in force.
        auth: Arc<Authenticator>,
        /// The tokens the connection has shown.
        tokens: Vec<Secret>,
    },
}

impl Grant {
    /// Whether the connection may act on `proj`.
    pub fn covers(&self, proj: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Tokens { auth, tokens } => {
                let store = auth.current();
                // Every token is checked, without an early exit.
                tokens.iter().fold(false, |ok, t| {
                    store.authorize(t.expose().as_bytes(), proj) | ok
                })
            }
        }
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::All => f.write_str("Grant::All"),
            Grant::Tokens { tokens, .. } => write!(f, "Grant::Tokens({} token(s))", tokens.len()),
        }
    }
}
