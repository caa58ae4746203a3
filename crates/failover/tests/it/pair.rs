//! Two sessions wired back to back in memory, time driven by the test: the handshake, a cut
//! link, a lost database, flow control, refused partners and bad input.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use peregrine_failover::binding::{Binding, Held, Offered, accept_update};
use peregrine_failover::codec::MAX_MESSAGE_LEN;
use peregrine_failover::hash::HashBucketAssignment;
use peregrine_failover::message::{self, Message, RejectReason};
use peregrine_failover::{
    BindingStatus, CloseReason, Config, Event, Restored, Role, ServerState, Session, Time,
};

pub(crate) const T0: Time = 1_795_390_176;
pub(crate) const MCLT: u32 = 30;

pub(crate) fn config(role: Role) -> Config {
    Config {
        role,
        relationship_name: (*b"fo-test").into(),
        mclt: (role == Role::Primary).then_some(MCLT),
        hash_bucket_assignment: HashBucketAssignment::split(128),
        max_unacked_bndupd: 10,
        receive_timer: 30,
        max_clock_skew: 60,
        vendor_class: (*b"peregrine-test").into(),
        safe_period: None,
    }
}

/// One server: its session, what it has persisted, and its bindings.
pub(crate) struct Server {
    pub(crate) session: Session,
    pub(crate) role: Role,
    pub(crate) saved: Option<Restored>,
    pub(crate) bindings: BTreeMap<Ipv4Addr, Binding>,
    pub(crate) states: Vec<ServerState>,
    pub(crate) closed: Vec<CloseReason>,
    /// Everything it sent, by message type, in order.
    pub(crate) sent: Vec<&'static str>,
    pub(crate) acked: Vec<(Ipv4Addr, Result<(), RejectReason>)>,
}

impl Server {
    pub(crate) fn new(config: Config, saved: Option<Restored>, now: Time) -> Server {
        let role = config.role;
        Server {
            session: Session::new(config, saved, now),
            role,
            saved,
            bindings: BTreeMap::new(),
            states: Vec::new(),
            closed: Vec::new(),
            sent: Vec::new(),
            acked: Vec::new(),
        }
    }

    /// Carries out every event as a server would: persist, install, queue, answer.
    pub(crate) fn process_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::StateChanged { state, since } => {
                    self.saved = Some(Restored {
                        state,
                        start_time: since,
                        mclt: self.session.mclt(),
                    });
                    self.states.push(state);
                    self.session.state_persisted();
                }
                Event::McltLearned(m) => {
                    if let Some(saved) = self.saved.as_mut() {
                        saved.mclt = Some(m);
                    }
                }
                Event::Update { xid, binding, .. } => {
                    let result = match self.bindings.get(&binding.address) {
                        None => Ok(()),
                        Some(held) => accept_update(
                            self.role,
                            binding.start_time_of_state,
                            &Held {
                                status: held.status,
                                lease_expiration: held.lease_expiration,
                                client_last_transaction: held.client_last_transaction,
                                start_time_of_state: held.start_time_of_state,
                            },
                            &Offered {
                                status: binding.status,
                                client_last_transaction: binding.client_last_transaction,
                                same_client: held.client_id == binding.client_id,
                                lease_expiration: binding.lease_expiration,
                            },
                        ),
                    };
                    let address = binding.address;
                    if result.is_ok() {
                        self.bindings.insert(address, binding);
                    }
                    self.session.ack_update(xid, address, result);
                }
                Event::Acked {
                    address, result, ..
                } => self.acked.push((address, result)),
                Event::UpdateRequest { .. } => {
                    for b in self.bindings.values() {
                        self.session.send_update(b.clone());
                    }
                    self.session.update_request_queued();
                }
                Event::PoolRequest { .. } | Event::PoolResponse(_) => {}
                Event::Closed(reason) => self.closed.push(reason),
            }
        }
    }

    /// Takes everything the session wants to write now.
    pub(crate) fn drain(&mut self, now: Time) -> Vec<Vec<u8>> {
        self.process_events();
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        while let Some(len) = self.session.poll_transmit(now, &mut buf) {
            let bytes = buf[..len].to_vec();
            let (_, m) = message::decode(&bytes).expect("we send what we can read");
            self.sent.push(m.message_type().as_str());
            out.push(bytes);
            self.process_events();
        }
        out
    }
}

/// Two servers and the link between them.
pub(crate) struct Pair {
    pub(crate) primary: Server,
    pub(crate) secondary: Server,
    pub(crate) now: Time,
    pub(crate) up: bool,
}

impl Pair {
    pub(crate) fn fresh() -> Pair {
        Pair {
            primary: Server::new(config(Role::Primary), None, T0),
            secondary: Server::new(config(Role::Secondary), None, T0),
            now: T0,
            up: false,
        }
    }

    pub(crate) fn connect(&mut self) {
        self.up = true;
        self.primary.session.connected(self.now);
        self.secondary.session.connected(self.now);
        self.pump();
    }

    pub(crate) fn cut(&mut self) {
        self.up = false;
    }

    /// Moves messages both ways until neither has anything to say.
    pub(crate) fn pump(&mut self) {
        for _ in 0..10_000 {
            let a = self.primary.drain(self.now);
            let b = self.secondary.drain(self.now);
            if a.is_empty() && b.is_empty() {
                return;
            }
            if self.up {
                for m in &a {
                    self.secondary.session.handle(self.now, m);
                }
                for m in &b {
                    self.primary.session.handle(self.now, m);
                }
            }
        }
        panic!("the pair never went quiet");
    }

    /// Advances time second by second to `until`, firing timers and moving messages.
    pub(crate) fn run_until(&mut self, until: Time) {
        while self.now < until {
            self.now += 1;
            for s in [&mut self.primary, &mut self.secondary] {
                if s.session.poll_timeout().is_some_and(|t| t <= self.now) {
                    s.session.handle_timeout(self.now);
                }
            }
            self.pump();
        }
    }

    pub(crate) fn states(&self) -> (ServerState, ServerState) {
        (self.primary.session.state(), self.secondary.session.state())
    }
}

fn active(n: u8, now: Time) -> Binding {
    let mut b = Binding::new(Ipv4Addr::new(10, 99, 0, 100 + n), BindingStatus::Active);
    b.client_id = Some(vec![1, 2, 0, 0, 0, 0, n].into());
    b.lease_expiration = now + u64::from(MCLT);
    b.potential_expiration = now + 315;
    b.start_time_of_state = now;
    b.client_last_transaction = Some(now);
    b
}

fn normal_pair() -> Pair {
    let mut pair = Pair::fresh();
    pair.connect();
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    pair
}

#[test]
fn a_fresh_pair_reaches_normal_in_both_roles() {
    use ServerState::{Normal, Recover, RecoverDone};
    let pair = normal_pair();
    // A fresh pair starts in RECOVER (kept, so a restart before the partner answers knows it)
    // and recovers from each other with no wait for the MCLT (ISC does the same).
    assert_eq!(pair.primary.states, [Recover, RecoverDone, Normal]);
    assert_eq!(pair.secondary.states, [Recover, RecoverDone, Normal]);
    assert_eq!(pair.now, T0);
    // Neither granted anything before: both allocate at once (the daemon's pair test found
    // a new pair idle for the MCLT).
    assert_eq!(pair.primary.session.own_addresses_from(), 0);
    assert_eq!(pair.secondary.session.own_addresses_from(), 0);
    assert_eq!(
        pair.secondary.session.mclt(),
        Some(MCLT),
        "learned from CONNECT"
    );
    assert_eq!(
        pair.primary.sent[..4],
        ["CONNECT", "STATE", "STATE", "UPDREQALL"]
    );
    assert_eq!(pair.secondary.sent[..3], ["CONNECTACK", "STATE", "STATE"]);
    // Split 128: each answers its half of the buckets, never both, never neither.
    for b in 0..=255u8 {
        assert_ne!(
            pair.primary.session.answers_bucket(b),
            pair.secondary.session.answers_bucket(b)
        );
    }
    assert!(pair.primary.closed.is_empty() && pair.secondary.closed.is_empty());
}

#[test]
fn bindings_replicate_and_are_acknowledged() {
    let mut pair = normal_pair();
    for n in 1..=3 {
        let b = active(n, pair.now);
        pair.primary.bindings.insert(b.address, b.clone());
        pair.primary.session.send_update(b);
    }
    pair.pump();
    assert_eq!(pair.secondary.bindings, pair.primary.bindings);
    assert_eq!(pair.primary.acked.len(), 3);
    assert!(pair.primary.acked.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(pair.primary.session.pending_updates(), 0);
}

#[test]
fn a_cut_link_interrupts_both_and_healing_restores_normal() {
    use ServerState::CommunicationsInterrupted as CommInt;
    let mut pair = normal_pair();
    pair.cut();
    // Nothing arrives: each side drops the connection after its receive timer (30 s).
    pair.run_until(T0 + 31);
    assert_eq!(pair.states(), (CommInt, CommInt));
    assert_eq!(pair.primary.closed, [CloseReason::ReceiveTimeout]);
    assert_eq!(pair.secondary.closed, [CloseReason::ReceiveTimeout]);
    // CONTACTs kept the link alive until the cut: nothing timed out before it.
    // While apart, the primary leases an address; the update waits for the partner.
    let b = active(7, pair.now);
    pair.primary.bindings.insert(b.address, b.clone());
    pair.primary.session.send_update(b.clone());
    pair.primary.session.disconnected(pair.now);
    pair.secondary.session.disconnected(pair.now);
    pair.connect();
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    assert_eq!(pair.secondary.bindings.get(&b.address), Some(&b));
}

#[test]
fn contact_keeps_an_idle_link_up() {
    let mut pair = normal_pair();
    pair.run_until(T0 + 300);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    assert!(pair.primary.closed.is_empty());
    let contacts = pair
        .primary
        .sent
        .iter()
        .filter(|t| **t == "CONTACT")
        .count();
    assert!(
        (25..=31).contains(&contacts),
        "{contacts} CONTACTs in 300 s"
    );
}

#[test]
fn a_server_that_lost_its_database_recovers_everything_and_waits_the_mclt() {
    use ServerState::{Normal, Recover, RecoverDone, RecoverWait};
    let mut pair = normal_pair();
    for n in 1..=5 {
        let b = active(n, pair.now);
        pair.primary.bindings.insert(b.address, b.clone());
        pair.primary.session.send_update(b);
    }
    pair.pump();
    pair.run_until(T0 + 100);
    // The secondary restarts with an empty lease directory.
    pair.cut();
    pair.primary.session.disconnected(pair.now);
    pair.pump();
    assert_eq!(
        pair.primary.session.state(),
        ServerState::CommunicationsInterrupted
    );
    pair.secondary = Server::new(config(Role::Secondary), None, pair.now);
    let restarted = pair.now;
    assert_eq!(
        pair.secondary.session.own_addresses_from(),
        Time::MAX,
        "nothing of its own until it has heard everything"
    );
    pair.connect();
    assert_eq!(pair.secondary.session.state(), ServerState::RecoverWait);
    // What it granted and forgot runs at most the MCLT past its start; its partner, which
    // heard it in RECOVER, waits as long before reusing its own addresses.
    let mclt = u64::from(MCLT);
    assert_eq!(
        pair.secondary.session.own_addresses_from(),
        restarted + mclt
    );
    assert_eq!(pair.primary.session.own_addresses_from(), restarted + mclt);
    assert_eq!(
        pair.secondary.bindings, pair.primary.bindings,
        "UPDREQALL answered"
    );
    assert!(pair.secondary.sent.contains(&"UPDREQALL"));
    // No service until the MCLT has passed since the restart (S9).
    pair.run_until(restarted + u64::from(MCLT) - 1);
    assert_eq!(pair.secondary.session.state(), ServerState::RecoverWait);
    pair.run_until(restarted + u64::from(MCLT) + 1);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    assert_eq!(
        pair.secondary.states,
        [Recover, RecoverWait, RecoverDone, Normal]
    );
}

#[test]
fn flow_control_holds_at_max_unacked_and_drains() {
    let mut pair = normal_pair();
    // The secondary answers nothing: its caller does not ack (a slow disk, say).
    for n in 0..25u8 {
        pair.primary.session.send_update(active(n, pair.now));
    }
    let sent = pair.primary.drain(pair.now);
    let updates: Vec<_> = sent
        .iter()
        .filter(|m| matches!(message::decode(m), Ok((_, Message::BndUpd(_)))))
        .collect();
    assert_eq!(updates.len(), 10, "max-unacked-bndupd of the secondary");
    assert!(
        pair.primary.drain(pair.now).is_empty(),
        "no room until acked"
    );
    for m in &sent {
        pair.secondary.session.handle(pair.now, m);
    }
    pair.pump();
    assert_eq!(pair.primary.acked.len(), 25);
    assert_eq!(pair.secondary.bindings.len(), 25);
}

#[test]
fn a_partner_sending_past_our_window_is_disconnected() {
    let mut pair = normal_pair();
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    // Eleven BNDUPDs before any ack, where ten are allowed.
    for n in 0..11u8 {
        let b = active(n, pair.now);
        let header = message::Header {
            time: u32::try_from(pair.now).unwrap(),
            xid: 100 + u32::from(n),
        };
        let len = b.to_update().encode(header, &mut buf).unwrap();
        // Handle without letting the secondary's caller answer in between.
        pair.secondary.session.handle(pair.now, &buf[..len]);
    }
    pair.secondary.process_events();
    assert_eq!(pair.secondary.closed, [CloseReason::FlowControl]);
}

fn connect_with(primary: Config, secondary: Config, skew: i64) -> Pair {
    let mut pair = Pair {
        primary: Server::new(primary, None, T0),
        secondary: Server::new(secondary, None, T0),
        now: T0,
        up: true,
    };
    pair.primary.session.connected(T0);
    pair.secondary.session.connected(T0);
    let connect = pair.primary.drain(T0.saturating_add_signed(skew));
    for m in &connect {
        pair.secondary.session.handle(T0, m);
    }
    pair.secondary.process_events();
    pair
}

#[test]
fn a_wrong_partner_is_refused_with_the_reason() {
    let mut other_name = config(Role::Primary);
    other_name.relationship_name = (*b"other").into();
    let mut mclt_60 = config(Role::Secondary);
    mclt_60.mclt = Some(60);
    let cases = [
        (
            other_name,
            config(Role::Secondary),
            0,
            RejectReason::INVALID_PARTNER,
        ),
        (
            config(Role::Primary),
            mclt_60,
            0,
            RejectReason::INVALID_MCLT,
        ),
        (
            config(Role::Primary),
            config(Role::Secondary),
            61,
            RejectReason::CONNECTION_TIME_MISMATCH,
        ),
        (
            config(Role::Primary),
            config(Role::Secondary),
            -61,
            RejectReason::CONNECTION_TIME_MISMATCH,
        ),
    ];
    for (primary, secondary, skew, reason) in cases {
        let mut pair = connect_with(primary, secondary, skew);
        assert_eq!(pair.secondary.closed, [CloseReason::Refused(reason)]);
        // The refusal goes out, then nothing.
        let out = pair.secondary.drain(T0);
        assert_eq!(out.len(), 1);
        let (_, Message::ConnectAck(ack)) = message::decode(&out[0]).unwrap() else {
            panic!("not a CONNECTACK")
        };
        assert_eq!(ack.reject, Some(reason));
        pair.primary.session.handle(T0, &out[0]);
        pair.primary.process_events();
        assert_eq!(pair.primary.closed, [CloseReason::RefusedByPartner(reason)]);
        assert_eq!(pair.secondary.session.state(), ServerState::Recover);
    }
    // Within the limit the skew is measured and accepted.
    let pair = connect_with(config(Role::Primary), config(Role::Secondary), 59);
    assert!(pair.secondary.closed.is_empty());
    assert_eq!(pair.secondary.session.clock_skew(), Some(59));
}

#[test]
fn two_primaries_do_not_pair() {
    let mut pair = connect_with(config(Role::Primary), config(Role::Primary), 0);
    // The second "primary" sent its own CONNECT and got one: it closes, counted.
    pair.secondary.drain(T0);
    assert_eq!(
        pair.secondary.closed,
        [CloseReason::Unexpected(
            peregrine_failover::codec::MessageType::Connect
        )]
    );
}

#[test]
fn bad_input_closes_the_connection_with_a_counted_reason() {
    let cases: [(&[u8], &str); 6] = [
        (&[0x00, 0x0c, 0x0b], "malformed"), // truncated header
        (
            &[0x08, 0x01, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0],
            "malformed",
        ), // 2049 bytes declared
        (
            &[0x00, 0x0c, 0x0d, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0],
            "unknown_type",
        ),
        (
            &[0x00, 0x10, 0x03, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 9],
            "malformed",
        ), // overrun
        (b"GET / HTTP/1.1\r\n\r\n", "malformed"),
        (
            &[0x00, 0x0c, 0x05, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0],
            "malformed",
        ), // CONNECT, no options
    ];
    for (bytes, label) in cases {
        let mut pair = normal_pair();
        pair.secondary.session.handle(pair.now, bytes);
        pair.secondary.process_events();
        assert_eq!(pair.secondary.closed.len(), 1, "{bytes:02x?}");
        assert_eq!(pair.secondary.closed[0].as_str(), label, "{bytes:02x?}");
        assert_eq!(
            pair.secondary.session.state(),
            ServerState::CommunicationsInterrupted
        );
    }
    // An optional type (128 and up) is ignored.
    let mut pair = normal_pair();
    pair.secondary
        .session
        .handle(pair.now, &[0x00, 0x0c, 0x80, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0]);
    pair.secondary.process_events();
    assert!(pair.secondary.closed.is_empty());
}

#[test]
fn partner_down_is_refused_while_in_contact_and_taken_when_apart() {
    use ServerState::{ConflictDone, Normal, PotentialConflict};
    let mut pair = normal_pair();
    assert_eq!(
        pair.primary.session.partner_down(pair.now),
        Err(ServerState::Normal)
    );
    pair.cut();
    pair.run_until(T0 + 40);
    assert_eq!(pair.primary.session.partner_down(pair.now), Ok(()));
    pair.primary.process_events();
    assert_eq!(pair.primary.session.state(), ServerState::PartnerDown);
    assert_eq!(
        pair.primary.saved.map(|s| s.state),
        Some(ServerState::PartnerDown),
        "persisted"
    );
    // The secondary, which served its own pool meanwhile, comes back after a restart with its
    // leases: both may have served the same clients, so they resolve the conflict first.
    let b = active(9, pair.now);
    pair.secondary.bindings.insert(b.address, b.clone());
    let saved = pair.secondary.saved;
    let bindings = std::mem::take(&mut pair.secondary.bindings);
    pair.secondary = Server::new(config(Role::Secondary), saved, pair.now);
    pair.secondary.bindings = bindings;
    pair.primary.session.disconnected(pair.now);
    pair.connect();
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    assert!(
        pair.primary
            .states
            .ends_with(&[PotentialConflict, ConflictDone, Normal])
    );
    assert!(
        pair.secondary
            .states
            .ends_with(&[PotentialConflict, Normal])
    );
    assert_eq!(
        pair.primary.bindings.get(&b.address),
        Some(&b),
        "the secondary's lease"
    );
}

#[test]
fn two_servers_in_partner_down_resolve_the_conflict_when_they_meet() {
    use ServerState::{ConflictDone, Normal, PartnerDown, PotentialConflict};
    let mut pair = normal_pair();
    pair.cut();
    pair.run_until(T0 + 40);
    assert_eq!(pair.primary.session.partner_down(pair.now), Ok(()));
    assert_eq!(pair.secondary.session.partner_down(pair.now), Ok(()));
    pair.pump();
    assert_eq!(pair.states(), (PartnerDown, PartnerDown));
    // Each leased an address the other does not know of.
    let (p, s) = (active(1, pair.now), active(2, pair.now));
    pair.primary.bindings.insert(p.address, p.clone());
    pair.secondary.bindings.insert(s.address, s.clone());
    pair.primary.session.disconnected(pair.now);
    pair.secondary.session.disconnected(pair.now);
    pair.connect();
    // S8: in contact, they never both stay in PARTNER-DOWN; the primary resolves first.
    assert_eq!(pair.states(), (Normal, Normal));
    assert!(
        pair.primary
            .states
            .ends_with(&[PotentialConflict, ConflictDone, Normal])
    );
    assert!(
        pair.secondary
            .states
            .ends_with(&[PotentialConflict, Normal])
    );
    assert_eq!(pair.primary.bindings, pair.secondary.bindings);
    assert_eq!(pair.primary.bindings.len(), 2);
}

#[test]
fn a_restarted_server_answers_no_client_until_it_has_heard_its_partner() {
    use ServerState::{CommunicationsInterrupted, PartnerDown, PotentialConflict, Startup};
    let mut pair = normal_pair();
    pair.cut();
    pair.run_until(T0 + 40);
    assert_eq!(pair.secondary.session.partner_down(pair.now), Ok(()));
    pair.secondary.process_events();
    // The primary restarts from NORMAL while the secondary has taken over: until it hears
    // the secondary's PARTNER-DOWN it must not serve (it was restarted from NORMAL, which
    // alone would allow its own pool in COMMUNICATIONS-INTERRUPTED).
    let saved = pair.primary.saved;
    pair.primary = Server::new(config(Role::Primary), saved, pair.now);
    pair.primary.process_events();
    assert_eq!(pair.primary.session.state(), Startup);
    assert!(
        pair.primary.states.is_empty(),
        "no service before the decision"
    );
    pair.secondary.session.disconnected(pair.now);
    pair.connect();
    assert_eq!(
        pair.primary.states.first(),
        Some(&CommunicationsInterrupted)
    );
    assert!(pair.primary.states.contains(&PotentialConflict));
    // Alone, the decision waits the receive timer, then falls back as after any failure.
    pair.cut();
    let saved = Some(Restored {
        state: ServerState::Normal,
        start_time: pair.now,
        mclt: Some(MCLT),
    });
    let started = pair.now;
    pair.primary = Server::new(config(Role::Primary), saved, started);
    pair.run_until(started + u64::from(config(Role::Primary).receive_timer) - 1);
    assert_eq!(pair.primary.session.state(), Startup);
    pair.run_until(started + u64::from(config(Role::Primary).receive_timer));
    assert_eq!(pair.primary.states, [CommunicationsInterrupted]);
    // A server restarted in PARTNER-DOWN keeps the time it entered it.
    let saved = Some(Restored {
        state: PartnerDown,
        start_time: started,
        mclt: Some(MCLT),
    });
    pair.secondary = Server::new(config(Role::Secondary), saved, pair.now + 5);
    pair.now += 100;
    pair.secondary.session.handle_timeout(pair.now);
    pair.secondary.process_events();
    assert_eq!(pair.secondary.session.state(), PartnerDown);
    assert_eq!(pair.secondary.session.since(), started);
}

#[test]
fn a_state_change_leaves_after_the_updates_made_before_it() {
    use ServerState::PotentialConflict;
    let mut pair = normal_pair();
    pair.cut();
    pair.run_until(T0 + 40);
    assert_eq!(pair.primary.session.partner_down(pair.now), Ok(()));
    pair.primary.process_events();
    // In PARTNER-DOWN the primary leases more than one window of addresses.
    for n in 1..=25 {
        let b = active(n, pair.now);
        pair.primary.bindings.insert(b.address, b.clone());
        pair.primary.session.send_update(b);
    }
    // While it is last known in PARTNER-DOWN, the partner may use the secondary's addresses.
    pair.primary.session.disconnected(pair.now);
    pair.secondary.session.disconnected(pair.now);
    pair.primary.sent.clear();
    pair.up = true;
    pair.primary.session.connected(pair.now);
    pair.secondary.session.connected(pair.now);
    let mut heard_down = false;
    for _ in 0..10_000 {
        let a = pair.primary.drain(pair.now);
        for m in &a {
            pair.secondary.session.handle(pair.now, m);
        }
        heard_down |= pair.secondary.session.own_addresses_from() == Time::MAX;
        let b = pair.secondary.drain(pair.now);
        for m in &b {
            pair.primary.session.handle(pair.now, m);
        }
        if a.is_empty() && b.is_empty() {
            break;
        }
    }
    assert!(
        heard_down,
        "the secondary held back while the primary was in PARTNER-DOWN"
    );
    assert!(pair.primary.states.contains(&PotentialConflict));
    // Every update made in PARTNER-DOWN reached the secondary before the STATE that left it.
    let sent = &pair.primary.sent;
    let states: Vec<_> = (0..sent.len()).filter(|&i| sent[i] == "STATE").collect();
    assert!(states.len() >= 2, "{sent:?}");
    let before = sent[..states[1]].iter().filter(|&&m| m == "BNDUPD").count();
    assert!(before >= 25, "{sent:?}");
    assert_eq!(pair.secondary.bindings.len(), pair.primary.bindings.len());
    assert_eq!(pair.secondary.session.own_addresses_from(), pair.now);
}
