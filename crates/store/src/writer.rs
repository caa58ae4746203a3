//! Group commit: the workers' side of the journal and the writer thread.
//!
//! Each worker owns a [`WorkerJournal`]: a bounded queue of encoded records that only it pushes
//! to, and a counter of how far its records are durable that only the writer stores. The
//! writer drains every queue round robin into one preallocated buffer, appends it with one
//! `write`, makes it durable with one `fdatasync`, and only then publishes the counters. A
//! batch closes when the queues are empty or it is full, so under light load a change waits
//! for one fsync, and under heavy load one fsync covers thousands of changes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use peregrine_engine::BindingEvent;

use crate::dir::LeaseDir;
use crate::error::{StoreError, io_at};
use crate::record::{RECORD_LEN, encode};

/// Records one worker may have waiting for the writer. A full queue means the disk is behind
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

/// The lease journal: [`Journal::start`] starts its writer.
#[derive(Debug)]
pub struct Journal;

/// One worker's queue and commit counter.
#[derive(Debug)]
struct Feed {
    queue: ArrayQueue<[u8; RECORD_LEN]>,
    /// The highest sequence number of this worker that is durable; stored by the writer only.
    committed: CachePadded<AtomicU64>,
}

/// What the writer and the workers share.
#[derive(Debug)]
struct Shared {
    feeds: Box<[Feed]>,
    stop: AtomicBool,
    /// Set by the writer while it parks (or is about to); the first worker that queues a record
    /// and sees it clears it and wakes the writer.
    idle: CachePadded<AtomicBool>,
    stats: Arc<JournalStats>,
}

impl Journal {
    /// Starts the writer of `dir`'s journal, with one [`WorkerJournal`] for each of `workers`
    /// dataplane workers.
    ///
    /// [`LeaseDir::recover`] must have succeeded just before, so that nothing is appended
    /// after a torn tail ([`StoreError::NotRecovered`] otherwise).
    pub fn start(
        dir: &LeaseDir,
        durability: Durability,
        workers: usize,
    ) -> Result<(JournalWriter, Vec<WorkerJournal>), StoreError> {
        let path = dir.journal_path();
        let recovered = dir
            .take_recovered()
            .ok_or_else(|| StoreError::NotRecovered(path.clone()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_at(&path))?;
        if file.metadata().map_err(io_at(&path))?.len() != recovered {
            return Err(StoreError::NotRecovered(path));
        }
        let shared = Arc::new(Shared {
            feeds: (0..workers)
                .map(|_| Feed {
                    queue: ArrayQueue::new(QUEUE_CAPACITY),
                    committed: CachePadded::new(AtomicU64::new(0)),
                })
                .collect(),
            stop: AtomicBool::new(false),
            idle: CachePadded::new(AtomicBool::new(false)),
            stats: Arc::new(JournalStats::default()),
        });
        let thread = thread::Builder::new()
            .name("peregrine-journal".into())
            .spawn({
                let shared = shared.clone();
                move || write_loop(&shared, file, durability)
            })
            .map_err(io_at(&path))?;
        let sides = (0..workers)
            .map(|index| WorkerJournal {
                shared: shared.clone(),
                index,
                next: 0,
                writer: thread.thread().clone(),
            })
            .collect();
        Ok((
            JournalWriter {
                shared,
                thread: Some(thread),
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
        let recovered = self
            .take_recovered()
            .ok_or_else(|| StoreError::NotRecovered(path.clone()))?;
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_at(&path))?;
        if file.metadata().map_err(io_at(&path))?.len() != recovered {
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
        self.set_recovered(recovered + bytes.len() as u64);
        Ok(())
    }
}

/// One dataplane worker's side of the journal. Neither method blocks, allocates or takes a
/// lock: `submit` pushes onto this worker's own queue, `committed` reads one atomic.
#[derive(Debug)]
pub struct WorkerJournal {
    shared: Arc<Shared>,
    index: usize,
    /// The last sequence number handed out.
    next: u64,
    writer: Thread,
}

impl WorkerJournal {
    /// Queues `event` for the journal and returns its sequence number (1, 2, … for this
    /// worker), or `None` if this worker's queue is full: the caller then drops the reply that
    /// depends on it (the client retries).
    pub fn submit(&mut self, event: &BindingEvent) -> Option<u64> {
        let mut record = [0u8; RECORD_LEN];
        encode(event, &mut record);
        self.shared.feeds[self.index].queue.push(record).ok()?;
        self.next += 1;
        // Pairs with the fence in `park_idle`: either the writer sees this record before it
        // parks, or this load sees that it parks. Only one worker pays for the wake-up.
        fence(Ordering::SeqCst);
        if self.shared.idle.load(Ordering::Relaxed)
            && self.shared.idle.swap(false, Ordering::Relaxed)
        {
            self.writer.unpark();
        }
        Some(self.next)
    }

    /// The highest sequence number of this worker whose record is durable (as
    /// [`Durability`] defines it): replies for changes up to it may leave.
    pub fn committed(&self) -> u64 {
        self.shared.feeds[self.index]
            .committed
            .load(Ordering::Acquire)
    }
}

/// The writer thread. [`JournalWriter::stop`] it after the workers have stopped submitting;
/// dropping it stops it too, but loses any error.
#[derive(Debug)]
pub struct JournalWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
    path: PathBuf,
    /// The lease directory's lock, held while the writer appends even if the [`LeaseDir`] is
    /// dropped first: no other server may open the directory meanwhile.
    _lock: Arc<File>,
}

impl JournalWriter {
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
        match thread.join() {
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

/// The writer's counters, for metrics. Updated once per batch.
#[derive(Debug, Default)]
pub struct JournalStats {
    records: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    bytes: AtomicU64,
    last_fsync_ns: AtomicU64,
    failed: AtomicBool,
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
    /// The writer stopped on an I/O error: nothing more will be committed, workers' queues
    /// fill, and replies that wait for the journal are dropped. [`JournalWriter::stop`]
    /// returns the error.
    pub failed: bool,
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
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

fn write_loop(shared: &Shared, file: File, durability: Durability) -> io::Result<()> {
    let result = run(shared, file, durability);
    if result.is_err() {
        shared.stats.failed.store(true, Ordering::Relaxed);
    }
    result
}

/// The writer's loop. On any I/O error it returns at once and never publishes again: after a
/// failed `fdatasync` the kernel may have dropped the dirty pages, so no later success could
/// vouch for them, and appending after a partial write would bury it mid-file.
fn run(shared: &Shared, mut file: File, durability: Durability) -> io::Result<()> {
    let stats = &shared.stats;
    let mut batch = vec![0u8; MAX_BATCH * RECORD_LEN].into_boxed_slice();
    // Per worker: records taken from its queue so far, which is its highest sequence number in
    // this batch, and what was last published.
    let mut taken = vec![0u64; shared.feeds.len()].into_boxed_slice();
    let mut published = taken.clone();
    let mut first = 0;
    loop {
        // Read before draining: whatever was queued before `stop` was set is drained below.
        let stopping = shared.stop.load(Ordering::Acquire);
        let count = fill(&shared.feeds, &mut batch, &mut taken, &mut first);
        if count == 0 {
            if stopping {
                return Ok(());
            }
            park_idle(shared);
            continue;
        }
        let bytes = &batch[..count * RECORD_LEN];
        file.write_all(bytes)?;
        if durability == Durability::Fsync {
            let started = Instant::now();
            file.sync_data()?;
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            stats.last_fsync_ns.store(ns, Ordering::Relaxed);
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        // Only now may the workers let the replies of these records go.
        for ((feed, taken), published) in shared.feeds.iter().zip(&taken).zip(published.iter_mut())
        {
            if taken != published {
                feed.committed.store(*taken, Ordering::Release);
                *published = *taken;
            }
        }
        stats.records.fetch_add(count as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

/// Moves up to [`MAX_BATCH`] records from the queues into `batch`, one per worker in turn so
/// that a busy worker cannot hold back another's commits, starting where the last full batch
/// stopped. Returns how many.
fn fill(feeds: &[Feed], batch: &mut [u8], taken: &mut [u64], first: &mut usize) -> usize {
    let mut count = 0;
    loop {
        let mut any = false;
        for k in 0..feeds.len() {
            let i = (*first + k) % feeds.len();
            if count == MAX_BATCH {
                *first = i;
                return count;
            }
            if let Some(record) = feeds[i].queue.pop() {
                batch[count * RECORD_LEN..(count + 1) * RECORD_LEN].copy_from_slice(&record);
                taken[i] += 1;
                count += 1;
                any = true;
            }
        }
        if !any {
            return count;
        }
    }
}

/// Sleeps until a worker queues a record, [`JournalWriter::stop`] is called, or [`IDLE_PARK`]
/// passes.
fn park_idle(shared: &Shared) {
    shared.idle.store(true, Ordering::Relaxed);
    // Pairs with the fence in `WorkerJournal::submit` (Dekker): a record queued before a
    // worker could see `idle` is seen here, so the writer does not sleep on it.
    fence(Ordering::SeqCst);
    if shared.feeds.iter().all(|f| f.queue.is_empty()) && !shared.stop.load(Ordering::Acquire) {
        thread::park_timeout(IDLE_PARK);
    }
    shared.idle.store(false, Ordering::Relaxed);
}
