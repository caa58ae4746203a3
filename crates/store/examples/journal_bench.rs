//! Journal throughput and the latency commit adds, printed as a table:
//!
//! ```sh
//! cargo run --release -p peregrine-store --example journal_bench -- [--secs S] [--dir DIR]
//! ```
//!
//! For each durability (`fsync`, `none-unsafe`), 1 and 2 submitting threads (each a
//! dataplane worker's [`WorkerJournal`]), and 1 or 1024 changes in flight per thread: the
//! threads submit binding changes for S seconds (default 2; at most 2 M changes a run, so
//! the journal stays small) and measure, for every change, the time from `submit` to the
//! `committed()` that covers it. 1 in flight is a lone client: each change waits for its own
//! batch. 1024 is a loaded worker holding as many replies as the dataplane's default
//! `held_replies`. The journal lives in a fresh directory under DIR (default: the system's
//! temporary directory), removed afterwards: DIR must be on the disk under test (not tmpfs).

// A measuring program: any failure should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peregrine_engine::{Binding, BindingEvent, BindingState, ClientKey, KeySecret, ScopeId};
use peregrine_store::{Durability, Journal, LeaseDir, WorkerJournal};

/// Changes per run at most.
const CAP: u64 = 2_000_000;
/// Submit times kept per thread, indexed by sequence number; more than can be in flight.
const RING: usize = 1 << 14;

fn main() {
    let mut secs = 2.0f64;
    let mut dir = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => secs = args.next().unwrap().parse().unwrap(),
            "--dir" => dir = PathBuf::from(args.next().unwrap()),
            other => panic!("unknown argument {other}: use --secs S, --dir DIR"),
        }
    }
    let duration = Duration::from_secs_f64(secs);
    println!(
        "journal in {} · {secs} s or {CAP} changes per run · {} B per record",
        dir.display(),
        peregrine_store::record::RECORD_LEN
    );
    println!();
    println!(
        "| durability | threads | in flight / thread | changes/s | fsyncs/s | changes/fsync | commit p50 | commit p99 | commit max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for durability in [Durability::Fsync, Durability::NoneUnsafe] {
        for threads in [1, 2] {
            for window in [1, 1024] {
                let r = run(&dir, durability, threads, window, duration);
                let name = match durability {
                    Durability::Fsync => "fsync",
                    Durability::NoneUnsafe => "none-unsafe",
                };
                let per_s = |n: u64| n as f64 / r.elapsed.as_secs_f64();
                println!(
                    "| {name} | {threads} | {window} | {:.0} | {:.0} | {} | {} | {} | {} |",
                    per_s(r.records),
                    per_s(r.fsyncs),
                    if r.fsyncs == 0 {
                        "—".to_string()
                    } else {
                        format!("{:.1}", r.records as f64 / r.fsyncs as f64)
                    },
                    micros(r.p50),
                    micros(r.p99),
                    micros(r.max),
                );
            }
        }
    }
}

fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

struct Outcome {
    records: u64,
    fsyncs: u64,
    elapsed: Duration,
    p50: u64,
    p99: u64,
    max: u64,
}

fn run(
    parent: &Path,
    durability: Durability,
    threads: usize,
    window: u64,
    duration: Duration,
) -> Outcome {
    let path = parent.join(format!("peregrine-journal-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    let dir = LeaseDir::open(&path).unwrap();
    dir.recover().unwrap();
    let (writer, sides) = Journal::start(&dir, durability, threads).unwrap();
    let stats = writer.stats();
    let cap = CAP / threads as u64;
    let started = Instant::now();
    let mut latencies: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = sides
            .into_iter()
            .enumerate()
            .map(|(t, side)| {
                s.spawn(move || submitter(side, t as u16, window, cap, started + duration))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    writer.stop().unwrap();
    let counters = stats.snapshot();
    drop(dir);
    std::fs::remove_dir_all(&path).unwrap();
    latencies.sort_unstable();
    let at = |percent: usize| latencies[(latencies.len() - 1) * percent / 100];
    Outcome {
        records: counters.records,
        fsyncs: counters.fsyncs,
        elapsed,
        p50: at(50),
        p99: at(99),
        max: at(100),
    }
}

/// Submits changes with at most `window` uncommitted until `deadline` or `cap` changes, then
/// waits for the last commit. Returns each change's submit-to-committed time in nanoseconds.
fn submitter(
    mut side: WorkerJournal,
    thread: u16,
    window: u64,
    cap: u64,
    deadline: Instant,
) -> Vec<u64> {
    let secret = KeySecret([3; 16]);
    let mut sent = vec![Instant::now(); RING];
    let mut latencies = Vec::with_capacity(usize::try_from(cap).unwrap());
    let (mut submitted, mut seen) = (0u64, 0u64);
    let mut n = 0u32;
    loop {
        let done = submitted >= cap || Instant::now() >= deadline;
        if done && seen == submitted {
            return latencies;
        }
        if !done && submitted - seen < window {
            n = n.wrapping_add(1);
            let mac = [
                2,
                thread as u8,
                (n >> 24) as u8,
                (n >> 16) as u8,
                (n >> 8) as u8,
                n as u8,
            ];
            let event = BindingEvent {
                scope: ScopeId(thread),
                address: Ipv4Addr::from_bits(0x0a00_0000 | n),
                binding: Binding {
                    client: Some(ClientKey::hardware(1, &mac, &secret)),
                    mac,
                    state: BindingState::Active,
                    expires: 1_800_003_600,
                    cltt: 1_800_000_000,
                    granted: 3600,
                    partner_sent: 0,
                    partner_acked: 0,
                    classes: 0,
                    version: 1,
                    info: peregrine_engine::ClientInfo::EMPTY,
                },
            };
            if let Some(seq) = side.submit(&event) {
                sent[seq as usize % RING] = Instant::now();
                submitted = seq;
            }
        }
        let committed = side.committed();
        if committed > seen {
            let now = Instant::now();
            for seq in seen + 1..=committed {
                latencies.push(now.duration_since(sent[seq as usize % RING]).as_nanos() as u64);
            }
            seen = committed;
        } else if done || submitted - seen >= window {
            std::thread::yield_now();
        }
    }
}
