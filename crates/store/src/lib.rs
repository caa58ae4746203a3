//! Durable leases: the lease directory and its journal.
//!
//! `peregrine-store` owns the lease state on disk. A lease directory ([`LeaseDir`]) holds all
//! of it: the append-only journal of binding changes ([`record`] describes its bytes), the
//! secret that keys long client identities (so a restarted server recognises its clients), and
//! a lock so that two servers never share it.
//!
//! At start, [`LeaseDir::recover`] reads the journal back: a tail torn by a crash is cut and
//! reported; any other damage refuses to start with the file, the offset and the command to
//! run, and [`repair`] performs that command. Then [`Journal::start`] starts the writer thread
//! and gives each dataplane worker a [`WorkerJournal`]. Workers queue binding changes and
//! learn when they are durable; the writer appends whole batches and commits each with one
//! `fdatasync` (group commit). A reply that depends on a change leaves only once its sequence
//! number is committed: that is the caller's rule, and the reason this crate exists.
//!
//! What this crate must not do: block, allocate or take a shared lock on a worker's path
//! (`submit` and `committed` are a queue push and an atomic load); report a change as committed
//! before it is on stable storage (unless the operator chose [`Durability::NoneUnsafe`]); cut
//! anything from a journal except a torn tail without the operator asking ([`repair`]). It
//! makes no DHCP decisions and opens no sockets.
//!
//! Every file operation goes through one filesystem interface (`disk`), so that the tests run
//! the store on a simulated disk that loses, at a power cut, what was not made durable, and cut
//! the power after every operation of a workload that writes, seals, snapshots and compacts
//! (`power_cut`).

mod compact;
mod dir;
mod disk;
mod error;
mod files;
#[cfg(test)]
mod power_cut;
pub mod record;
mod recover;
#[cfg(test)]
mod sim;
mod verify;
mod writer;

pub use compact::MemorySource;
pub use dir::{LeaseDir, ScopeStateFile};
pub use error::StoreError;
pub use recover::{HoldBack, Recovered, RepairReport, repair};
pub use verify::{FileCheck, VerifyReport, verify};
pub use writer::{
    Durability, FSYNC_BUCKETS_US, Journal, JournalCounters, JournalOptions, JournalStats,
    JournalThread, JournalWriter, Snapshot, SnapshotTrigger, ThreadSetup, WorkerJournal,
};
