//! Windows `Export-DhcpServer` XML, per Microsoft's documented `DhcpServerv4Lease` and
//! reservation properties: leases in several states, reservations (one with its lease),
//! a non-Ethernet client identifier, zone offsets, and bad entries.

use std::net::Ipv4Addr;

use peregrine_engine::BindingState;
use peregrine_migrate::bindings::restore;
use peregrine_migrate::{HwAddr, LeaseState, windows_xml};

use crate::support::{config, engine, fixture, ip, rows};

#[test]
fn the_export_reads_leases_and_reservations() {
    let text = String::from_utf8(fixture("windows-export.xml")).unwrap();
    let got = windows_xml::import(&text);
    assert_eq!(
        rows(&got),
        [
            (41, ip(20), LeaseState::Reserved),
            (53, ip(30), LeaseState::Active),
            (62, ip(31), LeaseState::Expired),
            (70, ip(32), LeaseState::Abandoned),
            (33, ip(21), LeaseState::Reserved),
            (97, Ipv4Addr::new(192, 168, 50, 10), LeaseState::Active),
        ]
    );
    // The reservation of 10.0.0.20 gives way to its client's lease.
    assert_eq!(got.superseded.len(), 1);
    assert_eq!(got.superseded[0].line, 26);
    let pc = &got.records[1].lease;
    assert_eq!(
        pc.expires,
        Some(1_795_773_600),
        "11:00 at +01:00 is 10:00 UTC"
    );
    assert_eq!(pc.hardware, Some(HwAddr::ethernet([2, 0, 0, 0, 0, 0x30])));
    assert_eq!(pc.client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 0x30][..]));
    assert_eq!(pc.hostname.as_deref(), Some("pc-30.example.com"));
    let duid = &got.records[2].lease;
    assert_eq!(duid.hardware, None);
    assert_eq!(duid.client_id.as_ref().map(Vec::len), Some(17));

    let skipped: Vec<usize> = got.skipped.iter().map(|s| s.line).collect();
    assert_eq!(skipped, [78, 84], "{:#?}", got.skipped);
    assert!(got.skipped[0].reason.contains("10.0.0.999"));
    assert!(got.skipped[1].reason.contains("Bogus"));
    assert_eq!(got.notes.len(), 1, "a time without zone is noted");

    let config = config(true);
    let engine = engine(&config);
    let r = restore(&engine, &config, &got.records, || {});
    assert_eq!(r.accepted.len(), 5, "{:#?}", r.skipped);
    assert_eq!(r.skipped.len(), 1);
    assert!(r.skipped[0].reason.contains("192.168.50.10"));
    let (_, b) = engine.binding(ip(21)).unwrap();
    assert_eq!(b.state, BindingState::Reserved);
    assert_eq!(
        b.client,
        Some(engine.client_key_for(1, &[2, 0, 0, 0, 0, 0x21], Some(&[1, 2, 0, 0, 0, 0, 0x21])))
    );
}

#[test]
fn documents_that_are_not_exports_are_refused_with_a_line() {
    let got = windows_xml::import("<DHCPServer>\n<IPv4>\n</DHCPServer>");
    assert!(got.records.is_empty());
    assert_eq!(got.skipped.len(), 1);
    assert!(got.skipped[0].reason.contains("XML"), "{}", got.skipped[0]);
    let got = windows_xml::import("<?xml version=\"1.0\"?>\n<Other/>");
    assert_eq!(got.skipped[0].line, 2);
}
