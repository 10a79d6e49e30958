"""A gRPC origin for the tests (Debian python3-grpcio), over TLS as
cloudflared's http2Origin needs: raw-bytes methods, no generated stubs.

  /wr.Test/Echo   unary: b"echo:" + request; trailing metadata x-trailer: t1
  /wr.Test/Count  server streaming: the request is a decimal N; N messages
                  b"item-0" ... then trailing metadata x-count: N
  /wr.Test/Fail   unary: status NOT_FOUND "no such thing"
  /wr.Test/Big    server streaming: N messages of 64 KiB (byte i % 251 at
                  offset i of the stream), then x-count: N
  /wr.Test/Sum    client streaming: answers b"<messages> <bytes>"

Prints "grpc ready port=N" once listening on 127.0.0.1:N."""
import argparse
import sys
import time
from concurrent import futures

import grpc


def echo(request, context):
    context.set_trailing_metadata((("x-trailer", "t1"),))
    return b"echo:" + request


def count(request, context):
    n = int(request.decode() or "0")
    for i in range(n):
        yield b"item-%d" % i
    context.set_trailing_metadata((("x-count", str(n)),))


PATTERN = bytes(range(251)) * 263  # 66013 bytes: any 64 KiB window at offset < 251


def big(request, context):
    n, chunk, off = int(request.decode() or "0"), 65536, 0
    for _ in range(n):
        yield PATTERN[off % 251:off % 251 + chunk]
        off += chunk
    context.set_trailing_metadata((("x-count", str(n)),))


def total(requests, context):
    msgs = size = 0
    for r in requests:
        msgs += 1
        size += len(r)
    return b"%d %d" % (msgs, size)


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Big": grpc.unary_stream_rpc_method_handler(big),
        "Sum": grpc.stream_unary_rpc_method_handler(total),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("wr.Test", handlers),))
    creds = grpc.ssl_server_credentials(((open(a.key, "rb").read(), open(a.cert, "rb").read()),))
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    print(f"grpc ready port={port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
