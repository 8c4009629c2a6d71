//! The files of the event log: `events-<first seq>.jsonl`, read line by line.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::log_record::LogRecord;

const PREFIX: &str = "events-";
const SUFFIX: &str = ".jsonl";

/// One file of the log. Its name is the sequence number of the first event written to it,
/// zero-padded so that names sort like numbers; it starts with a snapshot of the clients
/// online at that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The first sequence number it may hold.
    pub start: u64,
    /// Its path.
    pub path: PathBuf,
}

impl Segment {
    /// The segment of `dir` whose first event is `start`.
    pub fn new(dir: &Path, start: u64) -> Self {
        Self {
            start,
            path: dir.join(format!("{PREFIX}{start:020}{SUFFIX}")),
        }
    }

    /// The segments in `dir`, oldest first. Files with other names are ignored.
    pub fn list(dir: &Path) -> io::Result<Vec<Segment>> {
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(start) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push(Segment {
                start,
                path: entry.path(),
            });
        }
        segments.sort_by_key(|s| s.start);
        Ok(segments)
    }

    /// Its size in bytes (0 if it is gone).
    pub fn bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

/// A line of a segment that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadLine {
    /// The file ends in the middle of a line: the process died while writing it.
    Torn {
        /// Its line number, from 1.
        line: usize,
    },
    /// A complete line that is not a log record.
    Corrupt {
        /// Its line number, from 1.
        line: usize,
        /// What the parser said.
        error: String,
    },
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadLine::Torn { line } => write!(f, "line {line} is incomplete (torn write)"),
            BadLine::Corrupt { line, error } => write!(f, "line {line} is not a record: {error}"),
        }
    }
}

/// Reads every record of `segment` in order, calling `record` for each (with the byte offset
/// where it starts) and `bad` for each line that cannot be used (skipped: one bad line must
/// never stop a server from starting).
pub fn read_all(
    segment: &Segment,
    mut record: impl FnMut(LogRecord, u64),
    mut bad: impl FnMut(BadLine),
) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(&segment.path)?);
    let mut line = Vec::with_capacity(256);
    let mut number = 0;
    let mut offset = 0u64;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        let start = offset;
        offset += read as u64;
        number += 1;
        if line.last() != Some(&b'\n') {
            bad(BadLine::Torn { line: number });
            return Ok(());
        }
        match serde_json::from_slice::<LogRecord>(&line) {
            Ok(r) => record(r, start),
            Err(e) => bad(BadLine::Corrupt {
                line: number,
                error: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lists_segments_in_numeric_order_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for start in [100, 9, 1] {
            File::create(Segment::new(dir.path(), start).path).unwrap();
        }
        File::create(dir.path().join("LOCK")).unwrap();
        File::create(dir.path().join("events-x.jsonl")).unwrap();
        let starts: Vec<u64> = Segment::list(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.start)
            .collect();
        assert_eq!(starts, [1, 9, 100]);
    }

    #[test]
    fn skips_a_torn_last_line_and_a_corrupt_one() {
        let dir = tempfile::tempdir().unwrap();
        let segment = Segment::new(dir.path(), 1);
        let mut f = File::create(&segment.path).unwrap();
        writeln!(f, r#"{{"event":"snapshot_end","clients":0}}"#).unwrap();
        writeln!(f, "garbage").unwrap();
        writeln!(f, r#"{{"event":"snapshot_end","clients":1}}"#).unwrap();
        write!(f, r#"{{"event":"onl"#).unwrap();
        let mut records = Vec::new();
        let mut bad = Vec::new();
        read_all(&segment, |r, _| records.push(r), |b| bad.push(b)).unwrap();
        assert_eq!(
            records,
            [
                LogRecord::SnapshotEnd { clients: 0 },
                LogRecord::SnapshotEnd { clients: 1 }
            ]
        );
        assert_eq!(bad.len(), 2);
        assert!(matches!(bad[0], BadLine::Corrupt { line: 2, .. }));
        assert_eq!(bad[1], BadLine::Torn { line: 4 });
    }
}
