//! What one connection has proved, and the check every frame passes when authentication is on.

use std::sync::Arc;

use super::authenticator::Authenticator;
use super::grant::Grant;
use super::secret::Secret;
use crate::protocol::{Proj, Token};

/// What a frame asks to do, as far as authentication is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// A heartbeat or an offline: needs a token valid for this `proj`.
    Proj(&'a str),
    /// A `hello`: its token must be valid for at least one `proj`.
    Hello,
    /// A custom frame, whose `proj` (if any) only its handler knows: needs a token valid for
    /// at least one `proj`, its own or the connection's hello token.
    Custom,
    /// A `pong`, which has no effect: needs a connection that has already had a frame accepted.
    Pong,
}

impl Scope<'_> {
    /// The `unauthorized` message. It names what was asked, never a token.
    pub(crate) fn refusal(&self) -> String {
        match self {
            Scope::Proj(proj) => format!(
                "no valid token for proj {proj:?} (send hello first, or a token field); closing the connection"
            ),
            Scope::Hello => "hello needs a valid token; closing the connection".into(),
            Scope::Custom | Scope::Pong => {
                "this connection has not authenticated (send hello first, or a token field); closing the connection".into()
            }
        }
    }
}

/// The authentication state of one connection, present only when authentication is on.
pub(crate) struct ConnectionAuth {
    auth: Arc<Authenticator>,
    /// The token of the last accepted `hello`.
    hello: Option<Secret>,
    /// The `proj` the hello token was last found valid for, and the store generation that
    /// said so: a connection that beats for one `proj` is checked once, not per heartbeat,
    /// until a reload changes the generation.
    cleared: Option<(u64, Proj)>,
    /// Whether any frame of this connection was accepted with a valid token.
    authenticated: bool,
}

impl ConnectionAuth {
    /// A connection that has shown nothing yet.
    pub(crate) fn new(auth: Arc<Authenticator>) -> Self {
        Self {
            auth,
            hello: None,
            cleared: None,
            authenticated: false,
        }
    }

    /// Whether a frame of `scope` carrying `token` may proceed. An accepted `hello` becomes
    /// the connection's token.
    pub(crate) fn admits(&mut self, scope: Scope<'_>, token: Option<&Token<'_>>) -> bool {
        let store = self.auth.current();
        let admitted = match scope {
            Scope::Proj(proj) => {
                if let Some((generation, cleared)) = &self.cleared {
                    if *generation == store.generation && cleared.as_str() == proj {
                        return true;
                    }
                }
                if token.is_some_and(|t| store.authorize(t.as_bytes(), proj)) {
                    true
                } else if self
                    .hello
                    .as_ref()
                    .is_some_and(|h| store.authorize(h.expose().as_bytes(), proj))
                {
                    // Proj::new cannot fail: the frame's proj was validated when parsed.
                    self.cleared = Proj::new(proj).ok().map(|p| (store.generation, p));
                    true
                } else {
                    false
                }
            }
            Scope::Hello => match token {
                Some(t) if store.recognizes(t.as_bytes()) => {
                    self.hello = Some(Secret::new(t.expose()));
                    self.cleared = None;
                    true
                }
                _ => false,
            },
            Scope::Custom => {
                token.is_some_and(|t| store.recognizes(t.as_bytes()))
                    || self
                        .hello
                        .as_ref()
                        .is_some_and(|h| store.recognizes(h.expose().as_bytes()))
            }
            Scope::Pong => {
                self.authenticated || token.is_some_and(|t| store.recognizes(t.as_bytes()))
            }
        };
        self.authenticated |= admitted;
        admitted
    }

    /// What this connection, and a frame carrying `token`, may act on.
    pub(crate) fn grant(&self, token: Option<&Token<'_>>) -> Grant {
        let tokens = self
            .hello
            .iter()
            .cloned()
            .chain(token.map(|t| Secret::new(t.expose())))
            .collect();
        Grant::tokens(self.auth.clone(), tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthConfig;

    fn auth() -> Arc<Authenticator> {
        let config = AuthConfig {
            token: Secret::from("global"),
            proj_tokens: [("A-*".to_string(), Secret::from("a-token"))].into(),
            ..AuthConfig::default()
        };
        Arc::new(Authenticator::from_config(&config, None).unwrap().unwrap())
    }

    #[test]
    fn hello_covers_the_projs_of_its_token() {
        let mut c = ConnectionAuth::new(auth());
        let a1 = "A-1";
        let b1 = "B-1";
        assert!(!c.admits(Scope::Pong, None), "nothing shown yet");
        assert!(!c.admits(Scope::Proj(a1), None));
        assert!(!c.admits(Scope::Hello, Some(&Token::new("nope"))));
        assert!(!c.admits(Scope::Hello, None));
        assert!(c.admits(Scope::Hello, Some(&Token::new("a-token"))));
        assert!(c.admits(Scope::Proj(a1), None));
        assert!(c.admits(Scope::Proj(a1), None), "cached");
        assert!(!c.admits(Scope::Proj(b1), None));
        assert!(c.admits(Scope::Custom, None));
        assert!(c.admits(Scope::Pong, None));
        let grant = c.grant(None);
        assert!(grant.covers("A-7"));
        assert!(
            !grant.covers("B-1"),
            "a handler may not act beyond the tokens shown"
        );
        assert!(c.grant(Some(&Token::new("global"))).covers("B-1"));
    }

    #[test]
    fn a_frame_token_covers_its_own_frame_only() {
        let mut c = ConnectionAuth::new(auth());
        let b1 = "B-1";
        assert!(c.admits(Scope::Proj(b1), Some(&Token::new("global"))));
        assert!(!c.admits(Scope::Proj(b1), None), "not remembered");
        assert!(!c.admits(Scope::Proj(b1), Some(&Token::new("a-token"))));
        assert!(!c.admits(Scope::Custom, None));
        assert!(c.admits(Scope::Custom, Some(&Token::new("a-token"))));
        assert!(
            c.admits(Scope::Pong, None),
            "the connection has had a frame accepted"
        );
    }
}
