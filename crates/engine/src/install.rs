//! Installing bindings that were decided elsewhere: journal replay, lease import, and (with
//! failover) a partner's binding updates. The one door through which state that did not come
//! from a request enters the engine.

use std::net::Ipv4Addr;

use peregrine_failover::BindingStatus;
use peregrine_failover::binding::{Binding as PartnerBinding, Held, Offered, Role, accept_update};
use peregrine_failover::message::RejectReason;
use peregrine_wire::dhcp::MAGIC_COOKIE;

use crate::binding::{Binding, BindingEvent, BindingState, Time};
use crate::clients::Loc;
use crate::engine::Engine;
use crate::info::ClientInfo;
use crate::key::ClientKey;
use crate::partner::Broken;

/// Why a binding could not be restored (journal replay, lease import).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// The address is in no pool of the scope named, nor of any scope.
    UnknownAddress(Ipv4Addr),
    /// Another client holds the address.
    Conflict(Ipv4Addr),
    /// The client holds a lease on this other address of the scope, with a later last
    /// transaction: the imported one is older, and not installed.
    ClientHoldsNewer(Ipv4Addr),
}

/// What [`Engine::restore`] installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// The binding as stored (its version included: what to journal).
    pub binding: Binding,
    /// The client's older lease on another address of the scope, given up for this one: the
    /// change to journal with it (one lease per client per scope, the newest by its last
    /// transaction).
    pub displaced: Option<BindingEvent>,
}

/// How [`Engine::install`] treats the binding already there.
enum Install<'d> {
    /// Another server's lease: refused if another client holds the address; the client's
    /// older lease on another address of the scope, given up, is put here.
    Import(&'d mut Option<BindingEvent>),
    /// A failover partner's update, already judged by the draft's acceptance rules.
    Partner,
    /// A journal record: applied if its version is newer.
    Replay,
    /// The binding a reload carries from the engine it replaces: applied as it is.
    Carry,
}

impl Engine {
    /// A failover partner's binding update, judged by the draft's acceptance rules (D12
    /// §7.1.3, [`peregrine_failover::binding::accept_update`]) against what this server holds,
    /// and installed if accepted: returns the change to journal before the BNDACK leaves, or
    /// the reject reason the BNDACK carries. The partner's potential expiration joins what
    /// this server knows was promised on the address, which bounds its reuse; grants are
    /// bounded by what the partner acknowledged of this server's own (the MCLT rule).
    ///
    /// `crossed`: at the secondary, the update crossed this server's own change of the
    /// address's availability, which the primary refuses for its own
    /// ([`peregrine_failover::Crossing::TheirsWins`]); it is taken however old it looks, so
    /// that both end with the primary's.
    pub fn install_partner(
        &self,
        now: Time,
        update: &PartnerBinding,
        crossed: bool,
    ) -> Result<BindingEvent, RejectReason> {
        let primary = self.partnering.as_ref().is_some_and(|p| p.policy.primary);
        let role = if primary {
            Role::Primary
        } else {
            Role::Secondary
        };
        // An address of a scope this server serves alone is none of the partner's business.
        let (s, p, at) = self
            .scopes
            .iter()
            .filter(|s| s.shared)
            .find_map(|s| s.locate(update.address).map(|(p, at)| (s, p, at)))
            .ok_or(RejectReason::ILLEGAL_IP_ADDRESS)?;
        let hardware = update.hardware.as_ref();
        let id = update.client_id.as_deref().filter(|_| s.match_client_id);
        let key = (id.is_some() || hardware.is_some()).then(|| {
            let (htype, chaddr) = hardware.map_or((0, &[][..]), |h| (h.htype, h.addr()));
            self.client_key_for(htype, chaddr, id)
        });
        let cur = *s.pools[p].lock(at.shard).binding(at.slot);
        self.judge_partner(role, now, update, &cur, key, crossed)?;
        let cltt = update.client_last_transaction.unwrap_or(now);
        // At the primary, an address it has assigned to the secondary (BACKUP) stays the
        // secondary's when the secondary reports a lease on it ended: the primary's assignment
        // and the report crossed, and the secondary takes the BACKUP update it was sent
        // (pair simulation, seed 2072: the primary took it back as FREE, the secondary kept
        // BACKUP, both allocated it).
        let kept_backup = primary
            && cur.state == BindingState::Backup
            && matches!(
                update.status,
                BindingStatus::Expired | BindingStatus::Released
            );
        let freed = if kept_backup {
            BindingState::Backup
        } else {
            BindingState::Free
        };
        // Kept BACKUP is a new assignment, told back to the secondary (its acknowledgement of
        // the report frees the address there): dated now, so that it is newer than the lease.
        let cltt = if kept_backup { now } else { cltt };
        // EXPIRED, RELEASED and RESET are transitory: the receiver sets FREE as it acknowledges
        // them (D12 §5.11), the client keeping affinity; the sender on the acknowledgement.
        let (state, client, expires) = match update.status {
            // Both servers may have answered one client's REBIND: it holds whichever lease it
            // took, so the same client's lease here only ever lengthens (pair simulation,
            // seed 4 with rebinding clients).
            BindingStatus::Active if cur.state == BindingState::Active && cur.client == key => (
                BindingState::Active,
                key,
                update.lease_expiration.max(cur.expires),
            ),
            BindingStatus::Active => (BindingState::Active, key, update.lease_expiration),
            BindingStatus::Expired => (freed, key, update.lease_expiration),
            BindingStatus::Released => (freed, key, now),
            // The partner's probation, so that both end it together (seed 54: restarted at
            // the primary, it outlasted the secondary's, which leased the address again).
            BindingStatus::Abandoned => (
                BindingState::Abandoned,
                None,
                match update.lease_expiration {
                    0 => now + Time::from(self.settings.decline_probation),
                    end => end,
                },
            ),
            BindingStatus::Backup => (BindingState::Backup, None, 0),
            BindingStatus::Free | BindingStatus::Reset => (BindingState::Free, None, 0),
        };
        let mac = match hardware {
            Some(h) if h.htype == 1 => <[u8; 6]>::try_from(h.addr()).unwrap_or([0; 6]),
            _ => [0; 6],
        };
        // An availability (FREE, BACKUP) whose potential expiration is not past the moment it
        // was set promises nothing: ISC dates its BACKUP assignments so (potential expiration =
        // start of state = now), which held every address it gave our secondary for the MCLT.
        let promised = match update.status {
            BindingStatus::Free | BindingStatus::Backup
                if update.potential_expiration <= update.start_time_of_state =>
            {
                0
            }
            _ => update.potential_expiration,
        };
        let binding = Binding {
            client,
            mac,
            state,
            expires,
            cltt,
            granted: u32::try_from(expires.saturating_sub(cltt)).unwrap_or(u32::MAX),
            // The partner's promise bounds when the address may be reused, never how long
            // this server may grant: read through a skew measured across the link's delay it
            // runs late (pair simulation, seed 727 with delay), which only makes reuse wait.
            partner_sent: cur.partner_sent.max(promised),
            partner_acked: cur.partner_acked,
            classes: 0,
            version: cur.version,
            info: match client {
                None => ClientInfo::EMPTY,
                Some(_) => partners_info(update, client == cur.client, &cur.info),
            },
        };
        let event = BindingEvent {
            scope: s.id,
            address: update.address,
            binding,
        };
        let stored = self
            .install(&event, Install::Partner)
            .map_err(|_| RejectReason::ILLEGAL_IP_ADDRESS)?
            .unwrap_or(binding);
        Ok(BindingEvent {
            binding: stored,
            ..event
        })
    }

    /// The draft's acceptance rules (D12 §7.1.3) for the partner's `update` of an address this
    /// server holds as `cur`, and the refusal of reports older than what happened here since.
    fn judge_partner(
        &self,
        role: Role,
        now: Time,
        update: &PartnerBinding,
        cur: &Binding,
        key: Option<ClientKey>,
        crossed: bool,
    ) -> Result<(), RejectReason> {
        // A probation that has ended is over, whether or not expiry has processed it yet (pair
        // simulation, seed 17933: a restarted primary refused the secondary's lease with the
        // ABANDONED row, then freed the address and leased it too).
        let status = match status_of(cur.state) {
            BindingStatus::Abandoned if cur.expires <= now => BindingStatus::Free,
            status => status,
        };
        let held = Held {
            status,
            lease_expiration: cur.expires,
            client_last_transaction: (cur.cltt != 0).then_some(cur.cltt),
            start_time_of_state: cur.state_since(),
        };
        let offered = Offered {
            status: update.status,
            client_last_transaction: update.client_last_transaction,
            same_client: key.is_some() && cur.client == key,
            lease_expiration: update.lease_expiration,
        };
        let broken = self.partnering.as_ref().and_then(|p| p.policy.broken);
        if broken != Some(Broken::AcceptRejected) {
            accept_update(role, now, &held, &offered)?;
        }
        // What happened here since the partner's report was made is not undone by it: the two
        // crossed (pool balancing against an expiry, found by the pair simulation, seeds 2779
        // and 2438; seed 179: a BACKUP assignment queued through a partition reached the
        // secondary after it had leased the address and the lease had expired; seed 15276:
        // another client's old expiry replaced a later lease). A lease still running is
        // always taken; anything else is only a report.
        let running = update.status == BindingStatus::Active && update.lease_expiration > now;
        let older =
            update.start_time_of_state != 0 && update.start_time_of_state < cur.state_since();
        let available = matches!(update.status, BindingStatus::Free | BindingStatus::Backup);
        // An old abandonment too (pair simulation with DECLINE, seed 597: a restarted secondary
        // offered back an ABANDONED from long before, which replaced the primary's lease made
        // since the probation ended).
        let abandoned = update.status == BindingStatus::Abandoned;
        let other_client = key.is_some() && cur.client.is_some() && cur.client != key;
        let stale = older
            && !running
            && (available
                || abandoned
                || other_client
                || matches!(cur.state, BindingState::Free | BindingState::Backup));
        // Crossed with this server's own report, which the primary refuses: refusing the
        // primary's in turn would leave both waiting (pair simulation with DECLINE, seed 1526:
        // each side's expiry of another client's lease).
        if stale && !crossed && broken != Some(Broken::AcceptStaleReports) {
            return Err(RejectReason::OUTDATED_BINDING_INFORMATION);
        }
        Ok(())
    }

    /// Installs an imported binding (another server's lease) as the address's next version,
    /// and returns it as stored (version included: what to journal). An address another
    /// client holds is reported as a conflict and left alone. A client keeps one lease per
    /// scope: of an active lease here and one imported on another address, the later by last
    /// transaction time stays, and the other is refused ([`RestoreError::ClientHoldsNewer`])
    /// or given up ([`Imported::displaced`]).
    pub fn restore(&self, event: &BindingEvent) -> Result<Imported, RestoreError> {
        let mut displaced = None;
        let stored = self.install(event, Install::Import(&mut displaced))?;
        Ok(Imported {
            binding: stored.unwrap_or(event.binding),
            displaced,
        })
    }

    /// Replays a binding change from the journal: it replaces the address's binding if its
    /// version is newer, whoever holds the address now, and is ignored (`Ok(false)`) if not.
    /// The journal is the truth about what was acknowledged; versions put back the order
    /// that separate worker queues may have lost, so replay order does not matter.
    pub fn replay(&self, event: &BindingEvent) -> Result<bool, RestoreError> {
        self.install(event, Install::Replay)
            .map(|stored| stored.is_some())
    }

    /// Installs a binding of the engine this one replaces (see [`Engine::reconfigured`]),
    /// version included, over whatever the new configuration put there.
    pub(crate) fn carry(&self, event: &BindingEvent) -> Result<(), RestoreError> {
        self.install(event, Install::Carry).map(drop)
    }

    /// Installs `event`'s binding; returns it as stored, or `None` for a stale replay.
    fn install(
        &self,
        event: &BindingEvent,
        mut how: Install<'_>,
    ) -> Result<Option<Binding>, RestoreError> {
        let addr = event.address;
        let (s, p, at) = self
            .scope_of(event.scope)
            .and_then(|s| s.locate(addr).map(|(p, at)| (s, p, at)))
            .or_else(|| {
                self.scopes
                    .iter()
                    .find_map(|s| s.locate(addr).map(|(p, at)| (s, p, at)))
            })
            .ok_or(RestoreError::UnknownAddress(addr))?;
        let loc = Loc::new(s.id, p, at);
        let mut b = event.binding;
        // Bindings written before client identifiers of the form 01+MAC were keyed by the MAC
        // (and imported ones that carry both) get the key a live request now derives.
        if b.mac != [0; 6] {
            b.client = b.client.map(|k| k.canonical(1, &b.mac));
        }
        let hashed = b.client.map(|k| self.clients.hashed(k));
        let mut guard = hashed.as_ref().map(|k| self.clients.lock(k));
        // The client's lease on another address of the scope: refused here if it is newer,
        // given up once this one is in if it is older (one pool shard at a time, the client's
        // index entry held throughout).
        let mut older = None;
        if let (Install::Import(_), Some((_, clients)), Some(k)) = (&how, guard.as_ref(), hashed)
            && b.state == BindingState::Active
            && let Some(old) = clients
                .get(&k)
                .copied()
                .filter(|o| *o != loc && o.scope == s.id)
        {
            older = self.older_lease(old, &b)?;
        }
        let mut shard = s.pools[p].lock(at.shard);
        let cur = *shard.binding(at.slot);
        let stored = match how {
            Install::Import(_) => {
                if cur.client.is_some()
                    && cur.client != b.client
                    && matches!(cur.state, BindingState::Active | BindingState::Offered)
                {
                    return Err(RestoreError::Conflict(addr));
                }
                shard.set(at.slot, b)
            }
            Install::Partner => shard.set(at.slot, b),
            Install::Carry => shard.put(at.slot, b),
            Install::Replay => {
                if b.version <= cur.version {
                    return Ok(None);
                }
                shard.put(at.slot, b)
            }
        };
        match b.state {
            BindingState::Active
            | BindingState::Offered
            | BindingState::Abandoned
            | BindingState::HeldBack => {
                shard.unlink(at.slot);
                shard.schedule(at.slot, b.expires);
            }
            BindingState::Reserved => shard.unlink(at.slot),
            BindingState::Backup
            | BindingState::Free
            | BindingState::Expired
            | BindingState::Released
            | BindingState::Reset => {
                // Onto the list of its state (FREE or BACKUP), whichever it was on before; with
                // a partner, an expiry or release not yet acknowledged stays off (S5).
                let waits = self.partnering_of(s).is_some()
                    && matches!(b.state, BindingState::Expired | BindingState::Released);
                if cur.state != b.state || waits {
                    shard.unlink(at.slot);
                }
                if !waits {
                    shard.push_free(at.slot);
                }
            }
        }
        drop(shard);
        if let (Install::Import(displaced), Some(old)) = (&mut how, older) {
            **displaced = self.give_up(old, &b);
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
                clients.insert_if_absent(k, loc);
            }
        }
        Ok(Some(stored))
    }
}

impl Engine {
    /// The client's active lease at `old`, if it is older than `b` (by last transaction):
    /// `Err` if it is as new or newer, `None` if the address no longer holds the client's lease.
    fn older_lease(&self, old: Loc, b: &Binding) -> Result<Option<Loc>, RestoreError> {
        let s = self.scope(old.scope);
        let pool = &s.pools[usize::from(old.pool)];
        let held = *pool.lock(old.at.shard).binding(old.at.slot);
        if held.state != BindingState::Active || held.client != b.client {
            return Ok(None);
        }
        if held.cltt >= b.cltt {
            return Err(RestoreError::ClientHoldsNewer(pool.address(old.at)));
        }
        Ok(Some(old))
    }

    /// Frees the client's older lease at `old`, given up for `b`; returns the change to
    /// journal.
    fn give_up(&self, old: Loc, b: &Binding) -> Option<BindingEvent> {
        let s = self.scope(old.scope);
        let pool = &s.pools[usize::from(old.pool)];
        let mut shard = pool.lock(old.at.shard);
        let held = *shard.binding(old.at.slot);
        if held.state != BindingState::Active || held.client != b.client {
            return None;
        }
        let freed = shard.set(
            old.at.slot,
            Binding {
                state: self.available_state(s),
                client: None,
                info: ClientInfo::EMPTY,
                // Given up when the newer lease began.
                expires: b.cltt,
                ..held
            },
        );
        shard.push_free(old.at.slot);
        Some(BindingEvent {
            scope: s.id,
            address: pool.address(old.at),
            binding: freed,
        })
    }
}

/// What the draft calls an address in `state`: an address held for an offer is, to a partner,
/// as good as leased; a reserved one is its client's.
fn status_of(state: BindingState) -> BindingStatus {
    match state {
        BindingState::Free => BindingStatus::Free,
        BindingState::Offered | BindingState::Active | BindingState::Reserved => {
            BindingStatus::Active
        }
        BindingState::Expired => BindingStatus::Expired,
        BindingState::Released => BindingStatus::Released,
        // To a partner, an address held back is as unusable as a declined one.
        BindingState::Abandoned | BindingState::HeldBack => BindingStatus::Abandoned,
        BindingState::Reset => BindingStatus::Reset,
        BindingState::Backup => BindingStatus::Backup,
    }
}

/// What a binding the partner sent keeps of its client: the options the partner sent with it
/// (client-request-options, after the magic cookie), or, if it sent none (ISC sends none) or
/// none well-formed, what this server knew of the same client.
fn partners_info(update: &PartnerBinding, same_client: bool, known: &ClientInfo) -> ClientInfo {
    let sent = update
        .client_request_options
        .as_deref()
        .and_then(|o| o.strip_prefix(&MAGIC_COOKIE[..]))
        .and_then(ClientInfo::from_options);
    match sent {
        Some(info) => info,
        _ if same_client => *known,
        _ => ClientInfo::EMPTY,
    }
}
