#!/usr/bin/env bash
# bench/ab.sh -- two builds of a server at one fixed rate, runs alternating (A, B, A, B, ...),
# in compare.sh's topology with this tree's generator: for a change whose effect is smaller
# than what the VM's speed does within an hour, which a ladder cannot separate.
#
# Usage (root): bench/ab.sh DIR_A DIR_B SERVER RATE [RUNS]
#   DIR_A, DIR_B: directories holding each build's `peregrine` (copy target/release/peregrine
#   aside before building the other); SERVER: a compare.sh server name; RUNS: pairs (default 4).
#   compare.sh's environment applies (RUN_S, OTHERS_CPU, GEN_BACKEND, ...).
# Output: $OUT/{A,B}-<i>/runs.log and a line per run: offered, ACKs/s, drops, p99, worker µs per
# DORA (default OUT: bench/results/ab-<UTC time>/).
set -uo pipefail
[[ $# -ge 4 ]] || { sed -n 2,12p "$0" >&2; exit 2; }
A=$1 B=$2 SRV=$3 RATE=$4 RUNS=${5:-4}
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/results/ab-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
export LOADGEN="${LOADGEN:-$HERE/../target/release/peregrine-loadgen}"
for i in $(seq 1 "$RUNS"); do
  for side in A B; do
    dir=$A; [[ $side == B ]] && dir=$B
    BIN=$dir OUT="$OUT/$side-$i" FIXED=1 LADDER=$RATE "$HERE/compare.sh" "$SRV" > /dev/null 2>&1
    run=$(grep -v '^#' "$OUT/$side-$i/runs.log" 2>/dev/null | tail -1)
    echo -e "$side\t${run:-no run (the server did not start?): $OUT/$side-$i}"
  done
done | tee "$OUT/ab.log"
