//! Binding records: the state of one address, and the events that report its changes.

use std::net::Ipv4Addr;

use crate::info::ClientInfo;
use crate::key::ClientKey;

/// Seconds since the UNIX epoch: the engine's only notion of time, passed in by the caller.
pub type Time = u64;

/// The state of an address, with the names of draft-ietf-dhc-failover-12 §5 where they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingState {
    /// Available for allocation.
    Free,
    /// Held for a client that was sent an OFFER, until it REQUESTs or the hold lapses.
    Offered,
    /// Leased to a client.
    Active,
    /// The lease ran out; the client keeps affinity until the address is given to another.
    Expired,
    /// The client gave the address back; it keeps affinity as for `Expired`.
    Released,
    /// A client declined the address (in use by someone else): out of service for a probation.
    Abandoned,
    /// Reserved for one client that holds no lease on it now.
    Reserved,
    /// Administratively freed by the operator (failover RESET).
    Reset,
    /// Owned by the failover partner (failover BACKUP pool).
    Backup,
    /// Out of service because a record of it was lost to journal damage: whoever held it may
    /// still use it. Given to a client that asks for it by name (rebooting, renewing,
    /// rebinding: only its holder would), otherwise free again when the hold-back ends.
    HeldBack,
}

impl BindingState {
    /// A short lower-case name, for metrics labels and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            BindingState::Free => "free",
            BindingState::Offered => "offered",
            BindingState::Active => "active",
            BindingState::Expired => "expired",
            BindingState::Released => "released",
            BindingState::Abandoned => "abandoned",
            BindingState::Reserved => "reserved",
            BindingState::Reset => "reset",
            BindingState::Backup => "backup",
            BindingState::HeldBack => "held_back",
        }
    }

    /// Whether the address may be handed to a new client (free, or only affinity-held).
    pub(crate) const fn is_available(self) -> bool {
        matches!(
            self,
            BindingState::Free
                | BindingState::Expired
                | BindingState::Released
                | BindingState::Reset
        )
    }
}

/// One address's binding, as kept in its pool shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The client that holds (or last held) the address; `None` if never or no longer bound.
    pub client: Option<ClientKey>,
    /// Client hardware address (for events, failover and the API).
    pub mac: [u8; 6],
    /// State.
    pub state: BindingState,
    /// End of the lease (`Active`), of the offer hold (`Offered`) or of the probation
    /// (`Abandoned`) or of the hold-back (`HeldBack`); when the client lost the address
    /// otherwise.
    pub expires: Time,
    /// Client last transaction time.
    pub cltt: Time,
    /// Lease length granted at the last ACK, for lease caching.
    pub granted: u32,
    /// The latest potential expiration known on the address: sent to the failover partner,
    /// or received from it (what may have been promised; reuse waits the MCLT past it).
    pub partner_sent: Time,
    /// Potential expiration time the failover partner acknowledged.
    pub partner_acked: Time,
    /// Client classes matched when the lease was granted, so renewals without option 82 keep
    /// the same options (what Kea's stash-agent-options preserves).
    pub classes: u32,
    /// How many times this address's binding has changed, stamped under its shard lock.
    /// Workers journal their changes through separate queues, so two changes of one address
    /// can reach the journal out of order; replay keeps the highest version (see
    /// [`crate::Engine::replay`]).
    pub version: u32,
    /// What the client said of itself when it was last granted the address (its names, vendor
    /// class, the relay's information); kept while the address remembers the client.
    pub info: ClientInfo,
}

impl Binding {
    pub(crate) const FREE: Binding = Binding {
        client: None,
        mac: [0; 6],
        state: BindingState::Free,
        expires: 0,
        cltt: 0,
        granted: 0,
        partner_sent: 0,
        partner_acked: 0,
        classes: 0,
        version: 0,
        info: ClientInfo::EMPTY,
    };

    /// Whether the binding is more than a free address: not free, or free but remembering a
    /// failover promise (what export, a recovering partner and a reload must carry).
    pub(crate) fn says_anything(&self) -> bool {
        self.state != BindingState::Free || self.partner_sent != 0 || self.partner_acked != 0
    }

    pub(crate) fn owned_by(&self, key: &ClientKey) -> bool {
        self.client.as_ref() == Some(key)
    }

    /// When the address entered its state: a lease that ended, when it ended; otherwise the
    /// last transaction (an availability records when it was set there). What a partner's
    /// update is judged against (D12 start-time-of-state).
    pub fn state_since(&self) -> Time {
        match self.state {
            BindingState::Expired | BindingState::Released => self.expires,
            _ => self.cltt,
        }
    }

    /// Whether a client holds the address at `now`: a reservation, or a lease or offer whose
    /// time has not run out (expiry may not have processed it yet).
    pub(crate) fn held_at(&self, now: Time) -> bool {
        match self.state {
            BindingState::Reserved => true,
            BindingState::Active | BindingState::Offered => self.expires > now,
            _ => false,
        }
    }
}

/// Identifies a scope inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeId(pub u16);

/// A change to a binding that the journal (and failover) must record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingEvent {
    /// Scope of the address.
    pub scope: ScopeId,
    /// The address.
    pub address: Ipv4Addr,
    /// The binding after the change.
    pub binding: Binding,
}
