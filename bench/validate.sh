#!/usr/bin/env bash
# bench/validate.sh -- does peregrine-loadgen measure what perfdhcp measures?
#
# At rates perfdhcp can reach, both drive a fresh Kea 2.2 (memfile persist=true, pinned to
# CPU0; generator on CPU1) in the shared harness's DIRECT layout with the same workload: one
# relay (giaddr 10.210.0.1), every DISCOVER from a new client, 5 s per run, an answer later than
# 1 s counts as a drop. Each prints ACKs per second of the send period; the script checks that
# the two agree within 10 % at every rate and exits 1 otherwise.
#
# Usage (root, after `cargo build --release -p peregrine-bench`):
#   bench/validate.sh [RATE ...]          default rates: 2000 5000
# Output: a table on stdout, also written to bench/results/validate.txt.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
RATES=("$@"); [[ ${#RATES[@]} -gt 0 ]] || RATES=(2000 5000)
PERIOD=5
OUT="$BENCH_DIR/results/validate.txt"; mkdir -p "$BENCH_DIR/results"
command -v perfdhcp >/dev/null || { echo "perfdhcp missing (apt-get install kea-admin)" >&2; exit 1; }
[[ -x "$LOADGEN" ]] || { echo "$LOADGEN missing (cargo build --release -p peregrine-bench)" >&2; exit 1; }

topology_up_if_needed
write_configs
trap 'bench_stop; "$HARNESS/netns-topology.sh" down >/dev/null 2>&1' EXIT; trap 'exit 130' INT TERM
nodrop_udp67 "$NS_PERF"   # the UDP-socket generators below need UDP/67 delivered

field() { awk -v s="$1" -v k="$2" '
  index($0, "***Statistics for: " s "***") { on = 1; next }
  /^\*\*\*Statistics for/ { on = 0 }
  on && index($0, k ":") == 1 { sub(/^[^:]*: */, ""); sub(/ .*/, ""); print; exit }' "$3"; }

fail=0
{
echo "# validate.sh $(date -u +%FT%TZ): Kea 2.2 persist=true, 1 giaddr, ${PERIOD} s per run, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "| %-6s | %-34s | %-34s | %-8s |\n" "rate" "perfdhcp: ACKs/s, drops DO/RA, avg ms" "loadgen: ACKs/s, drops DO/RA, avg ms" "ratio"
printf "|%s|%s|%s|%s|\n" "--------" "------------------------------------" "------------------------------------" "----------"
for rate in "${RATES[@]}"; do
  clients=$((rate * PERIOD))
  wait_cargo_idle
  # perfdhcp, as the harness runs it (bench-perfdhcp.sh), against a fresh Kea.
  bench_start kea-persist >/dev/null 2>&1 || { echo "kea did not start" >&2; exit 1; }
  raw="$RUN_DIR/perfdhcp-$rate.txt"
  timeout -s INT -k 5 $((PERIOD + 15)) ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" \
    perfdhcp -4 -R "$clients" -p "$PERIOD" -W 1000000 -l 10.210.0.1 -r "$rate" "$SERVER_IP" > "$raw" 2>&1
  bench_stop
  p_ack=$(field REQUEST-ACK 'received packets' "$raw")
  p_aps=$(awk -v n="${p_ack:-0}" -v p="$PERIOD" 'BEGIN{printf "%.0f", n/p}')
  p_ddo=$(field DISCOVER-OFFER 'drops ratio' "$raw"); p_dra=$(field REQUEST-ACK 'drops ratio' "$raw")
  p_avg=$(field REQUEST-ACK 'avg delay' "$raw")
  # loadgen, same workload (UDP backend, bound like perfdhcp to port 67).
  bench_start kea-persist >/dev/null 2>&1 || { echo "kea did not start" >&2; exit 1; }
  json="$RUN_DIR/loadgen-$rate.json"
  ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" "$LOADGEN" run --backend udp --server "$SERVER_IP" \
    --giaddr 10.210.0.1 --clients "$clients" --rate "$rate" --timeout 1 --quiet --label kea-persist \
    --json "$json" > "$RUN_DIR/loadgen-$rate.txt"
  bench_stop
  read -r l_aps l_ddo l_dra l_avg < <(python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ph = {p["phase"]: p for p in r["phases"]}
print(round(ph["request-ack"]["answered_per_s"]), round(ph["discover-offer"]["drop_pct"], 2),
      round(ph["request-ack"]["drop_pct"], 2), round(ph["request-ack"]["mean_ms"], 3))
PY
)
  ratio=$(awk -v a="$l_aps" -v b="$p_aps" 'BEGIN{ if (b > 0) printf "%.3f", a/b; else print "NA" }')
  ok=$(awk -v r="$ratio" 'BEGIN{ print (r != "NA" && r >= 0.9 && r <= 1.1) ? "ok" : "FAIL" }')
  [[ $ok == ok ]] || fail=1
  printf "| %-6s | %-34s | %-34s | %-8s |\n" "$rate" "$p_aps, ${p_ddo}/${p_dra} %, ${p_avg} ms" \
    "$l_aps, ${l_ddo}/${l_dra} %, ${l_avg} ms" "$ratio $ok"
done
[[ $fail == 0 ]] && echo "validate: loadgen and perfdhcp agree within 10 % at every rate" \
                 || echo "validate: FAILED: loadgen and perfdhcp disagree by more than 10 %"
exit $fail
} | tee "$OUT"
exit "${PIPESTATUS[0]}"
