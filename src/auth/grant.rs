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
pub struct Grant(Scope);

#[derive(Clone)]
enum Scope {
    /// Authentication is off: everything.
    All,
    /// Whatever these tokens cover (the connection's hello token and the frame's own).
    Tokens {
        auth: Arc<Authenticator>,
        tokens: Vec<Secret>,
    },
}

impl Grant {
    /// Everything: authentication is off.
    pub(crate) fn all() -> Self {
        Self(Scope::All)
    }

    /// What `tokens` cover, checked against the store in force when asked.
    pub(crate) fn tokens(auth: Arc<Authenticator>, tokens: Vec<Secret>) -> Self {
        Self(Scope::Tokens { auth, tokens })
    }

    /// Whether the connection may act on `proj`.
    pub fn covers(&self, proj: &str) -> bool {
        match &self.0 {
            Scope::All => true,
            Scope::Tokens { auth, tokens } => {
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
        match &self.0 {
            Scope::All => f.write_str("Grant(all)"),
            Scope::Tokens { tokens, .. } => write!(f, "Grant({} token(s))", tokens.len()),
        }
    }
}
