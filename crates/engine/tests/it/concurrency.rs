//! Several threads on one engine: retransmissions of one client on two queues never give it
//! two addresses, and no address goes to two clients.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Barrier;

use peregrine_engine::{BindingState, Verdict};
use peregrine_wire::dhcp::{DhcpMessage, MessageType};

use crate::support::*;

#[test]
fn threads_hammering_one_engine_keep_every_invariant() {
    const THREADS: u32 = 4;
    const ROUNDS: u32 = 300;
    let mut config = lab_config();
    config.scopes[1].pools[0].last = [10, 201, 1, 200].into(); // 201 addresses for ~1 000 clients
    let engine = engine(&config);
    let shared = Client::new(9_999).relayed([10, 201, 0, 1], b"shared");
    let barrier = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (engine, shared, barrier) = (&engine, &shared, &barrier);
            s.spawn(move || {
                let meta = meta(engine);
                let mut tx = vec![0u8; 1500];
                barrier.wait();
                for i in 0..ROUNDS {
                    let now = T0 + u64::from(i);
                    // The same client's DISCOVER and REQUEST, on every thread at once.
                    if let Verdict::Reply { len, .. } =
                        engine.handle(now, &meta, &shared.discover(), &mut tx)
                    {
                        let a = DhcpMessage::parse(&tx[..len]).unwrap().packet().yiaddr();
                        engine.handle(now, &meta, &shared.select(a, SERVER), &mut tx);
                    }
                    // Clients of this thread's own, churning: DORA then release.
                    let c = Client::new(t * 10_000 + i % 250).relayed([10, 201, 0, 1], b"c");
                    if let Verdict::Reply {
                        len,
                        kind: MessageType::Offer,
                        ..
                    } = engine.handle(now, &meta, &c.discover(), &mut tx)
                    {
                        let a = DhcpMessage::parse(&tx[..len]).unwrap().packet().yiaddr();
                        engine.handle(now, &meta, &c.select(a, SERVER), &mut tx);
                        if i % 3 == 0 {
                            engine.handle(now, &meta, &c.release(a, SERVER), &mut tx);
                        }
                    }
                }
            });
        }
    });
    // Every client holds at most one address (offered or active).
    let mut per_client: HashMap<peregrine_engine::ClientKey, Vec<Ipv4Addr>> = HashMap::new();
    for last in 0..=200u8 {
        let a = Ipv4Addr::new(10, 201, 1, last);
        let (_, b) = engine.binding(a).unwrap();
        if matches!(b.state, BindingState::Active | BindingState::Offered) {
            per_client.entry(b.client.unwrap()).or_default().push(a);
        }
    }
    for (client, addrs) in &per_client {
        assert_eq!(addrs.len(), 1, "{client:?} holds {addrs:?}");
    }
    let shared_key = engine.client_key_for(1, &shared.mac, None);
    assert!(
        per_client.contains_key(&shared_key),
        "the shared client got its lease"
    );
}
