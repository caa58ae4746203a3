#!/usr/bin/env bash
# Instructions per parse and per emit of the wire benchmarks, counted by callgrind (repeatable,
# unlike time on a shared machine). Usage: scripts/wire-instructions.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
cargo build --release -q -p peregrine-wire --example wire_instructions
bin=target/release/examples/wire_instructions
count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" 2>/dev/null >/dev/null
    awk '/^summary:/ {print $2}' "$out"
    rm -f "$out"
}
for what in parse emit; do
    base=$(count "$what" 0)
    total=$(count "$what" "$n")
    echo "$what: $(( (total - base) / n )) instructions/op (callgrind, N=$n)"
done
