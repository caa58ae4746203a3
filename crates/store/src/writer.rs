//! Group commit: the workers' side of the journal and the writer thread.
//!
//! Each worker owns a [`WorkerJournal`]: a bounded queue of binding changes that only it pushes
//! to, and a counter of how far its changes are durable that only the writer stores. The
//! writer drains every queue round robin, encoding each change into one preallocated buffer
//! (so that the record's layout and CRC cost the worker nothing), appends it with one `write`,
//! makes it durable with one `fdatasync`, and only then publishes the counters. A
//! batch closes when the queues are empty or it is full, so under light load a change waits
//! for one fsync, and under heavy load one fsync covers thousands of changes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use peregrine_engine::{BindingEvent, BindingSink};
use peregrine_ring::{Consumer, Producer, ring};

use crate::compact::{MemorySource, compact, compact_from_memory};
use crate::dir::{JOURNAL, LeaseDir, unix_now, write_atomically};
use crate::disk::{Disk, DiskFile, Open};
use crate::error::{StoreError, io_at};
use crate::files::sealed_path;
use crate::record::{HEADER_LEN, RECORD_LEN, encode, encode_header};

/// Changes one worker may have waiting for the writer. A full queue means the disk is behind
/// by two batches; the worker then drops the request and the client retries.
const QUEUE_CAPACITY: usize = 8192;
/// Records per batch at most: one `write` and one `fdatasync`.
const MAX_BATCH: usize = 4096;
/// Longest an idle writer sleeps before looking at the queues again. Workers wake it sooner;
/// this only bounds the cost of a missed wake-up.
const IDLE_PARK: Duration = Duration::from_millis(1);

/// When the writer reports a batch as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After `fdatasync` returned for the batch: it survives a crash of the process, the kernel
    /// or the power.
    #[default]
    Fsync,
    /// As soon as the batch is written to the kernel, without waiting for the disk: it
    /// survives a crash of the process, but a kernel crash or power loss can lose leases
    /// already acknowledged. For benchmarks.
    NoneUnsafe,
}

/// A journal thread, as [`ThreadSetup`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalThread {
    /// The writer: group commit, sealing.
    Writer,
    /// Compaction of sealed segments into a snapshot: never urgent.
    Compactor,
}

/// Runs first on each journal thread, before it touches a file: where the caller places it
/// (its core, its scheduling class). The store knows files, not where threads run; an error
/// makes [`Journal::start`] refuse with it.
pub type ThreadSetup = Arc<dyn Fn(JournalThread) -> io::Result<()> + Send + Sync>;

/// How the journal is written.
#[derive(Clone)]
pub struct JournalOptions {
    /// When a change counts as committed.
    pub durability: Durability,
    /// The journal is sealed and a new one started once it passes this many bytes; the
    /// sealed segments are then compacted into a snapshot in the background. Disk use stays
    /// near one snapshot (one record per address that ever changed) plus twice this.
    pub compact_after: u64,
    /// Places each journal thread when it starts (the server pins them to
    /// `leases.writer-core`, away from the workers, so that a commit's wake-up never preempts
    /// packet processing); `None`: they run where the OS puts them.
    pub setup: Option<ThreadSetup>,
    /// With [`Durability::Fsync`], the least time from one `fdatasync` to the next: changes
    /// that arrive meanwhile wait and join the next batch. Under light load the last sync is
    /// long past and a change is written at once; under heavy load this caps the syncs per
    /// second, and with them the writer's CPU (on a virtual disk every sync is a doorbell to
    /// the hypervisor) and its preemptions of the workers. Zero: sync as soon as the last
    /// one is done.
    pub commit_interval: Duration,
    /// The bindings in memory, for a snapshot when compaction finds a file damaged: the server
    /// passes its engine's. `None`: a damaged file stops each compaction (counted and logged),
    /// and stays.
    pub memory: Option<MemorySource>,
}

impl JournalOptions {
    /// The default [`JournalOptions::compact_after`]: 64 MiB, about 297 000 changes of
    /// [`crate::record::RECORD_LEN`] bytes.
    pub const DEFAULT_COMPACT_AFTER: u64 = 64 << 20;
    /// The default [`JournalOptions::commit_interval`]: 2 ms.
    pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(2);
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            durability: Durability::default(),
            compact_after: JournalOptions::DEFAULT_COMPACT_AFTER,
            setup: None,
            commit_interval: JournalOptions::DEFAULT_COMMIT_INTERVAL,
            memory: None,
        }
    }
}

impl std::fmt::Debug for JournalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalOptions")
            .field("durability", &self.durability)
            .field("compact_after", &self.compact_after)
            .field("setup", &self.setup.as_ref().map(|_| ".."))
            .field("commit_interval", &self.commit_interval)
            .field("memory", &self.memory.as_ref().map(|_| ".."))
            .finish()
    }
}

impl From<Durability> for JournalOptions {
    fn from(durability: Durability) -> JournalOptions {
        JournalOptions {
            durability,
            ..JournalOptions::default()
        }
    }
}

/// The lease journal: [`Journal::start`] starts its writer.
#[derive(Debug)]
pub struct Journal;

/// What the writer and the workers share.
#[derive(Debug)]
struct Shared {
    /// Per worker, the highest of its sequence numbers that is durable; stored by the writer
    /// only. (Each worker's queue has two ends, the worker's and the writer's own.)
    committed: Box<[CachePadded<AtomicU64>]>,
    stop: AtomicBool,
    /// Set by the writer while it parks (or is about to); the first worker that queues a change
    /// and sees it clears it and wakes the writer.
    idle: CachePadded<AtomicBool>,
    stats: Arc<JournalStats>,
    /// An operator asked for a snapshot: the writer seals the journal between two batches
    /// and clears it ([`SnapshotTrigger`]).
    snapshot: AtomicBool,
}

impl Shared {
    fn new(workers: usize) -> Shared {
        Shared {
            committed: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            stop: AtomicBool::new(false),
            idle: CachePadded::new(AtomicBool::new(false)),
            stats: Arc::new(JournalStats::default()),
            snapshot: AtomicBool::new(false),
        }
    }
}

impl Journal {
    /// Starts the writer of `dir`'s journal, and its compaction thread, with one
    /// [`WorkerJournal`] for each of `workers` dataplane workers.
    ///
    /// [`LeaseDir::recover`] must have succeeded just before, so that nothing is appended
    /// after a torn tail ([`StoreError::NotRecovered`] otherwise).
    pub fn start(
        dir: &LeaseDir,
        options: impl Into<JournalOptions>,
        workers: usize,
    ) -> Result<(JournalWriter, Vec<WorkerJournal>), StoreError> {
        let options = options.into();
        let path = dir.journal_path();
        let (recovered, next_segment) = dir
            .take_recovered()
            .ok_or_else(|| StoreError::NotRecovered(path.clone()))?;
        let disk = dir.disk().clone();
        let file = disk.open(&path, Open::Append).map_err(io_at(&path))?;
        if file.len().map_err(io_at(&path))? != recovered {
            return Err(StoreError::NotRecovered(path));
        }
        let shared = Arc::new(Shared::new(workers));
        let (producers, consumers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| ring(QUEUE_CAPACITY)).unzip();
        let (placed_tx, placed_rx) = mpsc::channel();
        let setup = options.setup.clone();
        let place = move |which: JournalThread| -> io::Result<()> {
            let result = setup.as_ref().map_or(Ok(()), |setup| setup(which));
            let failed = result.as_ref().err().map(ToString::to_string);
            let _ = placed_tx.send(failed);
            result
        };
        let (sealed_tx, sealed_rx) = mpsc::channel();
        if next_segment > 1 {
            // Segments sealed before a restart may still wait for their compaction.
            let _ = sealed_tx.send(next_segment - 1);
        }
        let compactor = thread::Builder::new()
            .name("peregrine-compact".into())
            .spawn({
                let shared = shared.clone();
                let dir = dir.path().to_path_buf();
                let disk = disk.clone();
                let place = place.clone();
                let memory = options.memory.clone();
                move || {
                    if place(JournalThread::Compactor).is_ok() {
                        compact_loop(&shared, &*disk, &dir, &sealed_rx, memory.as_ref());
                    }
                }
            })
            .map_err(io_at(&path))?;
        let segments = Segments {
            disk,
            dir: dir.path().to_path_buf(),
            len: recovered,
            limit: options
                .compact_after
                .max(HEADER_LEN as u64 + RECORD_LEN as u64),
            next: next_segment,
            sealed: sealed_tx,
        };
        let thread = thread::Builder::new()
            .name("peregrine-journal".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    place(JournalThread::Writer)?;
                    write_loop(&shared, consumers, file, &options, segments)
                }
            })
            .map_err(io_at(&path))?;
        // Both threads report whether they could be placed before they do anything else.
        for _ in 0..2 {
            if let Ok(Some(failed)) = placed_rx.recv() {
                shared.stop.store(true, Ordering::Release);
                thread.thread().unpark();
                let _ = thread.join();
                let _ = compactor.join();
                return Err(StoreError::Io {
                    path,
                    source: io::Error::other(format!("journal writer: {failed}")),
                });
            }
        }
        let sides = producers
            .into_iter()
            .enumerate()
            .map(|(index, queue)| WorkerJournal {
                shared: shared.clone(),
                queue,
                index,
                next: 0,
                writer: thread.thread().clone(),
            })
            .collect();
        Ok((
            JournalWriter {
                shared,
                thread: Some(thread),
                compactor: Some(compactor),
                path,
                _lock: dir.lock_handle(),
            },
            sides,
        ))
    }
}

impl LeaseDir {
    /// Appends `events` to the journal in one write and makes them durable (`fdatasync`)
    /// before returning: for tools that change leases while no server runs (lease import).
    ///
    /// Like [`Journal::start`], it requires [`LeaseDir::recover`] to have succeeded just
    /// before; after it succeeds, the journal counts as recovered again, so another append
    /// or a writer may follow. After an error, recover again.
    pub fn append(&self, events: &[BindingEvent]) -> Result<(), StoreError> {
        let path = self.journal_path();
        let (recovered, next_segment) = self
            .take_recovered()
            .ok_or_else(|| StoreError::NotRecovered(path.clone()))?;
        let mut file = self
            .disk()
            .open(&path, Open::Append)
            .map_err(io_at(&path))?;
        if file.len().map_err(io_at(&path))? != recovered {
            return Err(StoreError::NotRecovered(path));
        }
        let mut bytes = Vec::with_capacity(events.len() * RECORD_LEN);
        let mut record = [0u8; RECORD_LEN];
        for e in events {
            encode(e, &mut record);
            bytes.extend_from_slice(&record);
        }
        file.write_all(&bytes).map_err(io_at(&path))?;
        file.sync_data().map_err(io_at(&path))?;
        self.set_recovered(recovered + bytes.len() as u64, next_segment);
        Ok(())
    }
}

/// One dataplane worker's side of the journal. Neither method blocks, allocates or takes a
/// lock: `submit` pushes onto this worker's own queue, `committed` reads one atomic.
#[derive(Debug)]
pub struct WorkerJournal {
    shared: Arc<Shared>,
    /// This worker's changes on their way to the writer.
    queue: Producer<BindingEvent>,
    index: usize,
    /// The last sequence number handed out.
    next: u64,
    writer: Thread,
}

impl WorkerJournal {
    /// Queues `event` for the journal and wakes the writer if it sleeps; returns its sequence
    /// number (1, 2, … for this worker), or `None` if this worker's queue is full: the caller
    /// then drops the reply that depends on it (the client retries).
    pub fn submit(&mut self, event: &BindingEvent) -> Option<u64> {
        let seq = self.enqueue(event)?;
        self.wake();
        Some(seq)
    }

    /// [`WorkerJournal::submit`] without the wake-up: for a caller that queues a burst of
    /// changes and then calls [`WorkerJournal::wake`] once. Waking a sleeping writer is a
    /// syscall, and on a shared core the writer then preempts the caller: once per burst, not
    /// once per change. Without a wake the writer still finds the changes within 1 ms.
    pub fn enqueue(&mut self, event: &BindingEvent) -> Option<u64> {
        self.queue.push(*event).ok()?;
        self.next += 1;
        Some(self.next)
    }

    /// Wakes the writer if it sleeps, so that what was queued is written now.
    pub fn wake(&self) {
        // Pairs with the fence in `park_idle`: either the writer sees the changes queued
        // before this fence before it parks, or this load sees that it parks. Only one
        // worker pays for the wake-up.
        fence(Ordering::SeqCst);
        if self.shared.idle.load(Ordering::Relaxed)
            && self.shared.idle.swap(false, Ordering::Relaxed)
        {
            self.writer.unpark();
        }
    }

    /// The highest sequence number of this worker whose record is durable (as
    /// [`Durability`] defines it): replies for changes up to it may leave.
    pub fn committed(&self) -> u64 {
        self.shared.committed[self.index].load(Ordering::Acquire)
    }
}

impl BindingSink for WorkerJournal {
    /// [`WorkerJournal::enqueue`]: the writer is woken by [`BindingSink::flush`], once per burst.
    fn submit(&mut self, event: &BindingEvent) -> Option<u64> {
        self.enqueue(event)
    }

    fn flush(&mut self) {
        self.wake();
    }

    fn confirmed(&self) -> u64 {
        self.committed()
    }
}

/// The writer thread. [`JournalWriter::stop`] it after the workers have stopped submitting;
/// dropping it stops it too, but loses any error.
#[derive(Debug)]
pub struct JournalWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
    compactor: Option<JoinHandle<()>>,
    path: PathBuf,
    /// The lease directory's lock, held while the writer appends even if the [`LeaseDir`] is
    /// dropped first: no other server may open the directory meanwhile.
    _lock: Arc<Box<dyn DiskFile>>,
}

impl JournalWriter {
    /// What asks this journal for a snapshot now (`POST /v1/journal/snapshot`).
    pub fn snapshot_trigger(&self) -> SnapshotTrigger {
        SnapshotTrigger {
            shared: self.shared.clone(),
            writer: self.thread.as_ref().map(|t| t.thread().clone()),
        }
    }

    /// The writer's counters, readable from any thread for as long as the caller keeps them.
    pub fn stats(&self) -> Arc<JournalStats> {
        self.shared.stats.clone()
    }

    /// Writes and commits everything queued so far, then ends the thread. Returns the error
    /// that stopped the writer early, if one did (see [`JournalCounters::failed`]).
    pub fn stop(mut self) -> Result<(), StoreError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.shared.stop.store(true, Ordering::Release);
        thread.thread().unpark();
        let result = thread.join();
        // The writer is gone, and with it the channel: the compactor ends, abandoning a
        // compaction in progress (the next start redoes it).
        if let Some(compactor) = self.compactor.take() {
            let _ = compactor.join();
        }
        match result {
            Ok(result) => result.map_err(io_at(&self.path)),
            Err(_) => Err(StoreError::Io {
                path: self.path.clone(),
                source: io::Error::other("the journal writer panicked"),
            }),
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        // `stop` already reported the outcome; a plain drop has no one to report it to.
        let _ = self.finish();
    }
}

/// Upper bounds of the buckets of the journal's sync latency histogram, in microseconds.
pub const FSYNC_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// The writer's counters, for metrics. Updated once per batch.
#[derive(Debug, Default)]
pub struct JournalStats {
    records: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    bytes: AtomicU64,
    last_fsync_ns: AtomicU64,
    fsync_ns_sum: AtomicU64,
    /// Syncs by the first bucket of [`FSYNC_BUCKETS_US`] they fit in (slower ones only in
    /// `fsyncs`).
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_US.len()],
    failed: AtomicBool,
    sealed: AtomicU64,
    compactions: AtomicU64,
    compaction_failures: AtomicU64,
    damaged_files: AtomicU64,
    last_compaction_ns: AtomicU64,
    snapshot_records: AtomicU64,
}

/// Asks the journal writer for a snapshot now, rather than when the journal reaches
/// [`JournalOptions::compact_after`]: it seals the journal between two batches, and the
/// compactor folds every sealed segment into a new snapshot, in the background as always.
#[derive(Debug, Clone)]
pub struct SnapshotTrigger {
    shared: Arc<Shared>,
    writer: Option<thread::Thread>,
}

/// What [`SnapshotTrigger::snapshot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// A new snapshot holds every lease, in `took`.
    Written {
        /// Leases in the snapshot.
        records: u64,
        /// How long the compaction took.
        took: Duration,
    },
    /// The journal held nothing since the last snapshot.
    NothingNew,
}

impl SnapshotTrigger {
    /// Seals the journal and waits (at most `patience`) until the compactor has folded it into
    /// a snapshot. Blocks. An error says what failed or did not finish in time; the journal and
    /// its segments are as safe as before either way.
    pub fn snapshot(&self, patience: Duration) -> Result<Snapshot, String> {
        let stats = &self.shared.stats;
        let before = stats.snapshot();
        let deadline = Instant::now() + patience;
        self.shared.snapshot.store(true, Ordering::Release);
        if let Some(writer) = &self.writer {
            writer.unpark();
        }
        while self.shared.snapshot.load(Ordering::Acquire) {
            if stats.failed.load(Ordering::Relaxed) {
                return Err("the journal writer has failed: see peregrine_journal_failed".into());
            }
            if Instant::now() > deadline {
                return Err("the journal writer did not take the request in time".into());
            }
            thread::sleep(Duration::from_millis(1));
        }
        if stats.sealed.load(Ordering::Relaxed) == before.sealed {
            return Ok(Snapshot::NothingNew);
        }
        loop {
            let now = stats.snapshot();
            if now.compaction_failures > before.compaction_failures {
                return Err("the compaction failed (segments kept): see the log".into());
            }
            if now.compactions > before.compactions {
                return Ok(Snapshot::Written {
                    records: now.snapshot_records,
                    took: now.last_compaction,
                });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the journal is sealed; its compaction did not finish within {} s and goes \
                     on in the background",
                    patience.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A reading of [`JournalStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalCounters {
    /// Records written.
    pub records: u64,
    /// Batches written, each with one `write`.
    pub batches: u64,
    /// `fdatasync` calls (one per batch with [`Durability::Fsync`], none otherwise).
    pub fsyncs: u64,
    /// Bytes appended to the journal.
    pub bytes: u64,
    /// How long the last `fdatasync` took.
    pub last_fsync: Duration,
    /// How long all of them took.
    pub fsync_total: Duration,
    /// `fdatasync` calls that took at most each bound of [`FSYNC_BUCKETS_US`] (cumulative).
    pub fsync_within: [u64; FSYNC_BUCKETS_US.len()],
    /// The writer stopped on an I/O error: nothing more will be committed, workers' queues
    /// fill, and replies that wait for the journal are dropped. [`JournalWriter::stop`]
    /// returns the error.
    pub failed: bool,
    /// Journal segments sealed (the journal passed its size limit and a new one started).
    pub sealed: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Compactions that failed (logged; the segments stay until one succeeds).
    pub compaction_failures: u64,
    /// Damaged files compaction found while the server ran (logged with the file, offset and
    /// what is wrong): each set aside, and the snapshot written from memory instead.
    pub damaged_files: u64,
    /// How long the last compaction took.
    pub last_compaction: Duration,
    /// Records in the newest snapshot: addresses that ever changed.
    pub snapshot_records: u64,
}

impl JournalStats {
    /// The counters now.
    pub fn snapshot(&self) -> JournalCounters {
        JournalCounters {
            records: self.records.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            last_fsync: Duration::from_nanos(self.last_fsync_ns.load(Ordering::Relaxed)),
            fsync_total: Duration::from_nanos(self.fsync_ns_sum.load(Ordering::Relaxed)),
            fsync_within: {
                let mut sum = 0;
                std::array::from_fn(|i| {
                    sum += self.fsync_buckets[i].load(Ordering::Relaxed);
                    sum
                })
            },
            failed: self.failed.load(Ordering::Relaxed),
            sealed: self.sealed.load(Ordering::Relaxed),
            compactions: self.compactions.load(Ordering::Relaxed),
            compaction_failures: self.compaction_failures.load(Ordering::Relaxed),
            damaged_files: self.damaged_files.load(Ordering::Relaxed),
            last_compaction: Duration::from_nanos(self.last_compaction_ns.load(Ordering::Relaxed)),
            snapshot_records: self.snapshot_records.load(Ordering::Relaxed),
        }
    }
}

fn write_loop(
    shared: &Shared,
    queues: Vec<Consumer<BindingEvent>>,
    file: Box<dyn DiskFile>,
    options: &JournalOptions,
    segments: Segments,
) -> io::Result<()> {
    let result = run(shared, queues, file, options, segments);
    if result.is_err() {
        shared.stats.failed.store(true, Ordering::Relaxed);
    }
    result
}

/// The writer's loop. On any I/O error it returns at once and never publishes again: after a
/// failed `fdatasync` the kernel may have dropped the dirty pages, so no later success could
/// vouch for them, and appending after a partial write would bury it mid-file.
fn run(
    shared: &Shared,
    mut queues: Vec<Consumer<BindingEvent>>,
    mut file: Box<dyn DiskFile>,
    options: &JournalOptions,
    mut segments: Segments,
) -> io::Result<()> {
    let stats = &shared.stats;
    let durability = options.durability;
    // When the last fdatasync started; the next waits until commit_interval has passed.
    let mut last_sync: Option<Instant> = None;
    let mut batch = vec![0u8; MAX_BATCH * RECORD_LEN].into_boxed_slice();
    // Per worker: changes taken from its queue so far, which is its highest sequence number in
    // this batch, and what was last published.
    let mut taken = vec![0u64; shared.committed.len()].into_boxed_slice();
    let mut published = taken.clone();
    let mut first = 0;
    loop {
        if let Some(wait) = last_sync.and_then(|l| options.commit_interval.checked_sub(l.elapsed()))
            && !shared.stop.load(Ordering::Acquire)
        {
            // Workers do not wake a writer that is not idle; `stop` does, which is fine.
            thread::park_timeout(wait);
        }
        // Between batches every record written is durable and published: a seal loses none.
        if shared.snapshot.load(Ordering::Acquire) {
            if segments.len > HEADER_LEN as u64 {
                file = segments.seal(file)?;
                stats.sealed.fetch_add(1, Ordering::Relaxed);
            }
            shared.snapshot.store(false, Ordering::Release);
        }
        // Read before draining: whatever was queued before `stop` was set is drained below.
        let stopping = shared.stop.load(Ordering::Acquire);
        let count = fill(&mut queues, &mut batch, &mut taken, &mut first);
        if count == 0 {
            if stopping {
                return Ok(());
            }
            park_idle(shared, &queues);
            continue;
        }
        let bytes = &batch[..count * RECORD_LEN];
        file.write_all(bytes)?;
        if durability == Durability::Fsync {
            let started = Instant::now();
            last_sync = Some(started);
            file.sync_data()?;
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            stats.last_fsync_ns.store(ns, Ordering::Relaxed);
            stats.fsync_ns_sum.fetch_add(ns, Ordering::Relaxed);
            let bucket = FSYNC_BUCKETS_US.partition_point(|us| us * 1000 < ns);
            if let Some(b) = stats.fsync_buckets.get(bucket) {
                b.fetch_add(1, Ordering::Relaxed);
            }
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        // Only now may the workers let the replies of these records go.
        for ((committed, taken), published) in shared
            .committed
            .iter()
            .zip(&taken)
            .zip(published.iter_mut())
        {
            if taken != published {
                committed.store(*taken, Ordering::Release);
                *published = *taken;
            }
        }
        stats.records.fetch_add(count as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        segments.len += bytes.len() as u64;
        if segments.len >= segments.limit {
            file = segments.seal(file)?;
            stats.sealed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer's view of the journal's segments.
struct Segments {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    /// The journal's length.
    len: u64,
    /// Seal the journal once it is this long.
    limit: u64,
    /// The number the next sealed segment takes.
    next: u64,
    /// Tells the compactor which segments are sealed.
    sealed: Sender<u64>,
}

impl Segments {
    /// Renames the journal to `journal.<n>`, starts a new one and hands `n` to the
    /// compactor. Every record in the old journal is committed already, so the rename makes
    /// none of them less durable. A crash between the rename and the new journal's creation
    /// leaves no `journal`: opening the directory creates it.
    fn seal(&mut self, old: Box<dyn DiskFile>) -> io::Result<Box<dyn DiskFile>> {
        drop(old);
        let journal = self.dir.join(JOURNAL);
        let sealed = sealed_path(&self.dir, self.next);
        let disk = &*self.disk;
        disk.rename(&journal, &sealed)?;
        write_atomically(disk, &journal, &encode_header(unix_now())).map_err(io::Error::other)?;
        let file = disk.open(&journal, Open::Append)?;
        // The compactor is gone only while stopping; the segment is compacted at a later run.
        let _ = self.sealed.send(self.next);
        self.next += 1;
        self.len = HEADER_LEN as u64;
        Ok(file)
    }
}

/// The compactor's loop: folds sealed segments into a snapshot whenever the writer seals one,
/// until the writer stops. A failure is logged and counted
/// ([`JournalCounters::compaction_failures`]); the files stay and the next seal retries.
fn compact_loop(
    shared: &Shared,
    disk: &dyn Disk,
    dir: &Path,
    sealed: &Receiver<u64>,
    memory: Option<&MemorySource>,
) {
    let stats = &shared.stats;
    while let Ok(mut through) = sealed.recv() {
        // Segments sealed while the last compaction ran are folded in one go.
        while let Ok(n) = sealed.try_recv() {
            through = n;
        }
        let done = match (compact(disk, dir, through, &shared.stop), memory) {
            (
                Err(StoreError::Corrupt {
                    file,
                    offset,
                    reason,
                }),
                Some(memory),
            ) => {
                stats.damaged_files.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    file = %file.display(),
                    offset,
                    %reason,
                    "lease history damaged: writing the snapshot from the bindings in memory \
                     instead, and setting the file aside"
                );
                compact_from_memory(disk, dir, through, memory, &file, &shared.stop).map(|done| {
                    done.map(|(done, aside)| {
                        tracing::warn!(
                            aside = %aside.display(),
                            "lease history: the damaged file is set aside; the snapshot holds \
                             every binding the server had"
                        );
                        done
                    })
                })
            }
            (done, _) => done,
        };
        match done {
            Ok(Some(done)) => {
                tracing::info!(
                    through = done.through,
                    read = done.read,
                    records = done.records,
                    deleted = done.deleted,
                    ms = done.took.as_millis(),
                    "lease journal compacted into a snapshot"
                );
                let ns = u64::try_from(done.took.as_nanos()).unwrap_or(u64::MAX);
                stats.last_compaction_ns.store(ns, Ordering::Relaxed);
                stats
                    .snapshot_records
                    .store(done.records, Ordering::Relaxed);
                stats.compactions.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("lease journal compaction failed (segments kept): {e}");
                stats.compaction_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Encodes up to [`MAX_BATCH`] changes from the queues into `batch`, each queue's in order, taking
/// the queues in turn from `first`, which moves on so that the next batch starts with another
/// queue (the one a full batch did not reach): a busy worker holds back another's commits by
/// one batch at most. Returns how many.
fn fill(
    queues: &mut [Consumer<BindingEvent>],
    batch: &mut [u8],
    taken: &mut [u64],
    first: &mut usize,
) -> usize {
    let (records, _) = batch.as_chunks_mut::<RECORD_LEN>();
    let mut count = 0;
    for k in 0..queues.len() {
        let i = (*first + k) % queues.len();
        let room = MAX_BATCH - count;
        if room == 0 {
            // The next batch starts with the queue this one could not take: none waits
            // behind the others for more than one batch.
            *first = i;
            return count;
        }
        let took = queues[i].drain(room, |event| {
            encode(&event, &mut records[count]);
            count += 1;
        });
        taken[i] += took as u64;
    }
    *first = (*first + 1) % queues.len().max(1);
    count
}

/// Sleeps until a worker queues a change, [`JournalWriter::stop`] is called, or [`IDLE_PARK`]
/// passes.
fn park_idle(shared: &Shared, queues: &[Consumer<BindingEvent>]) {
    shared.idle.store(true, Ordering::Relaxed);
    // Pairs with the fence in `WorkerJournal::submit` (Dekker): a change queued before a
    // worker could see `idle` is seen here, so the writer does not sleep on it.
    fence(Ordering::SeqCst);
    if queues.iter().all(Consumer::is_empty) && !shared.stop.load(Ordering::Acquire) {
        thread::park_timeout(IDLE_PARK);
    }
    shared.idle.store(false, Ordering::Relaxed);
}
