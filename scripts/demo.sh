#!/usr/bin/env bash
# `make demo`: sets up an edge data directory under the repo (once), a tunnel
# routed at hello.<zone>, then runs warren-edge and a warren connector serving
# the built-in hello-world page, and prints how to reach it. Ctrl-C stops
# both cleanly (the connector unregisters first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/${WARREN_BUILD:-build}
data=$root/demo-data
zone=${DEMO_ZONE:-demo.test}
tport=${DEMO_TUNNEL_PORT:-7844}
hport=${DEMO_HTTP_PORT:-8080}
mport=${DEMO_METRICS_PORT:-2000}

if [ ! -f "$data/warren.db" ]; then
  "$bin/warren-edge" init --data-dir "$data" --zone "$zone"
  "$bin/warren-edge" tunnel create --data-dir "$data" --out "$data/hello.json" hello
  "$bin/warren-edge" route dns --data-dir "$data" hello "hello.$zone"
fi
tid=$(sed -n 's/.*"TunnelID":"\([^"]*\)".*/\1/p' "$data/hello.json")

pids=()
stop() {
  trap - INT TERM EXIT
  # Connector first, so it unregisters while the edge still listens.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  echo "demo stopped; logs in $data/*.log"
}
trap stop INT TERM EXIT

# Own sessions (setsid): Ctrl-C reaches only this script, which then stops
# the connector and the edge in order, each with a single SIGTERM.
setsid "$bin/warren-edge" run --data-dir "$data" --tunnel-listen "127.0.0.1:$tport" \
  --http-listen "127.0.0.1:$hport" >"$data/edge.log" 2>&1 &
pids+=($!)
setsid "$bin/warren" tunnel --no-autoupdate --edge "127.0.0.1:$tport" --cacert "$data/ca.pem" \
  --protocol quic --credentials-file "$data/hello.json" --metrics "127.0.0.1:$mport" \
  --grace-period 5s --hello-world run "$tid" >"$data/connector.log" 2>&1 &
pids+=($!)

ready=
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$mport/ready" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "the connector did not become ready; last log lines:" >&2
  tail -n 20 "$data/edge.log" "$data/connector.log" >&2
  exit 1
fi

cat <<MSG

Warren demo is up:
  edge       warren-edge: connectors on 127.0.0.1:$tport (QUIC), visitors on http://127.0.0.1:$hport
  connector  warren: tunnel hello ($tid), serving the hello-world page
  route      hello.$zone -> tunnel hello

Reach it:
  curl -H 'Host: hello.$zone' http://127.0.0.1:$hport/
  curl --resolve hello.$zone:$hport:127.0.0.1 http://hello.$zone:$hport/

Connector status:  curl http://127.0.0.1:$mport/ready   (and /metrics)
Audit log:         $bin/warren-edge audit --data-dir $data
Logs:              $data/edge.log  $data/connector.log
The real cloudflared works the same way:
  cloudflared tunnel --no-autoupdate --edge 127.0.0.1:$tport --cacert $data/ca.pem \\
      --protocol quic --credentials-file $data/hello.json --hello-world run $tid
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
