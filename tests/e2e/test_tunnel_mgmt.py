"""`warren tunnel login|create|list|info|delete|cleanup|token|route dns|route
ip|vnet` (client side): cloudflared 2023.7.3's management
commands, their API calls (../shared/cloudflare-api.md §2) and their output.

Three kinds of tests:

* [edge] / [fake] pairs (the `backend` fixture): the command contract, run
  against the real `warren-edge run --api-listen` when that works (else
  skipped with the reason), and against tests/e2e/fake_cfapi.py, a minimal
  stand-in that returns the documented shapes. The same assertions hold for
  both, so a difference between the edge and the fake shows up as a failing
  [edge] case.
* FAKE-ONLY tests (names end in `_fake`): things only a scripted server
  can do: connectors in several colos, exact request logs, injected 5xx and
  non-JSON answers, the login store.
* The cloudflared differential (needs CLOUDFLARED=/path/to/cloudflared
  2023.7.3, root and iproute2): cloudflared and warren run against the same
  fake inside a loopback-only network namespace; stdout, stderr and the
  requests they send must agree, "cloudflared" read as "warren"."""
import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
import yaml

from common import QuietHandler, read_cert, serve_http
from conftest import WARREN, WARREN_EDGE, free_port, run, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_cfapi import FakeAPI  # noqa: E402

ZONE = "example.test"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
LOG_PREFIX = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "


def cert_pem(zone, account, token, extra=""):
    payload = json.dumps({"zoneID": zone, "accountID": account, "apiToken": token}).encode()
    b = base64.b64encode(payload).decode()
    lines = "\n".join(b[i:i + 64] for i in range(0, len(b), 64))
    return f"{extra}-----BEGIN ARGO TUNNEL TOKEN-----\n{lines}\n-----END ARGO TUNNEL TOKEN-----\n"


class Backend:
    """An API to run the commands against."""

    def __init__(self, kind, url, cert, fake=None, data_dir=None):
        self.kind, self.url, self.cert, self.fake, self.data_dir = kind, url, cert, fake, data_dir
        self.origin = url[: -len("/client/v4")]
        self.zone, self.account, self.token = read_cert(cert)

    def ctl(self, path, body=None, method=None):
        """A fake-only control call (see fake_cfapi.py)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.origin + path, data=data, method=method or ("POST" if data else "GET"))
        return json.load(urllib.request.urlopen(req, timeout=10))

    def log(self):
        return self.ctl("/_fake/log")

    def clear_log(self):
        self.ctl("/_fake/log", method="DELETE")


def start_fake(tmp_path, **kw):
    f = FakeAPI(zone_name=ZONE, **kw).start()
    cert = tmp_path / "fake-cert.pem"
    cert.write_text(cert_pem(f.state.zone, f.state.account, f.state.token))
    return Backend("fake", f.url, str(cert), fake=f)


_EDGE_BROKEN = []  # why the edge's API did not work, once per session


def start_edge(tmp_path, procs):
    """The real warren-edge with its API, or None (and why) if that does not
    work yet. The first failure is remembered for the rest of the session."""
    if _EDGE_BROKEN:
        return None, _EDGE_BROKEN[0]
    d = tmp_path / "edge"
    r = run([WARREN_EDGE, "init", "--data-dir", str(d), "--zone", ZONE])
    if r.returncode != 0:
        _EDGE_BROKEN.append(f"warren-edge init failed: {r.stderr.strip()}")
        return None, _EDGE_BROKEN[0]
    port, udp = free_port(), free_port(kind=2)
    p = procs.start([WARREN_EDGE, "run", "--data-dir", str(d),
                     "--tunnel-listen", f"127.0.0.1:{udp}",
                     "--http-listen", f"127.0.0.1:{free_port()}",
                     "--api-listen", f"127.0.0.1:{port}"], name="warren-edge")
    url = f"http://127.0.0.1:{port}/client/v4"
    zone, account, token = read_cert(d / "cert.pem")
    state = {}

    def probe():
        req = urllib.request.Request(f"{url}/accounts/{account}/cfd_tunnel?is_deleted=false",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                state["ok"] = resp.status == 200 and json.load(resp).get("success") is True
        except urllib.error.HTTPError as e:
            state["ok"] = False
            state["answer"] = f"HTTP {e.code}"
        except Exception:
            return False
        return True  # it answered, one way or the other

    wait_for(lambda: probe() or not p.alive(), timeout=10)
    if not state.get("ok"):
        p.stop()
        _EDGE_BROKEN.append("warren-edge run --api-listen does not serve /client/v4 yet (%s)"
                            % state.get("answer", "no answer: " + p.tail(3).replace("\n", " | ")))
        return None, _EDGE_BROKEN[0]
    b = Backend("edge", url, str(d / "cert.pem"), data_dir=d)
    b.udp = udp
    return b, None


@pytest.fixture(params=["edge", "fake"])
def backend(request, tmp_path, procs):
    if request.param == "fake":
        b = start_fake(tmp_path)
        yield b
        b.fake.stop()
        return
    b, why = start_edge(tmp_path, procs)
    if b is None:
        pytest.skip(why)
    yield b


@pytest.fixture
def fake(tmp_path):
    b = start_fake(tmp_path, login_hold=0.3)
    yield b
    b.fake.stop()


class Warren:
    """Runs warren with an isolated HOME whose ~/.cloudflared/cert.pem is the
    backend's, and TUNNEL_API_URL pointing at it."""

    def __init__(self, backend, home):
        self.b, self.home = backend, home
        self.dir = home / ".cloudflared"
        self.dir.mkdir(exist_ok=True)
        shutil.copy(backend.cert, self.dir / "cert.pem")
        self.env = {"HOME": str(home), "TUNNEL_API_URL": backend.url, "PATH": "/usr/bin:/bin",
                    "TUNNEL_ORIGIN_CERT": "", "TUNNEL_CRED_FILE": "", "TUNNEL_CREATE_SECRET": ""}

    def __call__(self, *args, env=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        return run([WARREN, *map(str, args)], env=e, cwd=str(self.home), **kw)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r


@pytest.fixture
def wr(backend, home):
    return Warren(backend, home)


def created_id(r):
    m = re.search(rf"^Created tunnel \S+ with id ({UUID_RE})$", r.stdout, re.M)
    assert m, r.stdout
    return m.group(1)


# --- [edge]/[fake]: the command contract -----------------------------------------------------


def test_create_writes_credentials_and_lists(wr, backend):
    r = wr.ok("tunnel", "create", "t1")
    tid = created_id(r)
    path = wr.dir / f"{tid}.json"
    assert r.stdout == (f"Tunnel credentials written to {path}. warren chose this file based on where your "
                        "origin certificate was found. Keep this file secret. To revoke these credentials, "
                        f"delete the tunnel.\n\nCreated tunnel t1 with id {tid}\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o400
    raw = path.read_text()
    creds = json.loads(raw)
    assert list(creds) == ["AccountTag", "TunnelSecret", "TunnelID"] and " " not in raw
    assert creds["AccountTag"] == backend.account and creds["TunnelID"] == tid
    assert len(base64.b64decode(creds["TunnelSecret"])) == 32

    r = wr("tunnel", "create", "t1")
    assert r.returncode == 1
    assert r.stderr == "failed to create tunnel: Create Tunnel API call failed: tunnel with name already exists\n"

    r = wr.ok("tunnel", "list")
    lines = r.stdout.splitlines()
    assert lines[0] == "You can obtain more detailed information for each tunnel with `warren tunnel info <name/uuid>`"
    assert re.match(r"^ID +NAME +CREATED +CONNECTIONS $", lines[1]), lines[1]
    assert re.match(rf"^{tid} t1 +\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ +$", lines[2]), lines[2]
    assert len(lines) == 3

    j = json.loads(wr.ok("tunnel", "list", "-o", "json").stdout)
    assert [t["id"] for t in j] == [tid]
    assert list(j[0]) == ["id", "name", "created_at", "deleted_at", "connections"]
    assert j[0]["deleted_at"] == "0001-01-01T00:00:00Z" and j[0]["connections"] == []
    y = yaml.safe_load(wr.ok("tunnel", "list", "-o", "yaml").stdout)
    assert y[0]["id"] == tid and y[0]["name"] == "t1" and "createdat" in y[0]

    r = wr.ok("tunnel", "info", "t1")
    assert r.stdout == f"Your tunnel {tid} does not have any active connection.\n"
    j = json.loads(wr.ok("tunnel", "info", "-o", "json", tid).stdout)
    assert list(j) == ["id", "name", "createdAt", "conns"] and j["id"] == tid and j["conns"] in ([], None)


def test_token_matches_credentials(wr):
    tid = created_id(wr.ok("tunnel", "create", "tok"))
    creds = json.loads((wr.dir / f"{tid}.json").read_text())
    token = wr.ok("tunnel", "token", "tok").stdout.strip()
    assert token.startswith("eyJhIjoi")
    assert json.loads(base64.b64decode(token)) == {"a": creds["AccountTag"], "s": creds["TunnelSecret"],
                                                   "t": tid}
    assert wr.ok("tunnel", "token", tid).stdout.strip() == token
    out = wr.home / "from-token.json"
    r = wr.ok("tunnel", "token", "--cred-file", out, "tok")
    assert r.stdout == ""
    assert json.loads(out.read_text()) == creds
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o400
    r = wr("tunnel", "token", "--cred-file", out, "tok")
    assert r.returncode == 1
    assert r.stderr == f"error writing token credentials to JSON file in path {out}: {out} already exists\n"
    r = wr("tunnel", "token", "nosuch")
    assert r.returncode == 1
    assert r.stderr == "error parsing tunnel ID: nosuch is neither the ID nor the name of any of your tunnels\n"


def test_create_secret_and_credentials_file(wr, backend):
    secret = base64.b64encode(bytes(range(40))).decode()
    out = wr.home / "c.json"
    r = wr.ok("tunnel", "create", "--secret", secret, "--credentials-file", out, "s1")
    tid = created_id(r)
    assert r.stdout.startswith(f"Tunnel credentials written to {out}. Keep this file secret.")
    assert json.loads(out.read_text())["TunnelSecret"] == secret
    assert json.loads(base64.b64decode(wr.ok("tunnel", "token", tid).stdout))["s"] == secret

    # The file exists: the new tunnel is deleted again, as cloudflared does.
    r = wr("tunnel", "create", "--cred-file", out, "s2")
    assert r.returncode == 1
    assert re.match(rf"failed to create tunnel: Your tunnel 's2' was created with ID ({UUID_RE})\. However, "
                    rf"warren couldn't write tunnel credentials to {re.escape(str(out))}\.\n"
                    rf"The file-writing error is: {re.escape(str(out))} already exists\n"
                    r"The tunnel was deleted, because the tunnel can't be run without the credentials file\n$",
                    r.stderr), r.stderr
    assert "s2" not in wr.ok("tunnel", "list").stdout

    for args, msg in [
        (["--secret", "c2hvcnQ=", "x"], "failed to create tunnel: Decoded tunnel secret must be at least 32 bytes long\n"),
        (["--secret", "abc", "x"], "failed to create tunnel: Couldn't decode tunnel secret from base64: illegal "
                                   "base64 data at input byte 0\n"),
        ([str(uuid.uuid4())], "failed to create tunnel: Create Tunnel API call failed: you cannot use UUIDs as "
                              "tunnel names\n"),
        (["-o", "xml", "x"], "failed to create tunnel: Unknown output format 'xml'\n"),
    ]:
        r = wr("tunnel", "create", *args)
        assert (r.returncode, r.stderr) == (1, msg), args
    r = wr("tunnel", "create")
    assert r.returncode == 2
    assert r.stderr == ('"warren tunnel create" requires exactly 1 argument, the name of tunnel to create.\n'
                        "See 'warren tunnel create --help'.\n")
    # TUNNEL_CREATE_SECRET is the environment form of --secret.
    tid = created_id(wr.ok("tunnel", "create", "s3", env={"TUNNEL_CREATE_SECRET": secret}))
    assert json.loads((wr.dir / f"{tid}.json").read_text())["TunnelSecret"] == secret


def test_create_json_and_yaml(wr):
    j = json.loads(wr.ok("tunnel", "create", "-o", "json", "j1").stdout)
    assert list(j)[:5] == ["id", "name", "created_at", "deleted_at", "connections"] and list(j)[-1] == "token"
    assert (wr.dir / f"{j['id']}.json").exists()
    y = yaml.safe_load(wr.ok("tunnel", "create", "-o", "yaml", "j2").stdout)
    assert set(y) == {"tunnel", "token"} and y["tunnel"]["name"] == "j2"


def test_delete_removes_tunnel_and_credentials(wr):
    t1 = created_id(wr.ok("tunnel", "create", "d1"))
    t2 = created_id(wr.ok("tunnel", "create", "d2"))
    r = wr.ok("tunnel", "delete", "d1", t2)
    assert r.stdout == "" and r.stderr == ""
    assert not (wr.dir / f"{t1}.json").exists() and not (wr.dir / f"{t2}.json").exists()
    r = wr.ok("tunnel", "list")
    assert r.stdout == ("No tunnels were found for the given filter flags. You can use 'warren tunnel create' "
                        "to create a tunnel.\n")
    listed = {t["id"]: t for t in json.loads(wr.ok("tunnel", "list", "--show-deleted", "-o", "json").stdout)}
    assert set(listed) >= {t1, t2}
    assert listed[t1]["deleted_at"] != "0001-01-01T00:00:00Z"
    r = wr("tunnel", "delete", "d1")
    assert (r.returncode, r.stderr) == (1, "there should only be 1 non-deleted Tunnel named d1\n")
    r = wr("tunnel", "delete", t1)
    assert r.returncode == 1 and r.stderr == f"Tunnel {t1} has already been deleted\n"
    r = wr("tunnel", "delete")
    assert r.returncode == 2 and "requires at least 1 argument" in r.stderr
    # -f: connections are cleaned up first; the tunnel goes.
    t3 = created_id(wr.ok("tunnel", "create", "d3"))
    wr.ok("tunnel", "delete", "-f", "d3")
    assert t3 not in wr.ok("tunnel", "list").stdout


def test_list_filters(wr):
    ids = {n: created_id(wr.ok("tunnel", "create", n)) for n in ("app-a", "app-b", "db")}

    def names(*args):
        return [t["name"] for t in json.loads(wr.ok("tunnel", "list", "-o", "json", *args).stdout)]

    assert names() == ["app-a", "app-b", "db"]  # sorted by name
    assert names("--invert-sort") == ["db", "app-b", "app-a"]
    assert names("--name", "db") == ["db"]
    assert names("-n", "db") == ["db"]
    assert names("--name-prefix", "app-") == ["app-a", "app-b"]
    assert names("-np", "app-") == ["app-a", "app-b"]
    assert names("--exclude-name-prefix", "app-") == ["db"]
    assert names("--id", ids["app-b"]) == ["app-b"]
    assert names("--sort-by", "id") == [n for n, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    r = wr("tunnel", "list", "--id", "nope")
    assert (r.returncode, r.stderr) == (1, "nope is not a valid tunnel ID: invalid UUID length: 4\n")
    r = wr.ok("tunnel", "list", "--sort-by", "bogus")
    assert re.search(LOG_PREFIX + r"ERR bogus is not a valid sort field\. Valid sort fields are name, id, "
                     r"createdAt, deletedAt, numConnections\. Defaulting to 'name'\.$", r.stderr, re.M), r.stderr
    r = wr.ok("tunnel", "list", "--name", "none")
    assert r.stdout.startswith("No tunnels were found")
    assert json.loads(wr.ok("tunnel", "list", "--name", "none", "-o", "json").stdout) in ([], None)


def test_route_dns(wr):
    t1 = created_id(wr.ok("tunnel", "create", "web"))
    t2 = created_id(wr.ok("tunnel", "create", "web2"))
    r = wr.ok("tunnel", "route", "dns", "web", f"app.{ZONE}")
    assert re.fullmatch(LOG_PREFIX + rf"INF Added CNAME app\.{ZONE} which will route to this tunnel "
                        rf"tunnelID={t1}\n", r.stderr), r.stderr
    assert r.stdout == ""
    r = wr.ok("tunnel", "route", "dns", t1, f"app.{ZONE}")
    assert re.search(rf"INF app\.{ZONE} is already configured to route to your tunnel tunnelID={t1}$", r.stderr,
                     re.M), r.stderr
    r = wr("tunnel", "route", "dns", "web2", f"app.{ZONE}")
    assert r.returncode == 1 and r.stderr.startswith("Failed to add route: code: "), r.stderr
    r = wr.ok("tunnel", "route", "dns", "--overwrite-dns", "web2", f"app.{ZONE}")
    assert re.search(rf"INF app\.{ZONE} updated to route to your tunnel tunnelID={t2}$", r.stderr, re.M), r.stderr
    r = wr.ok("tunnel", "route", "dns", "-f", "web", f"app.{ZONE}")
    assert "updated to route to your tunnel" in r.stderr
    # The apex is refused by the API with a message of its own.
    r = wr("tunnel", "route", "dns", "web", ZONE)
    assert r.returncode == 1 and r.stderr.startswith("Failed to add route: code: "), r.stderr
    # Checked before any API call.
    r = wr("tunnel", "route", "dns", "web", "bad host")
    assert (r.returncode, r.stderr) == (1, "bad host is not a valid hostname\n")
    r = wr("tunnel", "route", "dns", "web")
    assert r.returncode == 2
    assert r.stderr == ('This command expects the format "warren tunnel route dns <tunnel name/id> <hostname>"\n'
                        "See 'warren tunnel route dns --help'.\n")
    r = wr("tunnel", "route", "dns", "nosuch", f"x.{ZONE}")
    assert (r.returncode, r.stderr) == (1, "nosuch is neither the ID nor the name of any of your tunnels\n")


def test_route_ip(wr):
    tid = created_id(wr.ok("tunnel", "create", "net"))
    r = wr.ok("tunnel", "route", "ip", "add", "10.1.2.3/8", "net", "office LAN")
    assert r.stdout == f"Successfully added route for 10.0.0.0/8 over tunnel {tid}\n"
    r = wr.ok("tunnel", "route", "ip", "add", "fd00::1/64", tid)
    assert r.stdout == f"Successfully added route for fd00::/64 over tunnel {tid}\n"
    r = wr("tunnel", "route", "ip", "add", "10.0.0.0/8", "net")
    assert r.returncode == 1 and r.stderr.startswith("API error: Failed to add route: code: "), r.stderr

    r = wr.ok("tunnel", "route", "ip", "show")
    lines = r.stdout.splitlines()
    assert re.match(r"^NETWORK +VIRTUAL NET ID +COMMENT +TUNNEL ID +TUNNEL NAME +CREATED +DELETED $", lines[0])
    row = next(l for l in lines if l.startswith("10.0.0.0/8 "))
    assert re.match(rf"^10\.0\.0\.0/8 +\S+ +office LAN +{tid} net +\S+Z -  *$", row), row
    j = json.loads(wr.ok("tunnel", "route", "ip", "show", "-o", "json").stdout)
    nets = {x["network"]: x for x in j}
    assert set(nets) == {"10.0.0.0/8", "fd00::/64"}
    assert nets["10.0.0.0/8"]["comment"] == "office LAN" and nets["10.0.0.0/8"]["tunnel_name"] == "net"
    assert wr.ok("tunnel", "route", "ip", "list").stdout == r.stdout  # alias

    r = wr.ok("tunnel", "route", "ip", "get", "10.9.9.9")
    assert "10.0.0.0/8" in r.stdout and tid in r.stdout
    r = wr.ok("tunnel", "route", "ip", "get", "172.16.0.1")
    assert r.stdout == "No route matches the IP 172.16.0.1\n"

    r = wr.ok("tunnel", "route", "ip", "delete", "10.0.0.0/8")
    assert r.stdout == "Successfully deleted route for 10.0.0.0/8\n"
    r = wr("tunnel", "route", "ip", "delete", "10.0.0.0/8")
    assert r.returncode == 1 and r.stderr.startswith("API error: Failed to delete route: "), r.stderr
    wr.ok("tunnel", "route", "ip", "delete", "fd00::/64")
    r = wr.ok("tunnel", "route", "ip", "show")
    assert r.stdout == ("No routes were found for the given filter flags. You can use 'warren tunnel route ip "
                        "add' to add a route.\n")

    for args, msg in [
        (["add", "10.0.0.0/8"], "You must supply at least 2 arguments, first the network you wish to route (in "
                                "CIDR form e.g. 1.2.3.4/32) and then the tunnel ID to proxy with\n"),
        (["add", "10.0.0/8", "net"], "Invalid network CIDR: invalid CIDR address: 10.0.0/8\n"),
        (["add", "10.0.0.0/8", "nosuch"], "Invalid tunnel: nosuch is neither the ID nor the name of any of your "
                                          "tunnels\n"),
        (["get", "10.0.0.300"], "Invalid IP 10.0.0.300\n"),
        (["delete"], "You must supply exactly one argument, the network whose route you want to delete (in CIDR "
                     "form e.g. 1.2.3.4/32)\n"),
    ]:
        r = wr("tunnel", "route", "ip", *args)
        assert (r.returncode, r.stderr) == (1, msg), args


def test_vnet_and_routes_in_it(wr):
    tid = created_id(wr.ok("tunnel", "create", "vt"))
    r = wr.ok("tunnel", "vnet", "add", "lab", "the lab")
    m = re.fullmatch(rf"Successfully added virtual 'network' lab with ID: ({UUID_RE})\n"
                     r"You can now add IP routes attached to this virtual network\. See `warren tunnel route ip "
                     r"add -help`\n", r.stdout)
    assert m, r.stdout
    vid = m.group(1)
    j = json.loads(wr.ok("tunnel", "vnet", "list", "-o", "json").stdout)
    assert any(v["id"] == vid and v["name"] == "lab" and v["comment"] == "the lab" for v in j)
    assert list(j[0]) == ["id", "comment", "name", "is_default_network", "created_at", "deleted_at"]
    r = wr.ok("tunnel", "vnet", "list", "--name", "lab")
    assert re.match(r"^ID +NAME +IS DEFAULT +COMMENT +CREATED +DELETED $", r.stdout.splitlines()[0])
    assert re.search(rf"^{vid} lab +false +the lab +\S+Z -  *$", r.stdout, re.M), r.stdout

    wr.ok("tunnel", "route", "ip", "add", "--vnet", "lab", "10.0.0.0/8", "vt")
    j = json.loads(wr.ok("tunnel", "route", "ip", "show", "--filter-vnet-id", vid, "-o", "json").stdout)
    assert [(x["network"], x.get("virtual_network_id")) for x in j] == [("10.0.0.0/8", vid)]
    r = wr.ok("tunnel", "route", "ip", "get", "--vnet", vid, "10.1.1.1")
    assert vid in r.stdout and tid in r.stdout
    wr.ok("tunnel", "route", "ip", "delete", "--vn", "lab", "10.0.0.0/8")

    r = wr.ok("tunnel", "vnet", "update", "--name", "lab2", "--comment", "renamed", "lab")
    assert r.stdout == "Successfully updated virtual network 'lab'\n"
    r = wr.ok("tunnel", "vnet", "delete", "lab2")
    assert r.stdout == "Successfully deleted virtual network 'lab2'\n"
    r = wr("tunnel", "vnet", "delete", "lab2")
    assert (r.returncode, r.stderr) == (1, "there should only be 1 non-deleted virtual network named lab2\n")
    r = wr("tunnel", "route", "ip", "add", "--vnet", "nope", "10.0.0.0/8", "vt")
    assert (r.returncode, r.stderr) == (1, "there should only be 1 non-deleted virtual network named nope\n")


def test_cleanup(wr):
    tid = created_id(wr.ok("tunnel", "create", "cl"))
    r = wr.ok("tunnel", "cleanup", "cl")
    assert re.fullmatch(LOG_PREFIX + f"INF Cleanup connection for tunnel {tid}\n", r.stderr), r.stderr
    cid = str(uuid.uuid4())
    r = wr.ok("tunnel", "cleanup", "--connector-id", cid, tid)
    assert f"INF Cleanup connection for tunnel {tid} for connector-id {cid}" in r.stderr
    r = wr("tunnel", "cleanup", "-c", "x", "cl")
    assert (r.returncode, r.stderr) == (1, "x is not a valid client ID (must be a UUID): invalid UUID length: 1\n")
    r = wr("tunnel", "cleanup")
    assert r.returncode == 2


def test_api_url_sources(backend, home, tmp_path):
    """--api-url before the subcommand, TUNNEL_API_URL, `api-url:` in config.yml;
    a trailing slash is dropped."""
    w = Warren(backend, home)
    del w.env["TUNNEL_API_URL"]
    r = w.ok("tunnel", "--api-url", backend.url + "/", "create", "src1")
    created_id(r)
    assert "src1" in w.ok("tunnel", "list", env={"TUNNEL_API_URL": backend.url}).stdout
    cfg = tmp_path / "config.yml"
    cfg.write_text(f"api-url: {backend.url}\n")
    assert "src1" in w.ok("tunnel", "--config", cfg, "list").stdout
    # The command line wins over the environment and the config file.
    dead = f"http://127.0.0.1:{free_port()}/client/v4"
    r = w("tunnel", "--config", cfg, "--api-url", dead, "list", env={"TUNNEL_API_URL": backend.url})
    assert r.returncode == 1 and r.stderr.startswith(f'REST request failed: Get "{dead}/accounts/'), r.stderr


def test_origincert_sources_and_errors(backend, home, tmp_path):
    if any(os.path.exists(os.path.join(d, "cert.pem")) for d in ("/etc/cloudflared", "/usr/local/etc/cloudflared")):
        pytest.skip("this host has a system-wide cert.pem")
    w = Warren(backend, home)
    (w.dir / "cert.pem").unlink()
    r = w("tunnel", "list")
    assert r.returncode == 1
    assert re.search(LOG_PREFIX + r"ERR Cannot determine default origin certificate path\. No file cert\.pem in "
                     r"\[~/\.cloudflared ~/\.cloudflare-warp ~/cloudflare-warp /etc/cloudflared "
                     r"/usr/local/etc/cloudflared\]", r.stderr, re.M), r.stderr
    assert r.stderr.endswith("\nError locating origin cert: client didn't specify origincert path\n")
    assert w.ok("tunnel", "--origincert", backend.cert, "list").returncode == 0
    assert w.ok("tunnel", "list", env={"TUNNEL_ORIGIN_CERT": backend.cert}).returncode == 0
    cfg = tmp_path / "config.yml"
    cfg.write_text(f"origincert: {backend.cert}\n")
    assert w.ok("tunnel", "--config", cfg, "list").returncode == 0
    # The credentials file goes next to the cert.pem that was used.
    tid = created_id(w.ok("tunnel", "--origincert", backend.cert, "create", "oc"))
    assert os.path.exists(os.path.join(os.path.dirname(backend.cert), f"{tid}.json"))

    r = w("tunnel", "--origincert", tmp_path / "none.pem", "list")
    assert r.returncode == 1
    assert r.stderr.endswith(f"Error locating origin cert: cannot find a valid certificate at the path "
                             f"{tmp_path / 'none.pem'}\n")
    bad = tmp_path / "bad.pem"
    for text, msg in [("junk\n", "Error decoding origin cert: Missing token in the certificate\n"),
                      ("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n",
                       "Error decoding origin cert: Unknown block FOO in the certificate\n")]:
        bad.write_text(text)
        r = w("tunnel", "--origincert", bad, "list")
        assert (r.returncode, r.stderr) == (1, msg)
    bad.write_text(cert_pem(backend.zone, "", backend.token))
    r = w("tunnel", "--origincert", bad, "list")
    assert r.returncode == 1 and "Origin certificate needs to be refreshed" in r.stderr
    # A cert.pem with an unknown token is refused by the API, in its envelope.
    bad.write_text(cert_pem(backend.zone, backend.account, "not-the-token"))
    r = w("tunnel", "--origincert", bad, "list")
    assert r.returncode == 1 and r.stderr.startswith("Failed to list tunnels: code: "), r.stderr
    # A cert.pem of another account cannot see this one.
    bad.write_text(cert_pem(backend.zone, uuid.uuid4().hex, backend.token))
    r = w("tunnel", "--origincert", bad, "list")
    assert r.returncode == 1 and r.stderr.startswith("Failed to list tunnels: code: "), r.stderr


def test_transport_errors(home, tmp_path):
    """No API needed: a refused port."""
    acct = uuid.uuid4().hex
    cert = tmp_path / "cert.pem"
    cert.write_text(cert_pem(uuid.uuid4().hex, acct, "t"))
    port = free_port()
    env = {"HOME": str(home), "TUNNEL_ORIGIN_CERT": str(cert), "TUNNEL_API_URL": f"http://127.0.0.1:{port}/client/v4"}
    r = run([WARREN, "tunnel", "list"], env=env)
    assert r.returncode == 1
    assert r.stderr == (f'REST request failed: Get "http://127.0.0.1:{port}/client/v4/accounts/{acct}/cfd_tunnel?'
                        f'is_deleted=false": dial tcp 127.0.0.1:{port}: connect: connection refused\n')
    r = run([WARREN, "tunnel", "create", "x"], env=env)
    assert r.stderr.startswith(f'failed to create tunnel: Create Tunnel API call failed: REST request failed: '
                               f'Post "http://127.0.0.1:{port}/client/v4/accounts/{acct}/cfd_tunnel": dial tcp')


# --- FAKE-ONLY: output with connectors, exact requests, errors ------------------------------------


CONNECTORS = [
    {"id": "11111111-2222-4333-8444-555555555555", "features": ["serialized_headers", "allow_remote_config"],
     "version": "2023.7.3", "arch": "linux_amd64", "run_at": "2024-03-01T10:00:00.5Z",
     "conns": [{"colo_name": "dfw01", "id": "aaaaaaaa-2222-4333-8444-555555555555", "is_pending_reconnect": False,
                "origin_ip": "203.0.113.7", "opened_at": "2024-03-01T10:00:01Z"},
               {"colo_name": "lax01", "id": "bbbbbbbb-2222-4333-8444-555555555555", "is_pending_reconnect": False,
                "origin_ip": "203.0.113.7", "opened_at": "2024-03-01T10:00:01.120Z"},
               {"colo_name": "dfw01", "id": "cccccccc-2222-4333-8444-555555555555", "is_pending_reconnect": True,
                "origin_ip": "203.0.113.7", "opened_at": "2024-03-01T10:00:02+02:00"}]},
    {"id": "22222222-2222-4333-8444-555555555555", "features": None, "version": "1.0", "arch": "yes",
     "run_at": "2024-02-01T10:00:00Z",
     "conns": [{"colo_name": "LOCAL", "id": "dddddddd-2222-4333-8444-555555555555", "is_pending_reconnect": True,
                "origin_ip": "::ffff:1.2.3.4", "opened_at": "2024-03-01T10:00:01Z"}]},
]
TID = "02e5e788-bca7-4ff6-9978-fa2c7fea13f8"


@pytest.fixture
def seeded(fake, home):
    """The fake with one tunnel (fixed id and time) and two connectors."""
    fake.ctl("/_fake/tunnels", {"id": TID, "name": "mytun", "created_at": "2026-11-22T03:42:53.843027Z"})
    for c in CONNECTORS:
        fake.ctl(f"/_fake/tunnels/{TID}/connectors", c)
    return Warren(fake, home)


def test_list_and_info_with_connectors_fake(seeded):
    # Expected text captured from cloudflared 2023.7.3 against the same data.
    w = seeded
    assert w.ok("tunnel", "list").stdout == (
        "You can obtain more detailed information for each tunnel with `warren tunnel info <name/uuid>`\n"
        "ID                                   NAME  CREATED              CONNECTIONS      \n"
        f"{TID} mytun 2026-11-22T03:42:53Z 1xdfw01, 1xlax01 \n")
    assert w.ok("tunnel", "list", "--rd").stdout.splitlines()[2] == \
        f"{TID} mytun 2026-11-22T03:42:53Z 1xLOCAL, 2xdfw01, 1xlax01 "
    assert w.ok("tunnel", "info", "mytun").stdout == (
        "NAME:     mytun\n"
        f"ID:       {TID}\n"
        "CREATED:  2026-11-22 03:42:53.843027 +0000 UTC\n\n"
        "CONNECTOR ID                         CREATED              ARCHITECTURE VERSION  ORIGIN IP   EDGE             \n"
        "11111111-2222-4333-8444-555555555555 2024-03-01T10:00:00Z linux_amd64  2023.7.3 203.0.113.7 1xdfw01, 1xlax01 \n")
    assert w.ok("tunnel", "info", "--rd", TID).stdout.splitlines()[5:] == [
        "22222222-2222-4333-8444-555555555555 2024-02-01T10:00:00Z yes          1.0      1.2.3.4     1xLOCAL          ",
        "11111111-2222-4333-8444-555555555555 2024-03-01T10:00:00Z linux_amd64  2023.7.3 203.0.113.7 2xdfw01, 1xlax01 "]
    assert w.ok("tunnel", "info", "--sort-by", "version", "--invert-sort", "--rd", TID).stdout.splitlines()[5][:8] \
        == "11111111"


def test_info_json_and_yaml_fake(seeded):
    out = seeded.ok("tunnel", "info", "-o", "json", "mytun").stdout
    assert out.startswith('{\n  "id": "02e5e788-bca7-4ff6-9978-fa2c7fea13f8",\n  "name": "mytun",\n'
                          '  "createdAt": "2026-11-22T03:42:53.843027Z",\n  "conns": [\n    {\n'
                          '      "id": "22222222-2222-4333-8444-555555555555",\n      "features": null,\n'
                          '      "version": "1.0",\n')
    assert '          "origin_ip": "1.2.3.4",\n' in out
    assert '"opened_at": "2024-03-01T10:00:01.12Z"' in out and '"opened_at": "2024-03-01T10:00:02+02:00"' in out
    assert out.endswith("    }\n  ]\n}\n")
    out = seeded.ok("tunnel", "info", "-o", "yaml", "mytun").stdout
    assert out.startswith("id: 02e5e788-bca7-4ff6-9978-fa2c7fea13f8\nname: mytun\n"
                          "createdat: 2026-11-22T03:42:53.843027Z\nconnectors:\n"
                          "    - id: 22222222-2222-4333-8444-555555555555\n      features: []\n"
                          '      version: "1.0"\n      arch: "yes"\n      runat: 2024-02-01T10:00:00Z\n'
                          "      connections:\n        - coloname: LOCAL\n")
    assert "      features:\n        - serialized_headers\n        - allow_remote_config\n" in out
    assert "          originip: 1.2.3.4\n" in out
    y = yaml.safe_load(out)
    assert [c["id"] for c in y["connectors"]] == [c["id"] for c in reversed(CONNECTORS)]


def test_yaml_quoting_fake(fake, home):
    """Names that would read back as something else are quoted as yaml.v3 does."""
    w = Warren(fake, home)
    names = ["yes", "1.0", "2024-01-01", "null", "0x1F", "- x", "a: b", "#c", " lead", "x'y", "plain-name", "12:30"]
    for n in names:
        fake.ctl("/_fake/tunnels", {"name": n, "created_at": "2026-01-01T00:00:00Z"})
    out = w.ok("tunnel", "list", "-o", "yaml").stdout
    y = yaml.safe_load(out)
    assert sorted(t["name"] for t in y) == sorted(names)
    for want in ['name: "yes"', 'name: "1.0"', 'name: "2024-01-01"', 'name: "null"', 'name: "0x1F"',
                 "name: '- x'", "name: 'a: b'", "name: '#c'", "name: ' lead'", "name: x'y", "name: plain-name",
                 'name: "12:30"']:
        assert f"  {want}\n" in out, want


def test_requests_are_cloudflareds_fake(fake, home):
    """Paths, queries, bodies and headers as cloudflared 2023.7.3 sends them
    (cloudflare-api.md §2.9)."""
    w = Warren(fake, home)
    a = f"/client/v4/accounts/{fake.account}"
    z = f"/client/v4/zones/{fake.zone}"
    fake.clear_log()
    tid = created_id(w.ok("tunnel", "create", "mytun"))
    w.ok("tunnel", "list")
    w.ok("tunnel", "route", "dns", "mytun", "h")
    w.ok("tunnel", "route", "ip", "add", "10.0.0.0/8", "mytun", "c")
    w.ok("tunnel", "route", "ip", "show")
    w.ok("tunnel", "route", "ip", "get", "10.1.2.3")
    w.ok("tunnel", "token", "mytun")
    w.ok("tunnel", "info", "mytun")
    w.ok("tunnel", "cleanup", "mytun")
    w.ok("tunnel", "route", "ip", "delete", "10.0.0.0/8")
    w.ok("tunnel", "delete", "-f", "mytun")
    log = fake.log()
    got = [(e["method"], e["path"] + ("?" + e["query"] if e["query"] else "")) for e in log]
    assert got == [
        ("POST", f"{a}/cfd_tunnel"),
        ("GET", f"{a}/cfd_tunnel?is_deleted=false"),
        ("GET", f"{a}/cfd_tunnel?is_deleted=false&name=mytun"),
        ("PUT", f"{z}/tunnels/{tid}/routes"),
        ("GET", f"{a}/cfd_tunnel?is_deleted=false&name=mytun"),
        ("POST", f"{a}/teamnet/routes/network/10.0.0.0%252F8"),
        ("GET", f"{a}/teamnet/routes?is_deleted=false"),
        ("GET", f"{a}/teamnet/routes/ip/10.1.2.3"),
        ("GET", f"{a}/cfd_tunnel?is_deleted=false&name=mytun"),
        ("GET", f"{a}/cfd_tunnel/{tid}/token"),
        ("GET", f"{a}/cfd_tunnel?is_deleted=false&name=mytun"),
        ("GET", f"{a}/cfd_tunnel/{tid}/connections"),
        ("GET", f"{a}/cfd_tunnel?uuid={tid}"),
        ("GET", f"{a}/cfd_tunnel?is_deleted=false&name=mytun"),
        ("DELETE", f"{a}/cfd_tunnel/{tid}/connections"),
        ("DELETE", f"{a}/teamnet/routes/network/10.0.0.0%252F8"),
        ("GET", f"{a}/cfd_tunnel?is_deleted=false&name=mytun"),
        ("GET", f"{a}/cfd_tunnel/{tid}"),
        ("DELETE", f"{a}/cfd_tunnel/{tid}/connections"),
        ("DELETE", f"{a}/cfd_tunnel/{tid}?cascade=true"),
    ]
    bodies = {(e["method"], e["path"]): e["body"] for e in log if e["body"]}
    create = json.loads(bodies[("POST", f"{a}/cfd_tunnel")])
    assert list(create) == ["name", "tunnel_secret"] and len(base64.b64decode(create["tunnel_secret"])) == 32
    assert bodies[("PUT", f"{z}/tunnels/{tid}/routes")] == \
        '{"type":"dns","user_hostname":"h","overwrite_existing":false}'
    assert bodies[("POST", f"{a}/teamnet/routes/network/10.0.0.0%252F8")] == f'{{"tunnel_id":"{tid}","comment":"c"}}'
    for e in log:
        h = e["headers"]
        assert h["authorization"] == f"Bearer {fake.token}"
        assert h["accept"] == "application/json;version=1"
        assert h["user-agent"].startswith("warren/")
        assert ("content-type" in h) == bool(e["body"]), e
        if e["body"]:
            assert h["content-type"] == "application/json"


def test_api_error_forms_fake(fake, home):
    """cloudflared's statusCodeToError: the JSON envelope's errors when the type
    is exactly application/json, else a text per status."""
    w = Warren(fake, home)
    fake.ctl("/_fake/fail", {"status": 503})
    r = w("tunnel", "list")
    assert (r.returncode, r.stderr) == (1, "Failed to list tunnels: code: 10001, reason: injected failure\n")
    for status, ctype, msg in [(502, "text/html", "API call to list tunnels failed with status 502: Bad Gateway"),
                               (404, "text/plain", "not found"), (403, "text/html", "unauthorized"),
                               (400, "application/json; charset=utf-8", "incorrect request parameters")]:
        fake.ctl("/_fake/fail", {"status": status, "content_type": ctype})
        r = w("tunnel", "list")
        assert (r.returncode, r.stderr) == (1, msg + "\n"), status
    fake.ctl("/_fake/fail", {"status": 500})
    r = w("tunnel", "create", "x")
    assert r.stderr == ("failed to create tunnel: Create Tunnel API call failed: Failed to create tunnel: "
                        "code: 10001, reason: injected failure\n")


def test_envelope_decoding_fake(home, tmp_path):
    """A 200 whose envelope cloudflared would refuse is refused here too."""
    import http.server

    bodies = []

    class H(QuietHandler):
        def do_GET(self):
            self.reply(bodies.pop(0).encode(), content_type="application/json")

    cert = tmp_path / "cert.pem"
    cert.write_text(cert_pem("z", "a", "t"))
    with serve_http(H, server=http.server.HTTPServer) as srv:
        env = {"HOME": str(home), "TUNNEL_ORIGIN_CERT": str(cert),
               "TUNNEL_API_URL": f"http://127.0.0.1:{srv.server_address[1]}/client/v4"}
        for body, msg in [
            ('{"success":true,"errors":[],"messages":[{"code":1,"message":"m"}],"result":[]}',
             "failed to decode response: json: cannot unmarshal object into Go struct field response.messages "
             "of type string"),
            ('{"success":true,"errors":[],"messages":[]}',
             "the Cloudflare API response was an unexpected type: unexpected end of JSON input"),
            ('{"success":false,"errors":[],"messages":[],"result":null}', "API call failed"),
            ('{"success":true,"errors":[{"code":7,"message":"a"},{"code":"8","message":"b"}],"messages":[],'
             '"result":[]}', "API errors: code: 7, reason: a; code: 8, reason: b; "),
            ('{"success":true,"errors":[],"messages":[],"result":[{"id":"x"}]}',
             "the Cloudflare API response was an unexpected type: invalid UUID length: 1"),
            ('{"success":true,"errors":[],"messages":[],"result":[{"name":5}]}',
             "the Cloudflare API response was an unexpected type: json: cannot unmarshal number into Go struct "
             "field Tunnel.name of type string"),
            ("", "failed to decode response: EOF"),
        ]:
            bodies.append(body)
            r = run([WARREN, "tunnel", "list"], env=env)
            assert (r.returncode, r.stderr) == (1, msg + "\n"), body
        # null results and unknown fields are fine.
        bodies.append('{"success":true,"errors":[],"messages":[],"result":null,"result_info":{}}')
        r = run([WARREN, "tunnel", "list", "-o", "json"], env=env)
        assert (r.returncode, r.stdout) == (0, "null\n")
        bodies.append('{"Success":true,"result":[{"ID":"' + TID + '","name":"n","extra":{"a":1},'
                      '"created_at":"2024-01-02T03:04:05.100+01:00","deleted_at":null,"connections":null}]}')
        r = run([WARREN, "tunnel", "list", "-o", "json"], env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == [{"id": TID, "name": "n", "created_at": "2024-01-02T03:04:05.1+01:00",
                                         "deleted_at": "0001-01-01T00:00:00Z", "connections": None}]


def test_credentials_file_from_config_is_not_created_over_fake(fake, home, tmp_path):
    """config.yml's credentials-file (for `run`) names the tunnel for route
    commands but is no output path for create, as in cloudflared."""
    w = Warren(fake, home)
    tid = created_id(w.ok("tunnel", "create", "cfg"))
    creds = w.dir / f"{tid}.json"
    cfg = tmp_path / "config.yml"
    cfg.write_text(f"tunnel: {tid}\ncredentials-file: {creds}\n")
    tid2 = created_id(w.ok("tunnel", "--config", cfg, "create", "other"))
    assert (w.dir / f"{tid2}.json").exists()
    # route dns by a name that is not a tunnel: the credentials file decides.
    r = w.ok("tunnel", "--config", cfg, "route", "dns", "whatever", f"x.{ZONE}")
    assert f"tunnelID={tid}" in r.stderr


# --- FAKE-ONLY: login -----------------------------------------------------------------------------


def fake_browser(tmp_path, fake, cert_text, delay=0.5):
    """An xdg-open that records the URL and, like the edge's login page after
    a user signed in, deposits cert.pem for the key in the callback."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    (tmp_path / "cert-to-give.pem").write_text(cert_text)
    script = d / "xdg-open"
    script.write_text(f"""#!{sys.executable}
import sys, time, urllib.parse, urllib.request
url = sys.argv[1]
open({str(tmp_path / 'opened-url')!r}, "w").write(url)
q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)
key = q["callback"][0].rsplit("/", 1)[1]
time.sleep({delay})
data = open({str(tmp_path / 'cert-to-give.pem')!r}, "rb").read()
urllib.request.urlopen(urllib.request.Request({fake.origin!r} + "/_fake/login/" + key, data=data, method="POST"))
""")
    script.chmod(0o755)
    return d


def login_env(fake, home, path="/usr/bin:/bin"):
    return {"HOME": str(home), "TUNNEL_API_URL": fake.url, "PATH": path}


def test_login_with_browser_fake(fake, home, tmp_path):
    pem = cert_pem(fake.zone, fake.account, fake.token,
                   extra="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    bindir = fake_browser(tmp_path, fake, pem)
    r = run([WARREN, "tunnel", "login"], env=login_env(fake, home, f"{bindir}:/usr/bin:/bin"), timeout=60)
    assert r.returncode == 0, r.stderr
    path = home / ".cloudflared" / "cert.pem"
    assert r.stdout == ("You have successfully logged in.\nIf you wish to copy your credentials to a server, "
                        f"they have been saved to:\n{path}\n")
    assert path.read_text() == pem  # written as received
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / ".cloudflared").st_mode) == 0o700
    url = (tmp_path / "opened-url").read_text()
    m = re.fullmatch(re.escape(fake.origin) + r"/argotunnel\?aud=&callback=" +
                     re.escape(urllib.parse.quote(fake.origin + "/argotunnel/transfer/", safe="")) +
                     r"([A-Za-z0-9_-]{43})%3D", url)
    assert m, url
    key = m.group(1) + "="
    assert r.stderr.startswith(f"A browser window should have opened at the following URL:\n\n{url}\n\n"
                               "If the browser failed to open, please visit the URL above directly in your browser.\n")
    polls = [e for e in fake.log() if e["path"] == f"/argotunnel/transfer/{key}"]
    assert polls and all(e["method"] == "GET" and e["headers"]["user-agent"].startswith("warren/") for e in polls)
    # The new cert.pem works.
    assert run([WARREN, "tunnel", "list"], env=login_env(fake, home)).returncode == 0

    # A second login does not overwrite it.
    r = run([WARREN, "tunnel", "login"], env=login_env(fake, home, f"{bindir}:/usr/bin:/bin"))
    assert r.returncode == 0
    assert r.stdout == (f"You have an existing certificate at {path} which login would overwrite.\n"
                        "If this is intentional, please move or delete that file then run this command again.\n")
    assert path.read_text() == pem


def test_login_replaces_an_empty_cert_fake(fake, home, tmp_path):
    """An empty cert.pem is no certificate: login goes ahead and writes it."""
    (home / ".cloudflared").mkdir()
    (home / ".cloudflared" / "cert.pem").write_text("")
    pem = cert_pem(fake.zone, fake.account, fake.token)
    bindir = fake_browser(tmp_path, fake, pem, delay=0)
    r = run([WARREN, "tunnel", "login"], env=login_env(fake, home, f"{bindir}:/usr/bin:/bin"), timeout=60)
    assert r.returncode == 0, r.stderr
    assert (home / ".cloudflared" / "cert.pem").read_text() == pem


def test_login_without_browser_prints_url_fake(fake, home, tmp_path):
    """No xdg-open: the URL is printed; someone else completes the login."""
    pem = cert_pem(fake.zone, fake.account, fake.token)
    p = subprocess.Popen([WARREN, "tunnel", "login", "--callbackURL", fake.origin + "/"],
                         env={**os.environ, **login_env(fake, home, str(tmp_path))}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any("callback=" in l for l in lines):
            line = p.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert lines[0] == "Please open the following URL and log in with your account:\n"
        url = next(l for l in lines if "callback=" in l).strip()
        cb = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["callback"][0]
        assert cb.startswith(fake.origin + "/") and cb.count("/") == 3  # the store at the root: /KEY
        time.sleep(0.7)  # let it poll (and be told to wait) at least once
        urllib.request.urlopen(urllib.request.Request(fake.origin + "/_fake/login/" + cb.rsplit("/", 1)[1],
                                                      data=pem.encode(), method="POST"))
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert re.search(LOG_PREFIX + "INF Waiting for login\\.\\.\\.$", err, re.M), err
    assert (home / ".cloudflared" / "cert.pem").read_text() == pem


def test_login_failures_fake(fake, home, tmp_path):
    env = login_env(fake, home, str(tmp_path))
    path = home / ".cloudflared" / "cert.pem"
    fake.ctl("/_fake/config", {"login_hold": 0.02})
    r = run([WARREN, "tunnel", "login"], env=env, timeout=60)
    assert r.returncode == 1
    assert ("Failed to write the certificate due to the following error:\nFailed to fetch resource\n\n"
            "Your browser will download the certificate instead. You will have to manually\ncopy it to the "
            f"following path:\n\n{path}\n") in r.stderr
    assert r.stderr.endswith("\nFailed to fetch resource\n")
    assert r.stderr.count("INF Waiting for login...") == 10
    assert not path.exists()

    fake.ctl("/_fake/fail", {"status": 500, "prefix": "/argotunnel/transfer/"})
    r = run([WARREN, "tunnel", "login"], env=env, timeout=60)
    assert r.returncode == 1 and r.stderr.endswith("\nerror on request 500\n"), r.stderr

    # Something that is not a cert.pem is not written.
    bindir = fake_browser(tmp_path, fake, "<html>sign in</html>", delay=0)
    fake.ctl("/_fake/config", {"login_hold": 5})
    r = run([WARREN, "tunnel", "login"], env=login_env(fake, home, f"{bindir}:/usr/bin:/bin"), timeout=60)
    assert r.returncode == 1
    assert "the login service did not return a usable cert.pem: Missing token in the certificate" in r.stderr
    assert not path.exists()

    dead = f"http://127.0.0.1:{free_port()}"
    r = run([WARREN, "tunnel", "login", "--loginURL", dead + "/x", "--callbackURL", dead + "/"], env=env, timeout=60)
    assert r.returncode == 1
    assert re.search(rf'\nGet "{re.escape(dead)}/[A-Za-z0-9_-]{{43}}=": dial tcp 127\.0\.0\.1:\d+: connect: '
                     r"connection refused\n$", r.stderr), r.stderr
    assert f"{dead}/x?aud=&callback=" in r.stderr


def test_login_against_the_edge(tmp_path, procs, home):
    """[edge] The whole flow with the real login page: a scripted browser
    signs in as a `warren-edge user add` user and picks the zone; warren's
    poll gets the cert.pem, which then works for the API."""
    b, why = start_edge(tmp_path, procs)
    if b is None:
        pytest.skip(why)
    password = "correct horse battery staple"
    r = run([WARREN_EDGE, "user", "add", "--data-dir", str(b.data_dir), "alice@example.test"],
            env={"WARREN_EDGE_PASSWORD": password})
    assert r.returncode == 0, r.stderr
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "xdg-open"
    script.write_text(f"""#!{sys.executable}
import html, http.cookiejar, re, sys, urllib.parse, urllib.request
url = sys.argv[1]
open({str(tmp_path / 'opened-url')!r}, "w").write(url)
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
def hidden(page, name):
    return html.unescape(re.search(r'name="%s" value="([^"]*)"' % name, page).group(1))
page = op.open(url, timeout=10).read().decode()
form = {{"csrf": hidden(page, "csrf"), "callback": hidden(page, "callback"),
        "email": "alice@example.test", "password": {password!r}}}
page = op.open({b.origin!r} + "/argotunnel/signin", urllib.parse.urlencode(form).encode(), timeout=30).read().decode()
zone = re.search(r'name="zone" id="zone-{ZONE}" value="([^"]*)"', page).group(1)
form = {{"csrf": hidden(page, "csrf"), "callback": hidden(page, "callback"), "zone": zone}}
op.open({b.origin!r} + "/argotunnel/authorize", urllib.parse.urlencode(form).encode(), timeout=30).read()
""")
    script.chmod(0o755)
    env = {"HOME": str(home), "TUNNEL_API_URL": b.url, "PATH": f"{bindir}:/usr/bin:/bin"}
    r = run([WARREN, "tunnel", "login"], env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    url = (tmp_path / "opened-url").read_text()
    assert url.startswith(b.origin + "/argotunnel?aud=&callback=" +
                          urllib.parse.quote(b.origin + "/argotunnel/transfer/", safe=""))
    path = home / ".cloudflared" / "cert.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    zone, account, token = read_cert(path)
    assert (zone, account) == (b.zone, b.account) and token != b.token
    r = run([WARREN, "tunnel", "create", "from-login"], env=env)
    assert r.returncode == 0, r.stderr
    assert "from-login" in run([WARREN, "tunnel", "list"], env=env).stdout


# --- the cloudflared differential -------------------------------------------------------------------

CLOUDFLARED = os.environ.get("CLOUDFLARED")
FAKE_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_cfapi.py")


@pytest.mark.skipif(not CLOUDFLARED or os.geteuid() != 0 or not shutil.which("ip"),
                    reason="needs CLOUDFLARED=/path/to/cloudflared (2023.7.3), root and iproute2")
def test_same_output_and_requests_as_cloudflared(tmp_path):
    ns = "wrm" + uuid.uuid4().hex[:8]
    acct, zone, token = "a" * 32, "b" * 32, "tok-" + uuid.uuid4().hex
    home = tmp_path / "home"
    (home / ".cloudflared").mkdir(parents=True)
    (home / ".cloudflared" / "cert.pem").write_text(cert_pem(zone, acct, token))
    port = 18081
    origin = f"http://127.0.0.1:{port}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    srv = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        srv = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, FAKE_PY, "--listen", f"127.0.0.1:{port}",
                                "--account", acct, "--zone", zone, "--token", token, "--zone-name", ZONE],
                               stdout=subprocess.PIPE, text=True)
        assert srv.stdout.readline().startswith("listening")

        def ctl(path, body=None, method=None):
            code = ("import json,sys,urllib.request;d=sys.argv[3].encode() if sys.argv[3] else None;"
                    "r=urllib.request.Request(sys.argv[1]+sys.argv[2],data=d,method=sys.argv[4] or None);"
                    "print(urllib.request.urlopen(r).read().decode())")
            out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, origin, path,
                                  json.dumps(body) if body is not None else "", method or ""],
                                 capture_output=True, text=True, check=True).stdout
            return json.loads(out)

        def both(*args):
            res = []
            for prog in (CLOUDFLARED, WARREN):
                ctl("/_fake/log", method="DELETE")
                r = subprocess.run(["ip", "netns", "exec", ns, "env", f"HOME={home}",
                                    f"TUNNEL_API_URL={origin}/client/v4", prog, *args],
                                   capture_output=True, text=True, timeout=60)
                reqs = [(e["method"], e["path"], e["query"], e["body"]) for e in ctl("/_fake/log")]
                res.append((r, reqs))
            return res

        def norm_err(s):
            s = re.sub(r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", "", s).replace("cloudflared", "warren")
            return s

        ctl("/_fake/tunnels", {"id": TID, "name": "mytun", "created_at": "2026-11-22T03:42:53.843027Z"})
        for c in CONNECTORS:
            ctl(f"/_fake/tunnels/{TID}/connectors", c)
        ctl("/_fake/tunnels", {"id": "c3950b1f-e5aa-4d32-a03f-38a2329d8a14", "name": "1.0",
                               "created_at": "2026-01-01T00:00:00+02:00"})
        ctl("/_fake/tunnels", {"id": "80742d79-5b20-4fb0-93e5-97f8882a7e58", "name": "gone",
                               "created_at": "2025-01-01T00:00:00Z", "deleted_at": "2025-02-01T00:00:00Z"})

        # Names that YAML would read as something else, or that need quoting or escaping.
        for i, n in enumerate(["yes", "1.0", "2024-01-01", "null", "0x1F", "- x", "a: b", "#c", " lead", "x'y",
                               "12:30", "tab\there", "\u00fcn\u00efcode", "<b>&", "trail ", "~", "+1", ".5", "a #b"]):
            ctl("/_fake/tunnels", {"id": f"00000000-0000-4000-8000-{i:012d}", "name": n,
                                   "created_at": "2026-01-01T00:00:00Z"})

        # Read-only commands: identical output and identical requests.
        for args in (["tunnel", "list"], ["tunnel", "list", "-o", "json"], ["tunnel", "list", "-o", "yaml"],
                     ["tunnel", "list", "-d"], ["tunnel", "list", "--rd", "--sort-by", "createdAt"],
                     ["tunnel", "list", "--sort-by", "bogus", "-d", "--invert-sort"],
                     ["tunnel", "info", "mytun"], ["tunnel", "info", "--rd", "mytun"],
                     ["tunnel", "info", "-o", "json", "mytun"], ["tunnel", "info", "-o", "yaml", TID],
                     ["tunnel", "info", "1.0"], ["tunnel", "info", "nosuch"], ["tunnel", "token", "mytun"],
                     ["tunnel", "route", "ip", "show"], ["tunnel", "route", "ip", "get", "10.0.0.1"],
                     ["tunnel", "vnet", "list"], ["tunnel", "list", "-o", "xml"],
                     ["tunnel", "create", "-s", "abc", "x"], ["tunnel", "route", "dns", "mytun", "bad host"],
                     ["tunnel", "route", "ip", "add", "10.0.0/8", "mytun"]):
            (cf, cf_reqs), (w, w_reqs) = both(*args)
            assert w.stdout == cf.stdout.replace("cloudflared", "warren"), args
            assert norm_err(w.stderr) == norm_err(cf.stderr), args
            assert w.returncode == cf.returncode, args
            if args[-1] != "xml":  # warren checks -o before calling the API, on purpose
                assert w_reqs == cf_reqs, args

        # Changes: each client makes its own (10.1.0.0/16 vs 10.2.0.0/16, www1 vs www2); the
        # requests and the output must agree once that difference is taken out.
        def one(prog, *args):
            ctl("/_fake/log", method="DELETE")
            r = subprocess.run(["ip", "netns", "exec", ns, "env", f"HOME={home}", f"TUNNEL_API_URL={origin}/client/v4",
                                prog, *args], capture_output=True, text=True, timeout=60)
            return r, [(e["method"], e["path"], e["query"], e["body"]) for e in ctl("/_fake/log")]

        def mutate(tmpl):
            got = []
            for prog, k in ((CLOUDFLARED, "1"), (WARREN, "2")):
                r, reqs = one(prog, *[a.replace("K", k) for a in tmpl])
                got.append((r.returncode, r.stdout.replace("10." + k, "10.K").replace("www" + k, "wwwK"),
                            norm_err(r.stderr).replace("10." + k, "10.K").replace("www" + k, "wwwK"),
                            json.dumps(reqs).replace("10." + k, "10.K").replace("www" + k, "wwwK")))
            assert got[0] == got[1], tmpl

        mutate(["tunnel", "route", "ip", "add", "10.K.0.0/16", "mytun", "c"])
        mutate(["tunnel", "route", "dns", "mytun", "wwwK"])
        mutate(["tunnel", "route", "ip", "add", "10.K.0.0/16", "mytun"])  # a duplicate: the API's error
        for args in (["tunnel", "route", "ip", "show", "-o", "yaml"], ["tunnel", "route", "ip", "show"],
                     ["tunnel", "route", "ip", "show", "--filter-network-is-superset-of", "10.1.1.0/24"]):
            (cf, cf_reqs), (w, w_reqs) = both(*args)
            assert (w.returncode, w.stdout, w_reqs) == (cf.returncode, cf.stdout, cf_reqs), args
        mutate(["tunnel", "route", "ip", "delete", "10.K.0.0/16"])
        (cf, cf_reqs), (w, w_reqs) = both("tunnel", "cleanup", "--connector-id", CONNECTORS[0]["id"], "mytun")
        assert norm_err(w.stderr) == norm_err(cf.stderr) and w_reqs == cf_reqs
        # create: the same request shape and output shape (new IDs and secrets differ).
        outs = []
        for prog, name in ((CLOUDFLARED, "c-cf"), (WARREN, "c-wr")):
            ctl("/_fake/log", method="DELETE")
            r = subprocess.run(["ip", "netns", "exec", ns, "env", f"HOME={home}", f"TUNNEL_API_URL={origin}/client/v4",
                                prog, "tunnel", "create", "-o", "yaml", name], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            reqs = ctl("/_fake/log")
            assert [(e["method"], e["path"]) for e in reqs] == [("POST", f"/client/v4/accounts/{acct}/cfd_tunnel")]
            assert list(json.loads(reqs[0]["body"])) == ["name", "tunnel_secret"]
            outs.append(re.sub(UUID_RE + "|createdat: .*", "X", r.stdout.replace(name, "N")))
        assert outs[0] == outs[1]
    finally:
        if srv:
            srv.kill()
            srv.wait()
        subprocess.run(["ip", "netns", "del", ns])


def test_run_by_name_resolves_through_the_api(tmp_path, procs, home):
    """`tunnel run NAME` looks the name up with cert.pem, as cloudflared's
    runNamedTunnel does, then finds <id>.json next to cert.pem."""
    b, why = start_edge(tmp_path, procs)
    if b is None:
        pytest.skip(why)
    w = Warren(b, home)
    tid = created_id(w.ok("tunnel", "create", "byname"))
    m = free_port()
    env = dict(os.environ, **w.env)
    p = procs.start([WARREN, "tunnel", "--no-autoupdate", "--edge", f"127.0.0.1:{b.udp}",
                     "--cacert", str(b.data_dir / "ca.pem"), "--protocol", "quic",
                     "--metrics", f"127.0.0.1:{m}", "--hello-world", "run", "byname"],
                    name="warren-byname", env=env)

    def ready():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{m}/ready", timeout=2) as r:
                return json.load(r)["readyConnections"] >= 1
        except Exception:
            return False
    assert wait_for(lambda: ready() or not p.alive(), timeout=20) and p.alive(), p.tail(20)
    assert f"tunnelID={tid}" in p.output()
    r = w("tunnel", "--no-autoupdate", "run", "no-such-tunnel", env={"TUNNEL_EDGE": f"127.0.0.1:{b.udp}"})
    assert r.returncode == 1 and "no-such-tunnel" in r.stdout + r.stderr
