//! Recovery: a torn tail is cut and reported, anything else is refused at its offset with the
//! command that repairs it, and `repair` cuts there after keeping a copy.

use std::fs::OpenOptions;
use std::io::Write;

use peregrine_store::record::{FormatError, HEADER_LEN, RECORD_LEN, encode, encode_header};
use peregrine_store::{LeaseDir, StoreError, repair};

use crate::support::{TempDir, event, journal_changes, number};

fn append(tmp: &TempDir, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(tmp.journal())
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn record(n: u32) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    encode(&event(n, 0), &mut r);
    r
}

/// Record `n` with one payload byte flipped: its CRC fails.
fn bad_crc(n: u32) -> [u8; RECORD_LEN] {
    let mut r = record(n);
    r[RECORD_LEN - 1] ^= 0xff;
    r
}

/// `recover` refuses the journal with `Corrupt` at `offset`; returns the message.
fn refused_at(tmp: &TempDir, offset: u64, reason: FormatError) -> String {
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let err = dir.recover().unwrap_err();
    let StoreError::Corrupt {
        file,
        offset: at,
        reason: why,
    } = &err
    else {
        panic!("expected Corrupt, got {err}")
    };
    assert_eq!((file, *at, *why), (&tmp.journal(), offset, reason), "{err}");
    err.to_string()
}

#[test]
fn torn_tails_are_cut_reported_and_gone_on_the_next_recovery() {
    let tmp = TempDir::new("torn");
    let good = journal_changes(&tmp.0, 3);
    let half = &record(9)[..40];
    let mut bad_then_partial = bad_crc(9).to_vec();
    bad_then_partial.extend_from_slice(half);
    let mut two_bad = bad_crc(9).to_vec();
    two_bad.extend_from_slice(&bad_crc(10));
    for (what, tail) in [
        ("half a record", half.to_vec()),
        (
            "a last record whose bytes did not all land",
            bad_crc(9).to_vec(),
        ),
        ("a bad record, then part of another", bad_then_partial),
        ("two bad records", two_bad),
        ("zeros of a file extended before its data", vec![0u8; 4096]),
    ] {
        append(&tmp, &tail);
        let dir = LeaseDir::open(&tmp.0).unwrap();
        let r = dir.recover().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            r.events.iter().map(number).collect::<Vec<_>>(),
            [0, 1, 2],
            "{what}"
        );
        assert_eq!(
            (r.truncated_bytes, r.truncated_at),
            (tail.len() as u64, good),
            "{what}"
        );
        assert_eq!(std::fs::metadata(tmp.journal()).unwrap().len(), good);
        let again = dir.recover().unwrap();
        assert_eq!(
            (again.truncated_bytes, again.events.len()),
            (0, 3),
            "{what}: a second recovery is clean"
        );
    }
}

#[test]
fn a_bad_checksum_mid_file_is_refused_and_repair_keeps_every_intact_record() {
    let tmp = TempDir::new("corrupt");
    journal_changes(&tmp.0, 5);
    let original = {
        let mut bytes = std::fs::read(tmp.journal()).unwrap();
        bytes[HEADER_LEN + RECORD_LEN + 20] ^= 0x01;
        std::fs::write(tmp.journal(), &bytes).unwrap();
        bytes
    };
    let second = (HEADER_LEN + RECORD_LEN) as u64;
    let text = refused_at(&tmp, second, FormatError::Checksum);
    for needle in [
        tmp.journal().display().to_string(),
        format!("corrupt at byte {second}"),
        format!("peregrine leases verify --dir {}", tmp.0.display()),
        "peregrine leases recover --config".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in: {text}");
    }

    let written = std::fs::metadata(tmp.journal())
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let report = repair(&tmp.0).unwrap();
    // Every intact record, the three after the damage too; only the damaged one set aside.
    assert_eq!(report.kept, 4);
    assert_eq!(report.dropped_bytes, RECORD_LEN as u64);
    assert_eq!(report.dropped_at, Some(second));
    assert_eq!(report.damage, [(second, RECORD_LEN as u64)]);
    // The lost record may have been of any address but those the records after it settle;
    // and it was written no later than the journal's last write.
    let hold = report.hold.as_ref().unwrap();
    let unsettled: Vec<u32> = (0..5)
        .filter(|n| {
            let e = crate::support::event(*n, 0);
            hold.unsettled(e.scope, e.address)
        })
        .collect();
    assert_eq!(unsettled, [0, 1]);
    assert_eq!(hold.written_by, written);
    let backup = report.backup.unwrap();
    assert!(
        backup
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("journal.corrupt-")
    );
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        original,
        "the copy is the journal as it was"
    );

    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    assert_eq!((r.events.len(), r.truncated_bytes), (4, 0));
    let numbers: Vec<u32> = r.events.iter().map(crate::support::number).collect();
    assert_eq!(numbers, [0, 2, 3, 4]);
    drop(dir);
    let again = repair(&tmp.0).unwrap();
    assert_eq!(
        (again.kept, again.dropped_bytes, again.backup),
        (4, 0, None)
    );
}

#[test]
fn an_impossible_length_mid_file_is_refused() {
    let tmp = TempDir::new("length");
    let good = journal_changes(&tmp.0, 2);
    let mut long = record(7);
    long[..4].copy_from_slice(&1000u32.to_le_bytes());
    append(&tmp, &long);
    append(&tmp, &record(8));
    refused_at(&tmp, good, FormatError::Length(1000));
    let report = repair(&tmp.0).unwrap();
    // The record after the bad one is kept.
    assert_eq!((report.kept, report.dropped_bytes), (3, RECORD_LEN as u64));
}

#[test]
fn a_whole_record_this_build_cannot_read_is_refused_even_at_the_end() {
    let tmp = TempDir::new("undecodable");
    let good = journal_changes(&tmp.0, 2);
    // A valid checksum over an unknown binding state: no crash writes that.
    let mut r = record(7);
    r[8 + 6] = 200;
    let crc = crc32fast::hash(&r[8..]);
    r[4..8].copy_from_slice(&crc.to_le_bytes());
    append(&tmp, &r);
    refused_at(&tmp, good, FormatError::State(200));
}

#[test]
fn a_bad_header_is_refused_and_repair_starts_an_empty_journal() {
    let tmp = TempDir::new("header");
    journal_changes(&tmp.0, 2);
    let mut bytes = std::fs::read(tmp.journal()).unwrap();
    bytes[8] = 4;
    std::fs::write(tmp.journal(), &bytes).unwrap();
    let text = refused_at(&tmp, 0, FormatError::Version(4));
    assert!(text.contains("version 4"), "{text}");

    std::fs::write(tmp.journal(), b"not a journal at all").unwrap();
    refused_at(&tmp, 0, FormatError::Magic);
    std::fs::write(tmp.journal(), &encode_header(0)[..10]).unwrap();
    refused_at(&tmp, 0, FormatError::ShortHeader);

    let report = repair(&tmp.0).unwrap();
    assert_eq!((report.kept, report.dropped_bytes), (0, 10));
    assert!(report.backup.is_some());
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    assert!(r.events.is_empty());
    assert!(r.created > 0, "a fresh header with its creation time");
}

#[test]
fn repair_refuses_a_missing_journal_and_a_directory_in_use() {
    let tmp = TempDir::new("repair-refusals");
    let err = repair(&tmp.0).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(!tmp.0.exists(), "a mistyped path is not created");

    let dir = LeaseDir::open(&tmp.0).unwrap();
    assert!(matches!(repair(&tmp.0), Err(StoreError::Locked { .. })));
    drop(dir);
    let report = repair(&tmp.0).unwrap();
    assert_eq!(
        (report.kept, report.dropped_bytes, report.backup),
        (0, 0, None)
    );
}

#[test]
fn repairs_never_overwrite_an_earlier_copy() {
    let tmp = TempDir::new("two-copies");
    journal_changes(&tmp.0, 3);
    append(&tmp, &record(5)[..10]);
    let first = repair(&tmp.0).unwrap().backup.unwrap();
    append(&tmp, &record(6)[..10]);
    let second = repair(&tmp.0).unwrap().backup.unwrap();
    assert_ne!(first, second);
    assert!(first.exists() && second.exists());
}

/// `peregrine leases verify`: every damaged span of a file, and the records after it, found
/// without changing anything.
#[test]
fn verify_reports_every_damaged_span_and_the_records_past_it() {
    use peregrine_store::record::{HEADER_LEN, RECORD_LEN};
    let tmp = TempDir::new("verify");
    let len = crate::support::journal_changes(&tmp.0, 100);
    assert_eq!(len, (HEADER_LEN + 100 * RECORD_LEN) as u64);
    let clean = peregrine_store::verify(&tmp.0).unwrap();
    assert!(!clean.damaged(), "{clean:?}");
    assert_eq!(clean.files.last().unwrap().records, 100);

    let journal = tmp.journal();
    let mut bytes = std::fs::read(&journal).unwrap();
    let record = |n: usize| HEADER_LEN + n * RECORD_LEN;
    // A flipped byte in record 30, records 60 and 61 zeroed, a torn record at the end.
    bytes[record(30) + 7] ^= 0x40;
    bytes[record(60)..record(62)].fill(0);
    bytes.extend_from_slice(&[0xab; 20]);
    std::fs::write(&journal, &bytes).unwrap();
    let before = std::fs::read(&journal).unwrap();
    let report = peregrine_store::verify(&tmp.0).unwrap();
    let file = report.files.last().unwrap();
    assert!(report.damaged());
    assert_eq!(
        file.damage,
        [
            (record(30) as u64, RECORD_LEN as u64),
            (record(60) as u64, 2 * RECORD_LEN as u64)
        ]
    );
    assert_eq!(file.records, 97);
    assert_eq!(file.torn_tail, 20);
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "verify changed the file"
    );

    // A block written twice out of place (misaligned): the walk finds the records again.
    let mut shifted = bytes[..record(10)].to_vec();
    shifted.extend_from_slice(&bytes[record(10) + 5..record(20)]);
    shifted.extend_from_slice(&bytes[record(20)..record(30)]);
    std::fs::write(&journal, &shifted).unwrap();
    let report = peregrine_store::verify(&tmp.0).unwrap();
    let file = report.files.last().unwrap();
    assert_eq!(file.damage, [(record(10) as u64, (RECORD_LEN - 5) as u64)]);
    assert_eq!(file.records, 29);

    // A damaged header: the records after it are still found.
    shifted[2] ^= 0xff;
    std::fs::write(&journal, &shifted).unwrap();
    let report = peregrine_store::verify(&tmp.0).unwrap();
    let file = report.files.last().unwrap();
    assert_eq!(file.damage[0], (0, HEADER_LEN as u64));
    assert_eq!(file.records, 29);
}

#[test]
fn a_block_repeated_after_damage_settles_nothing() {
    // Address 1 changes three times; its newest change is lost. Then a block duplicated from
    // earlier in the journal repeats its second change: old news, which must not pass for
    // what the lost record said.
    let tmp = TempDir::new("repeated");
    drop(LeaseDir::open(&tmp.0).unwrap());
    let version = |n: u32, v: u32| {
        let mut e = event(n, 0);
        e.binding.version = v;
        let mut r = [0u8; RECORD_LEN];
        encode(&e, &mut r);
        r
    };
    let mut lost = version(1, 3);
    lost[RECORD_LEN - 1] ^= 0xff;
    let records = [
        version(1, 1),
        version(1, 2),
        lost,
        version(2, 1),
        version(1, 2),
        version(3, 1),
    ];
    append(&tmp, &records.concat());
    let hold = repair(&tmp.0).unwrap().hold.unwrap();
    let unsettled = |n| {
        let e = event(n, 0);
        hold.unsettled(e.scope, e.address)
    };
    assert!(
        unsettled(1),
        "the repeated record settled the lost one's address"
    );
    assert!(!unsettled(2) && !unsettled(3));
}
