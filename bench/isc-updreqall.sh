#!/usr/bin/env bash
# bench/isc-updreqall.sh -- a Peregrine and ISC dhcpd 4.4 pair: how long a partner that lost its
# database takes to learn N bindings again (UPDREQALL), in each direction (not run in CI).
#
#   towards ISC:       Peregrine primary holding N leases (imported), NORMAL; ISC dhcpd secondary
#                      started with an empty lease file asks for everything. Timed from ISC's
#                      start until the pair is NORMAL, nothing is unacknowledged and ISC's lease
#                      file shows every lease active.
#   towards Peregrine: ISC primary whose lease file holds N active leases and a NORMAL failover
#                      state; Peregrine secondary with an empty lease directory. Timed from
#                      Peregrine's start until it leaves RECOVER (the primary's UPDDONE).
#
# Peregrine's max-unacked-updates is MAX_UNACKED (default 10, ISC's own): ISC acknowledges as
# soon as half of what its partner advertised is pending, else every two seconds.
#
# Usage (root; after `cargo build --release -p peregrine`; Debian's isc-dhcp-server):
#   bench/isc-updreqall.sh [N] [towards-isc|towards-peregrine|both]     default: 100000 both
set -euo pipefail
N="${1:-100000}"
WHICH="${2:-both}"
MAX_UNACKED="${MAX_UNACKED:-10}"
REPO_DIR="$(cd "$(dirname "$0")/.." && pwd)"
PEREGRINE="${BIN:-$REPO_DIR/target/release}/peregrine"
DHCPD="$(command -v dhcpd || echo /usr/sbin/dhcpd)"
DIR="${RUN_DIR:-/tmp/peregrine-isc-updreqall}"
# The pool: the N leased addresses and 1 024 more, so that the first balancing moves about 512
# addresses to the partner, not half of a pool of free ones.
LAST=$(python3 -c "a = (10 << 24 | 64 << 16 | 1 << 8) + $N + 1023; print('%d.%d.%d.%d' % (a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255))")
A=iscq-a-$$
B=iscq-b-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT

# Peregrine in $A on fo0 (10.64.0.1), ISC in $B on fo1 (10.64.0.2), one /14 scope on both.
topology() {
  cleanup
  pids=()
  ip netns add "$A"
  ip netns add "$B"
  ip -n "$A" link set lo up
  ip -n "$B" link set lo up
  ip -n "$A" link add fo0 type veth peer name fo1 netns "$B"
  ip -n "$A" addr add 10.64.0.1/14 dev fo0
  ip -n "$B" addr add 10.64.0.2/14 dev fo1
  ip -n "$A" link set fo0 up
  ip -n "$B" link set fo1 up
}

peregrine_config() { # role
  printf '%s\n' \
    '[dataplane]' 'backend = "udp"' '' \
    '[[interface]]' 'name = "fo0"' 'address = "10.64.0.1"' '' \
    '[[scope]]' 'name = "big"' 'subnet = "10.64.0.0/14"' 'interfaces = ["fo0"]' '' \
    '[[scope.pool]]' "range = \"10.64.1.0 - $LAST\"" '' \
    '[leases]' "directory = \"$DIR/leases\"" '' \
    '[failover]' "role = \"$1\"" 'local = "10.64.0.1"' 'peer = "10.64.0.2"' \
    'relationship = "isc-updreqall"' 'mclt = 60' "max-unacked-updates = $MAX_UNACKED"
}

isc_config() { # role
  local role="secondary;"
  [[ $1 == primary ]] && role="primary; mclt 60; split 128;"
  printf '%s\n' \
    'authoritative;' 'ddns-update-style none;' 'ping-check false;' \
    'default-lease-time 86400;' 'max-lease-time 86400;' \
    'failover peer "isc-updreqall" {' "  $role" '  address 10.64.0.2;' '  port 647;' \
    '  peer address 10.64.0.1;' '  peer port 647;' '  max-response-delay 60;' \
    '  max-unacked-updates 10;' '  load balance max seconds 3;' '}' \
    'subnet 10.64.0.0 netmask 255.252.0.0 {' '  pool {' '    failover peer "isc-updreqall";' \
    "    range 10.64.1.0 $LAST;" '  }' '}'
}

# N leases, each its own client, running for a day: as a Kea file (for Peregrine's import) or
# as ISC's lease file (with the pair's NORMAL state).
leases() { # kea|isc
  python3 "$REPO_DIR/bench/leases.py" "$N" "$1"
}

seconds() { python3 -c "print(round($2 - $1, 1))"; }

state() { # the JSON key $1 of Peregrine's /v1/failover
  ip netns exec "$A" curl -s --max-time 2 http://127.0.0.1:9167/v1/failover 2>/dev/null \
    | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1'))" 2>/dev/null || true
}

serving() { # log
  for _ in $(seq 1 600); do grep -q "peregrine serving" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "did not start: $1" >&2; tail -5 "$1" >&2; return 1
}

# Each server in its namespace, in the background, logging to $DIR.
start_isc() {
  ip netns exec "$B" "$DHCPD" -4 -f -d -cf "$DIR/dhcpd.conf" -lf "$DIR/dhcpd.leases" \
    -pf "$DIR/dhcpd.pid" fo1 > "$DIR/dhcpd.log" 2>&1 &
  pids+=($!)
}
start_peregrine() {
  ip netns exec "$A" "$PEREGRINE" run --config "$DIR/peregrine.toml" > "$DIR/peregrine.log" 2>&1 &
  pids+=($!)
}

active_in_isc() {
  python3 "$REPO_DIR/bench/leases.py" count "$DIR/dhcpd.leases"
}

towards_isc() {
  topology
  rm -rf "$DIR" && mkdir -p "$DIR/leases"
  peregrine_config primary > "$DIR/peregrine.toml"
  isc_config secondary > "$DIR/dhcpd.conf"
  : > "$DIR/dhcpd.leases"
  leases kea > "$DIR/kea.csv"
  "$PEREGRINE" leases import --config "$DIR/peregrine.toml" --format kea-csv "$DIR/kea.csv" > "$DIR/import.log" 2>&1
  # The primary was in NORMAL with ISC before ISC lost its lease file.
  echo "2 $(date +%s) 60" > "$DIR/leases/failover.state"
  start_peregrine
  serving "$DIR/peregrine.log"
  local start; start=$(date +%s.%N)
  start_isc
  local s u t active
  for _ in $(seq 1 14400); do
    s=$(state partner_state)
    u=$(state unacked_updates)
    if [[ "$s" == NORMAL && "$u" == 0 ]]; then
      active=$(active_in_isc)
      if [[ "$active" -ge "$N" ]]; then
        t=$(date +%s.%N)
        echo "towards ISC: $N bindings in ISC's lease file $(seconds "$start" "$t") s after ISC's start ($(state updates_sent) updates sent, the pool's balancing included; ISC active: $active)"
        return 0
      fi
    fi
    sleep 0.5
  done
  echo "towards ISC: ISC did not hold every binding within two hours" >&2
  return 1
}

towards_peregrine() {
  topology
  rm -rf "$DIR" && mkdir -p "$DIR/leases"
  peregrine_config secondary > "$DIR/peregrine.toml"
  isc_config primary > "$DIR/dhcpd.conf"
  leases isc > "$DIR/dhcpd.leases"
  local isc_start; isc_start=$(date +%s.%N)
  start_isc
  for _ in $(seq 1 1200); do grep -q "Sending on" "$DIR/dhcpd.log" 2>/dev/null && break; sleep 0.1; done
  echo "ISC read its $N leases and serves $(seconds "$isc_start" "$(date +%s.%N)") s after its start"
  local start; start=$(date +%s.%N)
  start_peregrine
  local seen="" s t
  for _ in $(seq 1 14400); do
    s=$(state state)
    [[ -n "$seen" || "$s" != RECOVER ]] || seen=1
    if [[ -n "$seen" && ( "$s" == RECOVER-DONE || "$s" == NORMAL || "$s" == RECOVER-WAIT ) ]]; then
      t=$(date +%s.%N)
      echo "towards Peregrine: UPDREQALL of $N bindings answered in $(seconds "$start" "$t") s after Peregrine's start ($s, $(state updates_accepted) updates accepted)"
      return 0
    fi
    sleep 0.25
  done
  echo "towards Peregrine: Peregrine did not leave RECOVER within an hour" >&2
  return 1
}

case "$WHICH" in
  towards-isc) towards_isc ;;
  towards-peregrine) towards_peregrine ;;
  both) towards_isc; towards_peregrine ;;
  *) echo "usage: $0 [N] [towards-isc|towards-peregrine|both]" >&2; exit 2 ;;
esac
