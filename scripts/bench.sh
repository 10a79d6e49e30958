#!/usr/bin/env bash
# `make bench`: Warren's benchmark harness, on loopback, in one go.
# For each path: direct to the origin (the limit), warren-edge + warren, and
# warren-edge + cloudflared when CLOUDFLARED=/path/to/cloudflared is given
# (that path runs inside a loopback-only network namespace: cloudflared looks
# up DNS records at start), all over QUIC; then warren-http2 (and
# cloudflared-http2) with --protocol http2, requests/s and 100 MB transfers
# only. Writes bench/results/latest.md and latest.json and
# the table into bench/README.md. See bench/README.md for the figures.
# Then the private path (bench/private.py): ping, iperf3 TCP/UDP and flows per
# GiB through TUN -> warren-edge -> connector, in two network namespaces, for
# each connector path in BENCH_PATHS (needs root and /dev/net/tun).
#
#   make bench                                   direct + warren
#   make bench CLOUDFLARED=/opt/cloudflared/cloudflared
#   BENCH_PATHS="warren" scripts/bench.sh        one path only (no report ratios then)
#   BENCH_KEEP=1 ...                             keep every path's work dir and logs
#   BENCH_RESULTS=/tmp/x ...                     write the results there (README untouched)
#   BENCH_PRIVATE=0 | only                       skip the private path | run only it
# Then, as root with wireguard-go: WireGuard throughput (bench/wireguard.py),
# written to bench/results/wireguard.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/${WARREN_BUILD:-build}
results=${BENCH_RESULTS:-$root/bench/results}
py=/usr/bin/python3
cf=${CLOUDFLARED:-}

# --- packages the benchmark needs beyond `make deps` (apt-get only if missing) ---
"$root/scripts/install-deps.sh" nginx-light wrk curl iproute2 python3 time iperf3 iputils-ping nghttp2-client

for b in warren warren-edge; do
  [ -x "$bin/$b" ] || { echo "bench: $bin/$b missing; run make first" >&2; exit 1; }
done
if [ -n "$cf" ] && [ ! -x "$cf" ]; then
  echo "bench: CLOUDFLARED=$cf is not an executable" >&2
  exit 1
fi

# --- the WebSocket echo origin and the fixed-rate latency client (C, built here) ---
mkdir -p "$bin/bench"
ws_echo=$bin/bench/ws_echo
if [ ! -x "$ws_echo" ] || [ "$root/bench/ws_echo.c" -nt "$ws_echo" ]; then
  ${CC:-cc} -O2 -Wall -Wextra -o "$ws_echo" "$root/bench/ws_echo.c"
fi
latency=$bin/bench/latency
if [ ! -x "$latency" ] || [ "$root/bench/latency.c" -nt "$latency" ]; then
  ${CC:-cc} -O2 -Wall -Wextra -o "$latency" "$root/bench/latency.c"
fi

work=$(mktemp -d /tmp/warren-bench.XXXXXX)
ns=""
cleanup() {
  if [ -n "$ns" ]; then ip netns delete "$ns" 2>/dev/null || true; fi
}
trap cleanup EXIT

paths=${BENCH_PATHS:-direct warren${cf:+ cloudflared} warren-http2${cf:+ cloudflared-http2}}
private=${BENCH_PRIVATE:-1}
http_paths=$paths
[ "$private" = only ] && http_paths=""
keep=()
[ -n "${BENCH_KEEP:-}" ] && keep=(--keep)
parts=()
start=$(date +%s)
for path in $http_paths; do
  echo "bench: path $path"
  args=(bench/bench.py path "$path" --out "$work/$path.json" --build "$bin" --ws-echo "$ws_echo" --latency "$latency" "${keep[@]}")
  rc=0
  if [ "${path%-http2}" = cloudflared ]; then
    [ -n "$cf" ] || { echo "bench: path $path needs CLOUDFLARED=..." >&2; exit 1; }
    ns=warren-bench-$$
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    (cd "$root" && ip netns exec "$ns" "$py" "${args[@]}" --cloudflared "$cf") || rc=$?
    ip netns delete "$ns"
    ns=""
  else
    (cd "$root" && "$py" "${args[@]}") || rc=$?
  fi
  [ "$rc" -eq 0 ] || echo "bench: path $path reported a failure (rc $rc); see its JSON" >&2
  [ -f "$work/$path.json" ] && parts+=("$work/$path.json")
done

# --- the private path: TUN -> warren-edge -> connector, per connector path ---
report_private=()
if [ "$private" != 0 ]; then
  conns=()
  for path in $paths; do
    case $path in warren|cloudflared) conns+=("$path") ;; esac
  done
  if [ ${#conns[@]} -eq 0 ]; then
    echo "bench: private path skipped (no connector in BENCH_PATHS)"
  elif [ "$(id -u)" -ne 0 ] || [ ! -e /dev/net/tun ]; then
    echo "bench: private path skipped (needs root and /dev/net/tun)" >&2
  else
    echo "bench: private path (${conns[*]})"
    list=$(IFS=,; echo "${conns[*]}")
    rc=0
    (cd "$root" && "$py" bench/private.py run --out "$work/private.json" --build "$bin" \
      --connectors "$list" ${cf:+--cloudflared "$cf"} "${keep[@]}") || rc=$?
    [ "$rc" -eq 0 ] || echo "bench: private path reported a failure (rc $rc); see its JSON" >&2
    [ -f "$work/private.json" ] && report_private=(--private "$work/private.json")
  fi
fi
echo "bench: measured in $(( $(date +%s) - start )) s"

mkdir -p "$results"
# The table goes into bench/README.md only when the results go to their usual place.
readme=()
[ -z "${BENCH_RESULTS:-}" ] && readme=(--readme "$root/bench/README.md")
"$py" "$root/bench/bench.py" report "${parts[@]}" --md "$results/latest.md" \
  --json "$results/latest.json" "${readme[@]}" "${report_private[@]}"
rm -rf "$work"
echo "bench: wrote $results/latest.md and $results/latest.json"

# The HTTPS front: h1 and h2 requests/s and TLS handshakes/s against nginx
# with TLS (bench/https.py; BENCH_HTTPS=0 skips it).
if [ "${BENCH_HTTPS:-1}" != 0 ] && [ "$private" != only ]; then
  (cd "$root" && "$py" bench/https.py --build "$bin" --out "$results/https.json" "${readme[@]}") ||
    echo "bench: the HTTPS measurement failed" >&2
fi

# WireGuard: iperf3 through wireguard-go -> edge -> connector, against
# wireguard-go <-> wireguard-go directly (bench/wireguard.py; root only).
if [ "$(id -u)" -eq 0 ] && command -v wireguard-go >/dev/null && command -v wg >/dev/null; then
  (cd "$root" && "$py" bench/wireguard.py --build "$bin" --out "$results/wireguard.json") ||
    echo "bench: the WireGuard measurement failed" >&2
else
  echo "bench: WireGuard throughput skipped (needs root, wireguard-go and wg)"
fi
