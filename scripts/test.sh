#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs every test: formatting, lints, unit,
# property, differential, corpus and peer tests. This is the README's test command and what
# CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use as independent peers and dissectors: tshark, and the real
# DHCP clients and relay of the end-to-end run; Kea and ISC dhcpd, whose lease files the import
# tests read; DPDK 22.11 and what bindgen needs, for dpdk/sys; systemd-analyze and openssl, for
# the unit file and the admin API's TLS; Prometheus and promtool, for the alert rules and a real
# scrape.
packages=(tshark isc-dhcp-relay isc-dhcp-client udhcpc busybox iproute2 nftables kea-admin
    kea-dhcp4-server isc-dhcp-server libdpdk-dev libclang-dev clang pkg-config ethtool systemd
    openssl prometheus)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
        exit 1
    fi
    echo "--- installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's DHCP packages would start their services; tests start their own peers.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: Peregrine needs a Rust toolchain >= 1.95 (rustup)" >&2
    exit 1
}

echo "--- cargo fmt --check"
cargo fmt --all -- --check
echo "--- cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "--- cargo test"
CI=${CI:-} cargo test --workspace --locked
echo "--- power-cut exploration of the lease journal (crash points and cuts per seed)"
cargo test -p peregrine-store --locked --lib power_cut -- --nocapture | grep 'power-cut exploration'
echo "--- the server on DPDK (cargo feature dpdk)"
cargo clippy -p peregrine --features dpdk --all-targets --locked -- -D warnings
CI=${CI:-} cargo test -p peregrine --features dpdk --locked --test it dpdk
cargo clippy -p peregrine-bench --features dpdk --all-targets --locked -- -D warnings
CI=${CI:-} cargo test -p peregrine-bench --features dpdk --locked --test it dpdk
echo "--- DPDK linked statically (PEREGRINE_DPDK_STATIC, dpdk/README.md)"
PEREGRINE_DPDK_STATIC=bus_vdev,mempool_ring,net_null cargo test -p peregrine-dpdk-sys --locked

# Real clients against the real server: dhclient and udhcpc through dhcrelay (option 82), in
# the shared harness's namespaces (../shared/harness, beside the repository in CI).
harness="$(cd .. && pwd)/shared/harness"
if [ -x "$harness/real-clients.sh" ]; then
    # One release build serves every run: the dpdk feature only adds a backend.
    cargo build --release --locked -p peregrine --features dpdk
    for config in harness.toml harness-udp.toml; do
        rm -rf /tmp/peregrine-harness/leases
        echo "--- real clients through dhcrelay, config/$config (shared harness)"
        "$harness/real-clients.sh" "$PWD/target/release/peregrine run --config $PWD/config/$config"
        echo "--- perfdhcp DORA at 2000/s, config/$config"
        scripts/perfdhcp-check.sh "config/$config" 2000
    done
    for pmd in tap af_xdp; do
        echo "--- real clients through dhcrelay, the server on DPDK net_$pmd (scripts/harness-dpdk.sh)"
        scripts/harness-dpdk.sh "$pmd"
    done
else
    echo "--- $harness not found: the real-client run needs the shared harness beside the repository"
    [ -z "${CI:-}" ] || exit 1
fi

# The package as an operator installs it: built, installed, serving udhcpc as the unit runs
# the server, purged.
echo "--- the Debian package (scripts/package-test.sh)"
scripts/package-test.sh

# The README's run command, which also checks that both of its clients got a lease.
echo "--- the README's lab (scripts/lab.sh)"
scripts/lab.sh
