use core::fmt;

/// Why bytes could not be read as, or written into, a failover message.
///
/// `Copy` and small, so that a session can count the reason it closed a connection without
/// allocating. Variants that concern one option carry its code, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than the 12-byte header, or than the length the header declares.
    Truncated,
    /// The header declares fewer than 12 bytes.
    BadLength,
    /// The header declares more than the 2048 bytes a message may hold (D12 §6.1), or an encoded
    /// message would exceed them.
    Oversized,
    /// The payload offset points inside the fixed header or past the message.
    BadPayloadOffset,
    /// A message type this protocol does not define below 128 (D12 §6.1: close the connection).
    UnknownType(u8),
    /// An option's declared length runs past the end of the message.
    OptionOverrun,
    /// A known option whose length its format does not allow (ISC checks lengths exactly).
    OptionLength(u16),
    /// A known option appears twice in one message or one binding transaction.
    RepeatedOption(u16),
    /// A message or binding transaction lacks an option the draft requires of it.
    MissingOption(u16),
    /// An option holds a value its format does not define (an unknown binding status or server
    /// state, a hardware type without an address).
    BadValue(u16),
    /// The output does not fit in the caller's buffer.
    NoSpace,
}

impl Error {
    /// A short, stable, lower-case name, used as a metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadLength => "bad_length",
            Error::Oversized => "oversized",
            Error::BadPayloadOffset => "bad_payload_offset",
            Error::UnknownType(_) => "unknown_type",
            Error::OptionOverrun => "option_overrun",
            Error::OptionLength(_) => "option_length",
            Error::RepeatedOption(_) => "repeated_option",
            Error::MissingOption(_) => "missing_option",
            Error::BadValue(_) => "bad_value",
            Error::NoSpace => "no_space",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated => f.write_str("shorter than the header or its declared length"),
            Error::BadLength => f.write_str("declared length below the 12-byte header"),
            Error::Oversized => f.write_str("longer than the 2048 bytes a message may hold"),
            Error::BadPayloadOffset => f.write_str("payload offset outside the message"),
            Error::UnknownType(t) => write!(f, "unknown message type {t}"),
            Error::OptionOverrun => f.write_str("option runs past the end of the message"),
            Error::OptionLength(c) => write!(f, "option {c} has a length its format forbids"),
            Error::RepeatedOption(c) => write!(f, "option {c} repeated"),
            Error::MissingOption(c) => write!(f, "required option {c} missing"),
            Error::BadValue(c) => write!(f, "option {c} holds an undefined value"),
            Error::NoSpace => f.write_str("output does not fit"),
        }
    }
}

impl std::error::Error for Error {}

/// Result type of this crate's codec.
pub type Result<T> = core::result::Result<T, Error>;
