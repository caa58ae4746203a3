//! A small lab: testkit's lab configuration with scope options, a DHCP client that writes real
//! messages with peregrine-wire, and a simulated clock.

use std::net::Ipv4Addr;

use peregrine_config::model::{Class, Config, OptionSet, Reservation};
use peregrine_engine::{Engine, EngineOptions, RxMeta, Verdict};
use peregrine_testkit::config as fixture;
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{
    BootpHeader, DhcpMessage, DhcpWriter, FLAG_BROADCAST, MessageType, opt, relay,
};
use peregrine_wire::ethernet::VlanTags;

pub(crate) const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub(crate) const T0: u64 = 1_800_000_000;

/// Two scopes: a directly attached one on `eth0` (10.200.0.0/24), and a relayed one
/// (10.201.0.0/16, relay 10.201.0.1); not authoritative, and each scope gives its first address
/// as the router and 10.0.0.53 as the DNS server.
pub(crate) fn lab_config() -> Config {
    let mut config = fixture::lab(false);
    for scope in &mut config.scopes {
        let router = Ipv4Addr::from_bits(scope.subnet.addr.to_bits() + 1);
        scope.options.set(opt::ROUTER, router.octets().to_vec());
        scope.options.set(opt::DNS_SERVERS, vec![10, 0, 0, 53]);
    }
    config
}

pub(crate) fn engine(config: &Config) -> Engine {
    Engine::new(
        config,
        EngineOptions {
            pool_shards: 4,
            client_shards: 8,
            ..EngineOptions::default()
        },
    )
    .unwrap()
}

/// What the server saw on the wire besides the message.
pub(crate) fn meta(engine: &Engine) -> RxMeta {
    RxMeta {
        interface: engine.interface("eth0"),
        vlans: VlanTags::NONE,
        src_mac: MacAddr([2, 0, 0, 0, 0, 0xfe]),
        src_ip: Ipv4Addr::UNSPECIFIED,
        src_port: 68,
        dst_ip: Ipv4Addr::BROADCAST,
        local_ip: SERVER,
        trusted: false,
    }
}

/// A DHCP client (or a relay acting for one).
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) mac: [u8; 6],
    /// Option 61, if the client sends one.
    pub(crate) identifier: Option<Vec<u8>>,
    pub(crate) giaddr: Ipv4Addr,
    pub(crate) relay_info: Vec<(u8, Vec<u8>)>,
    pub(crate) prl: Vec<u8>,
    pub(crate) vendor_class: Option<Vec<u8>>,
    /// Option 12, if the client sends its name.
    pub(crate) hostname: Option<Vec<u8>>,
    /// Option 51, if the client asks for a lease time.
    pub(crate) lease_time: Option<u32>,
    /// Option 80 (RFC 4039) in its DISCOVERs.
    pub(crate) rapid_commit: bool,
    pub(crate) broadcast: bool,
    pub(crate) xid: u32,
    /// Seconds since the client began (BOOTP `secs`).
    pub(crate) secs: u16,
}

impl Client {
    pub(crate) fn new(n: u32) -> Client {
        let b = n.to_be_bytes();
        Client {
            mac: [2, 0xcc, b[0], b[1], b[2], b[3]],
            identifier: None,
            giaddr: Ipv4Addr::UNSPECIFIED,
            relay_info: vec![],
            prl: vec![opt::SUBNET_MASK, opt::ROUTER, opt::DNS_SERVERS],
            vendor_class: None,
            hostname: None,
            lease_time: None,
            rapid_commit: false,
            broadcast: false,
            xid: n,
            secs: 0,
        }
    }

    /// The same client behind a relay that adds option 82 with this circuit id.
    pub(crate) fn relayed(mut self, giaddr: [u8; 4], circuit: &[u8]) -> Client {
        self.giaddr = giaddr.into();
        self.relay_info = vec![
            (relay::sub::CIRCUIT_ID, circuit.to_vec()),
            (relay::sub::REMOTE_ID, self.mac.to_vec()),
        ];
        self
    }

    pub(crate) fn mac(&self) -> MacAddr {
        MacAddr(self.mac)
    }

    /// Writes a message of `kind` with `ciaddr`, and options 50 / 54 when given.
    pub(crate) fn message(
        &self,
        kind: MessageType,
        ciaddr: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
    ) -> Vec<u8> {
        let mut buf = vec![0u8; 1024];
        let mut w = DhcpWriter::new(&mut buf, 1024).unwrap();
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&self.mac);
        w.header(&BootpHeader {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: u8::from(!self.giaddr.is_unspecified()),
            xid: self.xid,
            secs: self.secs,
            flags: if self.broadcast { FLAG_BROADCAST } else { 0 },
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: self.giaddr,
            chaddr,
        });
        w.message_type(kind).unwrap();
        if let Some(id) = &self.identifier {
            w.option(opt::CLIENT_ID, id).unwrap();
        }
        if let Some(a) = requested {
            w.option_ipv4(opt::REQUESTED_IP, a).unwrap();
        }
        if let Some(a) = server {
            w.option_ipv4(opt::SERVER_ID, a).unwrap();
        }
        if self.rapid_commit && kind == MessageType::Discover {
            w.option(opt::RAPID_COMMIT, &[]).unwrap();
        }
        if let Some(t) = self.lease_time {
            w.option(opt::LEASE_TIME, &t.to_be_bytes()).unwrap();
        }
        if !self.prl.is_empty() {
            w.option(opt::PARAMETER_REQUEST_LIST, &self.prl).unwrap();
        }
        if let Some(v) = &self.vendor_class {
            w.option(opt::VENDOR_CLASS, v).unwrap();
        }
        if let Some(name) = &self.hostname {
            w.option(opt::HOSTNAME, name).unwrap();
        }
        if !self.relay_info.is_empty() {
            let mut rai = [0u8; 255];
            let subs: Vec<(u8, &[u8])> = self
                .relay_info
                .iter()
                .map(|(c, d)| (*c, d.as_slice()))
                .collect();
            let n = relay::write_sub_options(&mut rai, &subs).unwrap();
            w.option(opt::RELAY_AGENT_INFO, &rai[..n]).unwrap();
        }
        let n = w.finish().unwrap();
        buf.truncate(n);
        buf
    }

    pub(crate) fn discover(&self) -> Vec<u8> {
        self.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, None, None)
    }

    pub(crate) fn select(&self, offered: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
        self.message(
            MessageType::Request,
            Ipv4Addr::UNSPECIFIED,
            Some(offered),
            Some(server),
        )
    }

    pub(crate) fn init_reboot(&self, addr: Ipv4Addr) -> Vec<u8> {
        self.message(
            MessageType::Request,
            Ipv4Addr::UNSPECIFIED,
            Some(addr),
            None,
        )
    }

    pub(crate) fn renew(&self, addr: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Request, addr, None, None)
    }

    pub(crate) fn release(&self, addr: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Release, addr, None, Some(server))
    }

    pub(crate) fn decline(&self, addr: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
        self.message(
            MessageType::Decline,
            Ipv4Addr::UNSPECIFIED,
            Some(addr),
            Some(server),
        )
    }

    pub(crate) fn inform(&self, addr: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Inform, addr, None, None)
    }
}

/// An engine with a clock, driven one message at a time.
pub(crate) struct Sim {
    pub(crate) engine: Engine,
    pub(crate) now: u64,
    pub(crate) tx: Vec<u8>,
}

impl Sim {
    pub(crate) fn new(config: &Config) -> Sim {
        Sim {
            engine: engine(config),
            now: T0,
            tx: vec![0u8; 1500],
        }
    }

    pub(crate) fn meta(&self) -> RxMeta {
        meta(&self.engine)
    }

    pub(crate) fn send(&mut self, msg: &[u8]) -> Verdict {
        let meta = self.meta();
        self.send_with(&meta, msg)
    }

    pub(crate) fn send_with(&mut self, meta: &RxMeta, msg: &[u8]) -> Verdict {
        self.engine.handle(self.now, meta, msg, &mut self.tx)
    }

    /// The reply written by the last verdict.
    pub(crate) fn reply(&self, v: &Verdict) -> DhcpMessage<'_> {
        let len = match v {
            Verdict::Reply { len, .. }
            | Verdict::Defer { len, .. }
            | Verdict::Probe { len, .. } => *len,
            other => panic!("no reply: {other:?}"),
        };
        DhcpMessage::parse(&self.tx[..len]).unwrap()
    }

    /// Sends `msg` and returns the `yiaddr` of the reply.
    pub(crate) fn yiaddr(&mut self, msg: &[u8]) -> Ipv4Addr {
        let v = self.send(msg);
        self.reply(&v).packet().yiaddr()
    }

    /// Full DORA; returns the address.
    pub(crate) fn dora(&mut self, c: &Client) -> Ipv4Addr {
        let v = self.send(&c.discover());
        let offer = self.reply(&v);
        assert_eq!(offer.message_type(), Some(MessageType::Offer), "{v:?}");
        let (addr, server) = (offer.packet().yiaddr(), offer.server_id().unwrap());
        let v = self.send(&c.select(addr, server));
        // A lease still fresh comes from the cache (Reply); a new or extended one is durable first (Defer).
        assert!(
            matches!(
                v,
                Verdict::Defer {
                    kind: MessageType::Ack,
                    ..
                } | Verdict::Reply {
                    kind: MessageType::Ack,
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(self.reply(&v).packet().yiaddr(), addr);
        addr
    }

    pub(crate) fn advance(&mut self, secs: u64) {
        self.now += secs;
    }

    /// Runs expiry until nothing is due; returns the events.
    pub(crate) fn tick(&mut self) -> Vec<peregrine_engine::BindingEvent> {
        let mut events = vec![];
        while self.engine.tick(self.now, 64, |e| events.push(e)) == 64 {}
        events
    }
}

pub(crate) fn class(name: &str, conditions: Vec<peregrine_config::model::ClassMatch>) -> Class {
    Class {
        name: name.into(),
        conditions,
        options: OptionSet::default(),
    }
}

pub(crate) fn reservation(
    key: peregrine_config::model::ReservationKey,
    address: [u8; 4],
) -> Reservation {
    Reservation {
        key,
        address: address.into(),
        hostname: None,
        options: OptionSet::default(),
    }
}
