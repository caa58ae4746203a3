# bench/lib.sh -- shared by bench/compare.sh and bench/validate.sh (source it, don't run it).
#
# Reuses the shared harness (../shared/harness): its namespace topology (netns-topology.sh,
# DIRECT layout: generator namespace <P>-perf with giaddrs 10.210.0.1 .. 10.217.0.1 on p-srv,
# server namespace <P>-srv with 10.200.1.1 on s-perf) and its server start/stop helpers
# (lib/common.sh). Namespaces get their own prefix (TOPO_PREFIX, default "lgb") and runtime files
# their own directory (RUN_DIR), so nothing here touches another user's dh-* namespaces or
# /tmp/dhcp-harness.
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
HARNESS="${HARNESS:-$(cd "$REPO_DIR/.." && pwd)/shared/harness}"
[[ -d "$HARNESS" ]] || HARNESS=/work/shared/harness
export TOPO_PREFIX="${TOPO_PREFIX:-lgb}"
export RUN_DIR="${RUN_DIR:-/tmp/peregrine-bench}"
# shellcheck source=/dev/null
source "$HARNESS/lib/common.sh"
BIN="${BIN:-$REPO_DIR/target/release}"
LOADGEN="${LOADGEN:-$BIN/peregrine-loadgen}"
SERVER_IP=10.200.1.1
GIADDRS_8=10.210.0.1,10.211.0.1,10.212.0.1,10.213.0.1,10.214.0.1,10.215.0.1,10.216.0.1,10.217.0.1
# The relays of the wide layout (bench/widen.py: eight /15 scopes), for more than 500 000 clients.
GIADDRS_WIDE=10.208.0.1,10.210.0.1,10.212.0.1,10.214.0.1,10.216.0.1,10.218.0.1,10.220.0.1,10.222.0.1
SRV_CPU="${SRV_CPU:-0}"   # server pinned here
GEN_CPU="${GEN_CPU:-1}"   # generator pinned here
# OTHERS_CPU, if set: a Peregrine server's threads other than its workers (journal writer and
# compaction, control plane) run there, as they would on a machine with a housekeeping core:
# the workers are pinned to SRV_CPU ([dataplane] cores) and the server may use both CPUs.
# Unset: the whole server on SRV_CPU.
# GEN_NICE: the generator's nice value (default 0). -20 lets the server's housekeeping on the
# generator's CPU (OTHERS_CPU) run only in the generator's idle gaps; it also starves the
# journal writer there at times (BENCHMARKS.md, "The generator's catch-up").
GEN_NICE="${GEN_NICE:-0}"

# ISOLATE=1 (compare.sh): what `isolcpus` does for a DPDK worker's core, done at run time: every
# thread and IRQ that may move and may run on SRV_CPU is moved to the other CPUs (the machine's
# own daemons and kernel threads such as kdamond, which otherwise preempt a polling worker for
# milliseconds), and put back by `isolation_restore`. The kernel's per-CPU threads stay.
isolate_srv_cpu() {
  mkdir -p "$RUN_DIR"
  python3 - "$SRV_CPU" "$RUN_DIR/isolated" <<'PY'
import glob, os, sys
srv, saved = int(sys.argv[1]), sys.argv[2]
others = sorted(os.sched_getaffinity(0) - {srv})
moved = {"t": 0, "i": 0}
with open(saved, "w") as out:
    for task in glob.glob("/proc/[0-9]*/task/[0-9]*"):
        tid = int(task.rsplit("/", 1)[1])
        try:
            cpus = os.sched_getaffinity(tid)
            if srv in cpus and cpus != {srv} and others:
                os.sched_setaffinity(tid, others)
                out.write(f"t {tid} {','.join(map(str, sorted(cpus)))}\n"); moved["t"] += 1
        except OSError:
            pass  # gone, or a per-CPU kernel thread
    for irq in glob.glob("/proc/irq/[0-9]*"):
        try:
            was = open(f"{irq}/smp_affinity_list").read().strip()
            with open(f"{irq}/smp_affinity_list", "w") as f:
                f.write(",".join(map(str, others)))
            out.write(f"i {irq.rsplit('/', 1)[1]} {was}\n"); moved["i"] += 1
        except OSError:
            pass
print(f"isolated CPU{srv}: {moved['t']} threads and {moved['i']} IRQs moved to CPU {others}")
PY
}
isolation_restore() {
  local saved="$RUN_DIR/isolated" k id list
  [[ -f $saved ]] || return 0
  while read -r k id list; do
    if [[ $k == t ]]; then taskset -pc "$list" "$id" > /dev/null 2>&1; else echo "$list" > "/proc/irq/$id/smp_affinity_list" 2>/dev/null; fi
  done < "$saved"
  rm -f "$saved"
}

# Kernel UDP/67 in namespace $1 on device $2 dropped at ingress (after AF_PACKET taps have seen
# it): a raw-frame generator or responder must not have its kernel answer each frame with an
# ICMP port-unreachable. `nodrop` removes the rule.
drop_udp67() {
  ip netns exec "$1" nft delete table netdev lgbdrop 2>/dev/null || true
  ip netns exec "$1" nft -f - <<NFT
table netdev lgbdrop {
  chain in { type filter hook ingress device "$2" priority 0; policy accept; udp dport 67 drop; }
}
NFT
}
nodrop_udp67() { ip netns exec "$1" nft delete table netdev lgbdrop 2>/dev/null || true; }

# Writes the server configs this bench runs into $RUN_DIR (from the repository's
# config/harness.toml and the harness's Kea configs), with runtime paths under $RUN_DIR;
# COMMIT_INTERVAL_US, if set, becomes Peregrine's leases.commit-interval-us; OVERLOAD_PRIORITY=false
# sets [limits] overload-priority = false.
write_configs() {
  mkdir -p "$RUN_DIR"
  local base="$REPO_DIR/config/harness.toml"
  local d
  for d in fsync none-unsafe; do
    sed -e "s|/tmp/peregrine-harness/leases|$RUN_DIR/leases|" \
        -e "s|^durability = .*|durability = \"$d\"${COMMIT_INTERVAL_US:+\\ncommit-interval-us = $COMMIT_INTERVAL_US}|" \
        -e "s|^\[server\]|[server]${PING_CHECK_MS:+\\nping-check-ms = $PING_CHECK_MS}|" \
        -e "s|^backend = \"af-packet\"|&${OTHERS_CPU:+\\ncores = [$SRV_CPU]}|" \
        "$base" > "$RUN_DIR/pg-afpacket-$d.toml"
    # OVERLOAD_PRIORITY=false: workers that fall behind take DISCOVERs as they come ([limits]).
    [[ "${OVERLOAD_PRIORITY:-}" == false ]] && printf '\n[limits]\noverload-priority = false\n' >> "$RUN_DIR/pg-afpacket-$d.toml"
    sed -e "s|^backend = \"af-packet\"|backend = \"udp\"|" "$RUN_DIR/pg-afpacket-$d.toml" > "$RUN_DIR/pg-udp-$d.toml"
  done
  for d in persist nopersist; do
    sed -e "s|/tmp/dhcp-harness|$RUN_DIR|g" "$HARNESS/conf/kea-dhcp4-$d.json" > "$RUN_DIR/kea-$d.json"
  done
  # The fsync server on DPDK (a server built with --features dpdk): s-perf through the vdev
  # net_af_xdp or net_af_packet, s-rly (unused here) through net_af_packet; no hugepages.
  local v
  for v in af_xdp af_packet; do
    EAL_MEMORY=1024 EAL_PREFIX=peregrine-bench "$REPO_DIR/scripts/dpdk-config.sh" \
      "$RUN_DIR/pg-afpacket-fsync.toml" "s-perf=net_${v}0" s-rly=net_af_packet1 \
      > "$RUN_DIR/pg-dpdk-${v/_/}-fsync.toml"
  done
  # The failover pair: the primary is the fsync server answering every client (split 256, so
  # that the generator's one server address reaches the server that answers); its partner, in
  # namespace $NS_PEER over a dedicated link fo0-fo1, replicates every lease with fsync too.
  { cat "$RUN_DIR/pg-afpacket-fsync.toml"
    printf '\n[failover]\nrole = "primary"\nlocal = "10.254.0.1"\npeer = "10.254.0.2"\nsplit = 256\n%b' "${MAX_UNACKED:+max-unacked-updates = $MAX_UNACKED\n}"
  } > "$RUN_DIR/pg-pair-primary.toml"
  sed -e "s|$RUN_DIR/leases|$RUN_DIR/leases-peer|" -e '/^cores = /d' "$RUN_DIR/pg-afpacket-fsync.toml" \
    | python3 -c 'import re,sys; t=sys.stdin.read(); t=re.sub(r"\[\[interface\]\][^[]*", "", t); print(t.replace("[leases]", "[[interface]]\nname = \"fo1\"\naddress = \"10.254.0.2\"\n\n[leases]", 1))' \
    > "$RUN_DIR/pg-pair-secondary.toml"
  printf '\n[failover]\nrole = "secondary"\nlocal = "10.254.0.2"\npeer = "10.254.0.1"\n%b' "${MAX_UNACKED:+max-unacked-updates = $MAX_UNACKED\n}" >> "$RUN_DIR/pg-pair-secondary.toml"
  write_isc_pair_configs
}

# The Peregrine and ISC dhcpd pair: the AF_PACKET fsync server as the primary, ISC dhcpd 4.4 as
# the secondary in namespace $NS_PEER (reached over fo0-fo1, the server namespace forwarding
# between the generator and ISC), the clients split between them (split 128). Both hold the
# eight perf scopes only, each pool cut to 5 110 addresses: ISC's work per lease grows with its
# pools, and the first pool balancing (half of every pool sent to ISC, an update each: 20 440,
# about 10 s) must be over before a run.
ISC_PAIR_PEER=10.254.0.2
ISC_PAIR_CLIENTS=30000  # of the 8 x 5 110 addresses: room for an uneven split of the clients
write_isc_pair_configs() {
  python3 - "$RUN_DIR/pg-afpacket-fsync.toml" > "$RUN_DIR/pg-isc-primary.toml" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
# Each [[scope]] with its pools and options runs to the next one; the relay layout's go.
t = "".join(s for s in re.split(r"(?m)^(?=\[\[scope\]\])", t) if 'name = "relay-' not in s)
t = re.sub(r"(10\.21\d)\.255\.250", r"\1.19.255", t)
print(t + '\n[failover]\nrole = "primary"\nlocal = "10.254.0.1"\npeer = "10.254.0.2"\n'
      'relationship = "bench-isc-pair"\nmclt = 60\nsplit = 128')
PY
  { printf '%s\n' 'authoritative;' 'ddns-update-style none;' 'ping-check false;' \
      'default-lease-time 3600;' 'max-lease-time 7200;' 'log-facility local7;' \
      'failover peer "bench-isc-pair" {' '  secondary;' '  address 10.254.0.2;' '  port 647;' \
      '  peer address 10.254.0.1;' '  peer port 647;' '  max-response-delay 60;' \
      '  max-unacked-updates 10;' '  load balance max seconds 3;' '}' \
      'subnet 10.254.0.0 netmask 255.255.255.0 { }'
    local i
    for i in 0 1 2 3 4 5 6 7; do
      echo "subnet 10.21$i.0.0 netmask 255.255.0.0 { pool { failover peer \"bench-isc-pair\"; range 10.21$i.0.10 10.21$i.19.255; } option routers 10.21$i.0.1; }"
    done
  } > "$RUN_DIR/dhcpd-isc-secondary.conf"
  # ISC alone with the pair's pools (dhcpd-pair-pools): with the harness's /16 pools ISC spends
  # most of its core on them, so the pair is compared with ISC on the same pools.
  { printf '%s\n' 'authoritative;' 'ddns-update-style none;' 'ping-check false;' \
      'default-lease-time 3600;' 'max-lease-time 7200;' 'log-facility local7;' \
      'subnet 10.200.0.0 netmask 255.255.255.0 { }' 'subnet 10.200.1.0 netmask 255.255.255.0 { }'
    for i in 0 1 2 3 4 5 6 7; do
      echo "subnet 10.21$i.0.0 netmask 255.255.0.0 { range 10.21$i.0.10 10.21$i.19.255; option routers 10.21$i.0.1; }"
    done
  } > "$RUN_DIR/dhcpd-pair-pools.conf"
}

# The EAL arguments of a loadgen on DPDK without hugepages: vdev $1, file prefix $2, CPU $3.
dpdk_eal_args() {
  echo "--no-huge --no-pci --no-shconf --no-telemetry -m 1024 -l $3 --log-level=lib.eal:error --vdev=$1 --file-prefix=$2"
}

# The failover partner's namespace, and the dedicated link fo0 (in the server's) - fo1.
NS_PEER="${TOPO_PREFIX}-peer"
peer_up() {
  ip netns list | grep -qw "$NS_PEER" && return 0
  ip netns add "$NS_PEER"
  ip -n "$NS_PEER" link set lo up
  ip link add fo0 netns "$NS_SRV" type veth peer name fo1 netns "$NS_PEER"
  ip -n "$NS_SRV" addr add 10.254.0.1/24 dev fo0
  ip -n "$NS_PEER" addr add 10.254.0.2/24 dev fo1
  ip -n "$NS_SRV" link set fo0 up
  ip -n "$NS_PEER" link set fo1 up
  # A partner that serves clients too (ISC in the ISC pair) is reached through the server's
  # namespace: the relays' replies go back by it, and it forwards.
  ip -n "$NS_PEER" route add 10.208.0.0/12 via 10.254.0.1
  ip -n "$NS_PERF" route add 10.254.0.0/24 via 10.200.1.1
  ip netns exec "$NS_SRV" sysctl -qw net.ipv4.ip_forward=1
}
peer_down() {
  ip netns del "$NS_PEER" 2>/dev/null || true
  ip -n "$NS_PERF" route del 10.254.0.0/24 2>/dev/null || true
  ip netns exec "$NS_SRV" sysctl -qw net.ipv4.ip_forward=0 2>/dev/null || true
}

# The foreground start command of server $1 (run inside the server namespace); also wipes its
# lease state so that every run starts from an empty lease database.
bench_server_cmd() {
  case "$1" in
    peregrine-afpacket-fsync|peregrine-afpacket-none|peregrine-udp-fsync|peregrine-udp-none)
      local be=${1#peregrine-}; be=${be%-*}; local d=${1##*-}; [[ $d == none ]] && d=none-unsafe
      rm -rf "$RUN_DIR/leases"; mkdir -p "$RUN_DIR/leases"
      echo "$BIN/peregrine run --config $RUN_DIR/pg-$be-$d.toml" ;;
    kea-persist|kea-nopersist)
      rm -f "$RUN_DIR"/kea-leases4.csv* "$RUN_DIR"/kea-dhcp4.log "$RUN_DIR"/kea4*.pid
      echo "env KEA_PIDFILE_DIR=$RUN_DIR KEA_LOCKFILE_DIR=$RUN_DIR kea-dhcp4 -c $RUN_DIR/kea-${1#kea-}.json" ;;
    dhcpd|dhcpd-pair-pools)
      rm -f "$RUN_DIR"/dhcpd.leases*; : > "$RUN_DIR/dhcpd.leases"
      local conf=$HARNESS/conf/dhcpd.conf; [[ $1 == dhcpd-pair-pools ]] && conf=$RUN_DIR/dhcpd-pair-pools.conf
      echo "dhcpd -4 -f -q -cf $conf -lf $RUN_DIR/dhcpd.leases -pf $RUN_DIR/dhcpd.pid s-rly s-perf" ;;
    peregrine-pair-fsync)
      rm -rf "$RUN_DIR/leases" "$RUN_DIR/leases-peer"; mkdir -p "$RUN_DIR/leases" "$RUN_DIR/leases-peer"
      echo "$BIN/peregrine run --config $RUN_DIR/pg-pair-primary.toml" ;;
    peregrine-isc-pair)
      # Both start as a pair that was in NORMAL, with no lease yet.
      rm -rf "$RUN_DIR/leases"; mkdir -p "$RUN_DIR/leases"
      echo "2 $(date +%s) 60" > "$RUN_DIR/leases/failover.state"
      echo "$BIN/peregrine run --config $RUN_DIR/pg-isc-primary.toml" ;;
    peregrine-dpdk-afxdp-fsync|peregrine-dpdk-afpacket-fsync)
      rm -rf "$RUN_DIR/leases"; mkdir -p "$RUN_DIR/leases"
      echo "$BIN/peregrine run --config $RUN_DIR/pg-${1#peregrine-}.toml" ;;
    echo-udp) echo "$LOADGEN echo --backend udp --bind $SERVER_IP" ;;
    echo-afpacket) echo "$LOADGEN echo --backend afpacket --interface s-perf" ;;
    echo-dpdk-afxdp|echo-dpdk-afpacket)
      local v=af_xdp; [[ $1 == *afpacket ]] && v=af_packet
      echo "$LOADGEN echo --backend dpdk --dpdk-port net_${v}0 --eal-args '$(dpdk_eal_args "net_${v}0,iface=s-perf" peregrine-bench-echo "$SRV_CPU")'" ;;
    *) return 1 ;;
  esac
}

# Start server $1 pinned to $SRV_CPU (and OTHERS_CPU, above; fresh state); sets SPID.
bench_start() {
  local cmd; cmd="$(bench_server_cmd "$1")" || { echo "unknown server $1" >&2; return 1; }
  # A raw responder (the echo on AF_PACKET, a server on DPDK) leaves the kernel beside it
  # without a UDP/67 socket: it would answer each request with an ICMP port-unreachable.
  if [[ $1 == echo-afpacket || $1 == *dpdk-* ]]; then drop_udp67 "$NS_SRV" s-perf; else nodrop_udp67 "$NS_SRV"; fi
  if [[ $1 == peregrine-pair-fsync ]]; then
    # The partner first, on the server's core too unless PEER_CPU says otherwise (a
    # pessimistic figure: its journal and link work is taken from the primary's core).
    peer_up
    ip netns exec "$NS_PEER" taskset -c "${PEER_CPU:-$SRV_CPU}" "$BIN/peregrine" run --config "$RUN_DIR/pg-pair-secondary.toml" \
      > "$RUN_DIR/server-peer.out" 2>&1 < /dev/null &
    PEER_PID=$!
  fi
  if [[ $1 == peregrine-isc-pair ]]; then
    peer_up
    python3 "$BENCH_DIR/leases.py" 0 isc bench-isc-pair > "$RUN_DIR/dhcpd-peer.leases"
    ip netns exec "$NS_PEER" taskset -c "${PEER_CPU:-$SRV_CPU}" dhcpd -4 -f -q \
      -cf "$RUN_DIR/dhcpd-isc-secondary.conf" -lf "$RUN_DIR/dhcpd-peer.leases" \
      -pf "$RUN_DIR/dhcpd-peer.pid" fo1 > "$RUN_DIR/server-peer.out" 2>&1 < /dev/null &
    PEER_PID=$!
  fi
  local cpus=$SRV_CPU
  [[ -n ${OTHERS_CPU:-} && $1 == peregrine-* ]] && cpus="$SRV_CPU,$OTHERS_CPU"
  start_server_cmd "taskset -c $cpus $cmd" "$RUN_DIR/server-$1.out" || return 1
  SPID="$(cat "$SERVER_PIDFILE")"
  if [[ $1 == peregrine-pair-fsync || $1 == peregrine-isc-pair ]]; then
    # Measured in NORMAL only, once the first pool balancing (half of every pool moved to
    # the partner, an update each, as the log says) has been sent and acknowledged: a steady
    # pair, not a starting one.
    local i moved
    for ((i = 0; i < 1800; i++)); do
      moved=$(sed -n 's/.*pool balanced for the secondary moved=\([0-9]*\).*/\1/p' "$RUN_DIR/server-$1.out" | tail -1)
      [[ -n $moved ]] && ip netns exec "$NS_SRV" curl -s --max-time 1 http://127.0.0.1:9167/v1/failover \
        | python3 -c 'import json, sys
v = json.load(sys.stdin)
sys.exit(0 if v["state"] == v["partner_state"] == "NORMAL" and v["unacked_updates"] == 0
         and v["updates_sent"] >= int(sys.argv[1]) else 1)' "$moved" 2>/dev/null && return 0
      sleep 0.1
    done
    echo "the pair did not reach NORMAL" >&2
    return 1
  fi
}

bench_stop() {
  stop_server
  if [[ -n "${PEER_PID:-}" ]]; then
    kill -TERM "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
    PEER_PID=
  fi
}

# Wait until no cargo build holds the shared lock, so builds of other engineers do not overlap
# the start of a measurement (they may still start during it: figures are noisy).
wait_cargo_idle() { flock /tmp/peregrine-cargo.lock true; }
