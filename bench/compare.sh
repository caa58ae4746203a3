#!/usr/bin/env bash
# bench/compare.sh -- sustained DORA rate of Peregrine, Kea 2.2 and ISC dhcpd, and the I/O
# ceiling of each backend, measured with peregrine-loadgen in one session (not run in CI).
#
# Topology: the shared harness's DIRECT layout (../shared/harness/netns-topology.sh) under the
# private prefix $TOPO_PREFIX (default lgb): the generator in <P>-perf acts as 8 relays
# (giaddrs 10.210.0.1 .. 10.217.0.1, option 82 circuit-id olt{relay}/port{port} and remote-id
# sub-{client}), the server in <P>-srv answers on s-perf 10.200.1.1. Server on CPU0, generator
# on CPU1. Every run: a fresh server with an empty lease database, every DISCOVER from a new
# client, RUN_S seconds of sending, an answer later than 1 s is a drop.
#
# Sustained rate (the definition of ../shared/harness/BASELINES.md): the highest rate of the
# ladder at which 3 of 3 runs lost < 1 % on both DISCOVER-OFFER and REQUEST-ACK. The ladder
# goes up with single runs until one fails; the last rate that passed is then repeated twice,
# stepping down a rung while a repeat fails. A run in which the generator could not offer
# 97 % of the target rate counts as failed ("generator-limited").
#
# Servers: peregrine-afpacket-fsync peregrine-afpacket-none peregrine-udp-fsync
#   peregrine-udp-none (config/harness.toml with durability fsync / none-unsafe, AF_PACKET or
#   UDP backend), peregrine-pair-fsync (the AF_PACKET fsync server as a failover primary
#   answering every client, its partner replicating every lease in namespace <P>-peer, both on
#   the server's core), peregrine-isc-pair (the same primary with ISC dhcpd 4.4 as its
#   secondary in <P>-peer, reached through the server's namespace, each answering half of the
#   clients: the generator relays to both, 8 pools of 5 110 addresses; both on the server's core),
#   peregrine-dpdk-afxdp-fsync peregrine-dpdk-afpacket-fsync (the fsync
#   server on DPDK, s-perf through the vdev net_af_xdp or net_af_packet; needs the server built
#   with --features dpdk; not in the default list), kea-persist kea-nopersist (the harness's
#   Kea configs), dhcpd (lease file, fsync per lease), dhcpd-pair-pools (ISC alone with the
#   ISC pair's pools), echo-afpacket echo-udp
#   (peregrine-loadgen echo: the I/O ceiling), echo-dpdk-afxdp echo-dpdk-afpacket (the echo on
#   the DPDK vdev: that path's ceiling; needs the generator built with --features dpdk).
#
# Usage (root; after `cargo build --release -p peregrine-bench -p peregrine`):
#   bench/compare.sh [SERVER ...]            default: all of the above, about 10-15 minutes
# Env: RUN_S (default 3), GEN_BACKEND (afpacket | udp | dpdk-afxdp | dpdk-afpacket: the
#   generator on a DPDK vdev on p-srv, only against raw-frame servers, whose UDP checksums are
#   whole; default afpacket), OUT (result dir),
#   PING_CHECK_MS (Peregrine with a ping check of that many ms on every scope; default none),
#   LADDER (the rates to try, in order, for every server: "60000 65000 70000"; default per server).
#   ISOLATE=1 (every thread and IRQ that can move is moved off the server's CPU for the run, as
#   isolcpus would keep them: see isolate_srv_cpu in lib.sh),
#   OTHERS_CPU (a Peregrine server's threads but its workers on that CPU, the generator's when
#   1: as on a machine with a housekeeping core; default unset, the whole server on CPU0),
#   GEN_NICE (the generator's nice value, default 0),
#   FIXED=1 (one run per server and rate of LADDER: no search, no summary; bench/ab.sh uses it;
#   FIXED=1 LADDER=0: one flood, the generator as fast as it can with 400 000 clients, which
#   against an echo measures what the generator and that path can do at all).
# Output: $OUT/{runs.csv,runs.log,summary.md} (default bench/results/compare-<UTC time>/) and
# the chart bench/results/compare.png.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
harness_lock
RUN_S="${RUN_S:-3}"
GEN_BACKEND="${GEN_BACKEND:-afpacket}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$BENCH_DIR/results/compare-$STAMP}"
mkdir -p "$OUT"
ALL=(kea-persist kea-nopersist peregrine-afpacket-fsync peregrine-afpacket-none peregrine-udp-fsync
     peregrine-udp-none dhcpd dhcpd-pair-pools peregrine-isc-pair echo-afpacket echo-udp)
SERVERS=("$@"); [[ ${#SERVERS[@]} -gt 0 ]] || SERVERS=("${ALL[@]}")
[[ -x "$LOADGEN" && -x "$BIN/peregrine" ]] || { echo "build first: cargo build --release -p peregrine-bench -p peregrine" >&2; exit 1; }

ladder() {
  [[ -n ${LADDER:-} ]] && { echo "$LADDER"; return; }
  case "$1" in
    dhcpd) echo 100 200 300 400 600 800 ;;
    dhcpd-pair-pools|peregrine-isc-pair) echo 1000 2000 3000 4000 5000 6000 8000 10000 ;;
    kea-*) echo 4000 8000 12000 16000 20000 24000 28000 ;;
    *) echo 10000 20000 40000 60000 80000 100000 120000 150000 180000 200000 220000 235000 250000 265000 280000 300000 320000 ;;
  esac
}

topology_up_if_needed
write_configs
trap 'bench_stop; nodrop_udp67 "$NS_PERF"; peer_down; "$HARNESS/netns-topology.sh" down >/dev/null 2>&1; isolation_restore' EXIT; trap 'exit 130' INT TERM
[[ ${ISOLATE:-0} == 1 ]] && isolate_srv_cpu
if [[ $GEN_BACKEND == udp ]]; then nodrop_udp67 "$NS_PERF"; else drop_udp67 "$NS_PERF" p-srv; fi
{
  echo "# compare.sh $STAMP: generator backend $GEN_BACKEND, ${RUN_S} s per run, server CPU$SRV_CPU, generator CPU$GEN_CPU, commit-interval-us ${COMMIT_INTERVAL_US:-default}, ping-check-ms ${PING_CHECK_MS:-0}, Peregrine's other threads on CPU${OTHERS_CPU:-$SRV_CPU}, generator nice $GEN_NICE, isolated ${ISOLATE:-0}"
  echo "# $(uname -r), $(nproc) CPUs: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
  echo "# kea $(kea-dhcp4 -v 2>/dev/null), dhcpd $(dhcpd --version 2>&1 | head -1), peregrine $(git -C "$REPO_DIR" rev-parse --short HEAD)"
} > "$OUT/runs.log"
cat "$OUT/runs.log"

# One run of server $1 at rate $2; prints a log line; status 0 = passed (< 1 % drops, offered).
one_run() {
  local srv=$1 rate=$2 clients=$(( $2 * RUN_S )) rc
  wait_cargo_idle   # before every run: a build on the other core halves what a run measures
  (( rate == 0 )) && clients=400000           # a flood: as fast as the generator can
  (( clients > 480000 )) && clients=480000   # the 8 pools hold 8 x 65 521 addresses
  # A failover primary owns half of them: the other half is its partner's (BACKUP).
  [[ $srv == peregrine-pair-fsync ]] && (( clients > 240000 )) && clients=240000
  [[ $srv == peregrine-isc-pair || $srv == dhcpd-pair-pools ]] && (( clients > ISC_PAIR_CLIENTS )) && clients=$ISC_PAIR_CLIENTS
  bench_start "$srv" >/dev/null 2>&1 || { echo "$srv did not start" >&2; return 2; }
  local json="$OUT/run.json" load; load=$(cut -d' ' -f1 /proc/loadavg)
  rm -f "$json"
  local gen=(--backend "$GEN_BACKEND")
  case $GEN_BACKEND in
    afpacket) gen+=(--interface p-srv) ;;
    dpdk-afxdp|dpdk-afpacket)
      local v=af_xdp; [[ $GEN_BACKEND == *afpacket ]] && v=af_packet
      gen=(--backend dpdk --dpdk-port "net_${v}0" --eal-args "$(dpdk_eal_args "net_${v}0,iface=p-srv" peregrine-bench-gen "$GEN_CPU")") ;;
  esac
  # Nothing answers ARP for the echo on net_af_xdp (the kernel does not see the frames): name
  # the MAC it answers from, s-perf's.
  local mac; mac=$(ip -n "$NS_SRV" -br link show s-perf | awk '{print $3}')
  [[ $srv == echo-dpdk-afxdp ]] && gen+=(--server-mac "$mac")
  # The ISC pair: relays forward to both servers; ISC's frames go by the server namespace.
  local servers=$SERVER_IP
  if [[ $srv == peregrine-isc-pair ]]; then
    servers=$SERVER_IP,$ISC_PAIR_PEER
    [[ $GEN_BACKEND == udp ]] || gen+=(--server-mac "$mac,$mac")
  fi
  ip netns exec "$NS_PERF" nice -n "$GEN_NICE" taskset -c "$GEN_CPU" "$LOADGEN" run "${gen[@]}" --server "$servers" \
    --giaddr "$GIADDRS_8" --clients "$clients" --rate "$rate" --timeout 1 \
    --circuit-id 'olt{relay}/port{port}' --remote-id 'sub-{client}' --server-pid "$SPID" \
    --label "$srv" --max-drop-pct 1 --quiet --json "$json" --csv "$OUT/runs.csv" > "$OUT/last.txt" 2>&1
  rc=$?
  # What the frames cost Peregrine's workers (their busy time), apart from a polling worker's
  # idle turns: summed over workers, per DORA answered below.
  local busy=None
  [[ $srv == peregrine-* ]] && busy=$(ip netns exec "$NS_SRV" curl -s --max-time 1 http://127.0.0.1:9167/metrics \
    | awk '/^peregrine_worker_busy_seconds_total/ {s += $2; n++} END {print n ? s : "None"}')
  bench_stop
  python3 - "$json" "$rc" "$load" "$busy" <<'PY' | tee -a "$OUT/runs.log"
import json, sys
r = json.load(open(sys.argv[1])); rc = int(sys.argv[2])
ph = {p["phase"]: p for p in r["phases"]}
do, ra, dora = ph["discover-offer"], ph.get("request-ack", {}), ph["dora"]
offered_ok = r["offered_per_s"] >= 0.97 * r["target_rate"]
verdict = "pass" if rc == 0 and offered_ok else ("generator-limited" if not offered_ok else "fail")
cpu = r["server_cpu_pct"]
busy_us = "None" if sys.argv[4] == "None" or not dora["answered"] else f'{float(sys.argv[4]) * 1e6 / dora["answered"]:.2f}'
print(f'{r["label"]}\t{r["target_rate"]}\t{verdict}\toffered={r["offered_per_s"]:.0f}\tacks_per_s={dora["answered_per_s"]:.0f}'
      f'\tdrops_do={do["drop_pct"]:.2f}\tdrops_ra={ra.get("drop_pct", 100):.2f}\tdora_p50_ms={dora["p50_ms"]:.3f}'
      f'\tdora_p99_ms={dora["p99_ms"]:.3f}\tserver_cpu={cpu if cpu is None else round(cpu)}'
      f'\tgen_cpu={r["generator_cpu_pct"]:.0f}\tgen_busy={r["generator_busy_pct"]:.0f}\tload={sys.argv[3]}'
      f'\tbusy_us={busy_us}\tgen_rx_dropped={r.get("rx_dropped")}')
sys.exit(0 if verdict == "pass" else 1)
PY
}

for srv in "${SERVERS[@]}"; do
  wait_cargo_idle
  read -r -a rates <<< "$(ladder "$srv")"
  if [[ ${FIXED:-0} == 1 ]]; then
    for rate in "${rates[@]}"; do one_run "$srv" "$rate"; done
    continue
  fi
  best=-1
  for i in "${!rates[@]}"; do
    if one_run "$srv" "${rates[$i]}"; then best=$i; else break; fi
  done
  # Confirm: two more runs at the best rate; step down a rung while one fails.
  while (( best >= 0 )); do
    if one_run "$srv" "${rates[$best]}" && one_run "$srv" "${rates[$best]}"; then break; fi
    best=$((best - 1))
  done
  if (( best >= 0 )); then s=${rates[$best]}; else s="<${rates[0]}"; fi
  top=""; (( best == ${#rates[@]} - 1 )) && top="top-of-ladder"
  echo -e "SUSTAINED\t$srv\t$s\t$top" | tee -a "$OUT/runs.log"
done

[[ ${FIXED:-0} == 1 ]] && { rm -f "$OUT/run.json" "$OUT/last.txt"; exit 0; }
python3 "$BENCH_DIR/summarize.py" "$OUT/runs.log" > "$OUT/summary.md"
cat "$OUT/summary.md"
"$LOADGEN" plot --input "$OUT/runs.csv" --output "$BENCH_DIR/results/compare.png" \
  --title "DORA goodput and p99 latency vs offered rate ($STAMP, generator $GEN_BACKEND)" \
  && cp "$BENCH_DIR/results/compare.png" "$OUT/compare.png"
rm -f "$OUT/run.json" "$OUT/last.txt"
