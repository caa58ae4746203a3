//! `peregrine run`: wiring and lifetime of the server process.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, bail};
use peregrine_config::model::{Config, Durability};
use peregrine_control::{ControlSources, Importer};
use peregrine_dataplane::{Fanout, Handoff, Interface, ProbeAnswers, SharedEngine};
use peregrine_engine::{Engine, EngineOptions, KeySecret};
use peregrine_stats::WorkerStats;
use peregrine_store::{Journal, JournalOptions, JournalWriter, LeaseDir, WorkerJournal};

use crate::backend::{self, Backend, WorkerSeed, WorkerSink};
use crate::bulk;
use crate::notify::Notifier;
use crate::partner::{self, PartnerLink, PartnerQueue};
use crate::placement;
use crate::reload::Reloader;

/// Runs the server described by the file at `path` until SIGTERM or SIGINT.
pub(crate) fn run(path: &Path) -> anyhow::Result<()> {
    let config =
        peregrine_config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    if config.runtime.interfaces.is_empty() {
        bail!(
            "{}: no [[interface]] configured: nothing to serve",
            path.display()
        );
    }
    let access = admin_access(path, &config)?;
    let store = config
        .runtime
        .leases
        .as_ref()
        .map(|l| LeaseDir::open(&l.directory))
        .transpose()?;
    let engine = build_engine(&config, store.as_ref())?;
    let mut backend = backend::open(&config, &engine)?;
    place_other_threads(&config.runtime.cores);
    let engine = SharedEngine::new(Arc::new(engine));

    let (quit, hangup) = signals()?;

    let (writer, journals, import_side, link_side) =
        start_journal(&config, store.as_ref(), backend.queues().len(), &engine)?;
    // The failover link, before the workers: they tell it of every change from the start.
    let (partner_queues, importer_partner, link) = start_partner(
        &config,
        &engine,
        link_side,
        store.as_ref(),
        &quit,
        journals.len(),
    )?;
    let failover_status = link.as_ref().map(PartnerLink::status);
    let sinks = journals
        .into_iter()
        .zip(partner_queues)
        .map(|(journal, lazy)| Fanout {
            confirming: journal,
            lazy,
        })
        .collect();
    let (seeds, stats) = seeds(&config, backend.as_ref(), sinks);
    let importer = import_side.map(|side| importer(&config, side, importer_partner));
    let scope_states = store.as_ref().map(|d| Arc::new(d.scope_state_file()));
    let reloader = Arc::new(Reloader::new(
        path.to_owned(),
        config.clone(),
        engine.clone(),
        importer.clone(),
        scope_states.clone(),
    ));
    let sources = ControlSources {
        engine: engine.clone(),
        workers: stats.clone(),
        started: std::time::Instant::now(),
        journal: writer.as_ref().map(JournalWriter::stats),
        importer,
        failover: failover_status,
        ports: backend.port_counters(),
        access,
        scope_states,
        reload: Some(reloader.clone()),
        reloads: Some(reloader.stats()),
        snapshot: writer.as_ref().map(JournalWriter::snapshot_trigger),
    };
    let control = peregrine_control::spawn(config.runtime.control_listen, sources)?;
    let bulk = config
        .runtime
        .bulk_leasequery_listen
        .map(|listen| bulk::spawn(listen, engine.clone(), quit.clone()))
        .transpose()?;
    // The workers last: whatever fails before them leaves no worker polling a port that is
    // closed as this function returns (DPDK's ports stop when the backend is dropped).
    let handles = start_workers(backend.as_mut(), seeds, &engine, &quit)?;
    tracing::info!(listen = %control.local_addr(), "control plane: /metrics /healthz /v1/pools /v1/leases/IP");
    tracing::info!(
        scopes = config.scopes.len(),
        interfaces = backend.interfaces().len(),
        workers = handles.len(),
        backend = ?config.runtime.backend,
        "peregrine serving"
    );
    log_interfaces(&config, backend.interfaces());
    let failed = serve(handles, &quit, &hangup, &reloader);
    drop(backend);
    if let Some(bulk) = bulk
        && bulk.join().is_err()
    {
        tracing::warn!("bulk leasequery: its thread panicked");
    }
    if let Err(e) = control.shutdown() {
        tracing::warn!("control plane: {e}");
    }
    if let Some(link) = link
        && let Err(e) = link.join()
    {
        tracing::warn!("failover link: {e:#}");
    }
    if let Some(writer) = writer {
        writer.stop().context("lease journal")?;
    }
    drop(store);
    log_stopped(&stats);
    failed.map_or(Ok(()), Err)
}

/// How often the main thread looks for SIGHUP while the workers run.
const SIGNAL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The last line: frames received and sent over the whole run.
fn log_stopped(stats: &[Arc<WorkerStats>]) {
    let (rx, tx): (u64, u64) = stats
        .iter()
        .map(|s| (s.rx_frames.get(), s.tx_frames.get()))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    tracing::info!(rx_frames = rx, tx_frames = tx, "peregrine stopped");
}

/// The engine `config` describes, keyed by the lease directory's secret, with the lease
/// history read into it.
fn build_engine(config: &Config, store: Option<&LeaseDir>) -> anyhow::Result<Engine> {
    let options = EngineOptions {
        key_secret: store.map_or_else(KeySecret::random, LeaseDir::key_secret),
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(config, options).context("building the engine")?;
    if let Some(f) = &config.failover {
        engine = engine.with_failover(partner::policy(f));
    }
    if let Some(dir) = store {
        recover(&engine, dir)?;
    }
    Ok(engine)
}

/// Flags set by SIGTERM or SIGINT (stop), and by SIGHUP (reload).
fn signals() -> anyhow::Result<(Arc<AtomicBool>, Arc<AtomicBool>)> {
    let quit = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, quit.clone()).context("installing signal handlers")?;
    }
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
        .context("installing signal handlers")?;
    Ok((quit, hangup))
}

/// Reloads at every SIGHUP while the workers run, telling a service manager (`Type=notify`)
/// that it serves, reloads and stops; once the workers are told to stop (or have all
/// stopped), waits for them and returns the last failure, if any.
fn serve(
    workers: Vec<std::thread::JoinHandle<anyhow::Result<()>>>,
    quit: &AtomicBool,
    hangup: &AtomicBool,
    reloader: &Reloader,
) -> Option<anyhow::Error> {
    let notifier = Notifier::from_env();
    let notify = |state: &str| {
        if let Some(n) = &notifier {
            n.send(state);
        }
    };
    notify("READY=1\nSTATUS=serving");
    while !quit.load(Ordering::Relaxed) && workers.iter().any(|h| !h.is_finished()) {
        if hangup.swap(false, Ordering::Relaxed) {
            tracing::info!("SIGHUP: reloading the configuration");
            notify("RELOADING=1\nSTATUS=reloading the configuration");
            reloader.reload_logged();
            notify("READY=1\nSTATUS=serving");
        }
        std::thread::sleep(SIGNAL_POLL);
    }
    notify("STOPPING=1\nSTATUS=stopping");
    join_workers(workers)
}

/// Starts a worker on each of the backend's queues; if one cannot start, the others are told
/// to stop.
fn start_workers(
    backend: &mut dyn Backend,
    seeds: Vec<WorkerSeed>,
    engine: &Arc<SharedEngine>,
    quit: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<anyhow::Result<()>>>> {
    backend
        .start(seeds, engine, quit)
        .inspect_err(|_| quit.store(true, Ordering::Relaxed))
}

/// Waits for every worker; the last failure, if any.
fn join_workers(
    handles: Vec<std::thread::JoinHandle<anyhow::Result<()>>>,
) -> Option<anyhow::Error> {
    let mut failed = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some(anyhow::anyhow!("a worker panicked")),
        }
    }
    failed
}

/// The journal writer and its sides: one per worker, one for imports through the admin API,
/// and one for the failover link.
type JournalSides = (
    Option<JournalWriter>,
    Vec<WorkerJournal>,
    Option<WorkerJournal>,
    Option<WorkerJournal>,
);

/// Keeps every thread started from here on but the workers (the journal's, the control
/// plane's, the failover link's) off the workers' `cores`, once the backend is open (DPDK's
/// EAL has given this thread its CPUs back by then).
fn place_other_threads(cores: &[usize]) {
    if cores.is_empty() {
        return;
    }
    match placement::keep_off_worker_cores(cores) {
        Ok(Some(cpus)) => tracing::info!(
            ?cpus,
            "the journal, control plane and failover link run off the workers' cores"
        ),
        Ok(None) => tracing::warn!(
            ?cores,
            "the workers' cores are all the CPUs the server may use: the journal writer and the \
             control plane share them (allow the process a CPU that no worker has)"
        ),
        Err(e) => tracing::warn!("keeping other threads off the workers' cores: {e}"),
    }
}

/// Starts the journal writer, if leases are kept durably, with a side for each of `workers`,
/// one for imports through the admin API and, with failover, one for the link.
fn start_journal(
    config: &Config,
    store: Option<&LeaseDir>,
    workers: usize,
    engine: &Arc<SharedEngine>,
) -> anyhow::Result<JournalSides> {
    let (Some(dir), Some(leases)) = (store, &config.runtime.leases) else {
        tracing::warn!("no [leases] directory configured: leases live in memory only");
        return Ok((None, Vec::new(), None, None));
    };
    let options = JournalOptions {
        durability: match leases.durability {
            Durability::Fsync => peregrine_store::Durability::Fsync,
            Durability::NoneUnsafe => peregrine_store::Durability::NoneUnsafe,
        },
        compact_after: leases.compact_after,
        setup: Some(placement::journal_setup(leases.writer_core)),
        commit_interval: std::time::Duration::from_micros(u64::from(leases.commit_interval_us)),
        memory: Some(memory_source(engine.clone())),
    };
    let link = usize::from(config.failover.is_some());
    let (writer, mut sides) = Journal::start(dir, options, workers + 1 + link)?;
    let link_side = if link == 1 { sides.pop() } else { None };
    let import_side = sides.pop();
    Ok((Some(writer), sides, import_side, link_side))
}

/// A seed for each of `backend`'s queues, in its order, and their counters: a core from
/// `dataplane.cores` in turn, a sink each, the hand-off rings shared by the workers of one
/// interface, and lease expiry on the first worker.
fn seeds(
    config: &Config,
    backend: &dyn Backend,
    mut sinks: Vec<WorkerSink>,
) -> (Vec<WorkerSeed>, Vec<Arc<WorkerStats>>) {
    let cores = &config.runtime.cores;
    let slots = backend.queues();
    // Every worker of an interface shares its rings; one worker needs none.
    let mut meshes: Vec<(Option<usize>, std::vec::IntoIter<Handoff>)> = Vec::new();
    if config.runtime.handoff {
        for slot in slots {
            if meshes.iter().all(|(i, _)| *i != slot.interface) {
                let n = slots
                    .iter()
                    .filter(|s| s.interface == slot.interface)
                    .count();
                if n > 1 {
                    meshes.push((slot.interface, Handoff::mesh(n, HANDOFF_DEPTH).into_iter()));
                }
            }
        }
    }
    // A ping check makes OFFERs wait; room for them is allocated only where one is set.
    let probe_slots = if config.scopes.iter().any(|s| s.ping_check_ms > 0) {
        PROBE_SLOTS
    } else {
        0
    };
    let answers = Arc::new(ProbeAnswers::default());
    let mut stats = Vec::new();
    let seeds = slots
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            let worker_stats = Arc::new(WorkerStats::default());
            stats.push(worker_stats.clone());
            WorkerSeed {
                name: slot.name.clone(),
                core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
                interfaces: match slot.interface {
                    Some(i) => vec![backend.interfaces()[i].clone()],
                    None => backend.interfaces().to_vec(),
                },
                stats: worker_stats,
                sink: sinks.pop(),
                handoff: meshes
                    .iter_mut()
                    .find(|(i, _)| *i == slot.interface)
                    .and_then(|(_, mesh)| mesh.next()),
                runs_expiry: index == 0,
                probes: (probe_slots, answers.clone()),
                workers: u32::try_from(slots.len()).unwrap_or(u32::MAX),
            }
        })
        .collect();
    (seeds, stats)
}

/// Frames each way between two workers of one interface that may wait for the other.
const HANDOFF_DEPTH: usize = 1024;

/// OFFERs per worker that may wait for a ping check at once: with a 500 ms check, 8 000
/// DISCOVERs per second per worker.
const PROBE_SLOTS: usize = 4096;

/// The bindings of the engine in use, for a snapshot when compaction finds the history
/// damaged while the server runs.
fn memory_source(engine: Arc<SharedEngine>) -> peregrine_store::MemorySource {
    Arc::new(move |each| {
        engine.load().for_each_binding(|scope, address, binding| {
            each(&peregrine_engine::BindingEvent {
                scope,
                address,
                binding: *binding,
            });
        });
    })
}

/// Reads the lease history into the engine: snapshot, sealed segments, journal, each change
/// replayed as it is read (a 10 M-lease history is never held in memory twice), on every core.
fn recover(engine: &Engine, dir: &LeaseDir) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    let (recovered, refused) = replay_history(engine, dir)?;
    if recovered.truncated_bytes > 0 {
        tracing::warn!(
            bytes = recovered.truncated_bytes,
            offset = recovered.truncated_at,
            "lease journal: removed a record torn by a crash (its ACK was never sent)"
        );
    }
    if recovered.tidied > 0 {
        tracing::info!(
            files = recovered.tidied,
            "lease directory: removed files a crash left during sealing or compaction"
        );
    }
    tracing::info!(
        directory = %dir.path().display(),
        records = recovered.records,
        files = recovered.history_files + 1,
        refused,
        ms = t.elapsed().as_millis(),
        "leases recovered"
    );
    if refused > 0 {
        tracing::warn!(
            refused,
            "lease journal: bindings outside the configured pools were not restored"
        );
    }
    restore_scope_states(engine, dir)
}

/// Sets each scope as the admin API last left it, over the configuration's `state`: a scope
/// deactivated for a migration stays so through a restart.
fn restore_scope_states(engine: &Engine, dir: &LeaseDir) -> anyhow::Result<()> {
    let configured: std::collections::HashMap<String, bool> = engine
        .scope_states()
        .into_iter()
        .map(|(name, active)| (name.to_owned(), active))
        .collect();
    for (name, active) in dir.scope_states()? {
        match configured.get(&name) {
            None => tracing::warn!(
                scope = name,
                "the admin API set the state of a scope the configuration no longer has: ignored"
            ),
            Some(&configured) if configured != active => {
                engine.set_scope_active(&name, active);
                tracing::info!(
                    scope = name,
                    active,
                    "scope state as the admin API last set it, not as configured"
                );
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Replays `dir`'s lease history into `engine` on every core; returns what recovery read and
/// how many records the configuration refused (addresses in no pool). Replay keeps each
/// address's newest version whatever the order, so the threads need no coordination; nothing
/// else may use the engine meanwhile.
pub(crate) fn replay_history(
    engine: &Engine,
    dir: &LeaseDir,
) -> anyhow::Result<(peregrine_store::Recovered, u64)> {
    let refused = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let recovered = dir.recover_parallel(threads, |event| {
        if let Err(e) = engine.replay(event) {
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?e, "lease journal: binding not restored");
        }
    })?;
    Ok((recovered, refused.into_inner()))
}

fn log_interfaces(config: &Config, interfaces: &[Interface]) {
    for (c, i) in config.runtime.interfaces.iter().zip(interfaces) {
        tracing::info!(interface = %c.name, ifindex = i.ifindex, address = %i.addr, mac = %i.mac, trusted = i.trusted, "listening");
    }
}

/// The failover link if one is configured, and its queues: one for each of `workers` workers,
/// and one for the importer (queues that tell nobody without a link).
fn start_partner(
    config: &Config,
    engine: &Arc<SharedEngine>,
    side: Option<WorkerJournal>,
    store: Option<&LeaseDir>,
    quit: &Arc<AtomicBool>,
    workers: usize,
) -> anyhow::Result<(Vec<PartnerQueue>, PartnerQueue, Option<PartnerLink>)> {
    let (mut queues, link) = match (&config.failover, side, store) {
        (Some(f), Some(side), Some(dir)) => {
            let (queues, link) = partner::start(f, engine, side, dir.path(), quit, workers + 1)?;
            (queues, Some(link))
        }
        _ => (
            (0..=workers).map(|_| PartnerQueue::default()).collect(),
            None,
        ),
    };
    let importer = queues.pop().unwrap_or_default();
    Ok((queues, importer, link))
}

/// Imports through the admin API: journaled by `side`, then told to the partner (if any).
fn importer(config: &Config, side: WorkerJournal, mut partner: PartnerQueue) -> Arc<Importer> {
    let importer = Importer::new(Arc::new(config.clone()), side);
    Arc::new(importer.with_partner(Box::new(move |e| partner.try_push(e))))
}

/// Who may use the admin API and how it is reached: the token read from `[control] token-file`
/// if the configuration at `path` names one, needed for reads too where the API listens off
/// loopback, and the TLS identity of `tls-cert` and `tls-key` if set (an error names the file,
/// the key and what is wrong).
pub(crate) fn admin_access(
    path: &Path,
    config: &peregrine_config::model::Config,
) -> anyhow::Result<peregrine_control::AdminAccess> {
    let token = config
        .runtime
        .control_token_file
        .as_deref()
        .map(|file| {
            peregrine_config::model::AdminToken::read(file)
                .map_err(|e| anyhow::anyhow!("{}: control.token-file {e}", path.display()))
        })
        .transpose()?;
    let tls = config
        .runtime
        .control_tls
        .as_ref()
        .map(|f| {
            peregrine_control::AdminTls::load(&f.cert, &f.key)
                .map_err(|e| anyhow::anyhow!("{}: control.tls-cert/tls-key {e}", path.display()))
        })
        .transpose()?;
    Ok(peregrine_control::AdminAccess {
        token: token.map(|t| t.expose().to_owned()),
        reads_need_token: !config.runtime.control_listen.ip().is_loopback(),
        tls,
    })
}
