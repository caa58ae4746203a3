#!/usr/bin/env bash
# A self-contained lab: builds Peregrine, creates network namespaces, runs the server on
# AF_PACKET with config/lab.toml, leases addresses to real clients, shows the result, and
# removes everything. Run as root on Debian 12:  scripts/lab.sh
#
#   [pglab-c1] c1 --- r-c1 10.251.0.1 [pglab-rly: dhcrelay -a] r-up 10.250.0.2 --- lab0 10.250.0.1 [pglab-srv]
#   [pglab-c2] c2 ---------------------------------------------------------------- lab1 10.252.0.1 [pglab-srv]
#
# dhclient in pglab-c1 is relayed with option 82 (circuit-id r-c1); udhcpc in pglab-c2 is a
# directly attached client. Traffic stays in the namespaces. (VLAN-tagged clients need the
# kernel's 8021q support to create a tagged interface; the dataplane tests cover tagged and
# QinQ frames with injected traffic instead.)
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
"$bin" check-config config/lab.toml

work=$(mktemp -d /tmp/pglab.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in pglab-srv pglab-rly pglab-c1 pglab-c2; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup

rm -rf /tmp/pglab-leases
for ns in pglab-srv pglab-rly pglab-c1 pglab-c2; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add lab0 netns pglab-srv type veth peer name r-up netns pglab-rly
ip link add r-c1 netns pglab-rly type veth peer name c1 netns pglab-c1
ip link add lab1 netns pglab-srv type veth peer name c2 netns pglab-c2
ip -n pglab-srv addr add 10.250.0.1/24 dev lab0
ip -n pglab-srv addr add 10.252.0.1/24 dev lab1
ip -n pglab-rly addr add 10.250.0.2/24 dev r-up
ip -n pglab-rly addr add 10.251.0.1/24 dev r-c1
for l in "pglab-srv lab0" "pglab-srv lab1" "pglab-rly r-up" "pglab-rly r-c1" "pglab-c1 c1" "pglab-c2 c2"; do
    set -- $l; ip -n "$1" link set "$2" up
done
ip netns exec pglab-rly sysctl -qw net.ipv4.ip_forward=1

echo "--- starting peregrine in pglab-srv"
ip netns exec pglab-srv "$bin" run --config config/lab.toml 2> "$work/server.log" &
pids+=($!)
sleep 1
ip netns exec pglab-rly dhcrelay -4 -d -a -id r-c1 -iu r-up 10.250.0.1 > "$work/dhcrelay.log" 2>&1 &
pids+=($!)
sleep 1

failed=0
echo "--- dhclient behind the relay (option 82 added by dhcrelay)"
timeout 20 ip netns exec pglab-c1 dhclient -4 -1 -v -lf "$work/dhclient.leases" -pf "$work/dhclient.pid" c1 > "$work/dhclient.log" 2>&1 || failed=1
grep -E "DHCPOFFER|DHCPACK|bound to" "$work/dhclient.log" || failed=1
echo "--- udhcpc on the directly attached segment (lab1)"
timeout 20 ip netns exec pglab-c2 busybox udhcpc -i c2 -n -q -t 5 -s /bin/true > "$work/udhcpc.log" 2>&1 || failed=1
grep -E "obtained" "$work/udhcpc.log" || failed=1

echo "--- addresses the clients hold"
ip -n pglab-c1 -4 -o addr show dev c1 | awk '{print "pglab-c1 c1:", $4}'
grep -E "fixed-address|routers|domain-name |dhcp-server-identifier|agent" "$work/dhclient.leases" | sort -u | sed 's/^/  /'
echo "--- /metrics from the control plane (127.0.0.1:9167 in pglab-srv), an excerpt"
ip netns exec pglab-srv curl -s http://127.0.0.1:9167/metrics \
    | grep -E '^peregrine_(dhcp_messages_(received|sent)_total\{type="(discover|offer|request|ack)"\}|pool_addresses\{.*state="(active|free)"\}|frames_(received|sent)_total)' \
    || failed=1
echo "--- server log"
kill -TERM "${pids[0]}"; sleep 1
cat "$work/server.log"
if [ "$failed" -ne 0 ]; then
    echo "lab: a client got no lease (logs in $work)" >&2
    exit 1
fi
echo "lab: both clients leased"
