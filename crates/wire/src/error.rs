use core::fmt;

/// Why a buffer could not be read as, or written into, a wire format.
///
/// Small and `Copy` so that the dataplane can count drops by reason without allocating.
///
/// Fieldless, so `error as usize` indexes a counter array of [`strum::EnumCount::COUNT`] entries
/// and [`strum::IntoEnumIterator::iter`] lists every label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumCount, strum::EnumIter)]
#[repr(u8)]
pub enum Error {
    /// The buffer is shorter than a header, or than a length the header declares.
    Truncated,
    /// A field holds a value the format does not allow (IPv4 IHL below 5, UDP length below 8,
    /// a BOOTP `hlen` above 16, an option length that runs past its area).
    Malformed,
    /// A header or datagram checksum does not verify.
    Checksum,
    /// An IPv4 fragment; DHCP messages are never reassembled.
    Fragment,
    /// The DHCP magic cookie is missing: BOOTP-only or not DHCP at all.
    BadMagic,
    /// Valid on the wire but not handled here (more than two VLAN tags, ARP for other protocols).
    Unsupported,
    /// The output does not fit in the buffer or in the message size the peer accepts.
    NoSpace,
}

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// A short, stable, lower-case name, used as a metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "checksum",
            Error::Fragment => "fragment",
            Error::BadMagic => "bad_magic",
            Error::Unsupported => "unsupported",
            Error::NoSpace => "no_space",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "buffer shorter than the header or its declared length",
            Error::Malformed => "field value not allowed by the format",
            Error::Checksum => "checksum does not verify",
            Error::Fragment => "IPv4 fragment",
            Error::BadMagic => "missing DHCP magic cookie",
            Error::Unsupported => "valid but unsupported encoding",
            Error::NoSpace => "output does not fit",
        })
    }
}

impl core::error::Error for Error {}
