//! The engine with a failover partner: which clients it answers in each service its
//! failover state allows (S7, RFC 3074 load balancing in NORMAL), and the MCLT rule on every
//! grant (S2: a lease runs at most the MCLT past what the partner acknowledged), and a
//! partner's updates through the install door (figure 7.1.3-1).

use std::net::Ipv4Addr;

use peregrine_engine::{
    BindingEvent, BindingSink, BindingState, DropReason, FailoverDriver, FailoverPolicy, Notice,
    Service, Verdict,
};
use peregrine_failover::binding::{Binding as PartnerBinding, Hardware};
use peregrine_failover::codec::MAX_MESSAGE_LEN;
use peregrine_failover::hash::{BitOrder, HashBucketAssignment, bucket};
use peregrine_failover::message::RejectReason;
use peregrine_failover::{BindingStatus, Config, Role, ServerState, Session};
use peregrine_wire::dhcp::MessageType;

use crate::support::{Client, SERVER, Sim, T0, engine, lab_config, meta};

const MCLT: u32 = 30;

fn policy(primary: bool) -> FailoverPolicy {
    FailoverPolicy {
        primary,
        mclt: MCLT,
        buckets: HashBucketAssignment::split(128),
        bit_order: BitOrder::Draft,
        load_balance_max_secs: 3,
        broken: None,
    }
}

fn sim(primary: bool, service: Service) -> Sim {
    let engine = engine(&lab_config()).with_failover(policy(primary));
    engine.set_failover_service(service);
    Sim {
        engine,
        now: T0,
        tx: vec![0u8; 1500],
    }
}

fn dropped(v: &Verdict) -> Option<DropReason> {
    match v {
        Verdict::Drop(r) => Some(*r),
        _ => None,
    }
}

#[test]
fn states_that_must_be_silent_answer_nothing_and_recover_done_only_renewals() {
    let c = Client::new(1);
    // Before the session has said anything the engine is silent.
    let engine = engine(&lab_config()).with_failover(policy(true));
    let mut quiet = Sim {
        engine,
        now: T0,
        tx: vec![0u8; 1500],
    };
    assert_eq!(
        dropped(&quiet.send(&c.discover())),
        Some(DropReason::FailoverSilent)
    );
    // A lease made while serving all...
    let mut s = sim(true, Service::All);
    let addr = s.dora(&c);
    // ...is renewed in RECOVER-DONE, where nothing else is answered.
    s.engine.set_failover_service(Service::RenewOnly);
    s.advance(20);
    assert!(matches!(
        s.send(&c.renew(addr)),
        Verdict::Defer {
            kind: MessageType::Ack,
            ..
        }
    ));
    let other = Client::new(2);
    assert_eq!(
        dropped(&s.send(&other.discover())),
        Some(DropReason::FailoverSilent)
    );
    assert_eq!(
        dropped(&s.send(&c.init_reboot(addr))),
        Some(DropReason::FailoverSilent)
    );
    s.engine.set_failover_service(Service::None);
    assert_eq!(
        dropped(&s.send(&c.renew(addr))),
        Some(DropReason::FailoverSilent)
    );
}

#[test]
fn in_normal_each_server_answers_exactly_its_buckets() {
    let mut primary = sim(true, Service::Balanced);
    let mut secondary = sim(false, Service::Balanced);
    let mut answered = [0usize; 2];
    // Fewer clients than the direct scope's 100 addresses: a drop is the hash's, not the pool's.
    let partners = |v: &Verdict| dropped(v) == Some(DropReason::PartnerClient);
    for n in 0..90 {
        let c = Client::new(n);
        let by_primary = !partners(&primary.send(&c.discover()));
        let by_secondary = !partners(&secondary.send(&c.discover()));
        assert_ne!(
            by_primary, by_secondary,
            "client {n}: exactly one server answers"
        );
        // The primary's buckets are 0..128 of the RFC 3074 hash of chaddr.
        assert_eq!(by_primary, bucket(&c.mac) < 128, "client {n}");
        answered[usize::from(by_secondary)] += 1;
    }
    assert!(answered[0] > 25 && answered[1] > 25, "{answered:?}");
    // A client that has waited past the load-balance limit is answered by both.
    let mut c = (0..90)
        .map(Client::new)
        .find(|c| bucket(&c.mac) >= 128)
        .unwrap();
    assert_eq!(
        dropped(&primary.send(&c.discover())),
        Some(DropReason::PartnerClient)
    );
    c.secs = 4;
    assert!(!matches!(primary.send(&c.discover()), Verdict::Drop(_)));
}

#[test]
fn a_first_lease_is_the_mclt_until_the_partner_acknowledges() {
    let mut s = sim(true, Service::All);
    let c = Client::new(7);
    let v = s.send(&c.discover());
    let addr = s.reply(&v).packet().yiaddr();
    let v = s.send(&c.select(addr, SERVER));
    let Verdict::Defer { event, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(
        s.reply(&v).lease_time(),
        Some(MCLT),
        "the first ACK is the MCLT"
    );
    // The update tells the partner it may see the whole lease: t + desired + granted / 2.
    let desired = 3600;
    assert_eq!(
        event.binding.partner_sent,
        T0 + desired + u64::from(MCLT / 2)
    );
    assert_eq!(event.binding.expires, T0 + u64::from(MCLT));
    // Renewed before the partner acknowledged: still no more than the MCLT from now.
    s.advance(15);
    let v = s.send(&c.renew(addr));
    assert_eq!(s.reply(&v).lease_time(), Some(MCLT));
    // Acknowledged: the next renewal gets the whole lease.
    let acked = s
        .engine
        .partner_acknowledged(addr, event.binding.partner_sent, BindingStatus::Active)
        .unwrap();
    assert_eq!(acked.binding.partner_acked, event.binding.partner_sent);
    assert_eq!(acked.binding.state, BindingState::Active);
    assert_eq!(
        s.engine
            .partner_acknowledged(addr, T0, BindingStatus::Active),
        None,
        "nothing newer"
    );
    s.advance(1);
    let v = s.send(&c.renew(addr));
    assert_eq!(s.reply(&v).lease_time(), Some(3600));
}

/// A partner's ACTIVE binding of `addr` for `c`, leased until `until`, promised to `pet`.
fn partner_active(c: &Client, addr: Ipv4Addr, until: u64, pet: u64) -> PartnerBinding {
    let mut b = PartnerBinding::new(addr, BindingStatus::Active);
    b.hardware = Some(Hardware::ethernet(c.mac));
    b.lease_expiration = until;
    b.potential_expiration = pet;
    b.start_time_of_state = T0;
    b.client_last_transaction = Some(T0);
    b
}

#[test]
fn a_partners_binding_enters_by_the_drafts_rules() {
    // The secondary takes the primary's lease: the client is known here at once; what the
    // partner may have promised bounds when the address may be reused, and what this server
    // grants is bounded by what the partner acknowledged of its own (nothing yet): the
    // partner's times are read through the clock skew, and reading them late is safe only
    // for reuse (pair simulation, seed 727).
    let mut s = sim(false, Service::All);
    let c = Client::new(9);
    let addr = Ipv4Addr::new(10, 200, 0, 150);
    let event = s
        .engine
        .install_partner(T0, &partner_active(&c, addr, T0 + 600, T0 + 900), false)
        .unwrap();
    assert_eq!(event.binding.state, BindingState::Active);
    assert_eq!(event.binding.partner_sent, T0 + 900);
    assert_eq!(event.binding.partner_acked, 0);
    assert_eq!(s.yiaddr(&c.discover()), addr);
    let v = s.send(&c.select(addr, SERVER));
    assert_eq!(
        s.reply(&v).lease_time(),
        Some(MCLT),
        "the MCLT past nothing acknowledged"
    );

    // At the primary, a partner's lease of an address another client holds is refused, and
    // an early expiry of a running lease is outdated.
    let mut p = sim(true, Service::All);
    let holder = Client::new(10);
    let held = p.dora(&holder);
    let other = Client::new(11);
    assert_eq!(
        p.engine
            .install_partner(T0, &partner_active(&other, held, T0 + 600, T0 + 900), false),
        Err(RejectReason::FATAL_CONFLICT)
    );
    let mut expired = partner_active(&holder, held, T0, T0);
    expired.status = BindingStatus::Expired;
    assert_eq!(
        p.engine.install_partner(T0 + 1, &expired, false),
        Err(RejectReason::OUTDATED_BINDING_INFORMATION)
    );
    // The same client's renewal by the partner is taken.
    assert!(
        p.engine
            .install_partner(
                T0 + 1,
                &partner_active(&holder, held, T0 + 700, T0 + 1000),
                false
            )
            .is_ok()
    );
    // An address outside every pool.
    let outside = partner_active(&other, Ipv4Addr::new(192, 0, 2, 1), T0 + 600, T0 + 900);
    assert_eq!(
        p.engine.install_partner(T0, &outside, false),
        Err(RejectReason::ILLEGAL_IP_ADDRESS)
    );
}

/// A DISCOVER's offered address, or the drop reason.
fn offer(s: &mut Sim, c: &Client) -> Result<Ipv4Addr, DropReason> {
    let v = s.send(&c.discover());
    match v {
        Verdict::Drop(r) => Err(r),
        _ => Ok(s.reply(&v).packet().yiaddr()),
    }
}

#[test]
fn each_server_allocates_only_its_own_pool_until_partner_down_has_lasted_the_mclt() {
    // The direct scope's 100 addresses start FREE: the primary's. Pool balancing gives 40 to
    // the secondary, which takes them as the primary's BACKUP updates.
    let mut primary = sim(true, Service::All);
    let mut secondary = sim(false, Service::All);
    assert_eq!(
        offer(&mut secondary, &Client::new(1)),
        Err(DropReason::PoolExhausted)
    );
    let moved = primary.engine.assign_backup(T0, 40);
    assert_eq!(moved.len(), 40);
    let backup: Vec<Ipv4Addr> = moved.iter().map(|e| e.address).collect();
    for e in &moved {
        assert_eq!(e.binding.state, BindingState::Backup);
        let mut b = PartnerBinding::new(e.address, BindingStatus::Backup);
        b.start_time_of_state = T0;
        secondary.engine.install_partner(T0, &b, false).unwrap();
    }
    assert!(
        secondary.engine.assign_backup(T0, 1).is_empty(),
        "only the primary balances"
    );
    // COMMUNICATIONS-INTERRUPTED: each serves every client, from its own pool only, and no
    // address is offered by both (S1, S6).
    let mut offered = std::collections::HashSet::new();
    for n in 0..40 {
        let a = offer(&mut secondary, &Client::new(100 + n)).unwrap();
        assert!(backup.contains(&a), "{a} is the secondary's");
        assert!(offered.insert(a));
    }
    assert_eq!(
        offer(&mut secondary, &Client::new(200)),
        Err(DropReason::PoolExhausted)
    );
    for n in 0..60 {
        let a = offer(&mut primary, &Client::new(300 + n)).unwrap();
        assert!(!backup.contains(&a), "{a} is not the primary's to offer");
        assert!(offered.insert(a));
    }
    assert_eq!(
        offer(&mut primary, &Client::new(400)),
        Err(DropReason::PoolExhausted)
    );
    // PARTNER-DOWN: the partner's addresses only once the MCLT has passed (S5).
    let mut fresh = sim(true, Service::All);
    fresh.engine.assign_backup(T0, 100);
    fresh.engine.set_partner_down(Some(T0));
    assert_eq!(
        offer(&mut fresh, &Client::new(500)),
        Err(DropReason::PoolExhausted)
    );
    fresh.advance(u64::from(MCLT));
    assert!(offer(&mut fresh, &Client::new(500)).is_ok());
}

#[test]
fn an_expired_lease_waits_for_the_partners_acknowledgement_before_another_client_has_it() {
    let mut config = lab_config();
    config.scopes[0].pools[0].last = Ipv4Addr::new(10, 200, 0, 100);
    let engine = engine(&config).with_failover(policy(true));
    engine.set_failover_service(Service::All);
    let mut s = Sim {
        engine,
        now: T0,
        tx: vec![0u8; 1500],
    };
    // One address; its client's lease (the MCLT: 30 s) runs out.
    let holder = Client::new(1);
    let addr = s.dora(&holder);
    s.advance(u64::from(MCLT) + 1);
    let expired = s.tick();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].binding.state, BindingState::Expired);
    // Until the partner acknowledges the expiry, no other client gets the address.
    let other = Client::new(2);
    assert_eq!(offer(&mut s, &other), Err(DropReason::PoolExhausted));
    // The acknowledgement of the lease's update is not that of its expiry.
    let lease = s
        .engine
        .partner_acknowledged(addr, s.now, BindingStatus::Active)
        .unwrap();
    assert_eq!(lease.binding.state, BindingState::Expired);
    let acked = s
        .engine
        .partner_acknowledged(addr, s.now + 1, BindingStatus::Expired)
        .unwrap();
    assert_eq!(acked.binding.state, BindingState::Free);
    // Nor before the MCLT after the latest potential expiration either side sent: a partner
    // that lost its database acknowledges what it no longer knows it promised.
    let promised = acked.binding.partner_sent.max(acked.binding.partner_acked);
    assert!(promised > acked.binding.expires);
    s.now = promised + u64::from(MCLT) - 1;
    assert_eq!(offer(&mut s, &other), Err(DropReason::PoolExhausted));
    s.now += 1;
    assert_eq!(offer(&mut s, &other), Ok(addr));
}

/// A journal whose confirmations the test releases.
#[derive(Default)]
struct Gate {
    submitted: u64,
    confirmed: u64,
}

impl BindingSink for Gate {
    fn submit(&mut self, _: &BindingEvent) -> Option<u64> {
        self.submitted += 1;
        Some(self.submitted)
    }

    fn confirmed(&self) -> u64 {
        self.confirmed
    }
}

/// One side of a pair joined by the driver: its engine, driver and journal, and the
/// acknowledgements of its own updates it has heard.
struct Side {
    engine: peregrine_engine::Engine,
    driver: FailoverDriver,
    journal: Gate,
    acknowledged: usize,
}

impl Side {
    fn new(role: Role) -> Side {
        let mut config = lab_config();
        config.scopes.truncate(1);
        config.scopes[0].pools[0].last = Ipv4Addr::new(10, 200, 0, 119);
        let engine = engine(&config).with_failover(policy(role == Role::Primary));
        let mut driver = FailoverDriver::new(session(role), &engine);
        driver.session_mut().connected(T0);
        Side {
            engine,
            driver,
            journal: Gate::default(),
            acknowledged: 0,
        }
    }

    /// Carries out what the session asks; returns the bytes it has for the partner.
    fn step(&mut self, now: u64) -> Vec<Vec<u8>> {
        while let Some(notice) = self.driver.poll(now, &self.engine, &mut self.journal) {
            match notice {
                Notice::Persist(_) => self.driver.persisted(&self.engine),
                Notice::Acknowledged { result, .. } => {
                    assert_eq!(result, Ok(()));
                    self.acknowledged += 1;
                }
                Notice::Closed(reason) => panic!("closed: {reason:?}"),
                _ => {}
            }
        }
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        while let Some(len) = self.driver.session_mut().poll_transmit(now, &mut buf) {
            out.push(buf[..len].to_vec());
        }
        out
    }
}

/// A new session in `role`, at `T0`.
fn session(role: Role) -> Session {
    Session::new(
        Config {
            role,
            relationship_name: (*b"test").into(),
            mclt: (role == Role::Primary).then_some(MCLT),
            hash_bucket_assignment: HashBucketAssignment::split(128),
            max_unacked_bndupd: 10,
            receive_timer: 30,
            max_clock_skew: 60,
            vendor_class: (*b"peregrine-test").into(),
            safe_period: None,
        },
        None,
        T0,
    )
}

/// Runs the pair for `secs` seconds, a round of messages each way per second.
fn run(pair: &mut [Side; 2], from: u64, secs: u64) {
    for now in from..from + secs {
        for i in 0..2 {
            for m in pair[i].step(now) {
                pair[1 - i].driver.session_mut().handle(now, &m);
            }
        }
    }
}

#[test]
fn the_driver_acknowledges_a_partners_update_only_once_the_journal_has_it() {
    let mut pair = [Side::new(Role::Primary), Side::new(Role::Secondary)];
    // The secondary's journal holds everything unconfirmed.
    run(&mut pair, T0, 10);
    for side in &pair {
        assert_eq!(side.driver.session().state(), ServerState::Normal);
    }
    // NORMAL: the secondary asked for its share, and the primary sent it as updates; the
    // secondary installed them but has not acknowledged one.
    let installed = pair[1].engine.pool_stats()[0].backup;
    assert!(installed >= 10, "{installed}");
    assert_eq!(pair[1].journal.submitted, installed);
    assert_eq!(pair[0].acknowledged, 0);
    // Once they are durable, every one is acknowledged.
    pair[1].journal.confirmed = u64::MAX;
    run(&mut pair, T0 + 10, 10);
    assert_eq!(pair[0].acknowledged as u64, installed);
}

#[test]
fn a_backup_assignment_dated_now_as_isc_dates_it_is_usable_at_once() {
    // ISC's primary sends BACKUP with its potential expiration at the start of the state
    // (now): no lease was promised, and the secondary allocates the address at once.
    let mut secondary = sim(false, Service::All);
    let addr = Ipv4Addr::new(10, 200, 0, 100);
    let mut b = PartnerBinding::new(addr, BindingStatus::Backup);
    b.start_time_of_state = T0;
    b.potential_expiration = T0;
    secondary.engine.install_partner(T0, &b, false).unwrap();
    assert_eq!(offer(&mut secondary, &Client::new(1)), Ok(addr));
    // A promise past the assignment is one: reuse waits the MCLT past it.
    let mut later = sim(false, Service::All);
    b.potential_expiration = T0 + 10;
    later.engine.install_partner(T0, &b, false).unwrap();
    assert_eq!(
        offer(&mut later, &Client::new(1)),
        Err(DropReason::PoolExhausted)
    );
}

#[test]
fn a_scope_served_alone_answers_in_every_state_and_the_partner_never_hears_of_it() {
    // "relayed" is this server's alone (`failover = false`); "direct" is shared.
    let mut config = lab_config();
    config.scopes[1].failover = false;
    let alone = |a: Ipv4Addr| a.octets()[..2] == [10, 201];
    let mut secondary = Sim {
        engine: engine(&config).with_failover(policy(false)),
        now: T0,
        tx: vec![0u8; 1500],
    };
    // Silent as at every start (no failover state yet) for the shared scope only.
    let direct = Client::new(1);
    assert_eq!(
        dropped(&secondary.send(&direct.discover())),
        Some(DropReason::FailoverSilent)
    );
    // The scope served alone allocates from its whole pool (FREE, which a secondary never
    // allocates in a shared scope) and grants the full lease, not the MCLT.
    let relayed = Client::new(2).relayed([10, 201, 0, 1], b"olt-1/1/1");
    let addr = offer(&mut secondary, &relayed).unwrap();
    assert!(alone(addr), "{addr}");
    let v = secondary.send(&relayed.select(addr, SERVER));
    let ack = secondary.reply(&v);
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.lease_time(), Some(config.scopes[1].lease.valid));
    let Verdict::Defer { event, .. } = v else {
        panic!("{v:?}");
    };
    // Its bindings are not sent to the partner, nor taken from it.
    let mut driver = FailoverDriver::new(session(Role::Secondary), &secondary.engine);
    assert!(!driver.send(&event));
    assert_eq!(driver.updates_sent(), 0);
    let update = PartnerBinding::new(addr, BindingStatus::Free);
    assert_eq!(
        secondary.engine.install_partner(T0, &update, false),
        Err(RejectReason::ILLEGAL_IP_ADDRESS)
    );
    // The shared scope still follows ownership: the secondary holds no BACKUP address yet.
    secondary.engine.set_failover_service(Service::All);
    assert_eq!(
        offer(&mut secondary, &direct),
        Err(DropReason::PoolExhausted)
    );
    // The primary balances the shared scope's pool only: half of its 100 addresses.
    let primary = engine(&config).with_failover(policy(true));
    let moved = primary.balance_pools(T0);
    assert_eq!(moved.len(), 50);
    assert!(moved.iter().all(|e| !alone(e.address)));
}

/// The draft's client-request-options (D12 §7.1.1): what a client said of itself (its name,
/// vendor class, the relay's option 82) reaches the partner with its lease, so that either
/// server's lease list shows it and the partner keeps it through a renewal without the relay.
#[test]
fn the_partner_learns_what_the_client_said_of_itself() {
    let mut pair = [Side::new(Role::Primary), Side::new(Role::Secondary)];
    for side in &mut pair {
        side.journal.confirmed = u64::MAX;
    }
    run(&mut pair, T0, 10);
    assert_eq!(pair[0].driver.session().state(), ServerState::Normal);
    let now = T0 + 10;
    let m = meta(&pair[0].engine);
    let mut tx = vec![0u8; 1500];
    // A client of the primary's hash buckets, behind a relay, with a name and a vendor class.
    let (c, addr) = (0..64)
        .find_map(|n| {
            let mut c = Client::new(n).relayed([10, 200, 0, 1], b"olt-2/1/1:9");
            c.hostname = Some(b"cpe-9".to_vec());
            c.vendor_class = Some(b"acme-ont".to_vec());
            let v = pair[0].engine.handle(now, &m, &c.discover(), &mut tx);
            matches!(v, Verdict::Reply { .. }).then(|| {
                (
                    c,
                    peregrine_wire::dhcp::DhcpMessage::parse(&tx)
                        .unwrap()
                        .packet()
                        .yiaddr(),
                )
            })
        })
        .expect("a client of the primary");
    let v = pair[0]
        .engine
        .handle(now, &m, &c.select(addr, SERVER), &mut tx);
    let Verdict::Defer { event, .. } = v else {
        panic!("{v:?}");
    };
    pair[0].driver.send(&event);
    run(&mut pair, now, 5);
    let (_, b) = pair[1].engine.binding(addr).unwrap();
    assert_eq!(b.state, BindingState::Active);
    assert_eq!(b.info, event.binding.info);
    assert_eq!(b.info.host_name(), Some(&b"cpe-9"[..]));
    assert_eq!(b.info.vendor_class(), Some(&b"acme-ont"[..]));
    assert!(b.info.relay_agent_info().is_some());
}
