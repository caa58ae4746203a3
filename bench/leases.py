#!/usr/bin/env python3
"""Lease files for the pair benches (bench/isc-updreqall.sh).

  leases.py N kea      N leases, each its own client, running for a day, as a Kea 2.2 lease file
  leases.py N isc [PEER]  the same as ISC dhcpd's lease file, with the failover pair PEER
                       (default isc-updreqall) in NORMAL
  leases.py count FILE the addresses an ISC lease file last shows active
"""
import sys
import time

PEER = "isc-updreqall"
FIRST = (10 << 24) | (64 << 16) | (1 << 8)


def ip(a):
    return "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)


def mac(i):
    return "02:%02x:%02x:%02x:%02x:%02x" % (
        (i >> 32) & 255, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)


def isc_time(t):
    return time.strftime("%w %Y/%m/%d %H:%M:%S", time.gmtime(t))


def write(n, fmt, out, peer=PEER):
    now = int(time.time())
    if fmt == "kea":
        out.write("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,"
                  "fqdn_rev,hostname,state,user_context\n")
        for i in range(n):
            out.write("%s,%s,,86400,%d,1,0,0,,0,\n" % (ip(FIRST + i), mac(i), now + 86400))
        return
    since = isc_time(now - 60)
    out.write('failover peer "%s" state {\n  my state normal at %s;\n'
              '  partner state normal at %s;\n}\n' % (peer, since, since))
    ends = isc_time(now + 86400)
    for i in range(n):
        out.write("lease %s {\n  starts %s;\n  ends %s;\n  tstp %s;\n  cltt %s;\n"
                  "  binding state active;\n  next binding state expired;\n"
                  "  hardware ethernet %s;\n}\n" % (ip(FIRST + i), since, ends, ends, since, mac(i)))


def count(path):
    state = {}
    current = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("lease "):
                current = line.split()[1]
            elif line.startswith("binding state ") and current:
                state[current] = line.split()[2].rstrip(";")
    return sum(1 for s in state.values() if s == "active")


if __name__ == "__main__":
    if sys.argv[1] == "count":
        print(count(sys.argv[2]))
    else:
        write(int(sys.argv[1]), sys.argv[2], sys.stdout, *sys.argv[3:4])
