//! The writer thread and the workers' side of the journal: group commit.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use peregrine_engine::BindingEvent;

use crate::dir::{LeaseDir, StoreError};
use crate::record::{RECORD_LEN, encode};

/// Records a worker may have waiting for the writer.
const QUEUE: usize = 8192;
/// Records per batch at most (one write, one fdatasync).
const MAX_BATCH: usize = 4096;
/// How long an idle writer sleeps before looking at the queues again.
const IDLE: Duration = Duration::from_micros(100);

/// Entry point: starts the writer on a recovered lease directory.
pub struct Journal;

/// One worker's side: its own queue to the writer and the writer's report of how far its
/// records are durable.
#[derive(Debug)]
pub struct WorkerJournal {
    queue: Arc<ArrayQueue<[u8; RECORD_LEN]>>,
    committed: Arc<CachePadded<AtomicU64>>,
    next: u64,
}

impl WorkerJournal {
    /// Queues `event` without blocking or allocating; returns its sequence number (1, 2, ...),
    /// or `None` when this worker's queue is full.
    pub fn submit(&mut self, event: &BindingEvent) -> Option<u64> {
        let mut rec = [0u8; RECORD_LEN];
        encode(event, &mut rec);
        self.queue.push(rec).ok()?;
        self.next += 1;
        Some(self.next)
    }

    /// The highest sequence number of this worker's records that is durable.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }
}

/// What the writer has done, for metrics.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Records written.
    pub records: AtomicU64,
    /// Batches written (each one write and, with fsync durability, one fdatasync).
    pub batches: AtomicU64,
    /// Nanoseconds the last fdatasync took.
    pub last_sync_ns: AtomicU64,
}

/// The writer thread.
pub struct JournalWriter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<()>>,
    /// Counters, readable from any thread.
    pub stats: Arc<JournalStats>,
}

impl Journal {
    /// Opens the journal of `dir` for appending (call [`LeaseDir::recover`] first) and starts the
    /// writer for `workers` workers. With `fsync` false the writer never waits for the disk:
    /// durability "none-unsafe".
    pub fn start(
        dir: &LeaseDir,
        fsync: bool,
        workers: usize,
    ) -> Result<(JournalWriter, Vec<WorkerJournal>), StoreError> {
        let path = dir.journal_path();
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        let sides: Vec<WorkerJournal> = (0..workers)
            .map(|_| WorkerJournal {
                queue: Arc::new(ArrayQueue::new(QUEUE)),
                committed: Arc::new(CachePadded::new(AtomicU64::new(0))),
                next: 0,
            })
            .collect();
        let feeds: Vec<_> = sides
            .iter()
            .map(|w| (w.queue.clone(), w.committed.clone()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(JournalStats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("peregrine-journal".into())
            .spawn(move || write_loop(file, &feeds, fsync, &stop2, &stats2))
            .map_err(|source| StoreError::Io { path, source })?;
        Ok((
            JournalWriter {
                stop,
                thread,
                stats,
            },
            sides,
        ))
    }
}

impl JournalWriter {
    /// Writes and commits what is queued, then stops the thread.
    pub fn stop(self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .map_err(|_| io::Error::other("journal writer panicked"))?
    }
}

type Feed = (
    Arc<ArrayQueue<[u8; RECORD_LEN]>>,
    Arc<CachePadded<AtomicU64>>,
);

fn write_loop(
    mut file: std::fs::File,
    feeds: &[Feed],
    fsync: bool,
    stop: &AtomicBool,
    stats: &JournalStats,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(MAX_BATCH * RECORD_LEN);
    let mut taken = vec![0u64; feeds.len()];
    let mut published = vec![0u64; feeds.len()];
    loop {
        // Read the flag first: whatever was queued before it was set is drained below.
        let stopping = stop.load(Ordering::Acquire);
        buf.clear();
        let mut n = 0;
        'fill: loop {
            let mut any = false;
            for (i, (queue, _)) in feeds.iter().enumerate() {
                if let Some(rec) = queue.pop() {
                    buf.extend_from_slice(&rec);
                    taken[i] += 1;
                    n += 1;
                    any = true;
                    if n == MAX_BATCH {
                        break 'fill;
                    }
                }
            }
            if !any {
                break;
            }
        }
        if n == 0 {
            if stopping {
                return Ok(());
            }
            std::thread::sleep(IDLE);
            continue;
        }
        file.write_all(&buf)?;
        if fsync {
            let t = Instant::now();
            file.sync_data()?;
            stats.last_sync_ns.store(
                u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        // Only now may the workers let the ACKs of these records go.
        for (i, (_, committed)) in feeds.iter().enumerate() {
            if taken[i] != published[i] {
                committed.store(taken[i], Ordering::Release);
                published[i] = taken[i];
            }
        }
        stats.records.fetch_add(n as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
    }
}
