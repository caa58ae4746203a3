//! Power-cut safety of the journal: the store runs on a [`SimDisk`] through normal writes,
//! segment sealing, snapshots and compaction; then, for every moment an operation changed the
//! disk, power is cut there (several ways: how much of the unsynced data survives, where the
//! last write tears) and the lease directory is opened and recovered as a restart would. No
//! recovery may refuse, and every change the journal had reported committed before the cut
//! must be read back (its binding version, or a newer one of its address).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::{Binding, BindingEvent, BindingState, ClientInfo, ScopeId};

use crate::dir::LeaseDir;
use crate::record::{HEADER_LEN, RECORD_LEN};
use crate::sim::{Image, SimDisk};
use crate::writer::{Durability, Journal, JournalOptions};

/// Addresses the changes cycle over.
const ADDRESSES: u32 = 24;
/// Changes the workload commits.
const CHANGES: u32 = 240;
/// Ways each crash point is cut.
const CUTS: u64 = 3;

fn change(n: u32) -> BindingEvent {
    BindingEvent {
        scope: ScopeId(0),
        address: Ipv4Addr::new(10, 0, 0, 10 + (n % ADDRESSES) as u8),
        binding: Binding {
            client: None,
            mac: [2, 0, 0, 0, 0, (n % 251) as u8],
            state: BindingState::Abandoned,
            expires: 1_800_000_000 + u64::from(n),
            cltt: 1_800_000_000,
            granted: 0,
            partner_sent: 0,
            partner_acked: 0,
            classes: 0,
            version: n / ADDRESSES + 1,
            info: ClientInfo::EMPTY,
        },
    }
}

/// A change the journal reported committed, and how many disk operations had been done by
/// the time the workload saw it so (every cut after that many must keep it).
struct Committed {
    event: BindingEvent,
    seen_after: u64,
}

/// Commits [`CHANGES`] changes from two workers through a journal that seals every 20
/// records (so compaction runs again and again), asks for a snapshot half-way, and stops.
fn workload(disk: &SimDisk, path: &Path) -> Vec<Committed> {
    let dir = LeaseDir::open_on(Arc::new(disk.clone()), path).unwrap();
    dir.recover().unwrap();
    let options = JournalOptions {
        durability: Durability::Fsync,
        compact_after: (HEADER_LEN + 20 * RECORD_LEN) as u64,
        commit_interval: Duration::ZERO,
        ..JournalOptions::default()
    };
    let (writer, mut sides) = Journal::start(&dir, options, 2).unwrap();
    let mut committed = Vec::new();
    let mut waiting: Vec<(usize, u64, BindingEvent)> = Vec::new();
    for n in 0..CHANGES {
        let side = (n % 2) as usize;
        let event = change(n);
        let deadline = Instant::now() + Duration::from_secs(10);
        let seq = loop {
            if let Some(seq) = sides[side].submit(&event) {
                break seq;
            }
            assert!(Instant::now() < deadline, "journal queue full for 10 s");
            std::thread::yield_now();
        };
        waiting.push((side, seq, event));
        // Batches of a few, as workers' bursts are.
        if n % 5 == 4 {
            for (side, seq, event) in waiting.drain(..) {
                let deadline = Instant::now() + Duration::from_secs(10);
                while sides[side].committed() < seq {
                    assert!(Instant::now() < deadline, "not committed within 10 s");
                    std::thread::yield_now();
                }
                committed.push(Committed {
                    event,
                    seen_after: disk.ops(),
                });
            }
        }
        if n == CHANGES / 2 {
            writer
                .snapshot_trigger()
                .snapshot(Duration::from_secs(10))
                .unwrap();
        }
    }
    writer.stop().unwrap();
    committed
}

/// Recovers the lease directory of `disk` as a restart would; the newest version of each
/// address read back.
fn recover(disk: SimDisk, path: &Path) -> Result<HashMap<Ipv4Addr, u32>, String> {
    let dir = LeaseDir::open_on(Arc::new(disk), path).map_err(|e| e.to_string())?;
    let read = dir.recover().map_err(|e| e.to_string())?;
    let mut newest = HashMap::new();
    for e in read.events {
        let v = newest.entry(e.address).or_insert(0);
        *v = (*v).max(e.binding.version);
    }
    Ok(newest)
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Cuts the power at every image, `CUTS` ways each (the first keeps nothing unsynced), and
/// checks each restart. Returns the findings, and how many cuts were made.
fn explore(
    images: &[Image],
    committed: &[Committed],
    path: &Path,
    seed: u64,
) -> (Vec<String>, u64) {
    let mut rng = Rng(seed | 1);
    let mut findings = Vec::new();
    let mut cuts = 0;
    for image in images {
        for way in 0..CUTS {
            let disk = if way == 0 {
                image.cut(|_| 0)
            } else {
                image.cut(|n| rng.below(n))
            };
            cuts += 1;
            // A second cut while the restart recovers (cutting a torn tail, tidying).
            if way == 1 {
                disk.record();
                let _ = recover(disk.clone(), path);
                for again in disk.images() {
                    cuts += 1;
                    let disk = again.cut(|n| rng.below(n));
                    check(
                        recover(disk, path),
                        &again,
                        committed,
                        &mut findings,
                        "again",
                    );
                }
            }
            check(recover(disk, path), image, committed, &mut findings, "");
        }
    }
    (findings, cuts)
}

/// Whether a restart after the cut at `image` read back every change committed before it.
fn check(
    recovered: Result<HashMap<Ipv4Addr, u32>, String>,
    image: &Image,
    committed: &[Committed],
    findings: &mut Vec<String>,
    when: &str,
) {
    let newest = match recovered {
        Ok(newest) => newest,
        Err(e) => {
            findings.push(format!("cut after op {} {when}: refused: {e}", image.after));
            return;
        }
    };
    for c in committed.iter().filter(|c| c.seen_after <= image.after) {
        let have = newest.get(&c.event.address).copied().unwrap_or(0);
        if have < c.event.binding.version {
            findings.push(format!(
                "cut after op {} {when}: committed change of {} version {} lost (have {have})",
                image.after, c.event.address, c.event.binding.version
            ));
        }
    }
}

#[test]
fn every_committed_change_survives_a_power_cut_at_any_point() {
    let path = Path::new("/leases");
    for seed in [1, 2, 3] {
        let disk = SimDisk::recording();
        let committed = workload(&disk, path);
        assert_eq!(committed.len(), CHANGES as usize);
        let images = disk.images();
        let (findings, cuts) = explore(&images, &committed, path, seed);
        println!(
            "power-cut exploration, seed {seed}: {} crash points, {cuts} cuts, {} committed changes",
            images.len(),
            committed.len()
        );
        assert!(
            findings.is_empty(),
            "{} findings, the first: {:#?}",
            findings.len(),
            &findings[..findings.len().min(5)]
        );
        assert!(images.len() > 100, "only {} crash points", images.len());
    }
}
