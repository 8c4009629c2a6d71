//! The outbox: this node's transitions on their way to Redis, in the order it decided them.
//!
//! Every transition is appended to the local event log (with its token and incarnation, a
//! [`ClusterStamp`]) before it is queued here, so the log is the durable outbox: the queue is
//! its in-memory tail, and `<storage.path>/cluster.cursor` marks how far it has been published
//! (written after Redis answered, so a crash in between publishes that batch again, which is
//! harmless: every script is idempotent). The cursor is also a hold on the log: segments not
//! yet published are not pruned.
//!
//! While Redis is down the queue grows (each entry is a few hundred bytes) and nothing is
//! lost; when Redis answers, it is published in order. After a restart, what the previous
//! process had not published is read back from the log and published first, as the
//! incarnation that decided it: if that one was declared dead meanwhile, its transitions are
//! fenced (its clients were taken over by a peer, which decides for them now).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::token::ClaimToken;
use super::transition::Transition;
use crate::clock::Instant;
use crate::events::Event;
use crate::notify::CursorFile;
use crate::storage::{LogRecord, LogTail};

/// The published cursor, read before the event log is opened (opening it prunes segments,
/// and the unpublished ones must stay). Pass [`OutboxCursor::hold`] to
/// [`Journal::open`](crate::storage::Journal::open).
pub struct OutboxCursor {
    file: CursorFile,
    start: Option<u64>,
    hold: Arc<AtomicU64>,
}

impl OutboxCursor {
    /// Reads `<dir>/cluster.cursor` (the event log's directory).
    pub fn prepare(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = CursorFile::at(dir.join("cluster.cursor"));
        let start = file.load()?;
        // Without a cursor, nothing of an earlier life is pending: hold nothing back.
        let hold = Arc::new(AtomicU64::new(start.unwrap_or(u64::MAX)));
        Ok(Self { file, start, hold })
    }

    /// What the log must keep: the last sequence number published.
    pub fn hold(&self) -> Arc<AtomicU64> {
        self.hold.clone()
    }
}

/// One transition waiting to be published.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Its sequence number in the event log (none without a log, or for a re-claim).
    pub seq: Option<u64>,
    pub transition: Transition,
    /// When it was decided, on this process's monotonic clock (its age is sent, so Redis can
    /// order claims on its own clock).
    pub decided: Instant,
    /// The incarnation of an earlier process that decided it; `None`: this process (published
    /// as its current incarnation).
    pub incarnation: Option<String>,
}

impl Pending {
    pub fn age(&self) -> Duration {
        crate::clock::now().saturating_duration_since(self.decided)
    }
}

/// The queue and its durable cursor.
pub(crate) struct Outbox {
    queue: VecDeque<Pending>,
    cursor: Option<(CursorFile, Arc<AtomicU64>)>,
}

impl Outbox {
    /// An outbox without a log: transitions survive an outage of Redis, not a crash.
    pub fn in_memory() -> Self {
        Self {
            queue: VecDeque::new(),
            cursor: None,
        }
    }

    /// An outbox over the event log in `dir`, whose last written sequence number is
    /// `committed`: what an earlier process left unpublished is queued first.
    pub fn with_log(prepared: OutboxCursor, dir: &Path, committed: u64) -> Self {
        let OutboxCursor { file, start, hold } = prepared;
        let mut queue = VecDeque::new();
        let start = match start {
            Some(start) => {
                let mut tail = LogTail::new(dir.to_path_buf(), start);
                loop {
                    match tail.read_records(1024) {
                        Ok((records, lost)) => {
                            if lost > 0 {
                                log::warn!(
                                    "cluster: {lost} unpublished transition(s) were pruned \
                                     from the event log (storage.max_bytes) before Redis \
                                     answered"
                                );
                            }
                            if records.is_empty() {
                                break;
                            }
                            queue.extend(records.iter().filter_map(|(seq, r)| replay(*seq, r)));
                        }
                        Err(e) => {
                            log::warn!("cluster: cannot read the event log's outbox: {e}");
                            break;
                        }
                    }
                }
                if !queue.is_empty() {
                    log::info!(
                        "cluster: {} transition(s) of the previous run to publish",
                        queue.len()
                    );
                }
                start
            }
            None => committed,
        };
        hold.store(start, Ordering::Release);
        if let Err(e) = file.store(start) {
            log::warn!("cluster: cannot write the outbox cursor: {e}");
        }
        Self {
            queue,
            cursor: Some((file, hold)),
        }
    }

    pub fn push(&mut self, pending: Pending) {
        self.queue.push_back(pending);
    }

    /// Puts re-claims in front of everything queued (after this node was fenced).
    pub fn push_front_all(&mut self, claims: Vec<Pending>) {
        for claim in claims.into_iter().rev() {
            self.queue.push_front(claim);
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The next batch to publish: up to `max` leading entries of one incarnation.
    pub fn batch(&self, max: usize) -> Vec<Pending> {
        let Some(first) = self.queue.front() else {
            return Vec::new();
        };
        self.queue
            .iter()
            .take(max)
            .take_while(|p| p.incarnation == first.incarnation)
            .cloned()
            .collect()
    }

    /// Drops the first `n` entries (published, or fenced for good) and moves the cursor.
    pub fn done(&mut self, n: usize) {
        let mut last = None;
        for pending in self.queue.drain(..n.min(self.queue.len())) {
            if pending.seq.is_some() {
                last = pending.seq;
            }
        }
        if let (Some(seq), Some((file, hold))) = (last, &self.cursor) {
            hold.store(seq, Ordering::Release);
            if let Err(e) = file.store(seq) {
                log::warn!("cluster: cannot write the outbox cursor: {e}");
            }
        }
    }
}

/// A transition of an earlier process, from its log record: a stamped `online` or `offline`
/// (a claim or its end), or any other event (a note; not a muted one, which the stream never
/// gets).
fn replay(seq: u64, record: &LogRecord) -> Option<Pending> {
    let (_, event) = record.to_event()?;
    let quiet = record.is_muted();
    let at = event.at();
    let age = crate::clock::wall_now()
        .duration_since(at)
        .unwrap_or(Duration::ZERO);
    let decided = crate::clock::now()
        .checked_sub(age)
        .unwrap_or_else(crate::clock::now);
    let (transition, incarnation) = match (record.cluster(), &event) {
        (Some(stamp), Event::Online { .. }) => (
            Transition::Online {
                event,
                token: ClaimToken::from_wire(&stamp.token),
                timeout: record.timeout().unwrap_or_default(),
                quiet,
            },
            stamp.node.clone(),
        ),
        (Some(stamp), Event::Offline { .. }) => (
            Transition::Offline {
                event,
                token: ClaimToken::from_wire(&stamp.token),
                lost_node: stamp.lost_node.clone(),
                quiet,
            },
            stamp.node.clone(),
        ),
        (Some(_), _) | (None, Event::Online { .. } | Event::Offline { .. }) if quiet => {
            return None
        }
        // Unstamped claims are single-node records (before cluster mode was turned on).
        (
            None,
            Event::Online {
                recovered: false, ..
            }
            | Event::Offline { .. },
        ) => return None,
        (_, _) => (Transition::Note { event }, String::new()),
    };
    Some(Pending {
        seq: Some(seq),
        transition,
        decided,
        incarnation: Some(incarnation).filter(|i| !i.is_empty()),
    })
}
