#!/usr/bin/env bash
# harness-dpdk.sh PMD [PEREGRINE] -- the shared harness's real-client checks (dhclient and
# udhcpc through dhcrelay, ../shared/harness/real-clients.sh) against the server on DPDK.
#
# PMD: tap     the server's s-rly and s-perf are net_tap ports, each TAP bridged with its
#              interface once the server made it (the harness captures on s-rly, and sees all)
#      af_xdp  net_af_xdp ports: s-perf's on s-perf, s-rly's on x-rly, one end of a veth pair
#              of its own whose other end is bridged with s-rly. On s-rly itself the harness's
#              capture would see none of the server's traffic (XDP takes frames before packet
#              taps, and AF_XDP's copy mode sends past them); through the bridge s-rly carries
#              every frame both ways, as a switch port in front of the server's NIC would.
# PEREGRINE: the server binary, built with --features dpdk (default target/release/peregrine).
# The relay's end of the link gets TX checksum offload turned off: on a veth its kernel leaves
# UDP checksums to an offload that never happens, which only AF_PACKET is told about.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --serve ]]; then
    # Inside the server's namespace, as real-clients.sh runs the server command.
    pmd="$2"; bin="$3"; config="$4"
    ip netns exec dh-rly ethtool -K r-srv tx off >/dev/null
    if [[ $pmd == af_xdp ]]; then
        # Before the EAL starts: its port opens an AF_XDP socket on x-rly. s-rly's address goes:
        # the kernel would answer ARP for the server's address there.
        ip link add x-rly type veth peer name x-rly-br
        ip addr flush dev s-rly
        ip link add br-s-rly type bridge
        ip link set s-rly master br-s-rly
        ip link set x-rly-br master br-s-rly
        for dev in x-rly x-rly-br br-s-rly; do ip link set "$dev" up; done
    fi
    if [[ $pmd == tap ]]; then
        (
            # Once the ports are started (the server holds UDP/67 after starting them): starting
            # one sets its TAP's kernel side to the port's own MAC again, undoing what follows
            # (seen: 2 runs in 3 lost every frame to the bridge).
            for _ in $(seq 200); do [[ -n $(ss -Huln 'sport = :67') ]] && break; sleep 0.1; done
            # net_tap gives the TAP's kernel side the port's own MAC: a bridge would take
            # frames for it as its own. The kernel's address on s-rly would answer ARP for us.
            ip link set dtap0 down
            ip link set dtap0 address 02:00:00:0d:0a:00
            ip addr flush dev s-rly
            ip link add br-s-rly type bridge
            ip link set s-rly master br-s-rly
            ip link set dtap0 master br-s-rly
            ip link set dtap0 up
            ip link set br-s-rly up
        ) &
    fi
    exec "$bin" run --config "$config"
fi

pmd="${1:-}"; bin="$(realpath "${2:-target/release/peregrine}")"
harness="$(cd .. && pwd)/shared/harness"
case "$pmd" in
    tap) ports=(s-rly=net_tap0 s-perf=net_tap1) ;;
    af_xdp) ports=(s-rly=net_af_xdp0@x-rly s-perf=net_af_xdp1) ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
[[ -x $bin ]] || { echo "harness-dpdk.sh: no server at $bin (cargo build --release -p peregrine --features dpdk)" >&2; exit 1; }
[[ -x $harness/real-clients.sh ]] || { echo "harness-dpdk.sh: no shared harness at $harness" >&2; exit 1; }
config="$(mktemp --suffix=.toml)"
trap 'rm -f "$config"' EXIT
EAL_PREFIX="peregrine-harness-$$" scripts/dpdk-config.sh config/harness.toml "${ports[@]}" > "$config"
rm -rf /tmp/peregrine-harness/leases
"$harness/real-clients.sh" "$PWD/scripts/harness-dpdk.sh --serve $pmd $bin $config"
