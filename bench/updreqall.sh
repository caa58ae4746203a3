#!/usr/bin/env bash
# bench/updreqall.sh -- how long a failover partner that lost its database takes to learn every
# binding again (UPDREQALL), with N bindings at the primary (not run in CI).
#
# Two namespaces joined by a veth pair: a primary whose lease directory holds N leases (a Kea
# lease file of N clients, imported with `peregrine leases import`) and a failover state of
# NORMAL, and a secondary started with an empty lease directory. The secondary comes up in
# RECOVER, asks for everything (UPDREQALL), journals every binding before acknowledging it, and
# leaves RECOVER on the primary's UPDDONE; after the MCLT (60 s here) both are in NORMAL.
# Prints the import time, the time from the secondary's start to UPDDONE and to NORMAL, the
# bindings it accepted, and both servers' resident memory.
#
# Usage (root; after `cargo build --release -p peregrine`):
#   bench/updreqall.sh [N]        default: 1000000
set -euo pipefail
N="${1:-1000000}"
REPO_DIR="$(cd "$(dirname "$0")/.." && pwd)"
PEREGRINE="${BIN:-$REPO_DIR/target/release}/peregrine"
DIR="${RUN_DIR:-/tmp/peregrine-updreqall}"
A=upq-a-$$
B=upq-b-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$DIR" && mkdir -p "$DIR"
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip -n "$A" link add fo0 type veth peer name fo1 netns "$B"
ip -n "$A" addr add 10.64.0.1/12 dev fo0
ip -n "$B" addr add 10.64.0.2/12 dev fo1
ip -n "$A" link set fo0 up
ip -n "$B" link set fo1 up

# One scope of a million addresses, the same on both; only the role and addresses differ.
config() { # role iface local peer dir
  cat <<EOF
[dataplane]
backend = "udp"

[[interface]]
name = "$2"
address = "$3"

[[scope]]
name = "big"
subnet = "10.64.0.0/12"
interfaces = ["$2"]

[[scope.pool]]
range = "10.64.1.0 - 10.79.254.255"

[leases]
directory = "$5"

[failover]
role = "$1"
local = "$3"
peer = "$4"
relationship = "updreqall"
mclt = 60
EOF
}
config primary fo0 10.64.0.1 10.64.0.2 "$DIR/primary-leases" > "$DIR/primary.toml"
config secondary fo1 10.64.0.2 10.64.0.1 "$DIR/secondary-leases" > "$DIR/secondary.toml"
mkdir -p "$DIR/primary-leases" "$DIR/secondary-leases"

# N leases, each its own client, running for a day.
python3 - "$N" > "$DIR/kea-leases4.csv" <<'PY'
import sys, time
n = int(sys.argv[1])
expire = int(time.time()) + 86400
first = (10 << 24) | (64 << 16) | (1 << 8)
print("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context")
out = sys.stdout
for i in range(n):
    a = first + i
    mac = "02:%02x:%02x:%02x:%02x:%02x" % ((i >> 32) & 255, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)
    out.write("%d.%d.%d.%d,%s,,86400,%d,1,0,0,,0,\n" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, mac, expire))
PY
t0=$(date +%s.%N)
"$PEREGRINE" leases import --config "$DIR/primary.toml" --format kea-csv "$DIR/kea-leases4.csv" > "$DIR/import.log" 2>&1
t1=$(date +%s.%N)
echo "import: $N leases in $(python3 -c "print(round($t1 - $t0, 1))") s"
# The primary was in NORMAL with its partner before the partner lost its disk.
echo "2 $(date +%s) 60" > "$DIR/primary-leases/failover.state"

serving() { # log
  for _ in $(seq 1 600); do grep -q "peregrine serving" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "did not start: $1" >&2; tail -5 "$1" >&2; return 1
}
ip netns exec "$A" "$PEREGRINE" run --config "$DIR/primary.toml" > "$DIR/primary.log" 2>&1 &
pids+=($!)
serving "$DIR/primary.log"
start=$(date +%s.%N)
ip netns exec "$B" "$PEREGRINE" run --config "$DIR/secondary.toml" > "$DIR/secondary.log" 2>&1 &
pids+=($!)
status() { ip netns exec "$B" curl -s http://127.0.0.1:9167/v1/failover; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1'))"; }
done_at=""
normal_at=""
for _ in $(seq 1 3600); do
  s=$(status 2>/dev/null || true)
  state=$(echo "$s" | field state 2>/dev/null || echo "")
  now=$(date +%s.%N)
  if [[ -z "$done_at" && ( "$state" == "RECOVER-WAIT" || "$state" == "RECOVER-DONE" || "$state" == "NORMAL" ) ]]; then
    done_at=$now
    accepted=$(echo "$s" | field updates_accepted)
    echo "UPDDONE: $accepted bindings in $(python3 -c "print(round($done_at - $start, 1))") s after the secondary started ($state)"
  fi
  if [[ "$state" == "NORMAL" ]]; then
    normal_at=$now
    break
  fi
  sleep 0.5
done
[[ -n "$normal_at" ]] || { echo "the secondary did not reach NORMAL" >&2; exit 1; }
echo "NORMAL: $(python3 -c "print(round($normal_at - $start, 1))") s after the secondary started (the MCLT, 60 s, included)"
rss() { ps -o rss= -p "$1" | awk '{printf "%d MiB", $1 / 1024}'; }
echo "resident: primary $(rss "${pids[0]}"), secondary $(rss "${pids[1]}")"
