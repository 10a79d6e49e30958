#!/bin/sh
# Builds the warren and warren-edge .deb packages from the release binaries
# with dpkg-deb, from a staged tree (no debhelper, no debian/ directory to
# keep in step with the Makefile).
#
# Usage: scripts/mkdeb.sh BUILD_DIR OUT_DIR
#   BUILD_DIR holds warren and warren-edge (the release build, `make`);
#   OUT_DIR receives warren_VERSION_ARCH.deb and warren-edge_VERSION_ARCH.deb.
#
# Version: the VERSION file. Depends: dpkg-shlibdeps on the binaries (the
# shared libraries they link, each mapped to the package that ships it),
# plus the tools the maintainer scripts call. Man pages: generated from
# --help by scripts/help2man.py.
set -eu
BUILD=${1:?usage: mkdeb.sh BUILD_DIR OUT_DIR}
OUT=${2:?usage: mkdeb.sh BUILD_DIR OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(cat "$ROOT/VERSION")
ARCH=$(dpkg --print-architecture)
# Reproducible dates (man pages, file times): the last commit's time.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/warren-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT INT TERM
mkdir -p "$OUT"

# Depends of one binary, from dpkg-shlibdeps (it wants a debian/control of
# the package it works for; a minimal one in a scratch directory does).
shlib_depends() {
  mkdir -p "$STAGE/shlibs/debian"
  printf 'Source: warren\n\nPackage: %s\nArchitecture: any\n' "$1" > "$STAGE/shlibs/debian/control"
  (cd "$STAGE/shlibs" && dpkg-shlibdeps -O "$2" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}

# stage NAME BINARY SUMMARY DESCRIPTION EXTRA_DEPENDS
stage() {
  name=$1 bin=$2 summary=$3 desc=$4 extra=$5
  d="$STAGE/$name"
  install -d "$d/DEBIAN" "$d/usr/bin" "$d/lib/systemd/system" "$d/usr/share/man/man1" \
    "$d/usr/share/doc/$name"
  install -m 0755 "$BUILD/$bin" "$d/usr/bin/$bin"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$d/usr/bin/$bin"
  install -m 0644 "$ROOT/packaging/systemd/$name.service" "$d/lib/systemd/system/$name.service"
  "$ROOT/scripts/help2man.py" "$d/usr/bin/$bin" "$bin" 1 "$VERSION" | gzip -9n > "$d/usr/share/man/man1/$bin.1.gz"
  install -m 0644 "$ROOT/README.md" "$d/usr/share/doc/$name/README.md"
  gzip -9n "$d/usr/share/doc/$name/README.md"
  printf 'Warren %s, built from %s.\nLicence: see the source repository.\n' \
    "$VERSION" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    > "$d/usr/share/doc/$name/copyright"
  for s in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/deb/$name/$s" "$d/DEBIAN/$s"
  done
  deps=$(shlib_depends "$name" "$d/usr/bin/$bin")
  if [ -z "$deps" ]; then
    echo "mkdeb: dpkg-shlibdeps found no dependencies for $bin" >&2
    exit 1
  fi
  [ -n "$extra" ] && deps="$deps, $extra"
  size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\n' "$name" "$VERSION" "$ARCH"
    printf 'Maintainer: Warren developers <warren@localhost>\n'
    printf 'Installed-Size: %s\nDepends: %s\n' "$size" "$deps"
    printf 'Section: net\nPriority: optional\nHomepage: https://localhost/warren\n'
    printf 'Description: %s\n%s\n' "$summary" "$desc"
  } > "$d/DEBIAN/control"
  if [ -d "$d/etc" ]; then
    (cd "$d" && find etc -type f | sed 's|^|/|') > "$d/DEBIAN/conffiles"
  fi
  find "$d" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$d" "$OUT/${name}_${VERSION}_${ARCH}.deb" >/dev/null
  echo "$OUT/${name}_${VERSION}_${ARCH}.deb"
}

d="$STAGE/warren-edge"
install -d -m 0755 "$d/etc/warren-edge" "$d/usr/share/doc/warren-edge/examples"
install -m 0644 "$ROOT/packaging/examples/edge.yml" "$d/etc/warren-edge/edge.yml"
install -m 0644 "$ROOT/packaging/examples/tun.conf" "$d/usr/share/doc/warren-edge/examples/tun.conf"

stage warren warren "Cloudflare Tunnel compatible connector" \
" Warren connects local services and private networks to a warren-edge (or
 any edge speaking Cloudflare Tunnel's protocol) over outbound-only QUIC or
 HTTP/2 connections. It accepts cloudflared's commands, flags and config.yml.
 The warren.service unit runs the tunnel of /etc/warren/config.yml." ""

stage warren-edge warren-edge "Self-hosted edge for Cloudflare Tunnel connectors" \
" warren-edge is the server that warren and cloudflared connectors dial: it
 routes visitors' HTTP requests, private-network traffic and DNS to the
 tunnels, and serves the management API and login pages. The
 warren-edge.service unit runs it as the warren-edge user on
 /var/lib/warren-edge." "adduser"
