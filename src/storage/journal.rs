//! The writer of the event log: its own thread, fed by a channel.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::event_index::EventIndex;
use super::fsync_policy::FsyncPolicy;
use super::history::History;
use super::log_record::LogRecord;
use super::recovery::{apply_event, recover, recover_into, Recovered, RecoveredClient};
use super::segment::Segment;
use super::{StorageConfig, StorageError};
use crate::clock::millis;
use crate::events::{Published, Sink};
use crate::metrics::Metrics;
use crate::protocol::Proj;

/// Records written in one `write` at most; the rest waits for the next round.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// At most one storage error logged per this period (all are counted).
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

enum Command {
    /// Boxed: an event is a few hundred bytes, and the channel's slots are as large as the
    /// largest command.
    Append(Box<Published>),
    Snapshot(Vec<RecoveredClient>),
    Close(mpsc::Sender<()>),
}

/// The handle to the event log, and the sink that appends every transition to it. Cheap to
/// clone; appending never blocks (the record is queued for the writer thread).
///
/// Each event is written under its id (the log's `seq`, numbered by the registry's pipeline
/// from the last `seq` recovered), appended to the active segment and synced per
/// `storage.fsync`; then the writer publishes the last sequence number written (see
/// [`Journal::committed`]): webhook deliveries follow that number and read the log itself, so
/// an event they deliver is one a restart would deliver again if it was not acknowledged.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    sender: Mutex<Option<Sender<Command>>>,
    committed: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Opens (creating it if needed) and locks the log in `config.path`, recovers the clients
    /// that were online at its end, and starts the writer, which begins a new segment with a
    /// snapshot of them.
    ///
    /// `holds` are delivery cursors, each the last sequence number a webhook has delivered:
    /// segments holding later events are kept (until the log exceeds `storage.max_bytes`),
    /// from the first roll, at start, on.
    #[cfg(test)]
    pub fn open(
        config: &StorageConfig,
        metrics: Arc<Metrics>,
        holds: Vec<Arc<AtomicU64>>,
    ) -> Result<(Journal, Recovered), StorageError> {
        Self::open_with(config, metrics, holds, None)
    }

    /// [`Journal::open`], folding every record read into `history`, whose segments are kept
    /// while they are younger than `retention` (and the log is within `storage.max_bytes`).
    pub fn open_with(
        config: &StorageConfig,
        metrics: Arc<Metrics>,
        holds: Vec<Arc<AtomicU64>>,
        history: Option<(&History, Duration)>,
    ) -> Result<(Journal, Recovered), StorageError> {
        let dir = config.path.clone();
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { what, path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let lock_path = dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StorageError::Locked { path: dir }),
            Err(TryLockError::Error(source)) => return Err(io("lock", &lock_path)(source)),
        }
        let segments = Segment::list(&dir).map_err(io("list", &dir))?;
        let events = Arc::new(Mutex::new(EventIndex::default()));
        let recovered = {
            let mut index = self::lock(&events);
            recover_into(&segments, &mut |record, segment, offset| {
                if let Some(seq) = record.seq() {
                    index.note(seq, segment, offset);
                }
                if let Some((history, _)) = history {
                    history.fold(record);
                }
            })?
        };
        if let Some((history, _)) = history {
            history.read_from(dir.clone(), events.clone());
        }
        if recovered.skipped > 0 {
            log::warn!(
                "event log {}: {} unreadable line(s) skipped during recovery",
                dir.display(),
                recovered.skipped
            );
        }
        let (committed_tx, committed) = watch::channel(recovered.last_seq);
        let mut writer = Writer {
            dir: dir.clone(),
            _lock: lock,
            fsync: config.fsync,
            fsync_interval: config.fsync_interval,
            segment_bytes: config.segment_bytes,
            max_bytes: config.max_bytes,
            file: None,
            since_snapshot: 0,
            next_seq: recovered.last_seq + 1,
            active: None,
            base: Some(recovered.clients.clone()),
            unwritten: Vec::new(),
            dirty: false,
            last_sync: std::time::Instant::now(),
            buf: Vec::with_capacity(64 * 1024),
            batch: Vec::new(),
            events,
            segment_start: 0,
            segment_len: 0,
            committed: committed_tx,
            holds,
            retention: history.map_or(Duration::ZERO, |(_, retention)| retention),
            metrics,
            last_error_log: None,
            errors_unlogged: 0,
        };
        writer.roll()?;
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("heartwatch-journal".into())
            .spawn(move || writer.run(receiver))
            .map_err(io("start the writer of", &dir))?;
        log::info!(
            "event log {}: {} client(s) recovered, last event #{}",
            dir.display(),
            recovered.clients.len(),
            recovered.last_seq
        );
        let journal = Journal {
            inner: Arc::new(Inner {
                dir,
                sender: Mutex::new(Some(sender)),
                committed,
                thread: Mutex::new(Some(thread)),
            }),
        };
        Ok((journal, recovered))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Queues a snapshot of the clients online now, with their exact `last_seen` (at a clean
    /// stop): the writer starts a new segment with it.
    pub fn snapshot(&self, clients: Vec<RecoveredClient>) {
        self.send(Command::Snapshot(clients));
    }

    /// The last sequence number written (and synced, with `storage.fsync = "always"`).
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.inner.committed.clone()
    }

    /// Writes and syncs what is queued, then stops the writer and releases the directory.
    /// Later appends are dropped.
    pub async fn close(&self) {
        let Some(sender) = lock(&self.inner.sender).take() else {
            return;
        };
        let (done, finished) = mpsc::channel();
        if sender.send(Command::Close(done)).is_ok() {
            let thread = lock(&self.inner.thread).take();
            let _ = actix_rt::task::spawn_blocking(move || {
                let _ = finished.recv();
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
            })
            .await;
        }
    }

    fn send(&self, command: Command) {
        if let Some(sender) = lock(&self.inner.sender).as_ref() {
            // Fails only once the writer is gone (after `close`, or if it panicked).
            let _ = sender.send(command);
        }
    }
}

impl Sink for Journal {
    fn publish(&mut self, published: &Published) {
        self.send(Command::Append(Box::new(published.clone())));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Writer {
    dir: PathBuf,
    /// Held for the writer's life: a second server on the same directory is refused.
    _lock: File,
    fsync: FsyncPolicy,
    fsync_interval: Duration,
    segment_bytes: u64,
    max_bytes: u64,
    /// The active segment; `None` after a write error, until the next successful roll.
    file: Option<File>,
    /// Event bytes in the active segment after its snapshot.
    since_snapshot: u64,
    next_seq: u64,
    /// The segment being appended to.
    active: Option<Segment>,
    /// The clients to start the next segment with, when they are known without reading the
    /// log: the recovered ones at open, the exact ones at a clean stop. Otherwise the next
    /// snapshot is folded from the active segment (see [`Writer::roll`]), so that the writer
    /// keeps no copy of the online set in memory between rolls.
    base: Option<Vec<RecoveredClient>>,
    /// Events whose write failed since the active segment began: the next snapshot still
    /// counts them (the registry announced them).
    unwritten: Vec<LogRecord>,
    /// Written and not yet synced.
    dirty: bool,
    last_sync: std::time::Instant,
    buf: Vec<u8>,
    /// The events in `buf`: their seq and where each starts in it.
    batch: Vec<(u64, u64)>,
    /// Where events start in the log (shared with the history, which reads them).
    events: Arc<Mutex<EventIndex>>,
    /// The active segment's first seq and its length in bytes.
    segment_start: u64,
    segment_len: u64,
    committed: watch::Sender<u64>,
    /// Delivery cursors that keep segments from being deleted: one per webhook, each the last
    /// sequence number it has delivered.
    holds: Vec<Arc<AtomicU64>>,
    /// Segments last written to within this long are kept for the history.
    retention: Duration,
    metrics: Arc<Metrics>,
    /// When a failure was last logged, and how many were not logged since.
    last_error_log: Option<std::time::Instant>,
    errors_unlogged: u64,
}

impl Writer {
    fn run(mut self, commands: Receiver<Command>) {
        loop {
            let first = if self.dirty && self.fsync == FsyncPolicy::Interval {
                let wait = self.fsync_interval.saturating_sub(self.last_sync.elapsed());
                match commands.recv_timeout(wait) {
                    Ok(command) => command,
                    Err(RecvTimeoutError::Timeout) => {
                        self.sync();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match commands.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                }
            };
            let mut next = Some(first);
            let mut closed = None;
            while let Some(command) = next.take() {
                match command {
                    Command::Append(published) => self.push(&published),
                    Command::Snapshot(clients) => {
                        self.flush();
                        self.base = Some(clients);
                        self.roll_or_log();
                    }
                    Command::Close(done) => {
                        closed = Some(done);
                        break;
                    }
                }
                if self.buf.len() < MAX_BATCH_BYTES {
                    next = commands.try_recv().ok();
                }
            }
            self.flush();
            if self.since_snapshot >= self.segment_bytes {
                self.roll_or_log();
            }
            if let Some(done) = closed {
                self.sync();
                let _ = done.send(());
                return;
            }
        }
        self.flush();
        self.sync();
    }

    fn push(&mut self, published: &Published) {
        let record = LogRecord::from_published(published);
        self.next_seq = published.id + 1;
        self.batch.push((published.id, self.buf.len() as u64));
        record.write_line(&mut self.buf);
    }

    /// Writes the batch, syncs it if the policy says so, and publishes it.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.file.is_none() {
            // The last write failed: start afresh rather than append after a torn line.
            self.roll_or_log();
        }
        let written = match self.file.as_mut() {
            Some(file) => file.write_all(&self.buf),
            None => Err(std::io::Error::other("no segment is open")),
        };
        match written {
            Ok(()) => {
                let mut events = lock(&self.events);
                for (seq, at) in self.batch.drain(..) {
                    events.note(seq, self.segment_start, self.segment_len + at);
                }
                drop(events);
                self.segment_len += self.buf.len() as u64;
                self.since_snapshot += self.buf.len() as u64;
                self.dirty = true;
                if self.fsync == FsyncPolicy::Always {
                    self.sync();
                }
            }
            Err(e) => {
                let message = format!(
                    "event log {}: write failed, {} byte(s) of events lost: {e}",
                    self.dir.display(),
                    self.buf.len()
                );
                self.failed(message);
                self.file = None;
                self.unwritten.extend(
                    self.buf
                        .split(|&b| b == b'\n')
                        .filter_map(|line| serde_json::from_slice::<LogRecord>(line).ok()),
                );
            }
        }
        self.buf.clear();
        self.batch.clear();
        // What was lost is lost: deliveries must not wait for it.
        self.committed.send_replace(self.next_seq - 1);
    }

    fn sync(&mut self) {
        if !self.dirty {
            return;
        }
        if let Some(file) = &self.file {
            match file.sync_data() {
                Ok(()) => self.metrics.storage_synced(),
                Err(e) => {
                    let message = format!("event log {}: fsync failed: {e}", self.dir.display());
                    self.failed(message);
                }
            }
        }
        self.dirty = false;
        self.last_sync = std::time::Instant::now();
    }

    fn roll_or_log(&mut self) {
        if let Err(e) = self.roll() {
            self.failed(e.to_string());
        }
    }

    /// Counts a failure, and logs it unless one was logged in the last [`ERROR_LOG_EVERY`]:
    /// a full disk fails every batch, and must not flood the log (which may be on it too).
    fn failed(&mut self, message: String) {
        self.metrics.storage_error();
        let now = std::time::Instant::now();
        if self
            .last_error_log
            .is_some_and(|at| now.duration_since(at) < ERROR_LOG_EVERY)
        {
            self.errors_unlogged += 1;
            return;
        }
        if self.errors_unlogged > 0 {
            log::error!(
                "{message} ({} more failure(s) since the last report, see \
                 heartwatch_storage_errors_total)",
                self.errors_unlogged
            );
        } else {
            log::error!("{message}");
        }
        self.errors_unlogged = 0;
        self.last_error_log = Some(now);
    }

    /// Starts a new segment beginning with a snapshot of the online set, then deletes the
    /// segments no longer needed. The segment is written to a temporary file and renamed, so
    /// a segment always starts with a complete snapshot.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.sync();
        let online = match self.base.take() {
            Some(clients) => clients,
            None => self.fold_active()?,
        };
        self.unwritten.clear();
        let segment = Segment::new(&self.dir, self.next_seq);
        let temp = segment.path.with_extension("jsonl.tmp");
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { what, path, source }
        };
        let mut out = Vec::with_capacity(64 + online.len() * 96);
        let clients = online.len() as u64;
        LogRecord::Snapshot {
            clients,
            after_seq: self.next_seq - 1,
        }
        .write_line(&mut out);
        for c in &online {
            LogRecord::Client {
                proj: c.proj.clone(),
                addr: c.addr,
                last_seen: c.last_seen,
                timeout_ms: millis(c.timeout),
                timeout_default: !c.timeout_requested,
            }
            .write_line(&mut out);
        }
        LogRecord::SnapshotEnd { clients }.write_line(&mut out);
        let mut file = File::create(&temp).map_err(io("create", &temp))?;
        file.write_all(&out).map_err(io("write", &temp))?;
        if self.fsync != FsyncPolicy::Never {
            file.sync_data().map_err(io("sync", &temp))?;
        }
        std::fs::rename(&temp, &segment.path).map_err(io("rename", &temp))?;
        if self.fsync != FsyncPolicy::Never {
            // The rename itself is durable only once the directory is synced.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync", &self.dir))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&segment.path)
            .map_err(io("open", &segment.path))?;
        self.file = Some(file);
        self.segment_start = segment.start;
        self.segment_len = out.len() as u64;
        self.active = Some(segment);
        self.since_snapshot = 0;
        self.dirty = false;
        self.prune();
        Ok(())
    }

    /// The clients online at the end of the active segment (its snapshot and events, read back
    /// from disk), and after the events whose write failed since.
    fn fold_active(&self) -> Result<Vec<RecoveredClient>, StorageError> {
        let written = match &self.active {
            Some(active) => recover(std::slice::from_ref(active))?.clients,
            None => Vec::new(),
        };
        let mut online: BTreeMap<Proj, RecoveredClient> =
            written.into_iter().map(|c| (c.proj.clone(), c)).collect();
        for record in &self.unwritten {
            apply_event(&mut online, record);
        }
        Ok(online.into_values().collect())
    }

    /// Deletes old segments: those whose every event every webhook has delivered and that are
    /// older than the history's retention (last written to before it), then the oldest while
    /// the log exceeds `max_bytes`. The active segment (with its snapshot) is all recovery
    /// needs.
    fn prune(&mut self) {
        let Ok(segments) = Segment::list(&self.dir) else {
            return;
        };
        let held = self
            .holds
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let mut total: u64 = segments.iter().map(Segment::bytes).sum();
        for pair in segments.windows(2) {
            let (old, next) = (&pair[0], &pair[1]);
            let last_event = next.start - 1;
            let delivered = last_event <= held;
            let young = !self.retention.is_zero()
                && std::fs::metadata(&old.path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|written| written.elapsed().ok())
                    .is_none_or(|age| age < self.retention);
            if (!delivered || young) && total <= self.max_bytes {
                break;
            }
            if !delivered {
                log::warn!(
                    "event log {}: over storage.max_bytes, deleting {} with undelivered \
                     webhook events (up to #{last_event})",
                    self.dir.display(),
                    old.path.display()
                );
            } else if young {
                log::info!(
                    "event log {}: over storage.max_bytes, deleting {} before                      history.retention (the history loses its events)",
                    self.dir.display(),
                    old.path.display()
                );
            }
            let len = old.bytes();
            match std::fs::remove_file(&old.path) {
                Ok(()) => {
                    total = total.saturating_sub(len);
                    lock(&self.events).forget_before(next.start);
                }
                Err(e) => {
                    log::warn!("event log: cannot delete {}: {e}", old.path.display());
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use crate::storage::LogTail;
    use std::time::SystemTime;

    fn config(dir: &Path, segment_bytes: u64, max_bytes: u64) -> StorageConfig {
        StorageConfig {
            path: dir.to_path_buf(),
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_secs(1),
            segment_bytes,
            max_bytes,
        }
    }

    fn open(config: &StorageConfig) -> (Journal, Recovered) {
        Journal::open(config, Arc::new(Metrics::new()), Vec::new()).unwrap()
    }

    fn online(p: &str) -> Event {
        Event::test_online(p, SystemTime::now())
    }

    fn offline(p: &str) -> Event {
        Event::test_offline(p, SystemTime::now(), SystemTime::now())
    }

    /// Appends events numbered from `last + 1`, as the registry's pipeline does.
    struct Appender {
        journal: Journal,
        last: u64,
    }

    impl Appender {
        fn new(journal: &Journal, last: u64) -> Self {
            Self {
                journal: journal.clone(),
                last,
            }
        }

        fn append(&mut self, event: &Event, timeout: Duration) {
            self.last += 1;
            self.journal.publish(&published(self.last, event, timeout));
        }
    }

    fn published(id: u64, event: &Event, timeout: Duration) -> Published {
        Published {
            id,
            event: event.clone(),
            timeout: Some(crate::events::ClientTimeout {
                timeout,
                requested: true,
            }),
            muted: false,
            intervals: None,
            stamp: None,
        }
    }

    fn projs(r: &Recovered) -> Vec<&str> {
        r.clients.iter().map(|c| c.proj.as_str()).collect()
    }

    /// A full disk: `/dev/full` answers every write with ENOSPC.
    #[test]
    fn a_failed_write_is_counted_and_the_writer_starts_a_fresh_segment() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (committed, committed_rx) = watch::channel(0);
        let mut writer = Writer {
            dir: dir.path().to_path_buf(),
            _lock: File::create(dir.path().join("LOCK")).unwrap(),
            fsync: FsyncPolicy::Never,
            fsync_interval: Duration::from_secs(1),
            segment_bytes: 1 << 20,
            max_bytes: 1 << 30,
            file: Some(OpenOptions::new().write(true).open("/dev/full").unwrap()),
            since_snapshot: 0,
            next_seq: 1,
            active: None,
            base: None,
            unwritten: Vec::new(),
            dirty: false,
            last_sync: std::time::Instant::now(),
            buf: Vec::new(),
            batch: Vec::new(),
            events: Arc::default(),
            segment_start: 0,
            segment_len: 0,
            committed,
            holds: Vec::new(),
            retention: Duration::ZERO,
            metrics: metrics.clone(),
            last_error_log: None,
            errors_unlogged: 0,
        };
        writer.push(&published(1, &online("LOST"), Duration::from_secs(1)));
        writer.flush();
        assert_eq!(metrics.storage_errors(), 1);
        assert!(writer.file.is_none(), "a failed segment is not appended to");
        // Deliveries do not wait for what was lost.
        assert_eq!(*committed_rx.borrow(), 1);
        assert!(Segment::list(dir.path()).unwrap().is_empty());

        // The next batch goes to a fresh segment, whose snapshot still has LOST (it is online:
        // the registry announced it), then the event itself.
        writer.push(&published(2, &online("NEXT"), Duration::from_secs(1)));
        writer.flush();
        assert_eq!(metrics.storage_errors(), 1);
        let segments = Segment::list(dir.path()).unwrap();
        assert_eq!(segments.len(), 1);
        let recovered = recover(&segments).unwrap();
        assert_eq!(projs(&recovered), ["LOST", "NEXT"]);
        assert_eq!(recovered.last_seq, 2);
        assert_eq!(*committed_rx.borrow(), 2);
    }

    #[actix_rt::test]
    async fn events_survive_a_restart_and_numbering_continues() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1 << 20, 1 << 30);
        let (journal, recovered) = open(&config);
        let mut log = Appender::new(&journal, recovered.last_seq);
        assert!(recovered.clients.is_empty());
        log.append(&online("A"), Duration::from_secs(5));
        log.append(&online("B"), Duration::from_secs(7));
        log.append(&offline("A"), Duration::ZERO);
        journal.close().await;

        let (journal, recovered) = open(&config);

        let mut log = Appender::new(&journal, recovered.last_seq);
        assert_eq!(projs(&recovered), ["B"]);
        assert_eq!(recovered.clients[0].timeout, Duration::from_secs(7));
        assert_eq!(recovered.last_seq, 3);
        assert_eq!(*journal.committed().borrow(), 3);
        log.append(&online("C"), Duration::from_secs(1));
        journal.close().await;

        let (journal, recovered) = open(&config);

        assert_eq!(projs(&recovered), ["B", "C"]);
        assert_eq!(recovered.last_seq, 4);
        journal.close().await;
    }

    #[actix_rt::test]
    async fn a_second_server_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1 << 20, 1 << 30);
        let (journal, _) = open(&config);
        let second = Journal::open(&config, Arc::new(Metrics::new()), Vec::new());
        assert!(matches!(second, Err(StorageError::Locked { .. })));
        journal.close().await;
        let (journal, _) = open(&config);
        journal.close().await;
    }

    #[actix_rt::test]
    async fn the_log_rolls_and_deletes_what_it_no_longer_needs() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1000, 1 << 30);
        let (journal, _) = open(&config);
        let mut log = Appender::new(&journal, 0);
        for i in 0..200 {
            log.append(&online(&format!("P-{i}")), Duration::from_secs(1));
            if i % 2 == 1 {
                log.append(&offline(&format!("P-{}", i - 1)), Duration::ZERO);
            }
        }
        journal.close().await;
        let segments = Segment::list(dir.path()).unwrap();
        assert!(segments.len() <= 2, "old segments kept: {}", segments.len());
        let (journal, recovered) = open(&config);
        assert_eq!(recovered.clients.len(), 100);
        assert_eq!(recovered.last_seq, 300);
        journal.close().await;
    }

    #[actix_rt::test]
    async fn the_history_keeps_young_segments_and_reads_them_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1000, 1 << 30);
        let history_config = crate::storage::HistoryConfig {
            limit: 100,
            retention: Duration::from_secs(3600),
            samples: 16,
        };
        let history = History::new(&history_config);
        let open = |history: &History| {
            Journal::open_with(
                &config,
                Arc::new(Metrics::new()),
                Vec::new(),
                Some((history, history_config.retention)),
            )
            .unwrap()
        };
        let (journal, _) = open(&history);
        let mut log = Appender::new(&journal, 0);
        // One pair at a time: a batch is written at once, and rolls happen between batches.
        let mut committed = journal.committed();
        for i in 0..60 {
            log.append(&online(&format!("P-{i}")), Duration::from_secs(1));
            log.append(&offline(&format!("P-{i}")), Duration::ZERO);
            while *committed.borrow_and_update() < 2 * (i + 1) {
                committed.changed().await.unwrap();
            }
        }
        journal.close().await;
        assert!(
            Segment::list(dir.path()).unwrap().len() > 3,
            "young segments are kept"
        );
        // A new server folds the whole log into its history.
        let history = History::new(&history_config);
        let (journal, recovered) = open(&history);
        assert!(recovered.clients.is_empty());
        let p0 = history
            .get(&Proj::new("P-0").unwrap(), None, None)
            .expect("P-0 is known");
        let kinds: Vec<_> = p0.events.iter().map(|e| e["event"].clone()).collect();
        assert_eq!(kinds, ["online", "offline"]);
        assert_eq!(history.offline(None, None).len(), 60);
        journal.close().await;
    }

    #[actix_rt::test]
    async fn a_hold_keeps_undelivered_segments_up_to_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1000, 1 << 30);
        let delivered = Arc::new(AtomicU64::new(0));
        let (journal, _) =
            Journal::open(&config, Arc::new(Metrics::new()), vec![delivered.clone()]).unwrap();
        let mut log = Appender::new(&journal, 0);
        // One at a time: a batch is written at once, and rolls happen between batches.
        let mut committed = journal.committed();
        for i in 0..100 {
            log.append(&online(&format!("P-{i}")), Duration::from_secs(1));
            while *committed.borrow_and_update() < i + 1 {
                committed.changed().await.unwrap();
            }
        }
        // Every event is still readable from the start.
        let mut tail = LogTail::new(dir.path().to_path_buf(), 0);
        let batch = tail.read(1000).unwrap();
        assert_eq!(batch.lost, 0);
        let seqs: Vec<u64> = batch.events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        assert!(Segment::list(dir.path()).unwrap().len() > 3);

        // Once delivered, the next roll deletes them.
        delivered.store(100, Ordering::Release);
        for i in 100..120 {
            log.append(&online(&format!("P-{i}")), Duration::from_secs(1));
        }
        journal.close().await;
        // Every segment left holds an undelivered event (after #100): how many there are
        // depends on how the writer batched the last twenty.
        let segments = Segment::list(dir.path()).unwrap();
        assert!(segments.len() < 8, "{segments:?}");
        for pair in segments.windows(2) {
            assert!(pair[1].start - 1 > 100, "{segments:?}");
        }
    }

    #[actix_rt::test]
    async fn over_max_bytes_the_oldest_go_and_a_reader_counts_the_loss() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1000, 3000);
        let held = vec![Arc::new(AtomicU64::new(0))];
        let (journal, _) = Journal::open(&config, Arc::new(Metrics::new()), held).unwrap();
        let mut log = Appender::new(&journal, 0);
        for i in 0..100 {
            log.append(&online(&format!("P-{i}")), Duration::from_secs(1));
            log.append(&offline(&format!("P-{i}")), Duration::ZERO);
        }
        journal.close().await;
        let total: u64 = Segment::list(dir.path())
            .unwrap()
            .iter()
            .map(Segment::bytes)
            .sum();
        assert!(total <= 3000 + 1200, "log grew to {total} bytes");
        let mut tail = LogTail::new(dir.path().to_path_buf(), 0);
        let mut read = 0;
        let mut lost = 0;
        loop {
            let batch = tail.read(50).unwrap();
            if batch.events.is_empty() && batch.lost == 0 {
                break;
            }
            read += batch.events.len() as u64;
            lost += batch.lost;
        }
        assert!(lost > 0);
        assert_eq!(read + lost, 200);
        assert_eq!(tail.cursor(), 200);
    }
}
