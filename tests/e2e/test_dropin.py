"""cloudflared's command lines run warren unchanged, and warren's hot reload.

- The packaged systemd unit (`--no-autoupdate --config F tunnel run` on the
  program), the Docker image (`tunnel --no-autoupdate run --token T`), the
  Helm chart (`tunnel --config F --metrics A --no-autoupdate run`) and the
  systemd unit for a token (`tunnel run --token-file F`, TUNNEL_TOKEN_FILE).
- `tunnel ready` against a connector that is ready and one that is not.
- A command line full of newer flags: it serves, each flag without effect
  is named in exactly one warning, --tag reaches the origin, --output json
  makes every log line a JSON object, --logfile gets the log too.
- Hot reload under load: a loop of requests while the config file changes
  (new hostnames, new originRequest) and while SIGHUP arrives has zero
  failed requests; a request in flight across the reload completes; a bad
  file is refused with file, line and key, and the old rules keep serving.

The edge, origin and tunnels are test_tunnel.py's (its classes, not its
fixtures); TUNNEL_EDGE / TUNNEL_CACERT stand in for Cloudflare's edge where a
command line has no --edge (warren has no DNS discovery of the edge)."""
import base64
import json
import signal
import threading
import time

import pytest

from conftest import WARREN, WARREN_EDGE, ProcSet, free_port, run, wait_for
from test_tunnel import Edge, Origin, echo_json, header_values, host, proc_env, request

TUNNELS = {"sysd": ["sysd"], "docker": ["docker"], "helm": ["helm"], "tokfile": ["tokfile"],
           "flags": ["flags"], "reload": ["rl", "rl2"], "idle": []}

# Flags that change nothing in warren; each must be named in one warning.
NOOP = [("post-quantum", None),
        ("management-diagnostics", None), ("max-edge-addr-retries", "3"),
        ("transport-loglevel", "warn"),
        ("no-chunked-encoding", None), ("metrics-update-freq", "10s"),
        ("heartbeat-interval", "3s"), ("compression-quality", "0"), ("stdin-control", None),
        ("write-stream-timeout", "5s"), ("quic-disable-pmtu-discovery", None),
        ("trace-output", "trace.out"), ("autoupdate-freq", "24h")]
# Flags that do something (no warning). --region and --edge-ip-version
# steer edge discovery (test_edge_discovery.py); with --edge, as here, they
# change nothing, as in cloudflared.
REAL = [("region", "us"), ("edge-ip-version", "auto"), ("no-autoupdate", None), ("no-prechecks", None), ("dial-edge-timeout", "20s"),
        ("rpc-timeout", "10s"), ("edge-bind-address", "127.0.0.1"), ("ha-connections", "2"),
        ("retries", "3"),
        ("quic-connection-level-flow-control-limit", "31457280"),
        ("quic-stream-level-flow-control-limit", "6291456"), ("output", "json"),
        ("tag", "env=prod"), ("tag", "team=edge-ops"), ("label", "my-connector"),
        ("http2-origin", None)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("dropin")
    home = base / "home"
    home.mkdir()
    env = proc_env(home)
    procs = ProcSet(base)
    try:
        origin = Origin(procs, base)
        edge = Edge(base, procs, env, TUNNELS)
        # The reload test's request loop is faster than the default
        # per-source request rate.
        edge.p = procs.start([WARREN_EDGE, "run", "--data-dir", edge.dir,
                              "--tunnel-listen", f"127.0.0.1:{edge.udp}",
                              "--http-listen", f"127.0.0.1:{edge.http}",
                              "--api-listen", "127.0.0.1:0",
                              "--requests-per-second-per-source", "0"], name="warren-edge", env=env)
        assert edge.p.wait_output("Serving visitors on http://", 30) is not None
        # What the edge discovery would give: the address and its CA.
        env = dict(env, TUNNEL_EDGE=f"127.0.0.1:{edge.udp}", TUNNEL_CACERT=str(edge.ca),
                   TUNNEL_TRANSPORT_PROTOCOL="quic")
        yield base, env, procs, origin, edge
    finally:
        procs.close()


def token_of(creds_path):
    c = json.loads(creds_path.read_text())
    tok = {"a": c["AccountTag"], "t": c["TunnelID"], "s": c["TunnelSecret"]}
    return base64.b64encode(json.dumps(tok).encode()).decode()


def ready_metrics(port):
    return run([WARREN, "tunnel", "--metrics", f"127.0.0.1:{port}", "ready"]).returncode == 0


def start(procs, args, env, name):
    return procs.start([WARREN, *args], name=name, env=env, stop_timeout=30)


def start_ready(procs, args, env, name, metrics):
    """Starts a connector and waits until `tunnel ready` on its metrics
    port (|metrics|) says it is ready."""
    p = start(procs, args, env, name)
    assert wait_for(lambda: ready_metrics(metrics), 30), p.tail()
    return p


def serves(edge, hostname, path="/echo"):
    r, data = request(edge.http, "GET", path, hostname=host(hostname), timeout=20)
    return r.status, data


def tunnel_config(path, edge, name, rest):
    """Writes a config file for the tunnel |name|: its ID and credentials
    file, then |rest|. Returns |path|."""
    path.write_text(f"tunnel: {edge.ids[name]}\n"
                    f"credentials-file: {edge.creds[name]}\n" + rest)
    return path


def stop_clean(p):
    rc = p.stop(30)
    assert rc == 0, f"connector exited {rc}; log tail:\n{p.tail()}"


def test_systemd_unit_command_line(world, tmp_path):
    base, env, procs, origin, edge = world
    metrics = free_port()
    cfg = tunnel_config(tmp_path / "config.yml", edge, "sysd",
                        f"metrics: 127.0.0.1:{metrics}\n"
                        f"ingress:\n  - service: http://127.0.0.1:{origin.http}\n")
    # ExecStart of cloudflared's packaged unit, flags on the program itself.
    p = start_ready(procs, ["--no-autoupdate", "--config", str(cfg), "tunnel", "run"], env, "sysd", metrics)
    status, data = serves(edge, "sysd")
    assert status == 200 and echo_json_ok(data)
    stop_clean(p)


def echo_json_ok(data):
    return json.loads(data)["method"] == "GET"


def test_docker_command_line_with_token(world):
    base, env, procs, origin, edge = world
    metrics = free_port()
    env = dict(env, TUNNEL_URL=f"http://127.0.0.1:{origin.http}",
               TUNNEL_METRICS=f"127.0.0.1:{metrics}")
    # The image's entrypoint is `cloudflared --no-autoupdate`; users add
    # `tunnel run --token T`, and the documented form is this one.
    p = start_ready(procs, ["tunnel", "--no-autoupdate", "run", "--token", token_of(edge.creds["docker"])],
                    env, "docker", metrics)
    assert serves(edge, "docker")[0] == 200
    stop_clean(p)


def test_helm_chart_arguments(world, tmp_path):
    base, env, procs, origin, edge = world
    metrics = free_port()
    cfg = tunnel_config(tmp_path / "config.yaml", edge, "helm",
                        f"ingress:\n  - hostname: {host('helm')}\n"
                        f"    service: http://127.0.0.1:{origin.http}\n"
                        f"  - service: http_status:404\n")
    p = start_ready(procs, ["tunnel", "--config", str(cfg), "--metrics", f"127.0.0.1:{metrics}",
                            "--no-autoupdate", "run"], env, "helm", metrics)
    r = run([WARREN, "tunnel", "--metrics", f"127.0.0.1:{metrics}", "ready"])
    assert (r.returncode, r.stderr) == (0, "")
    assert serves(edge, "helm")[0] == 200
    stop_clean(p)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_token_file(world, tmp_path, how):
    base, env, procs, origin, edge = world
    metrics = free_port()
    tok = tmp_path / "token"
    tok.write_text("\n  " + token_of(edge.creds["tokfile"]) + "\n")
    env = dict(env, TUNNEL_METRICS=f"127.0.0.1:{metrics}")
    args = ["--no-autoupdate", "tunnel", "run", "--url", f"http://127.0.0.1:{origin.http}"]
    if how == "flag":
        args += ["--token-file", str(tok)]
    else:
        env["TUNNEL_TOKEN_FILE"] = str(tok)
    p = start_ready(procs, args, env, f"tokfile-{how}", metrics)
    assert serves(edge, "tokfile")[0] == 200
    stop_clean(p)


def test_token_file_missing_is_an_error(world, tmp_path):
    base, env, procs, origin, edge = world
    r = run([WARREN, "tunnel", "run", "--token-file", str(tmp_path / "nope")], env=env)
    assert r.returncode == 1
    assert f"Failed to read token file: open {tmp_path / 'nope'}: no such file or directory" \
        in r.stderr


def test_tunnel_ready_on_a_connector_that_is_not_ready(world):
    base, env, procs, origin, edge = world
    metrics = free_port()
    nowhere = f"127.0.0.1:{free_port(socket_dgram())}"
    p = start(procs, ["tunnel", "--edge", nowhere, "--metrics", f"127.0.0.1:{metrics}",
                      "--credentials-file", str(edge.creds["idle"]), "--hello-world", "run",
                      edge.ids["idle"]], env, "idle")
    def answered():
        r = run([WARREN, "tunnel", "--metrics", f"127.0.0.1:{metrics}", "ready"])
        return r if "endpoint returned status code" in r.stderr else None
    assert wait_for(answered, 20), p.tail()
    r = answered()
    assert r.returncode == 1
    assert r.stderr.startswith(f"http://127.0.0.1:{metrics}/ready endpoint returned status code 503\n")
    assert '"readyConnections":0' in r.stderr
    stop_clean(p)


def socket_dgram():
    import socket
    return socket.SOCK_DGRAM


def test_newer_flags_serve_and_warn_once_each(world, tmp_path):
    base, env, procs, origin, edge = world
    metrics = free_port()
    logfile = tmp_path / "warren.log"
    args = []
    for name, value in NOOP + REAL:
        args += [f"--{name}"] + ([] if value is None else [value])
    p = start_ready(procs, ["tunnel", *args, "--logfile", str(logfile), "--metrics",
                            f"127.0.0.1:{metrics}", "--credentials-file", str(edge.creds["flags"]),
                            "--url", f"http://127.0.0.1:{origin.http}", "run", edge.ids["flags"]],
                    env, "flags", metrics)
    r, data = request(edge.http, "GET", "/echo", hostname=host("flags"))
    echo = echo_json(r, data)
    assert header_values(echo, "Cf-Warp-Tag-env") == ["prod"]
    assert header_values(echo, "Cf-Warp-Tag-team") == ["edge-ops"]
    assert len(header_values(echo, "Cf-Warp-Tag-Id")) == 1
    stop_clean(p)

    lines = [ln for ln in p.output().splitlines() if ln.strip()]
    records = [json.loads(ln) for ln in lines]  # --output json: every line is JSON
    assert all(set(rec) == {"level", "time", "message"} for rec in records), records[:3]
    warnings = [rec["message"] for rec in records if rec["level"] == "warn"]
    for name, _ in NOOP:
        named = [w for w in warnings if w.startswith(f"--{name} has no effect in warren: ")]
        assert len(named) == 1, (name, warnings)
    for name, _ in REAL:
        assert not [w for w in warnings if w.startswith(f"--{name} ")], (name, warnings)
    # --logfile: the same lines in the file too.
    assert any("Registered tunnel connection" in json.loads(ln)["message"]
               for ln in logfile.read_text().splitlines())


def test_bad_tag_is_refused(world):
    base, env, procs, origin, edge = world
    r = run([WARREN, "tunnel", "--tag", "no value", "--credentials-file",
             str(edge.creds["flags"]), "--hello-world", "run", edge.ids["flags"]], env=env)
    assert r.returncode == 1
    assert "Tag parse failure: Cannot parse tag value no value" in r.stderr


# --- hot reload ------------------------------------------------------------------------

def reload_config(origin, extra="", host_header=None):
    orq = f"    originRequest:\n      httpHostHeader: {host_header}\n" if host_header else ""
    return (f"ingress:\n  - hostname: {host('rl')}\n    service: http://127.0.0.1:{origin.http}\n"
            f"{orq}{extra}  - service: http_status:404\n")


class Load:
    """Requests in a loop from two threads; counts failures."""

    def __init__(self, edge):
        self.edge, self.ok, self.failed, self.stop = edge, 0, [], threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(2)]
        for t in self.threads:
            t.start()

    def loop(self):
        while not self.stop.is_set():
            try:
                r, data = request(self.edge.http, "GET", "/echo", hostname=host("rl"), timeout=20)
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failed.append((r.status, data[:200]))
            except OSError as e:
                self.failed.append(repr(e))

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_reload_under_load(world, tmp_path):
    base, env, procs, origin, edge = world
    metrics = free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text(reload_config(origin))
    p = start_ready(procs, ["tunnel", "--config", str(cfg), "--metrics", f"127.0.0.1:{metrics}",
                            "--credentials-file", str(edge.creds["reload"]), "--grace-period", "10s",
                            "run", edge.ids["reload"]], env, "reload", metrics)
    assert serves(edge, "rl2")[0] == 404
    load = Load(edge)
    try:
        # A request in flight across every reload below.
        slow = {}
        t = threading.Thread(target=lambda: slow.update(r=serves(edge, "rl", "/slow?delay=4")))
        t.start()
        assert wait_for(lambda: load.ok > 20, 30)

        # 1. The file changes: a new hostname and new originRequest.
        cfg.write_text(reload_config(origin, f"  - hostname: {host('rl2')}\n"
                                              f"    service: http://127.0.0.1:{origin.http}\n",
                                     host_header="rewritten.example"))
        assert wait_for(lambda: serves(edge, "rl2")[0] == 200, 30), p.tail()
        st, body = serves(edge, "rl")
        assert st == 200, body[:300]
        echo = json.loads(body)
        assert header_values(echo, "Host") == ["rewritten.example"]

        # 2. A bad file: refused with file, line and key; the old rules serve.
        n = load.ok
        bad = reload_config(origin, "  - hostname: x.example.test\n    service: htp://nope\n")
        line = bad.splitlines().index("    service: htp://nope") + 1
        cfg.write_text(bad)
        assert p.wait_output("Refused the new configuration", 30) is not None, p.tail()
        assert f"{cfg}:{line}: ingress[1].service" in p.output(), p.tail()
        assert "the previous configuration keeps serving" in p.output()
        assert wait_for(lambda: load.ok > n + 20, 30)
        assert serves(edge, "rl2")[0] == 200

        # 3. SIGHUP after fixing the file by hand: rl2 goes again.
        cfg.write_text(reload_config(origin))
        p.signal(signal.SIGHUP)
        assert wait_for(lambda: serves(edge, "rl2")[0] == 404, 30), p.tail()
        assert "(SIGHUP)" in p.output()

        t.join(30)
        assert slow["r"][0] == 200 and slow["r"][1].startswith(b"slow done"), slow
        n = load.ok
        assert wait_for(lambda: load.ok > n + 20, 30)
    finally:
        load.close()
    assert load.failed == [], load.failed[:5]
    assert load.ok > 60
    assert p.alive()
    stop_clean(p)
