//! The engine: one request in, one verdict out.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use peregrine_config::model::{self, ClassMatch, Config};
use peregrine_wire::dhcp::{BOOTREQUEST, DhcpMessage, MessageType, RelayAgentInfo};

use crate::binding::{Binding, BindingEvent, BindingState, ScopeId, Time};
use crate::clients::{ClientIndex, ClientMap, HashedKey, Loc};
use crate::key::{ClientKey, KeySecret};
use crate::pool::Shard;
use crate::reply::{LeaseGrant, ReplySpec};
use crate::scope::{ReservationProbe, Scope, Selector, build_scope};
use crate::verdict::{DropReason, InterfaceId, RxMeta, Verdict};

/// Tuning that is not DHCP behaviour: how finely state is sharded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Lock shards per pool (fewer for small pools).
    pub pool_shards: u32,
    /// Lock shards of the client index (rounded up to a power of two).
    pub client_shards: u32,
    /// Keys the digests of long client identities. Keep it with the leases: a server restarted
    /// with another secret does not recognise clients whose identity exceeds 30 bytes.
    pub key_secret: KeySecret,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            pool_shards: 16,
            client_shards: 64,
            key_secret: KeySecret::random(),
        }
    }
}

/// Why an engine could not be built from a (valid) configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Classes are kept as bits of a `u32`.
    TooManyClasses(usize),
    /// Scope ids are `u16`.
    TooManyScopes(usize),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::TooManyClasses(n) => {
                write!(f, "{n} client classes configured; at most 32 are supported")
            }
            BuildError::TooManyScopes(n) => {
                write!(f, "{n} scopes configured; at most 65535 are supported")
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Why a binding could not be restored (journal replay, lease import).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// The address is in no pool of the scope named, nor of any scope.
    UnknownAddress(Ipv4Addr),
    /// Another client holds the address.
    Conflict(Ipv4Addr),
}

/// How [`Engine::install`] treats the binding already there.
#[derive(Clone, Copy)]
enum Install {
    /// Another server's lease: refused if another client holds the address.
    Import,
    /// A journal record: applied if its version is newer.
    Replay,
}

/// Utilisation of one pool, for gauges and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Scope of the pool.
    pub scope: ScopeId,
    /// Scope name.
    pub scope_name: String,
    /// Index of the pool in its scope.
    pub pool: usize,
    /// Addresses in the pool.
    pub total: u64,
    /// Leased.
    pub active: u64,
    /// Held by an outstanding OFFER.
    pub offered: u64,
    /// Out of use after a DECLINE.
    pub abandoned: u64,
    /// Reserved for a client that holds no lease now.
    pub reserved: u64,
    /// Available to new clients (including expired and released addresses).
    pub free: u64,
}

/// The DHCPv4 server logic, shared by every worker.
///
/// `handle` takes `&self`: workers on several threads call it on one engine at once. It reads
/// no clock (`now` is passed in), opens no socket, and allocates nothing per request.
#[derive(Debug)]
pub struct Engine {
    settings: model::ServerSettings,
    classes: Vec<model::Class>,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) selector: Selector,
    pub(crate) clients: ClientIndex,
    key_seed: KeySecret,
}

/// One request, decoded, with what the engine derived from it.
pub(crate) struct Request<'r, 'm> {
    pub(crate) now: Time,
    pub(crate) meta: &'r RxMeta,
    pub(crate) msg: &'r DhcpMessage<'m>,
    pub(crate) rai: Option<RelayAgentInfo<'r>>,
    pub(crate) key: ClientKey,
    /// `key` with its keyed hash, for the client index.
    pub(crate) hkey: HashedKey,
    pub(crate) mac: [u8; 6],
    pub(crate) classes: u32,
}

/// How a REQUEST reached us (RFC 2131 section 4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestState {
    Selecting,
    InitReboot,
    RenewingOrRebinding,
}

impl Engine {
    /// Builds an engine from a validated configuration.
    pub fn new(config: &Config, options: EngineOptions) -> Result<Engine, BuildError> {
        if config.classes.len() > 32 {
            return Err(BuildError::TooManyClasses(config.classes.len()));
        }
        if config.scopes.len() > usize::from(u16::MAX) {
            return Err(BuildError::TooManyScopes(config.scopes.len()));
        }
        let class_bits: HashMap<&str, u32> = config
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), 1u32 << i))
            .collect();
        let (selector, link_of) = Selector::build(&config.scopes);
        let scopes: Vec<Scope> = config
            .scopes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                build_scope(
                    ScopeId(i as u16),
                    s,
                    &class_bits,
                    link_of[i],
                    options.pool_shards,
                )
            })
            .collect();
        let slots: usize = scopes
            .iter()
            .flat_map(|s| &s.pools)
            .map(|p| p.addresses.len() as usize)
            .sum();
        let per_shard =
            slots / options.client_shards.max(1).next_power_of_two() as usize * 5 / 4 + 64;
        Ok(Engine {
            settings: config.server.clone(),
            classes: config.classes.clone(),
            scopes,
            selector,
            clients: ClientIndex::new(options.client_shards, per_shard),
            key_seed: options.key_secret,
        })
    }

    /// The id of a configured interface name, for [`RxMeta::interface`].
    pub fn interface(&self, name: &str) -> Option<InterfaceId> {
        self.selector
            .interfaces
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| InterfaceId(i as u16))
    }

    /// The id of the scope called `name`.
    pub fn scope_id(&self, name: &str) -> Option<ScopeId> {
        self.scopes.iter().find(|s| s.name == name).map(|s| s.id)
    }

    /// Every scope's name and whether it is active (serving), in configuration order.
    pub fn scope_states(&self) -> Vec<(&str, bool)> {
        self.scopes
            .iter()
            .map(|s| (s.name.as_str(), s.is_active()))
            .collect()
    }

    /// Activates or deactivates a scope at run time. Returns false if there is no such scope.
    pub fn set_scope_active(&self, name: &str, active: bool) -> bool {
        self.scopes
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.set_active(active))
            .is_some()
    }

    /// Handles one DHCP message (`request`, the UDP payload) and writes any reply into `tx`.
    pub fn handle(&self, now: Time, meta: &RxMeta, request: &[u8], tx: &mut [u8]) -> Verdict {
        self.handle_typed(now, meta, request, tx).1
    }

    /// [`Self::handle`], also returning the request's message type (for counters), so the
    /// caller need not parse the message a second time.
    pub fn handle_typed(
        &self,
        now: Time,
        meta: &RxMeta,
        request: &[u8],
        tx: &mut [u8],
    ) -> (Option<MessageType>, Verdict) {
        let msg = match DhcpMessage::parse(request) {
            Ok(m) => m,
            Err(e) => return (None, Verdict::Drop(DropReason::Malformed(e))),
        };
        (msg.message_type(), self.decide(now, meta, &msg, tx))
    }

    fn decide(&self, now: Time, meta: &RxMeta, msg: &DhcpMessage<'_>, tx: &mut [u8]) -> Verdict {
        let packet = msg.packet();
        if packet.op() != BOOTREQUEST {
            return Verdict::Drop(DropReason::NotRequest);
        }
        let Some(kind) = msg.message_type() else {
            return Verdict::Drop(DropReason::NotDhcp);
        };
        // Option 82 nearly always arrives in one piece and is read where it lies; only a split
        // option is joined in a scratch buffer, which is then the only one zeroed.
        let mut rai_scratch;
        let rai = match msg.relay_agent_info_raw() {
            None => Ok(None),
            Some(v) => {
                if let Some(data) = v.as_slice() {
                    RelayAgentInfo::new_checked(data).map(Some)
                } else {
                    rai_scratch = [0u8; 1024];
                    msg.relay_agent_info(&mut rai_scratch)
                }
            }
        };
        let rai = match rai {
            Ok(r) => r,
            Err(e) => return Verdict::Drop(DropReason::Malformed(e)),
        };
        if rai.is_some() && packet.giaddr().is_unspecified() && !meta.trusted {
            return Verdict::Drop(DropReason::UntrustedRelayInfo);
        }
        let Some(scope) = self.select(meta, msg, rai.as_ref()) else {
            return Verdict::Drop(DropReason::NoScope);
        };
        if !scope.is_active() {
            return Verdict::Drop(DropReason::ScopeInactive);
        }
        let key = self.client_key(msg, scope.match_client_id);
        let mac = packet.client_mac().map_or([0; 6], |m| m.octets());
        let classes = self.classify(msg, rai.as_ref());
        let hkey = self.clients.hashed(key);
        let req = Request {
            now,
            meta,
            msg,
            rai,
            key,
            hkey,
            mac,
            classes,
        };
        match kind {
            MessageType::Discover => self.discover(&req, scope, tx),
            MessageType::Request => self.request(&req, scope, tx),
            MessageType::Decline => self.decline(&req, scope),
            MessageType::Release => self.release(&req, scope),
            MessageType::Inform => self.inform(&req, scope, tx),
            MessageType::Offer | MessageType::Ack | MessageType::Nak => {
                Verdict::Drop(DropReason::UnexpectedType)
            }
        }
    }

    /// The key `handle` derives for a client with this hardware address and, when the scope
    /// matches on it, client identifier: for lease import and the admin API.
    pub fn client_key_for(&self, htype: u8, chaddr: &[u8], client_id: Option<&[u8]>) -> ClientKey {
        match client_id.filter(|id| !id.is_empty()) {
            Some(id) => ClientKey::client_id(id, &self.key_seed),
            None => ClientKey::hardware(htype, chaddr, &self.key_seed),
        }
    }

    fn client_key(&self, msg: &DhcpMessage<'_>, match_client_id: bool) -> ClientKey {
        if match_client_id && let Some(v) = msg.client_id() {
            let mut scratch;
            let id = if let Some(id) = v.as_slice() {
                Some(id)
            } else {
                scratch = [0u8; 512];
                v.contiguous(&mut scratch).ok()
            };
            if let Some(id) = id.filter(|id| !id.is_empty()) {
                return ClientKey::client_id(id, &self.key_seed);
            }
        }
        let p = msg.packet();
        ClientKey::hardware(p.htype(), p.chaddr(), &self.key_seed)
    }

    /// Scope selection, in RFC order: link-selection (82/5), subnet-selection (118), giaddr,
    /// ciaddr, then the receiving interface.
    fn select(
        &self,
        meta: &RxMeta,
        msg: &DhcpMessage<'_>,
        rai: Option<&RelayAgentInfo<'_>>,
    ) -> Option<&Scope> {
        let p = msg.packet();
        let sel = &self.selector;
        let id = if let Some(a) = rai.and_then(RelayAgentInfo::link_selection) {
            sel.by_address(a)
        } else if let Some(a) = msg.subnet_selection() {
            sel.by_address(a)
        } else if !p.giaddr().is_unspecified() {
            sel.by_relay(p.giaddr())
        } else if !p.ciaddr().is_unspecified() {
            sel.by_address(p.ciaddr())
        } else if let Some(i) = meta.interface {
            sel.interfaces
                .get(usize::from(i.0))
                .and_then(|(_, v)| v.first().copied())
        } else {
            sel.by_address(meta.local_ip)
        };
        id.map(|id| &self.scopes[usize::from(id.0)])
    }

    fn classify(&self, msg: &DhcpMessage<'_>, rai: Option<&RelayAgentInfo<'_>>) -> u32 {
        let mut bits = 0;
        for (i, class) in self.classes.iter().enumerate() {
            let all = class.conditions.iter().all(|c| match c {
                ClassMatch::VendorClassPrefix(p) => msg
                    .vendor_class()
                    .is_some_and(|v| v.len() >= p.len() && v.bytes().zip(p).all(|(a, b)| a == *b)),
                ClassMatch::CircuitIdPrefix(p) => rai
                    .and_then(RelayAgentInfo::circuit_id)
                    .is_some_and(|c| c.starts_with(p)),
                ClassMatch::RemoteIdPrefix(p) => rai
                    .and_then(RelayAgentInfo::remote_id)
                    .is_some_and(|c| c.starts_with(p)),
                ClassMatch::MacPrefix(p) => msg.packet().chaddr().starts_with(p),
                ClassMatch::Giaddr(net) => {
                    let g = msg.packet().giaddr();
                    !g.is_unspecified() && net.contains(g)
                }
            });
            if all {
                bits |= 1 << i;
            }
        }
        bits
    }

    fn link(&self, scope: &Scope) -> &[ScopeId] {
        &self.selector.links[scope.link]
    }

    pub(crate) fn scope(&self, id: ScopeId) -> &Scope {
        &self.scopes[usize::from(id.0)]
    }

    /// Holds the slot at `loc` for the request's client until `hold`: the OFFER.
    fn offer_at(
        &self,
        r: &Request<'_, '_>,
        held: usize,
        clients: &mut ClientMap,
        shard: &mut Shard,
        loc: Loc,
        hold: Time,
    ) {
        self.take(r, held, clients, shard, loc, BindingState::Offered, hold, 0);
    }

    /// Gives the slot at `loc` to the request's client in `state` until `expires`.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        r: &Request<'_, '_>,
        held: usize,
        clients: &mut ClientMap,
        shard: &mut Shard,
        loc: Loc,
        state: BindingState,
        expires: Time,
        granted: u32,
    ) -> Binding {
        shard.unlink(loc.at.slot);
        let old = *shard.binding(loc.at.slot);
        if let Some(prev) = old.client.filter(|k| *k != r.key) {
            self.clients.forget(prev, loc, held, clients);
        }
        let b = Binding {
            client: Some(r.key),
            mac: r.mac,
            state,
            expires,
            cltt: r.now,
            granted,
            partner_sent: old.partner_sent,
            partner_acked: old.partner_acked,
            classes: r.classes,
            version: 0,
        };
        let b = shard.set(loc.at.slot, b);
        shard.schedule(loc.at.slot, expires);
        clients.insert(r.hkey, loc);
        b
    }

    fn discover(&self, r: &Request<'_, '_>, scope: &Scope, tx: &mut [u8]) -> Verdict {
        let link = self.link(scope);
        let hold = r.now + Time::from(self.settings.offer_hold);
        let (held, mut clients) = self.clients.lock(&r.hkey);
        // In order: the client's own address, its reservation, the address it asks for, and
        // then the address freed longest ago.
        let found = self
            .offer_known(r, link, held, &mut clients, hold)
            .or_else(|| self.offer_reserved(r, link, held, &mut clients, hold))
            .or_else(|| self.offer_requested(r, link, held, &mut clients, hold))
            .or_else(|| self.offer_free(r, link, held, &mut clients, hold));
        drop(clients);
        match found {
            Some((s, addr)) => self.offer(r, s, addr, tx),
            None => Verdict::Drop(DropReason::PoolExhausted),
        }
    }

    /// A client we know on this link gets its address again (lease affinity).
    fn offer_known(
        &self,
        r: &Request<'_, '_>,
        link: &[ScopeId],
        held: usize,
        clients: &mut ClientMap,
        hold: Time,
    ) -> Option<(&Scope, Ipv4Addr)> {
        let loc = clients.get(&r.hkey).copied()?;
        if link.contains(&loc.scope) {
            let s = self.scope(loc.scope);
            let pool = &s.pools[usize::from(loc.pool)];
            let mut shard = pool.lock(loc.at.shard);
            let b = *shard.binding(loc.at.slot);
            if b.owned_by(&r.key) && b.state != BindingState::Abandoned {
                if b.state != BindingState::Active {
                    self.offer_at(r, held, clients, &mut shard, loc, hold);
                }
                return Some((s, pool.address(loc.at)));
            }
        }
        // Stale (the address went to another client) or on another link: forget it.
        clients.remove(&r.hkey);
        None
    }

    /// A reservation on this link.
    fn offer_reserved(
        &self,
        r: &Request<'_, '_>,
        link: &[ScopeId],
        held: usize,
        clients: &mut ClientMap,
        hold: Time,
    ) -> Option<(&Scope, Ipv4Addr)> {
        let mut scratch = [0u8; 512];
        let probe = probe(r, &mut scratch);
        for s in link.iter().map(|id| self.scope(*id)) {
            if !s.is_active() || s.reservations.is_empty() {
                continue;
            }
            let Some(i) = s.reservations.find(&probe) else {
                continue;
            };
            let addr = s.reservations.list[i].address;
            let Some((p, at)) = s.locate(addr) else {
                continue;
            };
            let mut shard = s.pools[p].lock(at.shard);
            let b = *shard.binding(at.slot);
            if b.state == BindingState::Reserved || b.owned_by(&r.key) || b.state.is_available() {
                let loc = Loc::new(s.id, p, at);
                self.offer_at(r, held, clients, &mut shard, loc, hold);
                return Some((s, addr));
            }
        }
        None
    }

    /// The address the client asks for, if it is free and the client may have it.
    fn offer_requested(
        &self,
        r: &Request<'_, '_>,
        link: &[ScopeId],
        held: usize,
        clients: &mut ClientMap,
        hold: Time,
    ) -> Option<(&Scope, Ipv4Addr)> {
        let want = r.msg.requested_ip()?;
        let s = link
            .iter()
            .map(|id| self.scope(*id))
            .find(|s| s.is_active() && s.subnet.contains(want))?;
        let (p, at) = s.locate(want)?;
        let pool = &s.pools[p];
        if !pool.dynamic
            || !allows(pool.classes, r.classes)
            || s.reservations.of_address(want).is_some()
        {
            return None;
        }
        let mut shard = pool.lock(at.shard);
        if !shard.binding(at.slot).state.is_available() {
            return None;
        }
        let loc = Loc::new(s.id, p, at);
        self.offer_at(r, held, clients, &mut shard, loc, hold);
        Some((s, want))
    }

    /// The address freed longest ago, starting at the client's own shard.
    fn offer_free(
        &self,
        r: &Request<'_, '_>,
        link: &[ScopeId],
        held: usize,
        clients: &mut ClientMap,
        hold: Time,
    ) -> Option<(&Scope, Ipv4Addr)> {
        let spread = ClientIndex::spread(&r.hkey);
        for s in link
            .iter()
            .map(|id| self.scope(*id))
            .filter(|s| s.is_active())
        {
            let usable = s
                .pools
                .iter()
                .enumerate()
                .filter(|(_, p)| p.dynamic && allows(p.classes, r.classes));
            for (p, pool) in usable {
                let n = pool.shard_count();
                let start = (spread % u64::from(n)) as u32;
                for k in (0..n).map(|i| (start + i) % n) {
                    let mut shard = pool.lock(k);
                    if let Some(slot) = shard.pop_free() {
                        let at = crate::pool::SlotRef { shard: k, slot };
                        let loc = Loc::new(s.id, p, at);
                        self.offer_at(r, held, clients, &mut shard, loc, hold);
                        return Some((s, pool.address(at)));
                    }
                }
            }
        }
        None
    }

    fn offer(&self, r: &Request<'_, '_>, s: &Scope, addr: Ipv4Addr, tx: &mut [u8]) -> Verdict {
        let spec = ReplySpec {
            kind: MessageType::Offer,
            yiaddr: addr,
            lease: Some(LeaseGrant::full(s.lease)),
            scope: s,
            classes: r.classes,
            reservation: reservation_for(r, s, addr),
        };
        self.reply(r, &spec, tx, None)
    }

    fn nak(&self, r: &Request<'_, '_>, s: &Scope, tx: &mut [u8]) -> Verdict {
        let spec = ReplySpec {
            kind: MessageType::Nak,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            scope: s,
            classes: 0,
            reservation: None,
        };
        self.reply(r, &spec, tx, None)
    }

    fn request(&self, r: &Request<'_, '_>, scope: &Scope, tx: &mut [u8]) -> Verdict {
        let p = r.msg.packet();
        if let Some(sid) = r.msg.server_id() {
            let ours = sid == scope.server_id(r.meta)
                || r.rai.as_ref().and_then(RelayAgentInfo::server_id_override) == Some(sid);
            if !ours {
                self.withdraw_offer(r, scope);
                return Verdict::Drop(DropReason::NotForUs);
            }
            let Some(want) = r
                .msg
                .requested_ip()
                .or(Some(p.ciaddr()).filter(|a| !a.is_unspecified()))
            else {
                return Verdict::Drop(DropReason::NoBinding);
            };
            return self.commit(r, scope, want, RequestState::Selecting, tx);
        }
        if p.ciaddr().is_unspecified() {
            let Some(want) = r.msg.requested_ip() else {
                return Verdict::Drop(DropReason::NoBinding);
            };
            return self.commit(r, scope, want, RequestState::InitReboot, tx);
        }
        self.commit(r, scope, p.ciaddr(), RequestState::RenewingOrRebinding, tx)
    }

    /// The client chose another server: the address offered to it goes back to the pool.
    fn withdraw_offer(&self, r: &Request<'_, '_>, scope: &Scope) {
        let (_, clients) = self.clients.lock(&r.hkey);
        let Some(loc) = clients.get(&r.hkey).copied() else {
            return;
        };
        if !self.link(scope).contains(&loc.scope) {
            return;
        }
        self.return_offer(r, loc);
    }

    /// Puts the address at `loc` back in its pool if it is on offer to this client (the caller
    /// holds the client's index entry, and no pool shard).
    fn return_offer(&self, r: &Request<'_, '_>, loc: Loc) {
        let pool = &self.scope(loc.scope).pools[usize::from(loc.pool)];
        let mut shard = pool.lock(loc.at.shard);
        let b = *shard.binding(loc.at.slot);
        if b.owned_by(&r.key) && b.state == BindingState::Offered {
            let freed = Binding {
                state: BindingState::Free,
                expires: r.now,
                ..b
            };
            shard.set(loc.at.slot, freed);
            shard.push_free(loc.at.slot);
        }
    }

    /// Answers a REQUEST for `want`: ACK it (durably), NAK it, or stay silent.
    fn commit(
        &self,
        r: &Request<'_, '_>,
        scope: &Scope,
        want: Ipv4Addr,
        state: RequestState,
        tx: &mut [u8],
    ) -> Verdict {
        let link = self.link(scope);
        let Some(s) = link
            .iter()
            .map(|id| self.scope(*id))
            .find(|s| s.subnet.contains(want))
        else {
            // Wrong network for this client (RFC 2131 section 4.3.2).
            return self.refuse(r, scope, state, tx);
        };
        let Some((p, at)) = s.locate(want) else {
            return self.refuse(r, s, state, tx);
        };
        let loc = Loc::new(s.id, p, at);
        let (held, mut clients) = self.clients.lock(&r.hkey);

        // One pool-shard lock at a time: return a different address on offer to the client first.
        if let Some(old) = clients.get(&r.hkey).copied().filter(|old| *old != loc) {
            self.return_offer(r, old);
        }
        let pool = &s.pools[p];
        let mut shard = pool.lock(at.shard);
        let b = *shard.binding(at.slot);
        let reserved_for = s.reservations.of_address(want);
        let mine = b.owned_by(&r.key) && b.state != BindingState::Abandoned;
        if !mine {
            if !may_take(r, s, pool, &b, want) {
                drop(shard);
                drop(clients);
                return if b.client.is_some() || reserved_for.is_some() {
                    self.nak(r, s, tx)
                } else {
                    self.refuse(r, s, state, tx)
                };
            }
            if state != RequestState::Selecting && !s.authoritative {
                // A client we never heard of, renewing or rebooting: another server may own it.
                drop(shard);
                drop(clients);
                return Verdict::Drop(DropReason::UnknownClient);
            }
        }
        // A unicast renewal reaches us without the relay, so without option 82: with
        // stash-agent-options the classes and reservation that bound the lease still apply.
        let stashed = mine && self.settings.stash_agent_options && r.rai.is_none();
        let classes = if stashed { b.classes } else { r.classes };
        let reservation = if stashed {
            reserved_for
        } else {
            reservation_for(r, s, want)
        };
        if mine && b.state == BindingState::Active && self.cache_hit(&b, r.now) {
            // Early renewal: the unchanged lease again, nothing to journal (Kea's lease caching).
            shard.set(at.slot, Binding { cltt: r.now, ..b });
            drop(shard);
            drop(clients);
            let remaining = (b.expires - r.now) as u32;
            let spec = ReplySpec {
                kind: MessageType::Ack,
                yiaddr: want,
                lease: Some(LeaseGrant::remaining(s.lease, remaining)),
                scope: s,
                classes,
                reservation,
            };
            return self.reply(r, &spec, tx, None);
        }
        let valid = s.lease.valid;
        let mut binding = self.take(
            r,
            held,
            &mut clients,
            &mut shard,
            loc,
            BindingState::Active,
            r.now + Time::from(valid),
            valid,
        );
        if binding.classes != classes {
            binding.classes = classes;
            binding = shard.set(at.slot, binding);
        }
        drop(shard);
        drop(clients);
        let event = BindingEvent {
            scope: s.id,
            address: want,
            binding,
        };
        let spec = ReplySpec {
            kind: MessageType::Ack,
            yiaddr: want,
            lease: Some(LeaseGrant::full(s.lease)),
            scope: s,
            classes,
            reservation,
        };
        self.reply(r, &spec, tx, Some(event))
    }

    /// A request for an address the client cannot have: NAK when it asked us by server id or
    /// we are authoritative (its notion of its address is wrong and it must hear so), else
    /// stay silent so that another server on the link may answer.
    fn refuse(
        &self,
        r: &Request<'_, '_>,
        s: &Scope,
        state: RequestState,
        tx: &mut [u8],
    ) -> Verdict {
        if state == RequestState::Selecting || s.authoritative {
            self.nak(r, s, tx)
        } else {
            Verdict::Drop(DropReason::UnknownClient)
        }
    }

    fn cache_hit(&self, b: &Binding, now: Time) -> bool {
        let threshold = self.settings.cache_threshold;
        if threshold <= 0.0 || b.granted == 0 || b.expires <= now {
            return false;
        }
        let start = b.expires - Time::from(b.granted);
        // Lease ages are far below 2^52 seconds: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let age = now.saturating_sub(start) as f64;
        age < f64::from(threshold) * f64::from(b.granted)
    }

    fn decline(&self, r: &Request<'_, '_>, scope: &Scope) -> Verdict {
        let Some(addr) = r.msg.requested_ip() else {
            return Verdict::Drop(DropReason::NoBinding);
        };
        if r.msg
            .server_id()
            .is_some_and(|sid| sid != scope.server_id(r.meta))
        {
            return Verdict::Drop(DropReason::NotForUs);
        }
        let probation = r.now + Time::from(self.settings.decline_probation);
        self.end_binding(r, scope, addr, |b| Binding {
            client: None,
            state: BindingState::Abandoned,
            expires: probation,
            cltt: r.now,
            ..*b
        })
    }

    fn release(&self, r: &Request<'_, '_>, scope: &Scope) -> Verdict {
        let addr = r.msg.packet().ciaddr();
        if r.msg
            .server_id()
            .is_some_and(|sid| sid != scope.server_id(r.meta))
        {
            return Verdict::Drop(DropReason::NotForUs);
        }
        // The client keeps affinity: its entry stays, and the address goes to the back of the queue.
        self.end_binding(r, scope, addr, |b| Binding {
            state: BindingState::Released,
            expires: r.now,
            cltt: r.now,
            ..*b
        })
    }

    /// Ends the client's binding of `addr` with `next` (RELEASE, DECLINE).
    fn end_binding(
        &self,
        r: &Request<'_, '_>,
        scope: &Scope,
        addr: Ipv4Addr,
        next: impl Fn(&Binding) -> Binding,
    ) -> Verdict {
        let Some(s) = self
            .link(scope)
            .iter()
            .map(|id| self.scope(*id))
            .find(|s| s.subnet.contains(addr))
        else {
            return Verdict::Drop(DropReason::NoBinding);
        };
        let Some((p, at)) = s.locate(addr) else {
            return Verdict::Drop(DropReason::NoBinding);
        };
        let (_, mut clients) = self.clients.lock(&r.hkey);
        let mut shard = s.pools[p].lock(at.shard);
        let b = *shard.binding(at.slot);
        if !b.owned_by(&r.key) || !matches!(b.state, BindingState::Active | BindingState::Offered) {
            return Verdict::Drop(DropReason::NoBinding);
        }
        let after = next(&b);
        shard.set(at.slot, after);
        if after.state == BindingState::Abandoned {
            shard.schedule(at.slot, after.expires);
            clients.remove(&r.hkey);
        } else if s.reservations.of_address(addr).is_some() {
            shard.set(
                at.slot,
                Binding {
                    state: BindingState::Reserved,
                    ..after
                },
            );
        } else {
            shard.push_free(at.slot);
        }
        Verdict::Record {
            event: BindingEvent {
                scope: s.id,
                address: addr,
                binding: *shard.binding(at.slot),
            },
        }
    }

    fn inform(&self, r: &Request<'_, '_>, scope: &Scope, tx: &mut [u8]) -> Verdict {
        let spec = ReplySpec {
            kind: MessageType::Ack,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            scope,
            classes: r.classes,
            reservation: None,
        };
        self.reply(r, &spec, tx, None)
    }

    /// Expires what is due at `now`: lapsed offers return to the pool, leases that ran out and
    /// probations that ended are reported to `sink`. Handles at most `budget` bindings per call,
    /// so a worker or the control thread can interleave it with packets; returns how many it
    /// handled. Uses each shard's timer heap: no scan of all bindings.
    pub fn tick(&self, now: Time, budget: usize, mut sink: impl FnMut(BindingEvent)) -> usize {
        let mut done = 0;
        for s in &self.scopes {
            for pool in &s.pools {
                for k in 0..pool.shard_count() {
                    let mut shard = pool.lock(k);
                    while done < budget {
                        let Some(slot) = shard.due(now) else { break };
                        done += 1;
                        let b = *shard.binding(slot);
                        let at = crate::pool::SlotRef { shard: k, slot };
                        let addr = pool.address(at);
                        let reserved = s.reservations.of_address(addr).is_some();
                        let after = match b.state {
                            BindingState::Offered => Binding {
                                state: BindingState::Free,
                                expires: now,
                                ..b
                            },
                            BindingState::Active => Binding {
                                state: BindingState::Expired,
                                expires: b.expires,
                                ..b
                            },
                            _ => Binding {
                                state: BindingState::Free,
                                client: None,
                                expires: now,
                                ..b
                            },
                        };
                        let after = if reserved {
                            Binding {
                                state: BindingState::Reserved,
                                ..after
                            }
                        } else {
                            after
                        };
                        let after = shard.set(slot, after);
                        if !reserved {
                            shard.push_free(slot);
                        }
                        if b.state != BindingState::Offered {
                            sink(BindingEvent {
                                scope: s.id,
                                address: addr,
                                binding: after,
                            });
                        }
                    }
                    if done >= budget {
                        return done;
                    }
                }
            }
        }
        done
    }

    /// Installs an imported binding (another server's lease) as the address's next version,
    /// and returns it as stored (version included: what to journal). An address another
    /// client holds is reported as a conflict and left alone.
    pub fn restore(&self, event: &BindingEvent) -> Result<Binding, RestoreError> {
        self.install(event, Install::Import)
            .map(|stored| stored.unwrap_or(event.binding))
    }

    /// Replays a binding change from the journal: it replaces the address's binding if its
    /// version is newer, whoever holds the address now, and is ignored (`Ok(false)`) if not.
    /// The journal is the truth about what was acknowledged; versions put back the order
    /// that separate worker queues may have lost, so replay order does not matter.
    pub fn replay(&self, event: &BindingEvent) -> Result<bool, RestoreError> {
        self.install(event, Install::Replay)
            .map(|stored| stored.is_some())
    }

    /// Installs `event`'s binding; returns it as stored, or `None` for a stale replay.
    fn install(&self, event: &BindingEvent, how: Install) -> Result<Option<Binding>, RestoreError> {
        let addr = event.address;
        let (s, p, at) = self
            .scopes
            .get(usize::from(event.scope.0))
            .and_then(|s| s.locate(addr).map(|(p, at)| (s, p, at)))
            .or_else(|| {
                self.scopes
                    .iter()
                    .find_map(|s| s.locate(addr).map(|(p, at)| (s, p, at)))
            })
            .ok_or(RestoreError::UnknownAddress(addr))?;
        let loc = Loc::new(s.id, p, at);
        let b = event.binding;
        let hashed = b.client.map(|k| self.clients.hashed(k));
        let mut guard = hashed.as_ref().map(|k| self.clients.lock(k));
        let mut shard = s.pools[p].lock(at.shard);
        let cur = *shard.binding(at.slot);
        let stored = match how {
            Install::Import => {
                if cur.client.is_some()
                    && cur.client != b.client
                    && matches!(cur.state, BindingState::Active | BindingState::Offered)
                {
                    return Err(RestoreError::Conflict(addr));
                }
                shard.set(at.slot, b)
            }
            Install::Replay => {
                if b.version <= cur.version {
                    return Ok(None);
                }
                shard.put(at.slot, b)
            }
        };
        match b.state {
            BindingState::Active | BindingState::Offered | BindingState::Abandoned => {
                shard.unlink(at.slot);
                shard.schedule(at.slot, b.expires);
            }
            BindingState::Reserved | BindingState::Backup => shard.unlink(at.slot),
            BindingState::Free
            | BindingState::Expired
            | BindingState::Released
            | BindingState::Reset => {
                shard.push_free(at.slot);
            }
        }
        if let (Some((_, clients)), Some(k)) = (guard.as_mut(), hashed) {
            // A client's live binding wins its index entry over addresses it only keeps
            // affinity to, whatever order the records come in (a snapshot is in address order).
            if matches!(
                b.state,
                BindingState::Active | BindingState::Offered | BindingState::Reserved
            ) {
                clients.insert(k, loc);
            } else {
                clients.entry(k).or_insert(loc);
            }
        }
        Ok(Some(stored))
    }

    /// The binding of `addr`, if it is in a pool.
    pub fn binding(&self, addr: Ipv4Addr) -> Option<(ScopeId, Binding)> {
        self.scopes.iter().find_map(|s| {
            let (p, at) = s.locate(addr)?;
            Some((s.id, *s.pools[p].lock(at.shard).binding(at.slot)))
        })
    }

    /// Calls `f` with every binding that is not free: its scope, address and binding (for
    /// lease export). Takes each shard lock only to copy that shard's bindings out, and
    /// calls `f` with no lock held, so `f` may call back into the engine. Bindings change
    /// meanwhile on a serving engine: each is as it was when its shard was read.
    pub fn for_each_binding(&self, mut f: impl FnMut(ScopeId, Ipv4Addr, &Binding)) {
        let mut copied = Vec::new();
        for s in &self.scopes {
            for pool in &s.pools {
                for k in 0..pool.shard_count() {
                    {
                        let shard = pool.lock(k);
                        for slot in 0..shard.slot_count() {
                            let b = shard.binding(slot);
                            if b.state != BindingState::Free {
                                copied.push((crate::pool::SlotRef { shard: k, slot }, *b));
                            }
                        }
                    }
                    for (at, b) in copied.drain(..) {
                        f(s.id, pool.address(at), &b);
                    }
                }
            }
        }
    }

    /// Utilisation of every pool (takes each shard lock briefly; for the control plane).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let mut out = Vec::new();
        for s in &self.scopes {
            for (i, pool) in s.pools.iter().enumerate() {
                let mut st = PoolStats {
                    scope: s.id,
                    scope_name: s.name.clone(),
                    pool: i,
                    total: u64::from(pool.addresses.len()),
                    active: 0,
                    offered: 0,
                    abandoned: 0,
                    reserved: 0,
                    free: 0,
                };
                for k in 0..pool.shard_count() {
                    let shard = pool.lock(k);
                    st.active += u64::from(shard.count(BindingState::Active));
                    st.offered += u64::from(shard.count(BindingState::Offered));
                    st.abandoned += u64::from(shard.count(BindingState::Abandoned));
                    st.reserved += u64::from(shard.count(BindingState::Reserved));
                }
                st.free = st.total - st.active - st.offered - st.abandoned - st.reserved;
                out.push(st);
            }
        }
        out
    }

    /// Number of clients in the client index.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The options a reply may carry for `code`, most specific first: reservation, classes,
    /// scope, server.
    pub(crate) fn option_value<'a>(
        &'a self,
        scope: &'a Scope,
        reservation: Option<usize>,
        classes: u32,
        code: u8,
    ) -> Option<&'a [u8]> {
        reservation
            .and_then(|i| scope.reservations.list[i].options.get(code))
            .or_else(|| {
                if classes == 0 {
                    return None;
                }
                self.classes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| classes & (1 << i) != 0)
                    .find_map(|(_, c)| c.options.get(code))
            })
            .or_else(|| scope.options.get(code))
            .or_else(|| self.settings.options.get(code))
    }
}

/// The reservation of `yiaddr`, if it is this client's.
pub(crate) fn reservation_for(
    r: &Request<'_, '_>,
    scope: &Scope,
    yiaddr: Ipv4Addr,
) -> Option<usize> {
    let i = scope.reservations.of_address(yiaddr)?;
    let mut scratch = [0u8; 512];
    (scope.reservations.find(&probe(r, &mut scratch)) == Some(i)).then_some(i)
}

/// Whether a client may take `want`, which it does not hold: its own reservation, or a free
/// dynamic address of a pool its classes may use.
fn may_take(
    r: &Request<'_, '_>,
    s: &Scope,
    pool: &crate::pool::Pool,
    b: &Binding,
    want: Ipv4Addr,
) -> bool {
    if s.reservations.of_address(want).is_some() {
        reservation_for(r, s, want).is_some()
            && (b.state == BindingState::Reserved || b.state.is_available())
    } else {
        pool.dynamic && allows(pool.classes, r.classes) && b.state.is_available()
    }
}

/// What a request offers to match reservations against.
fn probe<'a>(r: &'a Request<'_, '_>, scratch: &'a mut [u8; 512]) -> ReservationProbe<'a> {
    ReservationProbe {
        mac: r.msg.packet().client_mac().map(|m| m.octets()),
        client_id: r.msg.client_id().and_then(|v| v.contiguous(scratch).ok()),
        circuit_id: r.rai.as_ref().and_then(RelayAgentInfo::circuit_id),
        remote_id: r.rai.as_ref().and_then(RelayAgentInfo::remote_id),
    }
}

/// Whether a client with `classes` may use a pool restricted to `pool_classes`.
fn allows(pool_classes: u32, classes: u32) -> bool {
    pool_classes == 0 || pool_classes & classes != 0
}
