#!/usr/bin/env bash
# bench/pair-lag.sh -- replication lag of a failover pair at a given DORA rate (not run in CI).
#
# The pair of bench/compare.sh's peregrine-pair-fsync (the AF_PACKET fsync primary answering
# every client, its partner journaling every replicated lease, both on the server's core) is
# driven by peregrine-loadgen at RATE DORA/s for RUN_S seconds; then the primary's
# GET /v1/failover gives the replication lag (a lease's change reaching the link to the
# partner's BNDACK): count, p50, p99, max.
#
# Usage (root; after `cargo build --release -p peregrine-bench -p peregrine`):
#   bench/pair-lag.sh [RATE ...]        default: 10000 40000
set -uo pipefail
source "$(dirname "$0")/lib.sh"
harness_lock
RUN_S="${RUN_S:-3}"
RATES=("$@"); [[ ${#RATES[@]} -gt 0 ]] || RATES=(10000 40000)
topology_up_if_needed
write_configs
trap 'bench_stop; nodrop_udp67 "$NS_PERF"; peer_down; "$HARNESS/netns-topology.sh" down >/dev/null 2>&1' EXIT
drop_udp67 "$NS_PERF" p-srv
for rate in "${RATES[@]}"; do
  bench_start peregrine-pair-fsync >/dev/null 2>&1 || { echo "the pair did not start" >&2; exit 1; }
  ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" "$LOADGEN" run --backend afpacket --interface p-srv \
    --server "$SERVER_IP" --giaddr "$GIADDRS_8" --clients $(( rate * RUN_S )) --rate "$rate" --timeout 1 \
    --quiet --json "$RUN_DIR/lag.json" > /dev/null 2>&1
  sleep 2   # the last acknowledgements
  [[ -n "${DEBUG:-}" ]] && ip netns exec "$NS_SRV" curl -s http://127.0.0.1:9167/v1/failover && echo
  lag=$(ip netns exec "$NS_SRV" curl -s http://127.0.0.1:9167/v1/failover | python3 -c '
import json, sys
v = json.load(sys.stdin)["replication_lag"]
print("count=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f" % (v["count"], v["p50_ms"], v["p99_ms"], v["max_ms"]))')
  acks=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round({p["phase"]: p for p in r["phases"]}["dora"]["answered_per_s"]))' "$RUN_DIR/lag.json")
  echo -e "rate=$rate\tacks_per_s=$acks\t$lag"
  bench_stop
done
