//! What a client said of itself that its lease keeps: its names, its vendor class and the
//! relay's information (option 82) of the request that bound it. For the lease list and
//! exports, for a failover partner (the draft's client-request-options, §7.1.1), and so that a
//! renewal unicast past the relay is still known by the relay information it was bound with.

use std::fmt;

use peregrine_wire::dhcp::{DhcpMessage, OptionIter};

/// Relay agent information (RFC 3046).
const RELAY_AGENT_INFO: u8 = 82;
/// Host name (RFC 2132 §3.14).
const HOST_NAME: u8 = 12;
/// Client FQDN (RFC 4702).
const CLIENT_FQDN: u8 = 81;
/// Vendor class identifier (RFC 2132 §9.13).
const VENDOR_CLASS: u8 = 60;

/// Bytes of options a lease keeps; see [`ClientInfo::KEPT`].
pub const CLIENT_INFO_ROOM: usize = 128;

/// A lease's kept client options, as DHCP options (code, length, data) in [`ClientInfo::KEPT`]
/// order, at most [`CLIENT_INFO_ROOM`] bytes: fixed-size, so that keeping it allocates nothing
/// on the packet path. An option that does not fit is left out whole (counted by the caller),
/// never cut.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    len: u8,
    bytes: [u8; CLIENT_INFO_ROOM],
}

impl ClientInfo {
    /// The options kept, in the order they get the room: the relay's information first (what
    /// classifies a renewal), then the host name and FQDN, then the vendor class.
    pub const KEPT: [u8; 4] = [RELAY_AGENT_INFO, HOST_NAME, CLIENT_FQDN, VENDOR_CLASS];

    /// No options.
    pub const EMPTY: ClientInfo = ClientInfo {
        len: 0,
        bytes: [0; CLIENT_INFO_ROOM],
    };

    /// The kept options as they follow the magic cookie in a DHCP message (and in a failover
    /// update's client-request-options).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether no option is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kept options, code and data.
    pub fn options(&self) -> impl Iterator<Item = (u8, &[u8])> {
        OptionIter::new(self.as_bytes())
            .map_while(Result::ok)
            .map(|o| (o.code, o.data))
    }

    /// The data of kept option `code`.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.options().find(|(c, _)| *c == code).map(|(_, d)| d)
    }

    /// The host name the client sent (option 12).
    pub fn host_name(&self) -> Option<&[u8]> {
        self.get(HOST_NAME)
    }

    /// The client's FQDN option (81) as it sent it: flags, two RCODEs, the name.
    pub fn client_fqdn(&self) -> Option<&[u8]> {
        self.get(CLIENT_FQDN)
    }

    /// The vendor class the client sent (option 60).
    pub fn vendor_class(&self) -> Option<&[u8]> {
        self.get(VENDOR_CLASS)
    }

    /// The relay agent information of the request that bound the lease (option 82's data:
    /// its sub-options).
    pub fn relay_agent_info(&self) -> Option<&[u8]> {
        self.get(RELAY_AGENT_INFO)
    }

    /// The kept options among `bytes`, DHCP options as they follow the magic cookie (a
    /// partner's client-request-options, a journal record); others are skipped, and so is one
    /// that does not fit. `None` if `bytes` is not a well-formed sequence of options.
    pub fn from_options(bytes: &[u8]) -> Option<ClientInfo> {
        if OptionIter::new(bytes).any(|o| o.is_err()) {
            return None;
        }
        let mut info = ClientInfo::EMPTY;
        for code in Self::KEPT {
            let found = OptionIter::new(bytes)
                .map_while(Result::ok)
                .find(|o| o.code == code);
            if let Some(o) = found {
                info.push_slice(code, o.data);
            }
        }
        Some(info)
    }

    /// What `msg` says, each kept option it lacks taken from `previous` (the same client's:
    /// a renewal unicast past the relay carries no option 82, and some clients send their name
    /// only when they first ask). The second value is true if an option did not fit.
    pub(crate) fn capture(msg: &DhcpMessage<'_>, previous: &ClientInfo) -> (ClientInfo, bool) {
        // The message indexes these options, so each lookup is a table read; most renewals
        // carry none of them. One option at a time: an array of the four looked-up values
        // would be moved about whole (it cost 800 instructions a request).
        if Self::KEPT.iter().all(|&code| msg.get(code).is_none()) {
            return (*previous, false);
        }
        let mut info = ClientInfo::EMPTY;
        let mut left_out = false;
        for code in Self::KEPT {
            let fits = match msg.get(code) {
                Some(v) => match v.as_slice() {
                    Some(data) => info.push_slice(code, data),
                    None => info.push(code, v.len(), v.bytes()),
                },
                None => previous.get(code).is_none_or(|d| info.push_slice(code, d)),
            };
            left_out |= !fits;
        }
        (info, left_out)
    }

    /// [`Self::push`] for data in one piece (nearly every option): one copy.
    fn push_slice(&mut self, code: u8, data: &[u8]) -> bool {
        let at = usize::from(self.len);
        let Ok(len8) = u8::try_from(data.len()) else {
            return false;
        };
        let end = at + 2 + data.len();
        if end > CLIENT_INFO_ROOM {
            return false;
        }
        self.bytes[at] = code;
        self.bytes[at + 1] = len8;
        self.bytes[at + 2..end].copy_from_slice(data);
        self.len = end as u8;
        true
    }

    /// Appends option `code` of `len` bytes; false (and nothing appended) if it does not fit.
    fn push(&mut self, code: u8, len: usize, data: impl Iterator<Item = u8>) -> bool {
        let at = usize::from(self.len);
        let Ok(len8) = u8::try_from(len) else {
            return false;
        };
        if at + 2 + len > CLIENT_INFO_ROOM {
            return false;
        }
        self.bytes[at] = code;
        self.bytes[at + 1] = len8;
        for (slot, b) in self.bytes[at + 2..at + 2 + len].iter_mut().zip(data) {
            *slot = b;
        }
        self.len = (at + 2 + len) as u8;
        true
    }
}

impl Default for ClientInfo {
    fn default() -> Self {
        ClientInfo::EMPTY
    }
}

impl fmt::Debug for ClientInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_map();
        for (code, data) in self.options() {
            list.entry(&code, &String::from_utf8_lossy(data));
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_options_come_in_priority_order_and_others_are_skipped() {
        // Vendor class, a parameter list (not kept), host name, relay information.
        let bytes = [
            60, 3, b'c', b'p', b'e', 55, 2, 1, 3, 12, 2, b'h', b'1', 82, 3, 1, 1, 7,
        ];
        let info = ClientInfo::from_options(&bytes).unwrap();
        let codes: Vec<u8> = info.options().map(|(c, _)| c).collect();
        assert_eq!(codes, [82, 12, 60]);
        assert_eq!(info.host_name(), Some(&b"h1"[..]));
        assert_eq!(info.relay_agent_info(), Some(&[1, 1, 7][..]));
        assert_eq!(info.vendor_class(), Some(&b"cpe"[..]));
        assert_eq!(ClientInfo::from_options(info.as_bytes()), Some(info));
    }

    #[test]
    fn what_does_not_fit_is_left_out_whole() {
        let long = [b'v'; 120];
        let mut bytes = vec![82, 10];
        bytes.extend([1, 8, b'o', b'l', b't', b'-', b'1', b'/', b'1', b'/']);
        bytes.extend([60, 120]);
        bytes.extend(long);
        bytes.extend([12, 4, b'h', b'o', b's', b't']);
        let info = ClientInfo::from_options(&bytes).unwrap();
        assert!(info.relay_agent_info().is_some());
        assert_eq!(info.host_name(), Some(&b"host"[..]));
        assert_eq!(
            info.vendor_class(),
            None,
            "120 bytes do not fit after the others"
        );
    }

    #[test]
    fn a_malformed_sequence_is_refused() {
        assert_eq!(ClientInfo::from_options(&[12, 5, b'a']), None);
        assert_eq!(ClientInfo::from_options(&[12]), None);
        assert_eq!(
            ClientInfo::from_options(&[0, 0, 255, 1]),
            Some(ClientInfo::EMPTY)
        );
    }
}
