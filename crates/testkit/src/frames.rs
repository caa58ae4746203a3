//! Client messages and frames as tests send them: a DHCP message from a client (directly or
//! through a relay that sets giaddr and adds option 82), wrapped in Ethernet/IPv4/UDP.
//!
//! Test support: a message that does not fit panics, which fails the test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::net::Ipv4Addr;

use peregrine_wire::dhcp::{BootpHeader, DhcpWriter, FLAG_BROADCAST, MessageType, opt, relay};
use peregrine_wire::frame::{UdpFrameHeaders, build_udp_frame};

/// One client message, built field by field; [`Self::bytes`] writes it.
#[derive(Debug, Clone)]
pub struct ClientMessage<'a> {
    /// Message type (option 53).
    pub kind: MessageType,
    /// Client hardware address.
    pub mac: [u8; 6],
    /// Transaction id.
    pub xid: u32,
    /// Ask for a broadcast reply.
    pub broadcast: bool,
    /// Relay address; unspecified for a client on the server's link.
    pub giaddr: Ipv4Addr,
    /// Option 50.
    pub requested: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 82 with this circuit id (sub-option 1), as a relay adds it.
    pub circuit_id: Option<&'a [u8]>,
}

impl<'a> ClientMessage<'a> {
    /// A message of `kind` from `mac` with `xid`, sent directly, without options 50, 54 or 82.
    pub fn new(kind: MessageType, mac: [u8; 6], xid: u32) -> ClientMessage<'a> {
        ClientMessage {
            kind,
            mac,
            xid,
            broadcast: false,
            giaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server_id: None,
            circuit_id: None,
        }
    }

    /// The same message relayed by `giaddr`, which adds option 82 with `circuit_id`.
    #[must_use]
    pub fn relayed(mut self, giaddr: Ipv4Addr, circuit_id: &'a [u8]) -> ClientMessage<'a> {
        self.giaddr = giaddr;
        self.circuit_id = Some(circuit_id);
        self
    }

    /// The DHCP message (the UDP payload).
    pub fn bytes(&self) -> Vec<u8> {
        let mut msg = vec![0u8; 600];
        let mut w = DhcpWriter::new(&mut msg, 600).unwrap();
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&self.mac);
        w.header(&BootpHeader {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: u8::from(!self.giaddr.is_unspecified()),
            xid: self.xid,
            secs: 0,
            flags: if self.broadcast { FLAG_BROADCAST } else { 0 },
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: self.giaddr,
            chaddr,
        });
        w.message_type(self.kind).unwrap();
        if let Some(a) = self.requested {
            w.option_ipv4(opt::REQUESTED_IP, a).unwrap();
        }
        if let Some(a) = self.server_id {
            w.option_ipv4(opt::SERVER_ID, a).unwrap();
        }
        if let Some(circuit) = self.circuit_id {
            let mut rai = [0u8; 257];
            let n =
                relay::write_sub_options(&mut rai, &[(relay::sub::CIRCUIT_ID, circuit)]).unwrap();
            w.option(opt::RELAY_AGENT_INFO, &rai[..n]).unwrap();
        }
        let len = w.finish().unwrap();
        msg.truncate(len);
        msg
    }
}

/// A leasequery (RFC 4388), or a bulk leasequery (RFC 6926), as a requestor sends it: by
/// `ciaddr`, else by client identifier, else by `chaddr`, else (bulk only) by the relay agent
/// sub-options in `agent` or for everything.
#[derive(Debug, Clone)]
pub struct LeaseQuery<'a> {
    /// Transaction id.
    pub xid: u32,
    /// The requestor's address, where the answer goes.
    pub giaddr: Ipv4Addr,
    /// The address asked about.
    pub ciaddr: Option<Ipv4Addr>,
    /// The hardware address asked about.
    pub chaddr: Option<[u8; 6]>,
    /// The client identifier asked about (option 61).
    pub client_id: Option<&'a [u8]>,
    /// Parameter request list (option 55).
    pub prl: &'a [u8],
    /// A DHCPBULKLEASEQUERY rather than a DHCPLEASEQUERY.
    pub bulk: bool,
    /// Option 82's sub-options (relay-id, remote-id), for a bulk query by relay.
    pub agent: &'a [(u8, &'a [u8])],
    /// Option 154: only bindings whose state began at or after this time.
    pub query_start_time: Option<u32>,
}

impl LeaseQuery<'_> {
    /// A leasequery with `xid` from `giaddr` that asks about nothing yet.
    pub fn new(xid: u32, giaddr: impl Into<Ipv4Addr>) -> Self {
        LeaseQuery {
            xid,
            giaddr: giaddr.into(),
            ciaddr: None,
            chaddr: None,
            client_id: None,
            prl: &[],
            bulk: false,
            agent: &[],
            query_start_time: None,
        }
    }

    /// The message (the UDP payload, or what a TCP length prefix frames).
    pub fn bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 600];
        let mut w = DhcpWriter::new(&mut buf, 600).unwrap();
        let mut chaddr = [0u8; 16];
        if let Some(mac) = self.chaddr {
            chaddr[..6].copy_from_slice(&mac);
        }
        w.header(&BootpHeader {
            op: 1,
            htype: 1,
            hlen: if self.chaddr.is_some() { 6 } else { 0 },
            hops: 0,
            xid: self.xid,
            secs: 0,
            flags: 0,
            ciaddr: self.ciaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: self.giaddr,
            chaddr,
        });
        let kind = if self.bulk {
            MessageType::BulkLeaseQuery
        } else {
            MessageType::LeaseQuery
        };
        w.message_type(kind).unwrap();
        if let Some(id) = self.client_id {
            w.option(opt::CLIENT_ID, id).unwrap();
        }
        if !self.prl.is_empty() {
            w.option(opt::PARAMETER_REQUEST_LIST, self.prl).unwrap();
        }
        if !self.agent.is_empty() {
            let mut rai = [0u8; 255];
            let n = relay::write_sub_options(&mut rai, self.agent).unwrap();
            w.option(opt::RELAY_AGENT_INFO, &rai[..n]).unwrap();
        }
        if let Some(t) = self.query_start_time {
            w.option_u32(opt::QUERY_START_TIME, t).unwrap();
        }
        let n = w.finish().unwrap();
        buf.truncate(n);
        buf
    }
}

/// `payload` in a UDP frame with `headers`, checksums filled.
pub fn udp_frame(headers: &UdpFrameHeaders, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; headers.len() + payload.len()];
    let n = build_udp_frame(&mut frame, headers, |p| {
        p[..payload.len()].copy_from_slice(payload);
        Ok(payload.len())
    })
    .unwrap();
    frame.truncate(n);
    frame
}
