//! The Prometheus collector: reads worker counters and pool utilisation when scraped.
//!
//! Each worker writes only its own [`WorkerStats`]; summing them here, at scrape time, is what
//! keeps a shared atomic (and its cache-line traffic) off the packet path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use peregrine_dataplane::SharedEngine;
use peregrine_engine::PoolStats;
use peregrine_stats::{FailoverStatus, FrameDrop, Latency, WorkerStats};
use peregrine_store::{FSYNC_BUCKETS_US, JournalCounters, JournalStats};
use peregrine_wire::dhcp::MessageType;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};

/// Label value of message counter index 0: a message without a known DHCP type.
const OTHER_TYPE: &str = "other";

/// Reads one counter of a worker.
type ReadWorker = fn(&WorkerStats) -> u64;

/// Reads one figure of a pool.
type ReadPool = fn(&PoolStats) -> u64;

/// Totals over every worker of one counter each: name, help, counter.
const TOTALS: [(&str, &str, ReadWorker); 6] = [
    (
        "peregrine_frames_received_total",
        "Frames received by all workers.",
        |w| w.rx_frames.get(),
    ),
    (
        "peregrine_frames_sent_total",
        "Frames sent by all workers.",
        |w| w.tx_frames.get(),
    ),
    (
        "peregrine_arp_replies_total",
        "ARP replies sent for the server's own addresses.",
        |w| w.arp_replies.get(),
    ),
    (
        "peregrine_icmp_echo_replies_total",
        "ICMP echo replies sent for the server's own addresses.",
        |w| w.icmp_replies.get(),
    ),
    (
        "peregrine_dhcp_acks_deferred_total",
        "ACKs that granted or extended a lease, held until the change was durable.",
        |w| w.deferred.get(),
    ),
    (
        "peregrine_leases_expired_total",
        "Leases expired by the workers' timer runs.",
        |w| w.expired.get(),
    ),
];

/// Reads one figure of the journal writer.
type ReadJournal = fn(&JournalCounters) -> f64;

/// The journal writer's figures: name, help, type, figure.
const JOURNAL: [(&str, &str, Kind, ReadJournal); 12] = [
    (
        "peregrine_journal_records_total",
        "Binding changes written to the lease journal.",
        Kind::Counter,
        |j| value(j.records),
    ),
    (
        "peregrine_journal_batches_total",
        "Journal batches written (group commit: one write each).",
        Kind::Counter,
        |j| value(j.batches),
    ),
    (
        "peregrine_journal_fsyncs_total",
        "fdatasync calls of the journal writer (one per batch with durability fsync).",
        Kind::Counter,
        |j| value(j.fsyncs),
    ),
    (
        "peregrine_journal_bytes_total",
        "Bytes appended to the lease journal.",
        Kind::Counter,
        |j| value(j.bytes),
    ),
    (
        "peregrine_journal_last_fsync_seconds",
        "How long the last fdatasync of the journal took.",
        Kind::Gauge,
        |j| j.last_fsync.as_secs_f64(),
    ),
    (
        "peregrine_journal_failed",
        "1 if the journal writer stopped on an I/O error: no lease can be granted or renewed.",
        Kind::Gauge,
        |j| if j.failed { 1.0 } else { 0.0 },
    ),
    (
        "peregrine_journal_segments_sealed_total",
        "Journal segments sealed at the size limit (leases.compact-after).",
        Kind::Counter,
        |j| value(j.sealed),
    ),
    (
        "peregrine_journal_compactions_total",
        "Compactions of sealed journal segments into a snapshot.",
        Kind::Counter,
        |j| value(j.compactions),
    ),
    (
        "peregrine_journal_last_compaction_seconds",
        "How long the last compaction took (it runs beside the writer, never in its way).",
        Kind::Gauge,
        |j| j.last_compaction.as_secs_f64(),
    ),
    (
        "peregrine_journal_compaction_failures_total",
        "Compactions that failed (the segments are kept; see the log).",
        Kind::Counter,
        |j| value(j.compaction_failures),
    ),
    (
        "peregrine_journal_damaged_files_total",
        "Damaged lease history files compaction found while serving: each set aside (see the \
         log for file and offset) and the snapshot written from the bindings in memory.",
        Kind::Counter,
        |j| value(j.damaged_files),
    ),
    (
        "peregrine_journal_snapshot_records",
        "Records in the newest lease snapshot: addresses that ever changed.",
        Kind::Gauge,
        |j| value(j.snapshot_records),
    ),
];

/// Upper bounds of the reply latency histogram's buckets, in microseconds.
const LATENCY_BUCKETS_US: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// Pool gauge states, with how to read each from the engine's figures.
const POOL_STATES: [(&str, ReadPool); 7] = [
    ("total", |p| p.total),
    ("active", |p| p.active),
    ("offered", |p| p.offered),
    ("abandoned", |p| p.abandoned),
    ("held_back", |p| p.held_back),
    ("reserved", |p| p.reserved),
    ("free", |p| p.free),
];

/// Exposition type of a family (only the two this collector produces).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family: its descriptor (name, help, label names) and type.
#[derive(Debug)]
struct Family {
    desc: Desc,
    kind: Kind,
}

impl Family {
    fn new(name: &str, help: &str, labels: &[&str], kind: Kind) -> prometheus::Result<Family> {
        let labels = labels.iter().map(|l| (*l).to_owned()).collect();
        Ok(Family {
            desc: Desc::new(name.into(), help.into(), labels, HashMap::new())?,
            kind,
        })
    }

    /// One sample, with a value for each of the family's labels, in order.
    fn sample(&self, label_values: &[&str], value: f64) -> Metric {
        debug_assert_eq!(label_values.len(), self.desc.variable_labels.len());
        let labels = self
            .desc
            .variable_labels
            .iter()
            .zip(label_values)
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.clone());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect();
        let mut metric = Metric::from_label(labels);
        match self.kind {
            Kind::Counter => {
                let mut c = proto::Counter::default();
                c.set_value(value);
                metric.set_counter(c);
            }
            Kind::Gauge => {
                let mut g = proto::Gauge::default();
                g.set_value(value);
                metric.set_gauge(g);
            }
        }
        metric
    }

    fn family(&self, metrics: Vec<Metric>) -> MetricFamily {
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(match self.kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
        });
        family.set_metric(metrics);
        family
    }
}

/// Prometheus sample values are floats: exact up to 2^53, which a packet counter does not reach
/// in the life of a process.
#[expect(
    clippy::cast_precision_loss,
    reason = "exposition values are f64 by definition"
)]
fn value(n: u64) -> f64 {
    n as f64
}

/// The failover link's families (present only on a server with a partner).
#[derive(Debug)]
struct FailoverFamilies {
    state: Family,
    connected: Family,
    unacked: Family,
    updates: Family,
    rejections: Family,
    connections: Family,
    refusals: Family,
    queue_dropped: Family,
    lag: Family,
}

impl FailoverFamilies {
    fn new() -> prometheus::Result<FailoverFamilies> {
        Ok(FailoverFamilies {
            state: Family::new(
                "peregrine_failover_state",
                "Failover state by server (local, partner), by its number in the protocol: 1 \
             STARTUP, 2 NORMAL, 3 COMMUNICATIONS-INTERRUPTED, 4 PARTNER-DOWN, 5 \
             POTENTIAL-CONFLICT, 6 RECOVER, 9 RECOVER-DONE, 10 RESOLUTION-INTERRUPTED, 11 \
             CONFLICT-DONE, 254 RECOVER-WAIT; the partner's is absent until heard.",
                &["server"],
                Kind::Gauge,
            )?,
            connected: Family::new(
                "peregrine_failover_connected",
                "1 while the connection to the failover partner is up.",
                &[],
                Kind::Gauge,
            )?,
            unacked: Family::new(
                "peregrine_failover_unacked_updates",
                "Binding updates for the partner not yet acknowledged (queued or in flight).",
                &[],
                Kind::Gauge,
            )?,
            updates: Family::new(
                "peregrine_failover_updates_total",
                "Binding updates: sent to the partner, and the partner's accepted or rejected.",
                &["kind"],
                Kind::Counter,
            )?,
            rejections: Family::new(
                "peregrine_failover_rejections_total",
                "Binding updates refused, by the server that refused them (local: the \
                 partner's, here; partner: ours, there) and the draft's reject reason.",
                &["by", "reason"],
                Kind::Counter,
            )?,
            refusals: Family::new(
                "peregrine_failover_connections_refused_total",
                "Connections to the partner closed or refused by this server, by reason (an \
                 unconfigured address, a timeout, an unauthenticated or malformed message, a \
                 refusal in the handshake).",
                &["reason"],
                Kind::Counter,
            )?,
            connections: Family::new(
                "peregrine_failover_connections_total",
                "Connections to the partner: made, and refused or closed by this server (an \
             unconfigured address, a timeout, bad input).",
                &["outcome"],
                Kind::Counter,
            )?,
            queue_dropped: Family::new(
                "peregrine_failover_queue_dropped_total",
                "Binding changes the workers could not queue for the partner (the queue was \
             full); the MCLT rule bounds what they promised meanwhile.",
                &[],
                Kind::Counter,
            )?,
            lag: Family::new(
                "peregrine_failover_replication_lag_seconds",
                "From a lease's change reaching the failover link to the partner's \
                 acknowledgement of its update, since the server started: the median, the 99th \
                 percentile and the longest.",
                &["quantile"],
                Kind::Gauge,
            )?,
        })
    }

    fn all(&self) -> [&Family; 9] {
        [
            &self.state,
            &self.connected,
            &self.unacked,
            &self.updates,
            &self.rejections,
            &self.connections,
            &self.refusals,
            &self.queue_dropped,
            &self.lag,
        ]
    }

    /// The families' samples now.
    fn collect(&self, f: &FailoverStatus) -> Vec<MetricFamily> {
        use std::sync::atomic::Ordering::Relaxed;
        let v = f.view();
        let mut states = vec![self.state.sample(&["local"], f64::from(v.state_code))];
        if let Some(code) = v.partner_state_code {
            states.push(self.state.sample(&["partner"], f64::from(code)));
        }
        let count = |c: &std::sync::atomic::AtomicU64| value(c.load(Relaxed));
        vec![
            self.state.family(states),
            self.connected.family(vec![
                self.connected.sample(&[], f64::from(u8::from(v.connected))),
            ]),
            self.unacked
                .family(vec![self.unacked.sample(&[], value(v.unacked as u64))]),
            self.updates.family(vec![
                self.updates.sample(&["sent"], count(&f.updates_sent)),
                self.updates
                    .sample(&["accepted"], count(&f.updates_accepted)),
                self.updates
                    .sample(&["rejected"], count(&f.updates_rejected)),
            ]),
            self.rejections.family(
                [("local", &f.rejected), ("partner", &f.refused_by_partner)]
                    .into_iter()
                    .flat_map(|(by, tally)| {
                        tally
                            .read()
                            .into_iter()
                            .map(move |(reason, n)| self.rejections.sample(&[by, reason], value(n)))
                    })
                    .collect(),
            ),
            self.refusals.family(
                f.connections_closed
                    .read()
                    .into_iter()
                    .map(|(reason, n)| self.refusals.sample(&[reason], value(n)))
                    .collect(),
            ),
            self.connections.family(vec![
                self.connections.sample(&["made"], count(&f.connections)),
                self.connections
                    .sample(&["refused"], count(&f.connections_refused)),
            ]),
            self.queue_dropped.family(vec![
                self.queue_dropped.sample(&[], count(&f.queue_dropped)),
            ]),
            {
                let h = f.lag.read();
                let seconds = |ns: u64| value(ns) / 1e9;
                self.lag.family(vec![
                    self.lag.sample(&["0.5"], seconds(h.value_at_quantile(0.5))),
                    self.lag
                        .sample(&["0.99"], seconds(h.value_at_quantile(0.99))),
                    self.lag.sample(&["1"], seconds(h.max())),
                ])
            },
        ]
    }
}

/// Reads the workers' counters and the engine's pools at every scrape.
#[derive(Debug)]
pub(crate) struct StatsCollector {
    engine: Arc<SharedEngine>,
    workers: Vec<Arc<WorkerStats>>,
    journal: Option<Arc<JournalStats>>,
    failover: Option<Arc<FailoverStatus>>,
    failover_families: FailoverFamilies,
    ports: Option<Arc<dyn crate::PortCounterSource>>,
    port_families: PortFamilies,
    auth: AuthFigures,
    reloads: Option<ReloadFigures>,
    started: Instant,
    totals: Vec<(Family, ReadWorker)>,
    journal_figures: Vec<(Family, ReadJournal)>,
    latency: Desc,
    fsync_latency: Desc,
    held_replies: Family,
    last_burst: Family,
    messages_in: Family,
    messages_out: Family,
    drops: Family,
    worker_frames: Family,
    worker_busy: Family,
    handoff: Family,
    ping_checks: Family,
    probes_waiting: Family,
    pools: Family,
    uptime: Family,
    options_left_out: Family,
}

/// The admin API's refused requests, by reason.
#[derive(Debug)]
struct AuthFigures {
    failures: Arc<crate::auth::AuthFailures>,
    family: Family,
}

impl AuthFigures {
    fn new(failures: Arc<crate::auth::AuthFailures>) -> prometheus::Result<AuthFigures> {
        Ok(AuthFigures {
            failures,
            family: Family::new(
                "peregrine_admin_auth_failures_total",
                "Admin API requests refused, by reason: missing (no bearer token), wrong (not \
                 the server's token).",
                &["reason"],
                Kind::Counter,
            )?,
        })
    }

    fn collect(&self) -> MetricFamily {
        let samples = crate::auth::Refusal::ALL
            .map(|r| self.family.sample(&[r.name()], value(self.failures.get(r))));
        self.family.family(samples.to_vec())
    }
}

/// Configuration reloads by outcome, and the last one put in force.
#[derive(Debug)]
struct ReloadFigures {
    stats: Arc<peregrine_stats::ReloadStats>,
    outcomes: Family,
    last_ok: Family,
    last_pause: Family,
}

impl ReloadFigures {
    fn new(stats: Arc<peregrine_stats::ReloadStats>) -> prometheus::Result<ReloadFigures> {
        Ok(ReloadFigures {
            stats,
            outcomes: Family::new(
                "peregrine_config_reloads_total",
                "Configuration reloads (SIGHUP, POST /v1/config/reload) by outcome: ok, invalid \
                 (check-config's errors), needs_restart, busy (the workers did not stop in \
                 time), failed. Any but ok leaves the configuration in force as it was.",
                &["outcome"],
                Kind::Counter,
            )?,
            last_ok: Family::new(
                "peregrine_config_last_reload_success_timestamp_seconds",
                "When the last reload put the configuration file in force (UNIX seconds; 0: \
                 none since the start).",
                &[],
                Kind::Gauge,
            )?,
            last_pause: Family::new(
                "peregrine_config_last_reload_pause_seconds",
                "How long the workers waited in the last reload put in force.",
                &[],
                Kind::Gauge,
            )?,
        })
    }

    fn families(&self) -> [&Family; 3] {
        [&self.outcomes, &self.last_ok, &self.last_pause]
    }

    fn collect(&self, out: &mut Vec<MetricFamily>) {
        let samples = peregrine_stats::ReloadOutcome::ALL.map(|o| {
            self.outcomes
                .sample(&[o.as_str()], value(self.stats.get(o)))
        });
        out.push(self.outcomes.family(samples.to_vec()));
        out.push(self.last_ok.family(vec![
            self.last_ok.sample(&[], value(self.stats.last_ok_unix())),
        ]));
        let pause = value(self.stats.last_pause_us()) / 1e6;
        out.push(
            self.last_pause
                .family(vec![self.last_pause.sample(&[], pause)]),
        );
    }
}

/// A family labelled by worker.
fn by_worker(name: &str, help: &str, kind: Kind) -> prometheus::Result<Family> {
    Family::new(name, help, &["worker"], kind)
}

/// A histogram family of one series: `within[i]` samples of `count` at most `bounds[i]`.
fn histogram(desc: &Desc, bounds: &[f64], within: &[u64], count: u64, sum: f64) -> MetricFamily {
    let buckets = bounds
        .iter()
        .zip(within)
        .map(|(&bound, &n)| {
            let mut b = proto::Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(n);
            b
        })
        .collect();
    let mut h = proto::Histogram::default();
    h.set_sample_count(count);
    h.set_sample_sum(sum);
    h.set_bucket(buckets);
    let mut metric = Metric::default();
    metric.set_histogram(h);
    let mut family = MetricFamily::default();
    family.set_name(desc.fq_name.clone());
    family.set_help(desc.help.clone());
    family.set_field_type(MetricType::HISTOGRAM);
    family.set_metric(vec![metric]);
    family
}

/// The reply latency histogram's description.
fn latency_desc() -> prometheus::Result<Desc> {
    Desc::new(
        "peregrine_reply_latency_seconds".into(),
        "Time from a request leaving the receive ring to its reply being queued for sending, \
         the wait for the journal included (merged over workers; published by each about once \
         a second)."
            .into(),
        vec![],
        HashMap::new(),
    )
}

impl StatsCollector {
    /// Fails only if a name or label here is invalid.
    // One family after another, as the exposition lists them: a table, not logic.
    #[allow(clippy::too_many_lines)]
    pub(crate) fn new(
        sources: &crate::ControlSources,
        auth_failures: Arc<crate::auth::AuthFailures>,
    ) -> prometheus::Result<StatsCollector> {
        Ok(StatsCollector {
            auth: AuthFigures::new(auth_failures)?,
            reloads: sources
                .reloads
                .clone()
                .map(ReloadFigures::new)
                .transpose()?,
            engine: sources.engine.clone(),
            workers: sources.workers.clone(),
            journal: sources.journal.clone(),
            failover: sources.failover.clone(),
            failover_families: FailoverFamilies::new()?,
            ports: sources.ports.clone(),
            port_families: PortFamilies::new()?,
            started: sources.started,
            totals: TOTALS
                .iter()
                .map(|&(name, help, read)| Ok((Family::new(name, help, &[], Kind::Counter)?, read)))
                .collect::<prometheus::Result<_>>()?,
            journal_figures: JOURNAL
                .iter()
                .map(|&(name, help, kind, read)| Ok((Family::new(name, help, &[], kind)?, read)))
                .collect::<prometheus::Result<_>>()?,
            latency: latency_desc()?,
            fsync_latency: Desc::new(
                "peregrine_journal_fsync_seconds".into(),
                "How long each fdatasync of the lease journal took: a commit waits for one, and \
                 so does every reply that depends on it."
                    .into(),
                vec![],
                HashMap::new(),
            )?,
            held_replies: by_worker(
                "peregrine_worker_held_replies",
                "Replies waiting for the journal to commit their lease, by worker.",
                Kind::Gauge,
            )?,
            last_burst: by_worker(
                "peregrine_worker_rx_burst_frames",
                "Frames the worker's last receive burst brought: at the burst size (32) the \
                 worker is saturated and frames queue in its ring.",
                Kind::Gauge,
            )?,
            messages_in: Family::new(
                "peregrine_dhcp_messages_received_total",
                "DHCP messages received, by message type (other: no or unknown type).",
                &["type"],
                Kind::Counter,
            )?,
            messages_out: Family::new(
                "peregrine_dhcp_messages_sent_total",
                "DHCP messages sent, by message type.",
                &["type"],
                Kind::Counter,
            )?,
            drops: Family::new(
                "peregrine_drops_total",
                "Frames dropped, by reason: received frames left unanswered, and replies not sent.",
                &["reason"],
                Kind::Counter,
            )?,
            worker_frames: by_worker(
                "peregrine_worker_frames_received_total",
                "Frames received, by worker.",
                Kind::Counter,
            )?,
            worker_busy: by_worker(
                "peregrine_worker_busy_seconds_total",
                "Time the worker spent on loop turns that brought frames, by worker: what they \
                 cost, also where the worker polls and its core is busy whatever the load.",
                Kind::Counter,
            )?,
            handoff: Family::new(
                "peregrine_worker_handoff_frames_total",
                "DHCP requests handed between workers of one interface to the worker owning \
                 their client, by worker: out (handed to another), in (handed here), \
                 ring_full (kept here: the owner's ring was full).",
                &["worker", "direction"],
                Kind::Counter,
            )?,
            ping_checks: Family::new(
                "peregrine_ping_checks_total",
                "Ping checks of addresses about to be offered: sent (probes: ICMP echo through \
                 the relay, or ARP), answered (the address was in use: it left service and \
                 another was offered).",
                &["result"],
                Kind::Counter,
            )?,
            probes_waiting: by_worker(
                "peregrine_worker_probes_waiting",
                "OFFERs waiting for their ping check, by worker.",
                Kind::Gauge,
            )?,
            pools: Family::new(
                "peregrine_pool_addresses",
                "Addresses of each pool, by state (total: every address of the pool).",
                &["scope", "pool", "state"],
                Kind::Gauge,
            )?,
            uptime: Family::new(
                "peregrine_uptime_seconds",
                "Seconds since the server started.",
                &[],
                Kind::Gauge,
            )?,
            options_left_out: Family::new(
                "peregrine_client_options_left_out_total",
                "Grants whose client options (host name, FQDN, vendor class, option 82) did not \
                 all fit the 128 bytes a lease keeps: those left out are not kept or replicated.",
                &[],
                Kind::Counter,
            )?,
        })
    }

    /// The sum of one counter over every worker.
    fn sum(&self, read: impl Fn(&WorkerStats) -> u64) -> u64 {
        // Counters wrap (they are written with a wrapping add); so does their sum.
        self.workers
            .iter()
            .fold(0, |sum, w| sum.wrapping_add(read(w)))
    }

    /// One sample per worker.
    fn per_worker(&self, family: &Family, read: impl Fn(&WorkerStats) -> u64) -> MetricFamily {
        family.family(
            self.workers
                .iter()
                .enumerate()
                .map(|(i, w)| family.sample(&[&i.to_string()], value(read(w))))
                .collect(),
        )
    }

    /// Hand-off counters, three per worker.
    fn handoff(&self) -> MetricFamily {
        let directions: [(&str, ReadWorker); 3] = [
            ("out", |w| w.handed_off.get()),
            ("in", |w| w.handed_in.get()),
            ("ring_full", |w| w.handoff_full.get()),
        ];
        let mut samples = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            let worker = i.to_string();
            for (direction, read) in &directions {
                samples.push(self.handoff.sample(&[&worker, direction], value(read(w))));
            }
        }
        self.handoff.family(samples)
    }

    /// The workers' latency histograms merged, as a Prometheus histogram.
    fn latency(&self) -> MetricFamily {
        let mut merged = Latency::histogram();
        for w in &self.workers {
            // Same bounds everywhere: adding cannot fail.
            let _ = merged.add(w.latency.read());
        }
        let bounds = LATENCY_BUCKETS_US.map(|us| value(us) / 1e6);
        let within = LATENCY_BUCKETS_US.map(|us| merged.count_between(0, us * 1000));
        histogram(
            &self.latency,
            &bounds,
            &within,
            merged.len(),
            merged.mean() * value(merged.len()) / 1e9,
        )
    }

    /// Samples by DHCP message type from one of the per-type counter arrays.
    fn by_type(&self, family: &Family, read: impl Fn(&WorkerStats, usize) -> u64) -> MetricFamily {
        let types = std::iter::once((0, OTHER_TYPE))
            .chain(MessageType::ALL.iter().map(|&t| (t as usize, t.as_str())));
        family.family(
            types
                .map(|(i, label)| family.sample(&[label], value(self.sum(|w| read(w, i)))))
                .collect(),
        )
    }
}

impl Collector for StatsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.totals
            .iter()
            .map(|(f, _)| f)
            .chain([
                &self.messages_in,
                &self.messages_out,
                &self.drops,
                &self.worker_frames,
                &self.worker_busy,
                &self.auth.family,
                &self.handoff,
                &self.ping_checks,
                &self.probes_waiting,
                &self.pools,
                &self.uptime,
                &self.options_left_out,
                &self.held_replies,
                &self.last_burst,
            ])
            .chain(self.failover_families.all())
            .chain(self.journal_figures.iter().map(|(f, _)| f))
            .chain(self.port_families.all())
            .chain(self.reloads.iter().flat_map(ReloadFigures::families))
            .map(|f| &f.desc)
            .chain([&self.latency])
            .chain(self.journal.iter().map(|_| &self.fsync_latency))
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out: Vec<MetricFamily> = self
            .totals
            .iter()
            .map(|(f, read)| f.family(vec![f.sample(&[], value(self.sum(read)))]))
            .collect();
        out.push(self.by_type(&self.messages_in, |w, i| w.messages_in[i].get()));
        out.push(self.by_type(&self.messages_out, |w, i| w.messages_out[i].get()));
        // Every reason, zeros included: a series that appears only once it is non-zero makes
        // `rate()` and alerts miss the first increase.
        out.push(
            self.drops.family(
                FrameDrop::all()
                    .map(|d| {
                        self.drops
                            .sample(&[d.as_str()], value(self.sum(|w| w.dropped(d))))
                    })
                    .collect(),
            ),
        );
        out.push(self.per_worker(&self.worker_frames, |w| w.rx_frames.get()));
        out.push(
            self.worker_busy.family(
                self.workers
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let seconds = value(w.busy_ns.get()) / 1e9;
                        self.worker_busy.sample(&[&i.to_string()], seconds)
                    })
                    .collect(),
            ),
        );
        out.push(self.handoff());
        out.push(self.ping_checks.family(vec![
            self.ping_checks
                .sample(&["sent"], value(self.sum(|w| w.probes_sent.get()))),
            self.ping_checks
                .sample(&["answered"], value(self.sum(|w| w.probes_answered.get()))),
        ]));
        out.push(self.per_worker(&self.probes_waiting, |w| w.probes_waiting.get()));
        let mut pools = Vec::new();
        let engine = self.engine.load();
        for p in engine.pool_stats() {
            let index = p.pool.to_string();
            for (state, read) in POOL_STATES {
                pools.push(
                    self.pools
                        .sample(&[&p.scope_name, &index, state], value(read(&p))),
                );
            }
        }
        out.push(self.pools.family(pools));
        out.push(self.uptime.family(vec![
            self.uptime
                .sample(&[], self.started.elapsed().as_secs_f64()),
        ]));
        out.push(self.options_left_out.family(vec![
                self.options_left_out
                    .sample(&[], value(engine.client_options_left_out())),
            ]));
        out.push(self.latency());
        out.push(self.per_worker(&self.held_replies, |w| w.held_replies.get()));
        out.push(self.per_worker(&self.last_burst, |w| w.last_burst.get()));
        if let Some(f) = &self.failover {
            out.extend(self.failover_families.collect(f));
        }
        if let Some(journal) = &self.journal {
            let j = journal.snapshot();
            for (family, read) in &self.journal_figures {
                out.push(family.family(vec![family.sample(&[], read(&j))]));
            }
            out.push(histogram(
                &self.fsync_latency,
                &FSYNC_BUCKETS_US.map(|us| value(us) / 1e6),
                &j.fsync_within,
                j.fsyncs,
                j.fsync_total.as_secs_f64(),
            ));
        }
        if let Some(source) = &self.ports {
            self.port_families.collect(&source.read(), &mut out);
        }
        out.push(self.auth.collect());
        if let Some(reloads) = &self.reloads {
            reloads.collect(&mut out);
        }
        out
    }
}

/// How a port figure is read from [`crate::PortCounters`].
type ReadPort = fn(&crate::PortCounters) -> f64;

/// The ports' figures: name, help, type, and how to read each.
type PortFigure = (&'static str, &'static str, Kind, ReadPort);

/// How a queue figure is read from [`crate::QueueCounters`].
type ReadQueue = fn(&crate::QueueCounters) -> f64;

/// The ports' families: a family per [`PORT_FIGURES`] entry, labelled by interface and port;
/// a family per [`QUEUE_FIGURES`] entry, labelled by queue too; the drivers' own statistics,
/// labelled by their name.
#[derive(Debug)]
struct PortFamilies {
    ports: Vec<(Family, ReadPort)>,
    queues: Vec<(Family, ReadQueue)>,
    xstats: Family,
}

impl PortFamilies {
    fn new() -> prometheus::Result<PortFamilies> {
        Ok(PortFamilies {
            ports: PORT_FIGURES
                .iter()
                .map(|&(name, help, kind, read)| {
                    Ok((Family::new(name, help, &["interface", "port"], kind)?, read))
                })
                .collect::<prometheus::Result<_>>()?,
            queues: QUEUE_FIGURES
                .iter()
                .map(|&(name, help, read)| {
                    let labels = ["interface", "port", "queue"];
                    Ok((Family::new(name, help, &labels, Kind::Counter)?, read))
                })
                .collect::<prometheus::Result<_>>()?,
            xstats: Family::new(
                "peregrine_port_xstats_total",
                "The port driver's extended statistics (DPDK xstats), by the driver's name for \
                 each.",
                &["interface", "port", "stat"],
                Kind::Counter,
            )?,
        })
    }

    fn all(&self) -> impl Iterator<Item = &Family> {
        self.ports
            .iter()
            .map(|(f, _)| f)
            .chain(self.queues.iter().map(|(f, _)| f))
            .chain([&self.xstats])
    }

    fn collect(&self, ports: &[crate::PortCounters], out: &mut Vec<MetricFamily>) {
        for (family, read) in &self.ports {
            let samples = ports
                .iter()
                .map(|p| family.sample(&[&p.interface, &p.port], read(p)))
                .collect();
            out.push(family.family(samples));
        }
        for (family, read) in &self.queues {
            let samples = ports
                .iter()
                .flat_map(|p| {
                    p.queues.iter().enumerate().map(move |(q, counters)| {
                        let q = q.to_string();
                        family.sample(&[&p.interface, &p.port, &q], read(counters))
                    })
                })
                .collect();
            out.push(family.family(samples));
        }
        let samples = ports
            .iter()
            .flat_map(|p| {
                p.xstats.iter().map(|(stat, v)| {
                    self.xstats
                        .sample(&[&p.interface, &p.port, stat], value(*v))
                })
            })
            .collect();
        out.push(self.xstats.family(samples));
    }
}

const QUEUE_FIGURES: [(&str, &str, ReadQueue); 4] = [
    (
        "peregrine_port_queue_rx_packets_total",
        "Frames received on the port's queue (one worker polls each).",
        |q| value(q.rx_packets),
    ),
    (
        "peregrine_port_queue_tx_packets_total",
        "Frames sent from the port's queue.",
        |q| value(q.tx_packets),
    ),
    (
        "peregrine_port_queue_rx_bytes_total",
        "Bytes received on the port's queue.",
        |q| value(q.rx_bytes),
    ),
    (
        "peregrine_port_queue_tx_bytes_total",
        "Bytes sent from the port's queue.",
        |q| value(q.tx_bytes),
    ),
];

const PORT_FIGURES: [PortFigure; 9] = [
    (
        "peregrine_port_link_up",
        "Whether the port's link is up (1) or down (0).",
        Kind::Gauge,
        |p| f64::from(u8::from(p.link_up)),
    ),
    (
        "peregrine_port_rx_packets_total",
        "Frames the port received (its driver's count).",
        Kind::Counter,
        |p| value(p.rx_packets),
    ),
    (
        "peregrine_port_tx_packets_total",
        "Frames the port sent (its driver's count).",
        Kind::Counter,
        |p| value(p.tx_packets),
    ),
    (
        "peregrine_port_rx_bytes_total",
        "Bytes the port received.",
        Kind::Counter,
        |p| value(p.rx_bytes),
    ),
    (
        "peregrine_port_tx_bytes_total",
        "Bytes the port sent.",
        Kind::Counter,
        |p| value(p.tx_bytes),
    ),
    (
        "peregrine_port_rx_missed_total",
        "Frames the port dropped because its receive queues were full: the workers did not keep up.",
        Kind::Counter,
        |p| value(p.rx_missed),
    ),
    (
        "peregrine_port_rx_errors_total",
        "Frames the port received with errors.",
        Kind::Counter,
        |p| value(p.rx_errors),
    ),
    (
        "peregrine_port_tx_errors_total",
        "Frames the port failed to send.",
        Kind::Counter,
        |p| value(p.tx_errors),
    ),
    (
        "peregrine_port_rx_no_buffer_total",
        "Frames lost for want of a receive buffer (the pool was empty).",
        Kind::Counter,
        |p| value(p.rx_no_buffer),
    ),
];
