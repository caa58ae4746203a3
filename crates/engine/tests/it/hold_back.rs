//! Addresses held back after journal damage: no new client gets one before the hold-back
//! ends, but whoever asks for one by name (only a lost record's client would) gets it back.

use std::net::Ipv4Addr;

use peregrine_engine::{BindingState, DropReason, Verdict};
use peregrine_wire::dhcp::MessageType;

use crate::support::{Client, SERVER, Sim, lab_config};

const HOUR: u64 = 3600;

fn acked(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Defer {
            kind: MessageType::Ack,
            ..
        } | Verdict::Reply {
            kind: MessageType::Ack,
            ..
        }
    )
}

fn held_back(sim: &Sim) -> u64 {
    sim.engine.pool_stats().iter().map(|p| p.held_back).sum()
}

#[test]
fn held_back_addresses_go_to_no_new_client_but_to_whoever_asks_for_one_by_name() {
    // Not authoritative: a stranger rebooting into a free address is ignored, so the ACKs
    // below come from the hold-back's own rule.
    let mut sim = Sim::new(&lab_config());
    let leased = sim.dora(&Client::new(1));
    let total: u64 = sim.engine.pool_stats().iter().map(|p| p.total).sum();
    let until = sim.now + HOUR;
    let held = sim.engine.hold_back(sim.now, until, |_, _| true);
    // Every address but the lease, each as a change to journal, out until `until`.
    assert_eq!(held.len() as u64, total - 1);
    assert!(held.iter().all(|e| e.address != leased
        && e.binding.state == BindingState::HeldBack
        && e.binding.expires == until));
    assert_eq!(held_back(&sim), total - 1);
    let free: u64 = sim.engine.pool_stats().iter().map(|p| p.free).sum();
    assert_eq!(free, 0);

    // A new client gets nothing.
    let v = sim.send(&Client::new(2).discover());
    assert_eq!(v, Verdict::Drop(DropReason::PoolExhausted));
    // A client rebooting into a held-back address, one renewing another: theirs again.
    let (a, b) = (
        Ipv4Addr::new(10, 200, 0, 150),
        Ipv4Addr::new(10, 200, 0, 151),
    );
    assert!(acked(&sim.send(&Client::new(3).init_reboot(a))));
    assert!(acked(&sim.send(&Client::new(4).renew(b))));
    for (address, client) in [(a, 3), (b, 4)] {
        let (_, binding) = sim.engine.binding(address).unwrap();
        assert_eq!(binding.state, BindingState::Active);
        assert_eq!(binding.mac, Client::new(client).mac);
    }
    // Taken: the next to claim one is refused, as for any leased address.
    let v = sim.send(&Client::new(5).init_reboot(a));
    assert!(!acked(&v), "{v:?}");
    // A client selecting one it was never offered is not taking it back.
    let c = Ipv4Addr::new(10, 200, 0, 152);
    let v = sim.send(&Client::new(6).select(c, SERVER));
    assert!(!acked(&v), "{v:?}");
    assert_eq!(
        sim.engine.binding(c).unwrap().1.state,
        BindingState::HeldBack
    );
    assert_eq!(held_back(&sim), total - 3);

    // The hold-back ends: every address left is free again, and journaled so.
    sim.advance(HOUR);
    // (The three leases, of the lab's hour, run out with it.)
    let ended = sim.tick();
    let freed = ended
        .iter()
        .filter(|e| e.binding.state == BindingState::Free);
    assert_eq!(freed.count() as u64, total - 3);
    assert_eq!(held_back(&sim), 0);
    let v = sim.send(&Client::new(2).discover());
    assert_eq!(sim.reply(&v).message_type(), Some(MessageType::Offer));
}

#[test]
fn a_held_back_address_remembers_its_last_client_who_may_have_it_back() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(1);
    let address = sim.dora(&c);
    sim.send(&c.release(address, SERVER));
    let (_, released) = sim.engine.binding(address).unwrap();
    assert_eq!(released.state, BindingState::Released);
    // Only this address is unsettled.
    let held = sim
        .engine
        .hold_back(sim.now, sim.now + HOUR, |_, a| a == address);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].binding.client, released.client);
    // Another client is not offered it; its last client is.
    let v = sim.send(&Client::new(2).discover());
    assert_ne!(sim.reply(&v).packet().yiaddr(), address);
    let v = sim.send(&c.discover());
    assert_eq!(sim.reply(&v).packet().yiaddr(), address);
    // Unclaimed, its hold-back ends where it was: released, remembering its client.
    let mut sim = Sim::new(&lab_config());
    let address = sim.dora(&c);
    sim.send(&c.release(address, SERVER));
    sim.engine
        .hold_back(sim.now, sim.now + HOUR, |_, a| a == address);
    sim.advance(HOUR);
    let ended = sim.tick();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].binding.state, BindingState::Expired);
    assert_eq!(ended[0].binding.client, released.client);
}

#[test]
fn the_operator_ends_a_hold_back_and_the_address_serves_again() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(1);
    let remembered = sim.dora(&c);
    sim.send(&c.release(remembered, SERVER));
    let stranger = Ipv4Addr::new(10, 200, 0, 120);
    let held = sim.engine.hold_back(sim.now, sim.now + HOUR, |_, a| {
        a == remembered || a == stranger
    });
    assert_eq!(held.len(), 2);
    // Let go: released (it remembers its client) or free (it remembers none), journaled.
    let ended = sim.engine.revoke(sim.now, remembered).unwrap();
    assert_eq!(ended.binding.state, BindingState::Released);
    assert_eq!(ended.binding.mac, c.mac);
    let ended = sim.engine.revoke(sim.now, stranger).unwrap();
    assert_eq!(ended.binding.state, BindingState::Free);
    assert_eq!(held_back(&sim), 0);
    // Free again, and nothing else to end.
    assert_eq!(sim.engine.revoke(sim.now, stranger), None);
    let got = sim.send(&Client::new(2).select(stranger, SERVER));
    assert!(acked(&got), "{got:?}");
}
