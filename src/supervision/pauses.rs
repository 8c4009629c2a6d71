//! Operators' pauses: clients paused by name, and maintenance windows that pause every client
//! whose proj matches a glob, now and as they come online. Kept in a small file next to the
//! event log, so that a pause survives a restart.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use glob::Pattern;
use serde::{Deserialize, Serialize};

use crate::clock::{self, Instant};
use crate::protocol::Proj;

/// The file, in `storage.path`.
pub(crate) const PAUSES_FILE: &str = "pauses.json";

/// When a pause ends by itself: a wall time (for people and the file) and its monotonic
/// counterpart (for the timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Until {
    pub wall: SystemTime,
    pub at: Instant,
}

impl Until {
    /// `length` from now.
    pub(crate) fn after(length: Duration) -> Self {
        Self {
            wall: clock::wall_now() + length,
            at: clock::now() + length,
        }
    }

    /// At wall time `wall` (read from the file), or `None` if that is past.
    fn at_wall(wall: SystemTime) -> Option<Self> {
        let left = wall.duration_since(clock::wall_now()).ok()?;
        Some(Self {
            wall,
            at: clock::now() + left,
        })
    }
}

/// A maintenance window: every client whose proj matches `pattern` is paused while it lasts.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub pattern: Pattern,
    pub until: Option<Until>,
}

/// A glob that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?} is not a valid glob: {reason}")]
pub struct BadGlob {
    /// The text given.
    pub pattern: String,
    /// What the glob parser objects to.
    pub reason: String,
}

/// Parses a glob as maintenance windows use them (`*`, `?`, `[a-z]`, `[!a-z]`). Projs are
/// not paths: a run of `*` is one `*` (the glob crate refuses `**` inside a component).
pub(crate) fn glob(pattern: &str) -> Result<Pattern, BadGlob> {
    if pattern.is_empty() {
        return Err(BadGlob {
            pattern: pattern.into(),
            reason: "it is empty".into(),
        });
    }
    let mut collapsed = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if !(c == '*' && collapsed.ends_with('*')) {
            collapsed.push(c);
        }
    }
    Pattern::new(&collapsed).map_err(|e| BadGlob {
        pattern: pattern.into(),
        reason: e.msg.into(),
    })
}

/// The pauses in force.
#[derive(Debug, Default)]
pub(crate) struct PauseBook {
    /// Clients paused by name, each until when (`None`: until resumed).
    projs: BTreeMap<Proj, Option<Until>>,
    windows: Vec<Window>,
    /// Where the book is kept (`None`: not kept, without an event log).
    file: Option<PathBuf>,
}

/// What covers a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cover {
    /// A pause by name.
    Proj(Option<Until>),
    /// A window, by its glob.
    Window(String, Option<Until>),
}

impl Cover {
    pub(crate) fn until(&self) -> Option<Until> {
        match self {
            Cover::Proj(until) | Cover::Window(_, until) => *until,
        }
    }

    pub(crate) fn window(&self) -> Option<String> {
        match self {
            Cover::Proj(_) => None,
            Cover::Window(glob, _) => Some(glob.clone()),
        }
    }
}

/// The file's shape.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    #[serde(default)]
    projs: Vec<StoredPause>,
    #[serde(default)]
    windows: Vec<StoredPause>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPause {
    /// A proj, or a window's glob.
    proj: String,
    #[serde(default, with = "crate::clock::rfc3339_opt")]
    until: Option<SystemTime>,
}

impl PauseBook {
    /// The book kept in `dir` (read from its file, if there is one; pauses that ran out while
    /// the server was down are dropped), or an empty one kept nowhere.
    pub(crate) fn open(dir: Option<&Path>) -> Self {
        let Some(dir) = dir else {
            return Self::default();
        };
        let file = dir.join(PAUSES_FILE);
        let mut book = Self {
            file: Some(file.clone()),
            ..Self::default()
        };
        let stored: Stored = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(stored) => stored,
                Err(e) => {
                    log::warn!(
                        "{}: not a pause list ({e}); starting with none",
                        file.display()
                    );
                    return book;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return book,
            Err(e) => {
                log::warn!(
                    "{}: cannot read it ({e}); starting with no pause",
                    file.display()
                );
                return book;
            }
        };
        // A pause with an end that has passed is dropped; one without an end stays.
        let until = |wall: Option<SystemTime>| match wall {
            None => Some(None),
            Some(wall) => Until::at_wall(wall).map(Some),
        };
        for p in stored.projs {
            match (Proj::new(&p.proj), until(p.until)) {
                (Ok(proj), Some(until)) => {
                    book.projs.insert(proj, until);
                }
                (Err(e), _) => log::warn!("{}: skipping proj {:?}: {e}", file.display(), p.proj),
                (_, None) => {}
            }
        }
        for w in stored.windows {
            match (glob(&w.proj), until(w.until)) {
                (Ok(pattern), Some(until)) => book.windows.push(Window { pattern, until }),
                (Err(e), _) => log::warn!("{}: skipping a window: {e}", file.display()),
                (_, None) => {}
            }
        }
        let (projs, windows) = (book.projs.len(), book.windows.len());
        if projs + windows > 0 {
            log::info!(
                "{}: {projs} paused client(s) and {windows} maintenance window(s) restored",
                file.display()
            );
        }
        book
    }

    /// What pauses `proj`, if anything: its own pause first, then the first window over it.
    pub(crate) fn cover(&self, proj: &Proj) -> Option<Cover> {
        if let Some(until) = self.projs.get(proj) {
            return Some(Cover::Proj(*until));
        }
        self.windows
            .iter()
            .find(|w| w.pattern.matches(proj.as_str()))
            .map(|w| Cover::Window(w.pattern.as_str().to_owned(), w.until))
    }

    /// Pauses `proj` by name (replacing the end of an earlier pause of it).
    pub(crate) fn pause_proj(&mut self, proj: Proj, until: Option<Until>) {
        self.projs.insert(proj, until);
    }

    /// Opens a window (replacing the end of one with the same glob).
    pub(crate) fn pause_window(&mut self, pattern: Pattern, until: Option<Until>) {
        match self.windows.iter_mut().find(|w| w.pattern == pattern) {
            Some(window) => window.until = until,
            None => self.windows.push(Window { pattern, until }),
        }
    }

    /// Ends `proj`'s own pause. Answers whether it had one.
    pub(crate) fn resume_proj(&mut self, proj: &Proj) -> bool {
        self.projs.remove(proj).is_some()
    }

    /// Ends the window with this glob and the pauses of the projs it matches.
    pub(crate) fn resume_glob(&mut self, pattern: &Pattern) {
        self.windows.retain(|w| &w.pattern != pattern);
        self.projs.retain(|p, _| !pattern.matches(p.as_str()));
    }

    /// Keeps only the pauses by name of the projs `known` accepts.
    pub(crate) fn keep_only(&mut self, known: impl Fn(&Proj) -> bool) {
        let before = self.projs.len();
        self.projs.retain(|p, _| known(p));
        if self.projs.len() != before {
            self.save();
        }
    }

    /// Forgets a client that went offline: a pause by name is for a known client.
    pub(crate) fn forget(&mut self, proj: &Proj) -> bool {
        self.projs.remove(proj).is_some()
    }

    /// Ends every pause whose end is `now` or past. Answers whether any ended.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let before = self.projs.len() + self.windows.len();
        let live = |until: &Option<Until>| until.is_none_or(|u| u.at > now);
        self.projs.retain(|_, until| live(until));
        self.windows.retain(|w| live(&w.until));
        before != self.projs.len() + self.windows.len()
    }

    /// The next moment a pause ends by itself.
    pub(crate) fn next_end(&self) -> Option<Instant> {
        let projs = self.projs.values().flatten().map(|u| u.at);
        let windows = self.windows.iter().filter_map(|w| w.until).map(|u| u.at);
        projs.chain(windows).min()
    }

    /// Writes the book to its file (atomically: a temporary file renamed over it). A failure
    /// is logged: the pauses stay in force until the server stops.
    pub(crate) fn save(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let stored = Stored {
            projs: self
                .projs
                .iter()
                .map(|(p, until)| StoredPause {
                    proj: p.as_str().to_owned(),
                    until: until.map(|u| u.wall),
                })
                .collect(),
            windows: self
                .windows
                .iter()
                .map(|w| StoredPause {
                    proj: w.pattern.as_str().to_owned(),
                    until: w.until.map(|u| u.wall),
                })
                .collect(),
        };
        let temp = file.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&stored)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let mut f = std::fs::File::create(&temp)?;
                f.write_all(&bytes)?;
                f.sync_data()
            })
            .and_then(|()| std::fs::rename(&temp, file));
        if let Err(e) = written {
            log::error!(
                "{}: cannot save the pauses ({e}); they hold until the server stops",
                file.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proj(s: &str) -> Proj {
        Proj::new(s).unwrap()
    }

    #[test]
    fn globs_the_api_documents_are_taken_and_broken_ones_refused() {
        // Every one matches the OpenAPI document's pattern for a window's `proj`.
        for good in [
            "A-*", "A-**", "*", "?-1", "[a-z]x", "[!a]", "[z-a]", "x[a-]", "Ω*", "a]", "]",
        ] {
            assert!(glob(good).is_ok(), "{good}");
        }
        assert!(glob("A-**").unwrap().matches("A-1"));
        for bad in ["", "A-[", "[]", "a][", "[!]"] {
            assert!(glob(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_cover_by_name_then_by_window_and_expire() {
        let mut book = PauseBook::default();
        let ten = Until::after(Duration::from_secs(600));
        book.pause_window(glob("A-*").unwrap(), Some(ten));
        book.pause_proj(proj("A-1"), None);
        assert_eq!(book.cover(&proj("A-1")), Some(Cover::Proj(None)));
        assert_eq!(
            book.cover(&proj("A-2")),
            Some(Cover::Window("A-*".into(), Some(ten)))
        );
        assert_eq!(book.cover(&proj("B-1")), None);
        assert_eq!(book.next_end(), Some(ten.at));
        assert!(!book.expire(ten.at - Duration::from_millis(1)));
        assert!(book.expire(ten.at));
        assert_eq!(book.cover(&proj("A-2")), None);
        assert_eq!(book.cover(&proj("A-1")), Some(Cover::Proj(None)), "no end");
        book.resume_glob(&glob("A-*").unwrap());
        assert_eq!(
            book.cover(&proj("A-1")),
            None,
            "a glob resume ends pauses by name"
        );
        assert!(glob("A-[").is_err() && glob("").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_book_survives_in_its_file_without_what_ran_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = PauseBook::open(Some(dir.path()));
        book.pause_proj(proj("P-1"), None);
        book.pause_proj(proj("P-2"), Some(Until::after(Duration::from_secs(3600))));
        book.pause_window(glob("M-*").unwrap(), None);
        // Ended an hour ago by the wall clock: dropped when read back.
        book.pause_window(
            glob("old-*").unwrap(),
            Some(Until {
                wall: SystemTime::now() - Duration::from_secs(3600),
                at: clock::now(),
            }),
        );
        book.save();
        let back = PauseBook::open(Some(dir.path()));
        assert_eq!(back.cover(&proj("P-1")), Some(Cover::Proj(None)));
        assert!(matches!(
            back.cover(&proj("P-2")),
            Some(Cover::Proj(Some(_)))
        ));
        assert_eq!(
            back.cover(&proj("M-9")),
            Some(Cover::Window("M-*".into(), None))
        );
        assert_eq!(back.cover(&proj("old-1")), None);
        std::fs::write(dir.path().join(PAUSES_FILE), "garbage").unwrap();
        assert_eq!(PauseBook::open(Some(dir.path())).cover(&proj("P-1")), None);
    }
}
