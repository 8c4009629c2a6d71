//! Reading the events of the log after a sequence number, as the writer appends them.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use super::log_record::LogRecord;
use super::segment::Segment;
use crate::events::Event;

/// A reader that follows the log from a cursor, across segments, like `tail -F`.
///
/// It reads only complete lines: a partial line at the end of the active segment is the
/// writer's current write, read again next time. A partial line at the end of an older
/// segment is a torn write from a crash, skipped.
pub struct LogTail {
    dir: PathBuf,
    /// The last sequence number returned (or skipped).
    cursor: u64,
    open: Option<(Segment, BufReader<File>)>,
    line: Vec<u8>,
}

/// What one [`LogTail::read`] found.
#[derive(Debug, Default)]
pub struct TailBatch {
    /// Events after the cursor, in order.
    pub events: Vec<(u64, Event)>,
    /// Events that were deleted before they could be read (over `storage.max_bytes`).
    pub lost: u64,
}

impl LogTail {
    /// A reader of the events after `cursor`.
    pub fn new(dir: PathBuf, cursor: u64) -> Self {
        Self {
            dir,
            cursor,
            open: None,
            line: Vec::with_capacity(256),
        }
    }

    /// The last sequence number read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Reads up to `max` events after the cursor that are in the log now, leaving out the
    /// muted ones (a flapping client's: recorded, not announced).
    pub fn read(&mut self, max: usize) -> io::Result<TailBatch> {
        let (records, lost) = self.read_records(max)?;
        Ok(TailBatch {
            events: records
                .iter()
                .filter(|(_, record)| !record.is_muted())
                .filter_map(|(_, record)| record.to_event())
                .collect(),
            lost,
        })
    }

    /// Like [`LogTail::read`], with the whole records (cluster stamps included), and the
    /// count of events lost.
    pub fn read_records(&mut self, max: usize) -> io::Result<(Vec<(u64, LogRecord)>, u64)> {
        let mut batch = TailBatch::default();
        let mut records = Vec::new();
        if self.open.is_none() && !self.open_segment(&mut batch)? {
            return Ok((records, batch.lost));
        }
        while records.len() < max {
            let Some((segment, reader)) = self.open.as_mut() else {
                break;
            };
            let n = reader.read_until(b'\n', &mut self.line)?;
            if n == 0 || self.line.last() != Some(&b'\n') {
                // End of the segment for now (keep a partial line: it may be completed).
                let newer = Segment::list(&self.dir)?
                    .into_iter()
                    .find(|s| s.start > segment.start);
                let Some(newer) = newer else { break };
                if !self.line.is_empty() {
                    log::warn!(
                        "event log {}: skipping a torn last line",
                        segment.path.display()
                    );
                }
                self.line.clear();
                self.switch(newer, &mut batch)?;
                continue;
            }
            let record = serde_json::from_slice::<LogRecord>(&self.line);
            self.line.clear();
            match record {
                Ok(record) => {
                    if let Some(seq) = record.seq() {
                        if seq > self.cursor {
                            self.cursor = seq;
                            records.push((seq, record));
                        }
                    }
                }
                Err(e) => log::warn!(
                    "event log {}: skipping a line that is not a record: {e}",
                    segment.path.display()
                ),
            }
        }
        Ok((records, batch.lost))
    }

    /// Opens the segment holding the event after the cursor: the last one starting at or
    /// before it, or the first one if those are gone.
    fn open_segment(&mut self, batch: &mut TailBatch) -> io::Result<bool> {
        let segments = Segment::list(&self.dir)?;
        let want = self.cursor + 1;
        let chosen = segments
            .iter()
            .rev()
            .find(|s| s.start <= want)
            .or_else(|| segments.first())
            .cloned();
        match chosen {
            Some(segment) => {
                self.switch(segment, batch)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn switch(&mut self, segment: Segment, batch: &mut TailBatch) -> io::Result<()> {
        if segment.start > self.cursor + 1 {
            // Events between the cursor and this segment were deleted.
            batch.lost += segment.start - self.cursor - 1;
            self.cursor = segment.start - 1;
        }
        let file = match File::open(&segment.path) {
            Ok(file) => file,
            // Deleted since it was listed: look again next time.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.open = None;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.open = Some((segment, BufReader::new(file)));
        Ok(())
    }
}
