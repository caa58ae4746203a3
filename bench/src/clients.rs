//! The simulated subscribers: one flat table indexed by client number, and the mapping between
//! a client number and the transaction id, MAC address and relay that identify it on the wire.
//!
//! A reply is matched to its client in O(1): the xid *is* the client number, `XOR`ed with a
//! per-run salt so that late replies to an earlier run do not match. No hashing, no allocation.

/// Where a client stands in its current exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum State {
    /// No exchange in flight.
    #[default]
    Idle,
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST (SELECTING) sent, waiting for an ACK or NAK.
    Requesting,
    /// REQUEST with ciaddr (RENEWING) sent, waiting for an ACK or NAK.
    Renewing,
    /// REQUEST with option 50 and no server id (INIT-REBOOT) sent, waiting for an ACK or NAK.
    Rebooting,
}

impl State {
    /// Whether an exchange is in flight.
    pub const fn busy(self) -> bool {
        !matches!(self, State::Idle)
    }
}

/// One subscriber. 32 bytes (and 12 more for its timer in the generator's wheel), so ten
/// million of them take 440 MB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client {
    /// Where the current exchange stands.
    pub state: State,
    /// Transmissions of the current request so far (1 after the first send).
    pub tries: u8,
    /// The leased address (host order), 0 if none.
    pub lease: u32,
    /// The server identifier of the lease or the pending offer (host order).
    pub server_id: u32,
    /// The offered address while requesting it (host order).
    pub offered: u32,
    /// When the exchange began (ns since the run started): the first DISCOVER or REQUEST.
    pub started_ns: u64,
    /// When the request now awaited was first sent (ns since the run started).
    pub sent_ns: u64,
}

/// Maps client numbers to and from what identifies them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    clients: u32,
    relays: u32,
    salt: u32,
}

impl Identity {
    /// `clients` subscribers spread round-robin over `relays` relays; `salt` is `XOR`ed into
    /// every xid.
    pub fn new(clients: u32, relays: u32, salt: u32) -> Self {
        Self {
            clients,
            relays: relays.max(1),
            salt,
        }
    }

    /// The xid of client `index`'s messages.
    #[inline]
    pub const fn xid(&self, index: u32) -> u32 {
        index ^ self.salt
    }

    /// The client an xid belongs to, if it is one of ours.
    #[inline]
    pub const fn client_of(&self, xid: u32) -> Option<u32> {
        let index = xid ^ self.salt;
        if index < self.clients {
            Some(index)
        } else {
            None
        }
    }

    /// Client `index`'s MAC address: locally administered, `02:00` then the number, so that a
    /// capture reads naturally and every run uses the same addresses.
    #[inline]
    pub const fn mac(index: u32) -> [u8; 6] {
        let b = index.to_be_bytes();
        [0x02, 0x00, b[0], b[1], b[2], b[3]]
    }

    /// The relay (index into the giaddr list) that client `index` sits behind.
    #[inline]
    pub const fn relay(&self, index: u32) -> u32 {
        index % self.relays
    }

    /// Client `index`'s port number on its relay (0-based): the `{port}` of a template.
    #[inline]
    pub const fn port(&self, index: u32) -> u32 {
        index / self.relays
    }

    /// The number of clients.
    pub const fn clients(&self) -> u32 {
        self.clients
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_maps_back_to_its_client_and_foreign_xids_do_not() {
        let id = Identity::new(1_000_000, 8, 0x5a5a_0000);
        for i in [0, 1, 7, 8, 123_456, 999_999] {
            assert_eq!(id.client_of(id.xid(i)), Some(i));
        }
        assert_eq!(id.client_of(id.xid(1_000_000)), None);
        assert_eq!(id.client_of(0xffff_ffff), None);
        // Another run's salt makes a foreign xid.
        let other = Identity::new(1_000_000, 8, 0x1234_0000);
        assert_eq!(id.client_of(other.xid(5)), None);
    }

    #[test]
    fn clients_spread_over_relays_with_distinct_macs() {
        let id = Identity::new(100, 8, 0);
        assert_eq!((id.relay(0), id.port(0)), (0, 0));
        assert_eq!((id.relay(9), id.port(9)), (1, 1));
        assert_eq!(Identity::mac(0x0102_0304), [2, 0, 1, 2, 3, 4]);
        assert_ne!(Identity::mac(1), Identity::mac(2));
        assert_eq!(size_of::<Client>(), 32);
    }
}
