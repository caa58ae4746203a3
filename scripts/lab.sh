#!/usr/bin/env bash
# A self-contained lab: builds Peregrine, creates network namespaces, runs a failover pair on
# AF_PACKET (config/lab-primary.toml, config/lab-secondary.toml), leases addresses to real
# clients through a relay that forwards to both, stops one server and shows the clients renew
# with the survivor, restarts it and shows the pair catch up to NORMAL, and removes everything.
# Run as root on Debian 12:  scripts/lab.sh
#
#                                          r-up  10.250.0.2 --- lab0 10.250.0.1 [pglab-srv  primary  ]
#   [pglab-c1] c1 --- r-c1 10.251.0.1 [pglab-rly: dhcrelay -a]                     fo0 10.253.0.1
#                                          r-up2 10.250.1.2 --- lab0 10.250.1.1 [pglab-srv2 secondary]  |
#                                                                                    fo1 10.253.0.2 ----+
#   [pglab-c2] c2 --- [pglab-sw: bridge] --- lab1 10.252.0.1 (primary), lab1 10.252.0.2 (secondary)
#
# dhclient in pglab-c1 is relayed with option 82 (circuit-id r-c1) to both servers; udhcpc in
# pglab-c2 is on a segment both servers are attached to. The servers keep each other informed
# over the dedicated failover link fo0-fo1. Traffic stays in the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "scripts/lab.sh: run as root (it creates network namespaces)" >&2; exit 1; }

need=()
for p in isc-dhcp-relay isc-dhcp-client udhcpc busybox iproute2 curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "--- installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
echo "--- building peregrine (release)"
cargo build --release -q -p peregrine
bin=$root/target/release/peregrine
"$bin" check-config config/lab-primary.toml
"$bin" check-config config/lab-secondary.toml

namespaces="pglab-srv pglab-srv2 pglab-rly pglab-sw pglab-c1 pglab-c2"
work=$(mktemp -d /tmp/pglab.XXXXXX)
declare -A pid
cleanup() {
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in $namespaces; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup

rm -rf /tmp/pglab-leases-primary /tmp/pglab-leases-secondary
for ns in $namespaces; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add lab0 netns pglab-srv type veth peer name r-up netns pglab-rly
ip link add lab0 netns pglab-srv2 type veth peer name r-up2 netns pglab-rly
ip link add r-c1 netns pglab-rly type veth peer name c1 netns pglab-c1
ip link add fo0 netns pglab-srv type veth peer name fo1 netns pglab-srv2
ip -n pglab-sw link add br0 type bridge
ip -n pglab-sw link set br0 up
for end in "pglab-srv lab1 p-srv" "pglab-srv2 lab1 p-srv2" "pglab-c2 c2 p-c2"; do
    set -- $end
    ip link add "$2" netns "$1" type veth peer name "$3" netns pglab-sw
    ip -n pglab-sw link set "$3" master br0
    ip -n pglab-sw link set "$3" up
done
ip -n pglab-srv addr add 10.250.0.1/24 dev lab0
ip -n pglab-srv addr add 10.252.0.1/24 dev lab1
ip -n pglab-srv addr add 10.253.0.1/24 dev fo0
ip -n pglab-srv2 addr add 10.250.1.1/24 dev lab0
ip -n pglab-srv2 addr add 10.252.0.2/24 dev lab1
ip -n pglab-srv2 addr add 10.253.0.2/24 dev fo1
ip -n pglab-rly addr add 10.250.0.2/24 dev r-up
ip -n pglab-rly addr add 10.250.1.2/24 dev r-up2
ip -n pglab-rly addr add 10.251.0.1/24 dev r-c1
for l in "pglab-srv lab0" "pglab-srv lab1" "pglab-srv fo0" "pglab-srv2 lab0" "pglab-srv2 lab1" \
         "pglab-srv2 fo1" "pglab-rly r-up" "pglab-rly r-up2" "pglab-rly r-c1" "pglab-c1 c1" "pglab-c2 c2"; do
    set -- $l; ip -n "$1" link set "$2" up
done
ip netns exec pglab-rly sysctl -qw net.ipv4.ip_forward=1
# The servers answer relayed clients from their lab0 address; route the way back.
ip -n pglab-srv route add 10.251.0.0/24 via 10.250.0.2
ip -n pglab-srv2 route add 10.251.0.0/24 via 10.250.1.2

# start NAME: runs the server of `NAME` (primary, secondary) in its namespace.
start() {
    local ns=pglab-srv; [ "$1" = secondary ] && ns=pglab-srv2
    ip netns exec "$ns" "$bin" run --config "config/lab-$1.toml" 2>> "$work/$1.log" &
    pid[$1]=$!
}
# state NAME: the server's failover state and its partner's, from GET /v1/failover.
state() {
    local ns=pglab-srv; [ "$1" = secondary ] && ns=pglab-srv2
    ip netns exec "$ns" curl -s --max-time 2 http://127.0.0.1:9167/v1/failover \
        | sed -E 's/.*"state":"([^"]*)".*"partner_state":("([^"]*)"|null).*/\1 (partner: \3)/; s/partner: \)/partner: not heard)/' || true
}
# wait_for NAME TEXT SECONDS: until the server's state line starts with TEXT.
wait_for() {
    for _ in $(seq 1 $(( $3 * 5 ))); do
        case "$(state "$1")" in "$2"*) return 0 ;; esac
        sleep 0.2
    done
    echo "lab: the $1 is not in $2 after $3 s: $(state "$1")" >&2
    return 1
}

failed=0
echo "--- starting the pair: peregrine primary in pglab-srv, secondary in pglab-srv2"
start secondary
start primary
wait_for primary "NORMAL (partner: NORMAL)" 30 || failed=1
wait_for secondary "NORMAL (partner: NORMAL)" 30 || failed=1
echo "primary:   $(state primary)"
echo "secondary: $(state secondary)"
ip netns exec pglab-rly dhcrelay -4 -d -a -id r-c1 -iu r-up -iu r-up2 10.250.0.1 10.250.1.1 \
    > "$work/dhcrelay.log" 2>&1 &
pid[relay]=$!
sleep 1

echo "--- dhclient behind the relay (option 82 added by dhcrelay, forwarded to both servers)"
timeout 30 ip netns exec pglab-c1 dhclient -4 -1 -v -lf "$work/dhclient.leases" -pf "$work/dhclient.pid" c1 \
    > "$work/dhclient.log" 2>&1 || failed=1
grep -E "DHCPOFFER|DHCPACK|bound to" "$work/dhclient.log" || failed=1
c1=$(ip -n pglab-c1 -4 -o addr show dev c1 | awk '{print $4}' | cut -d/ -f1)
echo "--- udhcpc on the segment both servers are attached to"
timeout 30 ip netns exec pglab-c2 busybox udhcpc -i c2 -n -q -t 5 -s /bin/true > "$work/udhcpc.log" 2>&1 || failed=1
grep -E "obtained" "$work/udhcpc.log" || failed=1
c2=$(sed -nE 's/.*lease of ([0-9.]+) obtained.*/\1/p' "$work/udhcpc.log" | tail -1)
echo "--- each lease, as both servers know it (GET /v1/leases/IP)"
for ip in $c1 $c2; do
    for s in "primary pglab-srv" "secondary pglab-srv2"; do
        set -- $s
        echo "$1: $(ip netns exec "$2" curl -s --max-time 2 "http://127.0.0.1:9167/v1/leases/$ip")"
        ip netns exec "$2" curl -s --max-time 2 "http://127.0.0.1:9167/v1/leases/$ip" \
            | grep -q '"state":"active"' || failed=1
    done
done

echo "--- the primary stops; the secondary serves on alone"
kill -TERM "${pid[primary]}"; wait "${pid[primary]}" 2>/dev/null || true; unset 'pid[primary]'
wait_for secondary "COMMUNICATIONS-INTERRUPTED" 30 || failed=1
echo "secondary: $(state secondary)"
echo "--- the clients ask again for their addresses: the survivor confirms them"
timeout 30 ip netns exec pglab-c1 dhclient -4 -1 -v -lf "$work/dhclient.leases" -pf "$work/dhclient.pid" c1 \
    > "$work/dhclient-2.log" 2>&1 || failed=1
grep -E "DHCPREQUEST|DHCPACK|bound to" "$work/dhclient-2.log" || failed=1
# dhclient logs the relay as the sender; the lease names the server that answered.
grep -q "DHCPACK of $c1 " "$work/dhclient-2.log" \
    && [ "$(sed -nE 's/.*dhcp-server-identifier ([0-9.]+);/\1/p' "$work/dhclient.leases" | tail -1)" = 10.250.1.1 ] \
    || { echo "lab: c1 did not keep $c1 from the secondary" >&2; failed=1; }
timeout 30 ip netns exec pglab-c2 busybox udhcpc -i c2 -n -q -t 5 -r "$c2" -s /bin/true > "$work/udhcpc-2.log" 2>&1 || failed=1
grep -E "obtained" "$work/udhcpc-2.log" || failed=1
grep -q "lease of $c2 obtained from 10.252.0.2" "$work/udhcpc-2.log" || { echo "lab: c2 did not keep $c2 from the secondary" >&2; failed=1; }

echo "--- the primary comes back with its lease directory and the pair catches up"
start primary
wait_for primary "NORMAL (partner: NORMAL)" 60 || failed=1
wait_for secondary "NORMAL (partner: NORMAL)" 60 || failed=1
echo "primary:   $(state primary)"
echo "secondary: $(state secondary)"

echo "--- /metrics from the primary's control plane (127.0.0.1:9167 in pglab-srv), an excerpt"
ip netns exec pglab-srv curl -s http://127.0.0.1:9167/metrics \
    | grep -E '^peregrine_(dhcp_messages_(received|sent)_total\{type="(discover|offer|request|ack)"\}|pool_addresses\{.*state="(active|free)"\}|failover_(state|connected|updates_total))' \
    || failed=1
echo "--- server logs"
for s in primary secondary; do kill -TERM "${pid[$s]}" 2>/dev/null || true; done
sleep 1
for s in primary secondary; do echo "[$s]"; cat "$work/$s.log"; done
if [ "$failed" -ne 0 ]; then
    echo "lab: a step failed (logs in $work)" >&2
    exit 1
fi
echo "lab: the pair leased both clients, kept them through a server's stop, and caught up"
