//! Start-up recovery time: how long a server takes to read N leases back into its engine.
//!
//! ```sh
//! cargo run --release -p peregrine-store --example recovery_bench -- [--leases N ...] [--dir DIR] [--threads T]
//! ```
//!
//! For each N (default 1 000 000 and 10 000 000) it writes a lease directory as compaction
//! leaves it (a snapshot holding N active leases of distinct clients, and an empty journal) under
//! DIR (default: the system's temporary directory; it must be on the disk under test), then
//! times what `peregrine run` does before serving: open the directory, build the engine for a
//! pool of N addresses, and replay every record into it. The file is read once from disk
//! after the page cache is dropped when possible (as root), so the figure includes the read.
//! Replay runs on T threads (default: every core), as `peregrine run` does.

// A measuring program: any failure should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use peregrine_engine::{
    Binding, BindingEvent, BindingState, ClientKey, Engine, EngineOptions, ScopeId,
};
use peregrine_store::LeaseDir;
use peregrine_store::record::{RECORD_LEN, encode, encode_header};

const FIRST: u32 = 0x0a00_0001;

fn main() {
    let mut counts = Vec::new();
    let mut dir = std::env::temp_dir();
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--leases" => counts.push(args.next().unwrap().parse::<u32>().unwrap()),
            "--dir" => dir = PathBuf::from(args.next().unwrap()),
            "--threads" => threads = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}: use --leases N, --dir DIR, --threads T"),
        }
    }
    if counts.is_empty() {
        counts = vec![1_000_000, 10_000_000];
    }
    println!("replay threads: {threads}");
    println!(
        "| leases | snapshot | engine build | ready to serve (build + read + replay) | replayed leases/s | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    for n in counts {
        let path = dir.join(format!(
            "peregrine-recovery-bench-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        let config = config(n);
        let secret = {
            let leases = LeaseDir::open(&path).unwrap();
            leases.key_secret()
        };
        let options = EngineOptions {
            key_secret: secret,
            ..EngineOptions::default()
        };
        let engine = Engine::new(&config, options).unwrap();
        let bytes = write_snapshot(&path, &engine, n);
        drop(engine);
        drop_caches();

        let t = Instant::now();
        let leases = LeaseDir::open(&path).unwrap();
        let engine = Engine::new(&config, options).unwrap();
        let built = t.elapsed();
        let refused = AtomicU64::new(0);
        let recovered = leases
            .recover_parallel(threads, |e| {
                if engine.replay(e).is_err() {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
        let refused = refused.into_inner();
        let total = t.elapsed();
        assert_eq!((recovered.records, refused), (u64::from(n), 0));
        assert_eq!(
            engine
                .binding(Ipv4Addr::from_bits(FIRST + n - 1))
                .unwrap()
                .1
                .state,
            BindingState::Active
        );
        println!(
            "| {n} | {:.0} MB | {:.2} s | {:.2} s | {:.2} M | {} MB |",
            bytes as f64 / 1e6,
            built.as_secs_f64(),
            total.as_secs_f64(),
            f64::from(n) / total.saturating_sub(built).as_secs_f64() / 1e6,
            peak_rss_mb()
        );
        drop(engine);
        drop(leases);
        std::fs::remove_dir_all(&path).unwrap();
    }
}

/// One scope whose pool holds exactly `n` addresses from 10.0.0.1.
fn config(n: u32) -> peregrine_config::model::Config {
    let last = Ipv4Addr::from_bits(FIRST + n - 1);
    let text = format!(
        "[[scope]]\nname = \"bench\"\nsubnet = \"10.0.0.0/8\"\n\n[[scope.pool]]\nrange = \"{} - {last}\"\n",
        Ipv4Addr::from_bits(FIRST)
    );
    peregrine_config::parse(&text, "recovery_bench.toml").unwrap()
}

/// Writes `snapshot.1` with `n` active leases and returns its size.
fn write_snapshot(dir: &Path, engine: &Engine, n: u32) -> u64 {
    let path = dir.join("snapshot.1");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    out.write_all(&encode_header(1_800_000_000)).unwrap();
    let mut record = [0u8; RECORD_LEN];
    for k in 0..n {
        let mac = [
            2,
            0,
            (k >> 24) as u8,
            (k >> 16) as u8,
            (k >> 8) as u8,
            k as u8,
        ];
        let client: ClientKey = engine.client_key_for(1, &mac, None);
        let event = BindingEvent {
            scope: ScopeId(0),
            address: Ipv4Addr::from_bits(FIRST + k),
            binding: Binding {
                client: Some(client),
                mac,
                state: BindingState::Active,
                expires: 4_000_000_000,
                cltt: 1_800_000_000,
                granted: 3600,
                partner_sent: 0,
                partner_acked: 0,
                classes: 0,
                version: 3,
                info: peregrine_engine::ClientInfo::EMPTY,
            },
        };
        encode(&event, &mut record);
        out.write_all(&record).unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    std::fs::metadata(&path).unwrap().len()
}

/// Drops the page cache so the snapshot is read from the disk (root only; silently skipped).
fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix(" kB")?.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
