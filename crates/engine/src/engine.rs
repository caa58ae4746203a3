//! The engine: its construction from a configuration, and one request in, one verdict out.
//!
//! What each message kind does lives beside this file, one concern per module: `select`
//! (scope, classes, client key, reservation), `discover`, `request`, `release` (RELEASE,
//! DECLINE, INFORM), `expiry`, `install` (journal replay, import, a partner's updates) and
//! `query` (what the control plane reads). This file holds the state they share and the one
//! primitive that gives a slot to a client.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use peregrine_config::model::{self, Config};
use peregrine_wire::dhcp::{BOOTREQUEST, DhcpMessage, MessageType, RelayAgentInfo, opt};

use crate::binding::{Binding, BindingEvent, BindingState, ScopeId, Time};
use crate::clients::{ClientIndex, ClientMap, HashedKey, Loc};
use crate::info::ClientInfo;
use crate::key::{ClientKey, KeySecret};
use crate::partner::Partnering;
use crate::pool::Shard;
use crate::scope::{Scope, Selector, build_scope};
use crate::verdict::{DropReason, RxMeta, Verdict};

/// Tuning that is not DHCP behaviour: how finely state is sharded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Lock shards per pool (fewer for small pools).
    pub pool_shards: u32,
    /// Lock shards of the client index (rounded up to a power of two).
    pub client_shards: u32,
    /// Keys the digests of long client identities and the client index's hash, so the same
    /// secret and the same requests make the same choices. Keep it with the leases: a server
    /// restarted with another secret does not recognise clients whose identity exceeds 30
    /// bytes.
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

/// The DHCPv4 server logic, shared by every worker.
///
/// `handle` takes `&self`: workers on several threads call it on one engine at once. It reads
/// no clock (`now` is passed in), opens no socket, and allocates nothing per request.
#[derive(Debug)]
pub struct Engine {
    pub(crate) settings: model::ServerSettings,
    /// `[limits]`, which the workers apply before a request reaches the engine; kept here so
    /// that a reload brings them with the engine.
    pub(crate) limits: model::Limits,
    pub(crate) classes: Vec<model::Class>,
    /// In configuration order.
    pub(crate) scopes: Vec<Scope>,
    /// Each scope id's position in `scopes` ([`NO_SCOPE`]: a scope a reload removed). A scope
    /// keeps its id through reloads, so ids in flight (queued changes, the journal's records)
    /// never name another scope.
    pub(crate) by_id: Vec<u16>,
    pub(crate) selector: Selector,
    pub(crate) clients: ClientIndex,
    pub(crate) key_seed: KeySecret,
    /// How it was built, for a reload to build its successor alike.
    pub(crate) options: EngineOptions,
    /// Bindings of addresses a reload took out of every pool, whose clients may still hold
    /// them: not served, handed to the next reload (see [`Engine::reconfigured`]).
    pub(crate) retired: Vec<BindingEvent>,
    /// The failover side, when the server has a partner ([`Engine::with_failover`]).
    pub(crate) partnering: Option<Partnering>,
    /// Grants whose client options did not all fit the lease's room (see [`ClientInfo`]).
    pub(crate) info_left_out: AtomicU64,
    /// Whether any options table sets a TFTP server or boot file (66, 67), which replies also
    /// carry in `siaddr` and `file`: without, replies skip looking for them.
    pub(crate) boot_options: bool,
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

impl Engine {
    /// Builds an engine from a validated configuration.
    pub fn new(config: &Config, options: EngineOptions) -> Result<Engine, BuildError> {
        if config.scopes.len() > usize::from(u16::MAX) {
            return Err(BuildError::TooManyScopes(config.scopes.len()));
        }
        let ids: Vec<ScopeId> = (0..config.scopes.len() as u16).map(ScopeId).collect();
        Engine::build(config, options, &ids)
    }

    /// Builds an engine from a validated configuration whose scopes have the ids `ids`, in
    /// order (distinct, below `u16::MAX`).
    pub(crate) fn build(
        config: &Config,
        options: EngineOptions,
        ids: &[ScopeId],
    ) -> Result<Engine, BuildError> {
        if config.classes.len() > 32 {
            return Err(BuildError::TooManyClasses(config.classes.len()));
        }
        let class_bits: HashMap<&str, u32> = config
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), 1u32 << i))
            .collect();
        let (selector, link_of) = Selector::build(&config.runtime.interfaces, &config.scopes, ids);
        let scopes: Vec<Scope> = config
            .scopes
            .iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (s, id))| build_scope(*id, s, &class_bits, link_of[i], options.pool_shards))
            .collect();
        let mut by_id = vec![
            NO_SCOPE;
            ids.iter()
                .map(|id| usize::from(id.0) + 1)
                .max()
                .unwrap_or(0)
        ];
        for (position, id) in ids.iter().enumerate() {
            by_id[usize::from(id.0)] = position as u16;
        }
        let slots: usize = scopes
            .iter()
            .flat_map(|s| &s.pools)
            .map(|p| p.addresses.len() as usize)
            .sum();
        let per_shard =
            slots / options.client_shards.max(1).next_power_of_two() as usize * 5 / 4 + 64;
        Ok(Engine {
            settings: config.server.clone(),
            limits: config.limits,
            classes: config.classes.clone(),
            scopes,
            by_id,
            selector,
            clients: ClientIndex::new(options.client_shards, per_shard, &options.key_secret),
            key_seed: options.key_secret,
            options,
            retired: Vec::new(),
            partnering: None,
            info_left_out: AtomicU64::new(0),
            boot_options: sets_boot_options(config),
        })
    }

    /// Handles one DHCP message (`request`, the UDP payload) and writes any reply into `tx`.
    pub fn handle(&self, now: Time, meta: &RxMeta, request: &[u8], tx: &mut [u8]) -> Verdict {
        match DhcpMessage::parse(request) {
            Ok(msg) => self.handle_message(now, meta, &msg, tx),
            Err(_) => Verdict::Drop(DropReason::Malformed),
        }
    }

    /// [`Self::handle`] for a request its caller has already parsed (to look at it first).
    pub fn handle_message(
        &self,
        now: Time,
        meta: &RxMeta,
        msg: &DhcpMessage<'_>,
        tx: &mut [u8],
    ) -> Verdict {
        let packet = msg.packet();
        if packet.op() != BOOTREQUEST {
            return Verdict::Drop(DropReason::NotRequest);
        }
        let Some(kind) = msg.message_type() else {
            return Verdict::Drop(DropReason::NotDhcp);
        };
        if kind == MessageType::LeaseQuery {
            return self.leasequery(now, meta, msg, tx);
        }
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
        let Ok(rai) = rai else {
            return Verdict::Drop(DropReason::Malformed);
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
        // A server whose failover state does not answer this client leaves no trace of it.
        if let Some(p) = self.partnering_of(scope)
            && let Err(reason) = p.admits(kind, msg)
        {
            return Verdict::Drop(reason);
        }
        let key = self.client_key(msg, scope.match_client_id);
        let mac = packet.client_mac().map_or([0; 6], |m| m.octets());
        let classes = self.classify(meta, msg, rai.as_ref());
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
            MessageType::Offer
            | MessageType::Ack
            | MessageType::Nak
            | MessageType::LeaseQuery
            | MessageType::LeaseUnassigned
            | MessageType::LeaseUnknown
            | MessageType::LeaseActive
            // Bulk leasequery is TCP's (RFC 6926 §5), never a datagram's.
            | MessageType::BulkLeaseQuery
            | MessageType::LeaseQueryDone => Verdict::Drop(DropReason::UnexpectedType),
        }
    }

    /// The state an address of `scope` goes back to when an offer of it lapses: this server's
    /// own pool (BACKUP at a failover secondary, FREE otherwise).
    pub(crate) fn available_state(&self, scope: &Scope) -> BindingState {
        self.partnering_of(scope)
            .map_or(BindingState::Free, Partnering::own_state)
    }

    /// The failover partnership `scope` is in: `None` for a server alone, and for a scope it
    /// serves alone (`failover = false`), which the partner neither hears of nor serves.
    pub(crate) fn partnering_of(&self, scope: &Scope) -> Option<&Partnering> {
        self.partnering.as_ref().filter(|_| scope.shared)
    }

    pub(crate) fn link(&self, scope: &Scope) -> &[ScopeId] {
        &self.selector.links[scope.link]
    }

    /// The scope `id` names; ids come from this engine's own tables.
    pub(crate) fn scope(&self, id: ScopeId) -> &Scope {
        &self.scopes[usize::from(self.by_id[usize::from(id.0)])]
    }

    /// The scope `id` names, if it is one of this engine's (ids from outside: a journal
    /// record, a queued change from before a reload).
    pub(crate) fn scope_of(&self, id: ScopeId) -> Option<&Scope> {
        let at = *self.by_id.get(usize::from(id.0))?;
        self.scopes.get(usize::from(at))
    }

    /// Gives the slot at `loc` to the request's client as `grant` says, in one change of the
    /// binding (one version, one copy in).
    pub(crate) fn take(
        &self,
        r: &Request<'_, '_>,
        held: usize,
        clients: &mut ClientMap,
        shard: &mut Shard,
        loc: Loc,
        grant: &Grant<'_>,
    ) -> Binding {
        let slot = loc.at.slot;
        shard.unlink(slot);
        let old = shard.binding(slot);
        let (prev, partner_sent, partner_acked) = (old.client, old.partner_sent, old.partner_acked);
        let same_client = prev == Some(r.key);
        let b = Binding {
            client: Some(r.key),
            mac: r.mac,
            state: grant.state,
            expires: grant.expires,
            cltt: r.now,
            granted: grant.granted,
            partner_sent: grant.sent.map_or(partner_sent, |pet| pet.max(partner_sent)),
            partner_acked,
            classes: grant.classes,
            version: 0,
            info: match grant.info {
                Some(info) => *info,
                // The same client's, until its REQUEST is granted (see `ClientInfo::capture`).
                None if same_client => old.info,
                None => ClientInfo::EMPTY,
            },
        };
        if let Some(prev) = prev.filter(|_| !same_client) {
            self.clients.forget(prev, loc, held, clients);
        }
        let b = shard.set(slot, b);
        shard.schedule(slot, grant.expires);
        clients.insert(r.hkey, loc);
        b
    }
}

/// What [`Engine::take`] gives a client.
pub(crate) struct Grant<'a> {
    /// The binding's new state (`Offered` or `Active`).
    pub state: BindingState,
    /// When the offer or the lease ends.
    pub expires: Time,
    /// The lease length granted (0 for an offer).
    pub granted: u32,
    /// The client classes the grant was made with.
    pub classes: u32,
    /// The kept client options; `None` keeps the same client's, or none for another client.
    pub info: Option<&'a ClientInfo>,
    /// The potential expiration sent to the failover partner with this grant, if any.
    pub sent: Option<Time>,
}

/// [`Engine::by_id`] of an id no scope has.
pub(crate) const NO_SCOPE: u16 = u16::MAX;

/// Whether an options table of `config` sets option 66 or 67.
fn sets_boot_options(config: &Config) -> bool {
    let scopes = config
        .scopes
        .iter()
        .flat_map(|s| std::iter::once(&s.options).chain(s.reservations.iter().map(|r| &r.options)));
    std::iter::once(&config.server.options)
        .chain(config.classes.iter().map(|c| &c.options))
        .chain(scopes)
        .any(|o| o.get(opt::TFTP_SERVER).is_some() || o.get(opt::BOOTFILE_NAME).is_some())
}
