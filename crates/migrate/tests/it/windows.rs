//! Windows `Export-DhcpServer` XML, per Microsoft's documented `DhcpServerv4Lease` and
//! reservation properties: leases in several states, reservations (one with its lease),
//! a non-Ethernet client identifier, zone offsets, and bad entries.

use std::net::Ipv4Addr;

use peregrine_engine::BindingState;
use peregrine_migrate::bindings::restore;
use peregrine_migrate::report::Format;
use peregrine_migrate::{HwAddr, LeaseState, LocalZone, windows_xml};

use crate::support::{config, engine, fixture, ip, rows};

#[test]
fn the_export_reads_leases_and_reservations() {
    let text = String::from_utf8(fixture("windows-export.xml")).unwrap();
    let got = windows_xml::import(&text, &LocalZone::default());
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
    let got = windows_xml::import("<DHCPServer>\n<IPv4>\n</DHCPServer>", &LocalZone::default());
    assert!(got.records.is_empty());
    assert_eq!(got.skipped.len(), 1);
    assert!(got.skipped[0].reason.contains("XML"), "{}", got.skipped[0]);
    let got = windows_xml::import("<?xml version=\"1.0\"?>\n<Other/>", &LocalZone::default());
    assert_eq!(got.skipped[0].line, 2);
}

/// The fixture as `Export-DhcpServer` writes it: UTF-16 little-endian with a byte order mark
/// and the declaration saying so; and the other encodings an operator's tools may leave.
fn encoded(text: &str) -> [(&'static str, Vec<u8>); 5] {
    let text = text.replace("encoding=\"utf-8\"", "encoding=\"utf-16\"");
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    [
        ("UTF-16 LE with BOM", [&[0xff, 0xfe][..], &le].concat()),
        ("UTF-16 BE with BOM", [&[0xfe, 0xff][..], &be].concat()),
        ("UTF-16 LE without BOM", le),
        (
            "UTF-8 with BOM",
            [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat(),
        ),
        ("UTF-8", text.into_bytes()),
    ]
}

#[test]
fn utf16_and_utf8_exports_give_the_same_leases() {
    let text = String::from_utf8(fixture("windows-export.xml")).unwrap();
    let want = windows_xml::import(&text, &LocalZone::default());
    assert_eq!(want.records.len(), 6);
    for (name, bytes) in encoded(&text) {
        let got = Format::WindowsXml
            .parse(&bytes, &LocalZone::default())
            .unwrap();
        assert_eq!(got.records, want.records, "{name}");
        assert_eq!(got.skipped, want.skipped, "{name}");
    }
}

#[test]
fn a_file_nothing_can_be_read_from_is_an_error() {
    let text = String::from_utf8(fixture("windows-export.xml")).unwrap();
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let cases: [(Format, &[u8], &str); 5] = [
        // UTF-16 read as a Kea CSV or dhcpd file, and Latin-1 as XML.
        (Format::KeaCsv, &utf16, "kea-csv"),
        (Format::Dhcpd, &utf16, "dhcpd"),
        (
            Format::WindowsXml,
            b"<DHCPServer>\xe9</DHCPServer>",
            "UTF-8",
        ),
        (Format::WindowsXml, b"address,hwaddr\n10.0.0.1,x\n", "XML"),
        // An odd number of bytes after a UTF-16 mark.
        (Format::WindowsXml, &[0xff, 0xfe, b'<'], "odd"),
    ];
    for (format, bytes, why) in cases {
        let err = format.parse(bytes, &LocalZone::default()).unwrap_err();
        assert!(err.to_string().contains(why), "{format:?}: {err}");
        assert!(err.to_string().contains("nothing was imported"));
    }
    // An export with no lease in it is not an error: there is nothing to import.
    let empty = "<DHCPServer><IPv4><Scopes><Scope><ScopeId>10.0.0.0</ScopeId></Scope></Scopes></IPv4></DHCPServer>";
    let got = Format::WindowsXml
        .parse(empty.as_bytes(), &LocalZone::default())
        .unwrap();
    assert!(got.records.is_empty() && got.skipped.is_empty());
}

#[test]
fn a_client_known_by_its_mac_keeps_its_address_with_or_without_option_61() {
    let text = String::from_utf8(fixture("windows-export.xml")).unwrap();
    let got = windows_xml::import(&text, &LocalZone::default());
    let config = config(true);
    let engine = engine(&config);
    restore(&engine, &config, &got.records, || {});
    let mac = [2, 0, 0, 0, 0, 0x30];
    let (_, b) = engine.binding(ip(30)).unwrap();
    // The key a client sending no option 61 gets, and one sending 01 + MAC.
    let bare = engine.client_key_for(1, &mac, None);
    let with_id = engine.client_key_for(1, &mac, Some(&[1, 2, 0, 0, 0, 0, 0x30]));
    assert_eq!(b.client, Some(bare));
    assert_eq!(bare, with_id);
    // A client with the same MAC and another identifier is another client.
    let other = engine.client_key_for(1, &mac, Some(b"router-30"));
    assert_ne!(other, bare);
}

#[test]
fn times_without_a_zone_are_read_in_the_zone_the_operator_names() {
    let text = String::from_utf8(fixture("windows-export.xml")).unwrap();
    let utc = windows_xml::import(&text, &LocalZone::default());
    let berlin: LocalZone = "Europe/Berlin".parse().unwrap();
    let local = windows_xml::import(&text, &berlin);
    // Line 62's lease expires at 10:00 without a zone: 10:00 UTC, or 09:00 UTC in Berlin (CET).
    let expiry = |i: &peregrine_migrate::Import| {
        i.records
            .iter()
            .find(|r| r.line == 62)
            .and_then(|r| r.lease.expires)
            .unwrap()
    };
    assert_eq!(expiry(&utc) - expiry(&local), 3600);
    assert!(utc.notes[0].reason.contains("read in UTC"));
    assert!(local.notes[0].reason.contains("read in Europe/Berlin"));
    // Times that name their zone do not move.
    let zoned = |i: &peregrine_migrate::Import| {
        i.records
            .iter()
            .find(|r| r.line == 53)
            .unwrap()
            .lease
            .expires
    };
    assert_eq!(zoned(&utc), zoned(&local));
    assert!(
        "Mars/Olympus"
            .parse::<LocalZone>()
            .unwrap_err()
            .contains("IANA")
    );
    assert!("+25:00".parse::<LocalZone>().is_err());
}
