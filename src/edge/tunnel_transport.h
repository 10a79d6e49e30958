/* The seam between the tunnel server (registration, registry, data-stream
 * bookkeeping: edge/tunnel_server.h) and the transports a connector reaches
 * it over: QUIC (in tunnel_server.c, on net/quic.h) and HTTP/2 over TLS
 * (edge/tunnel_h2.h). A transport owns its connection and calls into the
 * server with the events below; the server drives the transport through a
 * wr_tunnel_transport table.
 *
 * Data streams keep QUIC's shape on both: the owner writes the 8-byte data
 * preamble + ConnectRequest + body, and reads preamble + ConnectResponse +
 * body (protocol.md 4.1). A transport that carries requests differently
 * (HTTP/2, protocol.md 7.3) translates at its edge, so visitors, private
 * TCP and the router never see which transport a connection uses.
 *
 * Everything runs on the loop thread. */
#ifndef WR_EDGE_TUNNEL_TRANSPORT_H
#define WR_EDGE_TUNNEL_TRANSPORT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "edge/tunnel_server.h"

/* One connector connection as the server sees it (opaque to transports). */
typedef struct wr_tunnel_conn wr_tunnel_conn;

/* Operations on the transport's connection |t| (the pointer given to
 * wr_tunnel_conn_new). Stream operations take the id the transport gave in
 * stream_open. */
typedef struct wr_tunnel_transport {
  const char *name; /* "quic", "http2": logs and metrics */
  /* The connection carries QUIC datagrams and RPC streams (UDP sessions,
   * ICMP): HTTP/2 has neither. */
  int datagrams;
  /* Control stream, edge -> connector RPC bytes; end: FIN. Writes of a
   * control message never block for long: WR_AGAIN is treated as abuse. */
  int (*control_write)(void *t, const uint8_t *data, size_t len);
  void (*control_end)(void *t);
  /* Close the connection (graceful where the transport has it). Events may
   * still arrive until the transport reports wr_tunnel_conn_gone. */
  void (*close)(void *t, const char *reason);
  /* Registration succeeded: drop the register-within deadline. */
  void (*registered)(void *t);
  /* The peer's address (never NULL; AF_UNSPEC if unknown). */
  const struct sockaddr *(*remote)(void *t);
  /* Opens a data stream for |s| (the transport hands |s| back in the
   * wr_tunnel_stream_* events); *sid names it in logs, *sh is the
   * transport's handle, passed back to the calls below. WR_OK, WR_AGAIN
   * (stream limit), WR_ERR_INVAL (closing), WR_ERR_NOMEM. */
  int (*stream_open)(void *t, wr_tunnel_stream *s, int64_t *sid, void **sh);
  /* As wr_quic_stream_write. */
  int (*stream_write)(void *t, int64_t sid, void *sh, const uint8_t *data, size_t len, int fin,
                      size_t *accepted);
  void (*stream_consume)(void *t, int64_t sid, void *sh, size_t n);
  size_t (*stream_queued)(void *t, int64_t sid, void *sh);
  /* Abort our sending side / stop the peer's, with |code|. */
  void (*stream_reset)(void *t, int64_t sid, void *sh, uint64_t code);
  void (*stream_stop)(void *t, int64_t sid, void *sh, uint64_t code);
  /* The server forgets the stream (its connection is going away): deliver
   * no more events for it. */
  void (*stream_forget)(void *t, int64_t sid, void *sh);
} wr_tunnel_transport;

/* A transport accepted a connection (handshake complete). Returns WR_OK
 * with *out, or WR_ERR_LIMIT when too many connections wait to register
 * (overall or from |t|'s source): the transport closes it then. */
int wr_tunnel_conn_new(wr_tunnel_server *ts, const wr_tunnel_transport *tr, void *t,
                       wr_tunnel_conn **out);
/* The connector's control stream opened / carried bytes / ended or was
 * reset. Returns WR_OK, or an error when the control stream cannot be
 * served (the transport closes the connection). */
int wr_tunnel_conn_control_open(wr_tunnel_conn *c);
void wr_tunnel_conn_control_data(wr_tunnel_conn *c, const uint8_t *data, size_t len, int fin);
void wr_tunnel_conn_control_reset(wr_tunnel_conn *c);
/* The connection is gone (|why|: "connection closed", "connection idle
 * timeout", ...). Open streams hear on_close; |c| is freed. With
 * |alive| the transport still exists (stream_forget is called for each
 * stream). */
void wr_tunnel_conn_gone(wr_tunnel_conn *c, const char *why, int alive);
/* How long a connection may stay unregistered (ms). */
uint64_t wr_tunnel_server_register_timeout(const wr_tunnel_server *ts);

/* Data-stream events, for the stream |s| given to stream_open. */
void wr_tunnel_stream_on_data(wr_tunnel_stream *s, const uint8_t *data, size_t len, int fin);
/* Response trailers of the stream (see on_trailers in tunnel_server.h):
 * before the wr_tunnel_stream_on_data that carries fin. */
void wr_tunnel_stream_on_trailers(wr_tunnel_stream *s, const wr_http_header *hs, size_t n);
void wr_tunnel_stream_on_reset(wr_tunnel_stream *s, uint64_t code);
void wr_tunnel_stream_on_writable(wr_tunnel_stream *s);
/* The transport is done with the stream: the owner hears on_close and |s|
 * is freed. */
void wr_tunnel_stream_on_close(wr_tunnel_stream *s);

#endif
