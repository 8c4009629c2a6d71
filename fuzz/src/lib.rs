//! Helpers shared by the fuzz targets in `fuzz_targets/` (docs/fuzzing.md).

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// How many times each top-level key of a JSON object occurs. serde_json's `Value` keeps
/// only the last of repeated keys, and the protocol gives repeated keys a meaning (`bad_json`
/// for the server's own fields), so the targets count them.
pub struct KeyCounts(pub HashMap<String, usize>);

impl KeyCounts {
    /// Reads `json` as an object; `None` if it is not one serde_json accepts.
    pub fn of(json: &[u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }

    /// Whether any key occurs more than once.
    pub fn repeats_any(&self) -> bool {
        self.0.values().any(|n| *n > 1)
    }

    /// Whether `key` occurs more than once.
    pub fn repeats(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|n| *n > 1)
    }
}

impl<'de> Deserialize<'de> for KeyCounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(Counter)
    }
}

struct Counter;

impl<'de> Visitor<'de> for Counter {
    type Value = KeyCounts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyCounts, A::Error> {
        let mut counts = HashMap::new();
        while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
            *counts.entry(key).or_insert(0) += 1;
        }
        Ok(KeyCounts(counts))
    }
}
