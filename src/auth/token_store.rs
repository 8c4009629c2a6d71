//! The tokens in force: a global token and `pattern → token` rules, and the one question asked
//! of them, "may this token act for this `proj`?".

use glob::Pattern;
use subtle::{Choice, ConstantTimeEq};

use super::secret::Secret;

/// A rule or token that cannot be used. Its message names the pattern, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenStoreError {
    /// The pattern is not a glob `glob::Pattern` accepts (an unclosed `[`, `**` not alone, ...).
    #[error("pattern {pattern:?} is not a valid glob: {reason}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What the glob parser objects to.
        reason: String,
    },
    /// A rule with an empty pattern would match nothing anyone can send.
    #[error("a pattern is empty")]
    EmptyPattern,
    /// An empty token would let any frame through, or none: refused rather than guessed.
    #[error("the token of pattern {pattern:?} is empty")]
    EmptyToken {
        /// The pattern whose token is empty.
        pattern: String,
    },
}

/// One `pattern = token` line.
struct Rule {
    pattern: Pattern,
    token: Secret,
}

/// An immutable set of tokens. A reload builds a new store and swaps it in whole (see
/// [`super::Authenticator`]), so a check never sees half a reload.
///
/// # What is constant-time
/// [`TokenStore::authorize`] and [`TokenStore::recognizes`] compare the presented token with
/// *every* configured token, byte by byte over the configured token's length, and combine the
/// results without branching ([`subtle::Choice`]). So their duration does not depend on the
/// presented token's contents: not on how many leading bytes are right, nor on which token (or
/// whether any) matched. It does depend on things an attacker knows or that are not secret:
/// the presented token's length, the `proj` and the patterns (glob matching is ordinary code),
/// and the number and total length of the configured tokens.
pub struct TokenStore {
    global: Option<Secret>,
    rules: Vec<Rule>,
    /// Bumped by every reload, so a connection can cache "this token may act for this proj"
    /// and notice when the answer may have changed.
    pub(crate) generation: u64,
}

impl TokenStore {
    /// A store with an optional global token (valid for every `proj`) and `(pattern, token)`
    /// rules, in any order: a token may act for a `proj` if any rule whose pattern matches it
    /// has that token.
    pub fn new(
        global: Option<Secret>,
        rules: impl IntoIterator<Item = (String, Secret)>,
    ) -> Result<Self, TokenStoreError> {
        let rules = rules
            .into_iter()
            .map(|(pattern, token)| {
                if pattern.is_empty() {
                    return Err(TokenStoreError::EmptyPattern);
                }
                if token.is_empty() {
                    return Err(TokenStoreError::EmptyToken { pattern });
                }
                let compiled = Pattern::new(&pattern).map_err(|e| TokenStoreError::BadPattern {
                    reason: e.msg.to_owned(),
                    pattern,
                })?;
                Ok(Rule {
                    pattern: compiled,
                    token,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            global: global.filter(|g| !g.is_empty()),
            rules,
            generation: 0,
        })
    }

    /// Whether `token` may act for `proj`: it is the global token, or the token of a rule whose
    /// pattern matches `proj`. Constant-time in the token (see the type's documentation).
    pub fn authorize(&self, token: &[u8], proj: &str) -> bool {
        let mut granted = self.global_matches(token);
        for rule in &self.rules {
            let covers = Choice::from(u8::from(rule.pattern.matches(proj)));
            granted |= covers & equal(token, rule.token.expose().as_bytes());
        }
        bool::from(granted)
    }

    /// Whether `token` is valid for at least one `proj` (what a `hello` must show).
    /// Constant-time in the token, like [`TokenStore::authorize`].
    pub fn recognizes(&self, token: &[u8]) -> bool {
        let mut known = self.global_matches(token);
        for rule in &self.rules {
            known |= equal(token, rule.token.expose().as_bytes());
        }
        bool::from(known)
    }

    /// How many rules (pattern and token lines) the store holds, for logs.
    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    /// Whether a global token is set.
    pub fn has_global(&self) -> bool {
        self.global.is_some()
    }

    fn global_matches(&self, token: &[u8]) -> Choice {
        self.global
            .as_ref()
            .map_or(Choice::from(0), |g| equal(token, g.expose().as_bytes()))
    }
}

/// `presented == expected` in time that depends only on the lengths, not the contents.
///
/// `subtle`'s slice comparison returns at once when the lengths differ, which would tell an
/// attacker, token by token, which configured tokens have the length they tried. This walks
/// the whole expected token every time, so the total time is the sum of the configured
/// tokens' lengths whatever is presented.
fn equal(presented: &[u8], expected: &[u8]) -> Choice {
    let same_length = (presented.len() as u64).ct_eq(&(expected.len() as u64));
    let mut same_bytes = Choice::from(1);
    for (i, byte) in expected.iter().enumerate() {
        // The branch depends on the presented length and the index only, not on a secret.
        let other = presented.get(i).copied().unwrap_or(0);
        same_bytes &= other.ct_eq(byte);
    }
    same_length & same_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(global: Option<&str>, rules: &[(&str, &str)]) -> TokenStore {
        TokenStore::new(
            global.map(Secret::from),
            rules.iter().map(|(p, t)| (p.to_string(), Secret::from(*t))),
        )
        .unwrap()
    }

    #[test]
    fn a_global_token_covers_every_proj() {
        let s = store(Some("g-token"), &[("A-*", "a-token")]);
        assert!(s.authorize(b"g-token", "A-1"));
        assert!(s.authorize(b"g-token", "anything/at all"));
        assert!(!s.authorize(b"g-token-", "A-1"));
        assert!(!s.authorize(b"g-toke", "A-1"));
        assert!(!s.authorize(b"", "A-1"));
    }

    #[test]
    fn a_rule_covers_the_projs_its_glob_matches() {
        let s = store(
            None,
            &[
                ("A-*", "a-token"),
                ("B-?", "b-token"),
                ("db[0-9]", "db-token"),
            ],
        );
        assert!(s.authorize(b"a-token", "A-1"));
        assert!(s.authorize(b"a-token", "A-"), "* matches nothing too");
        assert!(s.authorize(b"a-token", "A-x/y.z"), "* crosses / and .");
        assert!(!s.authorize(b"a-token", "B-1"));
        assert!(!s.authorize(b"a-token", "a-1"), "case-sensitive");
        assert!(!s.authorize(b"a-token", "xA-1"), "anchored at the start");
        assert!(s.authorize(b"b-token", "B-7"));
        assert!(!s.authorize(b"b-token", "B-77"));
        assert!(s.authorize(b"db-token", "db3"));
        assert!(!s.authorize(b"db-token", "dbx"));
        assert!(!s.authorize(b"wrong", "A-1"));
    }

    #[test]
    fn the_same_proj_may_have_several_tokens_and_a_token_several_patterns() {
        let s = store(None, &[("A-*", "one"), ("A-1", "two"), ("C-*", "one")]);
        assert!(s.authorize(b"one", "A-1"));
        assert!(s.authorize(b"two", "A-1"));
        assert!(!s.authorize(b"two", "A-2"));
        assert!(s.authorize(b"one", "C-9"));
    }

    #[test]
    fn recognizes_any_configured_token_whatever_the_proj() {
        let s = store(Some("g"), &[("A-*", "a-token")]);
        assert!(s.recognizes(b"g"));
        assert!(s.recognizes(b"a-token"));
        assert!(!s.recognizes(b"a-toke"));
        assert!(!s.recognizes(b""));
        let empty = store(None, &[]);
        assert!(!empty.recognizes(b""), "an empty store knows no token");
        assert!(!empty.authorize(b"", "A-1"));
    }

    #[test]
    fn bad_rules_are_refused_naming_the_pattern_never_the_token() {
        let bad = |p: &str, t: &str| {
            TokenStore::new(None, [(p.to_string(), Secret::from(t))])
                .err()
                .expect("refused")
        };
        let e = bad("A-[", "tok-secret");
        assert!(matches!(e, TokenStoreError::BadPattern { .. }), "{e:?}");
        assert!(e.to_string().contains("\"A-[\""), "{e}");
        assert!(!e.to_string().contains("tok-secret"), "{e}");
        assert!(matches!(
            bad("A-**", "t"),
            TokenStoreError::BadPattern { .. }
        ));
        assert_eq!(bad("", "t"), TokenStoreError::EmptyPattern);
        assert!(matches!(bad("A-*", ""), TokenStoreError::EmptyToken { .. }));
    }

    #[test]
    fn equal_is_exact_and_length_aware() {
        let eq = |a: &[u8], b: &[u8]| bool::from(equal(a, b));
        assert!(eq(b"abc", b"abc"));
        assert!(!eq(b"abd", b"abc"));
        assert!(!eq(b"ab", b"abc"), "a prefix is not equal");
        assert!(!eq(b"abc\0", b"abc"), "nor a longer token");
        assert!(!eq(b"abc", b"abc\0"), "zero padding is not a match");
        assert!(eq(b"", b""));
    }
}
