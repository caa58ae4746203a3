//! Binding states of D12 §5.11 (numbers of §12.3) and the rules about them, as data and pure
//! functions the engine calls: which transitions a server makes on its own, which of a
//! partner's updates it accepts, and the MCLT rule that bounds every lease it grants.

use std::net::Ipv4Addr;

use crate::Time;
use crate::message::{BindingUpdate, HardwareAddr, RejectReason};

/// The status of one address in a binding update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    /// Available; the primary may allocate it.
    Free = 1,
    /// Leased to a client.
    Active = 2,
    /// The lease ran out (transitory until the partner acknowledges).
    Expired = 3,
    /// The client released it (transitory).
    Released = 4,
    /// Unusable: a ping answered or a DHCPDECLINE.
    Abandoned = 5,
    /// Freed by the operator (transitory).
    Reset = 6,
    /// Available; the secondary may allocate it.
    Backup = 7,
}

impl BindingStatus {
    /// The status of a wire value, or `None` for an undefined one.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => BindingStatus::Free,
            2 => BindingStatus::Active,
            3 => BindingStatus::Expired,
            4 => BindingStatus::Released,
            5 => BindingStatus::Abandoned,
            6 => BindingStatus::Reset,
            7 => BindingStatus::Backup,
            _ => return None,
        })
    }

    /// The draft's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            BindingStatus::Free => "FREE",
            BindingStatus::Active => "ACTIVE",
            BindingStatus::Expired => "EXPIRED",
            BindingStatus::Released => "RELEASED",
            BindingStatus::Abandoned => "ABANDONED",
            BindingStatus::Reset => "RESET",
            BindingStatus::Backup => "BACKUP",
        }
    }
}

/// Which side of the relationship a server is (D12 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Owns FREE addresses, sends CONNECT, wins conflicts it must resolve first.
    Primary,
    /// Owns BACKUP addresses, answers CONNECT.
    Secondary,
}

impl Role {
    /// The partner's role.
    #[must_use]
    pub const fn partner(self) -> Role {
        match self {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        }
    }

    /// The status of the addresses this role may allocate from in NORMAL and
    /// COMMUNICATIONS-INTERRUPTED: FREE for the primary, BACKUP for the secondary (D12 §5.4).
    pub const fn own_pool(self) -> BindingStatus {
        match self {
            Role::Primary => BindingStatus::Free,
            Role::Secondary => BindingStatus::Backup,
        }
    }
}

/// Whether a server may move one of its addresses from one status to another on its own
/// (D12 §5.11, figure 5.11-1), and on what condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// At any time (a renewal, an expiry at the lease's end, a release, a DECLINE, the operator).
    Allowed,
    /// Only to the client that held it, and only while no update reporting the expiry or
    /// release has been sent to the partner (ISC's "rewind", S5).
    RewindOnly,
    /// Only once the partner has acknowledged the transitory status, or in PARTNER-DOWN once the
    /// MCLT has passed ([`reusable_at`]).
    AfterPartnerAck,
    /// Only in PARTNER-DOWN once the MCLT has passed: the address is the partner's to allocate.
    PartnerDownOnly,
    /// Never; the partner or the operator must move it.
    Forbidden,
}

/// The condition on a transition a server of `role` makes on its own.
// One arm per row of the draft's figure, even where two rows end alike.
#[allow(clippy::match_same_arms)]
pub const fn local_transition(role: Role, from: BindingStatus, to: BindingStatus) -> Transition {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
    match (from, to) {
        (Active, Active | Expired | Released | Reset)
        | (Free | Backup | Active | Expired | Released, Abandoned)
        | (Abandoned, Reset | Abandoned)
        | (Free, Free)
        | (Backup, Backup) => Transition::Allowed,
        (Free, Active) => match role {
            Role::Primary => Transition::Allowed,
            Role::Secondary => Transition::PartnerDownOnly,
        },
        (Backup, Active) => match role {
            Role::Secondary => Transition::Allowed,
            Role::Primary => Transition::PartnerDownOnly,
        },
        // Pool balancing: the primary hands FREE addresses to the secondary; either side may
        // give BACKUP back with a FREE update (ISC's secondary does).
        (Free, Backup) => match role {
            Role::Primary => Transition::Allowed,
            Role::Secondary => Transition::Forbidden,
        },
        (Backup, Free) => Transition::Allowed,
        (Expired | Released, Active) => Transition::RewindOnly,
        (Expired | Released | Reset, Free | Backup) => Transition::AfterPartnerAck,
        (Expired, Expired) | (Released, Released) | (Reset, Reset) => Transition::Allowed,
        _ => Transition::Forbidden,
    }
}

/// What the receiver knows of an address, as far as the acceptance rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Held {
    /// Its status.
    pub status: BindingStatus,
    /// When the lease told to the client ends (0 if none).
    pub lease_expiration: Time,
    /// Client last transaction time, if known.
    pub client_last_transaction: Option<Time>,
    /// When the address entered `status`.
    pub start_time_of_state: Time,
}

/// What a received BNDUPD says of an address, as far as the acceptance rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Offered {
    /// The status the partner moved it to.
    pub status: BindingStatus,
    /// The partner's client last transaction time, if it sent one.
    pub client_last_transaction: Option<Time>,
    /// Whether the update names the client the receiver's binding names (only meaningful when
    /// both are ACTIVE).
    pub same_client: bool,
    /// When the lease it reports ends (0 if none), already corrected for the skew.
    pub lease_expiration: Time,
}

/// How far apart the two servers' readings of one moment may still be once the partner's is
/// corrected for the clock skew, seconds: the skew is measured across the link's one-way delay.
/// A partner's report that a lease the receiver holds is over must be newer by more than this
/// (pair simulation, seed 273: a client released at one server and leased again at the other
/// two seconds later; the late-read release freed the new lease).
pub const TIME_UNCERTAINTY: Time = 5;

/// Whether to accept a partner's binding update for an address the receiver holds as `held`
/// (D12 §7.1.3, figure 7.1.3-1). `now` is the receiver's clock; times from the partner are
/// already corrected for the measured clock skew.
///
/// Errors carry the reject reason the BNDACK sends.
// One arm per cell group of the draft's figure, even where two end alike.
#[allow(clippy::match_same_arms)]
pub fn accept_update(
    role: Role,
    now: Time,
    held: &Held,
    offered: &Offered,
) -> Result<(), RejectReason> {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
    let outdated = Err(RejectReason::OUTDATED_BINDING_INFORMATION);
    // Missing in the update counts as older; present in the update and absent here as newer.
    let newer = match (
        offered.client_last_transaction,
        held.client_last_transaction,
    ) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(theirs), Some(ours)) => theirs > ours,
    };
    let if_newer = if newer { Ok(()) } else { outdated };
    let clearly_newer = match (
        offered.client_last_transaction,
        held.client_last_transaction,
    ) {
        (Some(theirs), Some(ours)) => theirs > ours + TIME_UNCERTAINTY,
        _ => newer,
    };
    // The same client's lease again: taken unless it is older than the one held, so that an
    // update queued during a partition does not undo a renewal made since (found by the pair
    // simulation, seed 478: an older ACTIVE, then an older RELEASE freed a leased address).
    let not_older = match (
        offered.client_last_transaction,
        held.client_last_transaction,
    ) {
        (Some(theirs), Some(ours)) => theirs >= ours,
        (None, Some(_)) => false,
        (_, None) => true,
    };
    // Rows: what the receiver holds; columns: what the partner sent.
    match (held.status, offered.status) {
        (Free | Backup, _) => Ok(()),
        (Abandoned, Reset | Abandoned) => Ok(()),
        (Abandoned, _) => Err(RejectReason::LESS_CRITICAL_BINDING_INFORMATION),
        (_, Reset | Abandoned) => Ok(()),
        (Active, Active) if offered.same_client && not_older => Ok(()),
        (Active, Active) if offered.same_client => outdated,
        // Another client's lease that is already over is old news, not a conflict: giving way
        // to it would forget the lease held here (pair simulation, seed 151: a restarted
        // primary's unexpired-looking ACTIVE replaced the secondary's live lease).
        (Active, Active) if offered.lease_expiration <= now => outdated,
        (Active, Active) => match role {
            // Two servers leased one address to two clients: the secondary's table gives way,
            // the primary refuses and its own update wins at the secondary (S11).
            Role::Secondary => Ok(()),
            Role::Primary => Err(RejectReason::FATAL_CONFLICT),
        },
        (Active, Expired | Free | Backup) if now > held.lease_expiration => Ok(()),
        (Active, Expired | Free | Backup) => outdated,
        (Active, Released) if clearly_newer => Ok(()),
        (Active, Released) => outdated,
        // A deviation from the figure, which takes an EXPIRED over a RELEASED only if newer:
        // both say the lease is over, and a refusal leaves each server waiting for the
        // acknowledgement of its own report, which the other refused in turn (pair simulation,
        // seed 6417: a release the primary judged not clearly newer than its lease, then its
        // expiry, crossed; the address never became free).
        (Released, Expired) => Ok(()),
        (Expired | Released, Active) => if_newer,
        (Expired | Released, _) => Ok(()),
        (Reset, Active) => match offered.client_last_transaction {
            Some(t) if t > held.start_time_of_state => Ok(()),
            _ => outdated,
        },
        (Reset, _) => Ok(()),
    }
}

/// Checks that a binding update carries what its status requires (D12 table 7.1-1): an ACTIVE
/// binding names its client and carries the lease and potential expiration times.
pub fn check_update(update: &BindingUpdate<'_>) -> Result<(), RejectReason> {
    let complete = update.status != BindingStatus::Active
        || ((update.client_id.is_some() || update.hardware.is_some())
            && update.lease_expiration.is_some()
            && update.potential_expiration.is_some());
    if complete {
        Ok(())
    } else {
        Err(RejectReason::MISSING_BINDING_INFORMATION)
    }
}

/// The four per-address times failover keeps beside the lease expiration (D12 §7.1.5; ISC's
/// lease-file `tstp`, `tsfp`, `atsfp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PartnerTimes {
    /// The latest potential expiration time this server sent in a BNDUPD (acknowledged or not).
    pub sent: Time,
    /// The latest potential expiration time the partner acknowledged.
    pub acked: Time,
    /// The latest potential expiration time received from the partner (and acknowledged).
    pub received: Time,
}

/// The longest lease, in seconds, that may be granted (or a renewal extended to) at `now`
/// without breaking the MCLT rule (S2, D12 §5.2.1): `now + lease <= max(now, acked, received) +
/// mclt`. A first lease on an address the partner never acknowledged is at most the MCLT; once
/// the partner has acknowledged a potential expiration far enough ahead, the whole `desired`.
pub fn grantable_lease(now: Time, desired: u32, mclt: u32, times: &PartnerTimes) -> u32 {
    let horizon = now.max(times.acked).max(times.received) + u64::from(mclt);
    let allowed = horizon - now;
    u32::try_from(allowed).map_or(desired, |a| a.min(desired))
}

/// The potential expiration time to send with a lease of `granted` seconds when the client
/// wants `desired`: far enough ahead that, once acknowledged, the renewal at half the granted
/// lease may be given the whole desired lease (ISC: `now + desired + granted / 2`).
pub fn potential_expiration(now: Time, desired: u32, granted: u32) -> Time {
    now + u64::from(desired) + u64::from(granted / 2)
}

/// When an address a client held may be given to another client by a server in PARTNER-DOWN
/// since `partner_down_since` (S5, D12 §5.2.2, §9.4.2): the MCLT after every time either side
/// may have promised it until, and the MCLT after PARTNER-DOWN began.
pub fn reusable_at(
    lease_expiration: Time,
    times: &PartnerTimes,
    mclt: u32,
    partner_down_since: Time,
) -> Time {
    let promised = lease_expiration
        .max(times.sent)
        .max(times.acked)
        .max(times.received);
    (promised + u64::from(mclt)).max(partner_down_since + u64::from(mclt))
}

/// A client hardware address, owned: the hardware type and up to 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hardware {
    /// ARP hardware type (1 = Ethernet).
    pub htype: u8,
    len: u8,
    addr: [u8; 16],
}

impl Hardware {
    /// A hardware address of type `htype`; `None` if `addr` is longer than 16 bytes.
    pub fn new(htype: u8, addr: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; 16];
        bytes.get_mut(..addr.len())?.copy_from_slice(addr);
        Some(Hardware {
            htype,
            len: addr.len() as u8,
            addr: bytes,
        })
    }

    /// An Ethernet address.
    pub fn ethernet(mac: [u8; 6]) -> Self {
        let mut addr = [0u8; 16];
        addr[..6].copy_from_slice(&mac);
        Hardware {
            htype: 1,
            len: 6,
            addr,
        }
    }

    /// The address bytes.
    pub fn addr(&self) -> &[u8] {
        &self.addr[..usize::from(self.len)]
    }
}

/// One binding as the session queues it for the partner or hands a partner's to the caller:
/// a [`BindingUpdate`] that owns its data, with times on the receiver's clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The address.
    pub address: Ipv4Addr,
    /// Its status.
    pub status: BindingStatus,
    /// The client's option 61, if it sent one.
    pub client_id: Option<Box<[u8]>>,
    /// The client's hardware address.
    pub hardware: Option<Hardware>,
    /// Lease expiration time told to the client (0: none).
    pub lease_expiration: Time,
    /// Potential expiration time (0: none).
    pub potential_expiration: Time,
    /// When the binding entered its status (0: none).
    pub start_time_of_state: Time,
    /// Client last transaction time, if known.
    pub client_last_transaction: Option<Time>,
    /// IP flags (bit 0 RESERVED, bit 1 BOOTP); sent only when non-zero, as ISC does.
    pub ip_flags: u16,
    /// Client-request-options as on the wire (D12 §12.8): the DHCP magic cookie, then options
    /// the client sent (its names, vendor class, the relay's option 82). ISC sends none.
    pub client_request_options: Option<Box<[u8]>>,
}

impl Binding {
    /// A binding with only the address and status.
    pub const fn new(address: Ipv4Addr, status: BindingStatus) -> Self {
        Binding {
            address,
            status,
            client_id: None,
            hardware: None,
            lease_expiration: 0,
            potential_expiration: 0,
            start_time_of_state: 0,
            client_last_transaction: None,
            ip_flags: 0,
            client_request_options: None,
        }
    }

    /// The binding a received update describes, its times moved onto the receiver's clock by
    /// `skew` (the partner's clock minus ours, in seconds). A time of 0 means none and stays 0.
    pub fn from_update(update: &BindingUpdate<'_>, skew: i64) -> Self {
        let local = |t: Option<u32>| match t {
            None | Some(0) => 0,
            Some(t) => u64::try_from(i64::from(t) - skew).unwrap_or(0),
        };
        Binding {
            address: update.address,
            status: update.status,
            client_id: update.client_id.map(Box::from),
            hardware: update.hardware.and_then(|h| Hardware::new(h.htype, h.addr)),
            lease_expiration: local(update.lease_expiration),
            potential_expiration: local(update.potential_expiration),
            start_time_of_state: local(update.start_time_of_state),
            client_last_transaction: update.client_last_transaction.map(|t| local(Some(t))),
            ip_flags: update.ip_flags.unwrap_or(0),
            client_request_options: update.client_request_options.map(Box::from),
        }
    }

    /// The update that sends this binding, with the options ISC sends for its status: the three
    /// times always (0 where none), the client and its last transaction time when known.
    pub fn to_update(&self) -> BindingUpdate<'_> {
        let wire = |t: Time| u32::try_from(t).unwrap_or(u32::MAX);
        let mut u = BindingUpdate::new(self.address, self.status);
        u.client_id = self.client_id.as_deref();
        u.hardware = self.hardware.as_ref().map(|h| HardwareAddr {
            htype: h.htype,
            addr: h.addr(),
        });
        u.lease_expiration = Some(wire(self.lease_expiration));
        u.potential_expiration = Some(wire(self.potential_expiration));
        u.start_time_of_state = Some(wire(self.start_time_of_state));
        u.client_last_transaction = self.client_last_transaction.map(wire);
        u.ip_flags = (self.ip_flags != 0).then_some(self.ip_flags);
        u.client_request_options = self.client_request_options.as_deref();
        u
    }
}
