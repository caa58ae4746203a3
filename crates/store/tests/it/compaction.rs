//! Sealing and compaction: the journal is sealed at its size limit, sealed segments are folded
//! into a snapshot holding the newest change of each address, and a crash at any step of that
//! leaves files that recovery reads right and tidies.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::BindingEvent;
use peregrine_store::record::{FormatError, HEADER_LEN, RECORD_LEN, encode, encode_header};
use peregrine_store::{
    Durability, Journal, JournalOptions, LeaseDir, MemorySource, StoreError, repair,
};

use crate::support::{TempDir, event, wait_committed};

/// Addresses the changes below cycle over.
const ADDRESSES: u32 = 50;

/// Change `n`: address `n % ADDRESSES`, each address's changes numbered by version.
fn change(n: u32) -> BindingEvent {
    let mut e = event(n % ADDRESSES, 0);
    e.binding.version = n / ADDRESSES + 1;
    e.binding.cltt = u64::from(n);
    e
}

/// The newest change of each address among `events`, by binding version.
fn newest(events: impl IntoIterator<Item = BindingEvent>) -> HashMap<Ipv4Addr, BindingEvent> {
    let mut out: HashMap<Ipv4Addr, BindingEvent> = HashMap::new();
    for e in events {
        let kept = out.entry(e.address).or_insert(e);
        if e.binding.version > kept.binding.version {
            *kept = e;
        }
    }
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock" && n != "secret")
        .collect();
    v.sort();
    v
}

/// Writes a history file: header and the records of `changes`.
fn history_file(path: &Path, changes: impl IntoIterator<Item = u32>) {
    let mut bytes = encode_header(1).to_vec();
    for n in changes {
        let mut r = [0u8; RECORD_LEN];
        encode(&change(n), &mut r);
        bytes.extend_from_slice(&r);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_full_journal_is_sealed_and_folded_into_a_snapshot_of_the_newest_changes() {
    let tmp = TempDir::new("compact");
    let options = JournalOptions {
        durability: Durability::Fsync,
        // 40 records per segment.
        compact_after: (HEADER_LEN + 40 * RECORD_LEN) as u64,
        ..JournalOptions::default()
    };
    let total = 1000u32;
    {
        let dir = LeaseDir::open(&tmp.0).unwrap();
        dir.recover().unwrap();
        let (writer, mut sides) = Journal::start(&dir, options, 1).unwrap();
        let stats = writer.stats();
        for n in 0..total {
            let seq = sides[0].submit(&change(n)).unwrap();
            // One change per batch: the journal passes its limit at a known record.
            wait_committed(&sides[0], seq);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.snapshot().compactions == 0 {
            assert!(Instant::now() < deadline, "no compaction within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.stop().unwrap();
        let c = stats.snapshot();
        assert_eq!(c.sealed, u64::from(total) / 40);
        assert_eq!(c.compaction_failures, 0);
        assert_eq!(c.snapshot_records, u64::from(ADDRESSES));
    }
    // Disk use is bounded: one snapshot with a record per address, a few segments at most.
    let files = names(&tmp.0);
    let snapshots: Vec<_> = files
        .iter()
        .filter(|n| n.starts_with("snapshot."))
        .collect();
    assert_eq!(snapshots.len(), 1, "{files:?}");
    let snapshot = std::fs::metadata(tmp.0.join(snapshots[0])).unwrap().len();
    assert_eq!(
        snapshot,
        (HEADER_LEN + ADDRESSES as usize * RECORD_LEN) as u64
    );
    let sealed = files.iter().filter(|n| n.starts_with("journal.")).count();
    assert!(sealed <= 3, "{files:?}");

    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    assert_eq!(r.history_files, 1 + sealed);
    assert_eq!(newest(r.events.clone()), newest((0..total).map(change)));
}

#[test]
fn parallel_recovery_hands_over_every_change_once() {
    let tmp = TempDir::new("parallel");
    drop(LeaseDir::open(&tmp.0).unwrap());
    // Several batches' worth, in two files.
    history_file(&tmp.0.join("snapshot.1"), 0..20_000);
    history_file(&tmp.0.join("journal.2"), 20_000..45_000);
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let r = dir
        .recover_parallel(3, |e| seen.lock().unwrap().push(*e))
        .unwrap();
    assert_eq!(r.records, 45_000);
    let mut seen = seen.into_inner().unwrap();
    seen.sort_by_key(|e| e.binding.cltt);
    assert_eq!(seen, (0..45_000).map(change).collect::<Vec<_>>());
}

#[test]
fn recovery_finishes_what_a_crash_interrupted() {
    let tmp = TempDir::new("interrupted");
    drop(LeaseDir::open(&tmp.0).unwrap());
    // Compaction wrote snapshot.2 (covering segments 1 and 2) and crashed before deleting them;
    // an older snapshot and a half-written one are left too; segment 3 came after.
    history_file(&tmp.0.join("snapshot.1"), 0..10);
    history_file(&tmp.0.join("journal.1"), 10..20);
    history_file(&tmp.0.join("journal.2"), 20..100);
    history_file(&tmp.0.join("snapshot.2"), 50..100);
    history_file(&tmp.0.join(".snapshot.3.tmp"), 0..3);
    history_file(&tmp.0.join("journal.3"), 100..160);
    // Sealing renamed the journal and crashed before starting a new one.
    std::fs::remove_file(tmp.journal()).unwrap();

    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    assert_eq!(r.tidied, 4);
    assert_eq!(r.history_files, 2);
    assert_eq!(
        names(&tmp.0),
        ["journal", "journal.3", "snapshot.2"],
        "covered segments, the old snapshot and the partial one are gone"
    );
    assert_eq!(r.events, (50..160).map(change).collect::<Vec<_>>());

    // The writer numbers the next segment after the ones present, and compacts at start.
    let (writer, _sides) = Journal::start(
        &dir,
        JournalOptions {
            durability: Durability::Fsync,
            compact_after: 1 << 20,
            ..JournalOptions::default()
        },
        1,
    )
    .unwrap();
    let stats = writer.stats();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.snapshot().compactions == 0 {
        assert!(Instant::now() < deadline, "no compaction within 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.stop().unwrap();
    assert_eq!(names(&tmp.0), ["journal", "snapshot.3"]);
    drop(dir);
    let r = LeaseDir::open(&tmp.0).unwrap().recover().unwrap();
    assert_eq!(newest(r.events), newest((50..160).map(change)));
}

#[test]
fn damage_in_a_snapshot_or_sealed_segment_is_refused_by_name_and_repaired() {
    // In a sealed segment a lost record may be of any address no later record settles; a
    // snapshot holds one record per address, so only addresses it no longer has are unsettled.
    for (name, unsettled) in [("journal.1", vec![0, 1, 2]), ("snapshot.1", vec![2])] {
        let tmp = TempDir::new("history-damage");
        drop(LeaseDir::open(&tmp.0).unwrap());
        let file = tmp.0.join(name);
        history_file(&file, 0..10);
        let mut bytes = std::fs::read(&file).unwrap();
        let third = HEADER_LEN + 2 * RECORD_LEN;
        bytes[third + 20] ^= 0x40;
        std::fs::write(&file, &bytes).unwrap();

        let dir = LeaseDir::open(&tmp.0).unwrap();
        let err = dir.recover().unwrap_err();
        let StoreError::Corrupt {
            file: named,
            offset,
            reason,
        } = &err
        else {
            panic!("expected Corrupt, got {err}")
        };
        assert_eq!(
            (named, *offset, *reason),
            (&file, third as u64, FormatError::Checksum)
        );
        assert!(err.to_string().contains(name), "{err}");
        drop(dir);

        let report = repair(&tmp.0).unwrap();
        assert_eq!(report.file.as_ref(), Some(&file));
        assert_eq!(report.kept, 9);
        assert_eq!(report.damage, [(third as u64, RECORD_LEN as u64)]);
        assert!(report.backup.unwrap().exists());
        let hold = report.hold.unwrap();
        let found: Vec<u32> = (0..10)
            .filter(|n| {
                let e = change(*n);
                hold.unsettled(e.scope, e.address)
            })
            .collect();
        assert_eq!(found, unsettled, "{name}");
        let r = LeaseDir::open(&tmp.0).unwrap().recover().unwrap();
        let kept: Vec<_> = (0..10).filter(|n| *n != 2).map(change).collect();
        assert_eq!(r.events, kept, "{name}");
    }
}

#[test]
fn a_sealed_segment_cut_short_is_damage_not_a_torn_tail() {
    let tmp = TempDir::new("sealed-short");
    drop(LeaseDir::open(&tmp.0).unwrap());
    let segment = tmp.0.join("journal.1");
    history_file(&segment, 0..4);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let err = LeaseDir::open(&tmp.0).unwrap().recover().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                reason: FormatError::Truncated,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_snapshot_asked_for_folds_the_journal_at_once() {
    let tmp = TempDir::new("compact-asked");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    dir.recover().unwrap();
    // The default limit: these few changes would never seal the journal by themselves.
    let (writer, mut sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
    let trigger = writer.snapshot_trigger();
    let mut last = 0;
    for n in 0..120 {
        last = sides[0].submit(&change(n)).unwrap();
    }
    wait_committed(&sides[0], last);
    let done = trigger.snapshot(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(done, peregrine_store::Snapshot::Written { records, .. } if records == u64::from(ADDRESSES)),
        "{done:?}"
    );
    assert!(
        names(&tmp.0).iter().any(|n| n.starts_with("snapshot")),
        "{:?}",
        names(&tmp.0)
    );
    // Nothing since: nothing to fold.
    assert_eq!(
        trigger.snapshot(Duration::from_secs(30)).unwrap(),
        peregrine_store::Snapshot::NothingNew
    );
    writer.stop().unwrap();
    drop(dir);
    // Recovery reads the snapshot: the newest change of every address.
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let recovered = newest(dir.recover().unwrap().events);
    assert_eq!(recovered, newest((0..120).map(change)));
}

#[test]
fn damage_compaction_finds_while_serving_is_set_aside_and_the_snapshot_written_from_memory() {
    // What the server holds in memory: every change, the newest of each address.
    let memory: MemorySource = Arc::new(|each| (0..10).map(change).for_each(|e| each(&e)));
    for memory in [Some(memory), None] {
        let tmp = TempDir::new("serving-damage");
        drop(LeaseDir::open(&tmp.0).unwrap());
        let segment = tmp.0.join("journal.1");
        history_file(&segment, 0..10);
        let dir = LeaseDir::open(&tmp.0).unwrap();
        dir.recover().unwrap();
        // Damaged after the server read it: compaction, at start, is the next to read it.
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[HEADER_LEN + 3 * RECORD_LEN + 30] ^= 0x08;
        std::fs::write(&segment, &bytes).unwrap();
        let options = JournalOptions {
            durability: Durability::Fsync,
            memory: memory.clone(),
            ..JournalOptions::default()
        };
        let (writer, _sides) = Journal::start(&dir, options, 1).unwrap();
        let stats = writer.stats();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.snapshot().compactions + stats.snapshot().compaction_failures == 0 {
            assert!(Instant::now() < deadline, "no compaction within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.stop().unwrap();
        drop(dir);
        let c = stats.snapshot();
        let files = names(&tmp.0);
        if memory.is_none() {
            // Nothing to write a snapshot from: the file stays, the failure is counted, and
            // the next start refuses it as damaged.
            assert_eq!(
                (c.compactions, c.compaction_failures, c.damaged_files),
                (0, 1, 0)
            );
            assert!(files.contains(&"journal.1".to_owned()), "{files:?}");
            assert!(LeaseDir::open(&tmp.0).unwrap().recover().is_err());
            continue;
        }
        assert_eq!(
            (c.compactions, c.compaction_failures, c.damaged_files),
            (1, 0, 1)
        );
        assert_eq!(c.snapshot_records, 10);
        // The damaged file is kept aside for the operator, never read again; the snapshot took
        // its place, with every binding the server had.
        assert!(!files.contains(&"journal.1".to_owned()), "{files:?}");
        assert!(files.contains(&"snapshot.1".to_owned()), "{files:?}");
        let aside: Vec<_> = files
            .iter()
            .filter(|n| n.starts_with("journal.1.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{files:?}");
        assert_eq!(std::fs::read(tmp.0.join(aside[0])).unwrap(), bytes);
        let r = LeaseDir::open(&tmp.0).unwrap().recover().unwrap();
        assert_eq!(newest(r.events), newest((0..10).map(change)));
    }
}
