#!/usr/bin/env bash
# dpdk-config.sh CONFIG IFACE=PORT[@DEV]... -- CONFIG moved onto DPDK virtual ports, on stdout.
#
# Each IFACE=PORT names a configured [[interface]] and the DPDK vdev that drives its kernel
# interface (IFACE=PORT@DEV: kernel interface DEV instead of IFACE, e.g. a veth bridged with
# IFACE): net_af_xdpN (an AF_XDP socket on it), net_af_packetN (DPDK's AF_PACKET socket), or
# net_tapN (a TAP device dtapN the server creates, to be bridged with IFACE once it runs: the
# vdev's own remote= needs the multiq qdisc and tc flower, which not every kernel has). The
# backend becomes "dpdk", each interface gets its dpdk-port, and a [dpdk] section starts the
# EAL without hugepages or PCI on those vdevs. For a lab or a test machine without a NIC for
# DPDK; see dpdk/README.md.
#   scripts/dpdk-config.sh config/harness.toml s-rly=net_af_xdp0 s-perf=net_af_xdp1
# Env: EAL_PREFIX (--file-prefix; default peregrine-dpdk), EAL_MEMORY (-m, MB; default 512).
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
config="$1"; shift
[[ -r $config ]] || { echo "dpdk-config.sh: cannot read $config" >&2; exit 1; }

edits=(-e 's/^backend = .*/backend = "dpdk"/')
args=("--no-huge" "--no-pci" "--no-shconf" "--no-telemetry" "-m" "${EAL_MEMORY:-512}" "-l" "0"
      "--log-level=lib.eal:error")
for pair in "$@"; do
    iface="${pair%%=*}"; port="${pair#*=}"; dev="$iface"
    [[ $port == *@* ]] && { dev="${port#*@}"; port="${port%%@*}"; }
    [[ $iface != "$pair" && -n $iface && -n $port && -n $dev ]] || { echo "dpdk-config.sh: $pair is not IFACE=PORT[@DEV]" >&2; exit 2; }
    grep -q "^name = \"$iface\"$" "$config" || { echo "dpdk-config.sh: $config has no interface $iface" >&2; exit 1; }
    edits+=(-e "/^name = \"$iface\"\$/a dpdk-port = \"$port\"")
    case "$port" in
        net_tap*) args+=("--vdev=$port,iface=dtap${port#net_tap}") ;;
        net_af_xdp*|net_af_packet*) args+=("--vdev=$port,iface=$dev") ;;
        *) echo "dpdk-config.sh: $port: not a net_af_xdp, net_af_packet or net_tap vdev" >&2; exit 2 ;;
    esac
done
args+=("--file-prefix=${EAL_PREFIX:-peregrine-dpdk}")

sed "${edits[@]}" "$config"
printf '\n[dpdk]\neal-args = ['
sep=""
for a in "${args[@]}"; do printf '%s"%s"' "$sep" "$a"; sep=", "; done
printf ']\n'
