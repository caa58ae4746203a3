#!/usr/bin/env bash
# bench/compaction.sh -- what journal compaction costs packets. Peregrine (AF_PACKET, journal
# fsync) starts with PRELOAD leases imported (default 300 000, so each snapshot rewrite reads and
# writes ~28 MB), then serves RATE new DORAs per second (default 20 000) for RUN_S seconds
# (default 10), twice: "quiet" with compact-after = 1 GiB (the journal is never sealed during the
# run) and "compacting" with compact-after = 1 MiB (sealed about every 11 000 changes, so a
# compaction of the whole snapshot runs back to back through the run). Same topology, pinning
# and generator as compare.sh: the server and its journal writer and compactor share CPU0.
# Reports DISCOVER-OFFER and REQUEST-ACK latency (p50, p99, p99.9, max) and drops per mode, and
# the compactions done with the last one's duration. Not run in CI.
# Usage (root; after cargo build --release -p peregrine -p peregrine-bench):
#   [PRELOAD=N] [RATE=N] [RUN_S=S] bench/compaction.sh      results in $OUT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
harness_lock
PRELOAD="${PRELOAD:-300000}"
RATE="${RATE:-20000}"
RUN_S="${RUN_S:-10}"
OUT="${OUT:-$BENCH_DIR/results/compaction-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
[[ -x "$LOADGEN" && -x "$BIN/peregrine" ]] || { echo "build first: cargo build --release -p peregrine-bench -p peregrine" >&2; exit 1; }
topology_up_if_needed; write_configs
trap 'stop_server; nodrop_udp67 "$NS_PERF"; "$HARNESS/netns-topology.sh" down >/dev/null 2>&1' EXIT
trap 'exit 130' INT TERM
drop_udp67 "$NS_PERF" p-srv

# PRELOAD leases spread over the eight perf scopes, with MACs (0e:...) no generated client uses.
python3 - "$PRELOAD" > "$RUN_DIR/preload.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context")
for i in range(n):
    scope, k = i % 8, i // 8 + 10
    mac = ":".join(f"{b:02x}" for b in (0x0e, 0, *i.to_bytes(4, "big")))
    print(f"10.{210 + scope}.{k >> 8}.{k & 255},{mac},,86400,4000000000,{210 + scope},0,0,,0,")
PY
echo "# compaction.sh: $PRELOAD leases preloaded, $RATE DORA/s for $RUN_S s, $(uname -r), $(nproc) CPUs" | tee "$OUT/summary.txt"
for mode in quiet compacting; do
  limit=1073741824; [[ $mode == compacting ]] && limit=1048576
  cfg="$RUN_DIR/pg-compaction-$mode.toml"
  sed -e "s|^durability = .*|durability = \"fsync\"\ncompact-after = $limit|" "$RUN_DIR/pg-afpacket-fsync.toml" > "$cfg"
  rm -rf "$RUN_DIR/leases"
  "$BIN/peregrine" leases import --config "$cfg" --format kea-csv "$RUN_DIR/preload.csv" | head -1
  wait_cargo_idle
  nodrop_udp67 "$NS_SRV"
  start_server_cmd "taskset -c $SRV_CPU $BIN/peregrine run --config $cfg" "$RUN_DIR/server-compaction-$mode.out" || exit 1
  SPID="$(cat "$SERVER_PIDFILE")"
  ip netns exec "$NS_PERF" taskset -c "$GEN_CPU" "$LOADGEN" run --backend afpacket --interface p-srv \
    --server "$SERVER_IP" --giaddr "$GIADDRS_8" --clients $((RATE * RUN_S)) --rate "$RATE" \
    --duration "$RUN_S" --server-pid "$SPID" --label "$mode" --quiet \
    --json "$OUT/compaction-$mode.json" > "$OUT/loadgen-$mode.txt"
  ip netns exec "$NS_SRV" curl -s 127.0.0.1:9167/metrics | grep -E '^peregrine_journal_(compactions_total|last_compaction_seconds|segments_sealed_total|snapshot_records|fsyncs_total)' > "$OUT/journal-$mode.txt"
  stop_server
done
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
print("| mode | phase | answered | drops | p50 ms | p99 ms | p99.9 ms | max ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for mode in ("quiet", "compacting"):
    r = json.loads((out / f"compaction-{mode}.json").read_text())
    for p in r["phases"]:
        if p["phase"] in ("discover-offer", "request-ack"):
            print(f'| {mode} | {p["phase"]} | {p["answered"]} | {p["drops"]} | {p["p50_ms"]:.2f} | {p["p99_ms"]:.2f} | {p["p999_ms"]:.2f} | {p["max_ms"]:.2f} |')
for mode in ("quiet", "compacting"):
    figures = dict(l.split() for l in (out / f"journal-{mode}.txt").read_text().splitlines())
    print(f"{mode}: " + ", ".join(f"{k.removeprefix('peregrine_journal_')}={v}" for k, v in sorted(figures.items())))
PY
