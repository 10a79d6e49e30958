/* Connectors over HTTP/2 (protocol.md 1.1, 7): cloudflared's
 * `--protocol http2` dials TCP to the same port as QUIC, does TLS (SNI
 * h2.cftunnel.com, no ALPN; the certificate is the QUIC one) and runs an
 * HTTP/2 *server* on it. The edge is the HTTP/2 client:
 *   - after the handshake it sends the preface and SETTINGS and opens the
 *     control stream: a request with Cf-Cloudflared-Proxy-Connection-
 *     Upgrade: control-stream whose request body carries the edge's RPC
 *     frames and whose response body the connector's. Registration and
 *     everything after it is the tunnel server's (edge/tunnel_server.h),
 *     reached through edge/tunnel_transport.h like QUIC;
 *   - every data stream the tunnel server opens on such a connection is one
 *     HTTP/2 request, translated from and to the QUIC stream shape by
 *     edge/tunnel_h2_msg.h (HTTP, WebSocket, raw TCP);
 *   - it carries no datagrams and no RPC streams: UDP and ICMP of private
 *     networks need a QUIC connection (the router skips HTTP/2 ones and
 *     answers unreachable when a tunnel has only those).
 * Flow control: each stream's receive window (4 MiB) is returned as the
 * owner consumes (wr_tunnel_stream_consume); the connection window is
 * returned on receipt, so one slow visitor never stalls the others. A
 * connection that has not registered within the tunnel server's
 * registration timeout (counted from the TCP accept, so it covers the TLS
 * handshake too) is closed. Shutdown: GOAWAY, then the TLS close.
 *
 * Everything runs on the loop thread. */
#ifndef WR_EDGE_TUNNEL_H2_H
#define WR_EDGE_TUNNEL_H2_H
#include <sys/socket.h>

#include <uv.h>

#include "edge/tunnel_server.h"

typedef struct wr_tunnel_h2 wr_tunnel_h2;

/* At most this many TCP connections may be open before registering
 * (handshaking or waiting); more are closed at once. */
#define WR_TUNNEL_H2_MAX_PENDING 1000

/* Listens on TCP |addr| with the tunnel certificate |cert_file| /
 * |key_file|. Returns WR_OK, WR_ERR_CRYPTO (|err| says why), WR_ERR_IO
 * (cannot bind/listen: |err|), WR_ERR_NOMEM. */
int wr_tunnel_h2_listen(wr_tunnel_server *ts, uv_loop_t *loop, const char *cert_file,
                        const char *key_file, const struct sockaddr *addr, wr_tunnel_h2 **out,
                        char *err, size_t errlen);
/* The bound port (host order), for logs. */
int wr_tunnel_h2_port(const wr_tunnel_h2 *h);
/* Stops listening and drops every connection (the tunnel server hears they
 * are gone). Handles close on later loop iterations: run the loop after. */
void wr_tunnel_h2_free(wr_tunnel_h2 *h);

#endif
