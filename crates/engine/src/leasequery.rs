//! DHCPLEASEQUERY (RFC 4388): what a relay or access concentrator that lost its state (a
//! rebooted BNG) learns of an address or a client from the binding tables, read-only.

use std::net::Ipv4Addr;

use peregrine_wire::dhcp::{BootpHeader, DhcpMessage, DhcpWriter, MessageType, opt};

use crate::binding::{Binding, BindingState, Time};
use crate::engine::Engine;
use crate::key::ClientKey;
use crate::scope::Scope;
use crate::verdict::{Destination, DropReason, NextHop, RxMeta, Verdict};

/// What the server knows of the queried address or client.
// One per query, on the stack: boxing the binding would allocate per packet.
#[allow(clippy::large_enum_variant)]
enum Answer<'e> {
    /// Leased: the address, its binding, and the scope it is in.
    Active(Ipv4Addr, Binding, &'e Scope),
    /// The server's to give (in a subnet it serves), and not leased.
    Unassigned(Ipv4Addr, &'e Scope),
    /// Nothing.
    Unknown,
}

impl Engine {
    /// Answers a leasequery, by address (`ciaddr`), else by client identifier (option 61), else
    /// by hardware address (`chaddr`), to the requestor at `giaddr`, which must lie in
    /// `leasequery-requesters`.
    pub(crate) fn leasequery(
        &self,
        now: Time,
        meta: &RxMeta,
        msg: &DhcpMessage<'_>,
        tx: &mut [u8],
    ) -> Verdict {
        let p = msg.packet();
        let requestor = p.giaddr();
        if requestor.is_unspecified()
            || !self
                .settings
                .leasequery_requesters
                .iter()
                .any(|n| n.contains(requestor))
        {
            return Verdict::Drop(DropReason::LeasequeryNotAllowed);
        }
        let answer = if p.ciaddr().is_unspecified() {
            let mut scratch = [0u8; 255];
            let client_id = msg
                .client_id()
                .and_then(|v| v.contiguous(&mut scratch).ok());
            let chaddr = p.chaddr();
            if client_id.is_none() && chaddr.iter().all(|b| *b == 0) {
                return Verdict::Drop(DropReason::LeasequeryWithoutSubject);
            }
            self.leasequery_client(now, p.htype(), chaddr, client_id)
        } else {
            self.leasequery_address(now, p.ciaddr())
        };
        match write_answer(now, meta, msg, &answer, tx) {
            Ok((kind, len, src_ip)) => Verdict::Reply {
                kind,
                len,
                // To the requestor, at the port it asked from (67 for a relay).
                dst: Destination {
                    ip: requestor,
                    port: meta.src_port,
                    next_hop: NextHop::Sender,
                    src_ip,
                },
            },
            Err(_) => Verdict::Drop(DropReason::ReplyTooLarge),
        }
    }

    fn leasequery_address(&self, now: Time, addr: Ipv4Addr) -> Answer<'_> {
        let Some(s) = self.selector.by_address(addr).map(|id| self.scope(id)) else {
            return Answer::Unknown;
        };
        let Some((pool, at)) = s.locate(addr) else {
            return Answer::Unassigned(addr, s);
        };
        let b = *s.pools[pool].lock(at.shard).binding(at.slot);
        if leased(&b, now) {
            Answer::Active(addr, b, s)
        } else {
            Answer::Unassigned(addr, s)
        }
    }

    /// The lease of a client, found by the keys it may be known by: its client identifier
    /// (also read as a hardware address when it is one, type 1 and six bytes), and its
    /// hardware address (a scope that ignores option 61 keys clients by it).
    fn leasequery_client(
        &self,
        now: Time,
        htype: u8,
        chaddr: &[u8],
        client_id: Option<&[u8]>,
    ) -> Answer<'_> {
        let by_id = client_id.filter(|id| !id.is_empty()).map(|id| {
            let own_mac = match id {
                [1, mac @ ..] if mac.len() == 6 => mac,
                _ => chaddr,
            };
            let htype = if own_mac == chaddr { htype } else { 1 };
            self.client_key_for(htype, own_mac, Some(id))
        });
        let by_mac = (!chaddr.iter().all(|b| *b == 0))
            .then(|| ClientKey::hardware(htype, chaddr, &self.key_seed));
        by_id
            .into_iter()
            .chain(by_mac)
            .find_map(|key| self.lease_of(now, key))
            .unwrap_or(Answer::Unknown)
    }

    fn lease_of(&self, now: Time, key: ClientKey) -> Option<Answer<'_>> {
        let hkey = self.clients.hashed(key);
        let (_, clients) = self.clients.lock(&hkey);
        let loc = *clients.get(&hkey)?;
        let s = self.scope(loc.scope);
        let pool = &s.pools[usize::from(loc.pool)];
        let b = *pool.lock(loc.at.shard).binding(loc.at.slot);
        (b.owned_by(&key) && leased(&b, now)).then(|| Answer::Active(pool.address(loc.at), b, s))
    }
}

/// Whether `b` is a lease running at `now`.
fn leased(b: &Binding, now: Time) -> bool {
    b.state == BindingState::Active && b.expires > now
}

/// Writes the answer (RFC 4388 §6.4): the message type, our server identifier, and for an
/// active lease the client's hardware address, the time left (option 51), the seconds since
/// its last transaction (91), and, when the query lists it, the relay agent information of
/// the request that bound it (82). Returns the type, the length and our address.
fn write_answer(
    now: Time,
    meta: &RxMeta,
    msg: &DhcpMessage<'_>,
    answer: &Answer<'_>,
    tx: &mut [u8],
) -> Result<(MessageType, usize, Ipv4Addr), peregrine_wire::Error> {
    let mut w = DhcpWriter::new(tx, peregrine_wire::dhcp::DEFAULT_MAX_MESSAGE_LEN)?;
    let mut header = BootpHeader::reply_to(msg.packet());
    let (kind, server_id) = match answer {
        Answer::Active(addr, b, s) => {
            header.ciaddr = *addr;
            header.htype = 1;
            header.hlen = 6;
            header.chaddr = [0; 16];
            header.chaddr[..6].copy_from_slice(&b.mac);
            (MessageType::LeaseActive, s.server_id(meta))
        }
        Answer::Unassigned(addr, s) => {
            header.ciaddr = *addr;
            (MessageType::LeaseUnassigned, s.server_id(meta))
        }
        Answer::Unknown => (MessageType::LeaseUnknown, meta.local_ip),
    };
    w.header(&header);
    w.message_type(kind)?;
    w.option_ipv4(opt::SERVER_ID, server_id)?;
    if let Answer::Active(_, b, _) = answer {
        let left = u32::try_from(b.expires.saturating_sub(now)).unwrap_or(u32::MAX);
        w.option_u32(opt::LEASE_TIME, left)?;
        let since = u32::try_from(now.saturating_sub(b.cltt)).unwrap_or(u32::MAX);
        w.option_u32(opt::CLIENT_LAST_TRANSACTION_TIME, since)?;
        let asked = |code| {
            msg.parameter_request_list()
                .is_some_and(|l| l.bytes().any(|c| c == code))
        };
        if asked(opt::RELAY_AGENT_INFO)
            && let Some(rai) = b.info.relay_agent_info()
        {
            w.option(opt::RELAY_AGENT_INFO, rai)?;
        }
        if asked(opt::HOSTNAME)
            && let Some(name) = b.info.host_name()
        {
            w.option(opt::HOSTNAME, name)?;
        }
    }
    let len = w.finish()?;
    Ok((kind, len, server_id))
}
