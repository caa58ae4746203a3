//! Reloading the configuration file without a restart: SIGHUP, and the admin API's
//! `POST /v1/config/reload`.
//!
//! The file is validated first; a bad one is refused with `check-config`'s errors and the
//! configuration in force stays. What the running process is made of (backend, interfaces,
//! workers and cores, the control plane's listener, the lease directory, the failover link)
//! only a restart changes: a file that changes it is refused, naming what. Everything else
//! (scopes, pools, options, classes, reservations, lease times) is put in force by building the
//! engine the file describes from the running one between the workers' bursts
//! ([`peregrine_engine::Engine::reconfigured`], [`SharedEngine::replace`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peregrine_config::model::Config;
use peregrine_control::{Importer, Reload, ReloadError, Reloaded};
use peregrine_dataplane::{ReplaceError, SharedEngine};
use peregrine_engine::Carried;
use peregrine_stats::{ReloadOutcome, ReloadStats};
use peregrine_store::ScopeStateFile;

/// How long a reload waits for every worker (and the failover link) to reach a checkpoint.
/// A worker comes round within a burst or its idle wait; the link within a connection attempt
/// (at most a second).
const PATIENCE: Duration = Duration::from_secs(5);

/// Reloads the configuration at `path` into the running server.
#[derive(Debug)]
pub(crate) struct Reloader {
    path: PathBuf,
    /// The configuration in force; held through a reload, so reloads run one at a time.
    running: Mutex<Config>,
    engine: Arc<SharedEngine>,
    importer: Option<Arc<Importer>>,
    scope_states: Option<Arc<ScopeStateFile>>,
    stats: Arc<ReloadStats>,
}

impl Reloader {
    pub(crate) fn new(
        path: PathBuf,
        running: Config,
        engine: Arc<SharedEngine>,
        importer: Option<Arc<Importer>>,
        scope_states: Option<Arc<ScopeStateFile>>,
    ) -> Reloader {
        Reloader {
            path,
            running: Mutex::new(running),
            engine,
            importer,
            scope_states,
            stats: Arc::default(),
        }
    }

    /// Reloads by outcome, for `/metrics`.
    pub(crate) fn stats(&self) -> Arc<ReloadStats> {
        self.stats.clone()
    }

    /// [`Reload::reload`], logged: what SIGHUP does.
    pub(crate) fn reload_logged(&self) {
        if let Err(e) = self.reload() {
            tracing::error!("reload refused, the configuration in force stays: {e}");
        }
    }
}

impl Reload for Reloader {
    fn reload(&self) -> Result<Reloaded, ReloadError> {
        let now = peregrine_dataplane::unix_now();
        let result = self.put_in_force(now);
        let outcome = match &result {
            Ok(_) => ReloadOutcome::Ok,
            Err(ReloadError::Invalid(_)) => ReloadOutcome::Invalid,
            Err(ReloadError::NeedsRestart(_)) => ReloadOutcome::NeedsRestart,
            Err(ReloadError::Busy(_)) => ReloadOutcome::Busy,
            Err(ReloadError::Failed(_)) => ReloadOutcome::Failed,
        };
        let pause = result.as_ref().map_or(0, |r| r.paused_us);
        self.stats.count(outcome, now, pause);
        result
    }
}

impl Reloader {
    /// Reads the file and puts it in force at `now`, or says why not.
    fn put_in_force(&self, now: u64) -> Result<Reloaded, ReloadError> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let file = self.path.display().to_string();
        let next = peregrine_config::load(&self.path)
            .map_err(|e| ReloadError::Invalid(format!("invalid configuration:\n{e}")))?;
        let fixed = needs_restart(&running, &next);
        if !fixed.is_empty() {
            return Err(ReloadError::NeedsRestart(format!(
                "{file}: {} changed, which only a restart puts in force",
                fixed.join(", ")
            )));
        }
        let mut carried = Carried::default();
        let (engine, paused) = self
            .engine
            .replace(
                PATIENCE,
                |old| old.successor(&next),
                |old, new| carried = old.hand_over(new, now),
            )
            .map_err(|e| match e {
                ReplaceError::Busy { parked, members } => ReloadError::Busy(format!(
                    "{parked} of {members} workers stopped for the reload within {PATIENCE:?}; \
                     nothing changed, try again"
                )),
                ReplaceError::Build(e) => ReloadError::Failed(e.to_string()),
            })?;
        if let Some(file) = &self.scope_states
            && let Err(e) = file.write(&engine.scope_overrides())
        {
            // In force now; only the next start would not know the operator's changes.
            tracing::error!(error = %e, "scope states after the reload not kept for the next start");
        }
        if let Some(importer) = &self.importer {
            importer.reconfigure(Arc::new(next.clone()));
        }
        let names =
            |c: &Config| -> Vec<String> { c.scopes.iter().map(|s| s.name.clone()).collect() };
        let (before, after) = (names(&running), names(&next));
        let reloaded = Reloaded {
            file,
            scopes: after.len(),
            added: after
                .iter()
                .filter(|n| !before.contains(n))
                .cloned()
                .collect(),
            removed: before
                .iter()
                .filter(|n| !after.contains(n))
                .cloned()
                .collect(),
            bindings: carried.bindings,
            retired: carried.retired,
            paused_us: u64::try_from(paused.as_micros()).unwrap_or(u64::MAX),
        };
        tracing::info!(
            file = reloaded.file,
            scopes = reloaded.scopes,
            added = ?reloaded.added,
            removed = ?reloaded.removed,
            bindings = carried.bindings,
            copied = carried.copied,
            retired = carried.retired,
            forgotten = carried.forgotten,
            paused_us = reloaded.paused_us,
            "configuration reloaded"
        );
        *running = next;
        Ok(reloaded)
    }
}

/// What differs between `old` and `new` that only a restart changes, by the file's names.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.runtime, &new.runtime);
    [
        ("dataplane.backend", a.backend == b.backend),
        ("dataplane.workers", a.workers == b.workers),
        ("dataplane.cores", a.cores == b.cores),
        ("dataplane.handoff", a.handoff == b.handoff),
        (
            "dataplane.bulk-leasequery-listen",
            a.bulk_leasequery_listen == b.bulk_leasequery_listen,
        ),
        ("[[interface]]", a.interfaces == b.interfaces),
        ("[dpdk]", a.dpdk == b.dpdk),
        ("[leases]", a.leases == b.leases),
        (
            "[control]",
            a.control_listen == b.control_listen
                && a.control_token_file == b.control_token_file
                && a.control_tls == b.control_tls,
        ),
        ("[failover]", old.failover == new.failover),
    ]
    .into_iter()
    .filter_map(|(name, same)| (!same).then_some(name))
    .collect()
}
