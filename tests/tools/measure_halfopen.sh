#!/usr/bin/env bash
# Measures warren-edge's resident memory before and while quic_halfopen
# holds N half-open QUIC handshakes (see tests/tools/quic_halfopen.c).
#   tests/tools/measure_halfopen.sh EDGE_BINARY HALFOPEN_BINARY N [quic_halfopen options...]
# Prints the RSS before, the peak (VmHWM) after, and the growth per handshake.
set -eu
edge=${1:?edge binary}; tool=${2:?quic_halfopen binary}; n=${3:?count}; shift 3
dir=$(mktemp -d /tmp/wr-halfopen-XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
"$edge" init --data-dir "$dir" --zone example.test >/dev/null 2>&1
port=$((20000 + RANDOM % 20000))
"$edge" run --data-dir "$dir" --tunnel-listen 127.0.0.1:$port --http-listen 127.0.0.1:0 \
  --api-listen 127.0.0.1:0 --loglevel warn >"$dir/edge.log" 2>&1 &
pid=$!
for _ in $(seq 50); do ss -uln | grep -q ":$port " && break; sleep 0.1; done
sleep 0.5
rss() { awk -v k="$1:" '$1 == k {print $2}' /proc/$pid/status; }
before=$(rss VmRSS)
"$tool" "$@" 127.0.0.1:$port "$n"
peak=$(rss VmHWM)
kill -0 $pid 2>/dev/null || { echo "warren-edge died"; tail "$dir/edge.log"; exit 1; }
echo "RSS before ${before} kB, peak ${peak} kB: +$((peak - before)) kB, $(( (peak - before) * 1024 / n )) bytes per handshake"
