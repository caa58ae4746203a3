//! Relayed DORAs through one worker over the in-memory port, for instruction counts of the
//! whole per-frame path (demux, admission, engine, reply headers, TX) under callgrind:
//!
//! ```sh
//! cargo build --release -p peregrine-dataplane --example worker_instructions
//! valgrind --tool=callgrind '--toggle-collect=peregrine_dataplane::worker::Worker<R,T,S>::poll' \
//!     target/release/examples/worker_instructions [clients] [queued]
//! ```
//!
//! Name `poll` exactly: a pattern that also matches its closure toggles counting off inside
//! it. The frames are built before they are injected and only `poll` is counted, so the total
//! (over 2 × `clients` messages) is the worker's, plus what the in-memory port costs (a copy
//! and an allocation per frame each way, about 8 % of it; a real backend allocates nothing).
//! `queued` frames are injected before each round of polls (default 256, as a TPACKET_V3
//! block hands over a burst of frames at once: the worker's bursts come full); `1` polls each
//! frame alone. Under callgrind's slowdown full bursts last long enough that the worker
//! counts as behind (`BEHIND_FOR`) for part of a run, and storm control looks at those frames.

// A measuring program: any failure should stop the run loudly.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use peregrine_dataplane::{Interface, NoSink, Worker, WorkerConfig};
use peregrine_engine::{Engine, EngineOptions};
use peregrine_io::mem;
use peregrine_stats::WorkerStats;
use peregrine_testkit::config as fixture;
use peregrine_testkit::frames::{ClientMessage, udp_frame};
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::ethernet::VlanTags;
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const NOW: u64 = 1_800_000_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let clients: u32 = args.next().map_or(10_000, |a| a.parse().unwrap());
    let queued: usize = args.next().map_or(256, |a| a.parse().unwrap());
    let server = fixture::server(true);
    let first = Ipv4Addr::new(10, 201, 1, 0).to_bits();
    let scope = fixture::scope(
        "relayed",
        fixture::net([10, 201, 0, 0], 16),
        Ipv4Addr::from_bits(first),
        Ipv4Addr::from_bits(first + clients + 16),
        &server,
    );
    let engine = Arc::new(
        Engine::new(
            &fixture::config(server, vec![scope]),
            EngineOptions::default(),
        )
        .unwrap(),
    );
    let (peer, rx, tx) = mem::port(32);
    let iface = Interface {
        ifindex: 7,
        mac: SERVER_MAC,
        addr: SERVER,
        engine_id: engine.interface("eth0"),
        trusted: false,
    };
    let mut worker = Worker::new(
        engine,
        (rx, tx),
        vec![iface],
        Arc::new(WorkerStats::default()),
        WorkerConfig::default(),
        None::<NoSink>,
    );
    let mac = |i: u32| {
        let b = i.to_be_bytes();
        [2, 0xcc, b[0], b[1], b[2], b[3]]
    };
    let discovers: Vec<Vec<u8>> = (0..clients)
        .map(|i| relayed(&ClientMessage::new(MessageType::Discover, mac(i), i)))
        .collect();
    let offers = serve(&peer, &mut worker, &discovers, queued);
    let requests: Vec<Vec<u8>> = offers
        .iter()
        .map(|&(xid, yiaddr)| {
            let mut m = ClientMessage::new(MessageType::Request, mac(xid), xid);
            m.requested = Some(yiaddr);
            m.server_id = Some(SERVER);
            relayed(&m)
        })
        .collect();
    let acks = serve(&peer, &mut worker, &requests, queued);
    println!(
        "{clients} clients, {queued} frames queued per round: {} OFFERs, {} ACKs",
        offers.len(),
        acks.len()
    );
}

/// The frame the relay sends for `m`.
fn relayed(m: &ClientMessage<'_>) -> Vec<u8> {
    let headers = UdpFrameHeaders {
        dst_mac: SERVER_MAC,
        src_mac: MacAddr([2, 0, 0, 0, 0, 0xfe]),
        vlans: VlanTags::NONE,
        src_ip: RELAY,
        dst_ip: SERVER,
        src_port: 67,
        dst_port: 67,
        ttl: 63,
    };
    udp_frame(
        &headers,
        &m.clone().relayed(RELAY, b"olt-1/1/1:0001").bytes(),
    )
}

/// Injects `frames`, `queued` at a time, polls until each round is taken, and returns the
/// (xid, yiaddr) of every reply.
fn serve<R, T>(
    peer: &mem::MemPeer,
    worker: &mut Worker<R, T, NoSink>,
    frames: &[Vec<u8>],
    queued: usize,
) -> Vec<(u32, Ipv4Addr)>
where
    R: peregrine_io::RxQueue,
    T: peregrine_io::TxQueue,
{
    let mut replies = Vec::with_capacity(frames.len());
    for round in frames.chunks(queued.max(1)) {
        for f in round {
            peer.inject(f, 7);
        }
        while worker.poll(NOW).unwrap() > 0 {}
        worker.flush().unwrap();
        for (frame, _) in peer.sent() {
            if let Ok(Demuxed::Udp { payload, .. }) = demux(&frame) {
                let msg = DhcpMessage::parse(payload).unwrap();
                replies.push((msg.packet().xid(), msg.packet().yiaddr()));
            }
        }
    }
    replies
}
