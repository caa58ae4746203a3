//! Bodies of the fuzz targets. `fuzz/fuzz_targets/*.rs` run them under libFuzzer (nightly,
//! `cargo fuzz run <target>`); `crates/wire/tests/it/fuzz_corpus.rs` runs the same bodies on
//! stable over the checked-in corpus and mutations of it, so every `cargo test` exercises them.
//!
//! Each body must never panic on any input, except through its own assertions, which state
//! properties of peregrine-wire that must hold for every input.

use peregrine_wire::dhcp::{BootpHeader, DhcpMessage, DhcpWriter, OptionValue, opt};
use peregrine_wire::frame::{self, Demuxed, UdpFrameHeaders};

/// Parse a DHCP message and read everything a server could read from it.
pub(crate) fn dhcp_parse(data: &[u8]) {
    if let Ok(msg) = DhcpMessage::parse(data) {
        exercise(&msg);
    }
}

fn check_value(v: &OptionValue<'_>) {
    let total: usize = v.fragments().map(<[u8]>::len).sum();
    assert_eq!(total, v.len());
    assert_eq!(v.bytes().count(), total);
    if let Some(s) = v.as_slice() {
        assert_eq!(s.len(), total);
    }
    let mut scratch = vec![0u8; total];
    let joined = v
        .contiguous(&mut scratch)
        .expect("scratch sized to the value");
    assert!(joined.iter().copied().eq(v.bytes()));
}

fn exercise(msg: &DhcpMessage<'_>) {
    let p = msg.packet();
    let _ = (
        p.op(),
        p.htype(),
        p.hlen(),
        p.hops(),
        p.xid(),
        p.secs(),
        p.broadcast(),
    );
    let _ = (
        p.ciaddr(),
        p.yiaddr(),
        p.siaddr(),
        p.giaddr(),
        p.client_mac(),
    );
    assert!(p.chaddr().len() <= 16);
    let _ = (
        msg.message_type(),
        msg.requested_ip(),
        msg.lease_time(),
        msg.server_id(),
    );
    let _ = (
        msg.max_message_size(),
        msg.subnet_selection(),
        msg.overload(),
    );
    let values = [
        msg.parameter_request_list(),
        msg.client_id(),
        msg.hostname(),
        msg.vendor_class(),
        msg.client_fqdn(),
        msg.relay_agent_info_raw(),
    ];
    for v in values.iter().flatten() {
        check_value(v);
    }
    let mut scratch = [0u8; 1024];
    if let Ok(Some(rai)) = msg.relay_agent_info(&mut scratch) {
        for (_code, _data) in &rai {}
        let _ = (
            rai.circuit_id(),
            rai.remote_id(),
            rai.link_selection(),
            rai.subscriber_id(),
        );
        let _ = (
            rai.server_id_override(),
            rai.relay_id(),
            rai.relay_source_port(),
        );
    }
    for o in msg.options() {
        assert!(o.code != opt::PAD && o.code != opt::END);
        let v = msg
            .get(o.code)
            .expect("every listed option can be looked up");
        check_value(&v);
    }
}

/// Parse, write the same message with our writer, parse again: header and every option's
/// concatenated value must survive.
pub(crate) fn dhcp_roundtrip(data: &[u8]) {
    let Ok(msg) = DhcpMessage::parse(data) else {
        return;
    };
    let p = msg.packet();
    let header = BootpHeader {
        op: p.op(),
        htype: p.htype(),
        hlen: p.hlen(),
        hops: p.hops(),
        xid: p.xid(),
        secs: p.secs(),
        flags: p.flags(),
        ciaddr: p.ciaddr(),
        yiaddr: p.yiaddr(),
        siaddr: p.siaddr(),
        giaddr: p.giaddr(),
        chaddr: *p.chaddr_field(),
    };
    let name =
        |field: &[u8]| -> Vec<u8> { field.iter().copied().take_while(|&b| b != 0).collect() };
    let (sname, file) = (name(p.sname()), name(p.file()));
    let overload = msg.overload();

    let mut buf = vec![0u8; 2 * data.len() + 1024];
    let limit = buf.len();
    let mut writer = DhcpWriter::new(&mut buf, limit).expect("buffer above the BOOTP minimum");
    writer.header(&header);
    // Names go in first so that options cannot take their fields.
    if overload & 2 == 0 && sname.len() < 64 {
        writer.sname(&sname).expect("name fits");
    }
    if overload & 1 == 0 && file.len() < 128 {
        writer.file(&file).expect("name fits");
    }
    let mut seen = [false; 256];
    for o in msg.options() {
        if o.code == opt::OVERLOAD || seen[usize::from(o.code)] {
            continue;
        }
        seen[usize::from(o.code)] = true;
        let value: Vec<u8> = msg.get(o.code).expect("listed").bytes().collect();
        writer
            .option(o.code, &value)
            .expect("buffer sized for every option");
    }
    let len = writer
        .finish()
        .expect("finish always fits after the options did");
    assert!(len >= peregrine_wire::dhcp::MIN_MESSAGE_LEN);

    let again = DhcpMessage::parse(&buf[..len]).expect("our own output parses");
    let q = again.packet();
    // op through chaddr: the fixed fields, byte for byte.
    assert_eq!(q.as_bytes()[..44], p.as_bytes()[..44], "fixed header");
    for code in 1..=254u8 {
        if code == opt::OVERLOAD {
            continue;
        }
        let (before, after) = (msg.get(code), again.get(code));
        assert_eq!(
            before.is_some(),
            after.is_some(),
            "option {code} present in one message only"
        );
        if let (Some(before), Some(after)) = (before, after) {
            assert!(
                before.bytes().eq(after.bytes()),
                "option {code} differs after roundtrip"
            );
        }
    }
    if overload & 2 == 0 && sname.len() < 64 {
        assert_eq!(name(q.sname()), sname);
    }
    if overload & 1 == 0 && file.len() < 128 {
        assert_eq!(name(q.file()), file);
    }
}

/// Demultiplex a frame; for UDP, parse the payload as DHCP, rebuild the frame with our header
/// writer and check that it demultiplexes to the same facts.
pub(crate) fn frame_demux(data: &[u8]) {
    match frame::demux(data) {
        Ok(Demuxed::Udp {
            l2,
            l3,
            src_port,
            dst_port,
            payload,
        }) => {
            dhcp_parse(payload);
            let h = UdpFrameHeaders {
                dst_mac: l2.dst,
                src_mac: l2.src,
                vlans: l2.vlans,
                src_ip: l3.src,
                dst_ip: l3.dst,
                src_port,
                dst_port,
                ttl: l3.ttl,
            };
            let mut buf = vec![0u8; h.len() + payload.len()];
            let n = frame::build_udp_frame(&mut buf, &h, |p| {
                p[..payload.len()].copy_from_slice(payload);
                Ok(payload.len())
            })
            .expect("a received datagram fits when rebuilt");
            match frame::demux(&buf[..n]).expect("rebuilt frame demultiplexes") {
                Demuxed::Udp {
                    l2: l2b,
                    l3: l3b,
                    src_port: s,
                    dst_port: d,
                    payload: pb,
                } => {
                    assert_eq!((l2b, l3b, s, d), (l2, l3, src_port, dst_port));
                    assert_eq!(pb, payload);
                }
                other => panic!("rebuilt frame demultiplexed as {other:?}"),
            }
        }
        Ok(Demuxed::Arp { arp, .. }) => {
            let _ = (
                arp.operation(),
                arp.sender_mac(),
                arp.sender_ip(),
                arp.target_mac(),
                arp.target_ip(),
            );
        }
        Ok(Demuxed::Icmp { message, .. }) => {
            let _ = message.len();
        }
        Ok(Demuxed::OtherIp { .. } | Demuxed::Other { .. }) | Err(_) => {}
    }
}
