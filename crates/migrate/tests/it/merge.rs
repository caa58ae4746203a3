//! Importing several servers' files merges them whatever their order: one lease per client
//! and scope (the later by last transaction), so the bindings do not depend on which file came
//! first.

use std::net::Ipv4Addr;

use peregrine_engine::{BindingState, Engine};
use peregrine_migrate::bindings::restore;
use peregrine_migrate::{HwAddr, Lease, LeaseState, Record};
use proptest::prelude::*;

use crate::support::{config, engine, ip};

/// Leases of up to 6 clients on distinct addresses, each with a distinct last transaction
/// time: (client, address, cltt).
fn leases() -> impl Strategy<Value = Vec<(u8, u8, u64)>> {
    proptest::collection::vec((0u8..6, 10u8..200), 1..24).prop_map(|raw| {
        let mut seen = std::collections::HashSet::new();
        raw.into_iter()
            .filter(|&(_, a)| seen.insert(a))
            .enumerate()
            .map(|(i, (c, a))| (c, a, 1_800_000_000 + 60 * i as u64))
            .collect()
    })
}

fn record(line: usize, (client, address, cltt): (u8, u8, u64)) -> Record {
    let mut lease = Lease::new(ip(address), LeaseState::Active);
    lease.hardware = Some(HwAddr::ethernet([2, 0, 0, 0, 0, client]));
    lease.cltt = Some(cltt);
    lease.expires = Some(cltt + 86_400);
    Record { line, lease }
}

/// Every active binding: (address, MAC).
fn active(engine: &Engine) -> Vec<(Ipv4Addr, [u8; 6])> {
    (10..200)
        .filter_map(|a| {
            let (_, b) = engine.binding(ip(a))?;
            (b.state == BindingState::Active).then_some((ip(a), b.mac))
        })
        .collect()
}

proptest! {
    #[test]
    fn merging_files_in_any_order_gives_the_same_bindings(
        leases in leases(),
        split in 0usize..24,
        seed in any::<u64>(),
    ) {
        let config = config(false);
        // Two files, imported one way round and then the other, each shuffled.
        let records: Vec<Record> =
            leases.iter().enumerate().map(|(i, &l)| record(i + 1, l)).collect();
        let (a, b) = records.split_at(split.min(records.len()));
        let mut shuffled = records.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let first = engine(&config);
        restore(&first, &config, a, || {});
        restore(&first, &config, b, || {});
        let second = engine(&config);
        restore(&second, &config, b, || {});
        restore(&second, &config, a, || {});
        let third = engine(&config);
        restore(&third, &config, &shuffled, || {});
        let got = active(&first);
        prop_assert_eq!(&got, &active(&second));
        prop_assert_eq!(&got, &active(&third));
        // One lease per client: its latest.
        let mut latest = std::collections::BTreeMap::new();
        for &(c, a, t) in &leases {
            let e = latest.entry(c).or_insert((a, t));
            if t > e.1 {
                *e = (a, t);
            }
        }
        let mut want: Vec<(Ipv4Addr, [u8; 6])> =
            latest.into_iter().map(|(c, (a, _))| (ip(a), [2, 0, 0, 0, 0, c])).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }
}
