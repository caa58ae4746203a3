//! The journal's byte layout: a file header, then records `length | CRC32 | payload`, each
//! payload one binding change in a fixed little-endian encoding.

use std::net::Ipv4Addr;

use peregrine_engine::{Binding, BindingEvent, BindingState, ClientKey, ScopeId};

/// Opens every journal file: magic and format version.
pub const HEADER: [u8; 8] = *b"PGRJ\x01\x00\x00\x00";
/// Bytes of one encoded binding change.
pub const PAYLOAD_LEN: usize = 85;
/// Bytes of one record: length, CRC, payload.
pub const RECORD_LEN: usize = 8 + PAYLOAD_LEN;
const NO_CLIENT: u8 = 0xff;
const KEY_BYTES: usize = 30;

const STATES: [BindingState; 9] = [
    BindingState::Free,
    BindingState::Offered,
    BindingState::Active,
    BindingState::Expired,
    BindingState::Released,
    BindingState::Abandoned,
    BindingState::Reserved,
    BindingState::Reset,
    BindingState::Backup,
];

/// Encodes `event` as a whole record into `out`.
pub fn encode(event: &BindingEvent, out: &mut [u8; RECORD_LEN]) {
    let b = &event.binding;
    let p = &mut out[8..];
    p[0..2].copy_from_slice(&event.scope.0.to_le_bytes());
    p[2..6].copy_from_slice(&event.address.octets());
    p[6] = STATES.iter().position(|s| *s == b.state).unwrap_or(0) as u8;
    p[7..10 + KEY_BYTES].fill(0);
    match &b.client {
        None => p[7] = NO_CLIENT,
        Some(k) => {
            let (kind, bytes) = k.to_raw();
            p[7] = kind;
            p[8] = bytes.len() as u8;
            p[9..9 + bytes.len()].copy_from_slice(bytes);
        }
    }
    let mut at = 9 + KEY_BYTES;
    for field in [
        &b.mac[..],
        &b.expires.to_le_bytes(),
        &b.cltt.to_le_bytes(),
        &b.granted.to_le_bytes(),
    ] {
        p[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    for field in [
        &b.partner_sent.to_le_bytes()[..],
        &b.partner_acked.to_le_bytes(),
        &b.classes.to_le_bytes(),
    ] {
        p[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    debug_assert_eq!(at, PAYLOAD_LEN);
    let crc = crc32fast::hash(&out[8..]);
    out[0..4].copy_from_slice(&(PAYLOAD_LEN as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes([
        p[at],
        p[at + 1],
        p[at + 2],
        p[at + 3],
        p[at + 4],
        p[at + 5],
        p[at + 6],
        p[at + 7],
    ])
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// Decodes one payload of [`PAYLOAD_LEN`] bytes, or says why it cannot be one.
pub fn decode(p: &[u8]) -> Result<BindingEvent, &'static str> {
    if p.len() != PAYLOAD_LEN {
        return Err("payload of the wrong length");
    }
    let state = *STATES
        .get(usize::from(p[6]))
        .ok_or("unknown binding state")?;
    let client = match p[7] {
        NO_CLIENT => None,
        kind => {
            let len = usize::from(p[8]).min(KEY_BYTES);
            Some(
                ClientKey::from_raw(kind, &p[9..9 + len])
                    .ok_or("unknown client key kind or length")?,
            )
        }
    };
    let at = 9 + KEY_BYTES;
    let binding = Binding {
        client,
        mac: [p[at], p[at + 1], p[at + 2], p[at + 3], p[at + 4], p[at + 5]],
        state,
        expires: u64_at(p, at + 6),
        cltt: u64_at(p, at + 14),
        granted: u32_at(p, at + 22),
        partner_sent: u64_at(p, at + 26),
        partner_acked: u64_at(p, at + 34),
        classes: u32_at(p, at + 42),
    };
    Ok(BindingEvent {
        scope: ScopeId(u16::from_le_bytes([p[0], p[1]])),
        address: Ipv4Addr::new(p[2], p[3], p[4], p[5]),
        binding,
    })
}
