//! Scopes at run time, built from the validated config, and the tables that select them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher, RandomState};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};

use peregrine_config::model::{self, AdminState, Ipv4Net, LeaseTimes, OptionSet, ReservationKey};
use peregrine_wire::dhcp::opt;
use peregrine_wire::ethernet::{VlanTag, VlanTags};

use crate::binding::{Binding, BindingState, ScopeId};
use crate::pool::{Addresses, Pool};
use crate::verdict::InterfaceId;

/// A scope ready to serve.
// Independent switches from the configuration.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) id: ScopeId,
    pub(crate) name: String,
    pub(crate) subnet: Ipv4Net,
    pub(crate) server_id: Option<Ipv4Addr>,
    pub(crate) lease: LeaseTimes,
    pub(crate) authoritative: bool,
    /// Answer a DISCOVER with rapid commit (RFC 4039) by an ACK.
    pub(crate) rapid_commit: bool,
    pub(crate) match_client_id: bool,
    /// Milliseconds to wait for an answer to a probe of an address before offering it; 0 off.
    pub(crate) ping_check_ms: u32,
    active: AtomicBool,
    /// Whether the configuration said active: a reload keeps the run-time state of a scope
    /// whose configured state did not change.
    pub(crate) configured_active: bool,
    /// Scope options with option 1 (subnet mask) added.
    pub(crate) options: OptionSet,
    /// Dynamic pools first, then (if any reservation lies outside them) a reserved-only list.
    pub(crate) pools: Vec<Pool>,
    pub(crate) reservations: Reservations,
    /// Index of this scope's link (shared network) in [`Selector::links`].
    pub(crate) link: usize,
    /// Shared with the failover partner, if there is one (`failover` in the config).
    pub(crate) shared: bool,
}

impl Scope {
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
    }

    /// Our server identifier toward a client of this scope.
    pub(crate) fn server_id(&self, meta: &crate::verdict::RxMeta) -> Ipv4Addr {
        self.server_id.unwrap_or(meta.local_ip)
    }

    /// The pool holding `a`, and where.
    pub(crate) fn locate(&self, a: Ipv4Addr) -> Option<(usize, crate::pool::SlotRef)> {
        self.pools
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.locate(a).map(|at| (i, at)))
    }
}

/// A scope's reservations, indexed by every key kind.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    pub(crate) list: Vec<model::Reservation>,
    by_mac: HashMap<[u8; 6], usize, RandomState>,
    by_client_id: HashMap<Vec<u8>, usize, RandomState>,
    by_circuit_id: HashMap<Vec<u8>, usize, RandomState>,
    by_remote_id: HashMap<Vec<u8>, usize, RandomState>,
    by_address: HashMap<Ipv4Addr, usize, RandomState>,
}

/// What a request offers to match reservations against.
pub(crate) struct ReservationProbe<'a> {
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) client_id: Option<&'a [u8]>,
    pub(crate) circuit_id: Option<&'a [u8]>,
    pub(crate) remote_id: Option<&'a [u8]>,
}

impl Reservations {
    fn new(list: Vec<model::Reservation>) -> Reservations {
        let mut r = Reservations {
            list,
            ..Reservations::default()
        };
        for (i, res) in r.list.iter().enumerate() {
            match &res.key {
                ReservationKey::Mac(m) => r.by_mac.insert(*m, i),
                ReservationKey::ClientId(c) => r.by_client_id.insert(c.clone(), i),
                ReservationKey::CircuitId(c) => r.by_circuit_id.insert(c.clone(), i),
                ReservationKey::RemoteId(c) => r.by_remote_id.insert(c.clone(), i),
            };
            r.by_address.insert(res.address, i);
        }
        r
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The reservation for this client, most specific key first: client id, MAC, then the
    /// relay's circuit id and remote id.
    pub(crate) fn find(&self, p: &ReservationProbe<'_>) -> Option<usize> {
        if self.list.is_empty() {
            return None;
        }
        p.client_id
            .and_then(|c| self.by_client_id.get(c))
            .or_else(|| p.mac.and_then(|m| self.by_mac.get(&m)))
            .or_else(|| p.circuit_id.and_then(|c| self.by_circuit_id.get(c)))
            .or_else(|| p.remote_id.and_then(|c| self.by_remote_id.get(c)))
            .copied()
    }

    /// The reservation of `a`, if it is reserved.
    pub(crate) fn of_address(&self, a: Ipv4Addr) -> Option<usize> {
        if self.list.is_empty() {
            None
        } else {
            self.by_address.get(&a).copied()
        }
    }
}

/// Per-pool lock shard counts.
pub(crate) fn shard_count_for(len: u32, wanted: u32) -> u32 {
    // Small pools need no more shards than they have addresses worth of contention.
    wanted.min(len.div_ceil(16).max(1))
}

pub(crate) fn build_scope(
    id: ScopeId,
    s: &model::Scope,
    class_bits: &HashMap<&str, u32>,
    link: usize,
    shards: u32,
) -> Scope {
    let mut pools: Vec<Pool> = s
        .pools
        .iter()
        .map(|p| {
            let (first, last) = (p.first.to_bits(), p.last.to_bits());
            let classes = p.classes.iter().fold(0, |m, c| {
                m | class_bits.get(c.as_str()).copied().unwrap_or(0)
            });
            let len = last - first + 1;
            Pool::new(
                Addresses::Range { first, len },
                classes,
                true,
                shard_count_for(len, shards),
            )
        })
        .collect();
    let outside: Vec<u32> = {
        let mut v: Vec<u32> = s
            .reservations
            .iter()
            .map(|r| r.address)
            .filter(|a| !pools.iter().any(|p| p.contains(*a)))
            .map(Ipv4Addr::to_bits)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if !outside.is_empty() {
        pools.push(Pool::new(Addresses::List(outside.into()), 0, false, 1));
    }
    let reservations = Reservations::new(s.reservations.clone());
    // Reserved addresses leave the free lists: only their client may have them.
    for res in &reservations.list {
        for pool in &pools {
            if let Some(at) = pool.locate(res.address) {
                let mut shard = pool.lock(at.shard);
                shard.unlink(at.slot);
                shard.set(
                    at.slot,
                    Binding {
                        state: BindingState::Reserved,
                        ..Binding::FREE
                    },
                );
            }
        }
    }
    for pool in pools.iter().filter(|p| !p.dynamic) {
        for k in 0..pool.shard_count() {
            // Reserved-only lists never feed dynamic allocation.
            while pool.lock(k).pop_free().is_some() {}
        }
    }
    let mut options = s.options.clone();
    if options.get(opt::SUBNET_MASK).is_none() {
        options.set(opt::SUBNET_MASK, s.subnet.mask().octets().to_vec());
    }
    Scope {
        id,
        name: s.name.clone(),
        subnet: s.subnet,
        server_id: s.server_id,
        lease: s.lease,
        authoritative: s.authoritative,
        rapid_commit: s.rapid_commit,
        match_client_id: s.match_client_id,
        ping_check_ms: s.ping_check_ms,
        active: AtomicBool::new(s.state == AdminState::Active),
        configured_active: s.state == AdminState::Active,
        options,
        pools,
        reservations,
        link,
        shared: s.failover,
    }
}

/// A multiplicative hash for the selector's tables. They are built from the config and only
/// read per packet, so a crafted giaddr cannot make them degrade: no keyed hash needed.
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = (u64::from(v) ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type AddrMap = HashMap<u32, ScopeId, BuildHasherDefault<AddrHasher>>;

/// The inner VLAN id of a [`Selector::vlans`] key that matches any (or no) inner tag: 0 is no
/// VLAN id a scope may name.
const ANY_INNER: u16 = 0;

/// A [`Selector::vlans`] key: interface index, outer VLAN id, inner VLAN id or [`ANY_INNER`].
fn vlan_key(interface: usize, outer: u16, inner: u16) -> u64 {
    (interface as u64) << 32 | u64::from(outer) << 16 | u64::from(inner)
}

/// Finds the scope for an address, and the scopes sharing its link.
#[derive(Debug, Default)]
pub(crate) struct Selector {
    /// Extra relay addresses (outside every subnet) that select a scope.
    relays: AddrMap,
    /// Subnets by prefix length, longest first: a handful of hash lookups per packet however
    /// many scopes there are.
    by_prefix: Vec<(u8, AddrMap)>,
    /// Scopes on each link: a shared network lists all its subnets, others only themselves.
    pub(crate) links: Vec<Vec<ScopeId>>,
    /// Scopes served directly on each interface: its untagged frames, and the tagged ones no
    /// VLAN of `vlans` claims.
    pub(crate) interfaces: Vec<(String, Vec<ScopeId>)>,
    /// The scope a VLAN selects on an interface (see [`vlan_key`]).
    vlans: HashMap<u64, ScopeId, BuildHasherDefault<AddrHasher>>,
}

impl Selector {
    /// The tables for `scopes`, whose ids are `ids`; interface ids are positions in `interfaces` (the configured
    /// ones, which a reload cannot change), then any other a scope names.
    pub(crate) fn build(
        interfaces: &[model::InterfaceConfig],
        scopes: &[model::Scope],
        ids: &[ScopeId],
    ) -> (Selector, Vec<usize>) {
        let mut sel = Selector::default();
        for i in interfaces {
            if sel.interfaces.iter().all(|(n, _)| *n != i.name) {
                sel.interfaces.push((i.name.clone(), Vec::new()));
            }
        }
        let mut link_of = Vec::with_capacity(scopes.len());
        let mut shared: HashMap<&str, usize> = HashMap::new();
        for (s, &id) in scopes.iter().zip(ids) {
            let link = if let Some(name) = &s.shared_network {
                *shared.entry(name.as_str()).or_insert_with(|| {
                    sel.links.push(Vec::new());
                    sel.links.len() - 1
                })
            } else {
                sel.links.push(Vec::new());
                sel.links.len() - 1
            };
            sel.links[link].push(id);
            link_of.push(link);
            for r in &s.relay_addresses {
                sel.relays.insert(r.to_bits(), id);
            }
            if let Some((_, m)) = sel
                .by_prefix
                .iter_mut()
                .find(|(p, _)| *p == s.subnet.prefix)
            {
                m.insert(s.subnet.addr.to_bits(), id);
            } else {
                let mut m = AddrMap::default();
                m.insert(s.subnet.addr.to_bits(), id);
                sel.by_prefix.push((s.subnet.prefix, m));
            }
            for ifname in &s.interfaces {
                let at = sel
                    .interfaces
                    .iter()
                    .position(|(n, _)| n == ifname)
                    .unwrap_or_else(|| {
                        sel.interfaces.push((ifname.clone(), Vec::new()));
                        sel.interfaces.len() - 1
                    });
                if s.vlans.is_empty() {
                    sel.interfaces[at].1.push(id);
                }
                for v in &s.vlans {
                    let key = vlan_key(at, v.outer, v.inner.unwrap_or(ANY_INNER));
                    sel.vlans.entry(key).or_insert(id);
                }
            }
        }
        sel.by_prefix
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(*prefix));
        (sel, link_of)
    }

    /// The scope for a frame that arrived on `interface` with `tags`: the one its VLANs select
    /// (outer and inner, then outer alone), else the interface's.
    pub(crate) fn on_interface(&self, interface: InterfaceId, tags: &VlanTags) -> Option<ScopeId> {
        let at = usize::from(interface.0);
        if !self.vlans.is_empty()
            && let [outer, rest @ ..] = tags.as_slice()
        {
            let inner = rest.first().map(VlanTag::vid);
            let exact = inner.and_then(|i| self.vlans.get(&vlan_key(at, outer.vid(), i)));
            let found = exact.or_else(|| self.vlans.get(&vlan_key(at, outer.vid(), ANY_INNER)));
            if let Some(id) = found {
                return Some(*id);
            }
        }
        self.interfaces
            .get(at)
            .and_then(|(_, v)| v.first().copied())
    }

    /// The scope whose subnet holds `a` (longest prefix).
    pub(crate) fn by_address(&self, a: Ipv4Addr) -> Option<ScopeId> {
        let bits = a.to_bits();
        self.by_prefix.iter().find_map(|(prefix, m)| {
            let mask = if *prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(*prefix))
            };
            m.get(&(bits & mask)).copied()
        })
    }

    /// The scope a relay address selects: a configured relay address, or a subnet holding it.
    pub(crate) fn by_relay(&self, giaddr: Ipv4Addr) -> Option<ScopeId> {
        self.relays
            .get(&giaddr.to_bits())
            .copied()
            .or_else(|| self.by_address(giaddr))
    }
}
