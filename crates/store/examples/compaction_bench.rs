//! What a compaction costs: the time to fold a snapshot of N leases and a journal of M changes
//! into a new snapshot, printed as a table:
//!
//! ```sh
//! cargo run --release -p peregrine-store --example compaction_bench -- [--leases N] [--changes M] [--dir DIR]
//! ```
//!
//! First N new leases (distinct addresses) go into the journal and are folded into a snapshot
//! (a first compaction: the journal alone), then M renewals of the first M addresses (each a
//! newer binding version) are folded with that snapshot (the steady case: snapshot and
//! segment). Defaults: N = 300 000 (about one 64 MiB segment), M = N. The directory lives under
//! DIR (default: the system's temporary directory; it must be on the disk under test) and is
//! removed afterwards. The time is the compactor thread's elapsed time, on an idle machine its
//! CPU time plus the final syncs.

// A measuring program: any failure should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use peregrine_engine::{
    Binding, BindingEvent, BindingState, ClientInfo, ClientKey, KeySecret, ScopeId,
};
use peregrine_store::{Durability, Journal, LeaseDir, Snapshot};

fn main() {
    let (mut leases, mut changes) = (300_000u32, None);
    let mut dir = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--leases" => leases = args.next().unwrap().parse().unwrap(),
            "--changes" => changes = Some(args.next().unwrap().parse().unwrap()),
            "--dir" => dir = PathBuf::from(args.next().unwrap()),
            other => panic!("unknown argument {other}: use --leases N, --changes M, --dir DIR"),
        }
    }
    let changes = changes.unwrap_or(leases).min(leases);
    let path = dir.join(format!("peregrine-compaction-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    println!(
        "lease directory in {} · {} B per record",
        path.display(),
        peregrine_store::record::RECORD_LEN
    );
    println!();
    println!("| compaction | records read | records written | took | µs per record read |");
    println!("|---|---|---|---|---|");
    let first = fold(&path, &(0..leases).map(|n| lease(n, 1)).collect::<Vec<_>>());
    report("journal of N new leases", u64::from(leases), first);
    let second = fold(
        &path,
        &(0..changes).map(|n| lease(n, 2)).collect::<Vec<_>>(),
    );
    report(
        "snapshot of N and M renewals",
        u64::from(leases) + u64::from(changes),
        second,
    );
    std::fs::remove_dir_all(&path).unwrap();
}

/// Appends `events` to the journal of the directory at `path` and has it folded into a
/// snapshot at once.
fn fold(path: &std::path::Path, events: &[BindingEvent]) -> (u64, Duration) {
    let dir = LeaseDir::open(path).unwrap();
    dir.recover().unwrap();
    dir.append(events).unwrap();
    let (writer, _sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
    let outcome = writer
        .snapshot_trigger()
        .snapshot(Duration::from_mins(10))
        .unwrap();
    writer.stop().unwrap();
    match outcome {
        Snapshot::Written { records, took } => (records, took),
        Snapshot::NothingNew => panic!("nothing was folded"),
    }
}

fn report(what: &str, read: u64, (written, took): (u64, Duration)) {
    println!(
        "| {what} | {read} | {written} | {:.1} ms | {:.2} |",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / read as f64
    );
}

/// Lease `n` at binding version `version`: address 10.0.0.0 + n, a client of its own, with the
/// options a relayed broadband router's lease keeps (option 82 with circuit and remote id, a
/// host name, a vendor class).
fn lease(n: u32, version: u32) -> BindingEvent {
    let secret = KeySecret([3; 16]);
    let mac = [
        2,
        0,
        (n >> 24) as u8,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ];
    BindingEvent {
        scope: ScopeId(0),
        address: Ipv4Addr::from_bits(0x0a00_0000 | n),
        binding: Binding {
            client: Some(ClientKey::hardware(1, &mac, &secret)),
            mac,
            state: BindingState::Active,
            expires: 1_800_003_600 + u64::from(version),
            cltt: 1_800_000_000 + u64::from(version),
            granted: 3600,
            partner_sent: 0,
            partner_acked: 0,
            classes: 0,
            version,
            info: info(n),
        },
    }
}

fn info(n: u32) -> ClientInfo {
    let circuit = format!("olt{}/port{}", n % 8, n % 4096);
    let remote = format!("sub-{n}");
    let host = format!("router-{n}");
    let vendor = b"udhcp 1.36.1";
    let mut agent = vec![1, circuit.len() as u8];
    agent.extend_from_slice(circuit.as_bytes());
    agent.extend_from_slice(&[2, remote.len() as u8]);
    agent.extend_from_slice(remote.as_bytes());
    let mut bytes = vec![82, agent.len() as u8];
    bytes.extend_from_slice(&agent);
    bytes.extend_from_slice(&[12, host.len() as u8]);
    bytes.extend_from_slice(host.as_bytes());
    bytes.extend_from_slice(&[60, vendor.len() as u8]);
    bytes.extend_from_slice(vendor);
    ClientInfo::from_options(&bytes).unwrap()
}
