//! In-process engine throughput and memory, printed as a table:
//!
//! ```sh
//! cargo run --release -p peregrine-engine --example engine_bench -- [clients] [threads]
//! ```
//!
//! Each client does DISCOVER → OFFER → REQUEST → ACK through one shared engine (`handle` is
//! called with real DHCP messages, relayed with option 82), then renews past T1. Messages are
//! stamped in place from a template (client MAC, xid, requested address), so the figure is the
//! engine's, not a message builder's. Last, the engine is rebuilt as a reload of the same file
//! does, the time the workers wait. Memory is the process's resident set growth per binding,
//! read from /proc/self/statm.

// A measuring program: any failure should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::net::Ipv4Addr;
use std::time::Instant;

use peregrine_config::model::{Config, ServerSettings};
use peregrine_engine::{Engine, EngineOptions, RxMeta, Verdict};
use peregrine_testkit::config as fixture;
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{BootpHeader, DhcpMessage, DhcpWriter, MessageType, opt, relay};
use peregrine_wire::ethernet::VlanTags;

const GIADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn config(clients: u32) -> Config {
    let server = ServerSettings {
        offer_hold: 30,
        decline_probation: 3600,
        ..fixture::server(true)
    };
    let first = Ipv4Addr::new(10, 0, 1, 0).to_bits();
    let mut scope = fixture::scope(
        "bench",
        fixture::net([10, 0, 0, 0], 8),
        Ipv4Addr::from_bits(first),
        Ipv4Addr::from_bits(first + clients + clients / 8),
        &server,
    );
    scope.options.set(opt::ROUTER, GIADDR.octets().to_vec());
    scope
        .options
        .set(opt::DNS_SERVERS, vec![192, 0, 2, 53, 192, 0, 2, 54]);
    scope.options.set(opt::DOMAIN_NAME, b"isp.example".to_vec());
    fixture::config(server, vec![scope])
}

/// A message template and the offsets to stamp per client.
struct Template {
    bytes: Vec<u8>,
    requested_at: Option<usize>,
}

fn template(kind: MessageType, ciaddr: bool, requested: bool) -> Template {
    let mut buf = vec![0u8; 600];
    let mut w = DhcpWriter::new(&mut buf, 600).unwrap();
    w.header(&BootpHeader {
        op: 1,
        htype: 1,
        hlen: 6,
        hops: 1,
        xid: 0,
        secs: 0,
        flags: 0,
        ciaddr: if ciaddr {
            Ipv4Addr::new(10, 0, 1, 0)
        } else {
            Ipv4Addr::UNSPECIFIED
        },
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: GIADDR,
        chaddr: [0; 16],
    });
    w.message_type(kind).unwrap();
    if requested {
        w.option_ipv4(opt::REQUESTED_IP, Ipv4Addr::UNSPECIFIED)
            .unwrap();
        w.option_ipv4(opt::SERVER_ID, SERVER).unwrap();
    }
    w.option(opt::PARAMETER_REQUEST_LIST, &[1, 3, 6, 15, 51, 54, 58, 59])
        .unwrap();
    let mut rai = [0u8; 64];
    let n = relay::write_sub_options(
        &mut rai,
        &[
            (relay::sub::CIRCUIT_ID, b"olt-1/1/1:0000"),
            (relay::sub::REMOTE_ID, &[0; 6]),
        ],
    )
    .unwrap();
    w.option(opt::RELAY_AGENT_INFO, &rai[..n]).unwrap();
    let len = w.finish().unwrap();
    buf.truncate(len);
    let requested_at = requested.then(|| find_option(&buf, opt::REQUESTED_IP));
    Template {
        bytes: buf,
        requested_at,
    }
}

fn find_option(msg: &[u8], code: u8) -> usize {
    let m = DhcpMessage::parse(msg).unwrap();
    let v = m.get(code).unwrap().as_slice().unwrap();
    v.as_ptr() as usize - msg.as_ptr() as usize
}

/// Stamps client `i` into the template: MAC in chaddr, xid, and the circuit id's last digits.
fn stamp(t: &mut Template, i: u32, requested: Ipv4Addr) {
    let b = i.to_be_bytes();
    t.bytes[4..8].copy_from_slice(&b);
    t.bytes[28..34].copy_from_slice(&[2, 0, b[0], b[1], b[2], b[3]]);
    if let Some(at) = t.requested_at {
        t.bytes[at..at + 4].copy_from_slice(&requested.octets());
    }
    if t.bytes[12..16] != [0; 4] {
        t.bytes[12..16].copy_from_slice(&requested.octets());
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn meta() -> RxMeta {
    RxMeta {
        interface: None,
        vlans: VlanTags::NONE,
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        src_ip: GIADDR,
        src_port: 67,
        dst_ip: SERVER,
        local_ip: SERVER,
        trusted: false,
    }
}

/// DORA (when `leased` is empty) or renewal of `leased[i]` for clients `range`; returns the
/// number of messages handled.
fn run(engine: &Engine, range: std::ops::Range<u32>, now: u64, leased: &[Ipv4Addr]) -> u64 {
    let meta = meta();
    let mut discover = template(MessageType::Discover, false, false);
    let mut request = template(MessageType::Request, false, true);
    let mut renew = template(MessageType::Request, true, false);
    let mut tx = vec![0u8; 1500];
    let mut handled = 0u64;
    for i in range {
        if leased.is_empty() {
            stamp(&mut discover, i, Ipv4Addr::UNSPECIFIED);
            let Verdict::Reply { len, .. } = engine.handle(now, &meta, &discover.bytes, &mut tx)
            else {
                panic!("no offer")
            };
            let yiaddr = Ipv4Addr::new(tx[16], tx[17], tx[18], tx[19]);
            debug_assert!(len > 0);
            stamp(&mut request, i, yiaddr);
            let v = engine.handle(now, &meta, &request.bytes, &mut tx);
            assert!(matches!(v, Verdict::Defer { .. }), "{v:?}");
            handled += 2;
        } else {
            stamp(&mut renew, i, leased[i as usize]);
            let v = engine.handle(now, &meta, &renew.bytes, &mut tx);
            assert!(matches!(v, Verdict::Defer { .. }), "{v:?}");
            handled += 1;
        }
    }
    handled
}

fn main() {
    let mut args = std::env::args().skip(1);
    let clients: u32 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let threads: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let before = rss_bytes();
    let t = Instant::now();
    let engine = Engine::new(&config(clients), EngineOptions::default()).unwrap();
    let build = t.elapsed();
    let now = 1_800_000_000;
    let per = clients / threads;

    let t = Instant::now();
    let dora: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let engine = &engine;
                s.spawn(move || run(engine, k * per..(k + 1) * per, now, &[]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let dora_secs = t.elapsed().as_secs_f64();
    let after = rss_bytes();

    // Each client's address, looked up outside the timing (client i has MAC 02:00:<i>).
    let mut leased = vec![Ipv4Addr::UNSPECIFIED; clients as usize];
    let first = Ipv4Addr::new(10, 0, 1, 0).to_bits();
    for a in first..=first + clients + clients / 8 {
        if let Some((_, b)) = engine.binding(Ipv4Addr::from_bits(a)) {
            let i = u32::from_be_bytes([b.mac[2], b.mac[3], b.mac[4], b.mac[5]]) as usize;
            if b.state == peregrine_engine::BindingState::Active && i < leased.len() {
                leased[i] = Ipv4Addr::from_bits(a);
            }
        }
    }
    let renew_now = now + 2000;
    let t = Instant::now();
    let renew: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (engine, leased) = (&engine, &leased);
                s.spawn(move || run(engine, k * per..(k + 1) * per, renew_now, leased))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let renew_secs = t.elapsed().as_secs_f64();

    let active: u64 = engine.pool_stats().iter().map(|s| s.active).sum();

    println!(
        "clients {clients}, threads {threads}, pool {} addresses",
        clients + clients / 8 + 1
    );
    println!("| phase | messages | seconds | messages/s |");
    println!("|---|---|---|---|");
    println!(
        "| DORA (DISCOVER + REQUEST) | {dora} | {dora_secs:.3} | {:.0} |",
        dora as f64 / dora_secs
    );
    println!(
        "| renew past T1 (REQUEST) | {renew} | {renew_secs:.3} | {:.0} |",
        renew as f64 / renew_secs
    );
    println!(
        "engine build {:.3} s; active bindings {active}",
        build.as_secs_f64()
    );
    println!(
        "resident memory: {:.1} MiB for {active} bindings = {:.0} bytes per binding (pool built for {} addresses)",
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / active.max(1) as f64,
        clients + clients / 8 + 1
    );
    reload(engine, clients, renew_now);
}

/// Reloads `engine` twice, printing how long the workers would wait: with the same file
/// (every pool handed over whole), then with the pool grown by one address (every binding
/// copied).
fn reload(engine: Engine, clients: u32, now: u64) {
    // The new tables are built while the workers serve; they wait only for the hand-over.
    let t = Instant::now();
    let mut reloaded = engine.successor(&config(clients)).unwrap();
    let successor_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let carried = engine.hand_over(&mut reloaded, now);
    let hand_over_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drop(engine);
    let drop_secs = t.elapsed().as_secs_f64();
    println!(
        "reload of the same file: successor built in {successor_secs:.3} s (workers serve); \
         hand-over {:.0} µs (workers wait) for {} bindings, {} copied; the engine replaced \
         freed in {drop_secs:.3} s",
        hand_over_secs * 1e6,
        carried.bindings,
        carried.copied
    );
    let engine = reloaded;
    let mut grown = config(clients);
    let last = grown.scopes[0].pools[0].last.to_bits();
    grown.scopes[0].pools[0].last = Ipv4Addr::from_bits(last + 1);
    let mut reloaded = engine.successor(&grown).unwrap();
    let t = Instant::now();
    let copied = engine.hand_over(&mut reloaded, now);
    println!(
        "reload growing the pool: hand-over {:.3} s (workers wait) for {} bindings, {} copied",
        t.elapsed().as_secs_f64(),
        copied.bindings,
        copied.copied
    );
    assert_eq!(copied.bindings, carried.bindings);
}
