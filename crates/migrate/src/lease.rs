//! The neutral lease record every importer produces and every exporter consumes, with where
//! it came from and what was left out.

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

/// Seconds since the UNIX epoch.
pub type Time = u64;

/// The time zone in which a lease file's times that name none are read (a Windows export's
/// `LeaseExpiryTime` is the server's local time): UTC unless the operator names another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl Default for LocalZone {
    fn default() -> LocalZone {
        LocalZone {
            name: "UTC".into(),
            zone: jiff::tz::TimeZone::UTC,
        }
    }
}

impl std::str::FromStr for LocalZone {
    type Err = String;

    /// `UTC`, a fixed offset (`+02:00`, `-05:30`), or an IANA name (`Europe/Berlin`) from the
    /// system's time zone database.
    fn from_str(name: &str) -> Result<LocalZone, String> {
        let name = name.trim();
        let zone = if name.eq_ignore_ascii_case("utc") || name == "Z" {
            jiff::tz::TimeZone::UTC
        } else if let Some(seconds) = fixed_offset(name) {
            let offset = jiff::tz::Offset::from_seconds(seconds)
                .map_err(|e| format!("time zone offset {name:?}: {e}"))?;
            jiff::tz::TimeZone::fixed(offset)
        } else {
            jiff::tz::TimeZone::get(name).map_err(|e| {
                format!(
                    "unknown time zone {name:?} ({e}); give an IANA name such as \
                     Europe/Berlin, UTC, or an offset such as +02:00"
                )
            })?
        };
        Ok(LocalZone {
            name: name.to_owned(),
            zone,
        })
    }
}

impl LocalZone {
    /// The zone as the operator named it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UNIX time of a civil date and time in this zone (the earlier instant where a clock
    /// change repeats an hour); `None` for a date that does not exist.
    pub(crate) fn to_unix(
        &self,
        year: u64,
        month: u64,
        day: u64,
        hour: u64,
        minute: u64,
        second: u64,
    ) -> Option<i64> {
        let civil = jiff::civil::DateTime::new(
            i16::try_from(year).ok()?,
            i8::try_from(month).ok()?,
            i8::try_from(day).ok()?,
            i8::try_from(hour).ok()?,
            i8::try_from(minute).ok()?,
            i8::try_from(second).ok()?,
            0,
        )
        .ok()?;
        let zoned = civil.to_zoned(self.zone.clone()).ok()?;
        Some(zoned.timestamp().as_second())
    }
}

/// `+HH:MM` or `-HH:MM` as seconds east of UTC.
fn fixed_offset(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = text[1..].split_once(':')?;
    let h: i32 = h.parse().ok().filter(|_| h.len() == 2)?;
    let m: i32 = m.parse().ok().filter(|_| m.len() == 2)?;
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

/// A hardware address: the BOOTP `htype` and the address bytes (at most 16, as `chaddr`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HwAddr {
    /// Hardware type (1 for Ethernet).
    pub htype: u8,
    /// The address bytes.
    pub bytes: Vec<u8>,
}

impl HwAddr {
    /// An Ethernet address.
    pub fn ethernet(mac: [u8; 6]) -> HwAddr {
        HwAddr {
            htype: 1,
            bytes: mac.to_vec(),
        }
    }
}

/// What a lease file says about an address, in the words every format can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Available; nothing is bound (imported as nothing).
    Free,
    /// Leased to the client.
    Active,
    /// The lease ran out; the client keeps affinity.
    Expired,
    /// The client released the address.
    Released,
    /// Declined or otherwise out of service.
    Abandoned,
    /// Reserved for the client.
    Reserved,
    /// Owned by a failover partner (ISC `backup`).
    Backup,
    /// Freed by the operator (ISC `reset`).
    Reset,
}

impl LeaseState {
    /// The lower-case name used in messages and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            LeaseState::Free => "free",
            LeaseState::Active => "active",
            LeaseState::Expired => "expired",
            LeaseState::Released => "released",
            LeaseState::Abandoned => "abandoned",
            LeaseState::Reserved => "reserved",
            LeaseState::Backup => "backup",
            LeaseState::Reset => "reset",
        }
    }
}

/// One lease as read from, or written to, another server's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub address: Ipv4Addr,
    /// The client's hardware address, if the format keeps it.
    pub hardware: Option<HwAddr>,
    /// The client identifier (option 61 data, type byte included), if the client sent one.
    pub client_id: Option<Vec<u8>>,
    /// State.
    pub state: LeaseState,
    /// Client last transaction time (or the lease's start).
    pub cltt: Option<Time>,
    /// End of the lease; `None` for a lease that never ends.
    pub expires: Option<Time>,
    /// Lease length granted, in seconds.
    pub valid_lifetime: Option<u32>,
    /// The source server's subnet identifier (Kea `subnet_id`), for reference only: the
    /// scope is always found from the address.
    pub subnet_id: Option<u32>,
    /// The client's host name.
    pub hostname: Option<String>,
    /// Failover: potential expiration time sent to the partner (ISC `tstp`).
    pub partner_sent: Option<Time>,
    /// Failover: potential expiration time the partner acknowledged (ISC `tsfp`, or `atsfp`).
    pub partner_acked: Option<Time>,
    /// Peregrine's client class bits, in files Peregrine wrote (classes are re-evaluated at
    /// the client's next renewal otherwise).
    pub classes: Option<u32>,
}

impl Lease {
    /// A lease of `address` in `state` with nothing else known.
    pub fn new(address: Ipv4Addr, state: LeaseState) -> Lease {
        Lease {
            address,
            hardware: None,
            client_id: None,
            state,
            cltt: None,
            expires: None,
            valid_lifetime: None,
            subnet_id: None,
            hostname: None,
            partner_sent: None,
            partner_acked: None,
            classes: None,
        }
    }
}

/// A lease and the line (or, for XML, the element's line) it was read from, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line of the source file.
    pub line: usize,
    /// The lease.
    pub lease: Lease,
}

/// An entry of the source file that produced no lease, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Line of the source file, 1-based.
    pub line: usize,
    /// Why it was not imported, for the operator.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// An earlier entry for an address that a later one in the same file replaced (lease files
/// are logs: the last entry for an address is the lease, as its own server reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superseded {
    /// Line of the replaced entry.
    pub line: usize,
    /// Line of the entry that replaced it.
    pub by: usize,
    /// The address.
    pub address: Ipv4Addr,
}

/// Everything an importer read from one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Import {
    /// The leases, one per address, in the order of their (last) entries.
    pub records: Vec<Record>,
    /// Entries that gave no lease, each with its reason.
    pub skipped: Vec<Skipped>,
    /// Entries replaced by a later entry for the same address.
    pub superseded: Vec<Superseded>,
    /// Things the operator should know that are not errors (a failover state block ignored,
    /// a field whose meaning was assumed), with their lines.
    pub notes: Vec<Skipped>,
}

impl Import {
    /// Adds `lease` from `line`. Call [`Import::finish`] once every entry is in.
    pub(crate) fn push(&mut self, line: usize, lease: Lease) {
        self.records.push(Record { line, lease });
    }

    /// Keeps the last record of each address and lists the earlier ones in
    /// [`Import::superseded`] (one pass: lease files hold millions of entries).
    pub(crate) fn finish(mut self) -> Import {
        let mut last: std::collections::HashMap<Ipv4Addr, usize> =
            std::collections::HashMap::with_capacity(self.records.len());
        let mut keep = vec![true; self.records.len()];
        for (i, r) in self.records.iter().enumerate().rev() {
            match last.get(&r.lease.address) {
                Some(&by) => {
                    keep[i] = false;
                    self.superseded.push(Superseded {
                        line: r.line,
                        by,
                        address: r.lease.address,
                    });
                }
                None => {
                    last.insert(r.lease.address, r.line);
                }
            }
        }
        self.superseded.reverse();
        let mut k = keep.into_iter();
        self.records.retain(|_| k.next().unwrap_or(true));
        self
    }

    /// Notes that the entry at `line` gave no lease, because of `reason`.
    pub(crate) fn skip(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            line,
            reason: reason.into(),
        });
    }

    /// A note for the operator about `line`.
    pub(crate) fn note(&mut self, line: usize, text: impl Into<String>) {
        self.notes.push(Skipped {
            line,
            reason: text.into(),
        });
    }
}

/// Parses `aa:bb:cc` (or `aa-bb-cc`) hexadecimal bytes; each byte one or two digits. `None`
/// if anything else is there.
pub(crate) fn parse_hex_bytes(text: &str, sep: char) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(sep)
        .map(|b| {
            let ok = (1..=2).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_hexdigit());
            ok.then(|| u8::from_str_radix(b, 16).ok()).flatten()
        })
        .collect()
}

/// `bytes` as `aa:bb:cc`.
pub(crate) fn hex_colon(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}
