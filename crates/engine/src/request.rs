//! REQUEST (RFC 2131 section 4.3.2): commit the binding and ACK it, NAK it, or stay silent.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use peregrine_wire::dhcp::MessageType;

use crate::binding::{Binding, BindingState, Time};
use crate::clients::Loc;
use crate::engine::{Engine, Grant, Request};
use crate::info::ClientInfo;
use crate::reply::{LeaseGrant, ReplySpec, asked_lease};
use crate::scope::Scope;
use crate::select::{allows, reservation_for};
use crate::verdict::{DropReason, Verdict};

/// How a REQUEST reached us (RFC 2131 section 4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestState {
    Selecting,
    InitReboot,
    RenewingOrRebinding,
}

impl Engine {
    pub(crate) fn request(&self, r: &Request<'_, '_>, scope: &Scope, tx: &mut [u8]) -> Verdict {
        let p = r.msg.packet();
        if let Some(sid) = r.msg.server_id() {
            if !r.names_us(scope, sid) {
                self.withdraw_offer(r, scope);
                return Verdict::Drop(DropReason::ServerIdNotOurs);
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

    /// The client of `r` asks for another address than its binding at `old` (the caller holds
    /// its index entry, and no pool shard): true if it must be refused with a NAK, a rebooting
    /// client we hold a lease for having a wrong notion of its address (RFC 2131 §4.3.2); else
    /// an address on offer to it at `old` goes back to the pool.
    fn settle_elsewhere(&self, r: &Request<'_, '_>, state: RequestState, old: Loc) -> bool {
        if state == RequestState::InitReboot {
            let pool = &self.scope(old.scope).pools[usize::from(old.pool)];
            let b = *pool.lock(old.at.shard).binding(old.at.slot);
            if b.owned_by(&r.key) && b.state == BindingState::Active && b.held_at(r.now) {
                return true;
            }
        }
        self.return_offer(r, old);
        false
    }

    /// Puts the address at `loc` back in its pool if it is on offer to this client (the caller
    /// holds the client's index entry, and no pool shard).
    fn return_offer(&self, r: &Request<'_, '_>, loc: Loc) {
        let s = self.scope(loc.scope);
        let pool = &s.pools[usize::from(loc.pool)];
        let mut shard = pool.lock(loc.at.shard);
        let b = *shard.binding(loc.at.slot);
        if b.owned_by(&r.key) && b.state == BindingState::Offered {
            let freed = Binding {
                state: self.available_state(s),
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
        let (s, loc) = match self.locate_wanted(scope, want) {
            Ok(found) => found,
            // Wrong network for this client (RFC 2131 section 4.3.2).
            Err(s) => return self.refuse(r, s, state, tx),
        };
        let (p, at) = (usize::from(loc.pool), loc.at);
        let (held, mut clients) = self.clients.lock(&r.hkey);

        // One pool-shard lock at a time: return a different address on offer to the client first.
        if let Some(old) = clients.get(&r.hkey).copied().filter(|old| *old != loc)
            && self.settle_elsewhere(r, state, old)
        {
            drop(clients);
            return self.nak(r, s, tx);
        }
        let pool = &s.pools[p];
        let mut shard = pool.lock(at.shard);
        let b = *shard.binding(at.slot);
        let reserved_for = s.reservations.of_address(want);
        let mine = b.owned_by(&r.key) && b.state != BindingState::Abandoned;
        if !mine {
            if !may_take(r, s, pool, &b, want, state) {
                drop((shard, clients));
                // Another client's address: NAK, but to a rebooting client we know nothing
                // of only where authoritative (RFC 2131 §4.3.2: no record, remain silent).
                let nak = state != RequestState::InitReboot;
                return if nak && (b.client.is_some() || reserved_for.is_some()) {
                    self.nak(r, s, tx)
                } else {
                    self.refuse(r, s, state, tx)
                };
            }
            // An address held back after journal damage is its holder's, who asks for it
            // by name: whoever does is taken for it, authoritative or not.
            if state != RequestState::Selecting
                && !s.authoritative
                && b.state != BindingState::HeldBack
            {
                // A client we never heard of, renewing or rebooting: another server may own it.
                drop((shard, clients));
                return Verdict::Drop(DropReason::UnknownClient);
            }
        }
        if self.partner_forbids(s, &b, mine, r.now) {
            drop((shard, clients));
            return Verdict::Drop(DropReason::FailoverSilent);
        }
        // A unicast renewal reaches us without the relay, so without option 82: with
        // stash-agent-options the classes and reservation that bound the lease still apply.
        let stashed = mine && self.settings.stash_agent_options && r.rai.is_none();
        let classes = if stashed { b.classes } else { r.classes };
        let info = self.client_info(r, if mine { &b.info } else { &ClientInfo::EMPTY });
        let reservation = if stashed {
            reserved_for
        } else {
            reservation_for(r, s, want)
        };
        // A lease whose client now says something else of itself, or comes with another
        // hardware address (the same client identifier on a new NIC), is granted anew
        // (journaled, told to the partner).
        let asked = asked_lease(s.lease, r.msg);
        if let Some(remaining) = self
            .cached_lease(&b, s, mine, asked, r.now)
            .filter(|_| info == b.info && b.mac == r.mac)
        {
            // Early renewal: the unchanged lease again, nothing to journal (Kea's lease caching).
            shard.set(at.slot, Binding { cltt: r.now, ..b });
            drop((shard, clients));
            let spec = ReplySpec {
                kind: MessageType::Ack,
                yiaddr: want,
                lease: Some(LeaseGrant::scaled(s.lease, remaining)),
                scope: s,
                classes,
                reservation,
                rapid_commit: false,
            };
            return self.reply(r, &spec, tx, None);
        }
        // With a failover partner, no longer than the partner has acknowledged plus the MCLT;
        // the potential expiration sent with the update lets the next renewal have it all.
        let (valid, sent) = self.lease_to_grant(r.now, s, asked, &b);
        let grant = Grant {
            state: BindingState::Active,
            expires: r.now + Time::from(valid),
            granted: valid,
            classes,
            info: Some(&info),
            sent,
        };
        let binding = self.take(r, held, &mut clients, &mut shard, loc, &grant);
        drop(shard);
        drop(clients);
        let spec = ReplySpec {
            kind: MessageType::Ack,
            yiaddr: want,
            lease: Some(LeaseGrant::scaled(s.lease, valid)),
            scope: s,
            classes,
            reservation,
            rapid_commit: false,
        };
        self.reply_bound(r, &spec, binding, tx)
    }

    /// The scope on `scope`'s link and the pool slot of the address the client wants; `Err`
    /// names the scope to refuse it in if there is none.
    fn locate_wanted<'s>(
        &'s self,
        scope: &'s Scope,
        want: Ipv4Addr,
    ) -> Result<(&'s Scope, Loc), &'s Scope> {
        let link = self.link(scope);
        let s = link
            .iter()
            .map(|id| self.scope(*id))
            .find(|s| s.subnet.contains(want))
            .ok_or(scope)?;
        let (p, at) = s.locate(want).ok_or(s)?;
        Ok((s, Loc::new(s.id, p, at)))
    }

    /// What the lease keeps of the request's client (see [`ClientInfo::capture`]), counting
    /// a grant whose options did not all fit.
    pub(crate) fn client_info(&self, r: &Request<'_, '_>, previous: &ClientInfo) -> ClientInfo {
        let (info, left_out) = ClientInfo::capture(r.msg, previous);
        if left_out {
            self.info_left_out.fetch_add(1, Ordering::Relaxed);
        }
        info
    }

    /// The lease to grant on `b` now, given the client `asked` for it (see [`asked_lease`]),
    /// and with a partner the potential expiration to send.
    pub(crate) fn lease_to_grant(
        &self,
        now: Time,
        s: &Scope,
        asked: u32,
        b: &Binding,
    ) -> (u32, Option<Time>) {
        match self.partnering_of(s) {
            Some(p) => {
                let (granted, pet) = p.grant(now, asked, b);
                (granted, Some(pet))
            }
            None => (asked, None),
        }
    }

    /// With a partner, granting an address the client does not hold now (a lease that ended,
    /// an address back in a pool) is an allocation, by the ownership rules; without them a
    /// server recovered from its partner renewed the partner's address (pair simulation, seed
    /// 5981). The caller stays silent: the client rebinds, and its server answers.
    pub(crate) fn partner_forbids(&self, s: &Scope, b: &Binding, mine: bool, now: Time) -> bool {
        let held_now = mine && b.held_at(now);
        self.partnering_of(s)
            .is_some_and(|p| !held_now && !p.may_grant_unheld(b, now))
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

    fn nak(&self, r: &Request<'_, '_>, s: &Scope, tx: &mut [u8]) -> Verdict {
        let spec = ReplySpec {
            kind: MessageType::Nak,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            scope: s,
            classes: 0,
            reservation: None,
            rapid_commit: false,
        };
        self.reply(r, &spec, tx, None)
    }

    /// The remaining lease to answer an early renewal with, unchanged, if the lease may be
    /// cached (Kea's lease caching). A lease shorter than the client asks for now (shortened
    /// by the MCLT rule, or asked shorter before) is not: its renewal may get more. Nor is one the MCLT rule would not grant now: a partner's lease, whose
    /// end this server reads through the clock skew (pair simulation, seed 4716).
    fn cached_lease(
        &self,
        b: &Binding,
        s: &Scope,
        mine: bool,
        asked: u32,
        now: Time,
    ) -> Option<u32> {
        let remaining = u32::try_from(b.expires.saturating_sub(now)).unwrap_or(u32::MAX);
        let promisable = self
            .partnering_of(s)
            .is_none_or(|p| p.grant(now, remaining, b).0 >= remaining);
        let cacheable = mine
            && b.state == BindingState::Active
            && b.granted >= asked
            && promisable
            && self.cache_hit(b, now);
        cacheable.then_some(remaining)
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
}

/// Whether a client may take `want`, which it does not hold: its own reservation, a free
/// dynamic address of a pool its classes may use, or one held back after journal damage that
/// it asks for by name (rebooting, renewing, rebinding: what only the lost record's client
/// would do).
fn may_take(
    r: &Request<'_, '_>,
    s: &Scope,
    pool: &crate::pool::Pool,
    b: &Binding,
    want: Ipv4Addr,
    state: RequestState,
) -> bool {
    if s.reservations.of_address(want).is_some() {
        reservation_for(r, s, want).is_some()
            && (b.state == BindingState::Reserved || b.state.is_available())
    } else {
        let claimed = b.state == BindingState::HeldBack && state != RequestState::Selecting;
        pool.dynamic && allows(pool.classes, r.classes) && (b.state.is_available() || claimed)
    }
}
