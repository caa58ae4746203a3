//! The lease store: journal roundtrip through the writer, torn tails, corruption and repair,
//! the key secret and the directory lock.

#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use peregrine_engine::{Binding, BindingEvent, BindingState, ClientKey, KeySecret, ScopeId};
use peregrine_store::record::{HEADER, RECORD_LEN, decode, encode};
use peregrine_store::{Journal, LeaseDir, StoreError, repair};
use proptest::prelude::*;

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("peregrine-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn event(n: u32, state: BindingState) -> BindingEvent {
    let secret = KeySecret([1; 16]);
    let key = if n.is_multiple_of(3) {
        ClientKey::client_id(&[n as u8; 40], &secret)
    } else {
        ClientKey::hardware(1, &[2, 0, 0, 0, 0, n as u8], &secret)
    };
    BindingEvent {
        scope: ScopeId((n % 7) as u16),
        address: Ipv4Addr::from_bits(0x0a00_0000u32.wrapping_add(n)),
        binding: Binding {
            client: (state != BindingState::Free).then_some(key),
            mac: [2, 0, 0, 0, 0, n as u8],
            state,
            expires: 1_800_000_000 + u64::from(n),
            cltt: 1_799_999_000,
            granted: 3600,
            partner_sent: 7,
            partner_acked: 6,
            classes: n,
        },
    }
}

fn wait_committed(j: &peregrine_store::WorkerJournal, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while j.committed() < seq {
        assert!(
            Instant::now() < deadline,
            "journal did not commit {seq} within 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

proptest! {
    #[test]
    fn records_roundtrip(n in 0u32..1_000_000, state in 0usize..9) {
        let states = [BindingState::Free, BindingState::Offered, BindingState::Active, BindingState::Expired,
            BindingState::Released, BindingState::Abandoned, BindingState::Reserved, BindingState::Reset, BindingState::Backup];
        let e = event(n, states[state]);
        let mut rec = [0u8; RECORD_LEN];
        encode(&e, &mut rec);
        prop_assert_eq!(decode(&rec[8..]).unwrap(), e);
    }
}

#[test]
fn changes_from_two_workers_come_back_in_order_once_committed() {
    let tmp = TempDir::new("roundtrip");
    {
        let dir = LeaseDir::open(&tmp.0).unwrap();
        assert!(dir.recover().unwrap().events.is_empty());
        let (writer, mut sides) = Journal::start(&dir, true, 2).unwrap();
        for n in 0..100 {
            let side = &mut sides[(n % 2) as usize];
            assert_eq!(
                side.submit(&event(n, BindingState::Active)),
                Some(u64::from(n / 2 + 1))
            );
        }
        wait_committed(&sides[0], 50);
        wait_committed(&sides[1], 50);
        assert!(
            writer
                .stats
                .batches
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        );
        writer.stop().unwrap();
    }
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    assert_eq!(r.truncated_bytes, 0);
    assert_eq!(r.events.len(), 100);
    let worker0: Vec<u32> = r
        .events
        .iter()
        .map(|e| e.address.to_bits() - 0x0a00_0000)
        .filter(|n| n.is_multiple_of(2))
        .collect();
    assert_eq!(
        worker0,
        (0..100).step_by(2).collect::<Vec<_>>(),
        "one worker's changes keep their order"
    );
}

#[test]
fn a_torn_last_record_is_truncated_and_reported() {
    let tmp = TempDir::new("torn");
    let good = {
        let dir = LeaseDir::open(&tmp.0).unwrap();
        dir.recover().unwrap();
        let (writer, mut sides) = Journal::start(&dir, true, 1).unwrap();
        for n in 0..3 {
            sides[0].submit(&event(n, BindingState::Active));
        }
        wait_committed(&sides[0], 3);
        writer.stop().unwrap();
        std::fs::metadata(tmp.0.join("journal")).unwrap().len()
    };
    let journal = tmp.0.join("journal");
    let mut rec = [0u8; RECORD_LEN];
    encode(&event(9, BindingState::Active), &mut rec);
    // Half a record; then a whole one whose last bytes never landed; then zeros of an extended file.
    for tail in [
        rec[..40].to_vec(),
        {
            let mut r = rec.to_vec();
            r[RECORD_LEN - 1] ^= 0xff;
            r
        },
        vec![0u8; 4096],
    ] {
        OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap()
            .write_all(&tail)
            .unwrap();
        let dir = LeaseDir::open(&tmp.0).unwrap();
        let r = dir.recover().unwrap();
        assert_eq!(r.events.len(), 3);
        assert_eq!(
            (r.truncated_at, r.truncated_bytes),
            (good, tail.len() as u64)
        );
        assert_eq!(
            dir.recover().unwrap().truncated_bytes,
            0,
            "a second recovery is clean"
        );
    }
}

#[test]
fn damage_mid_file_is_refused_with_the_offset_and_repair_sets_the_rest_aside() {
    let tmp = TempDir::new("corrupt");
    {
        let dir = LeaseDir::open(&tmp.0).unwrap();
        dir.recover().unwrap();
        let (writer, mut sides) = Journal::start(&dir, true, 1).unwrap();
        for n in 0..5 {
            sides[0].submit(&event(n, BindingState::Active));
        }
        wait_committed(&sides[0], 5);
        writer.stop().unwrap();
    }
    let journal = tmp.0.join("journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let second = HEADER.len() + RECORD_LEN;
    bytes[second + 20] ^= 0x01;
    std::fs::write(&journal, &bytes).unwrap();
    {
        let dir = LeaseDir::open(&tmp.0).unwrap();
        let err = dir.recover().unwrap_err();
        let StoreError::Corrupt { offset, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*offset, second as u64);
        let text = err.to_string();
        assert!(
            text.contains("journal: corrupt at byte")
                && text.contains("peregrine leases recover --dir"),
            "{text}"
        );
    }
    let report = repair(&tmp.0).unwrap();
    assert_eq!(
        (report.kept, report.dropped_bytes),
        (1, 4 * RECORD_LEN as u64)
    );
    assert!(report.backup.as_ref().unwrap().exists());
    let dir = LeaseDir::open(&tmp.0).unwrap();
    assert_eq!(dir.recover().unwrap().events.len(), 1);
}

#[test]
fn the_secret_persists_and_a_directory_has_one_owner() {
    let tmp = TempDir::new("secret");
    let first = LeaseDir::open(&tmp.0).unwrap();
    let secret = first.key_secret();
    assert!(matches!(LeaseDir::open(&tmp.0), Err(StoreError::Locked(_))));
    drop(first);
    assert_eq!(LeaseDir::open(&tmp.0).unwrap().key_secret(), secret);
    // A header from something else is refused, not overwritten.
    std::fs::write(tmp.0.join("journal"), b"not a journal at all").unwrap();
    let dir = LeaseDir::open(&tmp.0).unwrap();
    assert!(matches!(
        dir.recover(),
        Err(StoreError::Corrupt { offset: 0, .. })
    ));
}
