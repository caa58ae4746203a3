#!/usr/bin/env bash
# bench/preemptions.sh -- who keeps the server's worker off its core, and for how long. Starts
# PROFILE (a compare.sh server name, default peregrine-dpdk-afxdp-fsync) with compare.sh's
# topology and pinning (server, journal writer and compactor on CPU0, generator on CPU1), records
# the scheduler's switches on the server's core with perf while the generator offers RATE DORA/s
# (default 110 000) for about 3 s, RUNS times (default 4), and prints for each run the clients
# leased and bench/preemptions.py's list of the worker's longest preemptions. A DPDK queue holds
# a few milliseconds of a busy port's frames: the preemptions over 2 ms are the ones to explain.
# Not run in CI.
# Usage (root; after cargo build --release -p peregrine -p peregrine-bench [--features ...dpdk]):
#   [PROFILE=name] [RATE=N] [RUNS=N] bench/preemptions.sh      results in $OUT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
harness_lock
PROFILE="${PROFILE:-peregrine-dpdk-afxdp-fsync}"
# The thread that polls s-perf: a DPDK worker polls every port (pg-dpdk-0), others one each.
WORKER=pg-s-perf-0; [[ $PROFILE == *dpdk* ]] && WORKER=pg-dpdk-0
RATE="${RATE:-110000}"
RUNS="${RUNS:-4}"
OUT="${OUT:-$BENCH_DIR/results/preemptions-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
command -v perf > /dev/null || { echo "perf is needed (apt install linux-perf)" >&2; exit 1; }
[[ -x "$LOADGEN" && -x "$BIN/peregrine" ]] || { echo "build first: cargo build --release -p peregrine-bench -p peregrine" >&2; exit 1; }
topology_up_if_needed; write_configs
trap 'bench_stop; nodrop_udp67 "$NS_PERF"' EXIT
trap 'exit 130' INT TERM
drop_udp67 "$NS_PERF" p-srv
echo "# preemptions.sh: $PROFILE at $RATE DORA/s, $(uname -r), $(nproc) CPUs" | tee "$OUT/summary.txt"
for run in $(seq 1 "$RUNS"); do
  wait_cargo_idle
  bench_start "$PROFILE" || exit 1
  sleep 1
  perf record -e sched:sched_switch -C "$SRV_CPU" -o "$OUT/sched-$run.data" > /dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
  ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" "$LOADGEN" run --backend afpacket --interface p-srv \
    --server "$SERVER_IP" --giaddr "$GIADDRS_8" --clients $((RATE * 3)) --rate "$RATE" --timeout 1 \
    --circuit-id 'olt{relay}/port{port}' --remote-id 'sub-{client}' --quiet \
    --json "$OUT/run-$run.json" > "$OUT/loadgen-$run.txt"
  kill -INT "$perf_pid"; wait "$perf_pid"
  bench_stop
  { echo "== run $run: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["leased_clients"], "of", r["clients"], "clients leased, offered", round(r["offered_per_s"]), "per s")' "$OUT/run-$run.json")"
    python3 "$BENCH_DIR/preemptions.py" "$OUT/sched-$run.data" "$WORKER"; } | tee -a "$OUT/summary.txt"
done
