//! ISC `dhcpd.leases`: the fixture covers comments, server-duid, a failover state block,
//! a renewed lease (the last block wins), failover times, uid in both spellings, dates in
//! both spellings, a bad date, a host block and states other than active.

use std::net::Ipv4Addr;

use peregrine_engine::BindingState;
use peregrine_migrate::bindings::restore;
use peregrine_migrate::{HwAddr, LeaseState, dhcpd};

use crate::support::{config, engine, fixture, ip};

#[test]
fn the_fixture_reads_as_dhcpd_would() {
    let got = dhcpd::import(&fixture("dhcpd.leases"));
    let addrs: Vec<(usize, Ipv4Addr)> = got
        .records
        .iter()
        .map(|r| (r.line, r.lease.address))
        .collect();
    assert_eq!(
        addrs,
        [
            (25, ip(11)),
            (40, ip(10)),
            (48, ip(12)),
            (54, ip(13)),
            (71, ip(16))
        ]
    );
    assert_eq!(got.superseded.len(), 1);
    assert_eq!((got.superseded[0].line, got.superseded[0].by), (15, 40));

    let renewed = &got.records[1].lease;
    assert_eq!(renewed.state, LeaseState::Active);
    assert_eq!(renewed.cltt, Some(1_795_082_400));
    assert_eq!(renewed.expires, Some(1_795_086_000));
    assert_eq!(renewed.valid_lifetime, Some(3600));
    assert_eq!(
        renewed.client_id.as_deref(),
        Some(&[1, 2, 0, 0, 0, 0, 1][..])
    );
    assert_eq!(renewed.hardware, Some(HwAddr::ethernet([2, 0, 0, 0, 0, 1])));

    let failover = &got.records[0].lease;
    // cltt wins over starts; tstp is what was sent, atsfp what the partner acknowledged.
    assert_eq!(failover.cltt, Some(1_795_080_660));
    assert_eq!(failover.partner_sent, Some(1_795_087_800));
    assert_eq!(failover.partner_acked, Some(1_795_086_900));
    assert_eq!(
        failover.client_id.as_deref(),
        Some(&[1, 2, 0, 0, 0, 0, 2][..])
    );

    assert_eq!(got.records[2].lease.state, LeaseState::Free);
    let abandoned = &got.records[3].lease;
    assert_eq!(abandoned.state, LeaseState::Abandoned);
    assert_eq!(abandoned.expires, None, "ends never");
    assert_eq!(
        abandoned.hostname.as_deref(),
        Some("has a \"quote\" and # no comment")
    );
    assert_eq!(got.records[4].lease.state, LeaseState::Released);

    let skipped: Vec<usize> = got.skipped.iter().map(|s| s.line).collect();
    assert_eq!(skipped, [60, 66], "{:#?}", got.skipped);
    assert!(got.skipped[0].reason.contains("ends"), "{}", got.skipped[0]);
    assert!(got.skipped[1].reason.contains("host"), "{}", got.skipped[1]);
    let notes: Vec<usize> = got.notes.iter().map(|s| s.line).collect();
    assert_eq!(
        notes,
        [7, 9],
        "server-duid and the failover block are noted"
    );
}

#[test]
fn leases_become_bindings_a_returning_client_would_find() {
    let config = config(true);
    let engine = engine(&config);
    let got = dhcpd::import(&fixture("dhcpd.leases"));
    let r = restore(&engine, &config, &got.records, || {});
    let accepted: Vec<Ipv4Addr> = r.accepted.iter().map(|m| m.event.address).collect();
    assert_eq!(accepted, [ip(11), ip(10), ip(16)]);
    // The free lease has nothing bound; the abandoned one has no client identity.
    assert_eq!(r.skipped.len(), 2, "{:#?}", r.skipped);
    assert!(r.conflicts.is_empty());

    let (_, b) = engine.binding(ip(10)).unwrap();
    assert_eq!(b.state, BindingState::Active);
    assert_eq!(
        b.client,
        Some(engine.client_key_for(1, &[2, 0, 0, 0, 0, 1], Some(&[1, 2, 0, 0, 0, 0, 1])))
    );
    assert_eq!(
        (b.cltt, b.expires, b.granted),
        (1_795_082_400, 1_795_086_000, 3600)
    );
    assert_eq!(b.mac, [2, 0, 0, 0, 0, 1]);
    let (_, b) = engine.binding(ip(11)).unwrap();
    assert_eq!(
        (b.partner_sent, b.partner_acked),
        (1_795_087_800, 1_795_086_900)
    );

    // A scope that does not match on client identifiers keys by hardware address.
    let config = super::support::config(false);
    let engine = engine_for(&config);
    restore(&engine, &config, &got.records, || {});
    let (_, b) = engine.binding(ip(10)).unwrap();
    assert_eq!(
        b.client,
        Some(engine.client_key_for(1, &[2, 0, 0, 0, 0, 1], None))
    );
}

fn engine_for(config: &peregrine_config::model::Config) -> peregrine_engine::Engine {
    engine(config)
}

#[test]
fn broken_files_are_reported_not_guessed() {
    let got = dhcpd::import(b"lease 10.0.0.10 {\n  starts 4 2026/11/19 09:00:00;\n");
    assert!(got.records.is_empty());
    assert_eq!(got.skipped.len(), 1);
    assert_eq!(got.skipped[0].line, 1);
    assert!(got.skipped[0].reason.contains('}'), "{}", got.skipped[0]);

    let got = dhcpd::import(b"lease 10.0.0.10 { uid \"abc; }\nlease 10.0.0.11 { }\n");
    assert!(got.records.is_empty());
    assert!(
        got.skipped
            .iter()
            .any(|s| s.reason.contains("never closed"))
    );

    let got = dhcpd::import(b"}\nfrobnicate 1 2;\nlease 10.0.0.300 { }\n");
    let lines: Vec<usize> = got.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [1, 2, 3], "{:#?}", got.skipped);
}
