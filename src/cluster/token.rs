//! Fencing tokens.

use std::fmt;
use std::sync::Arc;

/// The token of one claim of a client by one node: the owner's transitions for that client
/// carry it, and Redis applies them only while it is the token in force. A client that moves
/// to another node gets a new token there, which fences whatever the node it left still
/// decides about it (its watchdog's offline, a replayed claim).
///
/// Tokens are compared for equality only, never ordered: 128 random bits per claim, so a reset
/// or failed-over Redis cannot make a stale token match again. Adopted clients get tokens made
/// by the adopting script (`<random base><index>`), unique the same way.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(Arc<str>);

impl ClaimToken {
    /// A fresh random token.
    pub fn new() -> Self {
        Self(Arc::from(random_hex().as_str()))
    }

    /// A token as Redis stores it.
    pub(crate) fn from_wire(s: &str) -> Self {
        Self(Arc::from(s))
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimToken({})", self.0)
    }
}

impl fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 128 random bits as 32 hex digits.
pub(crate) fn random_hex() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct() {
        let a = ClaimToken::new();
        let b = ClaimToken::new();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(!a.as_str().contains(' '));
    }
}
