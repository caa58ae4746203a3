//! Writing replies: options in the client's order, option 82 echoed, the RFC 2131 §4.1
//! destination.

use std::net::Ipv4Addr;

use peregrine_config::model::LeaseTimes;
use peregrine_wire::dhcp::RelayAgentInfo;
use peregrine_wire::dhcp::{
    BootpHeader, CLIENT_PORT, DEFAULT_MAX_MESSAGE_LEN, DhcpMessage, DhcpWriter, FLAG_BROADCAST,
    MessageType, SERVER_PORT, opt,
};
use peregrine_wire::{Error, MacAddr};

use crate::binding::{Binding, BindingEvent};
use crate::engine::{Engine, Request};
use crate::scope::Scope;
use crate::verdict::{Destination, DropReason, NextHop, Verdict};

/// Lease time and timers to put in a reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseGrant {
    valid: u32,
    renew: u32,
    rebind: u32,
}

impl LeaseGrant {
    /// A lease of `valid` seconds, its timers in the proportions the scope's have to its lease
    /// time (a cached lease's remainder, a lease the client asked to be shorter, one the MCLT
    /// shortened).
    pub(crate) fn scaled(t: LeaseTimes, valid: u32) -> LeaseGrant {
        let scale = |x: u32| (u64::from(x) * u64::from(valid) / u64::from(t.valid.max(1))) as u32;
        LeaseGrant {
            valid,
            renew: scale(t.renew),
            rebind: scale(t.rebind),
        }
    }
}

/// The lease time to give a client: the scope's, or the one its request asks for (option 51)
/// within the scope's `min-lease-time` and `max-lease-time`, as RFC 2131 §4.3.1 lets a server.
pub(crate) fn asked_lease(t: LeaseTimes, msg: &DhcpMessage<'_>) -> u32 {
    if t.min == t.max {
        return t.valid;
    }
    msg.lease_time()
        .map_or(t.valid, |asked| asked.clamp(t.min, t.max))
}

pub(crate) struct ReplySpec<'a> {
    pub(crate) kind: MessageType,
    pub(crate) yiaddr: Ipv4Addr,
    pub(crate) lease: Option<LeaseGrant>,
    pub(crate) scope: &'a Scope,
    /// Classes whose options apply: the request's, or those stashed with the binding.
    pub(crate) classes: u32,
    /// The client's reservation in `scope`, whose options and host name apply.
    pub(crate) reservation: Option<usize>,
    /// An ACK that answers a DISCOVER (RFC 4039): it carries option 80.
    pub(crate) rapid_commit: bool,
}

/// Options the engine writes itself, never from configuration.
fn engine_owned(code: u8) -> bool {
    matches!(
        code,
        opt::PAD
            | opt::END
            | opt::REQUESTED_IP
            | opt::LEASE_TIME
            | opt::OVERLOAD
            | opt::MESSAGE_TYPE
            | opt::SERVER_ID
            | opt::PARAMETER_REQUEST_LIST
            | opt::MAX_MESSAGE_SIZE
            | opt::RENEWAL_TIME
            | opt::REBINDING_TIME
            | opt::CLIENT_ID
            | opt::RAPID_COMMIT
            | opt::RELAY_AGENT_INFO
            | opt::SUBNET_SELECTION
    )
}

/// Options sent to a client that sends no parameter request list.
const DEFAULT_OPTIONS: [u8; 6] = [
    opt::SUBNET_MASK,
    opt::ROUTER,
    opt::DNS_SERVERS,
    opt::DOMAIN_NAME,
    opt::BROADCAST_ADDRESS,
    opt::NTP_SERVERS,
];

impl Request<'_, '_> {
    /// Our server identifier towards this client in `scope`: the relay's override (RFC 5107,
    /// option 82 sub-option 11), so that the client's unicasts reach the relay, else the
    /// scope's.
    pub(crate) fn server_id_in(&self, scope: &Scope) -> Ipv4Addr {
        self.rai
            .as_ref()
            .and_then(RelayAgentInfo::server_id_override)
            .unwrap_or_else(|| scope.server_id(self.meta))
    }

    /// Whether `sid`, the server identifier the client named, is ours: the scope's, or the
    /// override its relay asked us to use.
    pub(crate) fn names_us(&self, scope: &Scope, sid: Ipv4Addr) -> bool {
        sid == scope.server_id(self.meta)
            || self
                .rai
                .as_ref()
                .and_then(RelayAgentInfo::server_id_override)
                == Some(sid)
    }
}

impl Engine {
    pub(crate) fn reply(
        &self,
        r: &Request<'_, '_>,
        spec: &ReplySpec<'_>,
        tx: &mut [u8],
        event: Option<BindingEvent>,
    ) -> Verdict {
        match (self.write_reply(r, spec, tx), event) {
            (Ok((len, dst)), Some(event)) => Verdict::Defer {
                kind: spec.kind,
                len,
                dst,
                event,
            },
            (Ok((len, dst)), None) => Verdict::Reply {
                kind: spec.kind,
                len,
                dst,
            },
            // The binding change stands even if the reply cannot be sent: the client will retry.
            (Err(_), Some(event)) => Verdict::Record { event },
            (Err(_), None) => Verdict::Drop(DropReason::ReplyTooLarge),
        }
    }

    /// The reply `spec` to a request that bound its `yiaddr` to the client as `binding`: held
    /// until that change is durable.
    pub(crate) fn reply_bound(
        &self,
        r: &Request<'_, '_>,
        spec: &ReplySpec<'_>,
        binding: Binding,
        tx: &mut [u8],
    ) -> Verdict {
        let event = BindingEvent {
            scope: spec.scope.id,
            address: spec.yiaddr,
            binding,
        };
        self.reply(r, spec, tx, Some(event))
    }

    /// The options a reply may carry for `code`, most specific first: reservation, classes,
    /// scope, server.
    pub(crate) fn option_value<'a>(
        &'a self,
        scope: &'a Scope,
        reservation: Option<usize>,
        classes: u32,
        code: u8,
    ) -> Option<&'a [u8]> {
        reservation
            .and_then(|i| scope.reservations.list[i].options.get(code))
            .or_else(|| {
                if classes == 0 {
                    return None;
                }
                self.classes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| classes & (1 << i) != 0)
                    .find_map(|(_, c)| c.options.get(code))
            })
            .or_else(|| scope.options.get(code))
            .or_else(|| self.settings.options.get(code))
    }

    fn write_reply(
        &self,
        r: &Request<'_, '_>,
        spec: &ReplySpec<'_>,
        tx: &mut [u8],
    ) -> Result<(usize, Destination), Error> {
        let request = r.msg.packet();
        let nak = spec.kind == MessageType::Nak;
        let max = r
            .msg
            .max_message_size()
            .map_or(DEFAULT_MAX_MESSAGE_LEN, |m| {
                usize::from(m).saturating_sub(28)
            })
            .max(DEFAULT_MAX_MESSAGE_LEN);
        let mut w = DhcpWriter::new(tx, max)?;
        let mut header = BootpHeader::reply_to(request);
        header.yiaddr = spec.yiaddr;
        let giaddr = request.giaddr();
        if nak {
            // RFC 2131 section 4.3.2: a NAK through a relay asks it to broadcast.
            if !giaddr.is_unspecified() {
                header.flags |= FLAG_BROADCAST;
            }
        } else if spec.kind == MessageType::Ack && !spec.rapid_commit {
            // RFC 2131 table 3: an ACK carries the request's ciaddr; an OFFER and a NAK 0 (and
            // an ACK in place of an OFFER, like it).
            header.ciaddr = request.ciaddr();
        }
        // BOOTP's next server and boot file (DOCSIS modems, PXE): from the options that name
        // them, most specific first; option 66 only when it is an address.
        let boot = |code| {
            (self.boot_options && !nak)
                .then(|| self.option_value(spec.scope, spec.reservation, spec.classes, code))
                .flatten()
        };
        if let Some(ip) = boot(opt::TFTP_SERVER)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<Ipv4Addr>().ok())
        {
            header.siaddr = ip;
        }
        w.header(&header);
        if let Some(file) = boot(opt::BOOTFILE_NAME) {
            // A name too long for the field is sent as option 67 only.
            let _ = w.file(file);
        }
        w.message_type(spec.kind)?;
        // The reply leaves from our own address; option 54 may name the relay's override.
        let server_id = spec.scope.server_id(r.meta);
        w.option_ipv4(opt::SERVER_ID, r.server_id_in(spec.scope))?;
        // RFC 6842: the client identifier the client sent comes back unaltered, in every reply.
        if let Some(id) = r.msg.client_id() {
            let mut scratch = [0u8; 255];
            if let Ok(v) = id.contiguous(&mut scratch) {
                w.option(opt::CLIENT_ID, v)?;
            }
        }
        if spec.rapid_commit {
            w.option(opt::RAPID_COMMIT, &[])?;
        }
        if let Some(l) = spec.lease {
            w.option_u32(opt::LEASE_TIME, l.valid)?;
            w.option_u32(opt::RENEWAL_TIME, l.renew)?;
            w.option_u32(opt::REBINDING_TIME, l.rebind)?;
        }
        if nak {
            w.option(opt::MESSAGE, b"requested address not available")?;
        } else {
            let reservation = spec.reservation;
            // A client's list may repeat codes; each is written once.
            let mut written = [0u64; 4];
            let mut put = |w: &mut DhcpWriter<'_>, code: u8| {
                let bit = 1u64 << (code % 64);
                if engine_owned(code) || written[usize::from(code / 64)] & bit != 0 {
                    return;
                }
                written[usize::from(code / 64)] |= bit;
                // A reservation's host name, else a configured option 12 (a class's, say).
                let value = if code == opt::HOSTNAME {
                    reservation
                        .and_then(|i| {
                            spec.scope.reservations.list[i]
                                .hostname
                                .as_deref()
                                .map(str::as_bytes)
                        })
                        .or_else(|| self.option_value(spec.scope, reservation, spec.classes, code))
                } else {
                    self.option_value(spec.scope, reservation, spec.classes, code)
                };
                if let Some(v) = value {
                    // An option that does not fit is left out rather than failing the reply.
                    let _ = w.option(code, v);
                }
            };
            match r.msg.parameter_request_list() {
                // Nearly every list arrives in one piece: walk the slice, not the fragments.
                Some(prl) => match prl.as_slice() {
                    Some(codes) => codes.iter().for_each(|code| put(&mut w, *code)),
                    None => prl.bytes().for_each(|code| put(&mut w, code)),
                },
                None => DEFAULT_OPTIONS.iter().for_each(|code| put(&mut w, *code)),
            }
        }
        if let Some(sel) = r.msg.subnet_selection() {
            w.option_ipv4(opt::SUBNET_SELECTION, sel)?;
        }
        // RFC 3046 section 2.2: echo the relay agent information, last and verbatim.
        if let Some(rai) = r.rai.as_ref().filter(|i| !i.as_bytes().is_empty()) {
            w.option(opt::RELAY_AGENT_INFO, rai.as_bytes())?;
        }
        let len = w.finish()?;
        Ok((len, destination(r, spec, server_id)))
    }
}

/// RFC 2131 section 4.1, with the RFC 8357 relay source port.
fn destination(r: &Request<'_, '_>, spec: &ReplySpec<'_>, server_id: Ipv4Addr) -> Destination {
    let p = r.msg.packet();
    let giaddr = p.giaddr();
    let (ip, port, next_hop) = if !giaddr.is_unspecified() {
        let port = if r
            .rai
            .as_ref()
            .and_then(RelayAgentInfo::relay_source_port)
            .is_some()
        {
            r.meta.src_port
        } else {
            SERVER_PORT
        };
        (giaddr, port, NextHop::Sender)
    } else if spec.kind == MessageType::Nak {
        (Ipv4Addr::BROADCAST, CLIENT_PORT, NextHop::Broadcast)
    } else if !p.ciaddr().is_unspecified() {
        (p.ciaddr(), CLIENT_PORT, NextHop::Sender)
    } else if p.broadcast() || spec.yiaddr.is_unspecified() {
        (Ipv4Addr::BROADCAST, CLIENT_PORT, NextHop::Broadcast)
    } else {
        let mac = p.client_mac().unwrap_or(MacAddr::BROADCAST);
        (spec.yiaddr, CLIENT_PORT, NextHop::Client(mac))
    };
    Destination {
        ip,
        port,
        next_hop,
        src_ip: server_id,
    }
}
