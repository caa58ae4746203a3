//! Steady-state DORA, renewal and release allocate nothing: a per-thread counting allocator
//! watches the engine after warm-up.

use peregrine_testkit::{CountingAllocator, allocations_during};
use std::net::Ipv4Addr;

use peregrine_engine::Verdict;
use peregrine_wire::dhcp::DhcpMessage;

use crate::support::*;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations() {
    assert_eq!(
        allocations_during(|| drop(std::hint::black_box(vec![0u8; 32]))),
        1
    );
}

#[test]
fn steady_state_dora_renew_and_release_allocate_nothing() {
    let engine = engine(&lab_config());
    let meta = meta(&engine);
    let clients: Vec<Client> = (0..200)
        .map(|i| Client::new(i).relayed([10, 201, 0, 1], b"olt-1/1"))
        .collect();
    let discovers: Vec<Vec<u8>> = clients.iter().map(Client::discover).collect();
    let mut tx = vec![0u8; 1500];
    // Warm-up: one DORA each, so that the addresses and requests below are known.
    let mut requests = Vec::new();
    for (c, d) in clients.iter().zip(&discovers) {
        let Verdict::Reply { len, .. } = engine.handle(T0, &meta, d, &mut tx) else {
            panic!()
        };
        let a = DhcpMessage::parse(&tx[..len]).unwrap().packet().yiaddr();
        requests.push((c.select(a, SERVER), c.renew(a), c.release(a, SERVER)));
    }
    let mut now = T0;
    let n = allocations_during(|| {
        for round in 0..5 {
            now += 2000; // past T1: renewals are real extensions, not cache hits
            for (d, (select, renew, release)) in discovers.iter().zip(&requests) {
                assert!(matches!(
                    engine.handle(now, &meta, d, &mut tx),
                    Verdict::Reply { .. }
                ));
                assert!(matches!(
                    engine.handle(now, &meta, select, &mut tx),
                    Verdict::Defer { .. }
                ));
                assert!(matches!(
                    engine.handle(now + 1, &meta, renew, &mut tx),
                    Verdict::Reply { .. } | Verdict::Defer { .. }
                ));
                if round % 2 == 1 {
                    assert!(matches!(
                        engine.handle(now + 2, &meta, release, &mut tx),
                        Verdict::Record { .. }
                    ));
                }
            }
            engine.tick(now, usize::MAX, |_| {});
        }
    });
    assert_eq!(n, 0, "{n} allocations in steady state");
    let _ = Ipv4Addr::UNSPECIFIED;
}

#[test]
fn leasequeries_allocate_nothing() {
    use crate::leasequery::{RELAY, from_relay, query, sim};
    let mut sim = sim();
    let clients: Vec<Client> = (0..50)
        .map(|i| Client::new(i).relayed(RELAY, b"olt-1/1"))
        .collect();
    let queries: Vec<[Vec<u8>; 3]> = clients
        .iter()
        .map(|c| {
            let a = sim.dora(c);
            [
                query(RELAY, Some(a), None, None, &[82]),
                query(RELAY, None, Some(c.mac), None, &[]),
                query(RELAY, Some(Ipv4Addr::new(10, 201, 1, 250)), None, None, &[]),
            ]
        })
        .collect();
    let meta = from_relay(&sim);
    let mut tx = vec![0u8; 1500];
    let n = allocations_during(|| {
        for q in queries.iter().flatten() {
            assert!(matches!(
                sim.engine.handle(T0 + 1, &meta, q, &mut tx),
                Verdict::Reply { .. }
            ));
        }
    });
    assert_eq!(n, 0, "{n} allocations answering leasequeries");
}
