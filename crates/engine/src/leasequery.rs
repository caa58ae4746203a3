//! DHCPLEASEQUERY (RFC 4388), and bulk leasequery over TCP (RFC 6926): what a relay or access
//! concentrator that lost its state (a rebooted BNG) learns of an address, a client, or all
//! the clients behind it, from the binding tables, read-only.

use std::net::Ipv4Addr;

use peregrine_wire::dhcp::{
    BootpHeader, DhcpMessage, DhcpWriter, MessageType, RelayAgentInfo, opt,
};

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
        match write_answer(now, meta, msg, &answer, false, tx) {
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
/// the request that bound it (82). In a bulk answer (RFC 6926 §6.2.1) also our clock (152),
/// how long the binding has been in its state (153) and the state (156). Returns the type, the
/// length and our address.
fn write_answer(
    now: Time,
    meta: &RxMeta,
    msg: &DhcpMessage<'_>,
    answer: &Answer<'_>,
    bulk: bool,
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
    if bulk {
        w.option_u32(opt::BASE_TIME, u32::try_from(now).unwrap_or(u32::MAX))?;
    }
    if let Answer::Active(_, b, _) = answer {
        if bulk {
            let since = now.saturating_sub(b.state_since());
            w.option_u32(
                opt::START_TIME_OF_STATE,
                u32::try_from(since).unwrap_or(u32::MAX),
            )?;
            w.option(opt::DHCP_STATE, &[DHCP_STATE_ACTIVE])?;
        }
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

/// `dhcp-state` (option 156) of an active lease.
const DHCP_STATE_ACTIVE: u8 = 2;

/// How a bulk leasequery ended: the status code of its DHCPLEASEQUERYDONE (RFC 6926 §6.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkStatus {
    /// Every binding asked for was sent.
    Success = 0,
    /// The query did not parse, was no DHCPBULKLEASEQUERY, or named nothing it can ask for.
    MalformedQuery = 3,
    /// The requestor is not in `leasequery-requesters`.
    NotAllowed = 4,
}

/// What a bulk leasequery asks for (RFC 6926 §6.1, in the order the query is read).
enum Subject<'q> {
    Address(Ipv4Addr),
    /// Hardware type, `chaddr` and its length, client identifier.
    Client(u8, [u8; 16], usize, Option<&'q [u8]>),
    RelayId(&'q [u8]),
    RemoteId(&'q [u8]),
    All,
}

impl Engine {
    /// Answers a bulk leasequery (RFC 6926) that came over TCP from `requestor`: every binding
    /// it asks for, as DHCPLEASEACTIVE (or DHCPLEASEUNASSIGNED for a free address it names),
    /// then DHCPLEASEQUERYDONE with the status. Each message is written into `buf` and given to
    /// `emit`, which sends it; an error from `emit` ends the query. `local_ip` is the address
    /// the query reached. Returns the status and how many bindings were sent.
    ///
    /// A query names an address (`ciaddr`), a client (option 61, or `chaddr`), the relay
    /// (option 82's relay-id, RFC 6925) or the remote id (82's remote-id) the bindings were made
    /// through, or nothing: every lease. `query-start-time` and `query-end-time` (options 154,
    /// 155) keep the bindings whose state began between them.
    pub fn bulk_leasequery<E>(
        &self,
        now: Time,
        local_ip: Ipv4Addr,
        requestor: Ipv4Addr,
        query: &[u8],
        buf: &mut [u8],
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(BulkStatus, u64), E> {
        let meta = bulk_meta(local_ip, requestor);
        let msg = DhcpMessage::parse(query).ok().filter(|m| {
            m.packet().op() == 1 && m.message_type() == Some(MessageType::BulkLeaseQuery)
        });
        let Some(msg) = msg else {
            let n = write_done(query, local_ip, BulkStatus::MalformedQuery, buf);
            emit(&buf[..n])?;
            return Ok((BulkStatus::MalformedQuery, 0));
        };
        let allowed = self
            .settings
            .leasequery_requesters
            .iter()
            .any(|n| n.contains(requestor));
        if !allowed {
            let n = write_done(query, local_ip, BulkStatus::NotAllowed, buf);
            emit(&buf[..n])?;
            return Ok((BulkStatus::NotAllowed, 0));
        }
        let window = |code| {
            msg.get(code)
                .and_then(|v| v.as_slice().and_then(|s| <[u8; 4]>::try_from(s).ok()))
                .map(|b| Time::from(u32::from_be_bytes(b)))
        };
        let (from, until) = (window(opt::QUERY_START_TIME), window(opt::QUERY_END_TIME));
        let in_window = |b: &Binding| {
            let t = b.state_since();
            from.is_none_or(|f| t >= f) && until.is_none_or(|u| t <= u)
        };
        let mut id_scratch = [0u8; 255];
        let mut rai_scratch = [0u8; 1024];
        let Some(subject) = subject(&msg, &mut id_scratch, &mut rai_scratch) else {
            let n = write_done(query, local_ip, BulkStatus::MalformedQuery, buf);
            emit(&buf[..n])?;
            return Ok((BulkStatus::MalformedQuery, 0));
        };
        let mut sent = 0;
        let mut send = |answer: &Answer<'_>, emit: &mut dyn FnMut(&[u8]) -> Result<(), E>| {
            // A binding whose answer does not fit a message is left out, not the query ended.
            if let Ok((_, n, _)) = write_answer(now, &meta, &msg, answer, true, buf) {
                emit(&buf[..n])?;
                sent += 1;
            }
            Ok(())
        };
        match subject {
            Subject::Address(addr) => match self.leasequery_address(now, addr) {
                Answer::Unknown => {}
                Answer::Active(_, b, _) if !in_window(&b) => {}
                answer => send(&answer, &mut emit)?,
            },
            Subject::Client(htype, chaddr, hlen, id) => {
                let chaddr = &chaddr[..hlen];
                if let Answer::Active(a, b, s) = self.leasequery_client(now, htype, chaddr, id)
                    && in_window(&b)
                {
                    send(&Answer::Active(a, b, s), &mut emit)?;
                }
            }
            Subject::RelayId(_) | Subject::RemoteId(_) | Subject::All => {
                let through = |b: &Binding| match subject {
                    Subject::RelayId(id) => agent_option(b, RelayAgentInfo::relay_id) == Some(id),
                    Subject::RemoteId(id) => agent_option(b, RelayAgentInfo::remote_id) == Some(id),
                    _ => true,
                };
                self.each_lease(
                    now,
                    |b| through(b) && in_window(b),
                    |a, b, s| send(&Answer::Active(a, *b, s), &mut emit),
                )?;
            }
        }
        let n = write_done(query, local_ip, BulkStatus::Success, buf);
        emit(&buf[..n])?;
        Ok((BulkStatus::Success, sent))
    }

    /// Calls `each` with every lease running at `now` that `keep` accepts, its address and
    /// scope; each pool shard is locked only while its leases are copied out.
    fn each_lease<E>(
        &self,
        now: Time,
        keep: impl Fn(&Binding) -> bool,
        mut each: impl FnMut(Ipv4Addr, &Binding, &Scope) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut found = Vec::new();
        for s in &self.scopes {
            for pool in &s.pools {
                for k in 0..pool.shard_count() {
                    {
                        let shard = pool.lock(k);
                        for slot in 0..shard.slot_count() {
                            let b = shard.binding(slot);
                            if leased(b, now) && keep(b) {
                                found.push((crate::pool::SlotRef { shard: k, slot }, *b));
                            }
                        }
                    }
                    for (at, b) in found.drain(..) {
                        each(pool.address(at), &b, s)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A sub-option of the relay agent information stashed with `b`.
fn agent_option<'b>(
    b: &'b Binding,
    get: impl Fn(&RelayAgentInfo<'b>) -> Option<&'b [u8]>,
) -> Option<&'b [u8]> {
    let info = RelayAgentInfo::new_checked(b.info.relay_agent_info()?).ok()?;
    get(&info)
}

/// What `msg` asks for; `None` if it names something no query may (an empty identifier).
fn subject<'q>(
    msg: &DhcpMessage<'q>,
    id_scratch: &'q mut [u8; 255],
    rai_scratch: &'q mut [u8; 1024],
) -> Option<Subject<'q>> {
    let p = msg.packet();
    if !p.ciaddr().is_unspecified() {
        return Some(Subject::Address(p.ciaddr()));
    }
    let id = match msg.client_id() {
        Some(v) => Some(v.contiguous(id_scratch).ok().filter(|id| !id.is_empty())?),
        None => None,
    };
    // Copied out: the subject outlives the view of the packet.
    let mut chaddr = [0u8; 16];
    let hlen = p.chaddr().len().min(16);
    chaddr[..hlen].copy_from_slice(&p.chaddr()[..hlen]);
    if id.is_some() || chaddr.iter().any(|b| *b != 0) {
        return Some(Subject::Client(p.htype(), chaddr, hlen, id));
    }
    let info = msg.relay_agent_info(rai_scratch).ok()?;
    Some(match info {
        Some(info) => {
            if let Some(id) = info.relay_id() {
                Subject::RelayId(id)
            } else {
                Subject::RemoteId(info.remote_id()?)
            }
        }
        None => Subject::All,
    })
}

/// The metadata a bulk answer is written with: what it needs is the address the query
/// reached (our server identifier) and the requestor.
fn bulk_meta(local_ip: Ipv4Addr, requestor: Ipv4Addr) -> RxMeta {
    RxMeta {
        interface: None,
        vlans: peregrine_wire::ethernet::VlanTags::NONE,
        src_mac: peregrine_wire::MacAddr([0; 6]),
        src_ip: requestor,
        src_port: peregrine_wire::dhcp::SERVER_PORT,
        dst_ip: local_ip,
        local_ip,
        trusted: false,
    }
}

/// Writes the DHCPLEASEQUERYDONE ending the bulk leasequery `query` (whatever of it parses)
/// with `status`; returns its length.
fn write_done(query: &[u8], local_ip: Ipv4Addr, status: BulkStatus, buf: &mut [u8]) -> usize {
    let text: &[u8] = match status {
        BulkStatus::Success => b"",
        BulkStatus::MalformedQuery => b"malformed query",
        BulkStatus::NotAllowed => b"not allowed",
    };
    let xid = query
        .get(4..8)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
    let mut code = [0u8; 32];
    code[0] = status as u8;
    code[1..=text.len()].copy_from_slice(text);
    let write = |buf: &mut [u8]| -> Result<usize, peregrine_wire::Error> {
        let mut w = DhcpWriter::new(buf, peregrine_wire::dhcp::DEFAULT_MAX_MESSAGE_LEN)?;
        w.header(&BootpHeader {
            op: 2,
            htype: 1,
            hlen: 0,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
        });
        w.message_type(MessageType::LeaseQueryDone)?;
        w.option_ipv4(opt::SERVER_ID, local_ip)?;
        w.option(opt::STATUS_CODE, &code[..=text.len()])?;
        w.finish()
    };
    // The buffer holds a whole message: a caller's mistake, not the requestor's.
    write(buf).expect("a DHCPLEASEQUERYDONE fits any message buffer")
}
