//! The Windows DHCP Server export (`Export-DhcpServer -File … -Leases`): import of its
//! DHCPv4 leases and reservations.
//!
//! The document is `DHCPServer/IPv4/Scopes/Scope`, each scope with `ScopeId` and optional
//! `Leases/Lease` (`IPAddress`, `ScopeId`, `ClientId`, `ClientType`, `HostName`,
//! `AddressState`, `LeaseExpiryTime`, …) and `Reservations/Reservation` (`IPAddress`,
//! `ClientId`, `Name`, `Type`, …). Elements are matched by local name, so a namespace
//! prefix makes no difference; unknown elements are ignored.
//!
//! The cmdlet writes the file in UTF-16 (little-endian, with a byte order mark); UTF-16
//! big-endian and UTF-8, with or without a mark, are read as well ([`import_bytes`]).
//!
//! `ClientId` is hex bytes separated by `-`: for an Ethernet client, its MAC address, which
//! Windows shows whether or not the client sent option 61. A six-byte `ClientId` becomes the
//! hardware address and the client identifier `01` + MAC, which the engine keys as that
//! hardware address: the client keeps its address whether it sends no option 61 (ISC
//! dhclient's default) or `01` + MAC. Any other length is taken as the client identifier as
//! sent.
//!
//! `LeaseExpiryTime` is an `xs:dateTime`; one without a zone offset is read in the zone the
//! operator names (UTC by default), which the report notes. `AddressState` `Active`, `Offered` give an active lease, `Expired` an expired one,
//! `Declined` an abandoned one, `ActiveReservation` and `InactiveReservation` a reserved one;
//! the `…DnsRegistration`-suffixed variants Windows also reports count as their stem.

use std::net::Ipv4Addr;

use roxmltree::{Document, Node};

use crate::dhcpd::days_from_civil;
use crate::lease::{HwAddr, Import, Lease, LeaseState, LocalZone, Time, parse_hex_bytes};

/// Reads an `Export-DhcpServer` file as the cmdlet writes it: UTF-16 with a byte order mark
/// (little- or big-endian), or UTF-8. Never fails: bytes that are none of these give one skipped
/// entry saying why.
pub fn import_bytes(bytes: &[u8], zone: &LocalZone) -> Import {
    match decode_text(bytes) {
        Ok(text) => import(&text, zone),
        Err(why) => {
            let mut out = Import::default();
            out.skip(1, why);
            out
        }
    }
}

/// The text of `bytes`: UTF-16 LE or BE by their byte order mark (or, without one, by the zero
/// bytes of an ASCII `<` in either order), else UTF-8 (a mark skipped).
fn decode_text(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |body: &[u8], from: fn([u8; 2]) -> u16, order: &str| {
        if !body.len().is_multiple_of(2) {
            return Err(format!("UTF-16 {order} text with an odd number of bytes"));
        }
        let units = body.chunks_exact(2).map(|c| from([c[0], c[1]]));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| format!("not UTF-16 {order}: {e}"))
    };
    match bytes {
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes, "little-endian"),
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes, "big-endian"),
        [0xef, 0xbb, 0xbf, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
        }
        [b'<', 0, ..] => utf16(bytes, u16::from_le_bytes, "little-endian"),
        [0, b'<', ..] => utf16(bytes, u16::from_be_bytes, "big-endian"),
        _ => String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("neither UTF-8 nor UTF-16 with a byte order mark: {e}")),
    }
}

/// Reads an `Export-DhcpServer` XML document, with times that name no zone read in `zone`.
/// Never fails: a document that is not XML, or not such an export, gives one skipped entry
/// saying why.
pub fn import(text: &str, zone: &LocalZone) -> Import {
    let mut out = Import::default();
    let doc = match Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            out.skip(e.pos().row as usize, format!("not well-formed XML: {e}"));
            return out;
        }
    };
    let root = doc.root_element();
    if root.tag_name().name() != "DHCPServer" {
        out.skip(
            line(&doc, root),
            format!(
                "root element is <{}>, not <DHCPServer> (an Export-DhcpServer file)",
                root.tag_name().name()
            ),
        );
        return out;
    }
    let Some(v4) = child(root, "IPv4") else {
        out.note(line(&doc, root), "no <IPv4> section: nothing to import");
        return out;
    };
    let mut assumed_local = false;
    for scope in children(child(v4, "Scopes"), "Scope") {
        for lease in children(child(scope, "Leases"), "Lease") {
            match lease_of(lease, zone, &mut assumed_local) {
                Ok(l) => out.push(line(&doc, lease), l),
                Err(reason) => out.skip(line(&doc, lease), reason),
            }
        }
        for r in children(child(scope, "Reservations"), "Reservation") {
            match reservation_of(r) {
                Ok(l) => out.push(line(&doc, r), l),
                Err(reason) => out.skip(line(&doc, r), reason),
            }
        }
    }
    // A reservation and the lease its client holds name the same address; the lease was
    // pushed first, so `finish` would keep the reservation. Keep the lease: it says more.
    let mut out = prefer_leases(out);
    if assumed_local {
        out.note(
            line(&doc, root),
            format!(
                "LeaseExpiryTime values without a time zone were read in {} (--timezone)",
                zone.name()
            ),
        );
    }
    out
}

/// Where a reservation and a lease name one address, keeps the lease (with state Reserved
/// unless it has ended) and lists the reservation as superseded.
fn prefer_leases(mut out: Import) -> Import {
    let mut by_addr = std::collections::HashMap::new();
    for (i, r) in out.records.iter().enumerate() {
        if r.lease.state != LeaseState::Reserved || r.lease.expires.is_some() {
            by_addr.entry(r.lease.address).or_insert(i);
        }
    }
    let mut superseded = Vec::new();
    let mut keep = Vec::with_capacity(out.records.len());
    for r in &out.records {
        let reservation = r.lease.state == LeaseState::Reserved && r.lease.expires.is_none();
        match by_addr.get(&r.lease.address) {
            Some(&i) if reservation => superseded.push(crate::lease::Superseded {
                line: r.line,
                by: out.records[i].line,
                address: r.lease.address,
            }),
            _ => keep.push(r.clone()),
        }
    }
    out.records = keep;
    out.superseded.extend(superseded);
    out.finish()
}

fn line(doc: &Document<'_>, node: Node<'_, '_>) -> usize {
    doc.text_pos_at(node.range().start).row as usize
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i: 'a>(
    node: Option<Node<'a, 'i>>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.into_iter()
        .flat_map(|n| n.children())
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of the child element `name`; `None` if absent or empty.
fn text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn address(node: Node<'_, '_>) -> Result<Ipv4Addr, String> {
    let a = text(node, "IPAddress").ok_or("no IPAddress")?;
    a.parse()
        .map_err(|_| format!("IPAddress {a:?} is not an IPv4 address"))
}

/// Hardware address and client identifier from a `ClientId`.
fn identity(node: Node<'_, '_>) -> Result<(Option<HwAddr>, Option<Vec<u8>>), String> {
    let id = text(node, "ClientId").ok_or("no ClientId")?;
    let bytes = parse_hex_bytes(id, '-')
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("ClientId {id:?} is not hex bytes separated by '-'"))?;
    Ok(match <[u8; 6]>::try_from(bytes.as_slice()) {
        Ok(mac) => {
            let mut cid = vec![1];
            cid.extend_from_slice(&mac);
            (Some(HwAddr::ethernet(mac)), Some(cid))
        }
        Err(_) => (None, Some(bytes)),
    })
}

fn lease_of(
    node: Node<'_, '_>,
    zone: &LocalZone,
    assumed_local: &mut bool,
) -> Result<Lease, String> {
    let address = address(node)?;
    let state_text = text(node, "AddressState").unwrap_or("Active");
    let stem = state_text
        .strip_suffix("DnsRegistration")
        .or_else(|| state_text.strip_suffix("PendingDnsRegistration"))
        .unwrap_or(state_text);
    let state = match stem {
        "Active" | "Offered" | "ActivePending" => LeaseState::Active,
        "Expired" => LeaseState::Expired,
        "Declined" => LeaseState::Abandoned,
        "ActiveReservation" | "InactiveReservation" => LeaseState::Reserved,
        other => {
            return Err(format!(
                "AddressState {other:?} is not one Windows documents"
            ));
        }
    };
    let (hardware, client_id) = identity(node)?;
    let mut l = Lease::new(address, state);
    l.hardware = hardware;
    l.client_id = client_id;
    l.hostname = text(node, "HostName").map(str::to_string);
    if let Some(t) = text(node, "LeaseExpiryTime") {
        let (at, zoned) = datetime(t, zone).ok_or_else(|| {
            format!("LeaseExpiryTime {t:?} is not a date and time (YYYY-MM-DDTHH:MM:SS)")
        })?;
        *assumed_local |= !zoned;
        l.expires = Some(at);
    }
    Ok(l)
}

fn reservation_of(node: Node<'_, '_>) -> Result<Lease, String> {
    let address = address(node)?;
    let (hardware, client_id) = identity(node)?;
    let mut l = Lease::new(address, LeaseState::Reserved);
    l.hardware = hardware;
    l.client_id = client_id;
    l.hostname = text(node, "Name").map(str::to_string);
    Ok(l)
}

/// An `xs:dateTime` as UNIX time (read in `zone` if it names none), and whether it named its
/// zone.
fn datetime(text: &str, zone: &LocalZone) -> Option<(Time, bool)> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let local =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + sec.min(60);
    let (offset, zoned): (i64, bool) = match rest {
        "" => {
            let at = zone.to_unix(year, month, day, hour, minute, sec.min(59))?;
            return Some((u64::try_from(at).ok()?, false));
        }
        "Z" => (0, true),
        z if z.len() == 6 && matches!(z.as_bytes()[0], b'+' | b'-') && z.as_bytes()[3] == b':' => {
            let zb = z.as_bytes();
            let two = |at: usize| -> Option<i64> {
                let d = zb.get(at..at + 2)?;
                d.iter()
                    .all(u8::is_ascii_digit)
                    .then(|| i64::from(d[0] - b'0') * 10 + i64::from(d[1] - b'0'))
            };
            let sign = if zb[0] == b'-' { -1 } else { 1 };
            (sign * (two(1)? * 3600 + two(4)? * 60), true)
        }
        _ => return None,
    };
    // Local time minus its offset from UTC.
    let utc = i64::try_from(local).ok()?.checked_sub(offset)?;
    Some((u64::try_from(utc).ok()?, zoned))
}

#[cfg(test)]
mod tests {
    use super::datetime;
    use crate::LocalZone;

    #[test]
    fn datetimes() {
        let utc = LocalZone::default();
        assert_eq!(datetime("1970-01-01T00:00:00", &utc), Some((0, false)));
        assert_eq!(datetime("1970-01-01T01:00:00+01:00", &utc), Some((0, true)));
        assert_eq!(
            datetime("2026-11-19T10:00:00.1234567Z", &utc),
            Some((1_795_082_400, true))
        );
        assert_eq!(datetime("2026-11-19 10:00:00", &utc), None);
        assert_eq!(datetime("2026-11-19T10:00:00+0100", &utc), None);
        assert_eq!(datetime("2026-02-30T10:00:00", &utc), None);
        // Without a zone, in the operator's: CET in November, CEST in July.
        let berlin: LocalZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            datetime("2026-11-19T11:00:00", &berlin),
            Some((1_795_082_400, false))
        );
        assert_eq!(
            datetime("2026-07-01T12:00:00", &berlin),
            datetime("2026-07-01T10:00:00Z", &utc).map(|(t, _)| (t, false))
        );
        let fixed: LocalZone = "-05:30".parse().unwrap();
        assert_eq!(
            datetime("2026-11-19T04:30:00", &fixed),
            Some((1_795_082_400, false))
        );
    }
}
