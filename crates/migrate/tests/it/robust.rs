//! No parser panics, whatever the bytes: random bytes, and damaged copies of the fixtures.

use proptest::prelude::*;

use peregrine_migrate::{LocalZone, dhcpd, kea_csv, windows_xml};

use crate::support::fixture;

/// A fixture with bytes overwritten, inserted or cut at random places.
fn damaged(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let base = fixture(name);
    let len = base.len();
    proptest::collection::vec((0..len, any::<u8>(), 0u8..3), 1..24).prop_map(move |edits| {
        let mut b = base.clone();
        for (at, byte, op) in edits {
            let at = at.min(b.len().saturating_sub(1));
            match op {
                0 if !b.is_empty() => b[at] = byte,
                1 => b.insert(at, byte),
                _ => b.truncate(at.max(1)),
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dhcpd_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = dhcpd::import(&bytes);
    }

    #[test]
    fn dhcpd_takes_damaged_files(bytes in damaged("dhcpd.leases")) {
        let got = dhcpd::import(&bytes);
        for r in &got.records {
            prop_assert!(r.line >= 1);
        }
    }

    #[test]
    fn kea_csv_takes_any_text(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = kea_csv::import(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn kea_csv_takes_damaged_files(bytes in damaged("kea-leases4.csv")) {
        let _ = kea_csv::import(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn windows_xml_takes_any_text(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = windows_xml::import(&String::from_utf8_lossy(&bytes), &LocalZone::default());
    }

    #[test]
    fn windows_xml_takes_damaged_files(bytes in damaged("windows-export.xml")) {
        let _ = windows_xml::import(&String::from_utf8_lossy(&bytes), &LocalZone::default());
    }
}
