"""The edge with its store in PostgreSQL (--store / WARREN_STORE): init,
the tunnel and route commands and `run` all use the database, nothing is
written to DIR/warren.db, and a connector's tunnel serves visitors.

The server is a throw-away one from Debian's postgresql package
(tests/tools/pg_tmp.sh: initdb as an unprivileged user in a temporary
directory, a unix socket only), removed after the module."""
import json
import os
import socket
import subprocess
import urllib.request

import pytest

from conftest import ROOT, WARREN_EDGE, check, edge_with_hello, free_port, run_edge_and_hello, wait_for

ZONE = "example.test"
PG_TMP = os.path.join(ROOT, "tests", "tools", "pg_tmp.sh")


@pytest.fixture(scope="module")
def pg_server():
    r = subprocess.run([PG_TMP, "start"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    dsn = r.stdout.strip()
    yield dsn
    subprocess.run([PG_TMP, "stop", dsn], capture_output=True, timeout=60)


def psql(dsn, sql):
    r = subprocess.run(["psql", dsn, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def store(pg_server, request):
    """A fresh database on the server; its connection string."""
    name = "e2e_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    psql(pg_server, f"DROP DATABASE IF EXISTS {name}")
    psql(pg_server, f"CREATE DATABASE {name}")
    return f"{pg_server} dbname={name}"


def get(port, host):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_an_edge_on_postgres_serves_a_tunnel(tmp_path, procs, store):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    env["WARREN_STORE"] = store
    d, creds, tid, out = edge_with_hello(tmp_path, env, ZONE)
    assert "dbname=" in out and "warren.db" not in out
    # The rows are in PostgreSQL, and no SQLite file was made.
    assert not (d / "warren.db").exists()
    assert psql(store, "SELECT name FROM tunnels") == "hello"
    assert psql(store, "SELECT hostname FROM routes") == f"hello.{ZONE}"

    http = run_edge_and_hello(procs, d, creds, tid, env, ["--api-listen", "127.0.0.1:0"])
    status, body = get(http, f"hello.{ZONE}")
    assert status == 200, body
    # The edge recorded the live connection in the database.
    assert wait_for(lambda: psql(store, "SELECT count(*) FROM connections c JOIN tunnels t"
                                        " ON t.id = c.tunnel_id WHERE t.name = 'hello'"
                                        " AND c.closed_at IS NULL") != "0", 10)
    # A route added by the CLI next to the running edge serves at once.
    check([WARREN_EDGE, "route", "dns", "--data-dir", d, "hello", f"again.{ZONE}"], env)
    status, body = get(http, f"again.{ZONE}")
    assert status == 200, body
    assert not (d / "warren.db").exists()


def test_init_refuses_a_store_that_has_an_edge(tmp_path, store):
    env = {**os.environ, "HOME": str(tmp_path)}
    check([WARREN_EDGE, "init", "--data-dir", tmp_path / "a", "--zone", ZONE, "--store", store],
          env)
    r = subprocess.run([WARREN_EDGE, "init", "--data-dir", str(tmp_path / "b"), "--zone", ZONE,
                        "--store", store], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0
    assert "already holds" in r.stderr
    assert psql(store, "SELECT count(*) FROM accounts") == "1"


def test_an_unreachable_store_is_a_clear_error(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    bad = f"host={tmp_path}/nosuch port=5432 user=warren password=s3cret dbname=x"
    r = subprocess.run([WARREN_EDGE, "init", "--data-dir", str(tmp_path / "a"), "--zone", ZONE,
                        "--store", bad], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0
    assert "cannot connect to store" in r.stderr
    assert "s3cret" not in r.stderr
    assert not (tmp_path / "a").exists()



def test_store_migrate_moves_an_edge_to_postgres(tmp_path, procs, store):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TUNNEL_") and k != "WARREN_STORE"}
    env["HOME"] = str(tmp_path)
    d, creds, tid, _ = edge_with_hello(tmp_path, env, ZONE)
    before = (d / "warren.db").read_bytes()
    out = check([WARREN_EDGE, "store", "migrate", "--from", d, "--to", store], env).stdout
    assert "Copied" in out
    assert (d / "warren.db").read_bytes() == before
    # A second copy into the same database is refused.
    r = subprocess.run([WARREN_EDGE, "store", "migrate", "--from", str(d), "--to", store],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "already has accounts" in r.stderr
    # The SQLite file is set aside: the edge must run from PostgreSQL alone.
    (d / "warren.db").rename(tmp_path / "old.db")
    listed = check([WARREN_EDGE, "tunnel", "list", "--data-dir", d, "--store", store], env).stdout
    assert tid in listed
    http = run_edge_and_hello(procs, d, creds, tid, env, ["--store", store, "--api-listen", ""])
    status, body = get(http, f"hello.{ZONE}")
    assert status == 200, body
    # The audit log came along.
    assert "tunnel.create" in check([WARREN_EDGE, "audit", "--data-dir", d, "--store", store], env).stdout


def test_api_answers_503_while_the_database_is_down(tmp_path, procs, pg_server, store):
    import http.client
    from common import read_cert
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNNEL_")}
    env["HOME"] = str(tmp_path)
    env["WARREN_STORE"] = store
    d = tmp_path / "edge"
    check([WARREN_EDGE, "init", "--data-dir", d, "--zone", ZONE], env)
    _, account, token = read_cert(d / "cert.pem")
    udp, http_port, api = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    p = procs.start([WARREN_EDGE, "run", "--data-dir", d, "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{http_port}", "--api-listen", f"127.0.0.1:{api}"],
                    name="warren-edge", env=env)
    assert p.wait_output("Serving the API on http://", 30) is not None, p.tail()

    def create(name):
        conn = http.client.HTTPConnection("127.0.0.1", api, timeout=30)
        body = json.dumps({"name": name, "tunnel_secret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="})
        conn.request("POST", f"/client/v4/accounts/{account}/cfd_tunnel", body=body,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = conn.getresponse()
        status, text = r.status, r.read().decode()
        conn.close()
        return status, text

    assert create("before")[0] == 200
    subprocess.run([PG_TMP, "pause", pg_server], check=True, timeout=60)
    try:
        status, text = create("during")
        assert status == 503, text
    finally:
        subprocess.run([PG_TMP, "resume", pg_server], check=True, timeout=60)
    assert p.alive()
    # Back up: the edge reconnects, and nothing of the failed write is there.
    assert wait_for(lambda: create("after")[0] == 200, 15)
    assert psql(store, "SELECT string_agg(name, ',' ORDER BY name) FROM tunnels") == "after,before"
