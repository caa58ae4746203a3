//! The cost of failover in the engine (issue 27): `cargo bench -p peregrine-engine`.
//!
//! 64 clients hold leases; each iteration is one of them renewing (a REQUEST with ciaddr, the
//! steady state of a broadband network: renewals outnumber everything else). `standalone`: an
//! engine without a partner. `failover`: the same engine as a primary in NORMAL (balanced
//! service, the MCLT rule on every grant) whose partner acknowledges every update: the link
//! thread's `partner_acknowledged` for the binding is inside the iteration. Lease caching is
//! off, so every renewal is a new grant to journal. divan's `AllocProfiler` prints allocations
//! per iteration beside the time: both must show none.

// The test lab's helpers, shared with the tests, unwrap as tests do.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/support.rs"]
mod support;

use std::net::Ipv4Addr;

use divan::{AllocProfiler, Bencher, black_box};
use peregrine_engine::{Engine, FailoverPolicy, Service, Verdict};
use peregrine_failover::hash::{BitOrder, HashBucketAssignment};

use support::{Client, SERVER, T0, lab_config, meta};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

const CLIENTS: u32 = 64;
const MCLT: u32 = 3600;

fn main() {
    divan::main();
}

/// An engine whose clients each hold a lease, and the renewals they send.
fn leased(failover: bool) -> (Engine, Vec<Vec<u8>>) {
    let mut config = lab_config();
    config.server.cache_threshold = 0.0;
    let mut engine = support::engine(&config);
    if failover {
        engine = engine.with_failover(FailoverPolicy {
            primary: true,
            mclt: MCLT,
            buckets: HashBucketAssignment::split(128),
            bit_order: BitOrder::Draft,
            load_balance_max_secs: 0,
            broken: None,
        });
        engine.set_failover_service(Service::All);
    }
    let m = meta(&engine);
    let mut tx = vec![0u8; 1500];
    let mut renewals = Vec::new();
    for n in 0..CLIENTS {
        let c = Client::new(n);
        let offer = engine.handle(T0, &m, &c.discover(), &mut tx);
        let yiaddr = offered(&offer, &tx);
        let ack = engine.handle(T0, &m, &c.select(yiaddr, SERVER), &mut tx);
        acknowledge(&engine, &ack);
        renewals.push(c.renew(yiaddr));
    }
    // NORMAL: renewals are answered from anyone, the rest by the hash.
    engine.set_failover_service(Service::Balanced);
    // What is measured is a renewal granted and journaled, not a drop.
    for r in &renewals {
        let v = engine.handle(T0, &m, r, &mut tx);
        assert!(matches!(v, Verdict::Defer { .. }), "{v:?}");
        acknowledge(&engine, &v);
    }
    (engine, renewals)
}

fn offered(v: &Verdict, tx: &[u8]) -> Ipv4Addr {
    let len = match v {
        Verdict::Reply { len, .. } | Verdict::Defer { len, .. } => *len,
        other => panic!("no OFFER: {other:?}"),
    };
    peregrine_wire::dhcp::DhcpMessage::parse(&tx[..len])
        .unwrap()
        .packet()
        .yiaddr()
}

/// The partner acknowledges the update a grant sent (what the link thread does on BNDACK).
fn acknowledge(engine: &Engine, v: &Verdict) {
    if let Verdict::Defer { event, .. } = v {
        black_box(engine.partner_acknowledged(
            event.address,
            event.binding.partner_sent,
            peregrine_failover::BindingStatus::Active,
        ));
    }
}

fn renew(b: Bencher<'_, '_>, failover: bool) {
    let (engine, renewals) = leased(failover);
    let m = meta(&engine);
    let mut tx = vec![0u8; 1500];
    let mut i = 0;
    let mut now = T0 + 1;
    b.bench_local(|| {
        let v = engine.handle(now, &m, black_box(&renewals[i]), &mut tx);
        acknowledge(&engine, &v);
        black_box(&v);
        i = (i + 1) % renewals.len();
        now += u64::from(i == 0);
    });
}

#[divan::bench(sample_count = 300, sample_size = 1000)]
fn renew_standalone(b: Bencher<'_, '_>) {
    renew(b, false);
}

#[divan::bench(sample_count = 300, sample_size = 1000)]
fn renew_failover(b: Bencher<'_, '_>) {
    renew(b, true);
}
