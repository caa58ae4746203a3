#!/usr/bin/env python3
"""Writes the failover messages of the ISC lab's captures (shared/research/dhcpd-failover/
captures/*.pcap) as text for the replay tests: one line per message, `<epoch seconds> <P->S|S->P>
<hex>`, in capture order, split from the TCP streams by the length field. Needs tshark.

    python3 scripts/failover-captures.py ../shared/research/dhcpd-failover/captures crates/failover/tests/data
"""
import subprocess
import sys
from pathlib import Path

PRIMARY = "10.98.0.1"


def messages(pcap):
    fields = ["frame.time_epoch", "ip.src", "tcp.stream", "tcp.payload"]
    cmd = ["tshark", "-r", str(pcap), "-Y", "tcp.len>0 && !tcp.analysis.retransmission", "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    pending = {}
    for line in out.splitlines():
        time, src, stream, payload = line.split("\t")
        key = (stream, src)
        buf = pending.get(key, b"") + bytes.fromhex(payload.replace(":", ""))
        while len(buf) >= 2:
            length = int.from_bytes(buf[:2], "big")
            if length < 12 or len(buf) < length:
                break
            direction = "P->S" if src == PRIMARY else "S->P"
            yield f"{float(time):.3f} {direction} {buf[:length].hex()}"
            buf = buf[length:]
        pending[key] = buf


def main():
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    for name in ["handshake", "partition", "recover"]:
        lines = list(messages(src / f"{name}.pcap"))
        (dst / f"{name}.messages.txt").write_text("\n".join(lines) + "\n")
        print(name, len(lines))


if __name__ == "__main__":
    main()
