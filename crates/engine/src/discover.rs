//! DISCOVER: which address a client is offered, held for it until it asks for it.

use std::net::Ipv4Addr;
use std::sync::MutexGuard;

use peregrine_wire::dhcp::{MessageType, opt};

use crate::binding::{Binding, BindingState, ScopeId, Time};
use crate::clients::{ClientIndex, ClientMap, Loc};
use crate::engine::{Engine, Grant, Request};
use crate::info::ClientInfo;
use crate::partner::Owner;
use crate::pool::{Shard, SlotRef};
use crate::reply::{LeaseGrant, ReplySpec, asked_lease};
use crate::scope::Scope;
use crate::select::{allows, probe, reservation_for};
use crate::verdict::{DropReason, Verdict};

/// An address found for an OFFER, its pool shard still locked so that nobody else takes it.
struct Candidate<'e> {
    scope: &'e Scope,
    addr: Ipv4Addr,
    loc: Loc,
    shard: MutexGuard<'e, Shard>,
    /// False when the client holds the address as an active lease already: nothing to hold.
    hold: bool,
    /// No client holds the address now (never leased, or its lease ended): a ping check
    /// probes it before it is offered.
    unheld: bool,
}

impl Engine {
    pub(crate) fn discover(&self, r: &Request<'_, '_>, scope: &Scope, tx: &mut [u8]) -> Verdict {
        let link = self.link(scope);
        let (held, mut clients) = self.clients.lock(&r.hkey);
        // In order: the client's own address, its reservation, the address it asks for, and
        // then the address freed longest ago.
        let found = self
            .known_address(r, link, &mut clients)
            .or_else(|| self.reserved_address(r, link))
            .or_else(|| self.requested_address(r, link))
            .or_else(|| self.free_address(r, link));
        let Some(mut c) = found else {
            return Verdict::Drop(DropReason::PoolExhausted);
        };
        // Rapid commit binds at once, but an address to ping first is offered the usual way
        // (RFC 4039 lets a server answer with an OFFER).
        let probed = c.unheld && c.scope.ping_check_ms > 0;
        if c.scope.rapid_commit
            && !probed
            && r.msg.get(opt::RAPID_COMMIT).is_some()
            && !self.partner_forbids_now(r, &c)
        {
            return self.rapid_commit(r, held, &mut clients, c, tx);
        }
        if c.hold {
            let grant = Grant {
                state: BindingState::Offered,
                expires: r.now + Time::from(self.settings.offer_hold),
                granted: 0,
                classes: r.classes,
                info: None,
                sent: None,
            };
            self.take(r, held, &mut clients, &mut c.shard, c.loc, &grant);
        }
        let (s, addr, unheld) = (c.scope, c.addr, c.unheld);
        drop(c);
        drop(clients);
        match self.offer(r, s, addr, tx) {
            Verdict::Reply { len, dst, .. } if unheld && s.ping_check_ms > 0 => Verdict::Probe {
                len,
                dst,
                address: addr,
                wait_ms: s.ping_check_ms,
            },
            other => other,
        }
    }

    /// A client we know on this link gets its address again (lease affinity).
    fn known_address<'e>(
        &'e self,
        r: &Request<'_, '_>,
        link: &[ScopeId],
        clients: &mut ClientMap,
    ) -> Option<Candidate<'e>> {
        let loc = clients.get(&r.hkey).copied()?;
        if link.contains(&loc.scope) {
            let s = self.scope(loc.scope);
            let pool = &s.pools[usize::from(loc.pool)];
            let shard = pool.lock(loc.at.shard);
            let b = *shard.binding(loc.at.slot);
            // With a partner, affinity to an address no longer held (expired, released, back
            // in a pool, or a lease whose time ran out before expiry saw it: a partner's late
            // update, pair simulation seed 94) counts only where this server may allocate it,
            // by the same rules as any free address (S5, S6; seed 6284: its own address in a
            // PARTNER-DOWN that must wait the MCLT).
            let allowed = b.held_at(r.now)
                || self
                    .partnering_of(s)
                    .is_none_or(|p| p.may_grant_unheld(&b, r.now));
            if b.owned_by(&r.key) && b.state != BindingState::Abandoned && allowed {
                return Some(Candidate {
                    scope: s,
                    addr: pool.address(loc.at),
                    loc,
                    shard,
                    hold: b.state != BindingState::Active,
                    unheld: matches!(b.state, BindingState::Expired | BindingState::Released),
                });
            }
        }
        // Stale (the address went to another client) or on another link: forget it.
        clients.remove(&r.hkey);
        None
    }

    /// A reservation on this link.
    fn reserved_address<'e>(
        &'e self,
        r: &Request<'_, '_>,
        link: &[ScopeId],
    ) -> Option<Candidate<'e>> {
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
            let shard = s.pools[p].lock(at.shard);
            let b = *shard.binding(at.slot);
            if b.state == BindingState::Reserved || b.owned_by(&r.key) || b.state.is_available() {
                // A reservation's address is the client's: not probed.
                return Some(Candidate {
                    unheld: false,
                    ..Candidate::hold(s, addr, Loc::new(s.id, p, at), shard)
                });
            }
        }
        None
    }

    /// The address the client asks for, if it is free and the client may have it.
    fn requested_address<'e>(
        &'e self,
        r: &Request<'_, '_>,
        link: &[ScopeId],
    ) -> Option<Candidate<'e>> {
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
        let shard = pool.lock(at.shard);
        let state = shard.binding(at.slot).state;
        let may = match self.partnering_of(s) {
            Some(p) => p.may_allocate(state, r.now),
            None => state.is_available(),
        };
        if !may {
            return None;
        }
        Some(Candidate::hold(s, want, Loc::new(s.id, p, at), shard))
    }

    /// The address freed longest ago, starting at the client's own shard.
    fn free_address<'e>(&'e self, r: &Request<'_, '_>, link: &[ScopeId]) -> Option<Candidate<'e>> {
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
                    if let Some(slot) = self.pop_available(s, &mut shard, r.now) {
                        let at = SlotRef { shard: k, slot };
                        let loc = Loc::new(s.id, p, at);
                        return Some(Candidate::hold(s, pool.address(at), loc, shard));
                    }
                }
            }
        }
        None
    }

    /// The next address this server may allocate from `shard`: with a failover partner, of
    /// its own pool (FREE at the primary, BACKUP at the secondary), then of the partner's once
    /// PARTNER-DOWN has lasted the MCLT.
    fn pop_available(&self, s: &Scope, shard: &mut Shard, now: Time) -> Option<u32> {
        let Some(p) = self.partnering_of(s) else {
            return shard.pop_free();
        };
        let (own, partners) = match p.own() {
            Owner::Primary => (
                Shard::pop_free as fn(&mut Shard) -> Option<u32>,
                Shard::pop_backup as fn(&mut Shard) -> Option<u32>,
            ),
            Owner::Secondary => (
                Shard::pop_backup as fn(&mut Shard) -> Option<u32>,
                Shard::pop_free as fn(&mut Shard) -> Option<u32>,
            ),
        };
        // One by one: an address someone may still have been promised is put back at the end
        // of its list (a bounded look, each DISCOVER).
        let mut take = |pop: fn(&mut Shard) -> Option<u32>, ok: &dyn Fn(&Binding) -> bool| {
            for _ in 0..8 {
                let slot = pop(shard)?;
                if ok(shard.binding(slot)) {
                    return Some(slot);
                }
                shard.push_free(slot);
            }
            None
        };
        if p.may_take_own(now)
            && let Some(slot) = take(own, &|b| p.own_reusable(b, now))
        {
            return Some(slot);
        }
        if p.policy.broken == Some(crate::partner::Broken::IgnoreOwnership) {
            return partners(shard);
        }
        if !p.may_take_partners(now) {
            return None;
        }
        take(partners, &|b| p.partners_reusable(b, now))
    }

    /// Whether the failover rules forbid granting `c` to the client now (see
    /// `partner_forbids`): with rapid commit, it is then only offered.
    fn partner_forbids_now(&self, r: &Request<'_, '_>, c: &Candidate<'_>) -> bool {
        let b = c.shard.binding(c.loc.at.slot);
        let mine = b.owned_by(&r.key) && b.state != BindingState::Abandoned;
        self.partner_forbids(c.scope, b, mine, r.now)
    }

    /// RFC 4039: the lease `c` is bound to the client at once and acknowledged, as though it had sent
    /// the REQUEST for an OFFER; `c` is an address this server may allocate to it now, by the
    /// same rules.
    fn rapid_commit(
        &self,
        r: &Request<'_, '_>,
        held: usize,
        clients: &mut ClientMap,
        mut c: Candidate<'_>,
        tx: &mut [u8],
    ) -> Verdict {
        let s = c.scope;
        let b = *c.shard.binding(c.loc.at.slot);
        let previous = if b.owned_by(&r.key) {
            b.info
        } else {
            ClientInfo::EMPTY
        };
        let (valid, sent) = self.lease_to_grant(r.now, s, asked_lease(s.lease, r.msg), &b);
        let info = self.client_info(r, &previous);
        let grant = Grant {
            state: BindingState::Active,
            expires: r.now + Time::from(valid),
            granted: valid,
            classes: r.classes,
            info: Some(&info),
            sent,
        };
        let binding = self.take(r, held, clients, &mut c.shard, c.loc, &grant);
        let addr = c.addr;
        drop(c);
        let spec = ReplySpec {
            kind: MessageType::Ack,
            yiaddr: addr,
            lease: Some(LeaseGrant::scaled(s.lease, valid)),
            scope: s,
            classes: r.classes,
            reservation: reservation_for(r, s, addr),
            rapid_commit: true,
        };
        self.reply_bound(r, &spec, binding, tx)
    }

    fn offer(&self, r: &Request<'_, '_>, s: &Scope, addr: Ipv4Addr, tx: &mut [u8]) -> Verdict {
        let spec = ReplySpec {
            kind: MessageType::Offer,
            yiaddr: addr,
            lease: Some(LeaseGrant::scaled(s.lease, asked_lease(s.lease, r.msg))),
            scope: s,
            classes: r.classes,
            reservation: reservation_for(r, s, addr),
            rapid_commit: false,
        };
        self.reply(r, &spec, tx, None)
    }
}

impl<'e> Candidate<'e> {
    /// An address to hold for the client.
    fn hold(scope: &'e Scope, addr: Ipv4Addr, loc: Loc, shard: MutexGuard<'e, Shard>) -> Self {
        Candidate {
            scope,
            addr,
            loc,
            shard,
            hold: true,
            unheld: true,
        }
    }
}
