//! `POST /v1/leases/import/{format}`: leases from another server into the running one; and an
//! operator's writes of one lease (`PUT` and `DELETE /v1/leases/{ip}`), through the same
//! journal side and to the partner the same way.
//!
//! An import's body is the lease file. Its leases are installed in the live engine (a lease whose
//! address another client holds is reported, not overwritten) and journaled through a journal
//! side of the control plane's own; the reply, an [`ImportReport`] as JSON, leaves only once
//! every imported lease is durable. One import runs at a time. With a failover partner, the
//! imported leases then go to it like the workers' changes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use peregrine_config::model::Config;
use peregrine_engine::{BindingEvent, Engine};
use peregrine_migrate::report::{Format, ImportReport};
use peregrine_migrate::{Lease, LocalZone, Record, bindings};
use peregrine_store::WorkerJournal;

/// Longest an import waits for the journal to take and commit its leases.
const COMMIT_TIMEOUT: Duration = Duration::from_mins(1);

/// What imports into the running server need: the configuration its engine was built from,
/// and a side of the lease journal that only imports use.
pub struct Importer {
    config: Mutex<Arc<Config>>,
    journal: Mutex<WorkerJournal>,
    partner: Mutex<Option<TellPartner>>,
}

/// Hands a binding change to the failover link for the partner; false while its queue is full.
pub type TellPartner = Box<dyn FnMut(&BindingEvent) -> bool + Send>;

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// Why an operator's lease write was not made.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Another client holds the address, or the client a newer lease (409).
    Conflict(String),
    /// The lease cannot be put: its address is in no pool, its client is not given... (422).
    Invalid(String),
    /// No lease to delete (404).
    NotFound(String),
    /// Made, but the journal did not take it in time (503).
    NotDurable(String),
}

impl From<ImportError> for WriteError {
    fn from(e: ImportError) -> WriteError {
        match e {
            ImportError::NotDurable(why) => WriteError::NotDurable(why),
            ImportError::Unreadable(why) => WriteError::Invalid(why),
        }
    }
}

/// Why an import did not complete.
#[derive(Debug)]
pub(crate) enum ImportError {
    /// The journal did not take or commit the leases in time; those installed are live
    /// but may not survive a restart.
    NotDurable(String),
    /// Nothing in the file could be read as its format; nothing was installed.
    Unreadable(String),
}

impl Importer {
    /// An importer for the engine built from `config`, journaling through `journal`.
    pub fn new(config: Arc<Config>, journal: WorkerJournal) -> Importer {
        Importer {
            config: Mutex::new(config),
            journal: Mutex::new(journal),
            partner: Mutex::new(None),
        }
    }

    /// Imported leases are also told to the failover partner, through `tell`, once durable.
    #[must_use]
    pub fn with_partner(self, tell: TellPartner) -> Importer {
        Importer {
            partner: Mutex::new(Some(tell)),
            ..self
        }
    }

    /// The configuration a reload put in force, which the engine imports go to was built from.
    pub fn reconfigure(&self, config: Arc<Config>) {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The configuration in force.
    fn config(&self) -> Arc<Config> {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Imports `bytes` as `format` into `engine` and waits until the journal holds every
    /// imported lease durably. Blocks: run it off the control plane's event loop.
    pub(crate) fn import(
        &self,
        engine: &Engine,
        format: Format,
        zone: &LocalZone,
        bytes: &[u8],
    ) -> Result<ImportReport, ImportError> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let config = self.config();
        let (report, events) = ImportReport::run(engine, &config, format, zone, bytes, || {})
            .map_err(|e| ImportError::Unreadable(e.to_string()))?;
        Self::record(&mut journal, &events, started + COMMIT_TIMEOUT)?;
        self.tell_partner(&events, started + COMMIT_TIMEOUT);
        tracing::info!(
            format = format.as_str(),
            imported = report.imported,
            skipped = report.skipped.len(),
            conflicts = report.conflicts.len(),
            ms = started.elapsed().as_millis(),
            "leases imported through the admin API"
        );
        Ok(report)
    }

    /// Journals `events` and waits until they are durable (at most until `deadline`).
    fn record(
        journal: &mut WorkerJournal,
        events: &[BindingEvent],
        deadline: Instant,
    ) -> Result<(), ImportError> {
        let mut last = journal.committed();
        for (i, event) in events.iter().enumerate() {
            // One wake-up of the writer per 256 leases, not per lease.
            if i % 256 == 255 {
                journal.wake();
            }
            last = loop {
                if let Some(seq) = journal.enqueue(event) {
                    break seq;
                }
                journal.wake();
                // The queue is full: the writer is a batch behind.
                if Instant::now() > deadline {
                    return Err(ImportError::NotDurable(format!(
                        "the lease journal took {i} of {} changes within {} s; the rest are \
                         live but not journaled (is the writer failing? see \
                         peregrine_journal_failed)",
                        events.len(),
                        COMMIT_TIMEOUT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_micros(200));
            };
        }
        journal.wake();
        while journal.committed() < last {
            if Instant::now() > deadline {
                return Err(ImportError::NotDurable(format!(
                    "the lease journal did not commit the {} changes within {} s: they are \
                     live but may not survive a restart",
                    events.len(),
                    COMMIT_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Puts `lease` (active, for one client) in `engine`, in place of what the address held
    /// if no other client holds it, and answers once it is durable and on its way to the
    /// partner: the binding as stored. Blocks.
    pub(crate) fn put(&self, engine: &Engine, lease: Lease) -> Result<BindingEvent, WriteError> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let config = self.config();
        let address = lease.address;
        let restored = bindings::restore(engine, &config, &[Record { line: 1, lease }], || {});
        if let Some(c) = restored.conflicts.first() {
            return Err(WriteError::Conflict(format!(
                "{address} is held by another client ({}, {})",
                peregrine_wire::MacAddr(c.holder.mac),
                c.holder.state.as_str()
            )));
        }
        if let Some(o) = restored.older.first() {
            return Err(WriteError::Conflict(format!(
                "the client holds a newer lease in the scope, on {}",
                o.kept
            )));
        }
        if let Some(s) = restored.skipped.first() {
            return Err(WriteError::Invalid(s.reason.clone()));
        }
        let events = restored.events();
        Self::record(&mut journal, &events, started + COMMIT_TIMEOUT)?;
        self.tell_partner(&events, started + COMMIT_TIMEOUT);
        let stored = restored
            .accepted
            .first()
            .map(|m| m.event)
            .ok_or_else(|| WriteError::Invalid(format!("{address}: nothing to put")))?;
        tracing::info!(%address, "lease put through the admin API");
        Ok(stored)
    }

    /// Ends the lease of `address` in `engine` at `now` ([`Engine::revoke`]) and answers once
    /// the release is durable and on its way to the partner. Blocks.
    pub(crate) fn revoke(
        &self,
        engine: &Engine,
        now: u64,
        address: std::net::Ipv4Addr,
    ) -> Result<BindingEvent, WriteError> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let event = engine.revoke(now, address).ok_or_else(|| {
            WriteError::NotFound(format!(
                "{address}: no client holds it, and it is not held back"
            ))
        })?;
        Self::record(&mut journal, &[event], started + COMMIT_TIMEOUT)?;
        self.tell_partner(&[event], started + COMMIT_TIMEOUT);
        tracing::info!(%address, "lease deleted through the admin API");
        Ok(event)
    }

    /// Hands `events` to the failover partner's queue, waiting while it is full until
    /// `deadline`; what is left then reaches the partner when it next asks for everything.
    fn tell_partner(&self, events: &[BindingEvent], deadline: Instant) {
        let mut partner = self.partner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tell) = partner.as_mut() else {
            return;
        };
        for (i, event) in events.iter().enumerate() {
            while !tell(event) {
                if Instant::now() > deadline {
                    tracing::warn!(
                        left = events.len() - i,
                        "failover: the link's queue stayed full; imported leases not yet \
                         sent to the partner reach it when it next asks for everything"
                    );
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
