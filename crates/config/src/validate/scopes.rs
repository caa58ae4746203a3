//! `[[scope]]`: each scope with its pools and reservations, then what no single scope can check:
//! overlapping subnets and pools, and relay addresses or interfaces that would select two scopes.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use toml::Spanned;

use super::server::{Defaults, ping_check, scope_lease};
use super::{Field, Known, Parser, optional, unique_name};
use crate::error::Diagnostics;
use crate::file;
use crate::model::{AdminState, Ipv4Net, Pool, Reservation, ReservationKey, Scope, VlanMatch};
use crate::options;
use crate::text::{self, PoolRange};

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
    /// Interfaces of scopes without VLANs: each serves one link's untagged frames (and the
    /// tagged ones no VLAN claims).
    interfaces: Vec<Placed<String>>,
    /// Per VLAN of a scope, per interface of it; placed at the VLAN.
    vlans: Vec<Placed<(String, VlanMatch)>>,
}

pub(super) fn scopes(
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
    layout
        .scopes
        .push((s.name.get_ref(), shared_network_name(s)));

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
    let (interfaces, vlans) = scope_interfaces(&key, i, s, known, layout, d);
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
    let ping_check_ms = scope_ping_check(s, &key, defaults, d);
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
        interfaces: interfaces?,
        vlans: vlans?,
        shared_network: shared_network.ok()?,
        server_id: server_id.ok()?,
        lease: lease?,
        authoritative: s.authoritative.unwrap_or(defaults.authoritative),
        rapid_commit: s.rapid_commit.unwrap_or(defaults.rapid_commit),
        match_client_id: s.match_client_id.unwrap_or(defaults.match_client_id),
        ping_check_ms: ping_check_ms?,
        failover: s.failover.unwrap_or(true),
        state: match s.state {
            file::State::Active => AdminState::Active,
            file::State::Inactive => AdminState::Inactive,
        },
        options: options?,
        reservations: reservations.into_iter().collect::<Option<_>>()?,
    })
}

/// A scope's interfaces, each configured in `known`, and its VLANs on them.
fn scope_interfaces(
    key: &str,
    i: usize,
    s: &file::Scope,
    known: &Known<'_>,
    layout: &mut Layout<'_>,
    d: &mut Diagnostics<'_>,
) -> (Option<Vec<String>>, Option<Vec<VlanMatch>>) {
    let mut placed = Vec::new();
    let interfaces = place_all(
        &s.interfaces,
        &format!("{key}.interfaces"),
        text::non_empty,
        (i, &mut placed),
        d,
    );
    let vlans = scope_vlans(key, i, s, placed, layout, d);
    let known = known.interfaces.as_ref().is_none_or(|known| {
        configured_interfaces(&format!("{key}.interfaces"), &s.interfaces, known, d)
    });
    (interfaces.filter(|_| known), vlans)
}

/// A scope's VLANs. They select among the frames arriving on its interfaces, so a scope with
/// VLANs needs interfaces; its interfaces are then placed per VLAN, and serve no untagged frame.
fn scope_vlans(
    key: &str,
    i: usize,
    s: &file::Scope,
    interfaces: Vec<Placed<String>>,
    layout: &mut Layout<'_>,
    d: &mut Diagnostics<'_>,
) -> Option<Vec<VlanMatch>> {
    if s.vlans.is_empty() {
        layout.interfaces.extend(interfaces);
        return Some(Vec::new());
    }
    if s.interfaces.is_empty() {
        let message = "select among the frames arriving on the scope's interfaces: list them \
                       in interfaces";
        d.at(&s.vlans[0], format_args!("{key}.vlans"), message);
        return None;
    }
    let vlans: Vec<_> = s
        .vlans
        .iter()
        .enumerate()
        .map(|(j, v)| {
            let key = format!("{key}.vlans[{j}]");
            let vlan = d.parse(&file::vlan_text(v), &key, text::vlan)?;
            for interface in &interfaces {
                layout.vlans.push(Placed {
                    value: (interface.value.clone(), vlan),
                    scope: i,
                    at: v.span().start,
                    key: key.clone(),
                });
            }
            Some(vlan)
        })
        .collect();
    vlans.into_iter().collect()
}

/// The shared network a scope names, if it names a non-empty one.
fn shared_network_name(s: &file::Scope) -> Option<&str> {
    s.shared_network
        .as_ref()
        .map(|n| n.get_ref().as_str())
        .filter(|n| !n.is_empty())
}

/// The scope's `ping-check-ms`, or the server's.
fn scope_ping_check(
    s: &file::Scope,
    key: &str,
    defaults: &Defaults,
    d: &mut Diagnostics<'_>,
) -> Option<u32> {
    match &s.ping_check_ms {
        Some(v) => ping_check(v, &format!("{key}.ping-check-ms"), d),
        None => Some(defaults.ping_check_ms),
    }
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
        self.check_vlans(d) && ok
    }

    /// Whether no VLAN of an interface selects two links, nor is listed twice by one scope.
    fn check_vlans(&self, d: &mut Diagnostics<'_>) -> bool {
        let mut ok = true;
        let mut first: HashMap<(&str, VlanMatch), &Placed<(String, VlanMatch)>> = HashMap::new();
        for placed in &self.vlans {
            let (name, vlan) = (placed.value.0.as_str(), placed.value.1);
            let Some(earlier) = first.get(&(name, vlan)) else {
                first.insert((name, vlan), placed);
                continue;
            };
            let message = if earlier.scope == placed.scope {
                if earlier.key == placed.key {
                    // The interface is listed twice: reported there.
                    continue;
                }
                format!("VLAN {vlan} is listed already, at {}", earlier.key)
            } else if !self.same_link(earlier.scope, placed.scope) {
                let scope = self.scopes[earlier.scope].0;
                format!(
                    "VLAN {vlan} on `{name}` serves scope `{scope}` already; scopes on one link \
                     belong to one shared-network"
                )
            } else {
                continue;
            };
            d.error(Some(placed.at), &placed.key, message);
            ok = false;
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
