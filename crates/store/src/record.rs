//! The journal's byte layout.
//!
//! A journal file, a sealed journal segment and a snapshot all have the same layout: a
//! [`HEADER_LEN`]-byte header followed by records:
//!
//! ```text
//! header:  magic "PGRJRNL\0" | version u16 | reserved u16 (0) | created-at u64 (UNIX s) | CRC32 u32 of the 20 bytes before
//! record:  length u32 | CRC32 u32 of the payload | payload
//! ```
//!
//! Every integer is little-endian. A version 3 payload is one [`BindingEvent`] in
//! [`PAYLOAD_LEN`] bytes:
//!
//! ```text
//! scope u16 | address u32 | state u8 (BindingState in declaration order, Free = 0 … Backup = 8, HeldBack = 9)
//! | client key kind u8 (0xff: no client) | key length u8 | key bytes, 30, zero-padded
//! | mac 6 | expires u64 | cltt u64 | granted u32 | partner_sent u64 | partner_acked u64 | classes u32
//! | binding version u32 | client options length u8 | client options, 128, zero-padded
//! ```
//!
//! The client options are the binding's [`ClientInfo`] (DHCP options: code, length, data).
//! Version 2 ended before them ([`VERSION_2`], 89-byte payloads); this build still reads it,
//! and recovery seals a version 2 journal so that new records go to a version 3 one. Version 1
//! lacked the binding version (the per-address change counter that orders changes which
//! reached the journal through different worker queues); it was never released.
//!
//! so every record has the same size ([`RECORD_LEN`]): recovery can step over a damaged
//! record to see whether intact ones follow it, which is what tells a write cut short by a
//! crash from damage.
//!
//! Encoding writes into a caller's fixed-size array and never allocates: the journal writer
//! encodes each batch straight into its write buffer.

use std::fmt;
use std::net::Ipv4Addr;

use peregrine_engine::{
    Binding, BindingEvent, BindingState, CLIENT_INFO_ROOM, ClientInfo, ClientKey, ScopeId,
};

/// The first bytes of every journal file.
pub const MAGIC: [u8; 8] = *b"PGRJRNL\0";
/// The format this build writes.
pub const VERSION: u16 = 3;
/// The format before client options were kept, which this build reads too.
pub const VERSION_2: u16 = 2;
/// Bytes of the file header.
pub const HEADER_LEN: usize = 24;
/// Bytes of one version 2 payload.
const PAYLOAD_LEN_2: usize = 89;
/// Bytes of one version 3 payload (one binding change).
pub const PAYLOAD_LEN: usize = PAYLOAD_LEN_2 + 1 + CLIENT_INFO_ROOM;
/// Bytes of one record: length, CRC, payload.
pub const RECORD_LEN: usize = 8 + PAYLOAD_LEN;

/// Bytes of one record of a file of format `version` (one [`decode_header`] accepted).
pub const fn record_len(version: u16) -> usize {
    if version == VERSION_2 {
        8 + PAYLOAD_LEN_2
    } else {
        RECORD_LEN
    }
}

/// Client key kind written when the binding has no client.
const NO_CLIENT: u8 = 0xff;
/// Room for the client key's bytes (the engine keeps at most 30 inline).
const KEY_ROOM: usize = 30;

// Payload field offsets, in the order of the format description.
const SCOPE: usize = 0; // u16
const ADDRESS: usize = 2; // u32
const STATE: usize = 6; // u8
const KEY_KIND: usize = 7; // u8
const KEY_LEN: usize = 8; // u8
const KEY: usize = 9; // KEY_ROOM bytes, zero-padded
const MAC: usize = KEY + KEY_ROOM; // 6 bytes
const EXPIRES: usize = MAC + 6; // u64
const CLTT: usize = EXPIRES + 8; // u64
const GRANTED: usize = CLTT + 8; // u32
const PARTNER_SENT: usize = GRANTED + 4; // u64
const PARTNER_ACKED: usize = PARTNER_SENT + 8; // u64
const CLASSES: usize = PARTNER_ACKED + 8; // u32
const BINDING_VERSION: usize = CLASSES + 4; // u32
const INFO_LEN: usize = BINDING_VERSION + 4; // u8
const INFO: usize = INFO_LEN + 1; // CLIENT_INFO_ROOM bytes, zero-padded
const _: () = assert!(INFO_LEN == PAYLOAD_LEN_2);
const _: () = assert!(INFO + CLIENT_INFO_ROOM == PAYLOAD_LEN);

/// What a journal file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Format version: [`VERSION`], or [`VERSION_2`] (read, never written).
    pub version: u16,
    /// When the file was started, in seconds since the UNIX epoch.
    pub created: u64,
}

/// Why bytes are not a valid header or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// The file is shorter than a header.
    ShortHeader,
    /// The file does not start with [`MAGIC`].
    Magic,
    /// The header names a format version this build does not read.
    Version(u16),
    /// The header's checksum does not match its bytes.
    HeaderChecksum,
    /// A record's length field is not [`PAYLOAD_LEN`].
    Length(u32),
    /// A record's checksum does not match its payload.
    Checksum,
    /// The file ends inside a record.
    Truncated,
    /// A payload names a binding state this build does not know.
    State(u8),
    /// A payload's client key has a kind or length the engine never produces.
    ClientKey {
        /// The kind code.
        kind: u8,
        /// The length byte.
        len: u8,
    },
    /// A payload's client options are not a well-formed list of options.
    ClientInfo,
}

impl FormatError {
    /// Whether the error is in a record's framing (length or checksum): what a write cut short
    /// by a crash leaves, as opposed to a record that arrived whole but cannot be understood.
    pub fn is_framing(self) -> bool {
        matches!(
            self,
            FormatError::Length(_) | FormatError::Checksum | FormatError::Truncated
        )
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::ShortHeader => f.write_str("file shorter than a journal header"),
            FormatError::Magic => f.write_str("not a Peregrine journal (bad magic bytes)"),
            FormatError::Version(v) => write!(
                f,
                "journal format version {v}, but this build reads only versions {VERSION_2} \
                 and {VERSION} (written by a newer Peregrine?)"
            ),
            FormatError::HeaderChecksum => f.write_str("header checksum does not match"),
            FormatError::Length(n) => write!(
                f,
                "record length {n} is impossible (version {VERSION} records carry {PAYLOAD_LEN} \
                 bytes, version {VERSION_2} {PAYLOAD_LEN_2})"
            ),
            FormatError::Checksum => f.write_str("record checksum does not match"),
            FormatError::Truncated => f.write_str("the file ends inside a record"),
            FormatError::State(s) => write!(f, "record names unknown binding state {s}"),
            FormatError::ClientKey { kind, len } => write!(
                f,
                "record holds a client key of kind {kind} and length {len}, which no Peregrine writes"
            ),
            FormatError::ClientInfo => {
                f.write_str("record holds client options that are not a list of options")
            }
        }
    }
}

impl std::error::Error for FormatError {}

/// The header of a journal started at `created` (seconds since the UNIX epoch).
pub fn encode_header(created: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&created.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads a file header from the first bytes of a journal.
pub fn decode_header(bytes: &[u8]) -> Result<FileHeader, FormatError> {
    let h: &[u8; HEADER_LEN] =
        bytes
            .first_chunk()
            .ok_or(if bytes.starts_with(&MAGIC) || MAGIC.starts_with(bytes) {
                FormatError::ShortHeader
            } else {
                FormatError::Magic
            })?;
    if h[..8] != MAGIC {
        return Err(FormatError::Magic);
    }
    // The version is checked before the checksum: a later version may lay out the rest of its
    // header differently, and "unknown version" is what the operator needs to hear.
    let version = u16::from_le_bytes(le(h, 8));
    if version != VERSION && version != VERSION_2 {
        return Err(FormatError::Version(version));
    }
    if crc32fast::hash(&h[..20]) != u32::from_le_bytes(le(h, 20)) {
        return Err(FormatError::HeaderChecksum);
    }
    Ok(FileHeader {
        version,
        created: u64::from_le_bytes(le(h, 12)),
    })
}

/// Encodes `event` as one whole record (length, CRC, payload) into `out`.
pub fn encode(event: &BindingEvent, out: &mut [u8; RECORD_LEN]) {
    let b = &event.binding;
    let p = &mut out[8..];
    // Padding after a short client key must be zero, so equal events give equal bytes.
    p.fill(0);
    p[SCOPE..SCOPE + 2].copy_from_slice(&event.scope.0.to_le_bytes());
    p[ADDRESS..ADDRESS + 4].copy_from_slice(&event.address.to_bits().to_le_bytes());
    p[STATE] = b.state as u8;
    match &b.client {
        None => p[KEY_KIND] = NO_CLIENT,
        Some(key) => {
            let (kind, bytes) = key.to_raw();
            // The engine keeps at most KEY_ROOM bytes inline (longer identities are digested);
            // `min` only keeps a broken invariant from panicking the journal writer.
            debug_assert!(bytes.len() <= KEY_ROOM);
            let len = bytes.len().min(KEY_ROOM);
            p[KEY_KIND] = kind;
            p[KEY_LEN] = len as u8;
            p[KEY..KEY + len].copy_from_slice(&bytes[..len]);
        }
    }
    p[MAC..MAC + 6].copy_from_slice(&b.mac);
    p[EXPIRES..EXPIRES + 8].copy_from_slice(&b.expires.to_le_bytes());
    p[CLTT..CLTT + 8].copy_from_slice(&b.cltt.to_le_bytes());
    p[GRANTED..GRANTED + 4].copy_from_slice(&b.granted.to_le_bytes());
    p[PARTNER_SENT..PARTNER_SENT + 8].copy_from_slice(&b.partner_sent.to_le_bytes());
    p[PARTNER_ACKED..PARTNER_ACKED + 8].copy_from_slice(&b.partner_acked.to_le_bytes());
    p[CLASSES..CLASSES + 4].copy_from_slice(&b.classes.to_le_bytes());
    p[BINDING_VERSION..BINDING_VERSION + 4].copy_from_slice(&b.version.to_le_bytes());
    // At most CLIENT_INFO_ROOM bytes, which fits the length byte.
    let info = b.info.as_bytes();
    p[INFO_LEN] = u8::try_from(info.len()).unwrap_or(u8::MAX);
    p[INFO..INFO + info.len()].copy_from_slice(info);
    let crc = crc32fast::hash(&out[8..]);
    out[..4].copy_from_slice(&(PAYLOAD_LEN as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Checks one record's length and CRC and decodes its payload.
///
/// Framing errors ([`FormatError::is_framing`]) are reported before anything in the payload
/// is looked at; a payload that passes its CRC but names an unknown state or client key kind
/// is refused, never mapped to something else.
pub fn decode(record: &[u8; RECORD_LEN]) -> Result<BindingEvent, FormatError> {
    decode_version(VERSION, record)
}

/// [`decode`] for a record of a file of format `version`: `record` holds
/// [`record_len`]`(version)` bytes.
pub fn decode_version(version: u16, record: &[u8]) -> Result<BindingEvent, FormatError> {
    if record.len() != record_len(version) {
        return Err(FormatError::Length(
            u32::try_from(record.len().saturating_sub(8)).unwrap_or(u32::MAX),
        ));
    }
    let len = u32::from_le_bytes(le(record, 0));
    if len as usize != record_len(version) - 8 {
        return Err(FormatError::Length(len));
    }
    let p = &record[8..];
    if crc32fast::hash(p) != u32::from_le_bytes(le(record, 4)) {
        return Err(FormatError::Checksum);
    }
    let state = match p[STATE] {
        0 => BindingState::Free,
        1 => BindingState::Offered,
        2 => BindingState::Active,
        3 => BindingState::Expired,
        4 => BindingState::Released,
        5 => BindingState::Abandoned,
        6 => BindingState::Reserved,
        7 => BindingState::Reset,
        8 => BindingState::Backup,
        9 => BindingState::HeldBack,
        other => return Err(FormatError::State(other)),
    };
    let client = match (p[KEY_KIND], p[KEY_LEN]) {
        (NO_CLIENT, _) => None,
        (kind, len) => {
            let n = usize::from(len);
            let key = (n <= KEY_ROOM)
                .then(|| ClientKey::from_raw(kind, &p[KEY..KEY + n]))
                .flatten();
            Some(key.ok_or(FormatError::ClientKey { kind, len })?)
        }
    };
    Ok(BindingEvent {
        scope: ScopeId(u16::from_le_bytes(le(p, SCOPE))),
        address: Ipv4Addr::from_bits(u32::from_le_bytes(le(p, ADDRESS))),
        binding: Binding {
            client,
            mac: le(p, MAC),
            state,
            expires: u64::from_le_bytes(le(p, EXPIRES)),
            cltt: u64::from_le_bytes(le(p, CLTT)),
            granted: u32::from_le_bytes(le(p, GRANTED)),
            partner_sent: u64::from_le_bytes(le(p, PARTNER_SENT)),
            partner_acked: u64::from_le_bytes(le(p, PARTNER_ACKED)),
            classes: u32::from_le_bytes(le(p, CLASSES)),
            version: u32::from_le_bytes(le(p, BINDING_VERSION)),
            info: if version == VERSION_2 {
                ClientInfo::EMPTY
            } else {
                let n = usize::from(p[INFO_LEN]);
                p.get(INFO..INFO + n)
                    .filter(|_| n <= CLIENT_INFO_ROOM)
                    .and_then(ClientInfo::from_options)
                    .ok_or(FormatError::ClientInfo)?
            },
        },
    })
}

/// The `N` bytes of `bytes` at `at`. Every call site passes constant offsets inside a record
/// whose length was checked, so the slice is always in bounds.
fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_roundtrips_and_damage_is_named() {
        let h = encode_header(1_800_000_000);
        assert_eq!(
            decode_header(&h),
            Ok(FileHeader {
                version: VERSION,
                created: 1_800_000_000
            })
        );
        assert_eq!(decode_header(&h[..10]), Err(FormatError::ShortHeader));
        assert_eq!(decode_header(b""), Err(FormatError::ShortHeader));
        assert_eq!(decode_header(b"hello"), Err(FormatError::Magic));
        let mut v1 = h;
        v1[8] = 1;
        assert_eq!(decode_header(&v1), Err(FormatError::Version(1)));
        let mut flipped = h;
        flipped[13] ^= 1;
        assert_eq!(decode_header(&flipped), Err(FormatError::HeaderChecksum));
    }
}
