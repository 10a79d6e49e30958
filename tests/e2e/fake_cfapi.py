"""A minimal, faithful stand-in for the Cloudflare API v4 endpoints that
`cloudflared tunnel ...` (and `warren tunnel ...`) call, plus the login
store that `tunnel login` polls. Stdlib only.

It exists so the client side can be tested before (and independently of)
warren-edge's own API. It follows ../shared/cloudflare-api.md: every success
is HTTP 200, Content-Type exactly application/json, the envelope
{"success","errors","messages":[],"result"} with `result` always present and
`result_info` on lists. Errors are 4xx with the same envelope.

Layout (all under /client/v4, Bearer token from the cert.pem):
  POST   /accounts/A/cfd_tunnel                         create
  GET    /accounts/A/cfd_tunnel[?filters]               list
  GET    /accounts/A/cfd_tunnel/ID                      get
  DELETE /accounts/A/cfd_tunnel/ID[?cascade=true]       delete
  GET    /accounts/A/cfd_tunnel/ID/token                token
  GET    /accounts/A/cfd_tunnel/ID/connections          active connectors
  DELETE /accounts/A/cfd_tunnel/ID/connections[?client_id=]
  PUT    /zones/Z/tunnels/ID/routes                     route dns
  POST   /accounts/A/teamnet/routes[/network/CIDR×2]    route ip add (both forms)
  GET    /accounts/A/teamnet/routes[?filters]           route ip show
  DELETE /accounts/A/teamnet/routes/network/CIDR×2 | /ROUTE_ID
  GET    /accounts/A/teamnet/routes/ip/IP               route ip get
  POST|GET /accounts/A/teamnet/virtual_networks, DELETE|PATCH …/ID
Login, as warren-edge lays it out (src/edge/login.h):
  GET  /argotunnel?aud=&callback=URL   a page (the browser part)
  GET  /argotunnel/transfer/<pubkey>   the store the CLI long-polls: holds up
                                       to --login-hold seconds, then 404;
  GET  /<pubkey>                       the same (login.cloudflareaccess.org's shape)
Test controls (no auth): /_fake/log (GET, DELETE), /_fake/login/<pubkey>
(POST body = cert.pem), /_fake/tunnels (POST a tunnel with fixed fields),
/_fake/tunnels/ID/connectors (POST ActiveClient), /_fake/config (POST
{"login_hold": seconds}), /_fake/fail (POST {"status":503,"count":1,
"prefix":"/client/v4/","content_type":"application/json"}: the next
|count| requests under |prefix| fail).

Run standalone: python3 fake_cfapi.py --listen 127.0.0.1:0 --account A --zone Z
--zone-name example.test --token T; it prints "listening on HOST:PORT"."""
import argparse
import base64
import ipaddress
import json
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from common import QuietHandler

PUBKEY_RE = re.compile(r"^(?:/argotunnel/transfer)?/([A-Za-z0-9_-]{43}=)$")


def now_rfc3339():
    # Cloudflare returns microseconds; clients must cope with fractions.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class State:
    def __init__(self, account, zone, zone_name, token, login_hold=2.0):
        self.account, self.zone, self.zone_name, self.token = account, zone, zone_name, token
        self.login_hold = login_hold
        self.lock = threading.Condition()
        self.tunnels = {}      # id -> dict
        self.connectors = {}   # tunnel id -> [ActiveClient]
        self.dns = {}          # fqdn -> tunnel id
        self.routes = {}       # id -> dict
        self.vnets = {}        # id -> dict
        self.logins = {}       # pubkey -> bytes
        self.log = []
        self.fail = None       # (status, remaining)


def envelope(result, errors=None, result_info=None):
    body = {"success": not errors, "errors": errors or [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-cfapi"

    @property
    def st(self):
        return self.server.state

    # --- plumbing -------------------------------------------------------
    def send_json(self, status, obj):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def ok(self, result, result_info=None):
        self.send_json(200, envelope(result, result_info=result_info))

    def err(self, status, code, message):
        self.send_json(status, envelope(None, [{"code": code, "message": message}]))

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self):
        raw = self.read_body()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def handle_any(self):
        raw_path = self.path
        sp = urlsplit(raw_path)
        self.q = {k: v[-1] for k, v in parse_qs(sp.query, keep_blank_values=True).items()}
        self.raw_q = sp.query
        path = sp.path
        body = self.read_body() if self.command in ("POST", "PUT", "PATCH") else b""
        self._body = body
        if not path.startswith("/_fake/"):
            with self.st.lock:
                self.st.log.append({"method": self.command, "path": path, "query": sp.query,
                                    "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body.decode(errors="replace")})
                if self.st.fail and path.startswith(self.st.fail[2]):
                    status, left, prefix, ctype = self.st.fail
                    self.st.fail = (status, left - 1, prefix, ctype) if left > 1 else None
                    if ctype != "application/json":
                        return self.reply(b"<html>injected failure</html>", status, ctype)
                    return self.err(status, 10001, "injected failure")
        if path.startswith("/_fake/"):
            return self.fake_control(path)
        if path == "/argotunnel":
            return self.login_page()
        m = PUBKEY_RE.match(path)
        if m and self.command == "GET":
            return self.login_poll(m.group(1))
        if not path.startswith("/client/v4/"):
            return self.err(404, 7003, "Could not route to %s, perhaps your object identifier is invalid?" % path)
        if self.headers.get("Authorization") != "Bearer " + self.st.token:
            return self.err(403, 10000, "Authentication error")
        rest = path[len("/client/v4"):]
        acct = "/accounts/%s/" % self.st.account
        zone = "/zones/%s/" % self.st.zone
        try:
            if rest.startswith(acct + "cfd_tunnel"):
                return self.tunnels(rest[len(acct + "cfd_tunnel"):])
            if rest.startswith(acct + "teamnet/routes"):
                return self.routes(rest[len(acct + "teamnet/routes"):])
            if rest.startswith(acct + "teamnet/virtual_networks"):
                return self.vnets(rest[len(acct + "teamnet/virtual_networks"):])
            if rest.startswith(zone + "tunnels/"):
                return self.zone_routes(rest[len(zone + "tunnels/"):])
            if rest.startswith("/accounts/") or rest.startswith("/zones/"):
                return self.err(403, 10000, "Authentication error")
            return self.err(404, 7003, "Could not route to %s, perhaps your object identifier is invalid?" % rest)
        except BadRequest as e:
            return self.err(400, e.code, e.msg)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def body_json(self):
        try:
            return json.loads(self._body) if self._body else {}
        except ValueError:
            raise BadRequest(1001, "invalid JSON body")

    # --- tunnels ----------------------------------------------------------
    def tunnel_obj(self, t):
        conns = []
        for ac in self.st.connectors.get(t["id"], []):
            conns.extend(ac["conns"])
        return {"id": t["id"], "name": t["name"], "created_at": t["created_at"],
                "deleted_at": t["deleted_at"], "connections": conns,
                # Real Cloudflare sends more; clients must ignore it.
                "account_tag": self.st.account, "tun_type": "cfd_tunnel",
                "status": "healthy" if conns else "inactive"}

    def find_tunnel(self, tid):
        t = self.st.tunnels.get(tid)
        if not t:
            raise NotFound()
        return t

    def tunnels(self, rest):
        st = self.st
        with st.lock:
            if rest == "" and self.command == "POST":
                b = self.body_json()
                name, secret = b.get("name", ""), b.get("tunnel_secret", "")
                if not name:
                    raise BadRequest(1003, "tunnel name required")
                try:
                    if len(base64.b64decode(secret, validate=True)) < 32:
                        raise ValueError
                except ValueError:
                    raise BadRequest(1003, "tunnel_secret must be base64 of at least 32 bytes")
                if any(t["name"] == name and not t["deleted_at"] for t in st.tunnels.values()):
                    return self.err(409, 1013, "You already have a tunnel with this name")
                t = {"id": str(uuid.uuid4()), "name": name, "secret": secret,
                     "created_at": now_rfc3339(), "deleted_at": None}
                st.tunnels[t["id"]] = t
                return self.ok(self.tunnel_obj(t))
            if rest == "" and self.command == "GET":
                q = self.q
                rows = sorted(st.tunnels.values(), key=lambda t: t["created_at"])
                if q.get("is_deleted") == "false":
                    rows = [t for t in rows if not t["deleted_at"]]
                elif q.get("is_deleted") == "true":
                    rows = [t for t in rows if t["deleted_at"]]
                if "name" in q:
                    rows = [t for t in rows if t["name"] == q["name"]]
                if "name_prefix" in q:
                    rows = [t for t in rows if t["name"].startswith(q["name_prefix"])]
                if "exclude_prefix" in q:
                    rows = [t for t in rows if not t["name"].startswith(q["exclude_prefix"])]
                if "uuid" in q:
                    rows = [t for t in rows if t["id"] == q["uuid"].lower()]
                return self.paged([self.tunnel_obj(t) for t in rows])
            m = re.match(r"^/([0-9a-f-]{36})(/token|/connections)?$", rest)
            if not m:
                return self.err(404, 7003, "No route for that URI")
            try:
                t = self.find_tunnel(m.group(1))
            except NotFound:
                return self.err(404, 1000, "Tunnel not found")
            sub = m.group(2)
            if sub is None and self.command == "GET":
                return self.ok(self.tunnel_obj(t))
            if sub is None and self.command == "DELETE":
                if t["deleted_at"]:
                    return self.err(400, 1000, "Tunnel has already been deleted")
                if st.connectors.get(t["id"]) and self.q.get("cascade") != "true":
                    return self.err(400, 1022, "Cannot delete tunnel because it has active connections")
                st.connectors.pop(t["id"], None)
                t["deleted_at"] = now_rfc3339()
                for r in st.routes.values():
                    if r["tunnel_id"] == t["id"] and not r["deleted_at"]:
                        r["deleted_at"] = now_rfc3339()
                return self.ok(self.tunnel_obj(t))
            if sub == "/token" and self.command == "GET":
                if t["deleted_at"]:
                    return self.err(404, 1000, "Tunnel not found")
                tok = json.dumps({"a": st.account, "s": t["secret"], "t": t["id"]}, separators=(",", ":"))
                return self.ok(base64.b64encode(tok.encode()).decode())
            if sub == "/connections" and self.command == "GET":
                return self.ok(st.connectors.get(t["id"], []))
            if sub == "/connections" and self.command == "DELETE":
                cid = self.q.get("client_id")
                if cid:
                    st.connectors[t["id"]] = [c for c in st.connectors.get(t["id"], []) if c["id"] != cid]
                else:
                    st.connectors.pop(t["id"], None)
                return self.ok(None)
            return self.err(405, 10405, "Method not allowed")

    def paged(self, rows):
        q = self.q
        total = len(rows)
        if "page" in q or "per_page" in q:
            per = int(q.get("per_page") or 20)
            page = int(q.get("page") or 1)
            rows = rows[(page - 1) * per:page * per]
        else:
            per, page = max(total, 1), 1
        return self.ok(rows, {"page": page, "per_page": per, "count": len(rows), "total_count": total})

    # --- route dns --------------------------------------------------------
    def zone_routes(self, rest):
        st = self.st
        m = re.match(r"^([0-9a-f-]{36})/routes$", rest)
        if not m or self.command != "PUT":
            return self.err(404, 7003, "No route for that URI")
        with st.lock:
            t = st.tunnels.get(m.group(1))
            if not t or t["deleted_at"]:
                return self.err(404, 1000, "Tunnel not found")
            b = self.body_json()
            if b.get("type") != "dns":
                return self.err(400, 1003, "only dns routes are supported")
            host = b.get("user_hostname", "").lower().rstrip(".")
            zone = st.zone_name
            if host == zone:
                return self.err(400, 1003, "%s is the zone apex; route a name under it" % host)
            if not host.endswith("." + zone):
                host = host + "." + zone  # Cloudflare appends the zone
            cur = st.dns.get(host)
            if cur == t["id"]:
                return self.ok({"cname": "unchanged", "name": host})
            if cur and not b.get("overwrite_existing"):
                return self.err(400, 1003, "An A, AAAA, or CNAME record with that host already exists. "
                                           "For more details, refer to <https://developers.cloudflare.com/dns/manage-dns-records/troubleshooting/records-with-same-name/>.")
            st.dns[host] = t["id"]
            return self.ok({"cname": "updated" if cur else "new", "name": host})

    # --- teamnet routes ---------------------------------------------------
    def route_obj(self, r, detailed):
        o = {"id": r["id"], "network": r["network"], "tunnel_id": r["tunnel_id"],
             "comment": r["comment"], "created_at": r["created_at"], "deleted_at": r["deleted_at"]}
        if r["vnet"]:
            o["virtual_network_id"] = r["vnet"]
        if detailed:
            t = self.st.tunnels.get(r["tunnel_id"])
            o["tunnel_name"] = t["name"] if t else ""
        return o

    @staticmethod
    def cidr(s):
        try:
            return ipaddress.ip_network(s, strict=False)
        except ValueError:
            raise BadRequest(1003, "invalid network %r" % s)

    def routes(self, rest):
        st = self.st
        with st.lock:
            if self.command == "POST" and (rest == "" or rest.startswith("/network/")):
                b = self.body_json()
                if rest:
                    # ≤ 2023.9: the CIDR arrives escaped twice (10.0.0.0%252F8).
                    net = unquote(unquote(rest[len("/network/"):]))
                else:
                    net = b.get("network", "")
                n = self.cidr(net)
                tid = b.get("tunnel_id", "")
                t = st.tunnels.get(tid)
                if not t or t["deleted_at"]:
                    return self.err(404, 1000, "Tunnel not found")
                vnet = b.get("virtual_network_id")
                if vnet and vnet not in st.vnets:
                    return self.err(404, 1000, "virtual network not found")
                for r in st.routes.values():
                    if r["network"] == str(n) and r["vnet"] == vnet and not r["deleted_at"]:
                        return self.err(400, 1014, "You already have a route defined for this exact IP subnet")
                r = {"id": str(uuid.uuid4()), "network": str(n), "tunnel_id": tid, "vnet": vnet,
                     "comment": b.get("comment", ""), "created_at": now_rfc3339(), "deleted_at": None}
                st.routes[r["id"]] = r
                return self.ok(self.route_obj(r, False))
            if self.command == "GET" and rest == "":
                q = self.q
                rows = self.listed(st.routes, tunnel_id="tunnel_id", comment="comment",
                                   virtual_network_id="vnet")
                if "network_subset" in q:
                    x = self.cidr(q["network_subset"])
                    rows = [r for r in rows if ipaddress.ip_network(r["network"]).version == x.version
                            and ipaddress.ip_network(r["network"]).subnet_of(x)]
                if "network_superset" in q:
                    x = self.cidr(q["network_superset"])
                    rows = [r for r in rows if ipaddress.ip_network(r["network"]).version == x.version
                            and ipaddress.ip_network(r["network"]).supernet_of(x)]
                return self.paged([self.route_obj(r, True) for r in rows])
            if self.command == "GET" and rest.startswith("/ip/"):
                try:
                    ip = ipaddress.ip_address(unquote(rest[4:]))
                except ValueError:
                    raise BadRequest(1003, "invalid IP")
                vnet = self.q.get("virtual_network_id")
                best = None
                for r in st.routes.values():
                    n = ipaddress.ip_network(r["network"])
                    if r["deleted_at"] or r["vnet"] != vnet or n.version != ip.version or ip not in n:
                        continue
                    if best is None or n.prefixlen > ipaddress.ip_network(best["network"]).prefixlen:
                        best = r
                return self.ok(self.route_obj(best, True) if best else {})
            if self.command == "DELETE":
                vnet = self.q.get("virtual_network_id")
                if rest.startswith("/network/"):
                    net = str(self.cidr(unquote(unquote(rest[len("/network/"):]))))
                    match = [r for r in st.routes.values()
                             if r["network"] == net and r["vnet"] == vnet and not r["deleted_at"]]
                else:
                    match = [r for r in st.routes.values() if r["id"] == rest.lstrip("/") and not r["deleted_at"]]
                if not match:
                    return self.err(404, 1000, "Route not found")
                match[0]["deleted_at"] = now_rfc3339()
                return self.ok(self.route_obj(match[0], False))
            return self.err(404, 7003, "No route for that URI")

    def listed(self, table, **match):
        """The rows of |table|, oldest first, deleted or not as ?is_deleted
        asks; for each query parameter named in |match| (parameter=field) that
        the request has, only the rows whose field equals it."""
        q = self.q
        deleted = q.get("is_deleted") == "true"
        rows = sorted(table.values(), key=lambda r: r["created_at"])
        rows = [r for r in rows if bool(r["deleted_at"]) == deleted]
        for param, field in match.items():
            if param in q:
                rows = [r for r in rows if r[field] == q[param]]
        return rows

    # --- virtual networks ---------------------------------------------------
    def vnet_obj(self, v):
        return {"id": v["id"], "name": v["name"], "comment": v["comment"],
                "is_default_network": v["is_default"], "created_at": v["created_at"],
                "deleted_at": v["deleted_at"]}

    def vnets(self, rest):
        st = self.st
        with st.lock:
            if rest == "" and self.command == "POST":
                b = self.body_json()
                if not b.get("name"):
                    raise BadRequest(1003, "name required")
                if any(v["name"] == b["name"] and not v["deleted_at"] for v in st.vnets.values()):
                    return self.err(400, 1014, "A virtual network with that name already exists")
                is_def = bool(b.get("is_default", b.get("is_default_network", False)))
                if is_def:
                    for v in st.vnets.values():
                        v["is_default"] = False
                v = {"id": str(uuid.uuid4()), "name": b["name"], "comment": b.get("comment", ""),
                     "is_default": is_def, "created_at": now_rfc3339(), "deleted_at": None}
                st.vnets[v["id"]] = v
                return self.ok(self.vnet_obj(v))
            if rest == "" and self.command == "GET":
                q = self.q
                rows = self.listed(st.vnets, name="name", id="id")
                if "is_default" in q:
                    rows = [v for v in rows if v["is_default"] == (q["is_default"] == "true")]
                return self.ok([self.vnet_obj(v) for v in rows])
            vid = rest.lstrip("/")
            v = st.vnets.get(vid)
            if not v or v["deleted_at"]:
                return self.err(404, 1000, "virtual network not found")
            if self.command == "DELETE":
                used = [r for r in st.routes.values() if r["vnet"] == vid and not r["deleted_at"]]
                if used and self.q.get("force") != "true":
                    return self.err(400, 1015, "virtual network is used by IP routes")
                for r in used:
                    r["deleted_at"] = now_rfc3339()
                v["deleted_at"] = now_rfc3339()
                return self.ok(self.vnet_obj(v))
            if self.command == "PATCH":
                b = self.body_json()
                if "name" in b:
                    v["name"] = b["name"]
                if "comment" in b:
                    v["comment"] = b["comment"]
                if b.get("is_default_network"):
                    for o in st.vnets.values():
                        o["is_default"] = False
                    v["is_default"] = True
                return self.ok(self.vnet_obj(v))
            return self.err(405, 10405, "Method not allowed")

    # --- login -----------------------------------------------------------
    def login_page(self):
        cb = self.q.get("callback", "")
        page = ("<!doctype html><title>Authorize Warren</title><p>Fake login page. Callback: %s</p>"
                % cb.replace("<", "&lt;")).encode()
        self.reply(page, content_type="text/html; charset=utf-8")

    def login_poll(self, key):
        st = self.st
        deadline = time.monotonic() + st.login_hold
        with st.lock:
            while key not in st.logins:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                st.lock.wait(left)
            cert = st.logins.pop(key, None)  # handed out once
        if cert is None:
            return self.reply(b"", 404)
        self.reply(cert, content_type="application/x-pem-file")

    # --- test controls -----------------------------------------------------
    def fake_control(self, path):
        st = self.st
        if path == "/_fake/log":
            with st.lock:
                if self.command == "DELETE":
                    st.log.clear()
                    return self.send_json(200, [])
                return self.send_json(200, st.log)
        m = re.match(r"^/_fake/login/([A-Za-z0-9_=-]+)$", path)
        if m and self.command == "POST":
            with st.lock:
                st.logins[m.group(1)] = self._body
                st.lock.notify_all()
            return self.send_json(200, {})
        m = re.match(r"^/_fake/tunnels/([0-9a-f-]{36})/connectors$", path)
        if m and self.command == "POST":
            with st.lock:
                st.connectors.setdefault(m.group(1), []).append(json.loads(self._body))
            return self.send_json(200, {})
        if path == "/_fake/fail" and self.command == "POST":
            b = json.loads(self._body)
            with st.lock:
                st.fail = (int(b["status"]), int(b.get("count", 1)), b.get("prefix", "/client/v4/"),
                           b.get("content_type", "application/json"))
            return self.send_json(200, {})
        if path == "/_fake/config" and self.command == "POST":
            b = json.loads(self._body)
            with st.lock:
                if "login_hold" in b:
                    st.login_hold = float(b["login_hold"])
            return self.send_json(200, {})
        if path == "/_fake/tunnels" and self.command == "POST":
            # A tunnel with chosen fields (fixed id/created_at for exact output checks).
            b = json.loads(self._body)
            with st.lock:
                t = {"id": b.get("id") or str(uuid.uuid4()), "name": b["name"],
                     "secret": b.get("secret") or base64.b64encode(bytes(32)).decode(),
                     "created_at": b.get("created_at") or now_rfc3339(), "deleted_at": b.get("deleted_at")}
                st.tunnels[t["id"]] = t
            return self.send_json(200, t)
        return self.send_json(404, {})


class BadRequest(Exception):
    def __init__(self, code, msg):
        self.code, self.msg = code, msg


class NotFound(Exception):
    pass


class FakeAPI:
    """In-process use: FakeAPI(...).start(); .url is the /client/v4 base."""

    def __init__(self, account=None, zone=None, zone_name="example.test", token=None,
                 host="127.0.0.1", port=0, login_hold=2.0):
        self.state = State(account or uuid.uuid4().hex, zone or uuid.uuid4().hex, zone_name,
                           token or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
                           login_hold)
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state
        self.port = self.httpd.server_address[1]
        self.origin = "http://%s:%d" % (host, self.port)
        self.url = self.origin + "/client/v4"
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--account")
    ap.add_argument("--zone")
    ap.add_argument("--zone-name", default="example.test")
    ap.add_argument("--token")
    ap.add_argument("--login-hold", type=float, default=2.0)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    f = FakeAPI(a.account, a.zone, a.zone_name, a.token, host, int(port), a.login_hold)
    print("listening on %s:%d" % (host, f.port), flush=True)
    try:
        f.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
