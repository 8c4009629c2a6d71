//! The tokens in force, swappable at run time: what SIGHUP (or [`crate::Running::reload_tokens`])
//! replaces, and what every session reads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::secret::Secret;
use super::token_store::{TokenStore, TokenStoreError};
use super::tokens_file::{self, TokensFileError};
use crate::config::AuthConfig;
use crate::metrics::Metrics;

/// The protocol tokens cannot be used. The message names the key or file at fault, never a
/// token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `auth.proj_tokens` holds a bad pattern or an empty token.
    #[error("auth.proj_tokens: {0}")]
    ProjTokens(TokenStoreError),
    /// `auth.tokens_file` cannot be read or parsed.
    #[error("auth.tokens_file: {0}")]
    File(#[from] TokensFileError),
    /// `auth.tokens_file` reads, but holds a bad pattern or an empty token.
    #[error("auth.tokens_file: {}: {source}", path.display())]
    FileRules {
        /// The file.
        path: PathBuf,
        /// The bad rule.
        source: TokenStoreError,
    },
    /// A reload was asked for, but no `auth.tokens_file` is configured.
    #[error("no auth.tokens_file is configured, so there is nothing to reload")]
    NothingToReload,
}

impl AuthError {
    /// The configuration key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            AuthError::ProjTokens(_) => "auth.proj_tokens",
            _ => "auth.tokens_file",
        }
    }
}

/// How a reload ended (the label of `heartwatch_auth_reloads_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadOutcome {
    /// The new tokens are in force.
    Ok,
    /// The file could not be used; the previous tokens stay in force.
    Failed,
}

impl ReloadOutcome {
    /// Every outcome, for metrics.
    pub const ALL: [ReloadOutcome; 2] = [ReloadOutcome::Ok, ReloadOutcome::Failed];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Ok => "ok",
            ReloadOutcome::Failed => "failed",
        }
    }
}

/// What a successful reload put in force, for the caller to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    /// Rules (pattern and token lines) now in force, from the configuration and the file.
    pub rules: usize,
}

/// The protocol tokens: those of the configuration, fixed at start, and those of
/// `auth.tokens_file`, re-read by [`Authenticator::reload`].
///
/// The store sits behind an [`ArcSwap`]: sessions on every arbiter read it without a lock, and
/// a reload swaps in a complete new store in one step. Sessions are not touched: each one
/// notices the new store's generation at its next frame and checks its token again, so a
/// removed token stops working at the next frame of every connection that used it.
pub struct Authenticator {
    current: ArcSwap<TokenStore>,
    global: Option<Secret>,
    proj_tokens: Vec<(String, Secret)>,
    tokens_file: Option<PathBuf>,
    /// Reloads one at a time, so two SIGHUPs in a row cannot swap in out of order.
    reloading: Mutex<()>,
    metrics: Option<Arc<Metrics>>,
}

impl Authenticator {
    /// The authenticator for `config`, or `None` when authentication is off (no `token`, no
    /// `proj_tokens`, no `tokens_file`). Reads the tokens file once.
    pub fn from_config(
        config: &AuthConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Option<Self>, AuthError> {
        if !config.protocol_auth() {
            return Ok(None);
        }
        let global = Some(config.token.clone()).filter(|t| !t.is_empty());
        let proj_tokens: Vec<(String, Secret)> = config
            .proj_tokens
            .iter()
            .map(|(p, t)| (p.clone(), t.clone()))
            .collect();
        // The configuration's rules on their own first, so that an error names the right key.
        TokenStore::new(None, proj_tokens.clone()).map_err(AuthError::ProjTokens)?;
        let tokens_file = Some(config.tokens_file.clone()).filter(|p| !p.as_os_str().is_empty());
        let authenticator = Self {
            current: ArcSwap::from_pointee(TokenStore::new(None, [])?),
            global,
            proj_tokens,
            tokens_file,
            reloading: Mutex::new(()),
            metrics,
        };
        let store = authenticator.build()?;
        authenticator.current.store(Arc::new(store));
        Ok(Some(authenticator))
    }

    /// The tokens in force now. Cheap (no lock); hold the guard only for one check.
    pub fn current(&self) -> arc_swap::Guard<Arc<TokenStore>> {
        self.current.load()
    }

    /// Re-reads `auth.tokens_file` and puts its rules, with those of the configuration, in
    /// force. If the file cannot be read or holds a bad rule, the error is logged (naming the
    /// file) and returned, and the previous tokens stay in force.
    pub fn reload(&self) -> Result<Reloaded, AuthError> {
        let Some(path) = &self.tokens_file else {
            return Err(AuthError::NothingToReload);
        };
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        match self.build() {
            Ok(mut store) => {
                store.generation = self.current.load().generation.wrapping_add(1);
                let rules = store.rules();
                self.current.store(Arc::new(store));
                self.count(ReloadOutcome::Ok);
                log::info!(
                    "auth: reloaded {}: {rules} pattern rules in force",
                    path.display()
                );
                Ok(Reloaded { rules })
            }
            Err(e) => {
                self.count(ReloadOutcome::Failed);
                log::error!("auth: reload failed, keeping the previous tokens: {e}");
                Err(e)
            }
        }
    }

    fn build(&self) -> Result<TokenStore, AuthError> {
        let mut rules = self.proj_tokens.clone();
        if let Some(path) = &self.tokens_file {
            rules.extend(tokens_file::read(path)?);
        }
        TokenStore::new(self.global.clone(), rules).map_err(|source| match &self.tokens_file {
            Some(path) => AuthError::FileRules {
                path: path.clone(),
                source,
            },
            None => AuthError::ProjTokens(source),
        })
    }

    fn count(&self, outcome: ReloadOutcome) {
        if let Some(metrics) = &self.metrics {
            metrics.auth_reload(outcome);
        }
    }
}

impl From<TokenStoreError> for AuthError {
    fn from(e: TokenStoreError) -> Self {
        AuthError::ProjTokens(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hw-authenticator-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config_with_file(path: &std::path::Path) -> AuthConfig {
        AuthConfig {
            tokens_file: path.to_owned(),
            proj_tokens: [("C-*".to_string(), Secret::from("conf-token"))].into(),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn off_unless_some_token_is_configured() {
        let off = Authenticator::from_config(&AuthConfig::default(), None).unwrap();
        assert!(off.is_none());
        let http_only = AuthConfig {
            http_token: "h".into(),
            ..AuthConfig::default()
        };
        assert!(Authenticator::from_config(&http_only, None)
            .unwrap()
            .is_none());
        let global = AuthConfig {
            token: Secret::from("g"),
            ..AuthConfig::default()
        };
        let auth = Authenticator::from_config(&global, None).unwrap().unwrap();
        assert!(auth.current().authorize(b"g", "any"));
        assert!(matches!(auth.reload(), Err(AuthError::NothingToReload)));
    }

    #[test]
    fn a_reload_replaces_the_file_rules_and_keeps_them_when_it_fails() {
        let path = dir().join("reload.toml");
        std::fs::write(&path, "\"A-*\" = \"old-token\"\n").unwrap();
        let metrics = Arc::new(Metrics::new());
        let auth = Authenticator::from_config(&config_with_file(&path), Some(metrics.clone()))
            .unwrap()
            .unwrap();
        let first = auth.current().generation;
        assert!(auth.current().authorize(b"old-token", "A-1"));
        assert!(auth.current().authorize(b"conf-token", "C-1"));

        std::fs::write(&path, "\"A-*\" = \"new-token\"\n").unwrap();
        assert_eq!(auth.reload().unwrap(), Reloaded { rules: 2 });
        let store = auth.current();
        assert!(store.authorize(b"new-token", "A-1"));
        assert!(
            !store.authorize(b"old-token", "A-1"),
            "a removed token is refused"
        );
        assert!(
            store.authorize(b"conf-token", "C-1"),
            "configured rules stay"
        );
        assert_ne!(store.generation, first);
        drop(store);

        for broken in ["\"A-*\" = \"x\n", "\"A-[\" = \"x\"\n", "\"A-*\" = \"\"\n"] {
            std::fs::write(&path, broken).unwrap();
            let e = auth.reload().unwrap_err();
            assert_eq!(e.key(), "auth.tokens_file");
            assert!(e.to_string().contains("reload.toml"), "{e}");
            assert!(
                auth.current().authorize(b"new-token", "A-1"),
                "kept after {broken:?}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert!(
            auth.reload().is_err(),
            "a vanished file keeps the tokens too"
        );
        assert!(auth.current().authorize(b"new-token", "A-1"));
        assert_eq!(metrics.auth_reloads(ReloadOutcome::Ok), 1);
        assert_eq!(metrics.auth_reloads(ReloadOutcome::Failed), 4);
    }

    #[test]
    fn errors_at_start_name_the_key() {
        let bad_pattern = AuthConfig {
            proj_tokens: [("[".to_string(), Secret::from("t"))].into(),
            ..AuthConfig::default()
        };
        let e = Authenticator::from_config(&bad_pattern, None)
            .err()
            .unwrap();
        assert_eq!(e.key(), "auth.proj_tokens");
        let missing = config_with_file(std::path::Path::new("/nonexistent/hw-tokens.toml"));
        let e = Authenticator::from_config(&missing, None).err().unwrap();
        assert_eq!(e.key(), "auth.tokens_file");
        assert!(e.to_string().contains("/nonexistent/hw-tokens.toml"), "{e}");
    }
}
