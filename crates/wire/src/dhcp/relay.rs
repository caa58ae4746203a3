//! The relay agent information option (82, RFC 3046) and its sub-options.

use core::net::Ipv4Addr;

use crate::{Error, Result};

/// Sub-option codes of option 82.
pub mod sub {
    /// Agent circuit id (RFC 3046).
    pub const CIRCUIT_ID: u8 = 1;
    /// Agent remote id (RFC 3046).
    pub const REMOTE_ID: u8 = 2;
    /// Link selection (RFC 3527).
    pub const LINK_SELECTION: u8 = 5;
    /// Subscriber id (RFC 3993).
    pub const SUBSCRIBER_ID: u8 = 6;
    /// Server identifier override (RFC 5107).
    pub const SERVER_ID_OVERRIDE: u8 = 11;
    /// Relay agent identifier (RFC 6925).
    pub const RELAY_ID: u8 = 12;
    /// Relay agent source port (RFC 8357): reply to the relay's source port, not 67.
    pub const RELAY_SOURCE_PORT: u8 = 19;
}

/// A view of option 82's data: a sequence of `code, length, data` sub-options.
///
/// Every accessor borrows from the message; nothing is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayAgentInfo<'a> {
    data: &'a [u8],
}

impl<'a> RelayAgentInfo<'a> {
    /// Wraps option 82's data and checks that every sub-option length stays inside it.
    pub fn new_checked(data: &'a [u8]) -> Result<RelayAgentInfo<'a>> {
        let mut rest = data;
        while let [_, len, tail @ ..] = rest {
            rest = tail.get(usize::from(*len)..).ok_or(Error::Malformed)?;
        }
        if rest.is_empty() {
            Ok(RelayAgentInfo { data })
        } else {
            Err(Error::Malformed)
        }
    }

    /// The option data exactly as received, to echo in the reply.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// The sub-options in order, as `(code, data)`.
    pub fn iter(&self) -> SubOptions<'a> {
        SubOptions { rest: self.data }
    }

    /// The first sub-option with `code`.
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == code).map(|(_, d)| d)
    }

    /// Sub-option 1, the circuit id.
    pub fn circuit_id(&self) -> Option<&'a [u8]> {
        self.get(sub::CIRCUIT_ID)
    }

    /// Sub-option 2, the remote id.
    pub fn remote_id(&self) -> Option<&'a [u8]> {
        self.get(sub::REMOTE_ID)
    }

    /// Sub-option 5 data (four bytes when well formed).
    pub fn link_selection_raw(&self) -> Option<&'a [u8]> {
        self.get(sub::LINK_SELECTION)
    }

    /// Sub-option 5 as an address, if it has four bytes.
    pub fn link_selection(&self) -> Option<Ipv4Addr> {
        addr(self.link_selection_raw()?)
    }

    /// Sub-option 6, the subscriber id.
    pub fn subscriber_id(&self) -> Option<&'a [u8]> {
        self.get(sub::SUBSCRIBER_ID)
    }

    /// Sub-option 11 data (four bytes when well formed).
    pub fn server_id_override_raw(&self) -> Option<&'a [u8]> {
        self.get(sub::SERVER_ID_OVERRIDE)
    }

    /// Sub-option 11 as an address, if it has four bytes.
    pub fn server_id_override(&self) -> Option<Ipv4Addr> {
        addr(self.server_id_override_raw()?)
    }

    /// Sub-option 12, the relay id.
    pub fn relay_id(&self) -> Option<&'a [u8]> {
        self.get(sub::RELAY_ID)
    }

    /// Sub-option 19 data. Its presence is what matters: the reply goes to the UDP source port
    /// the relay used.
    pub fn relay_source_port(&self) -> Option<&'a [u8]> {
        self.get(sub::RELAY_SOURCE_PORT)
    }
}

impl<'a> IntoIterator for &RelayAgentInfo<'a> {
    type Item = (u8, &'a [u8]);
    type IntoIter = SubOptions<'a>;

    fn into_iter(self) -> SubOptions<'a> {
        self.iter()
    }
}

fn addr(d: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(d).ok().map(Ipv4Addr::from)
}

/// Iterator over option 82 sub-options; see [`RelayAgentInfo::iter`].
#[derive(Debug, Clone)]
pub struct SubOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SubOptions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let [code, len, tail @ ..] = self.rest else {
            return None;
        };
        let data = tail.get(..usize::from(*len))?;
        self.rest = &tail[data.len()..];
        Some((*code, data))
    }
}

/// Writes sub-options into `buf` as option 82 data; returns the length.
pub fn write_sub_options(buf: &mut [u8], subs: &[(u8, &[u8])]) -> Result<usize> {
    let mut n = 0;
    for (code, data) in subs {
        let len = u8::try_from(data.len()).map_err(|_| Error::NoSpace)?;
        let dst = buf.get_mut(n..n + 2 + data.len()).ok_or(Error::NoSpace)?;
        dst[0] = *code;
        dst[1] = len;
        dst[2..].copy_from_slice(data);
        n += dst.len();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_options() {
        let mut buf = [0u8; 64];
        let n = write_sub_options(
            &mut buf,
            &[
                (sub::CIRCUIT_ID, b"eth0/1/2:100"),
                (sub::REMOTE_ID, b"\x00\x11\x22\x33\x44\x55"),
                (sub::LINK_SELECTION, &[10, 1, 2, 0]),
                (sub::SERVER_ID_OVERRIDE, &[10, 1, 2, 1]),
                (sub::RELAY_SOURCE_PORT, &[]),
            ],
        )
        .unwrap();
        let rai = RelayAgentInfo::new_checked(&buf[..n]).unwrap();
        assert_eq!(rai.circuit_id(), Some(&b"eth0/1/2:100"[..]));
        assert_eq!(rai.remote_id().unwrap().len(), 6);
        assert_eq!(rai.link_selection(), Some(Ipv4Addr::new(10, 1, 2, 0)));
        assert_eq!(rai.server_id_override(), Some(Ipv4Addr::new(10, 1, 2, 1)));
        assert_eq!(rai.relay_source_port(), Some(&[][..]));
        assert_eq!(rai.subscriber_id(), None);
        assert_eq!(rai.iter().count(), 5);
        // A sub-option running past the end, and a lone code byte, are malformed.
        assert_eq!(
            RelayAgentInfo::new_checked(&buf[..n - 1]),
            Err(Error::Malformed)
        );
        assert_eq!(RelayAgentInfo::new_checked(&[1]), Err(Error::Malformed));
        assert!(RelayAgentInfo::new_checked(&[]).is_ok());
    }
}
