#!/usr/bin/env bash
# `make demo`: sets up an edge data directory under the repo (once), a tunnel
# routed at hello.<zone>, and then runs edge + connector + hello-world origin.
# Until the tunnel transport lands (issue #3) it stops after the set-up and
# says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build
data=$root/demo-data
zone=${DEMO_ZONE:-demo.test}

if [ ! -f "$data/warren.db" ]; then
  "$bin/warren-edge" init --data-dir "$data" --zone "$zone"
  "$bin/warren-edge" tunnel create --data-dir "$data" --out "$data/hello.json" hello
  "$bin/warren-edge" route dns --data-dir "$data" hello "hello.$zone"
fi
echo
echo "Edge data directory: $data"
"$bin/warren-edge" tunnel list --data-dir "$data"
echo
if ! "$bin/warren-edge" run --help >/dev/null 2>&1 || "$bin/warren-edge" run --data-dir "$data" --tunnel-listen 127.0.0.1:0 2>&1 | grep -q "not implemented yet"; then
  echo "not yet: the QUIC tunnel (warren-edge run / warren tunnel run) arrives with issue #3."
  echo "What exists today: the data directory above, its CA ($data/ca.pem), the admin's"
  echo "cert.pem ($data/cert.pem) and the tunnel credentials ($data/hello.json)."
  exit 0
fi
