//! Finding one event of the log by its sequence number, without reading the log from the start:
//! a sparse index of where some events start, kept by the writer as it writes and rebuilt at
//! recovery. The history reads each client's events through it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use super::log_record::LogRecord;
use super::segment::Segment;

/// An event every this many is indexed (and the first of each segment): a lookup reads at most
/// this many lines, and the index costs 24 bytes per this many events.
const EVERY: u64 = 64;

/// Where some events start: `seq` → (the segment's first seq, byte offset in it).
#[derive(Debug, Default)]
pub struct EventIndex {
    entries: BTreeMap<u64, (u64, u64)>,
    /// The segment the last noted event is in.
    segment: Option<u64>,
}

impl EventIndex {
    /// Notes that event `seq` starts `offset` bytes into the segment starting at `segment`
    /// (kept if it is the first noted in its segment, or one in [`EVERY`]).
    pub fn note(&mut self, seq: u64, segment: u64, offset: u64) {
        if self.segment != Some(segment) || seq.is_multiple_of(EVERY) {
            self.entries.insert(seq, (segment, offset));
            self.segment = Some(segment);
        }
    }

    /// Forgets the segments that start before `start` (deleted).
    pub fn forget_before(&mut self, start: u64) {
        self.entries.retain(|_, (segment, _)| *segment >= start);
    }

    /// The oldest event that can be read.
    #[cfg(test)]
    pub fn first(&self) -> Option<u64> {
        self.entries.keys().next().copied()
    }

    /// Where to start reading for event `seq`: a segment and an offset in it.
    pub fn locate(&self, seq: u64) -> Option<(u64, u64)> {
        self.entries.range(..=seq).next_back().map(|(_, at)| *at)
    }

    /// Reads event `seq` from the log in `dir`; `None` if it is not there (deleted, or not
    /// written yet).
    #[cfg(test)]
    pub fn read(&self, dir: &Path, seq: u64) -> io::Result<Option<LogRecord>> {
        match self.locate(seq) {
            Some(at) => read_at(dir, at, seq),
            None => Ok(None),
        }
    }
}

/// Reads event `seq` from the log in `dir`, starting at `at` (from [`EventIndex::locate`],
/// taken under the index's lock, read without it).
pub fn read_at(
    dir: &Path,
    (segment, offset): (u64, u64),
    seq: u64,
) -> io::Result<Option<LogRecord>> {
    {
        let file = match File::open(Segment::new(dir, segment).path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        reader.seek(SeekFrom::Start(offset))?;
        let mut line = Vec::with_capacity(256);
        for _ in 0..=EVERY {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                return Ok(None);
            }
            let Ok(record) = serde_json::from_slice::<LogRecord>(&line) else {
                continue;
            };
            match record.seq() {
                Some(s) if s == seq => return Ok(Some(record)),
                Some(s) if s > seq => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn any_event_is_found_from_a_sparse_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = EventIndex::default();
        // Two segments: events 1..=200 and 201..=300.
        for (start, end) in [(1u64, 200u64), (201, 300)] {
            let mut out = Vec::new();
            LogRecord::SnapshotEnd { clients: 0 }.write_line(&mut out);
            for seq in start..=end {
                let offset = out.len() as u64;
                index.note(seq, start, offset);
                LogRecord::Resumed {
                    seq,
                    proj: crate::protocol::Proj::new(&format!("P-{seq}")).unwrap(),
                    expired: false,
                    at: std::time::SystemTime::UNIX_EPOCH,
                }
                .write_line(&mut out);
            }
            File::create(Segment::new(dir.path(), start).path)
                .unwrap()
                .write_all(&out)
                .unwrap();
        }
        assert!(index.entries.len() < 10, "sparse: {}", index.entries.len());
        for seq in [1, 63, 64, 65, 200, 201, 255, 300] {
            let record = index.read(dir.path(), seq).unwrap().expect("found");
            assert_eq!(record.seq(), Some(seq));
        }
        assert!(index.read(dir.path(), 301).unwrap().is_none());
        index.forget_before(201);
        assert!(index.read(dir.path(), 100).unwrap().is_none());
        assert_eq!(index.first(), Some(201));
    }
}
