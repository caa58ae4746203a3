//! Durable leases: the lease directory and its journal.
//!
//! `peregrine-store` owns the bytes on disk. A lease directory holds everything: the journal of
//! binding changes, the secret that keys long client identities (so a restarted server
//! recognises its clients), and a lock so that two servers cannot share it. Workers hand binding
//! changes to a writer thread through their own bounded queues, without blocking or
//! allocating; the writer appends whole batches and makes each durable with one `fdatasync`
//! (group commit), then publishes how far each worker's changes are committed, which is when
//! the worker lets the ACKs go. On start, [`LeaseDir::recover`] replays the journal: a record
//! cut short by a crash at the end is truncated and reported; any other damage refuses to start
//! with the file and offset, and [`repair`] explains and performs the fix. This crate makes no
//! DHCP decisions and opens no sockets.

mod dir;
mod journal;
pub mod record;

pub use dir::{LeaseDir, Recovered, RepairReport, StoreError, repair};
pub use journal::{Journal, JournalStats, JournalWriter, WorkerJournal};
