//! What failover asks of the engine's decisions (draft-ietf-dhc-failover-12): which clients
//! this server answers in its failover state, and how long a lease it may grant before its
//! partner has acknowledged the binding (the MCLT rule). The rules themselves are
//! `peregrine-failover`'s; the session's state reaches the engine as a [`Service`] it reads once
//! per request.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use peregrine_failover::BindingStatus;
pub use peregrine_failover::Service;
use peregrine_failover::binding::{
    Binding as PartnerBinding, Hardware, PartnerTimes, grantable_lease, potential_expiration,
    reusable_at,
};
use peregrine_failover::hash::{BitOrder, HashBucketAssignment, bucket};
use peregrine_wire::dhcp::{DhcpMessage, MAGIC_COOKIE, MessageType};

use crate::binding::{Binding, BindingEvent, BindingState, Time};
use crate::engine::Engine;
use crate::verdict::DropReason;

/// How this server shares its pools with a failover partner, as far as its decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// Whether this server is the relationship's primary.
    pub primary: bool,
    /// Maximum client lead time, seconds: how far a lease may run past what the partner has
    /// acknowledged.
    pub mclt: u32,
    /// The hash bucket assignment: a set bit means the primary answers the bucket in NORMAL.
    pub buckets: HashBucketAssignment,
    /// How `buckets` is read (ISC's own reading, towards an ISC partner).
    pub bit_order: BitOrder,
    /// A client whose `secs` exceeds this is answered whatever its bucket (ISC's `load balance
    /// max seconds`); 0 never.
    pub load_balance_max_secs: u16,
    /// A guard deliberately removed, for the simulation's mutation tests only: the S1 checker
    /// must catch each. `None` in every real server.
    #[doc(hidden)]
    pub broken: Option<Broken>,
}

/// The failover guards a mutation test may remove (issue 27: the checker must have teeth).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// A server allocates its partner's available addresses too (S6 removed).
    IgnoreOwnership,
    /// In PARTNER-DOWN the partner's addresses are taken at once, not after the MCLT (S5).
    NoPartnerDownWait,
    /// Leases are granted as the scope says, not bounded by what the partner has acknowledged
    /// plus the MCLT (the MCLT rule removed).
    NoMcltClamp,
    /// A server whose service is none (just started, recovering, or out of touch without
    /// PARTNER-DOWN) answers every client as if in NORMAL (S7 removed).
    AnswerWhenSilent,
    /// A partner's report that an address's lease is over undoes an availability (FREE,
    /// BACKUP) set after the report was made.
    AcceptStaleReports,
    /// A partner's update is installed even where the draft's acceptance rules (D12 §7.1.3)
    /// reject it.
    AcceptRejected,
}

impl FailoverPolicy {
    /// Whether the load-balancing hash gives the client of `msg` to this server.
    fn answers(&self, msg: &DhcpMessage<'_>) -> bool {
        let secs = msg.packet().secs();
        if self.load_balance_max_secs > 0 && secs > self.load_balance_max_secs {
            return true;
        }
        // RFC 3074: the client identifier's value (type byte included), else chaddr.
        let mut scratch = [0u8; 255];
        let id = msg
            .client_id()
            .and_then(|v| v.contiguous(&mut scratch).ok());
        let key = id.unwrap_or_else(|| msg.packet().chaddr());
        self.buckets.primary_answers(bucket(key), self.bit_order) == self.primary
    }
}

/// The engine's failover side: the policy, fixed at start, and the service the session's
/// state allows, changed by the link thread as the state changes.
#[derive(Debug)]
pub(crate) struct Partnering {
    pub(crate) policy: FailoverPolicy,
    service: AtomicU8,
    /// When this server entered PARTNER-DOWN (0: it is not in PARTNER-DOWN).
    partner_down_since: AtomicU64,
    /// From when this server's own available addresses may be allocated: a partner in
    /// PARTNER-DOWN may have used them (the session's `own_addresses_from`).
    own_from: AtomicU64,
}

/// Which of a shard's lists of available addresses an allocation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The primary's FREE addresses.
    Primary,
    /// The secondary's BACKUP addresses.
    Secondary,
}

impl Partnering {
    pub(crate) fn new(policy: FailoverPolicy) -> Partnering {
        Partnering {
            policy,
            // Silent until the session says otherwise: a server that does not yet know its
            // failover state must leave no trace of any client.
            service: AtomicU8::new(Service::None as u8),
            partner_down_since: AtomicU64::new(0),
            own_from: AtomicU64::new(0),
        }
    }

    /// The same policy in the same state, for the engine a reload builds.
    pub(crate) fn carried(&self) -> Partnering {
        let copy = |a: &AtomicU64| AtomicU64::new(a.load(Ordering::Relaxed));
        Partnering {
            policy: self.policy,
            service: AtomicU8::new(self.service.load(Ordering::Relaxed)),
            partner_down_since: copy(&self.partner_down_since),
            own_from: copy(&self.own_from),
        }
    }

    /// This server's pool.
    pub(crate) fn own(&self) -> Owner {
        if self.policy.primary {
            Owner::Primary
        } else {
            Owner::Secondary
        }
    }

    /// The state an available address of this server's own pool is in.
    pub(crate) fn own_state(&self) -> BindingState {
        match self.own() {
            Owner::Primary => BindingState::Free,
            Owner::Secondary => BindingState::Backup,
        }
    }

    /// Whether this server may allocate the partner's available addresses at `now`: in
    /// PARTNER-DOWN, once the MCLT has passed since it began (S5, S6).
    pub(crate) fn may_take_partners(&self, now: Time) -> bool {
        let since = self.partner_down_since.load(Ordering::Relaxed);
        let wait = if self.policy.broken == Some(Broken::NoPartnerDownWait) {
            0
        } else {
            Time::from(self.policy.mclt)
        };
        since != 0 && now >= since + wait
    }

    /// Whether this server may allocate its own addresses at `now`: once a partner that may
    /// have used them in PARTNER-DOWN can hold none of them any more.
    pub(crate) fn may_take_own(&self, now: Time) -> bool {
        now >= self.own_from.load(Ordering::Relaxed)
    }

    /// Whether the partner's address bound as `b` may go to a new client at `now`, in
    /// PARTNER-DOWN: the MCLT after everything either side may have promised on it (S5).
    pub(crate) fn partners_reusable(&self, b: &Binding, now: Time) -> bool {
        if self.policy.broken == Some(Broken::NoPartnerDownWait) {
            return true;
        }
        let since = self.partner_down_since.load(Ordering::Relaxed);
        let times = PartnerTimes {
            sent: b.partner_sent,
            acked: b.partner_acked,
            received: 0,
        };
        now >= reusable_at(b.expires, &times, self.policy.mclt, since)
    }

    /// Whether an address of this server's own pool bound as `b` may go to a new client at
    /// `now`: never promised to anyone by either side, or the MCLT after the latest either
    /// side may have promised (its lease, the potential expirations sent and received). The
    /// partner's acknowledgement of an expiry is not enough alone: a partner that lost its
    /// lease database and recovered acknowledges what it no longer knows it promised (found
    /// by the pair simulation, seed 736).
    pub(crate) fn own_reusable(&self, b: &Binding, now: Time) -> bool {
        let promised = b.partner_sent.max(b.partner_acked);
        promised == 0 || now >= b.expires.max(promised) + Time::from(self.policy.mclt)
    }

    /// Whether an address no client holds now (bound as `b`) may be granted at `now`: of this
    /// server's own pool once nothing promised on it may still run, of the partner's in
    /// PARTNER-DOWN once the MCLT past every promise has passed.
    pub(crate) fn may_grant_unheld(&self, b: &Binding, now: Time) -> bool {
        if b.state == self.own_state() {
            self.may_take_own(now) && self.own_reusable(b, now)
        } else if matches!(b.state, BindingState::Free | BindingState::Backup) {
            self.may_take_partners(now) && self.partners_reusable(b, now)
        } else {
            false
        }
    }

    /// Whether an available address in `state` may be allocated to a new client at `now`.
    pub(crate) fn may_allocate(&self, state: BindingState, now: Time) -> bool {
        match state {
            BindingState::Free => self.own() == Owner::Primary || self.may_take_partners(now),
            BindingState::Backup => self.own() == Owner::Secondary || self.may_take_partners(now),
            _ => false,
        }
    }

    pub(crate) fn service(&self) -> Service {
        Service::from_u8(self.service.load(Ordering::Relaxed)).unwrap_or(Service::None)
    }

    /// Whether a request of `kind` is answered in the current service (S7); the reason if not.
    pub(crate) fn admits(
        &self,
        kind: MessageType,
        msg: &DhcpMessage<'_>,
    ) -> Result<(), DropReason> {
        let p = msg.packet();
        let renewal = kind == MessageType::Request
            && !p.ciaddr().is_unspecified()
            && msg.server_id().is_none()
            && msg.requested_ip().is_none();
        let service = match self.service() {
            Service::None if self.policy.broken == Some(Broken::AnswerWhenSilent) => {
                Service::Balanced
            }
            service => service,
        };
        match service {
            Service::All => Ok(()),
            Service::RenewOnly if renewal => Ok(()),
            Service::None | Service::RenewOnly => Err(DropReason::FailoverSilent),
            // NORMAL: renewals from anyone, a REQUEST naming a server by its id goes where it
            // names, and the rest (DISCOVER, INIT-REBOOT, RELEASE, DECLINE, INFORM) by hash.
            Service::Balanced if renewal || msg.server_id().is_some() => Ok(()),
            Service::Balanced if self.policy.answers(msg) => Ok(()),
            Service::Balanced => Err(DropReason::PartnerClient),
        }
    }

    /// The lease to grant at `now` when the scope grants `desired` and the address's binding
    /// is `b` (its partner times), and the potential expiration to send the partner with it.
    pub(crate) fn grant(&self, now: Time, desired: u32, b: &Binding) -> (u32, Time) {
        let times = PartnerTimes {
            sent: b.partner_sent,
            acked: b.partner_acked,
            received: 0,
        };
        let granted = if self.policy.broken == Some(Broken::NoMcltClamp) {
            desired
        } else {
            grantable_lease(now, desired, self.policy.mclt, &times)
        };
        (granted, potential_expiration(now, desired, granted))
    }
}

impl Engine {
    /// Sets the failover policy: from then on every request passes the service check and
    /// every lease the MCLT rule. The service starts silent ([`Engine::set_failover_service`]).
    #[must_use]
    pub fn with_failover(mut self, policy: FailoverPolicy) -> Engine {
        self.partnering = Some(Partnering::new(policy));
        self
    }

    /// The clients the failover state answers now (the link thread sets it as the session's
    /// state changes, once the change is durable).
    pub fn set_failover_service(&self, service: Service) {
        if let Some(p) = &self.partnering {
            p.service.store(service as u8, Ordering::Relaxed);
        }
    }

    /// This server entered PARTNER-DOWN at `since` (`None`: it left it): the partner's
    /// available addresses become this server's to allocate once the MCLT has passed.
    pub fn set_partner_down(&self, since: Option<Time>) {
        if let Some(p) = &self.partnering {
            p.partner_down_since
                .store(since.map_or(0, |t| t.max(1)), Ordering::Relaxed);
        }
    }

    /// This server's own available addresses may be allocated from `at` on (the session's
    /// `own_addresses_from`: a partner in PARTNER-DOWN may have used them). Set after every
    /// batch of session events; 0 at once, `Time::MAX` not until told otherwise.
    pub fn set_own_addresses_from(&self, at: Time) {
        if let Some(p) = &self.partnering {
            p.own_from.store(at, Ordering::Relaxed);
        }
    }

    /// Moves up to `max` of the primary's FREE addresses (those freed longest ago) to BACKUP,
    /// the secondary's to allocate; returns the changes to journal and send the partner.
    /// Nothing at a secondary or without failover.
    pub fn assign_backup(&self, now: Time, max: usize) -> Vec<BindingEvent> {
        let mut out = Vec::new();
        if !self.partnering.as_ref().is_some_and(|p| p.policy.primary) {
            return out;
        }
        for s in self.scopes.iter().filter(|s| s.shared) {
            for pool in s.pools.iter().filter(|p| p.dynamic) {
                move_to_backup(s, pool, now, max - out.len(), &mut out);
            }
        }
        out
    }

    /// Pool balancing at the primary, as it answers the secondary's POOLREQ (D12 §5.4): in
    /// each pool, FREE addresses move to BACKUP until the secondary holds half of what is
    /// available (the hash gives it half the clients). Returns the changes to journal and
    /// send the partner; nothing at a secondary or without failover.
    pub fn balance_pools(&self, now: Time) -> Vec<BindingEvent> {
        let mut out = Vec::new();
        if !self.partnering.as_ref().is_some_and(|p| p.policy.primary) {
            return out;
        }
        for s in self.scopes.iter().filter(|s| s.shared) {
            for pool in s.pools.iter().filter(|p| p.dynamic) {
                let (free, backup) = (0..pool.shard_count()).fold((0, 0), |(f, b), k| {
                    let shard = pool.lock(k);
                    (
                        f + shard.count(BindingState::Free),
                        b + shard.count(BindingState::Backup),
                    )
                });
                let short = u32::midpoint(free, backup).saturating_sub(backup) as usize;
                move_to_backup(s, pool, now, short, &mut out);
            }
        }
        out
    }

    /// The partner acknowledged `address`'s binding, sent as `status` with
    /// `potential_expiration`: leases on it may now run to that time plus the MCLT, and an
    /// acknowledged expiry or release frees it. Returns the change to journal; `None` if the
    /// address is in no pool or already knew as much.
    pub fn partner_acknowledged(
        &self,
        address: Ipv4Addr,
        potential_expiration: Time,
        status: BindingStatus,
    ) -> Option<BindingEvent> {
        let (s, p, at) = self
            .scopes
            .iter()
            .filter(|s| s.shared)
            .find_map(|s| s.locate(address).map(|(p, at)| (s, p, at)))?;
        let mut shard = s.pools[p].lock(at.shard);
        let b = *shard.binding(at.slot);
        // An expiry or release the partner has acknowledged: the address is the primary's
        // again, to allocate (D12 §5.11); its client keeps affinity. The acknowledgement of
        // an earlier update (the lease before it ended) does not free it (pair simulation,
        // seed 2759: the partner took the lease, refused the release, and kept the client).
        let transitory = matches!(
            (b.state, status),
            (BindingState::Expired, BindingStatus::Expired)
                | (BindingState::Released, BindingStatus::Released)
        );
        if b.partner_acked >= potential_expiration && !transitory {
            return None;
        }
        let stored = shard.set(
            at.slot,
            Binding {
                partner_acked: b.partner_acked.max(potential_expiration),
                state: if transitory {
                    BindingState::Free
                } else {
                    b.state
                },
                ..b
            },
        );
        if transitory {
            shard.push_free(at.slot);
        }
        Some(BindingEvent {
            scope: s.id,
            address,
            binding: stored,
        })
    }
}

/// Moves up to `max` FREE addresses of `pool` to BACKUP, appending the changes to `out`.
fn move_to_backup(
    s: &crate::scope::Scope,
    pool: &crate::pool::Pool,
    now: Time,
    max: usize,
    out: &mut Vec<BindingEvent>,
) {
    let goal = out.len() + max;
    for k in 0..pool.shard_count() {
        let mut shard = pool.lock(k);
        while out.len() < goal {
            let Some(slot) = shard.pop_free() else {
                break;
            };
            let b = *shard.binding(slot);
            let stored = shard.set(
                slot,
                Binding {
                    state: BindingState::Backup,
                    client: None,
                    info: crate::info::ClientInfo::EMPTY,
                    // When it entered BACKUP: a partner's older report on the
                    // address does not undo it.
                    cltt: now,
                    ..b
                },
            );
            shard.push_free(slot);
            let at = crate::pool::SlotRef { shard: k, slot };
            out.push(BindingEvent {
                scope: s.id,
                address: pool.address(at),
                binding: stored,
            });
        }
    }
}

impl BindingEvent {
    /// Whether this change, made by installing the partner's `update`, must be told back to
    /// the partner: the primary kept an address BACKUP that the secondary reported free.
    pub fn tell_partner_back(&self, update: &PartnerBinding) -> bool {
        self.binding.state == BindingState::Backup
            && matches!(
                update.status,
                BindingStatus::Expired | BindingStatus::Released
            )
    }

    /// The binding update that tells a failover partner of this change (D12 §7.1): the
    /// client's identity, the lease, and the latest promise known on the address (this
    /// server's potential expiration, and the partner's it acknowledged: what a recovering
    /// partner must learn).
    pub fn partner_update(&self) -> PartnerBinding {
        let b: &Binding = &self.binding;
        let status = match b.state {
            BindingState::Active | BindingState::Offered | BindingState::Reserved => {
                BindingStatus::Active
            }
            BindingState::Expired => BindingStatus::Expired,
            BindingState::Released => BindingStatus::Released,
            BindingState::Abandoned | BindingState::HeldBack => BindingStatus::Abandoned,
            BindingState::Reset | BindingState::Free => BindingStatus::Free,
            BindingState::Backup => BindingStatus::Backup,
        };
        let mut u = PartnerBinding::new(self.address, status);
        if let Some(key) = b.client {
            let (kind, bytes) = key.to_raw();
            match kind {
                0 => u.hardware = Hardware::new(bytes[0], &bytes[1..]),
                _ => u.client_id = Some(bytes.into()),
            }
        }
        if u.hardware.is_none() && b.mac != [0; 6] {
            u.hardware = Some(Hardware::ethernet(b.mac));
        }
        u.lease_expiration = b.expires;
        // Everything this server knows may have been promised on the address: its own potential
        // expiration, and the partner's it acknowledged (what a recovering partner must learn).
        u.potential_expiration = b.partner_sent.max(b.partner_acked);
        u.start_time_of_state = b.state_since();
        u.client_last_transaction = Some(b.cltt);
        if !b.info.is_empty() {
            u.client_request_options = Some([&MAGIC_COOKIE[..], b.info.as_bytes()].concat().into());
        }
        u
    }
}
