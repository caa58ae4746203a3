#!/usr/bin/env bash
# perfdhcp against Peregrine in the shared harness's direct layout (perfdhcp acting as a relay):
# DORA at a modest rate must see every DISCOVER offered and every REQUEST acknowledged.
# Usage: scripts/perfdhcp-check.sh CONFIG [RATE]   (run as root; needs ../shared/harness)
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
rate=${2:-2000}
harness="$(cd .. && pwd)/shared/harness"
label="peregrine-check-$$"
"$harness/bench-perfdhcp.sh" -p 5 -L "$label" -- --cmd "$PWD/target/release/peregrine run --config $PWD/$config" "$rate" >/dev/null
tsv="$harness/results/$label.tsv"
# Columns: do_sent 5, do_rcvd 6, ra_sent 8, ra_rcvd 9.
read -r sent offered requested acked < <(awk -F'\t' 'NR == 2 {print $5, $6, $8, $9}' "$tsv")
rm -f "$tsv" "$harness/results/raw/$label"-*
echo "perfdhcp at $rate/s with $config: $sent DISCOVERs, $offered OFFERs, $requested REQUESTs, $acked ACKs"
if [ "${sent:-0}" -gt 0 ] && [ "$sent" = "$offered" ] && [ "$requested" = "$acked" ]; then
    echo "perfdhcp: 1 passed, 0 failed"
else
    echo "perfdhcp: 0 passed, 1 failed"
    exit 1
fi
