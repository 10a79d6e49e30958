#!/usr/bin/env bash
# Installs the Debian 12 packages Warren needs to build and test, or with
# arguments those packages instead (scripts/bench.sh names its own).
# Idempotent: only calls apt-get when something is missing. Runs as root (CI
# does) or via sudo.
set -euo pipefail
pkgs=(
  build-essential pkg-config clang libclang-rt-14-dev
  libuv1-dev libgnutls28-dev gnutls-bin libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp2-dev libnghttp3-dev
  libyaml-dev libjansson-dev libsqlite3-dev libpq-dev postgresql libldns-dev knot dnsutils liblwip-dev
  libsodium-dev libb2-dev libqrencode-dev wireguard-go wireguard-tools
  libcmocka-dev python3 python3-pytest python3-yaml python3-cryptography python3-grpcio curl chromium libnss3-tools nghttp2-client python3-h2 iproute2 iputils-ping traceroute mtr-tiny
  pebble openssl nftables
  dpkg-dev systemd adduser man-db
)
[ $# -eq 0 ] || pkgs=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
