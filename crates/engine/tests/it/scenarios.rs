//! One scenario per branch of RFC 2131 section 4.3 and per carrier feature, on a fake clock.

use std::net::Ipv4Addr;

use peregrine_config::model::{ClassMatch, ReservationKey, VlanMatch};
use peregrine_engine::{BindingEvent, BindingState, DropReason, NextHop, RxMeta, Verdict};
use peregrine_wire::dhcp::{MessageType, opt, relay};
use peregrine_wire::ethernet::{VlanTag, VlanTags};

use crate::support::*;

fn in_pool(a: Ipv4Addr, first: [u8; 4], last: [u8; 4]) -> bool {
    a >= Ipv4Addr::from(first) && a <= Ipv4Addr::from(last)
}

#[test]
fn direct_dora_offers_from_the_interface_scope_with_requested_options() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(1);
    let v = sim.send(&c.discover());
    let Verdict::Reply {
        kind: MessageType::Offer,
        dst,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    // No broadcast bit, no ciaddr: unicast to yiaddr at the client's MAC (RFC 2131 section 4.1).
    assert_eq!(dst.next_hop, NextHop::Client(c.mac()));
    assert_eq!((dst.port, dst.src_ip), (68, SERVER));
    let offer = sim.reply(&v);
    let addr = offer.packet().yiaddr();
    assert!(in_pool(addr, [10, 200, 0, 100], [10, 200, 0, 199]));
    assert_eq!(dst.ip, addr);
    assert_eq!(offer.server_id(), Some(SERVER));
    assert_eq!(offer.lease_time(), Some(3600));
    assert_eq!(
        offer.get(opt::SUBNET_MASK).unwrap().as_slice().unwrap(),
        &[255, 255, 255, 0]
    );
    assert_eq!(
        offer.get(opt::ROUTER).unwrap().as_slice().unwrap(),
        &[10, 200, 0, 1]
    );
    // Options come in the client's order after 53, 54, 51, 58, 59.
    let codes: Vec<u8> = offer.options().map(|o| o.code).collect();
    assert_eq!(codes, [53, 54, 51, 58, 59, 1, 3, 6]);

    let v = sim.send(&c.select(addr, SERVER));
    let Verdict::Defer {
        kind: MessageType::Ack,
        event,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(event.address, addr);
    assert_eq!(event.binding.state, BindingState::Active);
    assert_eq!(event.binding.expires, T0 + 3600);
    assert_eq!(event.binding.mac, c.mac);
}

#[test]
fn broadcast_flag_gets_a_broadcast_reply() {
    let mut sim = Sim::new(&lab_config());
    let mut c = Client::new(2);
    c.broadcast = true;
    let Verdict::Reply { dst, .. } = sim.send(&c.discover()) else {
        panic!()
    };
    assert_eq!(
        (dst.ip, dst.next_hop),
        (Ipv4Addr::BROADCAST, NextHop::Broadcast)
    );
}

#[test]
fn a_known_client_gets_the_same_address_and_a_requested_free_address_is_honoured() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(3);
    let first = sim.yiaddr(&c.discover());
    let v = sim.send(&c.discover());
    assert_eq!(sim.reply(&v).packet().yiaddr(), first);

    let d = Client::new(4);
    let want = Ipv4Addr::new(10, 200, 0, 150);
    let v = sim.send(&d.message(
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        Some(want),
        None,
    ));
    assert_eq!(sim.reply(&v).packet().yiaddr(), want);
    // Another client asking for an address on offer to someone else gets a different one.
    let e = Client::new(5);
    let v = sim.send(&e.message(
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        Some(want),
        None,
    ));
    assert_ne!(sim.reply(&v).packet().yiaddr(), want);
}

#[test]
fn selecting_another_server_withdraws_our_offer() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(6);
    let v = sim.send(&c.discover());
    let addr = sim.reply(&v).packet().yiaddr();
    let other = Ipv4Addr::new(10, 200, 0, 2);
    assert_eq!(
        sim.send(&c.select(addr, other)),
        Verdict::Drop(DropReason::ServerIdNotOurs)
    );
    assert_eq!(
        sim.engine.binding(addr).unwrap().1.state,
        BindingState::Free
    );
}

#[test]
fn init_reboot_acks_a_known_lease_naks_a_wrong_one_and_is_silent_for_strangers() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(7);
    let addr = sim.dora(&c);
    // Correct: ACK (past the cache threshold, so a durable extension).
    sim.advance(1000);
    let v = sim.send(&c.init_reboot(addr));
    assert!(
        matches!(
            v,
            Verdict::Defer {
                kind: MessageType::Ack,
                ..
            }
        ),
        "{v:?}"
    );
    // RFC 2131 §4.3.2: "If the DHCP server has no record of this client, then it MUST remain
    // silent": a stranger asking for another client's address, not authoritative.
    let d = Client::new(8);
    let v = sim.send(&d.init_reboot(addr));
    assert_eq!(v, Verdict::Drop(DropReason::UnknownClient));
    // "Server SHOULD send a DHCPNAK message to the client if the 'requested IP address' is
    // incorrect": the client we hold `addr` for, asking for another one. Broadcast (no giaddr).
    let v = sim.send(&c.init_reboot(Ipv4Addr::new(10, 200, 0, 161)));
    let Verdict::Reply {
        kind: MessageType::Nak,
        dst,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(dst.next_hop, NextHop::Broadcast);
    assert_eq!(
        sim.engine.binding(addr).unwrap().1.state,
        BindingState::Active
    );
    // Wrong network, not authoritative: silent.
    let v = sim.send(&d.init_reboot(Ipv4Addr::new(192, 168, 1, 5)));
    assert_eq!(v, Verdict::Drop(DropReason::UnknownClient));
    // Unknown client asking for a free address, not authoritative: silent (another server may own it).
    let v = sim.send(&d.init_reboot(Ipv4Addr::new(10, 200, 0, 160)));
    assert_eq!(v, Verdict::Drop(DropReason::UnknownClient));
}

#[test]
fn authoritative_naks_wrong_networks_and_grants_free_addresses_to_rebooting_strangers() {
    let mut config = lab_config();
    config.scopes[0].authoritative = true;
    let mut sim = Sim::new(&config);
    let d = Client::new(9);
    let v = sim.send(&d.init_reboot(Ipv4Addr::new(192, 168, 1, 5)));
    assert!(is_nak(&v), "{v:?}");
    let v = sim.send(&d.init_reboot(Ipv4Addr::new(10, 200, 0, 160)));
    assert!(
        matches!(
            v,
            Verdict::Defer {
                kind: MessageType::Ack,
                ..
            }
        ),
        "{v:?}"
    );
    // Once it holds one, another address is wrong for it: NAK, not a second lease.
    let v = sim.send(&d.init_reboot(Ipv4Addr::new(10, 200, 0, 161)));
    assert!(is_nak(&v), "{v:?}");
    // In the subnet but in no pool: nobody gets it from us.
    let v = sim.send(&d.init_reboot(Ipv4Addr::new(10, 200, 0, 20)));
    assert!(is_nak(&v), "{v:?}");
}

/// Whether `v` is a NAK sent now.
fn is_nak(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Reply {
            kind: MessageType::Nak,
            ..
        }
    )
}

#[test]
fn renewal_is_cached_early_and_extended_later() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(10);
    let addr = sim.dora(&c);
    // 10 minutes into a 1 h lease with cache-threshold 0.25: the unchanged lease, not journaled.
    sim.advance(600);
    let v = sim.send(&c.renew(addr));
    let Verdict::Reply {
        kind: MessageType::Ack,
        dst,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(
        (dst.ip, dst.port, dst.next_hop),
        (addr, 68, NextHop::Sender)
    );
    assert_eq!(sim.reply(&v).lease_time(), Some(3000));
    // At T1: extended, durably.
    sim.advance(1200);
    let v = sim.send(&c.renew(addr));
    let Verdict::Defer { event, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(event.binding.expires, sim.now + 3600);
    assert_eq!(sim.reply(&v).lease_time(), Some(3600));
}

/// RFC 2131 §4.3.1: "If the client has requested a specific lease time, the server may grant
/// it (within limits set by the server)"; the limits are the scope's `min-lease-time` and
/// `max-lease-time`, and the timers keep their proportions to the lease.
#[test]
fn a_lease_time_the_client_asks_for_is_granted_within_the_scope_bounds() {
    let times = |sim: &Sim, v: &Verdict| {
        let reply = sim.reply(v);
        let timer = |code| {
            let b = reply.get(code).unwrap().as_slice().unwrap().to_vec();
            u32::from_be_bytes(b.try_into().unwrap())
        };
        (
            reply.lease_time().unwrap(),
            timer(opt::RENEWAL_TIME),
            timer(opt::REBINDING_TIME),
        )
    };
    // Without bounds (both default to the lease time) what a client asks is not heard.
    let mut sim = Sim::new(&lab_config());
    let mut c = Client::new(40);
    c.lease_time = Some(600);
    let v = sim.send(&c.discover());
    assert_eq!(times(&sim, &v), (3600, 1800, 3150));

    let mut config = lab_config();
    config.scopes[0].lease.min = 300;
    config.scopes[0].lease.max = 7200;
    let mut sim = Sim::new(&config);
    let v = sim.send(&c.discover());
    assert_eq!(times(&sim, &v), (600, 300, 525));
    let addr = sim.reply(&v).packet().yiaddr();
    let v = sim.send(&c.select(addr, SERVER));
    let Verdict::Defer { event, .. } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(
        (event.binding.expires, event.binding.granted),
        (T0 + 600, 600)
    );
    assert_eq!(times(&sim, &v), (600, 300, 525));
    // An early renewal asking the same: from the cache, though shorter than the scope's lease.
    sim.advance(60);
    let v = sim.send(&c.renew(addr));
    assert!(matches!(v, Verdict::Reply { .. }), "{v:?}");
    assert_eq!(times(&sim, &v), (540, 270, 472));
    // Below the minimum, above the maximum: the bound.
    c.lease_time = Some(10);
    sim.advance(340);
    let v = sim.send(&c.renew(addr));
    assert_eq!(times(&sim, &v), (300, 150, 262));
    // Right away, asking more than the lease it has: not answered from the cache.
    c.lease_time = Some(86_400);
    let v = sim.send(&c.renew(addr));
    assert!(matches!(v, Verdict::Defer { .. }), "{v:?}");
    assert_eq!(times(&sim, &v), (7200, 3600, 6300));
    // Asking nothing: the scope's lease time.
    let d = Client::new(41);
    let v = sim.send(&d.discover());
    assert_eq!(times(&sim, &v), (3600, 1800, 3150));
    // Right away, asking less than the lease it has: the lease as it stands, from the cache.
    c.lease_time = Some(600);
    let v = sim.send(&c.renew(addr));
    assert!(matches!(v, Verdict::Reply { .. }), "{v:?}");
    assert_eq!(times(&sim, &v).0, 7200);
}

/// RFC 4039 §4: "If the server is configured to use Rapid Commit and receives a DHCPDISCOVER
/// message with the Rapid Commit option, the server ... commits the binding and responds with a
/// DHCPACK" carrying the option; a scope not so configured answers with an OFFER.
#[test]
fn rapid_commit_binds_at_the_discover_where_the_scope_allows_it() {
    let mut c = Client::new(50);
    c.rapid_commit = true;
    let mut sim = Sim::new(&lab_config());
    let v = sim.send(&c.discover());
    assert!(
        matches!(
            v,
            Verdict::Reply {
                kind: MessageType::Offer,
                ..
            }
        ),
        "{v:?}"
    );
    assert!(sim.reply(&v).get(opt::RAPID_COMMIT).is_none());

    let mut config = lab_config();
    config.scopes[0].rapid_commit = true;
    let mut sim = Sim::new(&config);
    let v = sim.send(&c.discover());
    let Verdict::Defer {
        kind: MessageType::Ack,
        event,
        dst,
        ..
    } = &v
    else {
        panic!("{v:?}")
    };
    let ack = sim.reply(&v);
    let addr = ack.packet().yiaddr();
    assert_eq!(
        (event.address, event.binding.state),
        (addr, BindingState::Active)
    );
    assert_eq!(event.binding.expires, T0 + 3600);
    assert_eq!(dst.next_hop, NextHop::Client(c.mac()));
    assert_eq!(ack.get(opt::RAPID_COMMIT).unwrap().len(), 0);
    assert_eq!(ack.packet().ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.lease_time(), Some(3600));
    assert_eq!(
        sim.engine.binding(addr).unwrap().1.state,
        BindingState::Active
    );
    // The lease is the client's like any other: its renewal is answered from it.
    sim.advance(1800);
    let v = sim.send(&c.renew(addr));
    assert!(
        matches!(
            v,
            Verdict::Defer {
                kind: MessageType::Ack,
                ..
            }
        ),
        "{v:?}"
    );
    // Without the option, the four-message exchange.
    let d = Client::new(51);
    let v = sim.send(&d.discover());
    assert!(
        matches!(
            v,
            Verdict::Reply {
                kind: MessageType::Offer,
                ..
            }
        ),
        "{v:?}"
    );
    // An address to ping first is offered, probed, not bound.
    config.scopes[0].ping_check_ms = 500;
    let mut sim = Sim::new(&config);
    let v = sim.send(&c.discover());
    assert!(matches!(v, Verdict::Probe { .. }), "{v:?}");
}

/// RFC 8925 §3.3: "The DHCP server MUST NOT include the IPv6-Only Preferred option in the
/// DHCPOFFER or DHCPACK message if the option was not present in the Parameter Request List
/// sent by the client", and includes it when it was and the pool is configured for it.
#[test]
fn ipv6_only_preferred_goes_only_to_clients_that_ask() {
    let mut config = lab_config();
    config.scopes[0]
        .options
        .set(opt::IPV6_ONLY_PREFERRED, 1800u32.to_be_bytes().to_vec());
    let mut sim = Sim::new(&config);
    let mut c = Client::new(60);
    c.prl.push(opt::IPV6_ONLY_PREFERRED);
    let v = sim.send(&c.discover());
    let wait = sim
        .reply(&v)
        .get(opt::IPV6_ONLY_PREFERRED)
        .map(|v| v.as_slice().unwrap().to_vec());
    assert_eq!(wait, Some(vec![0, 0, 7, 8]));
    let d = Client::new(61);
    let v = sim.send(&d.discover());
    assert!(sim.reply(&v).get(opt::IPV6_ONLY_PREFERRED).is_none());
    // Nor to a client that sends no list at all.
    let mut e = Client::new(62);
    e.prl.clear();
    let v = sim.send(&e.discover());
    assert!(sim.reply(&v).get(opt::IPV6_ONLY_PREFERRED).is_none());
}

/// Scopes on VLANs of one interface: a tagged unrelayed frame goes to the scope its outer and
/// inner tags select, then its outer tag alone, else the interface's untagged scope.
#[test]
fn the_vlan_of_a_directly_attached_frame_selects_its_scope_and_matches_classes() {
    let mut config = lab_config();
    let direct = config.scopes[0].clone();
    let on_vlan = |name: &str, third: u8, vlans: Vec<VlanMatch>| {
        let mut s = direct.clone();
        s.name = name.into();
        s.subnet.addr = Ipv4Addr::new(10, 210, third, 0);
        s.pools[0].first = Ipv4Addr::new(10, 210, third, 100);
        s.pools[0].last = Ipv4Addr::new(10, 210, third, 199);
        s.vlans = vlans;
        s
    };
    let vlan = |outer, inner| VlanMatch { outer, inner };
    config
        .scopes
        .push(on_vlan("vlan-100", 1, vec![vlan(100, None)]));
    config
        .scopes
        .push(on_vlan("qinq-200-10", 2, vec![vlan(200, Some(10))]));
    config
        .scopes
        .push(on_vlan("svlan-200", 3, vec![vlan(200, None)]));
    // On VLAN 300, which no scope names, clients are of a class with a pool of its own.
    config.classes = vec![class("vlan-300", vec![ClassMatch::Vlan(vlan(300, None))])];
    config.scopes[0].pools[0].last = Ipv4Addr::new(10, 200, 0, 149);
    config.scopes[0].pools[0].classes = vec!["vlan-300".into()];
    config.scopes[0].pools.push(peregrine_config::model::Pool {
        first: Ipv4Addr::new(10, 200, 0, 150),
        last: Ipv4Addr::new(10, 200, 0, 199),
        classes: vec![],
    });
    let mut sim = Sim::new(&config);
    let mut offered = |n: u32, tags: VlanTags| {
        let meta = RxMeta {
            vlans: tags,
            ..sim.meta()
        };
        let v = sim.send_with(&meta, &Client::new(n).discover());
        sim.reply(&v).packet().yiaddr().octets()
    };
    let q = |vid| VlanTag::new(0x8100, vid, 0);
    let s = |vid| VlanTag::new(0x88a8, vid, 0);
    let subnet = |a: [u8; 4]| a[..3].to_vec();
    assert_eq!(subnet(offered(71, VlanTags::single(q(100)))), [10, 210, 1]);
    assert_eq!(
        subnet(offered(72, VlanTags::double(s(100), q(7)))),
        [10, 210, 1]
    );
    assert_eq!(
        subnet(offered(73, VlanTags::double(s(200), q(10)))),
        [10, 210, 2]
    );
    assert_eq!(
        subnet(offered(74, VlanTags::double(s(200), q(11)))),
        [10, 210, 3]
    );
    // Untagged, or on a VLAN no scope names: the interface's untagged scope, where VLAN 300 is
    // a class with a pool of its own.
    let untagged = offered(70, VlanTags::NONE);
    assert!(
        untagged[..3] == [10, 200, 0] && untagged[3] >= 150,
        "{untagged:?}"
    );
    let on_300 = offered(75, VlanTags::single(q(300)));
    assert!(on_300[..3] == [10, 200, 0] && on_300[3] < 150, "{on_300:?}");
}

#[test]
fn rebinding_by_broadcast_is_answered_like_a_renewal() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(11);
    let addr = sim.dora(&c);
    sim.advance(3200);
    let mut meta = sim.meta();
    meta.dst_ip = Ipv4Addr::BROADCAST;
    meta.src_ip = addr;
    let v = sim.send_with(&meta, &c.renew(addr));
    let Verdict::Defer { dst, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(dst.ip, addr);
}

#[test]
fn decline_quarantines_the_address_for_the_probation() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(12);
    let addr = sim.dora(&c);
    let v = sim.send(&c.decline(addr, SERVER));
    let Verdict::Record { event } = v else {
        panic!("{v:?}")
    };
    assert_eq!(
        (event.binding.state, event.binding.client),
        (BindingState::Abandoned, None)
    );
    // Nobody is offered it, not even the decliner, while on probation.
    let v = sim.send(&c.message(
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        Some(addr),
        None,
    ));
    assert_ne!(sim.reply(&v).packet().yiaddr(), addr);
    sim.advance(601);
    let events = sim.tick();
    assert!(
        events
            .iter()
            .any(|e| e.address == addr && e.binding.state == BindingState::Free),
        "{events:?}"
    );
}

#[test]
fn release_returns_the_address_with_affinity_to_its_client() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(13);
    let addr = sim.dora(&c);
    let v = sim.send(&c.release(addr, SERVER));
    let Verdict::Record { event } = v else {
        panic!("{v:?}")
    };
    assert_eq!(event.binding.state, BindingState::Released);
    // Another client gets an address freed longer ago; the releaser comes back to its own.
    let d = Client::new(14);
    let other = sim.dora(&d);
    assert_ne!(other, addr);
    assert_eq!(sim.dora(&c), addr);
    // Releasing what one does not hold does nothing.
    assert_eq!(
        sim.send(&d.release(addr, SERVER)),
        Verdict::Drop(DropReason::NoBinding)
    );
}

#[test]
fn expiry_reclaims_without_scanning_and_the_client_returns_to_its_address() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(15);
    let addr = sim.dora(&c);
    sim.advance(3599);
    assert!(sim.tick().is_empty());
    sim.advance(1);
    let events = sim.tick();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].address, events[0].binding.state),
        (addr, BindingState::Expired)
    );
    assert_eq!(sim.dora(&c), addr);
}

#[test]
fn lapsed_offers_return_to_the_pool_silently() {
    let mut sim = Sim::new(&lab_config());
    let v = sim.send(&Client::new(16).discover());
    let addr = sim.reply(&v).packet().yiaddr();
    sim.advance(11);
    assert!(sim.tick().is_empty(), "offers are not journaled");
    assert_eq!(
        sim.engine.binding(addr).unwrap().1.state,
        BindingState::Free
    );
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(17);
    let v = sim.send(&c.inform(Ipv4Addr::new(10, 200, 0, 50)));
    let Verdict::Reply {
        kind: MessageType::Ack,
        dst,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(dst.ip, Ipv4Addr::new(10, 200, 0, 50));
    let ack = sim.reply(&v);
    assert_eq!(
        (ack.packet().yiaddr(), ack.lease_time()),
        (Ipv4Addr::UNSPECIFIED, None)
    );
    assert_eq!(ack.packet().ciaddr(), Ipv4Addr::new(10, 200, 0, 50));
    // Relayed INFORM goes back through the relay.
    let r = Client::new(18).relayed([10, 201, 0, 1], b"port-1");
    let v = sim.send(&r.inform(Ipv4Addr::new(10, 201, 7, 7)));
    let Verdict::Reply { dst, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!((dst.ip, dst.port), (Ipv4Addr::new(10, 201, 0, 1), 67));
    // RFC 2131 §4.3.5: "The server responds to a DHCPINFORM message by sending a DHCPACK
    // message directly to the address given in the 'ciaddr' field": without one, no answer.
    assert_eq!(
        sim.send(&c.inform(Ipv4Addr::UNSPECIFIED)),
        Verdict::Drop(DropReason::InformWithoutCiaddr)
    );
}

#[test]
fn relayed_requests_select_by_giaddr_and_echo_option_82() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(19).relayed([10, 201, 0, 1], b"eth1/1/1:100");
    let v = sim.send(&c.discover());
    let Verdict::Reply { dst, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(
        (dst.ip, dst.port, dst.next_hop),
        (Ipv4Addr::new(10, 201, 0, 1), 67, NextHop::Sender)
    );
    let offer = sim.reply(&v);
    assert!(in_pool(
        offer.packet().yiaddr(),
        [10, 201, 1, 0],
        [10, 201, 1, 255]
    ));
    assert_eq!(offer.packet().giaddr(), Ipv4Addr::new(10, 201, 0, 1));
    let echoed = offer
        .relay_agent_info_raw()
        .unwrap()
        .as_slice()
        .unwrap()
        .to_vec();
    let sent = peregrine_wire::dhcp::DhcpMessage::parse(&c.discover())
        .unwrap()
        .relay_agent_info_raw()
        .unwrap()
        .as_slice()
        .unwrap()
        .to_vec();
    assert_eq!(echoed, sent);
    // Option 82 is the last option before END.
    assert_eq!(offer.options().last().unwrap().code, opt::RELAY_AGENT_INFO);
}

#[test]
fn relay_source_port_link_selection_and_subnet_selection() {
    let mut config = lab_config();
    config.scopes[1].relay_addresses = vec![Ipv4Addr::new(192, 0, 2, 1)];
    let mut sim = Sim::new(&config);
    // An extra relay address outside the subnet selects the scope.
    let c = Client::new(20).relayed([192, 0, 2, 1], b"x");
    assert!(in_pool(
        sim.yiaddr(&c.discover()),
        [10, 201, 1, 0],
        [10, 201, 1, 255]
    ));
    // RFC 8357: with sub-option 19 the reply goes to the relay's source port.
    let mut c = Client::new(21).relayed([10, 201, 0, 1], b"y");
    c.relay_info.push((relay::sub::RELAY_SOURCE_PORT, vec![]));
    let mut meta = sim.meta();
    meta.src_port = 4067;
    let Verdict::Reply { dst, .. } = sim.send_with(&meta, &c.discover()) else {
        panic!()
    };
    assert_eq!(dst.port, 4067);
    // RFC 3527 link selection beats giaddr: a relay in the relayed scope asks for the direct one.
    let mut c = Client::new(22).relayed([10, 201, 0, 1], b"z");
    c.relay_info
        .push((relay::sub::LINK_SELECTION, vec![10, 200, 0, 0]));
    assert!(in_pool(
        sim.yiaddr(&c.discover()),
        [10, 200, 0, 100],
        [10, 200, 0, 199]
    ));
}

#[test]
fn option_82_without_giaddr_from_an_untrusted_port_is_dropped() {
    let mut sim = Sim::new(&lab_config());
    let mut c = Client::new(23);
    c.relay_info = vec![(relay::sub::CIRCUIT_ID, b"spoofed".to_vec())];
    assert_eq!(
        sim.send(&c.discover()),
        Verdict::Drop(DropReason::UntrustedRelayInfo)
    );
    let mut meta = sim.meta();
    meta.trusted = true;
    assert!(matches!(
        sim.send_with(&meta, &c.discover()),
        Verdict::Reply { .. }
    ));
}

#[test]
fn inactive_scopes_answer_nothing_until_activated() {
    let mut config = lab_config();
    config.scopes[1].state = peregrine_config::model::AdminState::Inactive;
    let mut sim = Sim::new(&config);
    let c = Client::new(24).relayed([10, 201, 0, 1], b"p");
    assert_eq!(
        sim.send(&c.discover()),
        Verdict::Drop(DropReason::ScopeInactive)
    );
    assert!(sim.engine.set_scope_active("relayed", true));
    assert!(matches!(sim.send(&c.discover()), Verdict::Reply { .. }));
    assert!(!sim.engine.set_scope_active("nonexistent", true));
}

#[test]
fn reservations_by_mac_and_circuit_id_are_kept_for_their_client() {
    let mut config = lab_config();
    let by_mac = Client::new(25);
    config.scopes[0].reservations.push(reservation(
        ReservationKey::Mac(by_mac.mac),
        [10, 200, 0, 120],
    ));
    // Outside every pool: reserved addresses need not be in a range.
    config.scopes[1].reservations.push(reservation(
        ReservationKey::CircuitId(b"olt-3/port-9".to_vec()),
        [10, 201, 9, 9],
    ));
    let mut sim = Sim::new(&config);
    assert_eq!(sim.dora(&by_mac), Ipv4Addr::new(10, 200, 0, 120));
    let sub = Client::new(26).relayed([10, 201, 0, 1], b"olt-3/port-9");
    assert_eq!(sim.dora(&sub), Ipv4Addr::new(10, 201, 9, 9));
    // A stranger asking for a reserved address is refused it.
    let stranger = Client::new(27);
    let v = sim.send(&stranger.message(
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        Some(Ipv4Addr::new(10, 200, 0, 120)),
        None,
    ));
    assert_ne!(
        sim.reply(&v).packet().yiaddr(),
        Ipv4Addr::new(10, 200, 0, 120)
    );
    // The subscriber's unicast renewal carries no option 82, and still renews.
    let mut renewing = sub.clone();
    renewing.giaddr = Ipv4Addr::UNSPECIFIED;
    renewing.relay_info.clear();
    sim.advance(2000);
    let v = sim.send(&renewing.renew(Ipv4Addr::new(10, 201, 9, 9)));
    assert!(
        matches!(
            v,
            Verdict::Defer {
                kind: MessageType::Ack,
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn classes_select_pools_and_add_options() {
    let mut config = lab_config();
    let mut docsis = class(
        "docsis",
        vec![ClassMatch::VendorClassPrefix(b"docsis".to_vec())],
    );
    docsis
        .options
        .set(opt::DOMAIN_NAME, b"modems.example".to_vec());
    config.classes.push(docsis);
    let s = &mut config.scopes[1];
    s.pools[0].classes = vec!["docsis".into()];
    s.pools.push(peregrine_config::model::Pool {
        first: [10, 201, 2, 0].into(),
        last: [10, 201, 2, 255].into(),
        classes: vec![],
    });
    let mut sim = Sim::new(&config);
    let mut modem = Client::new(28).relayed([10, 201, 0, 1], b"cm");
    modem.vendor_class = Some(b"docsis3.1".to_vec());
    modem.prl.push(opt::DOMAIN_NAME);
    let v = sim.send(&modem.discover());
    let offer = sim.reply(&v);
    assert!(in_pool(
        offer.packet().yiaddr(),
        [10, 201, 1, 0],
        [10, 201, 1, 255]
    ));
    assert_eq!(
        offer.get(opt::DOMAIN_NAME).unwrap().as_slice().unwrap(),
        b"modems.example"
    );
    let mut cpe = Client::new(29).relayed([10, 201, 0, 1], b"cpe");
    cpe.prl.push(opt::DOMAIN_NAME);
    let v = sim.send(&cpe.discover());
    let offer = sim.reply(&v);
    assert!(in_pool(
        offer.packet().yiaddr(),
        [10, 201, 2, 0],
        [10, 201, 2, 255]
    ));
    assert!(offer.get(opt::DOMAIN_NAME).is_none());
}

#[test]
fn match_client_id_off_identifies_by_hardware_address() {
    let mut config = lab_config();
    config.scopes[0].match_client_id = false;
    let mut sim = Sim::new(&config);
    let mut c = Client::new(30);
    c.identifier = Some(vec![1, 2, 3]);
    let addr = sim.dora(&c);
    // A CPE that regenerated its client id is still the same subscriber.
    c.identifier = Some(vec![9, 9, 9]);
    assert_eq!(sim.dora(&c), addr);
}

#[test]
fn an_exhausted_pool_is_a_counted_drop() {
    let mut config = lab_config();
    config.scopes[0].pools[0].last = [10, 200, 0, 102].into();
    let mut sim = Sim::new(&config);
    for n in 0..3 {
        sim.dora(&Client::new(100 + n));
    }
    assert_eq!(
        sim.send(&Client::new(200).discover()),
        Verdict::Drop(DropReason::PoolExhausted)
    );
}

#[test]
fn bad_input_is_dropped_with_a_reason() {
    let mut sim = Sim::new(&lab_config());
    assert!(matches!(
        sim.send(&[0u8; 10]),
        Verdict::Drop(DropReason::Malformed)
    ));
    let mut m = Client::new(31).discover();
    m[0] = 2;
    assert_eq!(sim.send(&m), Verdict::Drop(DropReason::NotRequest));
    let offer_from_client =
        Client::new(31).message(MessageType::Offer, Ipv4Addr::UNSPECIFIED, None, None);
    assert_eq!(
        sim.send(&offer_from_client),
        Verdict::Drop(DropReason::UnexpectedType)
    );
}

/// The migration seed scenario: an operator imports a client's lease from the old server; the
/// client's unicast renewals go to the old server, which is gone, so nobody answers; at T2 it
/// rebinds by broadcast and we give it its old address back.
#[test]
fn an_imported_lease_is_honoured_when_its_client_rebinds() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(32).relayed([10, 201, 0, 1], b"port-7");
    let old = Ipv4Addr::new(10, 201, 1, 77);
    let event = BindingEvent {
        scope: sim.engine.scope_id("relayed").unwrap(),
        address: old,
        binding: peregrine_engine::Binding {
            client: Some(sim.engine.client_key_for(1, &c.mac, None)),
            mac: c.mac,
            state: BindingState::Active,
            expires: T0 + 1800,
            cltt: T0 - 1800,
            granted: 3600,
            partner_sent: 0,
            partner_acked: 0,
            classes: 0,
            version: 0,
            info: peregrine_engine::ClientInfo::EMPTY,
        },
    };
    sim.engine.restore(&event).unwrap();
    // T2 passes without an answer from the old server; the client broadcasts through its relay.
    sim.advance(1400);
    let v = sim.send(&c.renew(old));
    let Verdict::Defer {
        kind: MessageType::Ack,
        event,
        dst,
        ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(event.address, old);
    assert_eq!(dst.ip, Ipv4Addr::new(10, 201, 0, 1));
    // And nobody else is given that address meanwhile.
    let other = Client::new(33).relayed([10, 201, 0, 1], b"port-8");
    let v = sim.send(&other.message(
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        Some(old),
        None,
    ));
    assert_ne!(sim.reply(&v).packet().yiaddr(), old);
    // A second import of the same address for another client is a reported conflict.
    let mut clash = event;
    clash.binding.client = Some(sim.engine.client_key_for(1, &other.mac, None));
    assert_eq!(
        sim.engine.restore(&clash),
        Err(peregrine_engine::RestoreError::Conflict(old))
    );
}

/// Imports keep one lease per client and scope (several old servers' files merged): of two
/// leases of one client, the later by last transaction stays; the older is refused, or given up
/// (free, and the change to journal returned) when the newer arrives second.
#[test]
fn an_imported_lease_gives_way_to_the_same_clients_newer_one() {
    let sim = Sim::new(&lab_config());
    let c = Client::new(34);
    let lease = |address: Ipv4Addr, cltt: u64| BindingEvent {
        scope: sim.engine.scope_id("relayed").unwrap(),
        address,
        binding: peregrine_engine::Binding {
            client: Some(sim.engine.client_key_for(1, &c.mac, None)),
            mac: c.mac,
            state: BindingState::Active,
            expires: cltt + 3600,
            cltt,
            granted: 3600,
            partner_sent: 0,
            partner_acked: 0,
            classes: 0,
            version: 0,
            info: peregrine_engine::ClientInfo::EMPTY,
        },
    };
    let (a, b, c2) = (
        Ipv4Addr::new(10, 201, 1, 10),
        Ipv4Addr::new(10, 201, 1, 20),
        Ipv4Addr::new(10, 201, 1, 30),
    );
    assert_eq!(sim.engine.restore(&lease(a, T0)).unwrap().displaced, None);
    // Newer: a is given up.
    let imported = sim.engine.restore(&lease(b, T0 + 60)).unwrap();
    let displaced = imported.displaced.expect("the older lease given up");
    assert_eq!(displaced.address, a);
    assert_eq!(displaced.binding.state, BindingState::Free);
    assert_eq!(sim.engine.binding(a).unwrap().1.state, BindingState::Free);
    // Older than what the client holds: refused, nothing changed.
    assert_eq!(
        sim.engine.restore(&lease(c2, T0 + 30)),
        Err(peregrine_engine::RestoreError::ClientHoldsNewer(b))
    );
    assert_eq!(sim.engine.binding(c2).unwrap().1.state, BindingState::Free);
    assert_eq!(sim.engine.binding(b).unwrap().1.state, BindingState::Active);
}

/// The shipped example configuration builds an engine that serves its relayed scopes, with the
/// scope's server identifier and its inactive scope silent.
#[test]
fn the_example_configuration_serves() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let config = peregrine_config::load(&path).unwrap();
    let mut sim = Sim {
        engine: engine(&config),
        now: T0,
        tx: vec![0u8; 1500],
    };
    let c = Client::new(40).relayed([192, 0, 2, 1], b"some-port");
    let v = sim.send(&c.discover());
    let offer = sim.reply(&v);
    let a = offer.packet().yiaddr();
    assert!(in_pool(a, [198, 51, 100, 100], [198, 51, 100, 199]), "{a}");
    assert_eq!(offer.server_id(), Some(Ipv4Addr::new(192, 0, 2, 10)));
    let migrating = Client::new(41).relayed([10, 210, 0, 1], b"p");
    assert_eq!(
        sim.send(&migrating.discover()),
        Verdict::Drop(DropReason::ScopeInactive)
    );
}

/// A unicast renewal carries no option 82. With stash-agent-options (the default) the options
/// of the circuit-id class and the reservation that bound the lease still come back; without
/// it they do not.
#[test]
fn stash_agent_options_keeps_class_and_reservation_options_on_unicast_renewal() {
    for stash in [true, false] {
        let mut config = lab_config();
        config.server.stash_agent_options = stash;
        let mut ftth = class("ftth", vec![ClassMatch::CircuitIdPrefix(b"olt-".to_vec())]);
        ftth.options.set(opt::DOMAIN_NAME, b"ftth.example".to_vec());
        config.classes.push(ftth);
        let mut res = reservation(
            ReservationKey::CircuitId(b"olt-3/port-9".to_vec()),
            [10, 201, 9, 9],
        );
        res.hostname = Some("sub-3-9".into());
        config.scopes[1].reservations.push(res);
        let mut sim = Sim::new(&config);
        let mut sub = Client::new(50).relayed([10, 201, 0, 1], b"olt-3/port-9");
        sub.prl.extend([opt::DOMAIN_NAME, opt::HOSTNAME]);
        let addr = sim.dora(&sub);
        assert_eq!(addr, Ipv4Addr::new(10, 201, 9, 9));

        let mut direct = sub.clone();
        direct.giaddr = Ipv4Addr::UNSPECIFIED;
        direct.relay_info.clear();
        sim.advance(2000);
        let v = sim.send(&direct.renew(addr));
        assert!(
            matches!(
                v,
                Verdict::Defer {
                    kind: MessageType::Ack,
                    ..
                }
            ),
            "{v:?}"
        );
        let ack = sim.reply(&v);
        let domain = ack
            .get(opt::DOMAIN_NAME)
            .map(|v| v.as_slice().unwrap().to_vec());
        let host = ack
            .get(opt::HOSTNAME)
            .map(|v| v.as_slice().unwrap().to_vec());
        if stash {
            assert_eq!(domain.as_deref(), Some(&b"ftth.example"[..]));
            assert_eq!(host.as_deref(), Some(&b"sub-3-9"[..]));
        } else {
            assert_eq!((domain, host), (None, None));
        }
    }
}

/// A lease keeps what its client said of itself (host name, vendor class) and the relay's
/// option 82 of the request that bound it; a unicast renewal, which carries no option 82 and
/// here no name, keeps them; a new name is a change (journaled, not answered from the lease
/// cache); another client given the address later inherits none of it.
#[test]
fn a_lease_keeps_the_clients_names_and_the_relays_information() {
    let mut sim = Sim::new(&lab_config());
    let mut sub = Client::new(51).relayed([10, 201, 0, 1], b"olt-1/1/1:7");
    sub.hostname = Some(b"cpe-51".to_vec());
    sub.vendor_class = Some(b"acme-ont".to_vec());
    let addr = sim.dora(&sub);
    let info = sim.engine.binding(addr).unwrap().1.info;
    assert_eq!(info.host_name(), Some(&b"cpe-51"[..]));
    assert_eq!(info.vendor_class(), Some(&b"acme-ont"[..]));
    let rai = info.relay_agent_info().unwrap();
    assert!(rai.windows(11).any(|w| w == b"olt-1/1/1:7"), "{info:?}");

    let mut direct = Client::new(51);
    direct.vendor_class = sub.vendor_class.clone();
    sim.advance(2000);
    let v = sim.send(&direct.renew(addr));
    assert_eq!(journaled(&v).binding.info, info);

    // Ten seconds later a renewal would come from the lease cache, but the name changed.
    direct.hostname = Some(b"cpe-51b".to_vec());
    sim.advance(10);
    let v = sim.send(&direct.renew(addr));
    let renamed = journaled(&v).binding.info;
    assert_eq!(renamed.host_name(), Some(&b"cpe-51b"[..]));
    assert_eq!(renamed.relay_agent_info(), Some(rai));

    sim.send(&direct.release(addr, SERVER));
    let other = Client::new(52).relayed([10, 201, 0, 1], b"olt-1/1/2:1");
    let v = sim.send(&other.select(addr, SERVER));
    assert_eq!(
        sim.reply(&v).message_type(),
        Some(MessageType::Ack),
        "{v:?}"
    );
    let info = sim.engine.binding(addr).unwrap().1.info;
    assert_eq!(info.host_name(), None);
    assert!(
        info.relay_agent_info()
            .unwrap()
            .windows(11)
            .any(|w| w == b"olt-1/1/2:1")
    );
    assert_eq!(sim.engine.client_options_left_out(), 0);

    // A vendor class too long for what is left of the room is left out whole, and counted.
    let mut modem = Client::new(53).relayed([10, 201, 0, 1], b"cmts-1/0/1");
    modem.hostname = Some(b"modem-53".to_vec());
    modem.vendor_class = Some([b'd'; 120].to_vec());
    let addr = sim.dora(&modem);
    let info = sim.engine.binding(addr).unwrap().1.info;
    assert_eq!(info.host_name(), Some(&b"modem-53"[..]));
    assert_eq!(info.vendor_class(), None);
    assert_eq!(sim.engine.client_options_left_out(), 1);
}

/// The journal change a verdict carries.
fn journaled(v: &Verdict) -> BindingEvent {
    match v {
        Verdict::Defer { event, .. } | Verdict::Record { event } => *event,
        other => panic!("no binding change in {other:?}"),
    }
}

/// Workers journal through separate queues, so the changes of one address can be written out
/// of order: A's release may land after B's lease of the same address. Replay in any order
/// must end where the server was (B holds it), never with the address free under B.
#[test]
fn replay_keeps_the_newest_change_of_each_address_whatever_the_order() {
    let mut config = lab_config();
    config.scopes[0].pools[0].last = [10, 200, 0, 100].into();
    let mut sim = Sim::new(&config);
    let (a, b) = (Client::new(40), Client::new(41));
    let v = sim.send(&a.discover());
    let addr = sim.reply(&v).packet().yiaddr();
    let leased_a = journaled(&sim.send(&a.select(addr, SERVER)));
    let released = journaled(&sim.send(&a.release(addr, SERVER)));
    let v = sim.send(&b.discover());
    assert_eq!(
        sim.reply(&v).packet().yiaddr(),
        addr,
        "one address in the pool"
    );
    let leased_b = journaled(&sim.send(&b.select(addr, SERVER)));
    assert!(leased_a.binding.version < released.binding.version);
    assert!(released.binding.version < leased_b.binding.version);

    let orders = [
        [leased_a, released, leased_b],
        [leased_a, leased_b, released],
        [leased_b, leased_a, released],
        [leased_b, released, leased_a],
        [released, leased_a, leased_b],
        [released, leased_b, leased_a],
    ];
    for order in orders {
        let mut after = Sim::new(&config);
        for e in &order {
            after.engine.replay(e).unwrap();
        }
        let (_, now) = after.engine.binding(addr).unwrap();
        assert_eq!(now, leased_b.binding, "replayed in order {order:?}");
        // And the address is not handed to a third client.
        let c = Client::new(42);
        let v = after.send(&c.discover());
        assert!(!matches!(v, Verdict::Reply { .. }), "{v:?}");
        // New changes continue above the replayed version (past lease caching's threshold).
        after.advance(2000);
        let renewed = journaled(&after.send(&b.renew(addr)));
        assert!(renewed.binding.version > leased_b.binding.version);
    }
}

#[test]
fn a_client_identifier_of_01_and_the_mac_is_the_same_client_as_the_bare_mac() {
    let mut sim = Sim::new(&lab_config());
    let mut with_id = Client::new(61);
    with_id.identifier = Some([&[1][..], &with_id.mac].concat());
    let addr = sim.dora(&with_id);
    // The same host, no longer sending option 61 (another DHCP client on it, say).
    let mut bare = with_id.clone();
    bare.identifier = None;
    bare.xid += 1;
    assert_eq!(sim.yiaddr(&bare.discover()), addr);
    // The same MAC with another identifier is another client.
    let mut other = with_id.clone();
    other.identifier = Some(b"router-61".to_vec());
    other.xid += 2;
    assert_ne!(sim.yiaddr(&other.discover()), addr);
}

#[test]
fn a_ping_check_probes_unheld_addresses_and_one_that_answers_is_not_offered_again() {
    let mut config = lab_config();
    for s in &mut config.scopes {
        s.ping_check_ms = 500;
    }
    let mut sim = Sim::new(&config);
    let c = Client::new(70);
    let v = sim.send(&c.discover());
    let Verdict::Probe {
        address, wait_ms, ..
    } = v
    else {
        panic!("a fresh address is probed first: {v:?}")
    };
    assert_eq!(wait_ms, 500);
    assert_eq!(sim.reply(&v).packet().yiaddr(), address);
    // Something answered: the address leaves service, and the DISCOVER again gets another.
    let event = sim.engine.address_in_use(sim.now, address).unwrap();
    assert_eq!(event.address, address);
    assert_eq!(event.binding.state, BindingState::Abandoned);
    assert_eq!(event.binding.client, None);
    let v = sim.send(&c.discover());
    let Verdict::Probe { address: next, .. } = v else {
        panic!("{v:?}")
    };
    assert_ne!(next, address);
    // The client takes the second: no probe for its own address afterwards, and none of a
    // lease it holds is taken away on a probe's word.
    let (_, server) = (next, sim.reply(&v).server_id().unwrap());
    assert!(matches!(
        sim.send(&c.select(next, server)),
        Verdict::Defer { .. }
    ));
    assert!(matches!(sim.send(&c.discover()), Verdict::Reply { .. }));
    assert_eq!(sim.engine.address_in_use(sim.now, next), None);
    // Out of every pool: nothing to do.
    assert_eq!(
        sim.engine
            .address_in_use(sim.now, Ipv4Addr::new(192, 0, 2, 1)),
        None
    );
    // Without a ping check, the same DISCOVER is offered at once.
    let mut plain = Sim::new(&lab_config());
    assert!(matches!(plain.send(&c.discover()), Verdict::Reply { .. }));
}

/// RFC 6842 §3: "If the 'client identifier' option is present in a message received from a
/// client, the server MUST return the 'client identifier' option, unaltered, in its response
/// message." And RFC 2131 table 3: `ciaddr` is 0 in a DHCPOFFER and a DHCPNAK, and in a DHCPACK
/// the request's.
#[test]
fn the_client_identifier_comes_back_and_an_offer_carries_no_ciaddr() {
    let mut sim = Sim::new(&lab_config());
    let mut c = Client::new(61);
    c.identifier = Some(b"\x00subscriber-61".to_vec());
    // A DISCOVER with a ciaddr (of the client's subnet: one of no subnet is issue 18's item 3).
    let stray = Ipv4Addr::new(10, 200, 0, 240);
    let v = sim.send(&c.message(MessageType::Discover, stray, None, None));
    let offer = sim.reply(&v);
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert_eq!(offer.packet().ciaddr(), Ipv4Addr::UNSPECIFIED);
    let id = |m: &peregrine_wire::dhcp::DhcpMessage<'_>| {
        m.client_id().and_then(|v| v.as_slice().map(<[u8]>::to_vec))
    };
    assert_eq!(id(&offer), c.identifier);
    let addr = offer.packet().yiaddr();
    let v = sim.send(&c.select(addr, SERVER));
    let ack = sim.reply(&v);
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(id(&ack), c.identifier);
    // A renewal's ACK carries its ciaddr.
    sim.advance(2000);
    let v = sim.send(&c.renew(addr));
    let ack = sim.reply(&v);
    assert_eq!(ack.packet().ciaddr(), addr);
    assert_eq!(id(&ack), c.identifier);
    // A NAK: no ciaddr, the identifier all the same.
    let wrong = Ipv4Addr::new(10, 200, 0, 250);
    let v = sim.send(&c.message(
        MessageType::Request,
        Ipv4Addr::UNSPECIFIED,
        Some(wrong),
        Some(SERVER),
    ));
    let nak = sim.reply(&v);
    assert_eq!(nak.message_type(), Some(MessageType::Nak));
    assert_eq!(nak.packet().ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(id(&nak), c.identifier);
}

/// A client that moves (the same client identifier, a new hardware address) and renews within
/// the lease-cache threshold: the binding takes the new hardware address, durably, instead of
/// the cached answer leaving the old one (issue 18, item 11).
#[test]
fn a_client_on_a_new_nic_updates_its_binding_even_within_the_cache() {
    let mut sim = Sim::new(&lab_config());
    let mut c = Client::new(62);
    c.identifier = Some(b"\x00cpe-62".to_vec());
    let addr = sim.dora(&c);
    let mut moved = c.clone();
    moved.mac = [2, 0xcc, 0, 0, 0x99, 62];
    sim.advance(60);
    let v = sim.send(&moved.renew(addr));
    let Verdict::Defer { event, .. } = v else {
        panic!("answered from the cache: {v:?}")
    };
    assert_eq!(event.binding.mac, moved.mac);
    assert_eq!(sim.engine.binding(addr).unwrap().1.mac, moved.mac);
}

/// A configured option 12 (here the scope's) is sent to a client that asks for it, where no
/// reservation names the client (issue 18, item 6: it passed `check-config` and was never sent).
#[test]
fn a_configured_host_name_option_is_sent() {
    let mut config = lab_config();
    config.scopes[0]
        .options
        .set(opt::HOSTNAME, b"lab-client".to_vec());
    let mut sim = Sim::new(&config);
    let mut c = Client::new(63);
    c.prl.push(opt::HOSTNAME);
    let v = sim.send(&c.discover());
    let offer = sim.reply(&v);
    let name = offer
        .get(opt::HOSTNAME)
        .and_then(|v| v.as_slice().map(<[u8]>::to_vec));
    assert_eq!(name.as_deref(), Some(&b"lab-client"[..]));
}

/// An unrelayed DISCOVER whose ciaddr fits no subnet (issue 18, item 3; here 255.255.255.255)
/// is answered from the scope of the interface it arrived on, with ciaddr 0 in the OFFER.
#[test]
fn an_unrelayed_ciaddr_of_no_subnet_is_answered_from_the_arrival_link() {
    let mut sim = Sim::new(&lab_config());
    let c = Client::new(64);
    let v = sim.send(&c.message(MessageType::Discover, Ipv4Addr::BROADCAST, None, None));
    let offer = sim.reply(&v);
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert_eq!(offer.packet().ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(in_pool(
        offer.packet().yiaddr(),
        [10, 200, 0, 100],
        [10, 200, 0, 199]
    ));
}

/// RFC 5107 §4: with the server identifier override sub-option, the server "MUST use the value
/// ... as the value of the Server Identifier option" in its replies, and takes a REQUEST,
/// DECLINE or RELEASE naming it as naming itself (issue 18, item 7).
#[test]
fn the_relays_server_identifier_override_is_ours_to_use() {
    let mut sim = Sim::new(&lab_config());
    let relay = Ipv4Addr::new(10, 201, 0, 1);
    let mut c = Client::new(65).relayed(relay.octets(), b"port-65");
    c.relay_info
        .push((relay::sub::SERVER_ID_OVERRIDE, relay.octets().to_vec()));
    let v = sim.send(&c.discover());
    let offer = sim.reply(&v);
    assert_eq!(offer.server_id(), Some(relay));
    let addr = offer.packet().yiaddr();
    let v = sim.send(&c.select(addr, relay));
    let ack = sim.reply(&v);
    assert_eq!(ack.message_type(), Some(MessageType::Ack), "{v:?}");
    assert_eq!(ack.server_id(), Some(relay));
    // The reply still leaves from our own address.
    let Verdict::Defer { dst, .. } = v else {
        panic!("{v:?}")
    };
    assert_ne!(dst.src_ip, relay);
    // A RELEASE naming the override, relayed with it, is ours.
    let v = sim.send(&c.release(addr, relay));
    assert!(matches!(v, Verdict::Record { .. }), "{v:?}");
}

/// BOOTP's next server and boot file (issue 18, item 9): a scope's `tftp-server` (an address)
/// goes in `siaddr` and its `bootfile-name` in `file`, in OFFER and ACK, asked for or not (a
/// DOCSIS modem or a PXE client reads them there); a class's overrides the scope's.
#[test]
fn next_server_and_boot_file_go_in_the_bootp_fields() {
    let mut config = lab_config();
    config.scopes[1]
        .options
        .set(opt::TFTP_SERVER, b"10.201.0.20".to_vec());
    config.scopes[1]
        .options
        .set(opt::BOOTFILE_NAME, b"cpe.cfg".to_vec());
    let mut modems = class(
        "modems",
        vec![ClassMatch::VendorClassPrefix(b"docsis".to_vec())],
    );
    modems
        .options
        .set(opt::BOOTFILE_NAME, b"cm-gold.cfg".to_vec());
    config.classes.push(modems);
    let mut sim = Sim::new(&config);
    let cpe = Client::new(66).relayed([10, 201, 0, 1], b"port-66");
    let v = sim.send(&cpe.discover());
    let offer = sim.reply(&v);
    assert_eq!(offer.packet().siaddr(), Ipv4Addr::new(10, 201, 0, 20));
    assert!(offer.packet().file().starts_with(b"cpe.cfg\0"));
    let mut modem = Client::new(67).relayed([10, 201, 0, 1], b"port-67");
    modem.vendor_class = Some(b"docsis3.1".to_vec());
    let addr = sim.dora(&modem);
    let v = sim.send(&modem.select(addr, SERVER));
    let ack = sim.reply(&v);
    assert!(ack.packet().file().starts_with(b"cm-gold.cfg\0"), "{v:?}");
    assert_eq!(ack.packet().siaddr(), Ipv4Addr::new(10, 201, 0, 20));
}

#[test]
fn an_operators_revoke_releases_the_lease_and_keeps_affinity() {
    let mut config = lab_config();
    let reserved = Client::new(40);
    config.scopes[0].reservations.push(reservation(
        ReservationKey::Mac(reserved.mac),
        [10, 200, 0, 130],
    ));
    let mut sim = Sim::new(&config);
    let c = Client::new(41);
    let addr = sim.dora(&c);
    let event = sim.engine.revoke(sim.now, addr).unwrap();
    assert_eq!(event.address, addr);
    assert_eq!(event.binding.state, BindingState::Released);
    assert_eq!(
        sim.engine.binding(addr).unwrap().1.state,
        BindingState::Released
    );
    // Nothing left to revoke; a free address has no lease; one in no pool is none of ours.
    assert!(sim.engine.revoke(sim.now, addr).is_none());
    assert!(
        sim.engine
            .revoke(sim.now, Ipv4Addr::new(10, 200, 0, 150))
            .is_none()
    );
    assert!(
        sim.engine
            .revoke(sim.now, Ipv4Addr::new(192, 0, 2, 1))
            .is_none()
    );
    // Its client comes back to it.
    assert_eq!(sim.dora(&c), addr);
    // A reserved address goes back to its reservation.
    let r = sim.dora(&reserved);
    assert_eq!(r, Ipv4Addr::new(10, 200, 0, 130));
    sim.engine.revoke(sim.now, r).unwrap();
    assert_eq!(
        sim.engine.binding(r).unwrap().1.state,
        BindingState::Reserved
    );
}
