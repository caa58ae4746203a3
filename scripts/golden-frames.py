#!/usr/bin/env python3
"""Writes the golden frames of crates/wire/tests/golden/ (and the seed corpus of fuzz/corpus/) with an implementation independent of
peregrine-wire (Python struct packing), plus a pcap of all of them for tshark.

    python3 scripts/golden-frames.py && tshark -r crates/wire/tests/golden/golden.pcap -V

The Rust test `golden` asserts the decoded values; `golden/tshark.txt` is tshark's reading of the
same frames, kept so a reviewer can check both agree.
"""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "crates", "wire", "tests", "golden")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def opt(code, data):
    return bytes([code, len(data)]) + data


def bootp(op, xid, flags, ciaddr, giaddr, chaddr, hops=0, sname=b"", file=b""):
    h = struct.pack("!BBBBIHH", op, 1, 6, hops, xid, 7, flags)
    h += ip4(ciaddr) + ip4("0.0.0.0") + ip4("0.0.0.0") + ip4(giaddr)
    h += mac(chaddr).ljust(16, b"\0") + sname.ljust(64, b"\0") + file.ljust(128, b"\0")
    return h + bytes([99, 130, 83, 99])


def udp_ip(src, dst, sport, dport, payload, ip_options=b"", zero_udp_csum=False, frag=0x4000):
    ulen = 8 + len(payload)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, ulen)
    u = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    c = 0 if zero_udp_csum else (csum(pseudo + u) or 0xFFFF)
    u = u[:6] + struct.pack("!H", c) + u[8:]
    ihl = 5 + len(ip_options) // 4
    total = ihl * 4 + len(u)
    hdr = struct.pack("!BBHHHBBH", 0x40 | ihl, 0, total, 0x1234, frag, 64, 17, 0) + ip4(src) + ip4(dst) + ip_options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + u


def eth(dst, src, tags, ethertype, payload):
    f = mac(dst) + mac(src)
    for tpid, vid in tags:
        f += struct.pack("!HH", tpid, vid)
    return f + struct.pack("!H", ethertype) + payload


def relayed_discover():
    rai = opt(1, b"eth1/1/1:100") + opt(2, mac("00:11:22:33:44:55")) + opt(5, ip4("10.201.0.0")) \
        + opt(12, b"bng-7") + opt(19, b"")
    opts = opt(53, b"\x01") + opt(61, b"\x01" + mac("02:00:00:aa:bb:01")) + opt(12, b"cpe-01") \
        + opt(55, bytes([1, 3, 6, 15, 51, 54, 58, 59])) + opt(57, struct.pack("!H", 1500)) \
        + opt(60, b"docsis3.0") + opt(82, rai) + b"\xff"
    msg = bootp(1, 0xDEADBEEF, 0, "0.0.0.0", "10.201.0.1", "02:00:00:aa:bb:01", hops=1) + opts
    msg = msg.ljust(300, b"\0")
    return eth("02:00:00:00:00:01", "02:00:00:00:00:fe", [], 0x0800,
               udp_ip("10.201.0.1", "10.200.0.1", 67, 67, msg))


def qinq_overloaded_discover():
    # Option 55 split per RFC 3396: first part in the options field, the rest in `file`;
    # option 12 in `sname`. Option 52 = 3.
    opts = opt(53, b"\x01") + opt(52, b"\x03") + opt(55, bytes([1, 3])) + b"\x00\x00" + b"\xff"
    file = opt(55, bytes([6, 42])) + opt(50, ip4("10.202.3.4")) + b"\xff"
    sname = opt(12, b"overloaded-host") + b"\xff"
    msg = bootp(1, 0x01020304, 0x8000, "0.0.0.0", "0.0.0.0", "02:00:00:aa:bb:02", sname=sname, file=file) + opts
    msg = msg.ljust(300, b"\0")
    return eth("ff:ff:ff:ff:ff:ff", "02:00:00:aa:bb:02", [(0x88A8, 0x6000 | 200), (0x8100, 10)], 0x0800,
               udp_ip("0.0.0.0", "255.255.255.255", 68, 67, msg))


def vlan_renew_request():
    opts = opt(53, b"\x03") + opt(61, b"\x01" + mac("02:00:00:aa:bb:03")) + b"\xff"
    msg = bootp(1, 0xCAFEF00D, 0, "10.201.5.6", "0.0.0.0", "02:00:00:aa:bb:03") + opts
    msg = msg.ljust(300, b"\0")
    # IPv4 header with one 4-byte option (router alert), and no UDP checksum.
    return eth("02:00:00:00:00:01", "02:00:00:aa:bb:03", [(0x8100, 0x2000 | 42)], 0x0800,
               udp_ip("10.201.5.6", "10.200.0.1", 68, 67, msg, ip_options=b"\x94\x04\x00\x00",
                      zero_udp_csum=True))


def rapid_commit_discover():
    # RFC 4039 rapid commit, a requested lease time, and option 108 asked for (RFC 8925).
    opts = opt(53, b"\x01") + opt(80, b"") + opt(51, struct.pack("!I", 600)) \
        + opt(55, bytes([1, 3, 6, 108])) + b"\xff"
    msg = bootp(1, 0x0BADCAFE, 0x8000, "0.0.0.0", "0.0.0.0", "02:00:00:aa:bb:04") + opts
    msg = msg.ljust(300, b"\0")
    return eth("ff:ff:ff:ff:ff:ff", "02:00:00:aa:bb:04", [], 0x0800,
               udp_ip("0.0.0.0", "255.255.255.255", 68, 67, msg))


def rapid_commit_ack():
    # The server's answer: an ACK with option 80, the lease and IPv6-only preferred (1800 s).
    opts = opt(53, b"\x05") + opt(54, ip4("10.200.0.1")) + opt(80, b"") \
        + opt(51, struct.pack("!I", 600)) + opt(108, struct.pack("!I", 1800)) + b"\xff"
    msg = bytearray(bootp(2, 0x0BADCAFE, 0x8000, "0.0.0.0", "0.0.0.0", "02:00:00:aa:bb:04") + opts)
    msg[16:20] = ip4("10.200.0.123")  # yiaddr
    msg = bytes(msg).ljust(300, b"\0")
    return eth("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", [], 0x0800,
               udp_ip("10.200.0.1", "255.255.255.255", 67, 68, msg))


def leaseactive():
    # A leasequery answer (RFC 4388) to the relay at 10.201.0.1: the lease (51), the seconds
    # since the last transaction (91), and the bulk answer's base-time (152),
    # start-time-of-state (153) and dhcp-state ACTIVE (156) of RFC 6926. A bulk answer travels
    # over TCP, which tshark 4.0 does not read as DHCP: the options are shown in a datagram.
    opts = opt(53, b"\x0d") + opt(54, ip4("10.200.0.1")) + opt(51, struct.pack("!I", 3000)) \
        + opt(91, struct.pack("!I", 600)) + opt(152, struct.pack("!I", 1800000600)) \
        + opt(153, struct.pack("!I", 600)) + opt(156, b"\x02") + b"\xff"
    msg = bootp(2, 0x4C51, 0, "10.201.1.7", "10.201.0.1", "02:00:00:aa:bb:05") + opts
    return eth("02:00:00:00:00:fe", "02:00:00:00:00:01", [], 0x0800,
               udp_ip("10.200.0.1", "10.201.0.1", 67, 67, msg.ljust(300, b"\0")))


def leasequery_done():
    # The end of a bulk leasequery: status-code (151) 3, malformed query, with its text (in a
    # datagram, as above).
    opts = opt(53, b"\x0f") + opt(54, ip4("10.200.0.1")) + opt(151, b"\x03malformed query") + b"\xff"
    msg = bootp(2, 0x4C51, 0, "0.0.0.0", "10.201.0.1", "00:00:00:00:00:00") + opts
    return eth("02:00:00:00:00:fe", "02:00:00:00:00:01", [], 0x0800,
               udp_ip("10.200.0.1", "10.201.0.1", 67, 67, msg.ljust(300, b"\0")))


def arp_request():
    a = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac("02:00:00:00:00:fe") + ip4("10.200.0.254") \
        + b"\0" * 6 + ip4("10.200.0.1")
    return eth("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:fe", [], 0x0806, a + b"\0" * 18)


def fragment():
    return eth("02:00:00:00:00:01", "02:00:00:00:00:fe", [], 0x0800,
               udp_ip("10.201.0.1", "10.200.0.1", 67, 67, b"x" * 64, frag=0x2000))


FRAMES = {
    "relayed_discover": relayed_discover,
    "qinq_overloaded_discover": qinq_overloaded_discover,
    "vlan_renew_request": vlan_renew_request,
    "rapid_commit_discover": rapid_commit_discover,
    "rapid_commit_ack": rapid_commit_ack,
    "leaseactive": leaseactive,
    "leasequery_done": leasequery_done,
    "arp_request": arp_request,
    "fragment": fragment,
}


def dhcp_payload(frame):
    """The UDP payload of an Ethernet/IPv4/UDP frame, or None."""
    at = 12
    while struct.unpack("!H", frame[at:at + 2])[0] in (0x8100, 0x88A8, 0x9100):
        at += 4
    if struct.unpack("!H", frame[at:at + 2])[0] != 0x0800:
        return None
    ip = frame[at + 2:]
    if ip[9] != 17 or struct.unpack("!H", ip[6:8])[0] & 0x3FFF:
        return None
    return ip[(ip[0] & 15) * 4 + 8:]


def main():
    os.makedirs(OUT, exist_ok=True)
    for target in ("frame_demux", "dhcp_parse", "dhcp_roundtrip"):
        os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for name, fn in FRAMES.items():
        f = fn()
        with open(os.path.join(OUT, name + ".bin"), "wb") as fh:
            fh.write(f)
        pcap += struct.pack("<IIII", 0, 0, len(f), len(f)) + f
        with open(os.path.join(CORPUS, "frame_demux", name), "wb") as fh:
            fh.write(f)
        payload = dhcp_payload(f)
        if payload is not None:
            for target in ("dhcp_parse", "dhcp_roundtrip"):
                with open(os.path.join(CORPUS, target, name), "wb") as fh:
                    fh.write(payload)
    with open(os.path.join(OUT, "golden.pcap"), "wb") as fh:
        fh.write(pcap)
    print("wrote %d frames to %s" % (len(FRAMES), os.path.normpath(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
