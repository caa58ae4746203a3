//! `[server]`: its settings, and the lease times and timers, which scopes inherit from it.

use toml::Spanned;

use crate::error::Diagnostics;
use crate::file;
use crate::model::{LeaseTimes, ServerSettings};
use crate::options;
use crate::text;

/// `server.lease-time` when not given, in seconds.
const DEFAULT_LEASE_TIME: u32 = 3600;
/// `server.offer-hold` when not given, in seconds.
const DEFAULT_OFFER_HOLD: u32 = 10;
/// `server.decline-probation` when not given, in seconds.
const DEFAULT_DECLINE_PROBATION: u32 = 86_400;
/// `server.cache-threshold` when not given.
const DEFAULT_CACHE_THRESHOLD: f64 = 0.25;

pub(super) fn server(
    s: &file::Server,
    defaults: &Defaults,
    d: &mut Diagnostics<'_>,
) -> Option<ServerSettings> {
    let lease = lease_times(
        d,
        Level::Server,
        &Given {
            lease: &defaults.lease,
            renew: defaults.renew.as_ref(),
            rebind: defaults.rebind.as_ref(),
            min: defaults.min.as_ref(),
            max: defaults.max.as_ref(),
        },
    );
    let cache_threshold = match &s.cache_threshold {
        None => Some(DEFAULT_CACHE_THRESHOLD),
        Some(v) if (0.0..=1.0).contains(v.get_ref()) => Some(*v.get_ref()),
        Some(v) => {
            d.at(v, "server.cache-threshold", "must be between 0 and 1");
            None
        }
    };
    let options = options::encode(&s.options, "server.options", d);
    if let Some(v) = &s.ping_check_ms {
        ping_check(v, "server.ping-check-ms", d);
    }
    let requesters: Vec<_> = s
        .leasequery_requesters
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let key = format!("server.leasequery-requesters[{i}]");
            d.parse(v, key, text::address_or_network)
        })
        .collect();
    Some(ServerSettings {
        authoritative: defaults.authoritative,
        match_client_id: defaults.match_client_id,
        rapid_commit: defaults.rapid_commit,
        lease: lease?,
        offer_hold: s.offer_hold.unwrap_or(DEFAULT_OFFER_HOLD),
        decline_probation: s.decline_probation.unwrap_or(DEFAULT_DECLINE_PROBATION),
        cache_threshold: cache_threshold? as f32,
        stash_agent_options: s.stash_agent_options.unwrap_or(true),
        ping_check_ms: defaults.ping_check_ms,
        leasequery_requesters: requesters.into_iter().collect::<Option<_>>()?,
        options: options?,
    })
}

// ---- Lease times -------------------------------------------------------------------------------

/// The part of the file a value was set in; an error names the most local key involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Server,
    Scope,
}

/// Where a lease time or timer was written.
#[derive(Clone)]
struct Site {
    at: usize,
    key: String,
    level: Level,
}

/// A lease time or timer, and where it comes from: a derived timer has the site of the lease
/// time it was derived from; the built-in default lease time has none.
#[derive(Clone)]
struct Timer {
    value: u32,
    site: Option<Site>,
    derived: bool,
}

impl Timer {
    fn set(value: &Spanned<u32>, key: String, level: Level) -> Timer {
        Timer {
            value: *value.get_ref(),
            site: Some(Site {
                at: value.span().start,
                key,
                level,
            }),
            derived: false,
        }
    }

    /// `numerator / denominator` of `lease`.
    fn derived(lease: &Timer, numerator: u64, denominator: u64) -> Timer {
        Timer {
            value: (u64::from(lease.value) * numerator / denominator) as u32,
            site: lease.site.clone(),
            derived: true,
        }
    }

    fn level(&self) -> Option<Level> {
        self.site.as_ref().map(|s| s.level)
    }

    fn describe(&self, name: &str, level: Level) -> String {
        if self.derived {
            format!("{name} {} (derived from lease-time)", self.value)
        } else if self.level().is_some_and(|l| l < level) {
            format!("{name} {} (from [server])", self.value)
        } else {
            format!("{name} {}", self.value)
        }
    }
}

/// What scopes inherit from `[server]`; timers and bounds only when given, the others derive.
pub(super) struct Defaults {
    lease: Timer,
    renew: Option<Timer>,
    rebind: Option<Timer>,
    min: Option<Timer>,
    max: Option<Timer>,
    pub(super) authoritative: bool,
    pub(super) match_client_id: bool,
    pub(super) rapid_commit: bool,
    pub(super) ping_check_ms: u32,
}

/// The longest a DISCOVER may wait for a ping check: clients retransmit after about 4 s.
const MAX_PING_CHECK_MS: u32 = 2000;

/// A `ping-check-ms` value, checked against [`MAX_PING_CHECK_MS`].
pub(super) fn ping_check(v: &Spanned<u32>, key: &str, d: &mut Diagnostics<'_>) -> Option<u32> {
    if *v.get_ref() > MAX_PING_CHECK_MS {
        d.at(
            v,
            key,
            format!(
                "at most {MAX_PING_CHECK_MS} ms: clients retransmit a DISCOVER after about 4 s"
            ),
        );
        return None;
    }
    Some(*v.get_ref())
}

impl Defaults {
    pub(super) fn new(s: &file::Server) -> Defaults {
        let set =
            |v: &Spanned<u32>, field: &str| Timer::set(v, format!("server.{field}"), Level::Server);
        Defaults {
            lease: s.lease_time.as_ref().map_or(
                Timer {
                    value: DEFAULT_LEASE_TIME,
                    site: None,
                    derived: false,
                },
                |v| set(v, "lease-time"),
            ),
            renew: s.renew_timer.as_ref().map(|v| set(v, "renew-timer")),
            rebind: s.rebind_timer.as_ref().map(|v| set(v, "rebind-timer")),
            min: s.min_lease_time.as_ref().map(|v| set(v, "min-lease-time")),
            max: s.max_lease_time.as_ref().map(|v| set(v, "max-lease-time")),
            authoritative: s.authoritative.unwrap_or(false),
            match_client_id: s.match_client_id.unwrap_or(true),
            rapid_commit: s.rapid_commit.unwrap_or(false),
            ping_check_ms: s.ping_check_ms.as_ref().map_or(0, |v| *v.get_ref()),
        }
    }
}

/// The values a lease's times come from, those not given derived from `lease`.
struct Given<'t> {
    lease: &'t Timer,
    renew: Option<&'t Timer>,
    rebind: Option<&'t Timer>,
    min: Option<&'t Timer>,
    max: Option<&'t Timer>,
}

/// Derives the timers not given (T1 50 %, T2 87.5 % of the lease time, as RFC 2131 4.4.5
/// suggests; the bounds on what a client may ask, the lease time itself) and checks
/// T1 < T2 < lease time and min-lease-time <= lease time <= max-lease-time.
///
/// A problem whose most local key lies above `level` is left unreported: every value involved
/// is then the server's, and checking `[server]` reported it already.
fn lease_times(d: &mut Diagnostics<'_>, level: Level, given: &Given<'_>) -> Option<LeaseTimes> {
    let lease = given.lease;
    let or_derived = |t: Option<&Timer>, numerator, denominator| {
        t.cloned()
            .unwrap_or_else(|| Timer::derived(lease, numerator, denominator))
    };
    let renew = or_derived(given.renew, 1, 2);
    let rebind = or_derived(given.rebind, 7, 8);
    let min = or_derived(given.min, 1, 1);
    let max = or_derived(given.max, 1, 1);
    let order = |a: &Timer, a_name: &str, b: &Timer, b_name: &str, relation: &str| {
        let message = format!(
            "{} must be {relation} {}",
            a.describe(a_name, level),
            b.describe(b_name, level)
        );
        (blame(a, b).clone(), message)
    };
    let (culprit, message) = if lease.value == 0 {
        (lease.clone(), "must be at least 1 second".to_owned())
    } else if renew.value >= rebind.value {
        order(&renew, "renew-timer", &rebind, "rebind-timer", "less than")
    } else if rebind.value >= lease.value {
        order(&rebind, "rebind-timer", lease, "lease-time", "less than")
    } else if min.value > lease.value {
        order(&min, "min-lease-time", lease, "lease-time", "at most")
    } else if lease.value > max.value {
        order(lease, "lease-time", &max, "max-lease-time", "at most")
    } else {
        return Some(LeaseTimes {
            valid: lease.value,
            renew: renew.value,
            rebind: rebind.value,
            min: min.value.max(1),
            max: max.value,
        });
    };
    if let Some(site) = culprit.site.as_ref().filter(|s| s.level == level) {
        d.error(Some(site.at), &site.key, message);
    }
    None
}

/// The more local of two timers; a tie blames `a`.
fn blame<'t>(a: &'t Timer, b: &'t Timer) -> &'t Timer {
    if b.level() > a.level() { b } else { a }
}

/// A scope's lease times. A lease time and its timers go together: a scope that sets its lease
/// time derives the timers it does not set from it; one that does not inherits all three. The
/// bounds on what a client may ask are each the scope's, else the server's, else the lease time.
pub(super) fn scope_lease(
    key: &str,
    s: &file::Scope,
    defaults: &Defaults,
    d: &mut Diagnostics<'_>,
) -> Option<LeaseTimes> {
    let timer = |value: &Option<Spanned<u32>>, field: &str| {
        value
            .as_ref()
            .map(|v| Timer::set(v, format!("{key}.{field}"), Level::Scope))
    };
    let lease = timer(&s.lease_time, "lease-time");
    let renew = timer(&s.renew_timer, "renew-timer");
    let rebind = timer(&s.rebind_timer, "rebind-timer");
    let min = timer(&s.min_lease_time, "min-lease-time");
    let max = timer(&s.max_lease_time, "max-lease-time");
    let min = min.as_ref().or(defaults.min.as_ref());
    let max = max.as_ref().or(defaults.max.as_ref());
    let given = match &lease {
        Some(lease) => Given {
            lease,
            renew: renew.as_ref(),
            rebind: rebind.as_ref(),
            min,
            max,
        },
        None => Given {
            lease: &defaults.lease,
            renew: renew.as_ref().or(defaults.renew.as_ref()),
            rebind: rebind.as_ref().or(defaults.rebind.as_ref()),
            min,
            max,
        },
    };
    lease_times(d, Level::Scope, &given)
}
