//! The client identifier (`proj`, the client's ProjNum) and its validation rules.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest `proj` accepted, in UTF-8 bytes.
pub const MAX_PROJ_BYTES: usize = 256;

/// A validated client identifier.
///
/// Backed by an `Arc<str>` because one `proj` is copied into the registry key, the shared client
/// record, every event and every cached session entry: clones must be cheap and allocation-free.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proj(Arc<str>);

/// Why a string is not a valid `proj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProjError {
    /// The string is empty.
    #[error("proj must not be empty")]
    Empty,
    /// The string is longer than [`MAX_PROJ_BYTES`].
    #[error("proj is {0} bytes long, the limit is {MAX_PROJ_BYTES}")]
    TooLong(usize),
    /// The string contains a control character (which would break logs and terminals).
    #[error("proj must not contain control characters")]
    ControlChar,
}

impl Proj {
    /// Validates `s` and wraps it.
    pub fn new(s: &str) -> Result<Self, ProjError> {
        validate(s)?;
        Ok(Self(Arc::from(s)))
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<ProjRef<'_>> for Proj {
    fn eq(&self, other: &ProjRef<'_>) -> bool {
        self.as_str() == other.as_str()
    }
}

/// A validated `proj` borrowed from the frame it was parsed from: a heartbeat for the client a
/// connection already serves is matched against its [`Proj`] without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjRef<'a>(std::borrow::Cow<'a, str>);

impl<'a> ProjRef<'a> {
    /// Validates `s` (as [`Proj::new`] does) and borrows it.
    pub fn new(s: std::borrow::Cow<'a, str>) -> Result<Self, ProjError> {
        validate(&s)?;
        Ok(Self(s))
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An owned, shareable copy.
    pub fn to_proj(&self) -> Proj {
        Proj(Arc::from(&*self.0))
    }
}

impl fmt::Display for ProjRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Proj {
    type Err = ProjError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn validate(s: &str) -> Result<(), ProjError> {
    if s.is_empty() {
        return Err(ProjError::Empty);
    }
    if s.len() > MAX_PROJ_BYTES {
        return Err(ProjError::TooLong(s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err(ProjError::ControlChar);
    }
    Ok(())
}

impl fmt::Display for Proj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Proj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Proj {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Proj {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Proj::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_identifiers() {
        assert_eq!(Proj::new("P-17").unwrap().as_str(), "P-17");
        assert_eq!(Proj::new("é-ü-中").unwrap().as_str(), "é-ü-中");
        assert!(Proj::new(&"x".repeat(MAX_PROJ_BYTES)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_control() {
        assert_eq!(Proj::new(""), Err(ProjError::Empty));
        assert_eq!(
            Proj::new(&"x".repeat(MAX_PROJ_BYTES + 1)),
            Err(ProjError::TooLong(MAX_PROJ_BYTES + 1))
        );
        assert_eq!(Proj::new("a\nb"), Err(ProjError::ControlChar));
        assert_eq!(Proj::new("a\u{7f}"), Err(ProjError::ControlChar));
    }
}
