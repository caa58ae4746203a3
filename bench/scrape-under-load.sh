#!/usr/bin/env bash
# bench/scrape-under-load.sh -- how long /metrics and /v1/pools take to answer while the
# server runs at a given DORA rate (issue 17: the control plane stays answerable under load).
# Not run in CI; not a timed test.
#
# Same topology and server as bench/compare.sh (the fsync server on AF_PACKET, on CPU0; the
# generator on CPU1). Usage (root; after `cargo build --release -p peregrine-bench -p peregrine`):
#   bench/scrape-under-load.sh [RATE] [SECONDS]     defaults 40000 10
# Output: per route, the number of scrapes and their p50 / max time in ms.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
harness_lock
RATE="${1:-40000}"; SECONDS_UNDER_LOAD="${2:-10}"
SERVER="${SERVER:-peregrine-afpacket-fsync}"
topology_up_if_needed
write_configs
trap 'bench_stop; nodrop_udp67 "$NS_PERF"; "$HARNESS/netns-topology.sh" down >/dev/null 2>&1' EXIT
drop_udp67 "$NS_PERF" p-srv
bench_start "$SERVER" >/dev/null 2>&1 || { echo "$SERVER did not start" >&2; exit 1; }
ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" "$LOADGEN" run --backend afpacket --interface p-srv \
  --server "$SERVER_IP" --giaddr "$GIADDRS_8" --clients $(( RATE * SECONDS_UNDER_LOAD )) --rate "$RATE" \
  --timeout 1 --quiet --json "$RUN_DIR/scrape-load.json" > "$RUN_DIR/scrape-load.txt" 2>&1 &
GEN=$!
sleep 1
for route in /metrics /v1/pools; do
  : > "$RUN_DIR/scrape-$$.times"
  for _ in $(seq 1 $(( (SECONDS_UNDER_LOAD - 2) * 5 / 2 ))); do
    # Scraped from the generator's core: the server's core is the one under load.
    ip netns exec "$NS_SRV" taskset -c "$GEN_CPU" curl -s -o /dev/null -w '%{time_total}\n' \
      --max-time 5 "http://127.0.0.1:9167$route" >> "$RUN_DIR/scrape-$$.times"
    sleep 0.2
  done
  sort -n "$RUN_DIR/scrape-$$.times" | awk -v r="$route" '{t[NR]=$1*1000} END {printf "%s: %d scrapes, p50 %.1f ms, max %.1f ms\n", r, NR, t[int((NR+1)/2)], t[NR]}'
done
wait "$GEN"
python3 -c "import json,sys;r=json.load(open(sys.argv[1]));d=[p for p in r['phases'] if p['phase']=='dora'][0];print(f\"load: {r['offered_per_s']:.0f} DISCOVER/s offered, {d['answered_per_s']:.0f} DORA/s answered, {d['drop_pct']:.2f} % dropped\")" "$RUN_DIR/scrape-load.json"
rm -f "$RUN_DIR/scrape-$$.times"
