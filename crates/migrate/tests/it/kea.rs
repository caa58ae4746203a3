//! Kea memfile CSV: the fixture (a log with a renewal, a deletion, a bad address, a short
//! row), and the round trip engine → CSV → engine.

use peregrine_engine::{Binding, BindingEvent, BindingState, ScopeId};
use peregrine_migrate::bindings::{lease_of, restore};
use peregrine_migrate::{LeaseState, kea_csv};

use crate::support::{config, engine, fixture, ip, rows};

#[test]
fn the_fixture_reads_as_kea_would() {
    let text = String::from_utf8(fixture("kea-leases4.csv")).unwrap();
    let got = kea_csv::import(&text);
    assert_eq!(
        rows(&got),
        [
            (3, ip(11), LeaseState::Active),
            (4, ip(12), LeaseState::Abandoned),
            (5, ip(10), LeaseState::Active),
            (6, ip(13), LeaseState::Free),
            (9, ip(16), LeaseState::Expired),
        ]
    );
    let renewed = &got.records[2].lease;
    assert_eq!(renewed.expires, Some(1_795_089_600));
    assert_eq!(renewed.cltt, Some(1_795_086_000));
    assert_eq!(renewed.hostname.as_deref(), Some("host,one"));
    assert_eq!(
        got.records[0].lease.client_id.as_deref(),
        Some(&[1, 2, 0, 0, 0, 0, 2][..])
    );
    assert_eq!(got.superseded.len(), 1);
    let skipped: Vec<usize> = got.skipped.iter().map(|s| s.line).collect();
    assert_eq!(skipped, [7, 8], "{:#?}", got.skipped);
    assert!(got.skipped[0].reason.contains("not-an-address"));
    assert!(got.skipped[1].reason.contains("10 fields"));
}

#[test]
fn a_file_without_the_header_is_refused_with_its_line() {
    let got = kea_csv::import("\n10.0.0.10,02:00:00:00:00:01,,3600,1795086000,1,0,0,,0,\n");
    assert!(got.records.is_empty());
    assert_eq!(got.skipped.len(), 1);
    assert_eq!(got.skipped[0].line, 2);
    assert!(got.skipped[0].reason.contains("header"));
    // Later Kea versions add pool_id: read by name, it changes nothing.
    let got = kea_csv::import(&format!(
        "{},pool_id\n10.0.0.10,02:00:00:00:00:01,,3600,1795086000,1,0,0,,0,,0\n",
        kea_csv::HEADER
    ));
    assert_eq!(got.records.len(), 1, "{:#?}", got.skipped);
}

/// Every kind of binding the engine keeps, in one scope.
fn bindings(engine: &peregrine_engine::Engine) -> Vec<BindingEvent> {
    let hw = |n: u8| [2, 0, 0, 0, 1, n];
    let b = |last: u8, state, key, expires: u64| BindingEvent {
        scope: ScopeId(0),
        address: ip(last),
        binding: Binding {
            client: Some(key),
            mac: hw(last),
            state,
            expires,
            cltt: expires - 1800,
            granted: 3600,
            partner_sent: u64::from(last) * 7,
            partner_acked: u64::from(last) * 5,
            classes: u32::from(last) % 3,
            // A fresh engine stamps an installed binding as the address's first version.
            version: 1,
            info: peregrine_engine::ClientInfo::EMPTY,
        },
    };
    vec![
        b(
            10,
            BindingState::Active,
            engine.client_key_for(1, &hw(10), None),
            1_800_000_000,
        ),
        b(
            11,
            BindingState::Active,
            engine.client_key_for(1, &hw(11), Some(&[1, 2, 0, 0, 0, 1, 11])),
            1_800_000_100,
        ),
        b(
            12,
            BindingState::Expired,
            engine.client_key_for(1, &hw(12), None),
            1_700_000_000,
        ),
        b(
            13,
            BindingState::Released,
            engine.client_key_for(1, &hw(13), None),
            1_700_000_000,
        ),
        b(
            14,
            BindingState::Abandoned,
            engine.client_key_for(1, &hw(14), None),
            1_800_000_000,
        ),
        b(
            15,
            BindingState::Reserved,
            engine.client_key_for(1, &hw(15), None),
            1_800_000_000,
        ),
    ]
}

#[test]
fn kea_csv_export_then_import_gives_identical_bindings() {
    let config = config(true);
    let source = engine(&config);
    let events = bindings(&source);
    for e in &events {
        source.restore(e).unwrap();
    }
    let mut leases = Vec::new();
    source.for_each_binding(|scope, addr, b| leases.extend(lease_of(scope, addr, b)));
    assert_eq!(leases.len(), events.len());
    let mut csv = Vec::new();
    let not_written = kea_csv::write(&mut csv, &leases).unwrap();
    assert!(not_written.is_empty());
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with(&format!("{}\n", kea_csv::HEADER)));
    // Kea's own columns say what Kea 2.2 needs: released is "expired-reclaimed" (2).
    assert!(
        csv.contains("\n10.0.0.13,02:00:00:00:01:0d,,1800,1700000000,1,0,0,,2,"),
        "{csv}"
    );

    let got = kea_csv::import(&csv);
    assert!(got.skipped.is_empty(), "{:#?}", got.skipped);
    let target = engine(&config);
    let r = restore(&target, &config, &got.records, || {});
    assert_eq!(r.accepted.len(), events.len(), "{:#?}", r.skipped);
    for e in &events {
        assert_eq!(
            target.binding(e.address),
            Some((e.scope, e.binding)),
            "{}",
            e.address
        );
    }
}

#[test]
fn an_address_another_client_holds_is_a_conflict_and_stays_theirs() {
    let config = config(true);
    let engine = engine(&config);
    let mine = bindings(&engine)[0];
    engine.restore(&mine).unwrap();
    let csv = format!(
        "{}\n10.0.0.10,02:00:00:00:99:99,,3600,1800000000,1,0,0,,0,\n10.0.0.250,02:00:00:00:99:98,,3600,1800000000,1,0,0,,0,\n",
        kea_csv::HEADER
    );
    let got = kea_csv::import(&csv);
    let r = restore(&engine, &config, &got.records, || {});
    assert!(r.accepted.is_empty());
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!((r.conflicts[0].line, r.conflicts[0].address), (2, ip(10)));
    assert_eq!(r.conflicts[0].holder, mine.binding);
    assert_eq!(engine.binding(ip(10)), Some((ScopeId(0), mine.binding)));
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].line, 3);
    assert!(r.skipped[0].reason.contains("no configured pool"));
}
