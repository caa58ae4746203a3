//! Kea's memfile lease file for DHCPv4 (`kea-leases4.csv`): import and export.
//!
//! The file is a log: a header line naming the columns, then one row per lease change, the
//! last row of an address being the lease (a row with valid lifetime 0 deletes it). Kea 2.2
//! writes the columns [`HEADER`]; later versions add `pool_id`. Import reads the columns by
//! their names, so any of these versions (and older ones without `user_context`) load.
//! Values never contain commas: Kea writes a comma inside a value as `&#x2c`.
//!
//! `hwaddr` carries no hardware type in this format; Kea means Ethernet (1), and so does
//! this module. `state` is 0 (assigned), 1 (declined), 2 (expired and reclaimed) or, since
//! Kea 2.7, 3 (released). Export writes exactly [`HEADER`] so that Kea 2.2 and later load
//! the file, and so never writes state 3 (see [`write`]). What Kea's columns cannot hold
//! (exact client last transaction time and granted lease length, released and reserved
//! states, failover times, client classes) goes in `user_context` under `"peregrine"`,
//! which Kea keeps and ignores and [`import`] reads back: a file Peregrine wrote imports
//! into identical bindings.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Ipv4Addr;

use crate::lease::{HwAddr, Import, Lease, LeaseState, hex_colon, parse_hex_bytes};

/// The header Kea 2.2 writes and requires, and the columns [`write`] produces.
pub const HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";

/// Columns an import cannot do without.
const REQUIRED: [&str; 5] = ["address", "hwaddr", "client_id", "valid_lifetime", "expire"];

/// Kea's "infinite" valid lifetime.
const INFINITE: u32 = u32::MAX;

/// Reads a Kea memfile DHCPv4 lease file. Never fails: a file without a usable header gives
/// no records and one skipped entry saying why; every bad row is skipped with its line.
pub fn import(text: &str) -> Import {
    let mut out = Import::default();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let Some((header_line, header)) = lines.find(|(_, l)| !l.trim().is_empty()) else {
        out.skip(1, "empty file: no Kea CSV header");
        return out;
    };
    let names: Vec<&str> = header.trim().split(',').map(str::trim).collect();
    let column: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| !column.contains_key(c))
        .collect();
    if !missing.is_empty() {
        out.skip(
            header_line,
            format!(
                "not a Kea DHCPv4 lease file header (missing column {}); expected {HEADER}",
                missing.join(", ")
            ),
        );
        return out;
    }
    for (line, row) in lines {
        let row = row.trim_end_matches('\r');
        if row.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split(',').collect();
        if fields.len() != names.len() {
            out.skip(
                line,
                format!(
                    "{} fields where the header names {} columns",
                    fields.len(),
                    names.len()
                ),
            );
            continue;
        }
        let get = |name: &str| column.get(name).map(|&i| fields[i].trim());
        match row_lease(&get) {
            Ok(lease) => out.push(line, lease),
            Err(reason) => out.skip(line, reason),
        }
    }
    out.finish()
}

/// One row's lease, or why it is not one.
fn row_lease<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Lease, String> {
    let field = |name: &str| get(name).unwrap_or("");
    let address: Ipv4Addr = field("address")
        .parse()
        .map_err(|_| format!("address {:?} is not an IPv4 address", field("address")))?;
    let hw = parse_hex_bytes(field("hwaddr"), ':')
        .filter(|b| b.len() <= 16)
        .ok_or_else(|| format!("hwaddr {:?} is not colon-separated hex", field("hwaddr")))?;
    let client_id = parse_hex_bytes(field("client_id"), ':').ok_or_else(|| {
        format!(
            "client_id {:?} is not colon-separated hex",
            field("client_id")
        )
    })?;
    let valid: u32 = field("valid_lifetime").parse().map_err(|_| {
        format!(
            "valid_lifetime {:?} is not a number of seconds",
            field("valid_lifetime")
        )
    })?;
    let expire: u64 = field("expire")
        .parse()
        .map_err(|_| format!("expire {:?} is not a UNIX time", field("expire")))?;
    let state = match get("state").unwrap_or("0") {
        _ if valid == 0 => LeaseState::Free,
        "0" | "" => LeaseState::Active,
        "1" => LeaseState::Abandoned,
        "2" => LeaseState::Expired,
        "3" => LeaseState::Released,
        other => return Err(format!("state {other:?} is not a Kea lease state (0 to 3)")),
    };
    let subnet_id = match get("subnet_id").unwrap_or("") {
        "" => None,
        s => Some(
            s.parse()
                .map_err(|_| format!("subnet_id {s:?} is not a number"))?,
        ),
    };
    let hostname = unescape(get("hostname").unwrap_or(""));
    let context = unescape(get("user_context").unwrap_or(""));
    let mut lease = Lease::new(address, state);
    lease.hardware = (!hw.is_empty()).then_some(HwAddr {
        htype: 1,
        bytes: hw,
    });
    lease.client_id = (!client_id.is_empty()).then_some(client_id);
    if valid != INFINITE {
        lease.expires = Some(expire);
        lease.cltt = Some(expire.saturating_sub(u64::from(valid)));
    }
    lease.valid_lifetime = Some(valid);
    lease.subnet_id = subnet_id;
    lease.hostname = (!hostname.is_empty()).then_some(hostname);
    if !context.is_empty() {
        let ours = serde_json::from_str::<serde_json::Value>(&context)
            .map_err(|e| format!("user_context is not JSON: {e}"))?;
        if let Some(p) = ours.get(CONTEXT_KEY) {
            apply_context(&mut lease, p);
        }
    }
    Ok(lease)
}

/// The key of the `user_context` member that carries what Kea's columns cannot: written by
/// [`write`], read back by [`import`], kept and ignored by Kea.
const CONTEXT_KEY: &str = "peregrine";

/// What Peregrine put in `user_context`: exact times, state and classes.
fn apply_context(lease: &mut Lease, p: &serde_json::Value) {
    let num = |k: &str| p.get(k).and_then(serde_json::Value::as_u64);
    if let Some(c) = num("cltt") {
        lease.cltt = Some(c);
    }
    if let Some(g) = num("granted").and_then(|g| u32::try_from(g).ok()) {
        lease.valid_lifetime = Some(g);
    }
    lease.partner_sent = num("partner_sent").or(lease.partner_sent);
    lease.partner_acked = num("partner_acked").or(lease.partner_acked);
    lease.classes = num("classes").and_then(|c| u32::try_from(c).ok());
    match p.get("state").and_then(serde_json::Value::as_str) {
        Some("released") if lease.state == LeaseState::Expired => {
            lease.state = LeaseState::Released;
        }
        Some("reserved") if lease.state == LeaseState::Active => {
            lease.state = LeaseState::Reserved;
        }
        _ => {}
    }
}

/// The `user_context` Peregrine writes.
fn context_of(l: &Lease) -> String {
    let mut p = serde_json::Map::new();
    let mut put = |k: &str, v: Option<u64>| {
        if let Some(v) = v {
            p.insert(k.into(), v.into());
        }
    };
    put("cltt", l.cltt);
    put("granted", l.valid_lifetime.map(u64::from));
    put("partner_sent", l.partner_sent.filter(|t| *t != 0));
    put("partner_acked", l.partner_acked.filter(|t| *t != 0));
    put("classes", l.classes.filter(|c| *c != 0).map(u64::from));
    if matches!(l.state, LeaseState::Released | LeaseState::Reserved) {
        p.insert("state".into(), l.state.as_str().into());
    }
    let mut outer = serde_json::Map::new();
    outer.insert(CONTEXT_KEY.into(), p.into());
    serde_json::Value::from(outer).to_string()
}

/// Kea's escaping: `&#xHH` stands for the byte HH (a comma, mostly).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'&'
            && b.get(i + 1..i + 3) == Some(b"#x")
            && let Some(v) = b
                .get(i + 3..i + 5)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 5;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes what may not appear inside a Kea CSV value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' => out.push_str("&#x2c"),
            '&' => out.push_str("&#x26"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Writes `leases` as a Kea 2.2 memfile DHCPv4 lease file: [`HEADER`], then one row each.
///
/// Kea 2.2 has no "released" state: released leases are written as expired and reclaimed
/// (2), which is also how Kea 2.2 itself keeps a released lease's affinity. Free, backup and
/// reset leases are not leases to Kea and are not written; they are returned, so the caller
/// can say so. `subnet_id` is written as the lease says (0 if unknown): Kea checks it
/// against its configuration on load (`lease-checks`).
pub fn write<'a>(
    out: &mut impl Write,
    leases: impl IntoIterator<Item = &'a Lease>,
) -> io::Result<Vec<&'a Lease>> {
    writeln!(out, "{HEADER}")?;
    let mut not_written = Vec::new();
    for l in leases {
        let state = match l.state {
            LeaseState::Active | LeaseState::Reserved => 0,
            LeaseState::Abandoned => 1,
            LeaseState::Expired | LeaseState::Released => 2,
            LeaseState::Free | LeaseState::Backup | LeaseState::Reset => {
                not_written.push(l);
                continue;
            }
        };
        let hw = l
            .hardware
            .as_ref()
            .map_or(String::new(), |h| hex_colon(&h.bytes));
        let cid = l.client_id.as_deref().map_or(String::new(), hex_colon);
        // Kea derives cltt as expire - valid_lifetime; the exact values go in user_context.
        let (valid, expire) = match l.expires {
            None => (
                INFINITE,
                l.cltt.unwrap_or(0).saturating_add(u64::from(INFINITE)),
            ),
            Some(e) => {
                let valid =
                    u32::try_from(e.saturating_sub(l.cltt.unwrap_or(e))).unwrap_or(INFINITE - 1);
                // 0 would mean "deleted" to Kea.
                (valid.max(1), e)
            }
        };
        writeln!(
            out,
            "{},{hw},{cid},{valid},{expire},{},0,0,{},{state},{}",
            l.address,
            l.subnet_id.unwrap_or(0),
            escape(l.hostname.as_deref().unwrap_or("")),
            escape(&context_of(l)),
        )?;
    }
    Ok(not_written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_roundtrips() {
        assert_eq!(unescape(&escape("a,b&c")), "a,b&c");
        assert_eq!(unescape("x&#x2cy&#xzz"), "x,y&#xzz");
    }
}
