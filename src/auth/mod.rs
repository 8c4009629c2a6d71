//! Protocol authentication: who may beat for, or take offline, which `proj` (docs/auth.md).
//!
//! - [`Secret`]: a token that never prints.
//! - `TokenStore`: the global token and the `pattern → token` rules, and the constant-time
//!   check `authorize(token, proj)`.
//! - `tokens_file`: reading `auth.tokens_file`.
//! - `Authenticator`: the store in force, swapped whole by a reload (SIGHUP).
//! - `ConnectionAuth`: what one connection has shown, checked at every frame.
//! - [`Grant`]: what a connection's tokens allow, handed to custom handlers.

mod authenticator;
mod connection_auth;
mod grant;
mod secret;
mod token_store;
pub(crate) mod tokens_file;

pub(crate) use authenticator::Authenticator;
pub use authenticator::{AuthError, ReloadOutcome, Reloaded};
pub(crate) use connection_auth::{ConnectionAuth, Scope};
pub use grant::Grant;
pub use secret::Secret;
pub use token_store::TokenStoreError;
pub use tokens_file::TokensFileError;
