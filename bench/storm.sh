#!/usr/bin/env bash
# bench/storm.sh -- renewals during a DISCOVER storm ([limits] overload-priority, issue 17):
# RENEWERS (default 2 000) clients behind relay 10.210.0.1 lease, then renew at RENEW_RATE
# (default 1 000/s) for 15 s, while CLIENTS (default 100 000) new subscribers behind the seven
# other relays start DORA at once (the avalanche of avalanche.sh). Run twice, with
# overload-priority on and off: prints each run's renewals (sent, answered, lost), the
# DISCOVERs the server dropped to give way, and when the storm's subscribers were all leased. Same topology and pinning as compare.sh (both generators
# on the generator's core). Not run in CI.
# Usage (root; after `cargo build --release -p peregrine -p peregrine-bench`):
#   [CLIENTS=N] [RENEWERS=N] [RENEW_RATE=N] bench/storm.sh
set -uo pipefail
source "$(dirname "$0")/lib.sh"
harness_lock
CLIENTS="${CLIENTS:-100000}"; RENEWERS="${RENEWERS:-2000}"; RENEW_RATE="${RENEW_RATE:-1000}"
STORM_RELAYS=10.211.0.1,10.212.0.1,10.213.0.1,10.214.0.1,10.215.0.1,10.216.0.1,10.217.0.1
topology_up_if_needed
trap 'bench_stop; nodrop_udp67 "$NS_PERF"; "$HARNESS/netns-topology.sh" down >/dev/null 2>&1' EXIT
trap 'exit 130' INT TERM
drop_udp67 "$NS_PERF" p-srv
gen() { ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" "$LOADGEN" run --backend afpacket \
  --interface p-srv --server "$SERVER_IP" --quiet "$@"; }
for priority in true false; do
  OVERLOAD_PRIORITY=$priority write_configs
  wait_cargo_idle
  bench_start peregrine-afpacket-fsync >/dev/null 2>&1 || { echo "the server did not start" >&2; exit 1; }
  gen --giaddr 10.210.0.1 --clients "$RENEWERS" --scenario mix --mix 100 0 0 0 \
    --rate "$RENEW_RATE" --duration 15 --timeout 2 --label "renewers-priority-$priority" \
    --json "$RUN_DIR/storm-renew-$priority.json" > "$RUN_DIR/storm-renew-$priority.txt" 2>&1 &
  RENEWING=$!
  # Every renewer holds its lease before the storm.
  sleep 4
  gen --giaddr "$STORM_RELAYS" --clients "$CLIENTS" --scenario avalanche --retries 3 --max-time 40 \
    --label "storm-priority-$priority" --json "$RUN_DIR/storm-flood-$priority.json" \
    > "$RUN_DIR/storm-flood-$priority.txt" 2>&1
  wait "$RENEWING"
  SHED="$(ip netns exec "$NS_SRV" curl -s --max-time 5 http://127.0.0.1:9167/metrics \
    | awk '/^peregrine_drops_total\{reason="overload_(discover|retransmission)"\}/ {n += $2} END {print n + 0}')"
  bench_stop
  python3 - "$priority" "$RUN_DIR/storm-renew-$priority.json" "$RUN_DIR/storm-flood-$priority.txt" "$SHED" <<'PY'
import json, sys
priority, renew_json, flood_txt, shed = sys.argv[1:]
r = json.load(open(renew_json))
p = [p for p in r["phases"] if p["phase"] == "renew"][0]
leased = [l for l in open(flood_txt) if l.startswith("leased:")]
print(f"overload-priority = {priority}: renewals sent {p['sent']}, answered {p['answered']}, "
      f"lost {p['drop_pct']:.2f} %, p99 {p['p99_ms']:.1f} ms; DISCOVERs the server dropped to "
      f"give way {shed}; storm {leased[-1].strip() if leased else '?'}")
PY
done
