//! A server's failover session driven against its engine: what the partner's messages do to
//! the bindings, and what the server owes the partner in return. One home for it, used by the
//! daemon's link thread and by the pair simulation alike; sans-I/O like the rest of the engine
//! (the caller carries the bytes, keeps the state file and passes the time).

use std::net::Ipv4Addr;

use peregrine_failover::message::RejectReason;
use peregrine_failover::{CloseReason, Crossing, Event, Restored, ServerState, Session};

use crate::binding::{BindingEvent, BindingState, ScopeId, Time};
use crate::engine::Engine;
use crate::sink::BindingSink;

/// How often a pair in NORMAL balances its pools (the secondary asks, the primary gives): the
/// addresses the secondary leases return to the primary's pool as their leases end (D12
/// §5.11), so a share given once runs out.
pub const POOL_REQUEST_EVERY: Time = 30;

/// What the caller must do, or may want to count, after the driver carried out one of the
/// session's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Keep this failover state on disk, then call [`FailoverDriver::persisted`]: a new state
    /// reaches the workers, and its STATE message the partner, only then. Nothing more is
    /// polled until then.
    Persist(Restored),
    /// The partner's update of `address` was installed (acknowledged once the journal has it)
    /// or refused with the reason its BNDACK carries.
    Installed {
        /// The address.
        address: Ipv4Addr,
        /// `Err`: the reject reason sent back.
        result: Result<(), RejectReason>,
    },
    /// The partner's update of `address` was installed but the journal could not take it:
    /// not acknowledged, so the partner sends it again.
    NotJournaled(Ipv4Addr),
    /// The partner acknowledged (or refused) this server's update of `address`.
    Acknowledged {
        /// The address.
        address: Ipv4Addr,
        /// `Err`: the partner's reject reason.
        result: Result<(), RejectReason>,
    },
    /// The primary moved this many FREE addresses to BACKUP (for the secondary's POOLREQ, or
    /// balancing on its own).
    Balanced(u32),
    /// The primary answered this server's POOLREQ: it moved this many addresses.
    PoolResponse(u32),
    /// The session closed the connection: write what it still has to send, then close it.
    Closed(CloseReason),
}

/// Every binding `engine` holds that a partner must know: of a shared scope, not a mere offer.
fn held(engine: &Engine) -> Vec<BindingEvent> {
    let mut all = Vec::new();
    engine.for_each_binding(|scope, address, b| {
        if b.state != BindingState::Offered && engine.is_shared(scope) {
            all.push(BindingEvent {
                scope,
                address,
                binding: *b,
            });
        }
    });
    all
}

/// An acknowledgement that waits for its binding to be durable.
#[derive(Debug)]
struct PendingAck {
    seq: u64,
    xid: u32,
    address: Ipv4Addr,
}

/// A failover [`Session`] joined to an [`Engine`] and its journal (a [`BindingSink`] whose
/// confirmation means durable): partner updates enter through [`Engine::install_partner`] and
/// are acknowledged once journaled; acknowledgements of this server's updates lengthen what it
/// may grant; state changes reach the engine once kept; UPDREQ, UPDREQALL and POOLREQ are
/// answered; a secondary asks for its share of the pools.
#[derive(Debug)]
pub struct FailoverDriver {
    session: Session,
    primary: bool,
    pending_acks: Vec<PendingAck>,
    /// The state change waiting to be kept on disk.
    persisting: Option<Persisting>,
    next_balance: Time,
    updates_sent: u64,
    /// By scope id: whether the partner shares the scope (hears of its bindings).
    shared: Vec<bool>,
}

#[derive(Debug, Clone, Copy)]
enum Persisting {
    State(ServerState, Time),
    Mclt,
}

impl FailoverDriver {
    /// Drives `session` for `engine`, which starts silent until the session decides. Every
    /// binding the engine holds (restored from the journal) is offered to the partner: what
    /// the partner had not acknowledged when this server stopped was in the last process's
    /// queue (the pair simulation found leases the partner never heard of otherwise).
    pub fn new(session: Session, engine: &Engine) -> FailoverDriver {
        engine.set_failover_service(crate::Service::None);
        engine.set_partner_down(None);
        engine.set_own_addresses_from(0);
        let primary = session.role() == peregrine_failover::Role::Primary;
        let mut driver = FailoverDriver {
            session,
            primary,
            pending_acks: Vec::new(),
            persisting: None,
            next_balance: 0,
            updates_sent: 0,
            shared: Vec::new(),
        };
        driver.reconfigured(engine);
        driver.send_all(engine);
        driver
    }

    /// Learns which scopes of `engine` (a reload's) the partner shares. A scope the reload
    /// removed is judged as before: its changes still in flight go where they went.
    pub fn reconfigured(&mut self, engine: &Engine) {
        self.shared.resize(engine.by_id.len(), false);
        for (i, shared) in self.shared.iter_mut().enumerate() {
            let id = ScopeId(i as u16);
            if engine.scope_of(id).is_some() {
                *shared = engine.is_shared(id);
            }
        }
    }

    /// The session, for its state and timers.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, to carry bytes and connection events to it and the operator's requests.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Updates queued for the partner since this driver started.
    pub fn updates_sent(&self) -> u64 {
        self.updates_sent
    }

    /// Queues `event`'s update for the partner, if the partner shares its scope; returns
    /// whether it did.
    pub fn send(&mut self, event: &BindingEvent) -> bool {
        let shared = self.shared.get(usize::from(event.scope.0)) == Some(&true);
        if shared {
            self.session.send_update(event.partner_update());
            self.updates_sent += 1;
        }
        shared
    }

    /// Queues every binding the engine holds for the partner.
    pub fn send_all(&mut self, engine: &Engine) {
        for e in &held(engine) {
            self.send(e);
        }
    }

    /// The state of the last [`Notice::Persist`] is on disk: a new state reaches the engine
    /// and its STATE message may leave.
    pub fn persisted(&mut self, engine: &Engine) {
        match self.persisting.take() {
            Some(Persisting::State(state, since)) => {
                engine.set_failover_service(state.service());
                engine.set_partner_down((state == ServerState::PartnerDown).then_some(since));
                self.session.state_persisted();
            }
            Some(Persisting::Mclt) | None => {}
        }
    }

    /// Carries out the session's next event against `engine` and `journal`, and says what the
    /// caller must know of it; `None` when there are no more (or a [`Notice::Persist`] awaits
    /// [`FailoverDriver::persisted`]). Then the engine knows which of its own addresses it may
    /// allocate, the partner's updates the journal has confirmed are acknowledged, and in
    /// NORMAL the pools are balanced when due (the secondary asks, the primary gives:
    /// [`Notice::Balanced`]).
    pub fn poll(
        &mut self,
        now: Time,
        engine: &Engine,
        journal: &mut impl BindingSink,
    ) -> Option<Notice> {
        if self.persisting.is_some() {
            return None;
        }
        while let Some(event) = self.session.poll_event() {
            if let Some(notice) = self.carry_out(now, event, engine, journal) {
                return Some(notice);
            }
        }
        journal.flush();
        engine.set_own_addresses_from(self.session.own_addresses_from());
        self.acknowledge_durable(journal.confirmed());
        if self.session.state() != ServerState::Normal || now < self.next_balance {
            return None;
        }
        self.next_balance = now + POOL_REQUEST_EVERY;
        if !self.primary {
            self.session.request_pool();
            return None;
        }
        // The primary balances on its own as well: ISC's secondary never asks (POOLREQ), it
        // waits for the primary's BACKUP updates, as ISC's primary sends them.
        let moved = engine.balance_pools(now);
        if moved.is_empty() {
            return None;
        }
        for e in &moved {
            let _ = journal.submit(e);
            self.send(e);
        }
        journal.flush();
        Some(Notice::Balanced(
            u32::try_from(moved.len()).unwrap_or(u32::MAX),
        ))
    }

    /// Acknowledges the partner's updates whose bindings the journal has confirmed up to
    /// `confirmed` (see [`BindingSink::confirmed`]).
    pub fn acknowledge_durable(&mut self, confirmed: u64) {
        let session = &mut self.session;
        self.pending_acks.retain(|p| {
            if p.seq <= confirmed {
                session.ack_update(p.xid, p.address, Ok(()));
                false
            } else {
                true
            }
        });
    }

    fn carry_out(
        &mut self,
        now: Time,
        event: Event,
        engine: &Engine,
        journal: &mut impl BindingSink,
    ) -> Option<Notice> {
        match event {
            Event::StateChanged { state, since } => {
                self.persisting = Some(Persisting::State(state, since));
                Some(Notice::Persist(Restored {
                    state,
                    start_time: since,
                    mclt: self.session.mclt(),
                }))
            }
            Event::McltLearned(mclt) => {
                self.persisting = Some(Persisting::Mclt);
                Some(Notice::Persist(Restored {
                    state: self.session.state(),
                    start_time: self.session.since(),
                    mclt: Some(mclt),
                }))
            }
            Event::Update {
                xid,
                binding,
                crossing,
            } => {
                let address = binding.address;
                // The primary's own update may have been made since it arrived (a POOLREQ read
                // before it, the workers' changes): it wins all the same.
                let crossing = match (crossing, self.session.crossing(&binding)) {
                    (Crossing::None, Crossing::OursWins) => Crossing::OursWins,
                    (arrived, _) => arrived,
                };
                let installed = if crossing == Crossing::OursWins {
                    Err(RejectReason::LESS_CRITICAL_BINDING_INFORMATION)
                } else {
                    engine.install_partner(now, &binding, crossing == Crossing::TheirsWins)
                };
                match installed {
                    Ok(event) => {
                        self.session.superseded(address);
                        if event.tell_partner_back(&binding) {
                            self.send(&event);
                        }
                        let Some(seq) = journal.submit(&event) else {
                            return Some(Notice::NotJournaled(address));
                        };
                        self.pending_acks.push(PendingAck { seq, xid, address });
                        Some(Notice::Installed {
                            address,
                            result: Ok(()),
                        })
                    }
                    Err(reason) => {
                        self.session.ack_update(xid, address, Err(reason));
                        Some(Notice::Installed {
                            address,
                            result: Err(reason),
                        })
                    }
                }
            }
            Event::Acked {
                address,
                status,
                potential_expiration,
                result,
            } => {
                // Journaled only when the address changed hands (an acknowledged expiry or
                // release is FREE again): a lost acknowledged time after a crash only makes
                // the next grants shorter, and reuse waits on what was sent, which is kept
                // (half the journal records of a pair otherwise).
                if result.is_ok()
                    && let Some(event) =
                        engine.partner_acknowledged(address, potential_expiration, status)
                    && event.binding.state == BindingState::Free
                {
                    let _ = journal.submit(&event);
                }
                Some(Notice::Acknowledged { address, result })
            }
            Event::UpdateRequest { all } => {
                let bindings = held(engine);
                self.updates_sent += bindings.len() as u64;
                let updates = bindings.iter().map(BindingEvent::partner_update);
                if all {
                    self.session.requeue_all(updates);
                } else {
                    updates.for_each(|u| self.session.send_update(u));
                }
                self.session.update_request_queued();
                None
            }
            Event::PoolRequest { xid } => {
                let moved = engine.balance_pools(now);
                for e in &moved {
                    let _ = journal.submit(e);
                    self.send(e);
                }
                let n = u32::try_from(moved.len()).unwrap_or(u32::MAX);
                self.session.pool_response(xid, n);
                Some(Notice::Balanced(n))
            }
            Event::PoolResponse(n) => Some(Notice::PoolResponse(n)),
            Event::Closed(reason) => Some(Notice::Closed(reason)),
        }
    }
}
