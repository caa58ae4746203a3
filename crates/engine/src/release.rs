//! RELEASE and DECLINE end a client's binding (and a ping check that something answered ends
//! an offer); INFORM asks for configuration only.

use std::net::Ipv4Addr;

use peregrine_wire::dhcp::MessageType;

use crate::binding::{Binding, BindingEvent, BindingState, Time};
use crate::clients::Loc;
use crate::engine::{Engine, Request};
use crate::reply::ReplySpec;
use crate::scope::Scope;
use crate::verdict::{DropReason, Verdict};

impl Engine {
    pub(crate) fn decline(&self, r: &Request<'_, '_>, scope: &Scope) -> Verdict {
        let Some(addr) = r.msg.requested_ip() else {
            return Verdict::Drop(DropReason::NoBinding);
        };
        if r.msg.server_id().is_some_and(|sid| !r.names_us(scope, sid)) {
            return Verdict::Drop(DropReason::ServerIdNotOurs);
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

    /// Something answered a probe of `address` (a ping check): a host we know nothing of uses
    /// it. The address goes out of service for the decline probation, as a DECLINE puts it,
    /// whoever it was offered to; returns the change to record. `None` if the address is in no
    /// pool, or a client holds it (an active lease or a reservation is not taken away on a
    /// probe's word).
    pub fn address_in_use(&self, now: Time, address: Ipv4Addr) -> Option<BindingEvent> {
        let (s, p, at) = self
            .scopes
            .iter()
            .find_map(|s| s.locate(address).map(|(p, at)| (s, p, at)))?;
        let loc = Loc::new(s.id, p, at);
        // Lock order: the holder's client-index shard, then the pool shard.
        let holder = s.pools[p].lock(at.shard).binding(at.slot).client;
        let hashed = holder.map(|k| self.clients.hashed(k));
        let mut clients = hashed.as_ref().map(|k| self.clients.lock(k));
        let mut shard = s.pools[p].lock(at.shard);
        let b = *shard.binding(at.slot);
        let probed = b.state == BindingState::Offered || b.state.is_available();
        if b.client != holder || !probed {
            return None;
        }
        shard.unlink(at.slot);
        let after = shard.set(
            at.slot,
            Binding {
                client: None,
                state: BindingState::Abandoned,
                expires: now + Time::from(self.settings.decline_probation),
                cltt: now,
                ..b
            },
        );
        shard.schedule(at.slot, after.expires);
        if let (Some(key), Some((held, map))) = (holder, clients.as_mut()) {
            self.clients.forget(key, loc, *held, map);
        }
        Some(BindingEvent {
            scope: s.id,
            address,
            binding: after,
        })
    }

    /// The operator ends the lease (or offer) of `address`, as its client's RELEASE would:
    /// the address is released at `now`, keeps its client's affinity, and goes back to the
    /// pool (a reserved one to its reservation; with a failover partner, once the partner has
    /// acknowledged the release). An address held back after journal damage is let go the
    /// same way (free if it remembers no client). Returns the change to record; `None` if the
    /// address is in no pool or neither held by a client nor held back.
    pub fn revoke(&self, now: Time, address: Ipv4Addr) -> Option<BindingEvent> {
        let (s, p, at) = self
            .scopes
            .iter()
            .find_map(|s| s.locate(address).map(|(p, at)| (s, p, at)))?;
        if let Some(ended) = self.end_hold_back(now, s, &s.pools[p], at, address) {
            return Some(ended);
        }
        // Lock order: the holder's client-index shard, then the pool shard.
        let holder = s.pools[p].lock(at.shard).binding(at.slot).client?;
        let _clients = self.clients.lock(&self.clients.hashed(holder));
        let mut shard = s.pools[p].lock(at.shard);
        let b = *shard.binding(at.slot);
        if b.client != Some(holder)
            || !matches!(b.state, BindingState::Active | BindingState::Offered)
        {
            return None;
        }
        shard.unlink(at.slot);
        let reserved = s.reservations.of_address(address).is_some();
        let after = shard.set(
            at.slot,
            Binding {
                state: if reserved {
                    BindingState::Reserved
                } else {
                    BindingState::Released
                },
                expires: now,
                cltt: now,
                ..b
            },
        );
        // With a partner, a released address waits for the partner's acknowledgement (S5).
        if !reserved && self.partnering_of(s).is_none() {
            shard.push_free(at.slot);
        }
        Some(BindingEvent {
            scope: s.id,
            address,
            binding: after,
        })
    }

    /// Ends the hold-back of `address` (at `at` in `pool` of `s`), if it is held back: released,
    /// or free if it remembers no client. Its client index entry stays, as a release keeps it.
    fn end_hold_back(
        &self,
        now: Time,
        s: &Scope,
        pool: &crate::pool::Pool,
        at: crate::pool::SlotRef,
        address: Ipv4Addr,
    ) -> Option<BindingEvent> {
        let mut shard = pool.lock(at.shard);
        let b = *shard.binding(at.slot);
        if b.state != BindingState::HeldBack {
            return None;
        }
        let state = if b.client.is_some() {
            BindingState::Released
        } else {
            BindingState::Free
        };
        let after = shard.set(
            at.slot,
            Binding {
                state,
                expires: now,
                cltt: now,
                ..b
            },
        );
        // With a partner, a released address waits for the partner's acknowledgement (S5).
        if state == BindingState::Free || self.partnering_of(s).is_none() {
            shard.push_free(at.slot);
        }
        Some(BindingEvent {
            scope: s.id,
            address,
            binding: after,
        })
    }

    pub(crate) fn release(&self, r: &Request<'_, '_>, scope: &Scope) -> Verdict {
        let addr = r.msg.packet().ciaddr();
        if r.msg.server_id().is_some_and(|sid| !r.names_us(scope, sid)) {
            return Verdict::Drop(DropReason::ServerIdNotOurs);
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
        } else if self.partnering_of(s).is_none() || after.state != BindingState::Released {
            // With a partner, a released address waits for the partner to acknowledge the
            // release before another client may have it (S5).
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

    pub(crate) fn inform(&self, r: &Request<'_, '_>, scope: &Scope, tx: &mut [u8]) -> Verdict {
        if r.msg.packet().ciaddr().is_unspecified() {
            return Verdict::Drop(DropReason::InformWithoutCiaddr);
        }
        let spec = ReplySpec {
            kind: MessageType::Ack,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            scope,
            classes: r.classes,
            reservation: None,
            rapid_commit: false,
        };
        self.reply(r, &spec, tx, None)
    }
}
