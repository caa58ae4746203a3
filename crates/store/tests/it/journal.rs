//! The journal through its writer: two workers' changes come back in order once committed;
//! the counters add up; the workers' side allocates nothing; the writer starts only on a
//! recovered journal.

use peregrine_engine::BindingEvent;
use peregrine_store::record::RECORD_LEN;
use peregrine_store::{Durability, Journal, LeaseDir, StoreError};

use crate::support::{TempDir, event, number, wait_committed};

/// Two worker threads submit `per_worker` changes each; returns what recovery reads back.
fn two_workers(durability: Durability, per_worker: u32) -> (Vec<BindingEvent>, TempDir) {
    let tmp = TempDir::new("two-workers");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    assert!(dir.recover().unwrap().events.is_empty());
    let (writer, sides) = Journal::start(&dir, durability, 2).unwrap();
    let stats = writer.stats();
    std::thread::scope(|s| {
        for (w, mut side) in sides.into_iter().enumerate() {
            s.spawn(move || {
                let mut last = 0;
                for i in 0..per_worker {
                    let seq = loop {
                        // A full queue is the caller's to handle; here, wait for the writer.
                        match side.submit(&event(i * 2 + w as u32, w as u16)) {
                            Some(seq) => break seq,
                            None => std::thread::yield_now(),
                        }
                    };
                    assert_eq!(
                        seq,
                        u64::from(i) + 1,
                        "sequence numbers count this worker's changes"
                    );
                    let committed = side.committed();
                    assert!(
                        committed >= last && committed <= seq,
                        "committed only advances, and never past what was submitted"
                    );
                    last = committed;
                }
                wait_committed(&side, u64::from(per_worker));
            });
        }
    });
    writer.stop().unwrap();
    let c = stats.snapshot();
    assert_eq!(c.records, u64::from(per_worker) * 2);
    assert_eq!(c.bytes, c.records * RECORD_LEN as u64);
    assert!(c.batches >= 1 && c.batches <= c.records);
    assert!(!c.failed);
    match durability {
        Durability::Fsync => {
            assert_eq!(c.fsyncs, c.batches, "one fdatasync per batch");
            // Each sync in the first bucket it fits, counted up to the slowest bound.
            assert!(c.fsync_within.is_sorted(), "{:?}", c.fsync_within);
            let slower = c.fsyncs - c.fsync_within[c.fsync_within.len() - 1];
            assert!(slower < c.fsyncs, "{c:?}");
            assert!(c.fsync_total >= c.last_fsync && !c.fsync_total.is_zero());
        }
        Durability::NoneUnsafe => assert_eq!(c.fsyncs, 0),
    }
    drop(dir);
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let r = dir.recover().unwrap();
    assert_eq!(r.truncated_bytes, 0);
    (r.events, tmp)
}

fn check_in_order(events: &[BindingEvent], per_worker: u32) {
    assert_eq!(events.len(), per_worker as usize * 2);
    for w in 0..2u16 {
        let mine: Vec<BindingEvent> = events.iter().filter(|e| e.scope.0 == w).copied().collect();
        let sent: Vec<BindingEvent> = (0..per_worker)
            .map(|i| event(i * 2 + u32::from(w), w))
            .collect();
        assert_eq!(mine, sent, "worker {w}'s changes, exactly and in its order");
    }
}

#[test]
fn two_workers_changes_come_back_exactly_and_in_order() {
    let (events, _tmp) = two_workers(Durability::Fsync, 3000);
    check_in_order(&events, 3000);
}

#[test]
fn without_fsync_the_journal_is_the_same() {
    let (events, _tmp) = two_workers(Durability::NoneUnsafe, 3000);
    check_in_order(&events, 3000);
    assert!(events.iter().all(|e| number(e) < 6000));
}

#[test]
fn a_writer_restarted_after_recovery_appends_after_the_old_records() {
    let tmp = TempDir::new("append");
    for round in 0..3u32 {
        let dir = LeaseDir::open(&tmp.0).unwrap();
        let r = dir.recover().unwrap();
        assert_eq!(r.events.len() as u32, round * 10);
        let (writer, mut sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
        for n in 0..10 {
            sides[0].submit(&event(round * 10 + n, 0)).unwrap();
        }
        writer.stop().unwrap();
        // `stop` commits what was queued.
        assert_eq!(sides[0].committed(), 10);
    }
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let numbers: Vec<u32> = dir.recover().unwrap().events.iter().map(number).collect();
    assert_eq!(numbers, (0..30).collect::<Vec<_>>());
}

#[test]
fn submit_and_committed_allocate_nothing() {
    let tmp = TempDir::new("no-alloc");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    dir.recover().unwrap();
    let (writer, mut sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
    let side = &mut sides[0];
    let events: Vec<BindingEvent> = (0..1000).map(|n| event(n, 0)).collect();
    let mut seq = 0;
    let n = peregrine_testkit::allocations_during(|| {
        for e in &events {
            seq = side.submit(e).unwrap();
            std::hint::black_box(side.committed());
        }
    });
    assert_eq!(n, 0);
    wait_committed(side, seq);
    writer.stop().unwrap();
}

#[test]
fn the_writer_starts_only_right_after_a_recovery() {
    let tmp = TempDir::new("not-recovered");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let err = Journal::start(&dir, Durability::Fsync, 1).unwrap_err();
    assert!(matches!(err, StoreError::NotRecovered(_)), "{err}");
    dir.recover().unwrap();
    let (writer, _sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
    writer.stop().unwrap();
    // A second writer needs a second recovery.
    assert!(matches!(
        Journal::start(&dir, Durability::Fsync, 1),
        Err(StoreError::NotRecovered(_))
    ));
    dir.recover().unwrap();
    Journal::start(&dir, Durability::Fsync, 1)
        .unwrap()
        .0
        .stop()
        .unwrap();
}

#[test]
fn append_writes_durably_after_a_recovery_and_a_writer_may_follow() {
    let tmp = TempDir::new("append");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    let batch: Vec<BindingEvent> = (0..5).map(|n| event(n, 0)).collect();
    assert!(matches!(
        dir.append(&batch),
        Err(StoreError::NotRecovered(_))
    ));
    dir.recover().unwrap();
    dir.append(&batch[..3]).unwrap();
    // Still counts as recovered: a second append and then a writer may follow.
    dir.append(&batch[3..]).unwrap();
    let (writer, mut sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
    let seq = sides[0].submit(&event(5, 0)).unwrap();
    wait_committed(&sides[0], seq);
    writer.stop().unwrap();
    let back = dir.recover().unwrap().events;
    assert_eq!(back.len(), 6);
    assert_eq!(back[..5], batch[..]);
    assert_eq!(
        std::fs::metadata(dir.journal_path()).unwrap().len(),
        24 + 6 * RECORD_LEN as u64
    );
}

/// Each journal thread is placed by the caller's setup before it writes; a setup that fails
/// (the server's, when the writer's core does not exist) makes the journal refuse to start
/// and says why. (Pinning itself is tested where it lives, in the server.)
#[test]
fn the_writer_is_placed_by_its_setup_or_refuses_to_start() {
    use peregrine_store::JournalThread;
    use std::sync::{Arc, Mutex};
    let tmp = TempDir::new("pinned");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    dir.recover().unwrap();
    let placed = Arc::new(Mutex::new(Vec::new()));
    let options = peregrine_store::JournalOptions {
        setup: Some(Arc::new({
            let placed = placed.clone();
            move |which| {
                placed.lock().unwrap().push(which);
                Ok(())
            }
        })),
        ..peregrine_store::JournalOptions::default()
    };
    let (writer, mut sides) = Journal::start(&dir, options, 1).unwrap();
    let seq = sides[0].submit(&event(1, 0)).unwrap();
    wait_committed(&sides[0], seq);
    writer.stop().unwrap();
    let mut placed = placed.lock().unwrap().clone();
    placed.sort_by_key(|t| *t == JournalThread::Compactor);
    assert_eq!(placed, [JournalThread::Writer, JournalThread::Compactor]);

    dir.recover().unwrap();
    let failing = peregrine_store::JournalOptions {
        setup: Some(Arc::new(|_| {
            Err(std::io::Error::other(
                "pinning a thread to CPU 1023: Invalid argument",
            ))
        })),
        ..peregrine_store::JournalOptions::default()
    };
    match Journal::start(&dir, failing, 1) {
        Err(StoreError::Io { source, .. }) => {
            assert!(source.to_string().contains("CPU 1023"), "{source}");
        }
        other => panic!("expected a placement error, got {other:?}"),
    }
}

/// With a commit interval, changes that arrive while the last sync is recent wait for the
/// next batch: ten changes submitted 2 ms apart, each waking the writer (without the
/// interval, each gets a sync of its own), take a couple of fdatasyncs. The first is written
/// at once (no sync was recent).
#[test]
fn changes_within_the_commit_interval_share_one_sync() {
    let tmp = TempDir::new("commit-interval");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    dir.recover().unwrap();
    let options = peregrine_store::JournalOptions {
        commit_interval: std::time::Duration::from_millis(200),
        ..peregrine_store::JournalOptions::default()
    };
    let (writer, mut sides) = Journal::start(&dir, options, 1).unwrap();
    let stats = writer.stats();
    let first = sides[0].submit(&event(0, 0)).unwrap();
    wait_committed(&sides[0], first);
    assert_eq!(stats.snapshot().fsyncs, 1);
    let mut last = first;
    for n in 1..10 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        last = sides[0].submit(&event(n, 0)).unwrap();
    }
    wait_committed(&sides[0], last);
    writer.stop().unwrap();
    let c = stats.snapshot();
    assert_eq!(c.records, 10);
    assert!(c.fsyncs <= 3, "{} fdatasyncs for 10 changes", c.fsyncs);
}
