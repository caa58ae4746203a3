//! From the file schema to the validated model: every check, every default, every inheritance.
//!
//! Each check records its error and goes on, so that one run reports every problem. A value that
//! fails is `None` from there on; checks that depend on it are skipped rather than reporting
//! consequences of the first error. `None` is only ever produced after recording an error.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use toml::Spanned;

use crate::error::Diagnostics;
use crate::file;
use crate::model::{
    AdminState, Backend, Class, ClassMatch, Config, Durability, InterfaceConfig, Ipv4Net,
    LeaseStore, LeaseTimes, Pool, Reservation, ReservationKey, Runtime, Scope, ServerSettings,
};
use crate::options;
use crate::text::{self, PoolRange};

/// `server.lease-time` when not given, in seconds.
const DEFAULT_LEASE_TIME: u32 = 3600;
/// `server.offer-hold` when not given, in seconds.
const DEFAULT_OFFER_HOLD: u32 = 10;
/// `server.decline-probation` when not given, in seconds.
const DEFAULT_DECLINE_PROBATION: u32 = 86_400;
/// `server.cache-threshold` when not given.
const DEFAULT_CACHE_THRESHOLD: f64 = 0.25;
/// The most `dataplane.workers` there may be.
const MAX_WORKERS: u32 = 64;

/// Checks `file` and builds the model; `None` after recording every error in `d`.
pub(crate) fn config(file: &file::File, d: &mut Diagnostics<'_>) -> Option<Config> {
    let defaults = Defaults::new(&file.server);
    let server = server(&file.server, &defaults, d);
    let classes = classes(&file.class, d);
    // Names as written, good or bad: a bad one is reported where it is defined, not again
    // where it is used.
    let known = Known {
        classes: file
            .class
            .iter()
            .map(|c| c.get_ref().name.get_ref().as_str())
            .collect(),
        interfaces: (!file.interface.is_empty()).then(|| {
            file.interface
                .iter()
                .map(|i| i.name.get_ref().as_str())
                .collect()
        }),
    };
    let scopes = scopes(&file.scope, &defaults, &known, d);
    let runtime = runtime(file, d);
    Some(Config {
        server: server?,
        classes: classes?,
        scopes: scopes?,
        runtime: runtime?,
    })
}

/// Names scopes may refer to.
struct Known<'f> {
    /// Every `[[class]]`.
    classes: HashSet<&'f str>,
    /// Every `[[interface]]`; `None` when the file has none, and scopes may name any interface.
    interfaces: Option<HashSet<&'f str>>,
}

fn server(
    s: &file::Server,
    defaults: &Defaults,
    d: &mut Diagnostics<'_>,
) -> Option<ServerSettings> {
    let lease = lease_times(
        d,
        Level::Server,
        &defaults.lease,
        defaults.renew.as_ref(),
        defaults.rebind.as_ref(),
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
    Some(ServerSettings {
        authoritative: defaults.authoritative,
        match_client_id: defaults.match_client_id,
        lease: lease?,
        offer_hold: s.offer_hold.unwrap_or(DEFAULT_OFFER_HOLD),
        decline_probation: s.decline_probation.unwrap_or(DEFAULT_DECLINE_PROBATION),
        cache_threshold: cache_threshold? as f32,
        stash_agent_options: s.stash_agent_options.unwrap_or(true),
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

/// What scopes inherit from `[server]`; timers only when given, the others derive.
struct Defaults {
    lease: Timer,
    renew: Option<Timer>,
    rebind: Option<Timer>,
    authoritative: bool,
    match_client_id: bool,
}

impl Defaults {
    fn new(s: &file::Server) -> Defaults {
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
            authoritative: s.authoritative.unwrap_or(false),
            match_client_id: s.match_client_id.unwrap_or(true),
        }
    }
}

/// Derives the timers not given (T1 50 %, T2 87.5 % of the lease time, as RFC 2131 4.4.5
/// suggests) and checks T1 < T2 < lease time.
///
/// A problem whose most local key lies above `level` is left unreported: every value involved
/// is then the server's, and checking `[server]` reported it already.
fn lease_times(
    d: &mut Diagnostics<'_>,
    level: Level,
    lease: &Timer,
    renew: Option<&Timer>,
    rebind: Option<&Timer>,
) -> Option<LeaseTimes> {
    let renew = renew
        .cloned()
        .unwrap_or_else(|| Timer::derived(lease, 1, 2));
    let rebind = rebind
        .cloned()
        .unwrap_or_else(|| Timer::derived(lease, 7, 8));
    let (culprit, message) = if lease.value == 0 {
        (lease, "must be at least 1 second".to_owned())
    } else if renew.value >= rebind.value {
        let message = format!(
            "{} must be less than {}",
            renew.describe("renew-timer", level),
            rebind.describe("rebind-timer", level)
        );
        (blame(&renew, &rebind), message)
    } else if rebind.value >= lease.value {
        let message = format!(
            "{} must be less than {}",
            rebind.describe("rebind-timer", level),
            lease.describe("lease-time", level)
        );
        (blame(&rebind, lease), message)
    } else {
        return Some(LeaseTimes {
            valid: lease.value,
            renew: renew.value,
            rebind: rebind.value,
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
/// time derives the timers it does not set from it; one that does not inherits all three.
fn scope_lease(
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
    match &lease {
        Some(lease) => lease_times(d, Level::Scope, lease, renew.as_ref(), rebind.as_ref()),
        None => lease_times(
            d,
            Level::Scope,
            &defaults.lease,
            renew.as_ref().or(defaults.renew.as_ref()),
            rebind.as_ref().or(defaults.rebind.as_ref()),
        ),
    }
}

// ---- Classes -----------------------------------------------------------------------------------

fn classes(classes: &[Spanned<file::Class>], d: &mut Diagnostics<'_>) -> Option<Vec<Class>> {
    let mut names = HashMap::new();
    let checked: Vec<_> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| class(&format!("class[{i}]"), c, &mut names, d))
        .collect();
    checked.into_iter().collect()
}

/// A parser from `text`.
type Parser<T> = fn(&str) -> Result<T, String>;

/// An optional key of a table: its name, its value if given, how to parse it.
type Field<'f, T> = (&'static str, Option<&'f Spanned<String>>, Parser<T>);

fn class<'f>(
    key: &str,
    spanned: &'f Spanned<file::Class>,
    names: &mut HashMap<&'f str, String>,
    d: &mut Diagnostics<'_>,
) -> Option<Class> {
    let c = spanned.get_ref();
    let name = unique_name(&c.name, key, names, d);
    let fields: [Field<'_, ClassMatch>; 5] = [
        ("vendor-class-prefix", c.vendor_class_prefix.as_ref(), |s| {
            text::bytes(s).map(ClassMatch::VendorClassPrefix)
        }),
        ("circuit-id-prefix", c.circuit_id_prefix.as_ref(), |s| {
            text::bytes(s).map(ClassMatch::CircuitIdPrefix)
        }),
        ("remote-id-prefix", c.remote_id_prefix.as_ref(), |s| {
            text::bytes(s).map(ClassMatch::RemoteIdPrefix)
        }),
        ("mac-prefix", c.mac_prefix.as_ref(), |s| {
            text::mac_prefix(s).map(ClassMatch::MacPrefix)
        }),
        ("giaddr", c.giaddr.as_ref(), |s| {
            text::network(s).map(ClassMatch::Giaddr)
        }),
    ];
    let conditions: Vec<_> = fields
        .into_iter()
        .filter_map(|(field, value, parse)| {
            Some(d.parse(value?, format_args!("{key}.{field}"), parse))
        })
        .collect();
    if conditions.is_empty() {
        let message = "needs a condition: vendor-class-prefix, circuit-id-prefix, \
                       remote-id-prefix, mac-prefix or giaddr";
        d.at(spanned, key, message);
    }
    let options = options::encode(&c.options, &format!("{key}.options"), d);
    Some(Class {
        name: name?,
        conditions: conditions
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .filter(|c| !c.is_empty())?,
        options: options?,
    })
}

/// A scope's or class's name: not empty, not used by another of its kind.
fn unique_name<'f>(
    name: &'f Spanned<String>,
    key: &str,
    seen: &mut HashMap<&'f str, String>,
    d: &mut Diagnostics<'_>,
) -> Option<String> {
    let key = format!("{key}.name");
    let text = name.get_ref();
    if text.is_empty() {
        d.at(name, key, "must not be empty");
        return None;
    }
    if let Some(first) = seen.get(text.as_str()) {
        d.at(
            name,
            key,
            format_args!("`{text}` is the name of {first} already"),
        );
        return None;
    }
    seen.insert(text, key);
    Some(text.clone())
}

// ---- Scopes ------------------------------------------------------------------------------------

/// A value of one scope, where the cross-scope checks may need to point at it.
struct Placed<T> {
    value: T,
    scope: usize,
    at: usize,
    key: String,
}

/// What the cross-scope checks need, gathered while checking the scopes one by one.
#[derive(Default)]
struct Layout<'f> {
    names: HashMap<&'f str, String>,
    /// Per scope, in file order: its name and its shared network.
    scopes: Vec<(&'f str, Option<&'f str>)>,
    subnets: Vec<Placed<Ipv4Net>>,
    /// First and last address.
    pools: Vec<Placed<(Ipv4Addr, Ipv4Addr)>>,
    relays: Vec<Placed<Ipv4Addr>>,
    interfaces: Vec<Placed<String>>,
}

fn scopes(
    scopes: &[file::Scope],
    defaults: &Defaults,
    known: &Known<'_>,
    d: &mut Diagnostics<'_>,
) -> Option<Vec<Scope>> {
    let mut layout = Layout::default();
    let checked: Vec<_> = scopes
        .iter()
        .enumerate()
        .map(|(i, s)| scope(i, s, defaults, known, &mut layout, d))
        .collect();
    let layout_ok = layout.check(d);
    checked
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .filter(|_| layout_ok)
}

fn scope<'f>(
    i: usize,
    s: &'f file::Scope,
    defaults: &Defaults,
    known: &Known<'_>,
    layout: &mut Layout<'f>,
    d: &mut Diagnostics<'_>,
) -> Option<Scope> {
    let key = format!("scope[{i}]");
    let name = unique_name(&s.name, &key, &mut layout.names, d);
    let shared_network = optional(
        s.shared_network.as_ref(),
        format_args!("{key}.shared-network"),
        text::non_empty,
        d,
    );
    layout.scopes.push((
        s.name.get_ref(),
        s.shared_network
            .as_ref()
            .map(|n| n.get_ref().as_str())
            .filter(|n| !n.is_empty()),
    ));

    let subnet = d.parse(&s.subnet, format_args!("{key}.subnet"), text::network);
    if let Some(subnet) = subnet {
        layout.subnets.push(Placed {
            value: subnet,
            scope: i,
            at: s.subnet.span().start,
            key: format!("{key}.subnet"),
        });
    }
    let relays = place_all(
        &s.relay_addresses,
        &format!("{key}.relay-addresses"),
        text::unicast,
        (i, &mut layout.relays),
        d,
    );
    let interfaces = place_all(
        &s.interfaces,
        &format!("{key}.interfaces"),
        text::non_empty,
        (i, &mut layout.interfaces),
        d,
    );
    let interfaces_known = known.interfaces.as_ref().is_none_or(|known| {
        configured_interfaces(&format!("{key}.interfaces"), &s.interfaces, known, d)
    });
    let server_id = optional(
        s.server_id.as_ref(),
        format_args!("{key}.server-id"),
        text::unicast,
        d,
    );

    let lease = scope_lease(&key, s, defaults, d);

    let pools: Vec<_> = s
        .pool
        .iter()
        .enumerate()
        .map(|(j, p)| {
            pool(
                &format!("{key}.pool[{j}]"),
                i,
                p,
                subnet,
                &known.classes,
                layout,
                d,
            )
        })
        .collect();
    let options = options::encode(&s.options, &format!("{key}.options"), d);
    let mut reserved = Reserved::default();
    let reservations: Vec<_> = s
        .reservation
        .iter()
        .enumerate()
        .map(|(j, r)| {
            reservation(
                &format!("{key}.reservation[{j}]"),
                r,
                subnet,
                &mut reserved,
                d,
            )
        })
        .collect();

    Some(Scope {
        name: name?,
        subnet: subnet?,
        pools: pools.into_iter().collect::<Option<_>>()?,
        relay_addresses: relays?,
        interfaces: interfaces.filter(|_| interfaces_known)?,
        shared_network: shared_network.ok()?,
        server_id: server_id.ok()?,
        lease: lease?,
        authoritative: s.authoritative.unwrap_or(defaults.authoritative),
        match_client_id: s.match_client_id.unwrap_or(defaults.match_client_id),
        state: match s.state {
            file::State::Active => AdminState::Active,
            file::State::Inactive => AdminState::Inactive,
        },
        options: options?,
        reservations: reservations.into_iter().collect::<Option<_>>()?,
    })
}

/// Parses every entry of the list at `key` and places the good ones for the cross-scope checks.
fn place_all<T: Clone>(
    list: &[Spanned<String>],
    key: &str,
    parse: Parser<T>,
    (scope, placed): (usize, &mut Vec<Placed<T>>),
    d: &mut Diagnostics<'_>,
) -> Option<Vec<T>> {
    let values: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(j, entry)| {
            let key = format!("{key}[{j}]");
            let value = d.parse(entry, &key, parse)?;
            placed.push(Placed {
                value: value.clone(),
                scope,
                at: entry.span().start,
                key,
            });
            Some(value)
        })
        .collect();
    values.into_iter().collect()
}

/// Whether every name in the interface list at `key` is an `[[interface]]` of `known`; reports
/// those that are not.
fn configured_interfaces(
    key: &str,
    list: &[Spanned<String>],
    known: &HashSet<&str>,
    d: &mut Diagnostics<'_>,
) -> bool {
    let mut ok = true;
    for (j, entry) in list.iter().enumerate() {
        let name = entry.get_ref();
        // An empty name is reported as such.
        if !name.is_empty() && !known.contains(name.as_str()) {
            d.at(
                entry,
                format_args!("{key}[{j}]"),
                format_args!("unknown interface `{name}`: no [[interface]] has that name"),
            );
            ok = false;
        }
    }
    ok
}

/// An error was recorded.
struct Reported;

/// An optional value: `Ok(None)` when absent, an error when given but bad.
fn optional<T>(
    value: Option<&Spanned<String>>,
    key: impl fmt::Display,
    parse: Parser<T>,
    d: &mut Diagnostics<'_>,
) -> Result<Option<T>, Reported> {
    value
        .map(|value| d.parse(value, key, parse).ok_or(Reported))
        .transpose()
}

fn pool<'f>(
    key: &str,
    scope: usize,
    p: &'f file::Pool,
    subnet: Option<Ipv4Net>,
    classes: &HashSet<&str>,
    layout: &mut Layout<'f>,
    d: &mut Diagnostics<'_>,
) -> Option<Pool> {
    let range_key = format!("{key}.range");
    let range = d
        .parse(&p.range, &range_key, text::pool_range)
        .and_then(|range| {
            let (first, last) = match range {
                PoolRange::Addresses(first, last) => (first, last),
                // The scope's subnet itself stands for its host addresses.
                PoolRange::Block(net) if Some(net) == subnet && has_broadcast(net) => (
                    Ipv4Addr::from_bits(net.addr.to_bits() + 1),
                    Ipv4Addr::from_bits(net.broadcast().to_bits() - 1),
                ),
                PoolRange::Block(net) => (net.addr, net.broadcast()),
            };
            let problem = if first > last {
                Some(format!("first address {first} is above the last, {last}"))
            } else if let Some(net) = subnet {
                if !net.contains(first) || !net.contains(last) {
                    Some(format!(
                        "{first} - {last} is not inside the subnet {}",
                        show(net)
                    ))
                } else {
                    special(net, first)
                        .or_else(|| special(net, last))
                        .map(|what| format!("{first} - {last} includes the {what} address"))
                }
            } else {
                None
            };
            if let Some(problem) = problem {
                d.at(&p.range, &range_key, problem);
                return None;
            }
            layout.pools.push(Placed {
                value: (first, last),
                scope,
                at: p.range.span().start,
                key: range_key.clone(),
            });
            Some((first, last))
        });
    let pool_classes: Vec<_> = p
        .classes
        .iter()
        .enumerate()
        .map(|(j, class)| {
            let name = class.get_ref();
            if classes.contains(name.as_str()) {
                Some(name.clone())
            } else {
                d.at(
                    class,
                    format_args!("{key}.classes[{j}]"),
                    format_args!("unknown class `{name}`"),
                );
                None
            }
        })
        .collect();
    let (first, last) = range?;
    Some(Pool {
        first,
        last,
        classes: pool_classes.into_iter().collect::<Option<_>>()?,
    })
}

/// Reservations seen so far in a scope, with the key of the one that made each.
#[derive(Default)]
struct Reserved {
    clients: HashMap<ReservationKey, String>,
    addresses: HashMap<Ipv4Addr, String>,
}

fn reservation(
    key: &str,
    spanned: &Spanned<file::Reservation>,
    subnet: Option<Ipv4Net>,
    reserved: &mut Reserved,
    d: &mut Diagnostics<'_>,
) -> Option<Reservation> {
    let r = spanned.get_ref();
    let fields: [Field<'_, ReservationKey>; 4] = [
        ("mac", r.mac.as_ref(), |s| {
            text::mac(s).map(ReservationKey::Mac)
        }),
        ("client-id", r.client_id.as_ref(), |s| {
            text::bytes(s).map(ReservationKey::ClientId)
        }),
        ("circuit-id", r.circuit_id.as_ref(), |s| {
            text::bytes(s).map(ReservationKey::CircuitId)
        }),
        ("remote-id", r.remote_id.as_ref(), |s| {
            text::bytes(s).map(ReservationKey::RemoteId)
        }),
    ];
    let given: Vec<_> = fields
        .into_iter()
        .filter_map(|(field, value, parse)| Some((field, value?, parse)))
        .collect();
    let client = match given[..] {
        [] => {
            d.at(
                spanned,
                key,
                "needs one of mac, client-id, circuit-id or remote-id",
            );
            None
        }
        [(field, value, parse)] => {
            let field_key = format!("{key}.{field}");
            d.parse(value, &field_key, parse).and_then(|client| {
                if let Some(first) = reserved.clients.get(&client) {
                    d.at(
                        value,
                        &field_key,
                        format_args!("{first} reserves for this {field} already"),
                    );
                    return None;
                }
                reserved.clients.insert(client.clone(), key.to_owned());
                Some(client)
            })
        }
        [(first, ..), (field, value, _), ..] => {
            let message = format!(
                "give only one of mac, client-id, circuit-id or remote-id, not {first} and {field}"
            );
            d.at(value, format_args!("{key}.{field}"), message);
            None
        }
    };

    let address_key = format!("{key}.address");
    let address = d.parse(&r.address, &address_key, text::ipv4).and_then(|a| {
        let problem = match subnet {
            Some(net) if !net.contains(a) => {
                Some(format!("{a} is not inside the subnet {}", show(net)))
            }
            Some(net) => {
                special(net, a).map(|what| format!("{a} is the {what} address of the subnet"))
            }
            None => None,
        }
        .or_else(|| {
            let first = reserved.addresses.get(&a)?;
            Some(format!("{a} is reserved by {first} already"))
        });
        if let Some(problem) = problem {
            d.at(&r.address, &address_key, problem);
            return None;
        }
        reserved.addresses.insert(a, key.to_owned());
        Some(a)
    });
    let hostname = optional(
        r.hostname.as_ref(),
        format_args!("{key}.hostname"),
        |s| text::domain_name(s).map(|_| s.to_owned()),
        d,
    );
    let options = options::encode(&r.options, &format!("{key}.options"), d);
    Some(Reservation {
        key: client?,
        address: address?,
        hostname: hostname.ok()?,
        options: options?,
    })
}

/// Whether `net` has a network and a broadcast address clients must not get (not a /31, RFC
/// 3021, nor a /32).
fn has_broadcast(net: Ipv4Net) -> bool {
    net.prefix <= 30
}

/// `"network"` or `"broadcast"` if `a` is that address of `net`.
fn special(net: Ipv4Net, a: Ipv4Addr) -> Option<&'static str> {
    if !has_broadcast(net) {
        None
    } else if a == net.addr {
        Some("network")
    } else if a == net.broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

fn show(net: Ipv4Net) -> String {
    format!("{}/{}", net.addr, net.prefix)
}

impl Layout<'_> {
    /// Checks what no single scope can: overlaps, and relays or interfaces that would select two
    /// scopes. Returns whether all is well.
    fn check(&self, d: &mut Diagnostics<'_>) -> bool {
        let mut ok = true;
        let mut report = |at: usize, key: &str, message: String| {
            d.error(Some(at), key, message);
            ok = false;
        };

        // A giaddr in two subnets, or an address in two pools, would be ambiguous.
        let mut subnets: Vec<&Placed<Ipv4Net>> = self.subnets.iter().collect();
        subnets.sort_by_key(|p| (p.value.addr, p.scope));
        for (earlier, later) in overlaps(&subnets, |p| (p.value.addr, p.value.broadcast())) {
            let message = format!(
                "{} overlaps {} of scope `{}`",
                show(later.value),
                show(earlier.value),
                self.scopes[earlier.scope].0
            );
            report(later.at, &later.key, message);
        }
        let mut pools: Vec<&Placed<(Ipv4Addr, Ipv4Addr)>> = self.pools.iter().collect();
        pools.sort_by_key(|p| p.value);
        let pool_overlaps = overlaps(&pools, |p| p.value);
        for (earlier, later) in pool_overlaps {
            let (first, last) = earlier.value;
            let message = format!("overlaps pool {first} - {last} ({})", earlier.key);
            report(later.at, &later.key, message);
        }

        let mut relays: HashMap<Ipv4Addr, &Placed<Ipv4Addr>> = HashMap::new();
        for relay in &self.relays {
            let a = relay.value;
            let owner = subnets
                .partition_point(|s| s.value.addr <= a)
                .checked_sub(1)
                .map(|i| subnets[i])
                .filter(|s| s.value.contains(a));
            if let Some(first) = relays.get(&a) {
                if first.scope == relay.scope {
                    report(
                        relay.at,
                        &relay.key,
                        format!("{a} is listed already, at {}", first.key),
                    );
                } else if !self.same_link(first.scope, relay.scope) {
                    let scope = self.scopes[first.scope].0;
                    let message = format!("{a} selects scope `{scope}` already ({})", first.key);
                    report(relay.at, &relay.key, message);
                }
            } else if let Some(owner) = owner.filter(|o| !self.same_link(o.scope, relay.scope)) {
                let scope = self.scopes[owner.scope].0;
                let message = format!(
                    "{a} lies in subnet {} and so selects scope `{scope}` already",
                    show(owner.value)
                );
                report(relay.at, &relay.key, message);
            }
            relays.entry(a).or_insert(relay);
        }

        let mut interfaces: HashMap<&str, &Placed<String>> = HashMap::new();
        for interface in &self.interfaces {
            let name = interface.value.as_str();
            if let Some(first) = interfaces.get(name) {
                if first.scope == interface.scope {
                    let message = format!("`{name}` is listed already, at {}", first.key);
                    report(interface.at, &interface.key, message);
                } else if !self.same_link(first.scope, interface.scope) {
                    let scope = self.scopes[first.scope].0;
                    let message = format!(
                        "`{name}` serves scope `{scope}` already; scopes on one link belong \
                         to one shared-network"
                    );
                    report(interface.at, &interface.key, message);
                }
            } else {
                interfaces.insert(name, interface);
            }
        }
        ok
    }

    /// Whether two scopes serve the same link: one scope, or one shared network.
    fn same_link(&self, a: usize, b: usize) -> bool {
        a == b || (self.scopes[a].1.is_some() && self.scopes[a].1 == self.scopes[b].1)
    }
}

/// The overlapping pairs among `items`, sorted by start, as (earlier, later) in file order.
///
/// Each item that overlaps one before it is paired with the one reaching furthest; that finds
/// every item involved in some overlap in one pass.
fn overlaps<'p, T>(
    items: &[&'p Placed<T>],
    bounds: impl Fn(&Placed<T>) -> (Ipv4Addr, Ipv4Addr),
) -> Vec<(&'p Placed<T>, &'p Placed<T>)> {
    let mut found = Vec::new();
    let mut furthest: Option<&Placed<T>> = None;
    for &item in items {
        let (start, end) = bounds(item);
        if let Some(reach) = furthest {
            if start <= bounds(reach).1 {
                // Offsets follow file order.
                found.push(if reach.at < item.at {
                    (reach, item)
                } else {
                    (item, reach)
                });
            }
            if end <= bounds(reach).1 {
                continue;
            }
        }
        furthest = Some(item);
    }
    found
}

// ---- Runtime -----------------------------------------------------------------------------------

/// `[dataplane]`, `[[interface]]` and `[control]`, with the defaults of [`Runtime::default`].
///
/// An interface address outside every scope's subnet is no error: it is how a relay-facing
/// interface looks (relays reach it across the network, and their giaddr selects the scope).
fn runtime(file: &file::File, d: &mut Diagnostics<'_>) -> Option<Runtime> {
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
    let interfaces = interfaces(&file.interface, d);
    let control_listen = optional(
        file.control.listen.as_ref(),
        "control.listen",
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
        control_listen: control_listen.ok()?.unwrap_or(defaults.control_listen),
        leases: leases?,
    })
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
        _ => Err(format!(
            "unknown backend `{s}`; the backends are af-packet, udp and tap"
        )),
    }
}

/// Every `[[interface]]`: names and addresses unique.
fn interfaces(list: &[file::Interface], d: &mut Diagnostics<'_>) -> Option<Vec<InterfaceConfig>> {
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut addresses: HashMap<Ipv4Addr, String> = HashMap::new();
    let checked: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let key = format!("interface[{i}]");
            let name_key = format!("{key}.name");
            let name = d
                .parse(&f.name, &name_key, text::interface_name)
                .and_then(|name| {
                    if let Some(first) = names.get(name.as_str()) {
                        let message = format!("`{name}` is the name of {first} already");
                        d.at(&f.name, &name_key, message);
                        return None;
                    }
                    names.insert(f.name.get_ref(), name_key.clone());
                    Some(name)
                });
            let address_key = format!("{key}.address");
            let address = d
                .parse(&f.address, &address_key, text::unicast)
                .and_then(|a| {
                    if let Some(first) = addresses.get(&a) {
                        d.at(
                            &f.address,
                            &address_key,
                            format_args!("{a} is the address of {first} already"),
                        );
                        return None;
                    }
                    addresses.insert(a, key.clone());
                    Some(a)
                });
            Some(InterfaceConfig {
                name: name?,
                address: address?,
                trusted: f.trusted.unwrap_or(false),
            })
        })
        .collect();
    checked.into_iter().collect()
}
