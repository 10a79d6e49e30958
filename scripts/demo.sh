#!/usr/bin/env bash
# `make demo`: sets up an edge data directory under the repo (once), a tunnel
# routed at hello.<zone>, and then runs edge + connector + hello-world origin.
# Until the visitor path lands (issue #3) it runs only the edge's connector
# side and says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/${WARREN_BUILD:-build}
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
port=${DEMO_TUNNEL_PORT:-7844}
tid=$(sed -n 's/.*"TunnelID":"\([^"]*\)".*/\1/p' "$data/hello.json")
cat <<MSG
not yet: visitors cannot reach hello.$zone until the visitor front and
\`warren tunnel run\` land (issue #3). What runs today is the edge's connector
side: it registers connectors over QUIC, exactly as Cloudflare's edge does.

Starting warren-edge on 127.0.0.1:$port (UDP). With a real cloudflared, in another terminal:

  cloudflared tunnel --no-autoupdate --edge 127.0.0.1:$port --cacert $data/ca.pem \\
      --protocol quic --credentials-file $data/hello.json --hello-world run $tid

then watch "Registered tunnel connection" here and in:  $bin/warren-edge audit --data-dir $data
Press Ctrl-C to stop.
MSG
exec "$bin/warren-edge" run --data-dir "$data" --tunnel-listen "127.0.0.1:$port"
