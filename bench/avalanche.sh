#!/usr/bin/env bash
# bench/avalanche.sh -- storm after an outage: CLIENTS (default 100 000) new subscribers behind 8
# relays start DORA at once (no pacing) and retransmit with the RFC 2131 back-off (4, 8, 16, 32 s
# ±1 s, at most 3 retransmissions, 70 s at most); prints when 50/90/99/100 % held a lease. Same
# topology and pinning as compare.sh (AF_PACKET generator). More than 500 000 clients do not fit
# the harness's eight /16 relay subnets: the servers then get eight /15 scopes (bench/widen.py)
# and the relays are GIADDRS_WIDE. Not run in CI.
# Usage (root): [CLIENTS=N] bench/avalanche.sh [SERVER ...]   (default: kea-persist
#   kea-nopersist peregrine-afpacket-fsync peregrine-udp-fsync); reports in $OUT (default
#   /tmp/peregrine-bench).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
harness_lock
OUT="${OUT:-$RUN_DIR}"; mkdir -p "$OUT"
SERVERS=("$@"); [[ ${#SERVERS[@]} -gt 0 ]] || SERVERS=(kea-persist kea-nopersist peregrine-afpacket-fsync peregrine-udp-fsync)
CLIENTS="${CLIENTS:-100000}"
topology_up_if_needed; write_configs
GIADDRS="$GIADDRS_8"
if (( CLIENTS > 500000 )); then
  for f in "$RUN_DIR"/pg-*.toml; do "$BENCH_DIR/widen.py" peregrine "$f" "$f"; done
  for f in "$RUN_DIR"/kea-*.json; do "$BENCH_DIR/widen.py" kea "$f" "$f"; done
  GIADDRS="$GIADDRS_WIDE"
fi
trap 'bench_stop; nodrop_udp67 "$NS_PERF"; "$HARNESS/netns-topology.sh" down >/dev/null 2>&1' EXIT
trap 'exit 130' INT TERM
drop_udp67 "$NS_PERF" p-srv
for srv in "${SERVERS[@]}"; do
  wait_cargo_idle
  bench_start "$srv" >/dev/null 2>&1 || { echo "$srv did not start" >&2; exit 1; }
  ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" "$LOADGEN" run --backend afpacket --interface p-srv \
    --server "$SERVER_IP" --giaddr "$GIADDRS" --clients "$CLIENTS" --scenario avalanche --retries 3 \
    --max-time 70 --server-pid "$SPID" --label "$srv" --quiet \
    --circuit-id 'olt{relay}/port{port}' --remote-id 'sub-{client}' --json "$OUT/avalanche-$CLIENTS-$srv.json"
  bench_stop
done
