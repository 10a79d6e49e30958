#!/bin/sh
# Inside pkg_sandbox.sh (root, a throw-away overlay of this machine, loopback
# only): installs the two packages, checks what they set up, starts each
# service's ExecStart the way systemd would (as the unit's User=), proves the
# connector reaches the edge, stops both, removes and purges the packages.
# Prints "ok: STEP" after each step; any failure exits non-zero at once.
# Usage: pkg_steps.sh PKG_DIR VERSION
set -eu
PKGS=$1 VERSION=$2
ok() { echo "ok: $*"; }
unit_value() { sed -n "s/^$2=//p" "/lib/systemd/system/$1"; }

dpkg -i "$PKGS"/warren_*.deb "$PKGS"/warren-edge_*.deb
dpkg-query -W -f='${Package} ${Version} ${Status}\n' warren warren-edge
[ "$(dpkg-query -W -f='${Status}' warren)" = "install ok installed" ]
[ "$(dpkg-query -W -f='${Status}' warren-edge)" = "install ok installed" ]
ok installed

# The units: no warnings from systemd's own checker, enabled by postinst.
out=$(systemd-analyze verify /lib/systemd/system/warren.service /lib/systemd/system/warren-edge.service 2>&1)
[ -z "$out" ] || { echo "$out"; exit 1; }
[ -L /etc/systemd/system/multi-user.target.wants/warren.service ]
[ -L /etc/systemd/system/multi-user.target.wants/warren-edge.service ]
ok units verified and enabled
systemd-analyze security --offline=yes /lib/systemd/system/warren.service \
  /lib/systemd/system/warren-edge.service 2>&1 | grep 'Overall exposure' || true

# The edge's user and data directory.
getent passwd warren-edge | grep -q ':/var/lib/warren-edge:/usr/sbin/nologin$'
[ "$(stat -c '%U %a' /var/lib/warren-edge)" = "warren-edge 700" ]
[ "$(stat -c '%U %a' /etc/warren)" = "root 700" ]
ok user and directories

/usr/bin/warren --version | grep -q "warren version $VERSION"
/usr/bin/warren-edge --version | grep -q "$VERSION"
man -w warren >/dev/null && man -w warren-edge >/dev/null
ok binaries and man pages

# Start the edge as its unit does.
EDGE_USER=$(unit_value warren-edge.service User)
as_edge() { setpriv --reuid="$EDGE_USER" --regid="$EDGE_USER" --init-groups "$@"; }
as_edge /usr/bin/warren-edge init --data-dir /var/lib/warren-edge --zone example.test >/dev/null
[ -f /var/lib/warren-edge/warren.db ]  # the unit's ConditionPathExists
# Not through as_edge: a function in the background is a subshell, and $!
# must be the edge itself.
# shellcheck disable=SC2046
setpriv --reuid="$EDGE_USER" --regid="$EDGE_USER" --init-groups \
  $(unit_value warren-edge.service ExecStart) >/tmp/edge.log 2>&1 &
EDGE_PID=$!
as_edge /usr/bin/warren-edge tunnel create --data-dir /var/lib/warren-edge --out /tmp/t.json pkgtest >/dev/null
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["TunnelID"])' /tmp/t.json)
install -m 0600 /tmp/t.json "/etc/warren/$ID.json"
cat > /etc/warren/config.yml <<YML
tunnel: $ID
credentials-file: /etc/warren/$ID.json
edge: [127.0.0.1:7844]
cacert: /var/lib/warren-edge/ca.pem
protocol: quic
metrics: 127.0.0.1:2000
hello-world: true
YML
# shellcheck disable=SC2046
$(unit_value warren.service ExecStart) >/tmp/warren.log 2>&1 &
WARREN_PID=$!
i=0
until /usr/bin/warren tunnel ready --metrics 127.0.0.1:2000 >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 $WARREN_PID 2>/dev/null; then
    echo "connector never became ready"; cat /tmp/warren.log /tmp/edge.log; exit 1
  fi
  sleep 0.1
done
ok started: connector registered with the edge
[ "$(stat -c %U /proc/$EDGE_PID)" = warren-edge ]  # User= honoured

kill -TERM $WARREN_PID $EDGE_PID
wait $WARREN_PID || { echo "warren exited $?"; cat /tmp/warren.log; exit 1; }
wait $EDGE_PID || { echo "warren-edge exited $?"; cat /tmp/edge.log; exit 1; }
ok stopped

dpkg -r warren warren-edge
[ ! -e /usr/bin/warren ] && [ ! -e /usr/bin/warren-edge ]
[ ! -e /lib/systemd/system/warren.service ] && [ ! -e /lib/systemd/system/warren-edge.service ]
[ -f /etc/warren-edge/edge.yml ]  # a conffile stays until purge
[ "$(dpkg-query -W -f='${Status}' warren-edge)" = "deinstall ok config-files" ]
ok removed
dpkg -P warren warren-edge
[ ! -e /etc/warren-edge/edge.yml ]
[ ! -e /etc/systemd/system/multi-user.target.wants/warren-edge.service ]
[ ! -e /etc/systemd/system/multi-user.target.wants/warren.service ]
! dpkg-query -W warren-edge >/dev/null 2>&1 || [ -z "$(dpkg-query -W -f='${Status}' warren-edge | grep installed | grep -v not-installed)" ]
[ -d /var/lib/warren-edge ]  # the edge's identity outlives a purge (postrm says why)
ok purged
