//! Micro-benchmarks of the wire hot path: `cargo bench -p peregrine-wire`.
//!
//! `parse_relayed_discover`: demultiplex a relayed DISCOVER frame (IPv4 + UDP checksums), index
//! its options and read option 82. `emit_offer_frame`: write the OFFER (options in request list
//! order, option 82 echoed) and its Ethernet/IPv4/UDP headers with checksums. divan's
//! `AllocProfiler` prints allocations per iteration beside the time: both must show none.

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/samples.rs"]
mod samples;

use divan::{AllocProfiler, Bencher, black_box};
use peregrine_wire::dhcp::DhcpMessage;
use peregrine_wire::frame::{Demuxed, demux};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

#[divan::bench]
fn parse_relayed_discover(b: Bencher<'_, '_>) {
    let mut scratch = [0u8; 1024];
    b.bench_local(|| {
        let Ok(Demuxed::Udp { payload, .. }) = demux(black_box(samples::RELAYED_DISCOVER)) else {
            unreachable!()
        };
        let msg = DhcpMessage::parse(payload).expect("golden frame parses");
        let rai = msg
            .relay_agent_info(&mut scratch)
            .expect("well formed")
            .expect("present");
        black_box((
            msg.message_type(),
            msg.client_id().map(|v| v.len()),
            rai.circuit_id(),
            rai.remote_id(),
        ));
    });
}

#[divan::bench]
fn emit_offer_frame(b: Bencher<'_, '_>) {
    let Ok(Demuxed::Udp { payload, l2, .. }) = demux(samples::RELAYED_DISCOVER) else {
        unreachable!()
    };
    let request = DhcpMessage::parse(payload).expect("golden frame parses");
    let mut tx = [0u8; 2048];
    b.bench_local(|| {
        let range =
            samples::write_offer(&mut tx, black_box(&request), l2.src, l2.vlans).expect("fits");
        black_box(range);
    });
}
