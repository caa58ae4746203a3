//! Temporary lease directories and binding events to journal.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use peregrine_engine::{
    Binding, BindingEvent, BindingState, ClientInfo, ClientKey, KeySecret, ScopeId,
};
use peregrine_store::{Durability, Journal, LeaseDir, WorkerJournal};

/// First address of [`event`]'s numbering.
const BASE: u32 = 0x0a00_0000;

/// A directory under the system's temporary directory, removed at the end of the test.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "peregrine-store-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }

    pub(crate) fn journal(&self) -> PathBuf {
        self.0.join("journal")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Change number `n` as worker `worker` would submit it: address 10.0.0.0 + `n`, scope
/// `worker`, a client identity derived from `n` (long ones digested), fields all distinct.
pub(crate) fn event(n: u32, worker: u16) -> BindingEvent {
    let secret = KeySecret([1; 16]);
    let mac = [2, 0, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    let client = match n % 4 {
        0 => None,
        1 => Some(ClientKey::hardware(1, &mac, &secret)),
        2 => Some(ClientKey::client_id(&n.to_be_bytes(), &secret)),
        _ => Some(ClientKey::client_id(&[n as u8; 40], &secret)),
    };
    BindingEvent {
        scope: ScopeId(worker),
        address: Ipv4Addr::from_bits(BASE.wrapping_add(n)),
        binding: Binding {
            client,
            mac,
            state: if client.is_some() {
                BindingState::Active
            } else {
                BindingState::Free
            },
            expires: 1_800_000_000 + u64::from(n),
            cltt: 1_799_999_000 + u64::from(n),
            granted: 3600,
            partner_sent: u64::from(n) * 3,
            partner_acked: u64::from(n) * 2,
            classes: n,
            version: n / 3 + 1,
            info: info(n, client.is_some()),
        },
    }
}

/// What client `n` said of itself: a name for every other client, and the relay's circuit.
fn info(n: u32, client: bool) -> ClientInfo {
    if !client || n.is_multiple_of(2) {
        return ClientInfo::EMPTY;
    }
    let name = format!("cpe-{n}");
    let circuit = format!("olt-1/{n}");
    let mut options = vec![12, name.len() as u8];
    options.extend(name.bytes());
    options.extend([82, circuit.len() as u8 + 2, 1, circuit.len() as u8]);
    options.extend(circuit.bytes());
    ClientInfo::from_options(&options).unwrap()
}

/// The `n` that [`event`] was called with.
pub(crate) fn number(e: &BindingEvent) -> u32 {
    e.address.to_bits().wrapping_sub(BASE)
}

/// Waits (5 s at most) until `side` reports `seq` committed.
pub(crate) fn wait_committed(side: &WorkerJournal, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while side.committed() < seq {
        assert!(
            Instant::now() < deadline,
            "journal did not commit {seq} within 5 s (at {})",
            side.committed()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Opens `dir`, recovers it, and journals `count` changes (numbers 0..count) from one worker.
/// Returns the journal's length afterwards.
pub(crate) fn journal_changes(dir: &Path, count: u32) -> u64 {
    let lease_dir = LeaseDir::open(dir).unwrap();
    lease_dir.recover().unwrap();
    let (writer, mut sides) = Journal::start(&lease_dir, Durability::Fsync, 1).unwrap();
    for n in 0..count {
        assert_eq!(sides[0].submit(&event(n, 0)), Some(u64::from(n) + 1));
    }
    wait_committed(&sides[0], u64::from(count));
    writer.stop().unwrap();
    std::fs::metadata(lease_dir.journal_path()).unwrap().len()
}
