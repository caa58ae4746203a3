//! Random message sequences from several clients over time, against invariants.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use peregrine_engine::{BindingState, Verdict};
use peregrine_wire::dhcp::MessageType;
use proptest::prelude::*;

use crate::support::*;

#[derive(Debug, Clone)]
enum Op {
    Discover(usize),
    Select(usize),
    InitReboot(usize, u8),
    Renew(usize),
    Release(usize),
    Decline(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0usize..6;
    prop_oneof![
        3 => c.clone().prop_map(Op::Discover),
        3 => c.clone().prop_map(Op::Select),
        1 => (c.clone(), 100u8..106).prop_map(|(c, a)| Op::InitReboot(c, a)),
        2 => c.clone().prop_map(Op::Renew),
        1 => c.clone().prop_map(Op::Release),
        1 => c.prop_map(Op::Decline),
        2 => prop_oneof![Just(5u64), Just(600), Just(2000), Just(4000)].prop_map(Op::Advance),
    ]
}

/// What each client believes: its last offer, and the address it holds until when.
#[derive(Default, Clone)]
struct Belief {
    offered: Option<Ipv4Addr>,
    held: Option<(Ipv4Addr, u64)>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Four addresses, six clients: contention for every address. No address is ever ACKed to
    /// a client while another still holds an unexpired lease on it; every ACK is in the pool;
    /// the per-state counts match the bindings.
    #[test]
    fn no_address_is_leased_to_two_clients(ops in prop::collection::vec(op(), 1..80), authoritative in any::<bool>()) {
        let mut config = lab_config();
        config.scopes[0].pools[0].last = [10, 200, 0, 103].into();
        config.scopes[0].authoritative = authoritative;
        let mut sim = Sim::new(&config);
        let clients: Vec<Client> = (0..6).map(|i| Client::new(500 + i)).collect();
        let mut beliefs = vec![Belief::default(); 6];
        for op in ops {
            let (who, msg) = match &op {
                Op::Advance(s) => { sim.advance(*s); sim.tick(); continue; }
                Op::Discover(c) => (*c, clients[*c].discover()),
                Op::Select(c) => match beliefs[*c].offered { Some(a) => (*c, clients[*c].select(a, SERVER)), None => continue },
                Op::InitReboot(c, last) => (*c, clients[*c].init_reboot(Ipv4Addr::new(10, 200, 0, *last))),
                Op::Renew(c) => match beliefs[*c].held { Some((a, _)) => (*c, clients[*c].renew(a)), None => continue },
                Op::Release(c) => match beliefs[*c].held { Some((a, _)) => (*c, clients[*c].release(a, SERVER)), None => continue },
                Op::Decline(c) => match beliefs[*c].held { Some((a, _)) => (*c, clients[*c].decline(a, SERVER)), None => continue },
            };
            let v = sim.send(&msg);
            match v {
                // This configuration has no ping check: no Probe.
                Verdict::Reply { .. } | Verdict::Defer { .. } | Verdict::Probe { .. } => {
                    let reply = sim.reply(&v);
                    let a = reply.packet().yiaddr();
                    match reply.message_type() {
                        Some(MessageType::Offer) => beliefs[who].offered = Some(a),
                        Some(MessageType::Ack) => {
                            prop_assert!(a >= Ipv4Addr::new(10, 200, 0, 100) && a <= Ipv4Addr::new(10, 200, 0, 103), "ACK outside the pool: {}", a);
                            for (other, b) in beliefs.iter().enumerate() {
                                if other != who && let Some((held, until)) = b.held {
                                    prop_assert!(held != a || until <= sim.now, "{} ACKed to client {} while client {} holds it until {}", a, who, other, until);
                                }
                            }
                            let lease = u64::from(reply.lease_time().unwrap());
                            beliefs[who].held = Some((a, sim.now + lease));
                        }
                        Some(MessageType::Nak) => beliefs[who].held = None,
                        other => prop_assert!(false, "unexpected reply {:?}", other),
                    }
                }
                Verdict::Record { .. } => beliefs[who].held = None,
                Verdict::Drop(_) => {}
            }
            if matches!(op, Op::Release(_) | Op::Decline(_)) {
                beliefs[who].held = None;
            }
        }
        // Counts per state agree with the bindings themselves.
        let stats = &sim.engine.pool_stats()[0];
        let mut by_state: HashMap<BindingState, u64> = HashMap::new();
        for last in 100..=103 {
            let (_, b) = sim.engine.binding(Ipv4Addr::new(10, 200, 0, last)).unwrap();
            *by_state.entry(b.state).or_default() += 1;
        }
        prop_assert_eq!(stats.total, 4);
        prop_assert_eq!(stats.active, by_state.get(&BindingState::Active).copied().unwrap_or(0));
        prop_assert_eq!(stats.offered, by_state.get(&BindingState::Offered).copied().unwrap_or(0));
        prop_assert_eq!(stats.abandoned, by_state.get(&BindingState::Abandoned).copied().unwrap_or(0));
    }

    #[test]
    fn no_panic_on_any_request_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600), relayed in any::<bool>()) {
        let mut sim = Sim::new(&lab_config());
        let _ = sim.send(&bytes);
        // And on a valid header and cookie followed by anything.
        let mut msg = if relayed { Client::new(1).relayed([10, 201, 0, 1], b"c").discover() } else { Client::new(1).discover() };
        msg.truncate(240);
        msg.extend_from_slice(&bytes);
        let _ = sim.send(&msg);
    }
}
