#!/usr/bin/env bash
# Builds the Debian package of the server from this workspace with dpkg-deb (no debhelper, no
# cargo-deb): target/debian/peregrine_<version>_<arch>.deb. It holds /usr/bin/peregrine, a
# manual page per command (generated from the CLI definition, `peregrine manual`), the
# documented configuration as /etc/peregrine/peregrine.toml (a conffile), the systemd unit,
# the Grafana dashboard and the Prometheus rules under /usr/share/peregrine; the maintainer
# scripts (packaging/debian) create the peregrine user, /var/lib/peregrine and the admin token.
# Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -q -p peregrine
bin=target/release/peregrine
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=target/debian/stage
rm -rf "$stage"
install -d "$stage/DEBIAN"
install -D -m 0755 "$bin" "$stage/usr/bin/peregrine"
strip --strip-unneeded "$stage/usr/bin/peregrine"
"$bin" manual "$stage/usr/share/man/man8"
gzip -9n "$stage"/usr/share/man/man8/*.8
install -D -m 0644 config/example.toml "$stage/etc/peregrine/peregrine.toml"
install -D -m 0644 packaging/peregrine.service "$stage/lib/systemd/system/peregrine.service"
install -D -m 0644 packaging/grafana/peregrine.json "$stage/usr/share/peregrine/grafana/peregrine.json"
install -D -m 0644 packaging/prometheus/peregrine-rules.yml \
    "$stage/usr/share/peregrine/prometheus/peregrine-rules.yml"
install -D -m 0644 README.md "$stage/usr/share/doc/peregrine/README.md"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
    "$stage/DEBIAN/"
# The shared libraries the binary links, as Debian packages (libc6 here).
depends=$(dpkg-query -W -f='${Package} (>= ${Version})\n' libc6 | sed 's/ (>= \([^-+~]*\).*/ (>= \1)/')
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" \
    -e "s/@SIZE@/$size/" packaging/debian/control > "$stage/DEBIAN/control"
out="target/debian/peregrine_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
