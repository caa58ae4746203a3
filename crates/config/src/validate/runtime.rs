//! `[dataplane]`, `[control]` and `[leases]`: backend, workers, cores, the lease store and its
//! durability; the `[[interface]]` list is checked in [`super::interfaces`].

use toml::Spanned;

use super::interfaces::interfaces;
use super::optional;
use crate::error::Diagnostics;
use crate::file;
use crate::model::{Backend, DpdkSettings, Durability, LeaseStore, Runtime, TlsFiles};
use crate::text;

/// The most `dataplane.workers` there may be.
const MAX_WORKERS: u32 = 64;

/// `[dataplane]`, `[[interface]]` and `[control]`, with the defaults of [`Runtime::default`].
///
/// An interface address outside every scope's subnet is no error: it is how a relay-facing
/// interface looks (relays reach it across the network, and their giaddr selects the scope).
pub(super) fn runtime(file: &file::File, d: &mut Diagnostics<'_>) -> Option<Runtime> {
    let defaults = Runtime::default();
    let backend = optional(
        file.dataplane.backend.as_ref(),
        "dataplane.backend",
        backend,
        d,
    );
    let workers = match &file.dataplane.workers {
        None => Some(defaults.workers),
        Some(v) => {
            let workers = u32::try_from(*v.get_ref())
                .ok()
                .filter(|n| (1..=MAX_WORKERS).contains(n));
            if workers.is_none() {
                let message = format!("must be between 1 and {MAX_WORKERS}");
                d.at(v, "dataplane.workers", message);
            }
            workers
        }
    };
    let cores = match &file.dataplane.cores {
        None => Some(Vec::new()),
        Some(list) => list
            .get_ref()
            .iter()
            .enumerate()
            .map(|(i, v)| core(v, &format!("dataplane.cores[{i}]"), d))
            .collect::<Vec<_>>()
            .into_iter()
            .collect(),
    };
    let dpdk = matches!(backend, Ok(Some(Backend::Dpdk)));
    let interfaces = interfaces(&file.interface, dpdk, d);
    let control = control(&file.control, defaults.control_listen, d);
    let bulk_leasequery_listen = optional(
        file.dataplane.bulk_leasequery_listen.as_ref(),
        "dataplane.bulk-leasequery-listen",
        text::listen_address,
        d,
    );
    let leases = match &file.leases {
        None => Some(None),
        Some(l) => leases(l, d).map(Some),
    };
    Some(Runtime {
        backend: backend.ok()?.unwrap_or(defaults.backend),
        workers: workers?,
        cores: cores?,
        handoff: file.dataplane.handoff.unwrap_or(defaults.handoff),
        interfaces: interfaces?,
        control_listen: control.as_ref()?.listen,
        control_token_file: control.as_ref()?.token_file.clone(),
        control_tls: control?.tls,
        bulk_leasequery_listen: bulk_leasequery_listen.ok()?,
        dpdk: dpdk_settings(&file.dpdk, d)?,
        leases: leases?,
    })
}

/// `[control]` as checked.
struct ControlParts {
    listen: std::net::SocketAddr,
    token_file: Option<std::path::PathBuf>,
    tls: Option<TlsFiles>,
}

/// `[control]`: where the API listens (`default` if unset), its token file (needed off
/// loopback) and its TLS files; `None` if any is in error (each reported).
fn control(
    c: &file::Control,
    default: std::net::SocketAddr,
    d: &mut Diagnostics<'_>,
) -> Option<ControlParts> {
    let control_listen = optional(c.listen.as_ref(), "control.listen", text::listen_address, d);
    let control_token_file = match &c.token_file {
        None => Some(None),
        Some(path) => file_path(path, "control.token-file", d).map(Some),
    };
    let control_tls = match (&c.tls_cert, &c.tls_key) {
        (None, None) => Some(None),
        (Some(cert), Some(key)) => {
            let cert = file_path(cert, "control.tls-cert", d);
            let key = file_path(key, "control.tls-key", d);
            cert.zip(key)
                .map(|(cert, key)| Some(TlsFiles { cert, key }))
        }
        (Some(one), None) | (None, Some(one)) => {
            let key = if c.tls_cert.is_some() {
                "control.tls-cert"
            } else {
                "control.tls-key"
            };
            d.at(
                one,
                key,
                "tls-cert and tls-key go together: set both, or neither",
            );
            None
        }
    };
    // An open API reachable from beyond the host lets anyone there deactivate scopes and
    // import leases.
    if let (Some(listen), Ok(Some(addr)), None) = (&c.listen, &control_listen, &c.token_file)
        && !addr.ip().is_loopback()
    {
        d.at(
            listen,
            "control.listen",
            format_args!(
                "{addr} is not a loopback address: whoever reaches it could change leases and \
                 scopes; set control.token-file (a bearer token the API then requires), or \
                 listen on 127.0.0.1"
            ),
        );
    }
    Some(ControlParts {
        listen: control_listen.ok()?.unwrap_or(default),
        token_file: control_token_file?,
        tls: control_tls?,
    })
}

/// A file's name (absolute, or relative to where the server starts), read when the server
/// starts.
fn file_path(
    path: &Spanned<String>,
    key: &str,
    d: &mut Diagnostics<'_>,
) -> Option<std::path::PathBuf> {
    if path.get_ref().trim().is_empty() {
        d.at(path, key, "must name a file");
        return None;
    }
    Some(std::path::PathBuf::from(path.get_ref()))
}

/// `[leases]`: a directory (absolute, or relative to where the server starts), durability and
/// the journal size that triggers compaction.
fn leases(l: &file::Leases, d: &mut Diagnostics<'_>) -> Option<LeaseStore> {
    let dir = l.directory.get_ref();
    let directory = if dir.trim().is_empty() {
        d.at(
            &l.directory,
            "leases.directory",
            "must name a directory".to_string(),
        );
        None
    } else {
        Some(std::path::PathBuf::from(dir))
    };
    let durability = optional(l.durability.as_ref(), "leases.durability", durability, d);
    let compact_after = match &l.compact_after {
        None => Some(LeaseStore::DEFAULT_COMPACT_AFTER),
        Some(v) => {
            let bytes = u64::try_from(*v.get_ref())
                .ok()
                .filter(|b| *b >= LeaseStore::MIN_COMPACT_AFTER);
            if bytes.is_none() {
                d.at(
                    v,
                    "leases.compact-after",
                    format_args!(
                        "must be at least {} bytes (64 KiB)",
                        LeaseStore::MIN_COMPACT_AFTER
                    ),
                );
            }
            bytes
        }
    };
    let writer_core = match &l.writer_core {
        None => Some(None),
        Some(v) => core(v, "leases.writer-core", d).map(Some),
    };
    let commit_interval_us = match &l.commit_interval_us {
        None => Some(LeaseStore::DEFAULT_COMMIT_INTERVAL_US),
        Some(v) => {
            let us = u32::try_from(*v.get_ref())
                .ok()
                .filter(|us| *us <= LeaseStore::MAX_COMMIT_INTERVAL_US);
            if us.is_none() {
                d.at(
                    v,
                    "leases.commit-interval-us",
                    format_args!(
                        "must be between 0 and {} microseconds",
                        LeaseStore::MAX_COMMIT_INTERVAL_US
                    ),
                );
            }
            us
        }
    };
    Some(LeaseStore {
        directory: directory?,
        durability: durability.ok()?.unwrap_or_default(),
        compact_after: compact_after?,
        writer_core: writer_core?,
        commit_interval_us: commit_interval_us?,
    })
}

/// A CPU core number, 0 to [`LeaseStore::MAX_CORE`]. Whether the machine has that core is
/// known only where the server runs, which checks it when it pins its threads.
fn core(v: &Spanned<i64>, key: &str, d: &mut Diagnostics<'_>) -> Option<usize> {
    let core = usize::try_from(*v.get_ref())
        .ok()
        .filter(|c| *c <= LeaseStore::MAX_CORE);
    if core.is_none() {
        let message = format!("must be a CPU core number, 0 to {}", LeaseStore::MAX_CORE);
        d.at(v, key, message);
    }
    core
}

fn durability(s: &str) -> Result<Durability, String> {
    match s {
        "fsync" => Ok(Durability::Fsync),
        "none-unsafe" => Ok(Durability::NoneUnsafe),
        _ => Err(format!(
            "unknown durability `{s}`; the modes are fsync and none-unsafe"
        )),
    }
}

fn backend(s: &str) -> Result<Backend, String> {
    match s {
        "af-packet" => Ok(Backend::AfPacket),
        "udp" => Ok(Backend::Udp),
        "tap" => Ok(Backend::Tap),
        "dpdk" => Ok(Backend::Dpdk),
        _ => Err(format!(
            "unknown backend `{s}`; the backends are af-packet, udp, tap and dpdk"
        )),
    }
}

/// `[dpdk]`: the EAL's arguments and the ports' buffers.
fn dpdk_settings(f: &file::Dpdk, d: &mut Diagnostics<'_>) -> Option<DpdkSettings> {
    let defaults = DpdkSettings::default();
    let args: Vec<_> = f
        .eal_args
        .iter()
        .enumerate()
        .map(|(i, a)| d.parse(a, format_args!("dpdk.eal-args[{i}]"), text::non_empty))
        .collect();
    let mbufs = match &f.mbufs {
        Some(v) if *v.get_ref() < MIN_MBUFS => {
            let message = format!("at least {MIN_MBUFS}: every queue's ring is filled from it");
            d.at(v, "dpdk.mbufs", message);
            None
        }
        v => Some(v.as_ref().map_or(defaults.mbufs, |v| *v.get_ref())),
    };
    let ring = match &f.ring {
        Some(v) if !v.get_ref().is_power_of_two() || *v.get_ref() < 64 => {
            d.at(v, "dpdk.ring", "a power of two, at least 64");
            None
        }
        v => Some(v.as_ref().map_or(defaults.ring, |v| *v.get_ref())),
    };
    Some(DpdkSettings {
        eal_args: args.into_iter().collect::<Option<_>>()?,
        mbufs: mbufs?,
        ring: ring?,
    })
}

/// The fewest packet buffers `[dpdk] mbufs` may give.
const MIN_MBUFS: u32 = 1023;
