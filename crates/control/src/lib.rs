//! The control plane: Prometheus metrics, a health check and a read-only admin API, served over
//! HTTP/1.1 from one thread.
//!
//! `peregrine-control` owns that thread and what it serves:
//!
//! - `GET /metrics`: the Prometheus text exposition. Worker counters ([`WorkerStats`]) are read
//!   and summed at scrape time and pool gauges come from [`Engine::pool_stats`], so the packet
//!   path never touches a shared atomic or a registry.
//! - `GET /healthz`: `200 ok` while the thread serves.
//! - `GET /v1/pools`: pool utilisation as JSON.
//! - `GET /v1/leases/{ip}`: the binding of one address as JSON.
//! - `GET /v1/scopes`, `POST /v1/scopes/{name}/activate|deactivate`: scopes' administrative
//!   state.
//! - `POST /v1/leases/import/{format}`: a Kea, ISC dhcpd or Windows lease file into the
//!   running server, answered once the imported leases are durable.
//! - `PUT` and `DELETE /v1/leases/{ip}`: one lease written by the operator, journaled before
//!   the answer; 409 for an address another client holds.
//! - `POST /v1/journal/snapshot`: the lease journal folded into a snapshot now.
//! - `POST /v1/config/reload`: the configuration file read again and put in force ([`Reload`]).
//!
//! It must not slow the workers: it takes no lock a worker waits on other than the engine's
//! shard locks, briefly, through the engine's own accessors; it changes no binding but
//! those an operator imports; and tokio
//! stays inside its thread (a current-thread runtime), so workers never see an async runtime.
//! It does not decide DHCP (that is `peregrine-engine`) and does not count packets (that is
//! `peregrine-dataplane`).

mod api;
mod auth;
mod import;
mod metrics;
mod reload;
mod search;
mod tls;
mod write;

pub use auth::AdminAccess;
pub use import::{Importer, TellPartner};
pub use reload::{Reload, ReloadError, Reloaded};
pub use tls::AdminTls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use peregrine_dataplane::SharedEngine;
use peregrine_stats::{FailoverStatus, WorkerStats};
use peregrine_store::JournalStats;
use tokio::sync::oneshot;

/// What the control plane reports on.
#[derive(Debug, Clone)]
pub struct ControlSources {
    /// The engine every worker shares (pool gauges, lease lookups), which a reload replaces.
    pub engine: Arc<SharedEngine>,
    /// Every worker's counters, in worker order (the `worker` label is the index).
    pub workers: Vec<Arc<WorkerStats>>,
    /// When the server started, for `peregrine_uptime_seconds`. Monotonic, so a wall-clock
    /// step does not make the uptime jump or go negative.
    pub started: Instant,
    /// The lease journal's writer counters, if leases are journaled.
    pub journal: Option<Arc<JournalStats>>,
    /// Imports into the running server (`POST /v1/leases/import/{format}`), if leases are
    /// journaled.
    pub importer: Option<Arc<Importer>>,
    /// The failover link's state and counters (`/v1/failover`, `peregrine_failover_*`), if
    /// the server has a partner.
    pub failover: Option<Arc<FailoverStatus>>,
    /// The NIC ports' own counters and link state (`peregrine_port_*`), where the backend has
    /// ports of its own (DPDK).
    pub ports: Option<Arc<dyn PortCounterSource>>,
    /// Who may use the API.
    pub access: AdminAccess,
    /// Where scope states set through the API are kept for the next start, if leases are
    /// kept in a directory.
    pub scope_states: Option<Arc<peregrine_store::ScopeStateFile>>,
    /// Reloads the configuration file (`POST /v1/config/reload`), if the server has one.
    pub reload: Option<Arc<dyn Reload>>,
    /// Reloads by outcome (`peregrine_config_reloads_total`), however asked for.
    pub reloads: Option<Arc<peregrine_stats::ReloadStats>>,
    /// Asks the lease journal for a snapshot (`POST /v1/journal/snapshot`), if leases are
    /// journaled.
    pub snapshot: Option<peregrine_store::SnapshotTrigger>,
}

/// A port's counters and link state, as its driver keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// The configured interface the port serves.
    pub interface: String,
    /// The port's own name (a DPDK device name, a PCI address).
    pub port: String,
    /// Whether the link is up.
    pub link_up: bool,
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames the port dropped because its receive queues were full.
    pub rx_missed: u64,
    /// Frames received with errors.
    pub rx_errors: u64,
    /// Frames that failed to send.
    pub tx_errors: u64,
    /// Receive buffer allocation failures.
    pub rx_no_buffer: u64,
    /// Each queue's counters, by queue number (as far as the driver counts per queue).
    pub queues: Vec<QueueCounters>,
    /// The driver's own extended statistics, by its name for each.
    pub xstats: Vec<(String, u64)>,
}

/// One queue's counters, as its port's driver keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Frames received on the queue.
    pub rx_packets: u64,
    /// Frames sent from the queue.
    pub tx_packets: u64,
    /// Bytes received on the queue.
    pub rx_bytes: u64,
    /// Bytes sent from the queue.
    pub tx_bytes: u64,
}

/// Reads [`PortCounters`] at every scrape, from the control-plane thread.
pub trait PortCounterSource: std::fmt::Debug + Send + Sync {
    /// Every port's counters now.
    fn read(&self) -> Vec<PortCounters>;
}

/// The running control plane. [`Control::shutdown`] stops it and joins its thread; dropping it
/// does the same but discards the thread's result.
#[derive(Debug)]
pub struct Control {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Binds `listen` and starts the control-plane thread serving `sources`.
///
/// Everything that can fail (binding, building the runtime, registering metrics, starting the
/// thread) fails here, before the thread runs; bind errors name the address.
pub fn spawn(listen: SocketAddr, sources: ControlSources) -> io::Result<Control> {
    let listener = std::net::TcpListener::bind(listen).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("control plane: cannot listen on {listen}: {e}"),
        )
    })?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    // The timer is needed by the server itself: it backs off with a sleep when `accept` fails
    // (out of file descriptors, say).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        // Registering the socket with the reactor needs the runtime's context.
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let failures = Arc::new(auth::AuthFailures::default());
    let collector =
        metrics::StatsCollector::new(&sources, failures.clone()).map_err(io::Error::other)?;
    let registry = prometheus::Registry::new();
    registry
        .register(Box::new(collector))
        .map_err(io::Error::other)?;
    let tls = sources.access.tls.clone();
    let gate = Arc::new(auth::Gate {
        access: sources.access,
        failures,
    });
    let app = api::router(
        Arc::new(api::ApiState {
            registry,
            engine: sources.engine,
            importer: sources.importer,
            failover: sources.failover,
            scope_states: sources.scope_states,
            reload: sources.reload,
            snapshot: sources.snapshot,
        }),
        gate,
    );
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("peregrine-control".into())
        .spawn(move || {
            runtime.block_on(async move {
                let served = async move {
                    if let Some(tls) = tls {
                        tls::serve(listener, app, tls).await
                    } else {
                        let app = app.into_make_service_with_connect_info::<SocketAddr>();
                        axum::serve(listener, app).await
                    }
                };
                tokio::select! {
                    served = served => served,
                    // A dropped sender stops the server as well as a sent message.
                    _ = stopped => Ok(()),
                }
            })
            // Dropping the runtime here cancels the connections still open: requests in flight
            // are cut rather than awaited, so shutdown is bounded whatever the clients do.
        })?;
    Ok(Control {
        local_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Control {
    /// The address the control plane listens on (with the port the system chose, if `listen`
    /// asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving, closes the listening socket and open connections, and joins the thread.
    /// Returns the server's error if it failed, or an error if the thread panicked.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            // An error means the thread has already ended; joining reports why.
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(served)) => served,
            Some(Err(_panic)) => Err(io::Error::other("control-plane thread panicked")),
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // Nobody is left to report to; `shutdown` is the way to see the result.
        let _ = self.stop_and_join();
    }
}
