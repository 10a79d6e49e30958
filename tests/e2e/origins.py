"""Origin servers for Warren's tunnel tests, and the byte patterns and
WebSocket framing the tests share with them. Standard library only.

Run as a program it serves one HTTP/1.1 application on any of:
    --http HOST:PORT     plain HTTP (PORT 0: the kernel picks)
    --https HOST:PORT    HTTPS with --cert/--key (records the SNI it was sent)
    --unix PATH          plain HTTP on a unix socket
and prints one line "origin ready http=PORT https=PORT unix=PATH" once all
listen. Every line it prints is flushed, so a test can follow its log.

Paths (any method unless said otherwise; the request body is always read):
    /echo...             200 JSON {method, target, version, headers: [[name, value], ...],
                         length, sha256, chunked, listener, sni, peer} describing the
                         request as received (length/sha256 of the de-chunked body)
    /bytes?n=N&seed=S    N pattern bytes (see pattern()) with Content-Length
    /chunked?n=N&seed=S  N pattern bytes, Transfer-Encoding: chunked, chunks of
                         assorted sizes, no Content-Length
    /slow?delay=S&id=X   prints "slow start X", waits S seconds, answers "slow done X"
    /die?n=N&after=M&mode=length|chunked&close=fin|rst
                         announces N bytes (Content-Length, or chunked), sends M of
                         them, waits a moment, then drops the connection
    /ws                  WebSocket (RFC 6455) echo: every message comes back as one
                         frame of the same opcode; ping -> pong; close -> close
    anything else        404 "origin: no such path"
"""
import argparse
import asyncio
import base64
import functools
import hashlib
import json
import os
import random
import socket
import ssl
import struct
import sys
import urllib.parse

# --- shared helpers ---------------------------------------------------------

BLOCK = 1 << 20


@functools.lru_cache(maxsize=8)
def _base_block(seed):
    return random.Random(seed).randbytes(BLOCK)


def pattern(n, seed=0, piece=BLOCK):
    """Yields n deterministic bytes in pieces of at most |piece| bytes. Every
    1 MiB block starts with its index, so reordered or repeated blocks change
    the checksum."""
    base = _base_block(seed)
    i = 0
    off = 0
    while off < n:
        block = struct.pack(">Q", i) + base[8:]
        take = min(BLOCK, n - off)
        block = block[:take]
        for j in range(0, take, piece):
            yield block[j:j + piece]
        off += take
        i += 1


def pattern_bytes(n, seed=0):
    return b"".join(pattern(n, seed))


@functools.lru_cache(maxsize=32)
def pattern_sha256(n, seed=0):
    h = hashlib.sha256()
    for p in pattern(n, seed):
        h.update(p)
    return h.hexdigest()


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (str or bytes)."""
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key.strip() + WS_GUID).digest()).decode()


def ws_mask(data, mask):
    """XORs |data| with the 4-byte |mask| (fast for megabytes)."""
    n = len(data)
    if n == 0:
        return b""
    reps = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big")


def ws_frame(opcode, payload, mask=None, fin=True):
    """One WebSocket frame; |mask| is 4 bytes (client frames) or None."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is not None:
        return head + mask + ws_mask(payload, mask)
    return head + payload


def ws_parse_head(first2):
    """(fin, opcode, masked, len_code) from the first two bytes of a frame."""
    b0, b1 = first2[0], first2[1]
    return bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F


def ws_upgrade_request(host, key, path="/ws"):
    """The bytes of a client's WebSocket upgrade request."""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def ws_send(s, op, payload, fin=True):
    """Sends one client (masked) frame on the blocking socket s."""
    s.sendall(ws_frame(op, payload, mask=os.urandom(4), fin=fin))


def recv_exact(s, n):
    """Exactly n bytes from the blocking socket s; EOFError if it closes first."""
    buf = bytearray()
    while len(buf) < n:
        got = s.recv(min(n - len(buf), 1 << 20))
        if not got:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += got
    return bytes(buf)


def ws_recv(s):
    """(fin, opcode, payload) of the next server frame on the blocking socket
    s; ValueError if the frame is masked (a server must not mask)."""
    fin, op, masked, n = ws_parse_head(recv_exact(s, 2))
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    if masked:
        raise ValueError("a server frame arrived masked")
    return fin, op, recv_exact(s, n)


def ws_close_handshake(s):
    """Sends a Close (1000) on the blocking socket s; the same Close must
    come back, then EOF within 10 s (AssertionError otherwise)."""
    ws_send(s, 0x8, struct.pack("!H", 1000))
    assert ws_recv(s) == (True, 0x8, struct.pack("!H", 1000))
    s.settimeout(10)
    assert s.recv(1) == b""


# --- the origin server ------------------------------------------------------

MAX_HEAD = 64 * 1024
CHUNK_SIZES = [1, 7, 100, 4096, 65536, 1000000, 3, 16384]


class BadRequest(Exception):
    pass


def log(*a):
    print(*a, flush=True)


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) as received

    def get(self, name, default=None):
        name = name.lower()
        vals = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(vals) if vals else default

    @property
    def path(self):
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self):
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.target).query))

    def tokens(self, name):
        v = self.get(name, "")
        return [t.strip().lower() for t in v.split(",") if t.strip()]


async def read_head(reader):
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise BadRequest("connection closed inside the request head")
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    while lines and lines[0] == "":  # tolerate CRLF between requests
        lines.pop(0)
    if not lines:
        return None
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest("bad request line %r" % lines[0])
    headers = []
    for line in lines[1:]:
        if ":" not in line or line[0] in " \t":
            raise BadRequest("bad header line %r" % line)
        k, v = line.split(":", 1)
        headers.append((k.strip(), v.strip()))
    return Request(method, target, version, headers)


async def body_chunks(req, reader):
    """Yields the request body (de-chunked)."""
    if "chunked" in req.tokens("transfer-encoding"):
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return
            async for data in _read_n(reader, size):
                yield data
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("chunk not followed by CRLF")
    else:
        async for data in _read_n(reader, int(req.get("content-length", "0") or 0)):
            yield data


async def _read_n(reader, left):
    """Yields exactly |left| bytes from reader in pieces of at most BLOCK."""
    while left:
        data = await reader.read(min(left, BLOCK))
        if not data:
            raise asyncio.IncompleteReadError(b"", left)
        left -= len(data)
        yield data


class Origin:
    def __init__(self):
        self.sni = {}  # id(ssl object) -> server name sent by the client

    def sni_callback(self, sslobj, name, ctx):
        self.sni[id(sslobj)] = name
        return None

    async def serve(self, reader, writer, listener):
        sslobj = writer.get_extra_info("ssl_object")
        peer = writer.get_extra_info("peername")
        info = {
            "listener": listener,
            "sni": self.sni.get(id(sslobj)) if sslobj is not None else None,
            "peer": list(peer) if isinstance(peer, tuple) else peer,
        }
        try:
            while True:
                try:
                    req = await read_head(reader)
                except BadRequest as e:
                    await self.respond(writer, 400, str(e).encode(), close=True)
                    return
                if req is None:
                    return
                keep = await self.dispatch(req, reader, writer, info)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, BadRequest, ValueError) as e:
            log(f"origin: connection ended: {type(e).__name__}: {e}")
        finally:
            if sslobj is not None:
                self.sni.pop(id(sslobj), None)
            try:
                writer.close()
            except Exception:
                pass

    async def respond(self, writer, status, body=b"", ctype="text/plain", headers=(),
                      close=False, head_only=False):
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if close:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(body)
        await writer.drain()

    async def dispatch(self, req, reader, writer, info):
        close = "close" in req.tokens("connection") or req.version == "HTTP/1.0"
        head = req.method == "HEAD"
        path, q = req.path, req.query
        if path == "/ws" and "websocket" in req.tokens("upgrade"):
            await self.websocket(req, reader, writer)
            return False
        h = hashlib.sha256()
        length = 0
        async for data in body_chunks(req, reader):
            h.update(data)
            length += len(data)
        if path.startswith("/echo"):
            body = json.dumps({
                "method": req.method, "target": req.target, "version": req.version,
                "headers": [[k, v] for k, v in req.headers], "length": length,
                "sha256": h.hexdigest(), "chunked": "chunked" in req.tokens("transfer-encoding"),
                **info,
            }).encode()
            await self.respond(writer, 200, body, "application/json", close=close, head_only=head)
        elif path == "/bytes":
            n, seed = int(q.get("n", "0")), int(q.get("seed", "0"))
            lines = ["HTTP/1.1 200 OK", "Content-Type: application/octet-stream",
                     f"Content-Length: {n}"] + (["Connection: close"] if close else [])
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            if not head:
                for piece in pattern(n, seed, 256 * 1024):
                    writer.write(piece)
                    await writer.drain()
            await writer.drain()
        elif path == "/chunked":
            n, seed = int(q.get("n", "0")), int(q.get("seed", "0"))
            lines = ["HTTP/1.1 200 OK", "Content-Type: application/octet-stream",
                     "Transfer-Encoding: chunked"] + (["Connection: close"] if close else [])
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            if not head:
                data = pattern_bytes(n, seed)
                off, k = 0, 0
                while off < n:
                    size = min(CHUNK_SIZES[k % len(CHUNK_SIZES)], n - off)
                    writer.write(b"%x\r\n" % size + data[off:off + size] + b"\r\n")
                    await writer.drain()
                    off += size
                    k += 1
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif path == "/slow":
            delay, ident = float(q.get("delay", "3")), q.get("id", "")
            log(f"slow start {ident}")
            await asyncio.sleep(delay)
            await self.respond(writer, 200, f"slow done {ident}".encode(), close=close,
                               head_only=head)
            log(f"slow answered {ident}")
        elif path == "/die":
            await self.die(req, writer, q)
            return False
        else:
            await self.respond(writer, 404, b"origin: no such path", close=close, head_only=head)
        return not close

    async def die(self, req, writer, q):
        n, after = int(q.get("n", "1000000")), int(q.get("after", "300000"))
        chunked = q.get("mode", "length") == "chunked"
        data = pattern_bytes(after)
        if chunked:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for off in range(0, after, 65536):
                piece = data[off:off + 65536]
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % n)
            writer.write(data)
        await writer.drain()
        log(f"die: sent {after} of {n} bytes ({'chunked' if chunked else 'length'}), dropping")
        await asyncio.sleep(0.3)
        sock = writer.get_extra_info("socket")
        if q.get("close", "fin") == "rst" and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def websocket(self, req, reader, writer):
        key = req.get("sec-websocket-key")
        if (not key or req.get("sec-websocket-version") != "13"
                or "upgrade" not in req.tokens("connection")):
            await self.respond(writer, 400, b"origin: bad websocket upgrade", close=True)
            return
        log(f"websocket: upgrade with key {key}")
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                      % ws_accept(key)).encode())
        await writer.drain()
        msg_op, parts = None, []
        while True:
            try:
                first = await reader.readexactly(2)
            except asyncio.IncompleteReadError:
                log("websocket: peer closed without a close frame")
                return
            fin, op, masked, n = ws_parse_head(first)
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            if not masked:
                log("websocket: unmasked client frame; closing with 1002")
                writer.write(ws_frame(0x8, struct.pack("!H", 1002) + b"unmasked frame"))
                await writer.drain()
                return
            mask = await reader.readexactly(4)
            payload = ws_mask(await reader.readexactly(n), mask)
            if op == 0x8:
                writer.write(ws_frame(0x8, payload[:2]))
                await writer.drain()
                log("websocket: closed")
                return
            if op == 0x9:
                writer.write(ws_frame(0xA, payload))
                await writer.drain()
                continue
            if op == 0xA:
                continue
            if op in (0x1, 0x2):
                msg_op, parts = op, [payload]
            elif op == 0x0 and msg_op is not None:
                parts.append(payload)
            else:
                writer.write(ws_frame(0x8, struct.pack("!H", 1002)))
                await writer.drain()
                return
            if fin:
                writer.write(ws_frame(msg_op, b"".join(parts)))
                await writer.drain()
                msg_op, parts = None, []


async def amain(args):
    origin = Origin()
    limit = MAX_HEAD + 16
    said = []
    servers = []
    if args.http:
        host, port = args.http.rsplit(":", 1)
        s = await asyncio.start_server(lambda r, w: origin.serve(r, w, "http"), host, int(port),
                                       limit=limit, backlog=4096)
        servers.append(s)
        said.append("http=%d" % s.sockets[0].getsockname()[1])
    if args.https:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.sni_callback = origin.sni_callback
        host, port = args.https.rsplit(":", 1)
        s = await asyncio.start_server(lambda r, w: origin.serve(r, w, "https"), host, int(port),
                                       ssl=ctx, limit=limit, backlog=4096)
        servers.append(s)
        said.append("https=%d" % s.sockets[0].getsockname()[1])
    if args.unix:
        try:
            os.unlink(args.unix)
        except FileNotFoundError:
            pass
        s = await asyncio.start_unix_server(lambda r, w: origin.serve(r, w, "unix"), args.unix,
                                            limit=limit, backlog=4096)
        servers.append(s)
        said.append("unix=%s" % args.unix)
    log("origin ready " + " ".join(said))
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--http")
    ap.add_argument("--https")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--unix")
    args = ap.parse_args()
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
