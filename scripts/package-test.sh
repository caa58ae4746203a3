#!/usr/bin/env bash
# The Debian package, end to end, as root on a Debian 12 machine: builds it
# (scripts/build-deb.sh), installs it with dpkg, checks what it put where (user, lease
# directory, token, unit, manual pages), runs the server exactly as the unit does (the unit's
# ExecStart, User and capabilities, through setpriv: systemd need not be PID 1) in a network
# namespace and leases an address to udhcpc, then purges the package and checks that nothing
# of it is left but the peregrine user. Part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "package-test: needs root" >&2; exit 1; }
if dpkg-query -W -f='${Status}' peregrine 2>/dev/null | grep -q "install ok installed"; then
    echo "package-test: a peregrine package is installed here already; not touching it" >&2
    exit 1
fi

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
srv=pgpkg-srv-$$
cli=pgpkg-cli-$$
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    dpkg --purge peregrine >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

deb=$(scripts/build-deb.sh)
echo "--- package: $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --info "$deb" | sed -n 's/^ *\(Package\|Version\|Depends\):/  \1:/p'
dpkg -i "$deb" >/dev/null

echo "--- installed"
getent passwd peregrine >/dev/null || fail "no peregrine user"
[ "$(stat -c '%U:%G %a' /var/lib/peregrine)" = "peregrine:peregrine 750" ] \
    || fail "/var/lib/peregrine is $(stat -c '%U:%G %a' /var/lib/peregrine)"
[ "$(stat -c '%U:%G %a' /etc/peregrine/admin.token)" = "peregrine:peregrine 600" ] \
    || fail "/etc/peregrine/admin.token is $(stat -c '%U:%G %a' /etc/peregrine/admin.token)"
[ -s /etc/peregrine/admin.token ] || fail "empty admin token"
cmp -s config/example.toml /etc/peregrine/peregrine.toml || fail "configuration not installed"
for page in peregrine peregrine-run peregrine-leases-recover peregrine-check-config; do
    zcat "/usr/share/man/man8/$page.8.gz" | grep -q '^\.TH' || fail "no manual page $page(8)"
done
systemd-analyze verify /lib/systemd/system/peregrine.service 2>&1 | grep peregrine.service \
    && fail "systemd-analyze finds fault with the installed unit"
/usr/bin/peregrine --version
echo "  user, /var/lib/peregrine, admin token, configuration, manual pages, unit: ok"

echo "--- serving as the unit runs it"
ip netns add "$srv"
ip netns add "$cli"
ip -n "$srv" link add srv0 type veth peer name cli0 netns "$cli"
ip -n "$srv" addr add 10.66.0.1/24 dev srv0
ip -n "$srv" link set srv0 up
ip -n "$srv" link set lo up
ip -n "$cli" link set cli0 up
cat > /etc/peregrine/peregrine.toml <<TOML
[[interface]]
name = "srv0"
address = "10.66.0.1"

[leases]
directory = "/var/lib/peregrine"

[control]
token-file = "/etc/peregrine/admin.token"

[[scope]]
name = "lab"
subnet = "10.66.0.0/24"
interfaces = ["srv0"]

[[scope.pool]]
range = "10.66.0.100 - 10.66.0.199"
TOML
unit=/lib/systemd/system/peregrine.service
user=$(sed -n 's/^User=//p' "$unit")
group=$(sed -n 's/^Group=//p' "$unit")
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z ' 'a-z\n' | sed 's/^cap_/+/' | paste -sd,)
read -r -a start_pre <<< "$(sed -n 's/^ExecStartPre=//p' "$unit")"
read -r -a start <<< "$(sed -n 's/^ExecStart=//p' "$unit")"
as_unit=(setpriv "--reuid=$user" "--regid=$group" --init-groups "--inh-caps=-all,$caps"
    "--ambient-caps=-all,$caps" "--bounding-set=-all,$caps" --no-new-privs --)
ip netns exec "$srv" "${as_unit[@]}" "${start_pre[@]}" || fail "ExecStartPre (check-config) failed"
ip netns exec "$srv" "${as_unit[@]}" "${start[@]}" 2> "$work/server.log" &
server=$!
leased=
for _ in $(seq 1 20); do
    if out=$(ip netns exec "$cli" timeout 10 udhcpc -i cli0 -n -q -f -t 3 -T 1 -s /bin/true 2>&1); then
        leased=$(sed -n 's/.*lease of \([0-9.]*\) obtained.*/\1/p' <<< "$out")
        break
    fi
    sleep 0.5
done
[ -n "$leased" ] || { cat "$work/server.log" >&2; fail "udhcpc got no lease"; }
echo "  udhcpc leased $leased from the server running as $(ps -o user= -p "$server" 2>/dev/null || echo "$user")"
[ "$(stat -c %U /var/lib/peregrine/journal)" = "$user" ] || fail "the journal is not $user's"
kill -TERM "$server"
wait "$server" || fail "the server did not stop cleanly on SIGTERM"
server=

echo "--- purged"
dpkg --purge peregrine >/dev/null
for gone in /usr/bin/peregrine /lib/systemd/system/peregrine.service /etc/peregrine \
    /var/lib/peregrine /usr/share/man/man8/peregrine.8.gz /usr/share/peregrine; do
    [ ! -e "$gone" ] || fail "$gone left after purge"
done
echo "  nothing left but the peregrine user (Debian keeps system users)"
echo "package-test: ok"
