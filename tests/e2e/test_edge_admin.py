"""warren-edge local administration: init, tunnel create|list|delete, route dns, audit.

Each test gets its own data directory; the files are checked the way
cloudflared and certtool will read them."""
import base64
import json
import os
import re
import stat

import pytest

from common import failed, ok
from conftest import WARREN_EDGE, run

ZONE = "example.test"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")


def edge(*args, data_dir=None, env=None):
    cmd = [WARREN_EDGE]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    return run(cmd + list(args), env=env)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def pem_blocks(text):
    return re.findall(r"-----BEGIN ([A-Z ]+)-----\n(.*?)-----END \1-----", text, re.S)


def token_of(data_dir):
    blocks = dict(pem_blocks((data_dir / "cert.pem").read_text()))
    return json.loads(base64.b64decode("".join(blocks["ARGO TUNNEL TOKEN"].split())))


def snapshot(d):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(d.iterdir())}


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "edge"
    ok(edge("init", "--zone", ZONE, data_dir=d))
    return d


def create_tunnel(data_dir, name, *extra):
    r = ok(edge("tunnel", "create", name, *extra, data_dir=data_dir))
    m = re.search(rf"Created tunnel {re.escape(name)} with id (\S+)", r.stdout)
    assert m, r.stdout
    assert UUID_RE.match(m.group(1))
    return m.group(1), r


# --- init ------------------------------------------------------------------------------


def test_init_creates_store_cas_and_cert_pem(tmp_path):
    d = tmp_path / "deep" / "edge"
    r = ok(edge("init", "--zone", "Example.TEST.", data_dir=d))
    for name in ("warren.db", "ca.pem", "ca.key", "tunnel-server.pem", "tunnel-server.key",
                 "origin-ca.pem", "origin-ca.key", "cert.pem"):
        assert (d / name).is_file(), name
        assert str(d / name) in r.stdout or name.endswith(".key"), name
    assert mode(d) == 0o700
    for secret in ("ca.key", "tunnel-server.key", "origin-ca.key", "cert.pem", "warren.db"):
        assert mode(d / secret) == 0o600, secret
    assert mode(d / "ca.pem") == 0o644
    assert "Next steps" in r.stdout
    assert "--cacert " + str(d / "ca.pem") in r.stdout
    assert "admin@example.test" in r.stdout  # default admin, zone canonicalised
    # Nothing but the data directory is left behind (no staging directories).
    assert sorted(p.name for p in d.parent.iterdir()) == ["edge"]


def test_init_again_is_refused_and_touches_nothing(data_dir):
    before = snapshot(data_dir)
    r = failed(edge("init", "--zone", ZONE, data_dir=data_dir), "already exists and is not empty",
               str(data_dir))
    assert r.stdout == ""
    assert snapshot(data_dir) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["edge"]


def test_init_refuses_foreign_nonempty_dir(tmp_path):
    d = tmp_path / "someone-elses"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    failed(edge("init", "--zone", ZONE, data_dir=d), "refusing to touch it")
    assert [p.name for p in d.iterdir()] == ["notes.txt"]


def test_init_uses_an_existing_empty_dir(tmp_path):
    d = tmp_path / "empty"
    d.mkdir(mode=0o755)
    # A failure part-way leaves the directory as it was found: there, empty.
    failed(edge("init", "--zone", ZONE, "--email", "bad email", data_dir=d), "email")
    assert d.is_dir() and list(d.iterdir()) == []
    ok(edge("init", "--zone", ZONE, "--email", "ops@example.test", data_dir=d))
    assert mode(d) == 0o700
    assert (d / "warren.db").is_file()
    assert "ops@example.test" in ok(edge("audit", data_dir=d)).stdout


@pytest.mark.parametrize("zone,needle", [
    ("exa mple.test", "' '"),
    ("example.test:8080", "port"),
    ("https://example.test", "URL"),
    ("*.example.test", "wildcard"),
    ("127.0.0.1", "IP address"),
])
def test_init_validates_the_zone(tmp_path, zone, needle):
    d = tmp_path / "edge"
    failed(edge("init", "--zone", zone, data_dir=d), "invalid --zone", needle)
    assert not d.exists()
    assert list(tmp_path.iterdir()) == []


def test_init_needs_zone_and_data_dir(tmp_path):
    failed(edge("init", data_dir=tmp_path / "x"), "--zone")
    failed(edge("init", "--zone", ZONE), "--data-dir", "WARREN_EDGE_DATA_DIR")
    failed(edge("init", "--zone", ZONE, "--email", "not-an-email", data_dir=tmp_path / "y"),
           "not an email address")
    assert list(tmp_path.iterdir()) == []


def test_cert_pem_has_origin_cert_key_and_token(data_dir):
    text = (data_dir / "cert.pem").read_text()
    assert [t for t, _ in pem_blocks(text)] == ["CERTIFICATE", "PRIVATE KEY", "ARGO TUNNEL TOKEN"]
    tok = token_of(data_dir)
    assert set(tok) == {"zoneID", "accountID", "apiToken"}
    assert HEX32_RE.match(tok["zoneID"]) and HEX32_RE.match(tok["accountID"])
    assert re.match(r"^[A-Za-z0-9_-]{40}$", tok["apiToken"])
    # The token is stored only as a hash.
    assert tok["apiToken"].encode() not in (data_dir / "warren.db").read_bytes()
    # The origin certificate is for the zone and its wildcard, signed by the origin CA.
    cert = data_dir / "origin.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n" + dict(pem_blocks(text))["CERTIFICATE"]
                    + "-----END CERTIFICATE-----\n")
    r = run(["certtool", "--verify", "--load-ca-certificate", str(data_dir / "origin-ca.pem"),
             "--infile", str(cert)])
    assert r.returncode == 0, r.stdout + r.stderr
    info = run(["certtool", "-i", "--infile", str(cert)]).stdout
    assert "DNSname: example.test" in info and "DNSname: *.example.test" in info


def test_tunnel_server_cert_verifies_with_certtool(data_dir):
    r = run(["certtool", "--verify", "--load-ca-certificate", str(data_dir / "ca.pem"),
             "--infile", str(data_dir / "tunnel-server.pem")])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verified" in r.stdout
    info = run(["certtool", "-i", "--infile", str(data_dir / "tunnel-server.pem")]).stdout
    for name in ("quic.cftunnel.com", "h2.cftunnel.com", "cftunnel.com", "localhost",
                 "example.test", "*.example.test"):
        assert f"DNSname: {name}\n" in info, name
    assert "IPAddress: 127.0.0.1" in info and "IPAddress: ::1" in info
    assert "TLS WWW Server" in info
    # The origin CA is a different root: it must not vouch for the tunnel server.
    r = run(["certtool", "--verify", "--load-ca-certificate", str(data_dir / "origin-ca.pem"),
             "--infile", str(data_dir / "tunnel-server.pem")])
    assert r.returncode != 0


# --- tunnels ---------------------------------------------------------------------------


def test_tunnel_create_writes_cloudflared_credentials(data_dir):
    tid, r = create_tunnel(data_dir, "web")
    path = data_dir / f"{tid}.json"
    assert str(path) in r.stdout
    assert mode(path) == 0o400
    raw = path.read_text()
    creds = json.loads(raw)
    assert list(creds) == ["AccountTag", "TunnelSecret", "TunnelID"]  # cloudflared's order
    assert creds["AccountTag"] == token_of(data_dir)["accountID"]
    assert len(base64.b64decode(creds["TunnelSecret"], validate=True)) == 32
    assert creds["TunnelID"] == tid
    assert " " not in raw  # compact, as cloudflared writes it


def test_tunnel_create_out_and_errors(data_dir, tmp_path):
    out = tmp_path / "creds.json"
    tid, r = create_tunnel(data_dir, "api", "--out", str(out))
    assert json.loads(out.read_text())["TunnelID"] == tid
    assert not (data_dir / f"{tid}.json").exists()
    # Never overwrite a credentials file; nothing is created then.
    failed(edge("tunnel", "create", "other", "--out", str(out), data_dir=data_dir), "already exists")
    failed(edge("tunnel", "create", "api", data_dir=data_dir), 'a tunnel named "api" already exists', tid)
    failed(edge("tunnel", "create", "a/b", data_dir=data_dir), "'/'")
    failed(edge("tunnel", "create", "x" * 65, data_dir=data_dir), "64")
    failed(edge("tunnel", "create", "", data_dir=data_dir), "empty")
    failed(edge("tunnel", "create", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", data_dir=data_dir), "UUID")
    failed(edge("tunnel", "create", data_dir=data_dir), "exactly one argument")
    names = [t["name"] for t in json.loads(ok(edge("tunnel", "list", "--output", "json",
                                                   data_dir=data_dir)).stdout)]
    assert names == ["api"]


def test_tunnel_list_table_and_json(data_dir):
    r = ok(edge("tunnel", "list", data_dir=data_dir))
    assert "No tunnels" in r.stdout
    assert json.loads(ok(edge("tunnel", "list", "-o", "json", data_dir=data_dir)).stdout) == []
    a, _ = create_tunnel(data_dir, "alpha")
    b, _ = create_tunnel(data_dir, "beta")
    r = ok(edge("tunnel", "list", data_dir=data_dir))
    lines = r.stdout.splitlines()
    assert re.match(r"^ID\s+NAME\s+CREATED\s+CONNECTIONS$", lines[0])
    assert lines[1].startswith(a) and " alpha " in lines[1]
    assert lines[2].startswith(b) and " beta " in lines[2]
    rows = json.loads(ok(edge("tunnel", "list", "--output", "json", data_dir=data_dir)).stdout)
    assert [(t["id"], t["name"]) for t in rows] == [(a, "alpha"), (b, "beta")]
    for t in rows:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", t["created_at"])
        assert t["deleted_at"] is None and t["connections"] == []
    failed(edge("tunnel", "list", "--output", "yaml", data_dir=data_dir), "--output")


def test_route_dns(data_dir):
    tid, _ = create_tunnel(data_dir, "web")
    other, _ = create_tunnel(data_dir, "other")
    r = ok(edge("route", "dns", "web", "app.example.test", data_dir=data_dir))
    assert r.stdout.strip() == f"Added CNAME app.example.test which will route to this tunnel tunnelID={tid}"
    r = ok(edge("route", "dns", tid, "App.Example.Test.", data_dir=data_dir))
    assert "app.example.test is already configured to route to your tunnel" in r.stdout
    failed(edge("route", "dns", "web", ZONE, data_dir=data_dir), "is the zone apex")
    failed(edge("route", "dns", "web", "app.example.org", data_dir=data_dir), "not inside zone example.test")
    failed(edge("route", "dns", "web", "app.example.test:8080", data_dir=data_dir), "port")
    failed(edge("route", "dns", "nope", "x.example.test", data_dir=data_dir), 'no tunnel named "nope"')
    failed(edge("route", "dns", "other", "app.example.test", data_dir=data_dir),
           "already routed to tunnel web", "--overwrite-dns")
    r = ok(edge("route", "dns", "--overwrite-dns", "other", "app.example.test", data_dir=data_dir))
    assert r.stdout.strip() == f"app.example.test updated to route to your tunnel tunnelID={other}"
    ok(edge("route", "dns", "web", "*.example.test", data_dir=data_dir))


def test_tunnel_delete(data_dir):
    tid, _ = create_tunnel(data_dir, "web")
    ok(edge("route", "dns", "web", "app.example.test", data_dir=data_dir))
    r = ok(edge("tunnel", "delete", "web", data_dir=data_dir))
    assert f"Deleted tunnel web with id {tid} and its 1 route" in r.stdout
    assert not (data_dir / f"{tid}.json").exists()
    assert json.loads(ok(edge("tunnel", "list", "-o", "json", data_dir=data_dir)).stdout) == []
    failed(edge("tunnel", "delete", "web", data_dir=data_dir), 'no tunnel named "web"')
    failed(edge("tunnel", "delete", tid, data_dir=data_dir), "deleted")
    # The name and the hostname are free again.
    new, _ = create_tunnel(data_dir, "web")
    assert new != tid
    r = ok(edge("route", "dns", new, "app.example.test", data_dir=data_dir))
    assert "Added CNAME app.example.test" in r.stdout
    ok(edge("tunnel", "delete", new, data_dir=data_dir))  # by ID


def test_audit_shows_each_action(data_dir):
    tid, _ = create_tunnel(data_dir, "web")
    ok(edge("route", "dns", "web", "app.example.test", data_dir=data_dir))
    ok(edge("tunnel", "delete", "web", data_dir=data_dir))
    failed(edge("tunnel", "create", "bad/name", data_dir=data_dir))  # failures are not audited
    rows = json.loads(ok(edge("audit", "--output", "json", data_dir=data_dir)).stdout)
    assert [e["action"] for e in rows] == [
        "account.create", "zone.create", "user.create", "token.create", "edge.init",
        "tunnel.create", "route.create", "tunnel.delete"]
    assert all(e["actor"].startswith("cli:") for e in rows)
    assert [e["id"] for e in rows] == sorted(e["id"] for e in rows)
    tok = token_of(data_dir)
    assert all(e["account_id"] == tok["accountID"] for e in rows)
    assert rows[5]["target_type"] == "tunnel" and rows[5]["target_id"] == tid
    assert rows[5]["detail"] == {"name": "web"}
    assert rows[6]["target_id"] == "app.example.test" and rows[6]["detail"]["tunnel_id"] == tid
    assert rows[7]["detail"]["routes"] == ["app.example.test"]
    assert tok["apiToken"] not in json.dumps(rows)

    last2 = json.loads(ok(edge("audit", "-o", "json", "--limit", "2", data_dir=data_dir)).stdout)
    assert [e["action"] for e in last2] == ["route.create", "tunnel.delete"]
    table = ok(edge("audit", data_dir=data_dir)).stdout.splitlines()
    assert re.match(r"^AT\s+ACTOR\s+ACTION\s+TARGET\s+DETAIL$", table[0])
    assert "tunnel.delete" in table[-1] and f"tunnel:{tid}" in table[-1]
    failed(edge("audit", "--limit", "0", data_dir=data_dir), "--limit")


def test_missing_or_wrong_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    for args in (("tunnel", "list"), ("tunnel", "create", "x"), ("tunnel", "delete", "x"),
                 ("route", "dns", "x", "a.example.test"), ("audit",)):
        r = failed(edge(*args, data_dir=missing))
        assert r.stderr.strip() == (f"warren-edge: no data directory at {missing}: run "
                                    f"`warren-edge init --data-dir {missing} --zone ZONE` first")
    failed(edge("tunnel", "list"), "--data-dir", "WARREN_EDGE_DATA_DIR")
    (tmp_path / "plain").mkdir()
    failed(edge("audit", data_dir=tmp_path / "plain"), "not a warren-edge data directory")
    assert not (tmp_path / "plain" / "warren.db").exists()


def test_data_dir_from_environment(data_dir):
    env = {"WARREN_EDGE_DATA_DIR": str(data_dir)}
    tid, _ = create_tunnel(data_dir, "web")
    rows = json.loads(ok(run([WARREN_EDGE, "tunnel", "list", "-o", "json"], env=env)).stdout)
    assert [t["id"] for t in rows] == [tid]


# --- several accounts --------------------------------------------------------------------


def add_account(data_dir, name, zone):
    """A second account with its own zone, written into the store directly:
    no command makes one (init makes the first), but the API serves any
    number and a shared store may hold several."""
    import sqlite3
    import time
    import uuid
    acct, zid = uuid.uuid4().hex, uuid.uuid4().hex
    db = sqlite3.connect(str(data_dir / "warren.db"))
    try:
        now = int(time.time())
        db.execute("INSERT INTO accounts(id, name, created_at) VALUES (?, ?, ?)", (acct, name, now))
        db.execute("INSERT INTO zones(id, account_id, name, created_at) VALUES (?, ?, ?, ?)",
                   (zid, acct, zone, now))
        db.commit()
    finally:
        db.close()
    return acct


def route_account(data_dir, hostname):
    import sqlite3
    db = sqlite3.connect(str(data_dir / "warren.db"))
    try:
        row = db.execute("SELECT account_id FROM routes WHERE hostname = ?", (hostname,)).fetchone()
    finally:
        db.close()
    return row and row[0]


def test_two_accounts_need_account_and_each_command_acts_on_it(data_dir):
    first = token_of(data_dir)["accountID"]
    second = add_account(data_dir, "second", "second.test")

    # Without --account every command that acts on one account refuses,
    # says why and lists the accounts to choose from; nothing is changed.
    for args in (("route", "dns", "web", "app.second.test"), ("tunnel", "create", "web"),
                 ("tunnel", "list"), ("tunnel", "delete", "web"),
                 ("user", "add", "--service", "ci@second.test")):
        failed(edge(*args, data_dir=data_dir), "2 accounts", "--account", first, second)
    assert not list(data_dir.glob("*-*-*-*-*.json"))

    # With --account (by name or by ID) each acts on that account only.
    tid, _ = create_tunnel(data_dir, "web", "--account", "second")
    creds = json.loads((data_dir / f"{tid}.json").read_text())
    assert creds["AccountTag"] == second
    first_tid, _ = create_tunnel(data_dir, "web", "--account", first)  # the same name, the other account
    r = ok(edge("route", "dns", "--account", "second", "web", "app.second.test", data_dir=data_dir))
    assert r.stdout.strip() == f"Added CNAME app.second.test which will route to this tunnel tunnelID={tid}"
    assert route_account(data_dir, "app.second.test") == second
    # The second account's tunnel cannot take a name of the first account's zone.
    failed(edge("route", "dns", "--account", second, "web", "app.example.test", data_dir=data_dir),
           "another account")
    r = ok(edge("route", "dns", "--account", first, "web", "app.example.test", data_dir=data_dir))
    assert f"tunnelID={first_tid}" in r.stdout
    assert route_account(data_dir, "app.example.test") == first

    rows = json.loads(ok(edge("tunnel", "list", "-o", "json", "--account", second.upper(),
                              data_dir=data_dir)).stdout)
    assert [t["id"] for t in rows] == [tid]
    r = ok(edge("tunnel", "delete", "--account", "second", "web", data_dir=data_dir))
    assert f"Deleted tunnel web with id {tid} and its 1 route" in r.stdout
    rows = json.loads(ok(edge("tunnel", "list", "-o", "json", "--account", first, data_dir=data_dir)).stdout)
    assert [t["id"] for t in rows] == [first_tid]

    # An unknown account is an error that lists the real ones.
    for args in (("tunnel", "list"), ("route", "dns", "web", "x.second.test"), ("audit",), ("user", "list")):
        failed(edge(*args, "--account", "nope", data_dir=data_dir), "--account nope", first, second)

    # audit and user list show every account unless told.
    audit = json.loads(ok(edge("audit", "-o", "json", data_dir=data_dir)).stdout)
    assert {e["account_id"] for e in audit} >= {first, second}
    audit = json.loads(ok(edge("audit", "-o", "json", "--account", "second", data_dir=data_dir)).stdout)
    assert audit and {e["account_id"] for e in audit} == {second}
    assert [e["action"] for e in audit] == ["tunnel.create", "route.create", "tunnel.delete"]
    ok(edge("user", "add", "--service", "--account", "second", "ci@second.test", data_dir=data_dir))
    users = json.loads(ok(edge("user", "list", "-o", "json", "--account", "second", data_dir=data_dir)).stdout)
    assert [(u["email"], u["account_id"]) for u in users] == [("ci@second.test", second)]
    assert len(json.loads(ok(edge("user", "list", "-o", "json", data_dir=data_dir)).stdout)) == 2


def test_account_names_shared_by_two_accounts_need_the_id(data_dir):
    a = add_account(data_dir, "twin", "one.test")
    b = add_account(data_dir, "twin", "two.test")
    failed(edge("tunnel", "list", "--account", "twin", data_dir=data_dir), "2 accounts have that name", a, b)
    ok(edge("tunnel", "list", "--account", b, data_dir=data_dir))


def test_user_add_zone_is_for_service_users(data_dir):
    failed(edge("user", "add", "--zone", ZONE, "p@example.test", data_dir=data_dir,
                env={"WARREN_EDGE_PASSWORD": "a long enough password"}), "--zone is for service users")


# --- help text ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [(), ("run",), ("init",), ("tunnel",), ("tunnel", "create"),
                                  ("tunnel", "list"), ("tunnel", "delete"), ("route",), ("route", "dns"),
                                  ("user",), ("user", "add"), ("user", "passwd"), ("user", "roll-token"),
                                  ("user", "list"), ("audit",)])
def test_help_describes_what_is(path):
    r = ok(edge(*path, "--help"))
    text = r.stdout.lower()
    for stale in ("issue #", "comes next", "coming", "not yet"):
        assert stale not in text, (path, stale, r.stdout)
    if path in (("tunnel", "create"), ("tunnel", "list"), ("tunnel", "delete"), ("route", "dns"),
                ("user", "add"), ("user", "list"), ("audit",)):
        assert "--account value" in r.stdout, r.stdout
