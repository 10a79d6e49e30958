/* The connector's data-stream handler (protocol.md 4): for every stream the
 * edge opens on a registered QUIC connection it reads the 8-byte data
 * preamble and the ConnectRequest (a read-exactly loop: the bytes may come
 * in any split), matches the ingress rules (HttpHost without port, the path
 * of `dest`), and serves the request:
 *   http:// https:// unix: unix+tls:  HTTP/1.1 to the origin over net/conn
 *       (connectTimeout, tcpKeepAlive, caPool, noTLSVerify,
 *       originServerName, httpHostHeader, keep-alive pool bounded by
 *       keepAliveConnections / keepAliveTimeout), request body streamed
 *       from the QUIC stream, response head sent as ConnectResponse
 *       {HttpStatus, HttpHeader:*}, body streamed back, FIN;
 *   websocket type to an HTTP origin: Upgrade request, 101 answer, then a
 *       raw byte pipe both ways until either side ends;
 *   http_status:N  ConnectResponse{HttpStatus N}, no body;
 *   hello_world    a built-in page (200, text/html);
 *   other services (tcp/ssh/bastion/socks, type tcp without warp-routing):
 *       an error ConnectResponse naming what is not supported.
 * A stream that starts with the RPC signature instead is an RPC stream
 * (connector/rpc_server.h), served with the configured services.
 * Errors before the response: ConnectResponse{error = reason, metadata
 * null} then FIN (cloudflared 2023.7.3). After it: RESET_STREAM(0).
 * Unknown preamble / undecodable ConnectRequest: RESET_STREAM(0).
 *
 * Backpressure: QUIC receive credit is returned (wr_quic_stream_consume)
 * only once the origin socket took the bytes; origin reads stop while the
 * stream's QUIC send queue is full and resume on on_stream_writable. So a
 * 100 MB body needs about one flow-control window of memory.
 *
 * The supervisor owns the QUIC connections and forwards their stream events
 * for every stream except the control stream. Everything runs on one loop. */
#ifndef WR_CONNECTOR_PROXY_H
#define WR_CONNECTOR_PROXY_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "connector/ingress.h"
#include "connector/rpc_server.h"
#include "lib/encoding.h"
#include "net/quic.h"
#include "proto/connect.h"
#include "proto/httpmeta.h"

/* Counters the metrics server exports (cloudflared's names in comments). */
typedef struct wr_proxy_stats {
  uint64_t total_requests;      /* cloudflared_tunnel_total_requests */
  uint64_t concurrent_requests; /* cloudflared_tunnel_concurrent_requests_per_tunnel */
  uint64_t request_errors;      /* cloudflared_tunnel_request_errors */
  uint64_t responses_by_code[6];/* cloudflared_tunnel_response_by_code, by class: [1]=1xx..[5]=5xx, [0]=other */
  uint64_t tcp_active, tcp_total; /* websocket pipes count here too */
} wr_proxy_stats;

typedef struct wr_proxy wr_proxy;

typedef struct wr_proxy_config {
  uv_loop_t *loop;
  const wr_ingress *ingress; /* borrowed; must outlive the proxy (or be swapped) */
  wr_uuid connector_id;      /* Cf-Warp-Tag-Id */
  const char *version;       /* for the hello_world page; NULL: WR_VERSION */
  const wr_rpc_services *services; /* RPC streams (rpc_server.h); copied; NULL: none */
  /* --tag NAME=VALUE: every origin request gets Cf-Warp-Tag-NAME: VALUE
   * (before Cf-Warp-Tag-Id), as cloudflared's appendTagHeaders. Copied. */
  const char *const *tag_names;
  const char *const *tag_values;
  size_t ntags;
  /* A set of rules replaced by wr_proxy_set_ingress is no longer used by
   * any stream (called at once if none used it): the owner may free it.
   * NULL: the owner keeps track itself. */
  void (*ingress_unused)(void *user, const wr_ingress *ing);
  void *ingress_user;
  /* The management hostname (cloudflared's --management-hostname): its
   * requests go to the management service (proxy_mgmt.c: /ping,
   * /host_details, the /logs stream of connector/mgmt_logs.h) before any
   * ingress rule. NULL or "": no management service. Copied. */
  const char *management_hostname;
  const char *label; /* --label, for /host_details; NULL: the host name */
} wr_proxy_config;

int wr_proxy_new(const wr_proxy_config *cfg, wr_proxy **out);
/* Aborts every stream still open (without touching the QUIC connections,
 * which the caller frees) and frees. Origin connections and the pool's
 * timer close asynchronously and the last memory goes from their close
 * callbacks, so run the loop afterwards (as for any libuv handle) before
 * uv_loop_close(). */
void wr_proxy_free(wr_proxy *p);
/* Replaces the ingress rules for new streams. Streams already open keep
 * the rules that were current when they opened (and the rule they
 * matched); the old wr_ingress must stay alive until ingress_unused
 * reports it (or, without that callback, until the proxy is freed). */
void wr_proxy_set_ingress(wr_proxy *p, const wr_ingress *ing);
/* Replaces the RPC services (copied). */
void wr_proxy_set_services(wr_proxy *p, const wr_rpc_services *svc);
/* The services current (configuration updates over HTTP/2 use them too). */
const wr_rpc_services *wr_proxy_services(const wr_proxy *p);
/* The ingress new streams match (warp-routing included). */
const wr_ingress *wr_proxy_ingress(const wr_proxy *p);

/* A UDP session ended on the connector's side: tells the edge on a new RPC
 * stream of |qc| (rpc_server.h). Returns WR_OK (the call is under way) or
 * the error opening the stream (the connection is going: nothing to tell). */
int wr_proxy_unregister_udp(wr_proxy *p, wr_quic_conn *qc, const uint8_t *id,
                            const char *message);

/* QUIC events of edge-opened streams, forwarded by the supervisor with the
 * same arguments as wr_quic_callbacks. Return values as there. */
int wr_proxy_on_stream_open(wr_proxy *p, wr_quic_conn *c, int64_t sid);
int wr_proxy_on_stream_data(wr_proxy *p, wr_quic_conn *c, int64_t sid, const uint8_t *data,
                            size_t len, int fin, void *suser);
int wr_proxy_on_stream_reset(wr_proxy *p, wr_quic_conn *c, int64_t sid, uint64_t code,
                             void *suser);
void wr_proxy_on_stream_writable(wr_proxy *p, wr_quic_conn *c, int64_t sid, void *suser);
void wr_proxy_on_stream_close(wr_proxy *p, wr_quic_conn *c, int64_t sid, void *suser);
/* The QUIC connection |c| is gone (its on_close): every stream on it is
 * aborted (origin connections closed); no stream callback for |c| follows. */
void wr_proxy_on_conn_close(wr_proxy *p, wr_quic_conn *c);

/* --- streams of other transports (HTTP/2: connector/h2_transport.h) ------- */

/* The edge side of one stream on a transport other than QUIC. Each call
 * stands for the wr_quic_stream_* call of the QUIC path, with the same
 * contract; |t| is the transport's stream. */
typedef struct wr_edge_stream_ops {
  /* Queues bytes towards the edge (|fin|: after them, the end of our side).
   * Returns WR_OK (*accepted == len), WR_AGAIN (*accepted < len: the rest
   * waits for wr_proxy_stream_writable) or an error (the stream is gone). */
  int (*write)(void *t, const uint8_t *data, size_t len, int fin, size_t *accepted);
  /* Request bytes are taken: the edge may send that many more. */
  void (*consume)(void *t, size_t n);
  /* Abort our side (QUIC RESET_STREAM). */
  void (*reset)(void *t);
  /* We will not read what the edge still sends (QUIC STOP_SENDING). */
  void (*stop_sending)(void *t);
  /* The head of the answer, as the ConnectResponse the QUIC path would
   * send: an error (r->error non-empty) or HttpStatus + HttpHeader:*
   * metadata (none at all: the acknowledgement of a TCP stream). Returns
   * WR_OK or an error (nothing sent). */
  int (*respond)(void *t, const wr_connect_response *r);
  /* Response trailers from the origin (names and values valid during the
   * call), after the last body byte was written and before the FIN. Sent
   * after the body as cloudflared's HTTP/2 transport sends them (a
   * trailing HEADERS frame). NULL: the transport has no trailers (QUIC, as
   * cloudflared's): they are dropped. */
  void (*trailers)(void *t, const wr_http_header *hs, size_t n);
  /* The proxy let go of the stream on its own (wr_proxy_free): forget it;
   * no wr_proxy_stream_* call for it follows. */
  void (*forget)(void *t);
} wr_edge_stream_ops;

typedef struct pstream wr_proxy_stream;

/* A request on a stream of another transport, translated into the
 * ConnectRequest the QUIC path would have read (copied). |id| names the
 * stream in logs. The proxy serves it as a QUIC data stream; the answer
 * goes through |ops| on |t|. Returns the stream, or NULL when the proxy is
 * going (nothing was called). */
wr_proxy_stream *wr_proxy_stream_start(wr_proxy *p, const wr_edge_stream_ops *ops, void *t,
                                       int64_t id, const wr_connect_request *req);
/* Request body bytes and the end of the request (|fin|). */
void wr_proxy_stream_input(wr_proxy_stream *s, const uint8_t *data, size_t len, int fin);
/* The edge aborted the stream. */
void wr_proxy_stream_reset(wr_proxy_stream *s);
/* The transport takes bytes again after a WR_AGAIN. */
void wr_proxy_stream_writable(wr_proxy_stream *s);
/* The transport forgot the stream: no |ops| call follows; the proxy lets
 * go of it (its origin is closed). */
void wr_proxy_stream_gone(wr_proxy_stream *s);

/* Streams in flight (for the shutdown grace period). */
size_t wr_proxy_active(const wr_proxy *p);
const wr_proxy_stats *wr_proxy_get_stats(const wr_proxy *p);

#endif
