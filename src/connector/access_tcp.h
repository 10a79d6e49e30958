/* The client side of TCP over WebSocket (`warren access tcp`, as
 * `cloudflared access tcp` with --url): a local TCP listener; every
 * connection accepted on it gets its own WebSocket to the application's
 * hostname through the edge, and bytes go both ways as binary frames.
 *
 * On the wire this is what cloudflared's carrier package sends: GET with
 * Upgrade: websocket to the hostname (Host = the hostname), the Access
 * service-token headers Cf-Access-Client-Id / Cf-Access-Client-Secret when
 * given, Cf-Access-Jump-Destination for --destination (bastion origins),
 * masked binary frames out; the server's Sec-WebSocket-Accept is checked.
 * One addition: a local EOF is sent as a Close frame and a Close frame from
 * the other end becomes shutdown(SHUT_WR) on the local connection, so a
 * half-closed connection still gets its answer (the connector's stream
 * origins do the same; with cloudflared as the connector the first Close
 * ends both directions, as it does for cloudflared's own client).
 *
 * Single-threaded on the caller's libuv loop. Out-of-memory aborts. */
#ifndef WR_CONNECTOR_ACCESS_TCP_H
#define WR_CONNECTOR_ACCESS_TCP_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "connector/edge_dial.h"

typedef struct wr_access_tcp wr_access_tcp;

typedef struct wr_access_tcp_config {
  /* The application is |dial.hostname|: "host", "host:port" or a URL
   * "https://host[:port]/path" ("http://" for a plain-HTTP edge). Host and
   * path go in the request. |dial.edge_url| is where to connect instead of
   * the hostname's address (the request still names the hostname). */
  wr_edge_dial dial;
  /* Where to listen: "127.0.0.1:PORT" (also "localhost:PORT", "[::1]:PORT"). */
  const char *listen;
  const char *token_id;     /* Cf-Access-Client-Id, or NULL */
  const char *token_secret; /* Cf-Access-Client-Secret, or NULL */
  const char *destination;  /* Cf-Access-Jump-Destination, or NULL */
  const char *const *headers; /* extra "Name: value" request fields */
  size_t n_headers;
} wr_access_tcp_config;

typedef struct wr_access_tcp_stats {
  uint64_t accepted;   /* local connections accepted */
  uint64_t upgraded;   /* WebSockets that got their 101 */
  uint64_t failed;     /* WebSockets that did not */
  size_t active;       /* local connections open now */
} wr_access_tcp_stats;

/* Validates |cfg| (strings are copied) and starts listening. Returns WR_OK,
 * WR_ERR_INVAL (bad hostname/URL/listen address; |err| says which),
 * WR_ERR_CRYPTO (TLS trust anchors) or WR_ERR_IO (cannot listen). */
int wr_access_tcp_start(const wr_access_tcp_config *cfg, wr_access_tcp **out, char *err,
                        size_t errlen);
/* The port actually bound (useful with port 0). */
uint16_t wr_access_tcp_port(const wr_access_tcp *a);
const wr_access_tcp_stats *wr_access_tcp_get_stats(const wr_access_tcp *a);
/* Stops listening and closes every connection; the object is freed once
 * libuv has closed its handles (run the loop). NULL is a no-op. */
void wr_access_tcp_free(wr_access_tcp *a);

#endif
