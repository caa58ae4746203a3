//! Runs the benchmarked parse or emit path N times, for instruction counting under callgrind:
//! `scripts/wire-instructions.sh` runs it with N and with 0 and divides the difference by N.

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/samples.rs"]
mod samples;

use std::hint::black_box;

use peregrine_wire::dhcp::DhcpMessage;
use peregrine_wire::frame::{Demuxed, demux};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut scratch = [0u8; 1024];
    let mut tx = [0u8; 2048];
    let Ok(Demuxed::Udp { payload, l2, .. }) = demux(samples::RELAYED_DISCOVER) else {
        unreachable!()
    };
    let request = DhcpMessage::parse(payload).expect("golden frame parses");
    match what.as_str() {
        "parse" => {
            for _ in 0..n {
                let Ok(Demuxed::Udp { payload, .. }) = demux(black_box(samples::RELAYED_DISCOVER))
                else {
                    unreachable!()
                };
                let msg = DhcpMessage::parse(payload).expect("parses");
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
            }
        }
        "emit" => {
            for _ in 0..n {
                black_box(
                    samples::write_offer(&mut tx, black_box(&request), l2.src, l2.vlans)
                        .expect("fits"),
                );
            }
        }
        _ => {
            eprintln!("usage: wire_instructions parse|emit N");
            std::process::exit(2);
        }
    }
}
