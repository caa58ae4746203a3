//! Counters and latency histograms per phase of an exchange, and the report made from them:
//! a table for people, JSON and CSV for scripts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

/// The phases whose latency and losses are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Phase {
    /// DISCOVER → OFFER.
    Discover,
    /// REQUEST (SELECTING) → ACK.
    Request,
    /// The whole DORA: first DISCOVER → ACK.
    Dora,
    /// REQUEST (RENEWING) → ACK.
    Renew,
    /// REQUEST (INIT-REBOOT) → ACK.
    Reboot,
    /// RELEASE (no reply expected; only sends are counted).
    Release,
}

impl Phase {
    /// Every phase, in report order.
    pub const ALL: [Phase; 6] = [
        Phase::Discover,
        Phase::Request,
        Phase::Dora,
        Phase::Renew,
        Phase::Reboot,
        Phase::Release,
    ];

    /// The name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Discover => "discover-offer",
            Phase::Request => "request-ack",
            Phase::Dora => "dora",
            Phase::Renew => "renew",
            Phase::Reboot => "init-reboot",
            Phase::Release => "release",
        }
    }
}

/// Counters and a latency histogram of one phase.
#[derive(Debug, Clone)]
pub struct PhaseStats {
    /// Messages sent, retransmissions included (for `dora`: exchanges begun).
    pub sent: u64,
    /// Exchanges that got their answer (OFFER or ACK).
    pub answered: u64,
    /// Exchanges answered with a NAK.
    pub naks: u64,
    /// Retransmission timers that fired (each one a lost or late answer).
    pub timeouts: u64,
    /// Exchanges given up unanswered.
    pub drops: u64,
    /// Latency of answered exchanges, microseconds, from the first transmission.
    pub latency_us: Histogram<u64>,
}

impl PhaseStats {
    fn new() -> Self {
        Self {
            sent: 0,
            answered: 0,
            naks: 0,
            timeouts: 0,
            drops: 0,
            // 1 µs to 5 minutes at 3 significant digits: about 50 KB, allocated once.
            latency_us: Histogram::new_with_bounds(1, 300_000_000, 3)
                .expect("constant histogram bounds are valid"),
        }
    }

    /// Records one answered exchange that took `ns`.
    #[inline]
    pub fn answered_after(&mut self, ns: u64) {
        self.answered += 1;
        self.latency_us.saturating_record((ns / 1000).max(1));
    }
}

/// All phases' statistics, plus replies that matched nothing.
#[derive(Debug, Clone)]
pub struct Stats {
    phases: Vec<PhaseStats>,
    /// Replies whose xid was ours but came late, twice, or did not fit the client's state.
    pub unexpected: u64,
    /// Frames received that were not a DHCP reply to us.
    pub foreign: u64,
    /// Frames the TX queue would not take (the kernel refused them).
    pub tx_refused: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self {
            phases: Phase::ALL.iter().map(|_| PhaseStats::new()).collect(),
            unexpected: 0,
            foreign: 0,
            tx_refused: 0,
        }
    }

    /// The statistics of `p`.
    #[inline]
    pub fn phase(&mut self, p: Phase) -> &mut PhaseStats {
        &mut self.phases[p as usize]
    }

    /// The statistics of `p`, read-only.
    pub fn get(&self, p: Phase) -> &PhaseStats {
        &self.phases[p as usize]
    }
}

/// One phase in a report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseReport {
    /// Phase name.
    pub phase: &'static str,
    /// Messages sent (retransmissions included).
    pub sent: u64,
    /// Exchanges answered.
    pub answered: u64,
    /// NAKs.
    pub naks: u64,
    /// Retransmission timers that fired.
    pub timeouts: u64,
    /// Exchanges given up.
    pub drops: u64,
    /// Drops as a percentage of exchanges begun.
    pub drop_pct: f64,
    /// Answered exchanges per second of the send period.
    pub answered_per_s: f64,
    /// Latency percentiles and maximum, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Free-form label given on the command line (e.g. the server's name).
    pub label: String,
    /// Scenario name.
    pub scenario: String,
    /// Backend name.
    pub backend: String,
    /// Target exchanges per second (0: as fast as possible).
    pub target_rate: u64,
    /// Distinct clients.
    pub clients: u32,
    /// Relays (giaddrs).
    pub relays: u32,
    /// Seconds during which new exchanges were begun.
    pub send_s: f64,
    /// Seconds from the first send to the end of the drain.
    pub total_s: f64,
    /// Exchanges begun per second of the send period.
    pub offered_per_s: f64,
    /// Clients holding a lease at the end.
    pub leased_clients: u64,
    /// Replies that matched no pending exchange.
    pub unexpected: u64,
    /// Frames that were not replies to us.
    pub foreign: u64,
    /// Frames the kernel refused to send.
    pub tx_refused: u64,
    /// Frames that reached the generator's side and were dropped before it read them (its
    /// AF_PACKET ring full, or its DPDK port out of receive buffers): replies the server did
    /// send, lost by the generator. `None` where the backend cannot tell (UDP).
    pub rx_dropped: Option<u64>,
    /// CPU of the generator, percent of one core, over the whole run. It busy-polls while
    /// the next burst is due within 1 ms, so this is not a measure of its load.
    pub generator_cpu_pct: f64,
    /// Share of the run the generator's loop spent in rounds that did work (received, sent or
    /// fired a timer), percent: near 100 the generator is the bottleneck.
    pub generator_busy_pct: f64,
    /// CPU of the server process (`--server-pid`), percent of one core over the send period.
    pub server_cpu_pct: Option<f64>,
    /// Avalanche: seconds until 50/90/99/100 % of the clients held a lease.
    pub lease_times_s: Option<[Option<f64>; 4]>,
    /// Per phase; phases with nothing sent are left out.
    pub phases: Vec<PhaseReport>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Report {
    /// The per-phase part of a report from `stats`, over a send period of `send_s` seconds.
    pub fn phases_of(stats: &Stats, send_s: f64) -> Vec<PhaseReport> {
        Phase::ALL
            .iter()
            .filter(|p| stats.get(**p).sent > 0)
            .map(|&p| {
                let s = stats.get(p);
                let h = &s.latency_us;
                let begun = s.answered + s.naks + s.drops;
                let any = !h.is_empty();
                let q = |x: f64| if any { ms(h.value_at_quantile(x)) } else { 0.0 };
                PhaseReport {
                    phase: p.name(),
                    sent: s.sent,
                    answered: s.answered,
                    naks: s.naks,
                    timeouts: s.timeouts,
                    drops: s.drops,
                    drop_pct: if begun == 0 {
                        0.0
                    } else {
                        100.0 * s.drops as f64 / begun as f64
                    },
                    answered_per_s: if send_s > 0.0 {
                        s.answered as f64 / send_s
                    } else {
                        0.0
                    },
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    p999_ms: q(0.999),
                    max_ms: if any { ms(h.max()) } else { 0.0 },
                    mean_ms: if any { h.mean() / 1000.0 } else { 0.0 },
                }
            })
            .collect()
    }

    /// The phase named `name`, if it ran.
    pub fn phase(&self, name: &str) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.phase == name)
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} {} on {}: target {}/s, offered {:.0}/s over {:.2} s, {} clients, {} relays, \
             {} leased at the end",
            self.label,
            self.scenario,
            self.backend,
            self.target_rate,
            self.offered_per_s,
            self.send_s,
            self.clients,
            self.relays,
            self.leased_clients
        );
        let _ = writeln!(
            s,
            "{:<15} {:>10} {:>10} {:>10} {:>7} {:>9} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8}",
            "phase",
            "sent",
            "answered",
            "answered/s",
            "naks",
            "timeouts",
            "drops",
            "drop%",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for p in &self.phases {
            let _ = writeln!(
                s,
                "{:<15} {:>10} {:>10} {:>10.0} {:>7} {:>9} {:>8} {:>7.2} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                p.phase,
                p.sent,
                p.answered,
                p.answered_per_s,
                p.naks,
                p.timeouts,
                p.drops,
                p.drop_pct,
                p.p50_ms,
                p.p99_ms,
                p.p999_ms,
                p.max_ms
            );
        }
        let _ = write!(
            s,
            "generator CPU {:.0} % (busy {:.0} %), server CPU {}, unexpected replies {}, \
             foreign frames {}, TX refused {}, RX dropped here {}",
            self.generator_cpu_pct,
            self.generator_busy_pct,
            self.server_cpu_pct
                .map_or_else(|| "not measured".to_owned(), |c| format!("{c:.0} %")),
            self.unexpected,
            self.foreign,
            self.tx_refused,
            self.rx_dropped
                .map_or_else(|| "not known".to_owned(), |n| n.to_string())
        );
        if let Some(t) = self.lease_times_s {
            let f = |x: Option<f64>| x.map_or_else(|| "never".to_owned(), |v| format!("{v:.2} s"));
            let _ = write!(
                s,
                "\nleased: 50 % at {}, 90 % at {}, 99 % at {}, 100 % at {}",
                f(t[0]),
                f(t[1]),
                f(t[2]),
                f(t[3])
            );
        }
        s
    }

    /// Writes the report as pretty JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let f =
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, self)?;
        writeln!(w)?;
        Ok(())
    }

    /// Appends one CSV row per phase to `path`, writing the header first if the file is new or
    /// empty, so that runs of a ladder accumulate in one file.
    pub fn append_csv(&self, path: &Path) -> Result<()> {
        let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(f);
        if fresh {
            w.write_record(CsvRow::HEADER)?;
        }
        for p in &self.phases {
            let opt = |v: Option<f64>| v.map_or_else(String::new, |c| format!("{c:.1}"));
            let record: [String; 24] = [
                self.label.clone(),
                self.scenario.clone(),
                self.backend.clone(),
                self.target_rate.to_string(),
                format!("{:.1}", self.offered_per_s),
                self.clients.to_string(),
                self.relays.to_string(),
                format!("{:.3}", self.send_s),
                opt(self.server_cpu_pct),
                format!("{:.1}", self.generator_cpu_pct),
                format!("{:.1}", self.generator_busy_pct),
                p.phase.to_owned(),
                p.sent.to_string(),
                p.answered.to_string(),
                p.naks.to_string(),
                p.timeouts.to_string(),
                p.drops.to_string(),
                format!("{:.3}", p.drop_pct),
                format!("{:.1}", p.answered_per_s),
                format!("{:.3}", p.p50_ms),
                format!("{:.3}", p.p99_ms),
                format!("{:.3}", p.p999_ms),
                format!("{:.3}", p.max_ms),
                format!("{:.3}", p.mean_ms),
            ];
            w.write_record(&record)?;
        }
        w.flush()?;
        Ok(())
    }
}

/// The CSV output: the run's parameters, then one phase per row.
struct CsvRow;

impl CsvRow {
    const HEADER: [&'static str; 24] = [
        "label",
        "scenario",
        "backend",
        "target_rate",
        "offered_per_s",
        "clients",
        "relays",
        "send_s",
        "server_cpu_pct",
        "generator_cpu_pct",
        "generator_busy_pct",
        "phase",
        "sent",
        "answered",
        "naks",
        "timeouts",
        "drops",
        "drop_pct",
        "answered_per_s",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "mean_ms",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_report_percentiles_and_drop_share() {
        let mut s = Stats::new();
        let d = s.phase(Phase::Discover);
        d.sent = 100;
        for i in 1..=98u64 {
            d.answered_after(i * 1_000_000); // 1..98 ms
        }
        d.drops = 2;
        let r = Report::phases_of(&s, 2.0);
        assert_eq!(r.len(), 1);
        let p = &r[0];
        assert_eq!((p.phase, p.answered, p.drops), ("discover-offer", 98, 2));
        assert!((p.drop_pct - 2.0).abs() < 1e-9);
        assert!((p.answered_per_s - 49.0).abs() < 1e-9);
        assert!((p.p50_ms - 49.0).abs() < 0.1, "{}", p.p50_ms);
        assert!((p.max_ms - 98.0).abs() < 0.1, "{}", p.max_ms);
    }
}
