//! tshark, an independent dissector, reads the frames our writer builds.
//!
//! Needs `tshark` (Debian package `tshark`, installed by `.ci/run`). Without it the test says so
//! and passes only outside CI; in CI (`CI` set) a missing tshark fails the test.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{BootpHeader, DhcpMessage, DhcpWriter, MessageType, opt};
use peregrine_wire::ethernet::{VlanTag, VlanTags, ethertype};
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, build_udp_frame, demux};

use crate::samples::{RELAYED_DISCOVER, write_offer};

fn tshark_available() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark is required in CI (apt-get install tshark)"
        );
        eprintln!("tshark not installed: skipping the tshark cross-check");
    }
    found
}

/// Runs tshark over `frames` and returns, per frame, the requested fields.
fn dissect(frames: &[&[u8]], fields: &[&str]) -> Vec<Vec<String>> {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    for f in frames {
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(f);
    }
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "peregrine-wire-tshark-{}-{call}.pcap",
        std::process::id()
    ));
    std::fs::write(&path, &pcap).unwrap();
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(&path);
    cmd.args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
    ]);
    cmd.args(["-E", "separator=|", "-E", "aggregator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    if std::env::var_os("KEEP_PCAP").is_none() {
        std::fs::remove_file(&path).ok();
    }
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

#[test]
fn tshark_reads_our_offer_frame() {
    if !tshark_available() {
        return;
    }
    let Demuxed::Udp { payload, l2, .. } = demux(RELAYED_DISCOVER).unwrap() else {
        panic!()
    };
    let request = DhcpMessage::parse(payload).unwrap();
    let vlans = VlanTags::double(
        VlanTag::new(ethertype::QINQ, 200, 0),
        VlanTag::new(ethertype::VLAN, 10, 0),
    );
    let mut buf = [0u8; 2048];
    let range = write_offer(&mut buf, &request, l2.src, vlans).unwrap();
    let rows = dissect(
        &[&buf[range]],
        &[
            "ieee8021ad.id",
            "ip.checksum.status",
            "udp.checksum.status",
            "ip.dst",
            "udp.dstport",
            "dhcp.option.dhcp",
            "dhcp.ip.your",
            "dhcp.option.dhcp_server_id",
            "dhcp.option.subnet_mask",
            "dhcp.option.router",
            "dhcp.option.domain_name",
            "dhcp.option.agent_information_option.agent_circuit_id",
            "dhcp.option.agent_information_option.link_selection",
            "dhcp.option.type",
            "vlan.id",
        ],
    );
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r[0], "200", "802.1ad service tag");
    assert_eq!(
        (r[1].as_str(), r[2].as_str()),
        ("1", "1"),
        "tshark: checksums good"
    );
    assert_eq!((r[3].as_str(), r[4].as_str()), ("10.201.0.1", "67"));
    assert_eq!(r[5], "2", "OFFER");
    assert_eq!(r[6], "10.201.0.77");
    assert_eq!(r[7], "10.200.0.1");
    assert_eq!(
        (r[8].as_str(), r[9].as_str(), r[10].as_str()),
        ("255.255.0.0", "10.201.0.1", "isp.example")
    );
    assert_eq!(r[11], "657468312f312f313a313030", "circuit id echoed");
    assert_eq!(r[12], "10.201.0.0");
    // Options in parameter request list order after 53, 54, 51, then 82 and END.
    // tshark reports END through `dhcp.option.end`, with a type of 0 in this list.
    assert_eq!(r[13], "53,54,51,1,3,6,15,58,59,82,0");
    assert_eq!(r[14], "10", "802.1Q customer tag");
}

#[test]
fn tshark_reads_overloaded_and_split_options() {
    if !tshark_available() {
        return;
    }
    let mut dhcp = [0u8; 1024];
    let mut w = DhcpWriter::new(&mut dhcp, 300).unwrap();
    let mut h = BootpHeader::reply_to(&peregrine_wire::dhcp::DhcpPacket::new_unchecked(
        &[0u8; 240][..],
    ));
    h.htype = 1;
    h.hlen = 6;
    h.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    h.yiaddr = Ipv4Addr::new(10, 9, 9, 9);
    w.header(&h);
    w.message_type(MessageType::Ack).unwrap();
    w.option_ipv4(opt::SERVER_ID, Ipv4Addr::new(10, 9, 0, 1))
        .unwrap();
    // 59 bytes of options field: these three fill it, so the next ones spill into file/sname.
    w.option(opt::DOMAIN_NAME, &[b'd'; 30]).unwrap();
    w.option(opt::HOSTNAME, &[b'h'; 100]).unwrap();
    w.option(opt::VENDOR_SPECIFIC, &[7u8; 50]).unwrap();
    let len = w.finish().unwrap();
    assert_eq!(len, 300);
    let m = DhcpMessage::parse(&dhcp[..len]).unwrap();
    assert_eq!(m.overload(), 3);

    // And a 600-byte option split into three instances (RFC 3396).
    let mut long = [0u8; 1024];
    let mut w = DhcpWriter::new(&mut long, 1024).unwrap();
    w.header(&h);
    w.message_type(MessageType::Ack).unwrap();
    // A site-specific code (224), so tshark does not try to read the value's structure.
    w.option(224, &[1u8; 600]).unwrap();
    let long_len = w.finish().unwrap();

    let hdr = UdpFrameHeaders {
        dst_mac: MacAddr::BROADCAST,
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        vlans: VlanTags::NONE,
        src_ip: Ipv4Addr::new(10, 9, 0, 1),
        dst_ip: Ipv4Addr::BROADCAST,
        src_port: 67,
        dst_port: 68,
        ttl: 64,
    };
    let mut f1 = [0u8; 2048];
    let n1 = build_udp_frame(&mut f1, &hdr, |p| {
        p[..len].copy_from_slice(&dhcp[..len]);
        Ok(len)
    })
    .unwrap();
    let mut f2 = [0u8; 2048];
    let n2 = build_udp_frame(&mut f2, &hdr, |p| {
        p[..long_len].copy_from_slice(&long[..long_len]);
        Ok(long_len)
    })
    .unwrap();
    let rows = dissect(
        &[&f1[..n1], &f2[..n2]],
        &[
            "udp.checksum.status",
            "dhcp.option.type",
            "dhcp.option.length",
            "dhcp.option.end",
        ],
    );
    assert_eq!(rows[0][0], "1", "UDP checksum good");
    let mut codes: Vec<&str> = rows[0][1]
        .split(',')
        .filter(|c| !matches!(*c, "0" | "255"))
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["12", "15", "43", "52", "53", "54"],
        "tshark finds every option, overloaded ones included"
    );
    assert_eq!(
        rows[0][3], "255,255,255",
        "END in the options field, file and sname"
    );
    assert_eq!(rows[1][0], "1", "UDP checksum good");
    assert_eq!(
        rows[1][1], "53,224,224,224,0",
        "three instances of the split option"
    );
    assert_eq!(rows[1][2], "1,255,255,90");
    assert_eq!(rows[1][3], "255");
}
