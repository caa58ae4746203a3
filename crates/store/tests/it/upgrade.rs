//! A lease directory a version 2 server left (no client options in its records) is read as it
//! is: its journal is sealed, new changes go to a version 3 journal, and compaction folds the
//! old records into a version 3 snapshot.

use std::time::{Duration, Instant};

use peregrine_engine::{BindingEvent, ClientInfo};
use peregrine_store::record::{
    HEADER_LEN, MAGIC, RECORD_LEN, VERSION, VERSION_2, decode_header, encode,
};
use peregrine_store::{Durability, Journal, JournalOptions, LeaseDir};

use crate::support::{TempDir, event, number, wait_committed};

/// A version 2 file: its header, then `events` as version 2 wrote them (the version 3 payload
/// without the client options).
fn version_2_file(events: &[BindingEvent]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(VERSION_2.to_le_bytes());
    bytes.extend([0, 0]);
    bytes.extend(1_700_000_000u64.to_le_bytes());
    bytes.extend(crc32fast::hash(&bytes).to_le_bytes());
    for e in events {
        let mut r = [0u8; RECORD_LEN];
        encode(e, &mut r);
        let payload = &r[8..8 + 89];
        bytes.extend(89u32.to_le_bytes());
        bytes.extend(crc32fast::hash(payload).to_le_bytes());
        bytes.extend(payload);
    }
    bytes
}

/// Change `n` as version 2 knew it: without client options.
fn old(n: u32) -> BindingEvent {
    let mut e = event(n, 0);
    e.binding.info = ClientInfo::EMPTY;
    e
}

fn header_version(path: &std::path::Path) -> u16 {
    decode_header(&std::fs::read(path).unwrap())
        .unwrap()
        .version
}

#[test]
fn a_version_2_directory_is_read_and_continued_in_version_3() {
    let tmp = TempDir::new("upgrade");
    drop(LeaseDir::open(&tmp.0).unwrap());
    let before: Vec<BindingEvent> = (0..10).map(old).collect();
    std::fs::write(tmp.journal(), version_2_file(&before)).unwrap();
    {
        let dir = LeaseDir::open(&tmp.0).unwrap();
        let r = dir.recover().unwrap();
        assert_eq!(r.events, before);
        // The old journal is a sealed segment now, and the journal is new.
        assert_eq!(header_version(&tmp.0.join("journal.1")), VERSION_2);
        assert_eq!(header_version(&tmp.journal()), VERSION);
        let (writer, mut sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
        for n in 10..20 {
            sides[0].submit(&event(n, 0)).unwrap();
        }
        writer.stop().unwrap();
    }
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    let expected: Vec<BindingEvent> = before
        .into_iter()
        .chain((10..20).map(|n| event(n, 0)))
        .collect();
    assert_eq!(r.events, expected);
    assert!(
        r.events
            .iter()
            .any(|e| e.binding.info.host_name().is_some())
    );
}

#[test]
fn compaction_folds_version_2_records_into_a_version_3_snapshot() {
    let tmp = TempDir::new("upgrade-compact");
    drop(LeaseDir::open(&tmp.0).unwrap());
    let before: Vec<BindingEvent> = (0..10).map(old).collect();
    std::fs::write(tmp.journal(), version_2_file(&before)).unwrap();
    let dir = LeaseDir::open(&tmp.0).unwrap();
    dir.recover().unwrap();
    let options = JournalOptions {
        durability: Durability::Fsync,
        compact_after: (HEADER_LEN + 5 * RECORD_LEN) as u64,
        ..JournalOptions::default()
    };
    let (writer, mut sides) = Journal::start(&dir, options, 1).unwrap();
    let stats = writer.stats();
    // Newer changes of addresses 5..10, then others, until a compaction has run.
    let mut n = 5;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.snapshot().compactions == 0 {
        assert!(Instant::now() < deadline, "no compaction within 10 s");
        let mut e = event(n % 20, 0);
        e.binding.version = 100 + n;
        let seq = sides[0].submit(&e).unwrap();
        wait_committed(&sides[0], seq);
        n += 1;
    }
    writer.stop().unwrap();
    drop(dir);
    let snapshot = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .expect("a snapshot");
    assert_eq!(header_version(&snapshot), VERSION);
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    // Addresses 0..5 only ever had their version 2 change.
    for k in 0..5 {
        let newest = r.events.iter().rfind(|e| number(e) == k).unwrap();
        assert_eq!(*newest, old(k));
    }
}
