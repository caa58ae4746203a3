//! JSON export, for scripts: one array of lease objects, one object per line.
//!
//! ```json
//! [
//! {"address":"10.0.0.10","scope":"lan","state":"active","hwaddr":"02:00:00:00:00:01","htype":1,"client_id":null,"expires":1795082400,"cltt":1795078800,"valid_lifetime":3600,"hostname":null,"partner_sent":0,"partner_acked":0}
//! ]
//! ```
//!
//! Times are UNIX seconds (failover times 0 when never sent); `expires` is `null` for a lease
//! that never ends; `htype` is the hardware type of `hwaddr`; `hwaddr` and
//! `client_id` are colon-separated hex (`client_id` is `null` when the client sent none, or
//! when Peregrine keeps only a digest of it).

use std::io::{self, Write};

use serde::Serialize;

use crate::lease::{Lease, hex_colon};

#[derive(Serialize)]
struct Row<'a> {
    address: String,
    scope: &'a str,
    state: &'static str,
    hwaddr: Option<String>,
    htype: Option<u8>,
    client_id: Option<String>,
    expires: Option<u64>,
    cltt: Option<u64>,
    valid_lifetime: Option<u32>,
    hostname: Option<&'a str>,
    partner_sent: Option<u64>,
    partner_acked: Option<u64>,
}

/// Writes `leases`, each with the name of its scope, as a JSON array.
pub fn write<'a>(
    out: &mut impl Write,
    leases: impl IntoIterator<Item = (&'a str, &'a Lease)>,
) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, (scope, l)) in leases.into_iter().enumerate() {
        let row = Row {
            address: l.address.to_string(),
            scope,
            state: l.state.as_str(),
            hwaddr: l.hardware.as_ref().map(|h| hex_colon(&h.bytes)),
            htype: l.hardware.as_ref().map(|h| h.htype),
            client_id: l.client_id.as_deref().map(hex_colon),
            expires: l.expires,
            cltt: l.cltt,
            valid_lifetime: l.valid_lifetime,
            hostname: l.hostname.as_deref(),
            partner_sent: l.partner_sent,
            partner_acked: l.partner_acked,
        };
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, &row)?;
    }
    out.write_all(b"\n]\n")
}
