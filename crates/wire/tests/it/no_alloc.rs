//! Parse and emit allocate nothing: a counting global allocator (per thread, so the other tests
//! running in parallel do not disturb the count) watches a DISCOVER/OFFER pair.

use peregrine_testkit::{CountingAllocator, allocations_during};

use peregrine_wire::dhcp::DhcpMessage;
use peregrine_wire::frame::{Demuxed, demux};

use crate::samples::{RELAYED_DISCOVER, write_offer};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations() {
    // Guards the test below: a counter that never counts would make it pass vacuously.
    let n = allocations_during(|| {
        let v = std::hint::black_box(vec![1u8; 64]);
        drop(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn discover_parse_and_offer_emit_allocate_nothing() {
    let mut tx = [0u8; 2048];
    let mut scratch = [0u8; 1024];
    let n = allocations_during(|| {
        for _ in 0..100 {
            let Demuxed::Udp { l2, payload, .. } = demux(RELAYED_DISCOVER).unwrap() else {
                panic!("not UDP")
            };
            let msg = DhcpMessage::parse(payload).unwrap();
            let rai = msg.relay_agent_info(&mut scratch).unwrap().unwrap();
            std::hint::black_box((
                rai.circuit_id(),
                rai.remote_id(),
                msg.client_id(),
                msg.message_type(),
            ));
            let range = write_offer(&mut tx, &msg, l2.src, l2.vlans).unwrap();
            std::hint::black_box(&tx[range]);
        }
    });
    assert_eq!(n, 0, "parse + emit allocated {n} times in 100 rounds");
}
