//! Micro-benchmarks of the wire hot path: `cargo bench -p peregrine-wire`.
//!
//! `parse_relayed_discover`: demultiplex a relayed DISCOVER frame (IPv4 + UDP checksums), index
//! its options and read option 82. `emit_offer_frame`: write the OFFER (options in request list
//! order, option 82 echoed) and its Ethernet/IPv4/UDP headers with checksums. divan's
//! `AllocProfiler` prints allocations per iteration beside the time: both must show none.
//!
//! `reference_dhcproto_*`: the same message decoded and an equivalent OFFER encoded by dhcproto
//! (owned `Message`; DHCP bytes only, no L2-L4 work), measured in the same run for comparison.

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/samples.rs"]
mod samples;

use divan::{AllocProfiler, Bencher, black_box};
use peregrine_wire::dhcp::DhcpMessage;
use peregrine_wire::frame::{Demuxed, demux};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 500, sample_size = 2000)]
fn parse_relayed_discover(b: Bencher<'_, '_>) {
    let mut scratch = [0u8; 1024];
    b.bench_local(|| {
        let Ok(Demuxed::Udp { payload, .. }) = demux(black_box(samples::RELAYED_DISCOVER)) else {
            unreachable!()
        };
        let msg = DhcpMessage::parse(payload).expect("golden frame parses");
        let rai = msg
            .relay_agent_info(&mut scratch)
            .expect("well formed")
            .expect("present");
        black_box((
            msg.message_type(),
            msg.client_id().map(|v| v.len()),
            rai.circuit_id(),
            rai.remote_id(),
        ));
    });
}

#[divan::bench(sample_count = 500, sample_size = 2000)]
fn emit_offer_frame(b: Bencher<'_, '_>) {
    let Ok(Demuxed::Udp { payload, l2, .. }) = demux(samples::RELAYED_DISCOVER) else {
        unreachable!()
    };
    let request = DhcpMessage::parse(payload).expect("golden frame parses");
    let mut tx = [0u8; 2048];
    b.bench_local(|| {
        let range =
            samples::write_offer(&mut tx, black_box(&request), l2.src, l2.vlans).expect("fits");
        black_box(range);
    });
}

#[divan::bench(sample_count = 500, sample_size = 200)]
fn reference_dhcproto_decode(b: Bencher<'_, '_>) {
    use dhcproto::{Decodable, Decoder};
    let Ok(Demuxed::Udp { payload, .. }) = demux(samples::RELAYED_DISCOVER) else {
        unreachable!()
    };
    b.bench_local(|| {
        let msg =
            dhcproto::v4::Message::decode(&mut Decoder::new(black_box(payload))).expect("decodes");
        black_box(msg);
    });
}

#[divan::bench(sample_count = 500, sample_size = 200)]
fn reference_dhcproto_encode(b: Bencher<'_, '_>) {
    use dhcproto::Encodable;
    use dhcproto::v4::{DhcpOption, Message, MessageType};
    use std::net::Ipv4Addr;
    let Ok(Demuxed::Udp { payload, .. }) = demux(samples::RELAYED_DISCOVER) else {
        unreachable!()
    };
    let request = DhcpMessage::parse(payload).expect("golden frame parses");
    let p = request.packet();
    let rai = request
        .relay_agent_info_raw()
        .and_then(|v| v.as_slice())
        .expect("present")
        .to_vec();
    b.bench_local(|| {
        let mut m = Message::new_with_id(
            p.xid(),
            Ipv4Addr::UNSPECIFIED,
            samples::OFFERED,
            Ipv4Addr::UNSPECIFIED,
            p.giaddr(),
            p.chaddr(),
        );
        m.set_opcode(dhcproto::v4::Opcode::BootReply)
            .set_flags(p.flags().into());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Offer));
        o.insert(DhcpOption::ServerIdentifier(samples::SERVER_IP));
        o.insert(DhcpOption::AddressLeaseTime(3600));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)));
        o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 201, 0, 1)]));
        o.insert(DhcpOption::DomainNameServer(vec![
            Ipv4Addr::new(10, 0, 0, 53),
            Ipv4Addr::new(10, 0, 0, 54),
        ]));
        o.insert(DhcpOption::DomainName("isp.example".into()));
        o.insert(DhcpOption::Renewal(1800));
        o.insert(DhcpOption::Rebinding(3150));
        o.insert(DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
            dhcproto::v4::OptionCode::RelayAgentInformation,
            rai.clone(),
        )));
        black_box(m.to_vec().expect("encodes"));
    });
}
