//! Crash safety: a child process journals changes with fsync durability and reports each one
//! once `committed()` covers it; it is killed with SIGKILL at random points. Every reported
//! change must survive, recovery must never refuse the journal, and each worker's changes must
//! keep their order.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use peregrine_store::{Durability, Journal, LeaseDir};

use crate::support::{TempDir, event, number};

/// Set (to the lease directory) in the child's environment.
const CHILD_DIR: &str = "PEREGRINE_STORE_CRASH_DIR";
/// The first change number the child journals.
const CHILD_BASE: &str = "PEREGRINE_STORE_CRASH_BASE";
const KILLS: u32 = 20;
/// Changes per child run at most; far more than it reaches before being killed.
const PER_RUN: u32 = 1_000_000;

/// The child's body when this binary is re-run by [`acknowledged_changes_survive_kill_9`];
/// passes at once otherwise.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(base)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_BASE)) else {
        return;
    };
    child(Path::new(&dir), base.parse().unwrap());
}

/// Journals changes `base..` from two workers, writing "committed N" to stderr for each
/// change once it is durable, until killed.
fn child(dir: &Path, base: u32) {
    let lease_dir = LeaseDir::open(dir).unwrap();
    lease_dir.recover().unwrap();
    let (_writer, mut sides) = Journal::start(&lease_dir, Durability::Fsync, 2).unwrap();
    let mut waiting: [VecDeque<(u64, u32)>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut report = Vec::new();
    let mut stderr = std::io::stderr().lock();
    for burst in (base..base + PER_RUN).step_by(8) {
        for n in burst..burst + 8 {
            let w = (n % 2) as usize;
            let seq = loop {
                if let Some(seq) = sides[w].submit(&event(n, w as u16)) {
                    break seq;
                }
                std::thread::yield_now();
            };
            waiting[w].push_back((seq, n));
        }
        report.clear();
        for (side, waiting) in sides.iter().zip(&mut waiting) {
            let committed = side.committed();
            while let Some(&(seq, n)) = waiting.front()
                && seq <= committed
            {
                writeln!(report, "committed {n}").unwrap();
                waiting.pop_front();
            }
        }
        // One write per poll; a line cut by the kill has no newline and is not counted.
        stderr.write_all(&report).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A small deterministic generator, seeded per run and printed on failure.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acknowledged_changes_survive_kill_9() {
    let tmp = TempDir::new("crash");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = seed;
    let mut acknowledged: HashSet<u32> = HashSet::new();
    let mut cut = 0;
    for round in 0..KILLS {
        let base = round * PER_RUN;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &tmp.0)
            .env(CHILD_BASE, base.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).unwrap();
            text
        });
        std::thread::sleep(Duration::from_millis(xorshift(&mut rng) % 201));
        let early = child.try_wait().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let text = reader.join().unwrap();
        assert!(
            early.is_none(),
            "round {round} (seed {seed}): the child exited by itself ({early:?}):\n{text}"
        );
        acknowledged.extend(text.split_inclusive('\n').filter_map(|line| {
            line.strip_prefix("committed ")?
                .strip_suffix('\n')?
                .parse::<u32>()
                .ok()
        }));

        let dir = LeaseDir::open(&tmp.0).unwrap();
        let r = dir
            .recover()
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): recovery refused: {e}"));
        cut += r.truncated_bytes;
        let present: HashSet<u32> = r.events.iter().map(number).collect();
        let lost: Vec<&u32> = acknowledged.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round} (seed {seed}): acknowledged changes lost: {lost:?}"
        );
        for w in 0..2 {
            let mine: Vec<u32> = r
                .events
                .iter()
                .filter(|e| e.scope.0 == w)
                .map(number)
                .collect();
            assert!(
                mine.is_sorted(),
                "round {round} (seed {seed}): worker {w}'s changes out of order"
            );
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "seed {seed}: no child ever reported a commit"
    );
    println!(
        "{KILLS} kills: {} acknowledged changes all recovered, {cut} torn bytes cut",
        acknowledged.len()
    );
}
