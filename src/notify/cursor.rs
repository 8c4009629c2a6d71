//! How far a webhook has delivered, kept on disk across restarts.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `<storage.path>/webhooks/<name>.cursor`: the sequence number of the last event the webhook
/// delivered (or skipped by its filter). Replaced atomically (write, then rename), so a crash
/// leaves the old or the new value, never a mix. It is written after the delivery, so a crash
/// in between delivers that event again after the restart: delivery is at least once, and the
/// `x-heartwatch-delivery` header lets a receiver drop the duplicate.
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    /// The cursor of webhook `name` in the log directory `dir`.
    pub fn new(dir: &Path, name: &str) -> io::Result<Self> {
        let dir = dir.join("webhooks");
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            path: dir.join(format!("{name}.cursor")),
        })
    }

    /// A cursor kept in the file `path` (its directory must exist): the cluster's outbox
    /// marks with one how far the log has been published to Redis.
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The stored value; `None` for a webhook that never ran here (it starts at the end of
    /// the log: a new webhook is not sent the history).
    pub fn load(&self) -> io::Result<Option<u64>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the stored value.
    pub fn store(&self, seq: u64) -> io::Result<()> {
        let temp = self.path.with_extension("cursor.tmp");
        let mut file = std::fs::File::create(&temp)?;
        writeln!(file, "{seq}")?;
        drop(file);
        std::fs::rename(&temp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cursor = CursorFile::new(dir.path(), "hook").unwrap();
        assert_eq!(cursor.load().unwrap(), None);
        cursor.store(41).unwrap();
        cursor.store(42).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(42));
        assert_eq!(
            CursorFile::new(dir.path(), "hook").unwrap().load().unwrap(),
            Some(42)
        );
    }
}
