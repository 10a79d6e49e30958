/* The edge side of connector connections (protocol.md 0.1, 3): on every
 * accepted QUIC connection the client's bidi stream 0 is the control stream,
 * served by an RPC session whose bootstrap capability is a
 * RegistrationServer:
 *   registerConnection  checks accountTag + tunnelSecret (constant time) +
 *                       tunnelId against the store; refusals are a
 *                       ConnectionResponse.error with a readable cause and
 *                       shouldRetry = false; success is ConnectionDetails
 *                       (fresh connection uuid, the configured location,
 *                       tunnelIsRemotelyManaged from the tunnel), a
 *                       wr_store_conn_open and an audit row "Registered".
 *                       The same connector (ClientInfo.clientId) registering
 *                       the connIndex of one of its live connections again
 *                       (it reconnected after a network blip) replaces that
 *                       connection: the old one is unregistered ("replaced
 *                       by a new registration") and its QUIC connection
 *                       closed, instead of an EDUPCONN refusal.
 *   unregisterConnection wr_store_conn_close + audit "Unregistered"; the
 *                       connection stops being routable.
 *   updateLocalConfiguration  logged (the store has no config table yet).
 * Losing the QUIC connection (or the control stream ending) closes a
 * still-registered connection the same way.
 *
 * Limits (checked at registration, refusals carry a readable cause): at
 * most max_connectors connectors (distinct ClientInfo.clientId) per tunnel,
 * default 25, refused with shouldRetry = true (a restarted connector
 * gets in once the edge drops its old connections); and at most
 * max_conns_per_connector connections per connector, default 4 (a fifth
 * connIndex is refused for good). With several edges on one store, the
 * counts include the live connections other edges recorded (those of
 * edges that stopped beating expire with them). A deleted tunnel's registrations are
 * refused; its live connections are closed by
 * wr_tunnel_server_close_tunnel (the API's delete calls it) or, for
 * deletions made by another process (`warren-edge tunnel delete`), by the
 * sweeper (wr_tunnel_server_watch) within one interval.
 *
 * The server keeps a registry of live, registered connections per tunnel
 * for routing visitors. Everything runs on the libuv loop thread, including
 * the (synchronous) store calls. */
#ifndef WR_EDGE_TUNNEL_SERVER_H
#define WR_EDGE_TUNNEL_SERVER_H
#include <stddef.h>
#include <stdint.h>

#include "edge/store.h"
#include "net/quic.h"
#include "proto/httpmeta.h"

#define WR_TUNNEL_SERVER_LOCATION_DEFAULT "LOCAL"
#define WR_TUNNEL_SERVER_ACTOR_DEFAULT "edge"
/* Audit actions written for connection registration. */
#define WR_TUNNEL_SERVER_AUDIT_REGISTERED "Registered"
#define WR_TUNNEL_SERVER_AUDIT_UNREGISTERED "Unregistered"

typedef struct wr_tunnel_server wr_tunnel_server;

typedef struct wr_tunnel_server_config {
  wr_store *store;       /* required; used on the loop thread */
  /* The store thread (edge/store_async.h): a connector's registration
   * (the tunnel's record read, the credentials checked, the connection's
   * row and audit row written) and the end of a connection (row closed,
   * audit row) run there, and registerConnection is answered once that is
   * done, with the same answers. NULL: those store calls run on the loop
   * thread, the answer at once. */
  struct wr_store_async *store_async;
  const char *location;  /* ConnectionDetails.locationName; default "LOCAL" */
  const char *actor;     /* audit actor; default "edge" */
  /* On a store shared by several edges (|edge_id| set) both limits count
   * the live connections of every edge, in the transaction that records
   * the new connection. warren-edge takes them from the test-only
   * environment variables WARREN_TEST_MAX_CONNECTORS and
   * WARREN_TEST_MAX_CONNS_PER_CONNECTOR (unset: the defaults). */
  unsigned max_connectors;          /* per tunnel; 0: WR_TUNNEL_SERVER_MAX_CONNECTORS */
  unsigned max_conns_per_connector; /* 0: WR_TUNNEL_SERVER_MAX_CONNS_PER_CONNECTOR */
  /* QUIC has no client authentication: anyone can complete a handshake and
   * then keep the connection alive with PINGs without ever registering.
   * Such connections are closed |register_timeout_ms| after the handshake
   * (0: WR_TUNNEL_SERVER_REGISTER_TIMEOUT_MS), and at most
   * |max_unregistered| of them (per source address, IPv6 per /64:
   * |max_unregistered_per_source|) may wait at once; more are closed at
   * once. 0 takes the defaults below. */
  uint64_t register_timeout_ms;
  unsigned max_unregistered;
  unsigned max_unregistered_per_source;
  /* The edge's id in a store shared by several edges (edge/cluster.h):
   * written on each connection's row. NULL or "": not recorded. */
  const char *edge_id;
} wr_tunnel_server_config;

/* cloudflared registers within milliseconds of the handshake; 15 s leaves
 * room for a slow store on either side. */
#define WR_TUNNEL_SERVER_REGISTER_TIMEOUT_MS 15000
#define WR_TUNNEL_SERVER_MAX_UNREGISTERED 1000
/* A connector opens 4 connections at once; 32 lets 8 restart together
 * behind one NAT. */
#define WR_TUNNEL_SERVER_MAX_UNREGISTERED_PER_SOURCE 32

#define WR_TUNNEL_SERVER_MAX_CONNECTORS 25
#define WR_TUNNEL_SERVER_MAX_CONNS_PER_CONNECTOR 4
/* How often the sweeper looks for deleted tunnels by default (ms). */
#define WR_TUNNEL_SERVER_SWEEP_MS 10000

/* What the registry tells about one live registered connection. */
typedef struct wr_tunnel_conn_info {
  char conn_id[WR_STORE_UUID_LEN + 1];
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char client_id[WR_STORE_UUID_LEN + 1];
  unsigned conn_index;
  wr_quic_conn *quic;    /* QUIC datagrams; NULL on a connection without
                          * datagrams (HTTP/2: no UDP, no ICMP) */
  const char *protocol;  /* "quic" or "http2" (static) */
  /* The connector announced support_datagram_v3_2 at registration: its
   * UDP and ICMP datagrams are version 3 (protocol.md 6.6), else 2. */
  int datagram_v3;
} wr_tunnel_conn_info;

/* Returns WR_OK, WR_ERR_INVAL (no store) or WR_ERR_NOMEM. Strings are copied. */
int wr_tunnel_server_new(const wr_tunnel_server_config *cfg, wr_tunnel_server **out);
/* Closes (in the store) every still-registered connection and frees the
 * server. Call wr_quic_endpoint_free() on the endpoint first (it delivers no
 * more callbacks after that); the server does not touch the QUIC
 * connections here. */
void wr_tunnel_server_free(wr_tunnel_server *ts);

/* For wr_quic_endpoint_server(loop, tls, cfg, addr,
 * wr_tunnel_server_quic_callbacks(), wr_tunnel_server_on_accept, ts, &ep).
 * The endpoint hands a connection over (on_accept) only once its handshake
 * completed: the server never sees, and never allocates for, half-open
 * connections. */
const wr_quic_callbacks *wr_tunnel_server_quic_callbacks(void);
void wr_tunnel_server_on_accept(wr_quic_endpoint *ep, wr_quic_conn *c, void *ts);
/* Streams a connector may have open towards the edge at once (it uses one,
 * the control stream), unless cfg->max_streams_bidi says otherwise. */
#define WR_TUNNEL_SERVER_MAX_PEER_STREAMS 4
/* The same in one call, with the connector stream limit above. |cfg| also
 * carries the handshake-flood limits (quic.h). Returns what
 * wr_quic_endpoint_server returns. */
int wr_tunnel_server_listen(wr_tunnel_server *ts, uv_loop_t *loop, wr_quic_tls *tls,
                            const wr_quic_config *cfg, const struct sockaddr *addr,
                            wr_quic_endpoint **out);

/* Registry: number of live registered connections of |tunnel_id| (any case;
 * NULL: all tunnels), and the |i|th of them (oldest first). Returns WR_OK
 * or WR_ERR_NOTFOUND. */
size_t wr_tunnel_server_count(const wr_tunnel_server *ts, const char *tunnel_id);
int wr_tunnel_server_get(const wr_tunnel_server *ts, const char *tunnel_id, size_t i,
                         wr_tunnel_conn_info *out);

/* Takes the live connections of |tunnel_id| (only those of connector
 * |client_id| when it is not NULL) out of service: each is unregistered
 * (store closed, audit "Unregistered" with |reason|) and its QUIC
 * connection closed with application code 0 (the CONNECTION_CLOSE goes out
 * on a later loop iteration). A connector of a live tunnel reconnects; one
 * of a deleted tunnel is refused. Returns how many were closed. */
size_t wr_tunnel_server_close_tunnel(wr_tunnel_server *ts, const char *tunnel_id,
                                     const char *client_id, const char *reason);
/* Closes every registered connection (QUIC: CONNECTION_CLOSE code 0;
 * HTTP/2: GOAWAY, then the TLS connection), without unregistering them
 * here: the edge is going away and the connectors reconnect elsewhere.
 * Returns how many. */
size_t wr_tunnel_server_close_all(wr_tunnel_server *ts, const char *reason);
/* From now on the store calls of registrations and unregistrations run on
 * the loop thread (at shutdown, before the store thread stops: what it
 * had not run yet would be lost). */
void wr_tunnel_server_store_on_loop(wr_tunnel_server *ts);
/* Closes the connections of every tunnel the store says was deleted since
 * the previous sweep (a minute of overlap; the first sweep looks back to a
 * minute before the server was made). Returns how many were closed. */
size_t wr_tunnel_server_sweep(wr_tunnel_server *ts);
/* Runs wr_tunnel_server_sweep every |interval_ms| (0: the default) on
 * |loop|. The timer does not keep the loop alive. Stop it with
 * wr_tunnel_server_unwatch before the final uv_run that drains closing
 * handles (wr_tunnel_server_free calls it too, but then that last run must
 * follow). Returns WR_OK or WR_ERR_INVAL (already watching). */
int wr_tunnel_server_watch(wr_tunnel_server *ts, uv_loop_t *loop, uint64_t interval_ms);
void wr_tunnel_server_unwatch(wr_tunnel_server *ts);


/* ---- data streams towards a connector ------------------------------------ */

/* Events of a stream the edge opened. |user| is the owner's pointer. */
typedef struct wr_tunnel_stream_callbacks {
  /* Bytes from the connector, in order; |fin| marks its end. Receive credit
   * is NOT returned automatically: call wr_tunnel_stream_consume() once the
   * bytes were passed on (that is the backpressure towards the connector).
   * A negative return is only logged: one request's failure never closes
   * the connector connection (abandon the stream instead). */
  int (*on_data)(void *user, const uint8_t *data, size_t len, int fin);
  /* The send queue drained after a WR_AGAIN from wr_tunnel_stream_write. */
  void (*on_writable)(void *user);
  /* The connector reset its sending side (RESET_STREAM |code|). */
  void (*on_reset)(void *user, uint64_t code);
  /* The stream is gone: closed normally, or its connection died. Last
   * callback; the handle is freed right after it returns. */
  void (*on_close)(void *user);
  /* Response trailers (HTTP/2 connectors: cloudflared's trailing HEADERS
   * frame, docs/grpc.md; QUIC connectors send none). Called at most once,
   * after the last on_data with body bytes and before the on_data that
   * carries |fin|. Names (lower case, as HTTP/2 carries them) and values
   * are valid during the call only; the transport bounded them like a
   * response head but did not otherwise filter them: a visitor front
   * drops what its protocol must not carry (framing, hop-by-hop fields).
   * May be NULL: trailers are dropped. This is where every visitor front
   * (HTTP/1.1 chunked trailer section, HTTP/2 and HTTP/3 trailing HEADERS)
   * takes them from. */
  void (*on_trailers)(void *user, const wr_http_header *hs, size_t n);
} wr_tunnel_stream_callbacks;

typedef struct wr_tunnel_stream wr_tunnel_stream;

/* Opens a bidi stream on one live registered connection of |tunnel_id|:
 * the connection with the fewest open data streams (ties: round robin).
 * Returns WR_OK, WR_ERR_NOTFOUND (the tunnel has no live connection),
 * WR_AGAIN (every connection is at its stream limit) or WR_ERR_NOMEM. */
int wr_tunnel_server_open_stream(wr_tunnel_server *ts, const char *tunnel_id,
                                 const wr_tunnel_stream_callbacks *cbs, void *user,
                                 wr_tunnel_stream **out);
/* As wr_quic_stream_write on the stream. */
int wr_tunnel_stream_write(wr_tunnel_stream *s, const uint8_t *data, size_t len, int fin,
                           size_t *accepted);
/* Returns |n| bytes of receive credit. */
void wr_tunnel_stream_consume(wr_tunnel_stream *s, size_t n);
/* Bytes written and not yet acknowledged by the connector. */
size_t wr_tunnel_stream_queued(const wr_tunnel_stream *s);
/* The owner is done with the stream: with |code| >= 0 both directions are
 * aborted (RESET_STREAM + STOP_SENDING with that code) unless they already
 * ended. With |code| < 0 it ends normally: FIN if the owner did not send
 * one (RESET_STREAM 0 if the connector stopped our sending side), and
 * STOP_SENDING 0 if the connector's side has not ended (what cloudflared
 * does itself once a response is complete). No callback reaches the owner
 * after this, also when called from inside one; the handle is freed when
 * QUIC closes the stream. */
void wr_tunnel_stream_abandon(wr_tunnel_stream *s, int64_t code);
/* The connection the stream runs on, for logs. */
const char *wr_tunnel_stream_conn_id(const wr_tunnel_stream *s);
int64_t wr_tunnel_stream_id(const wr_tunnel_stream *s);

/* ---- forwarding to other edges (edge/cluster.h, edge/peer.h) ------------- */

/* Where streams of a tunnel with no live connection here go: another edge
 * that has one. Both hooks run on the loop thread. */
typedef struct wr_tunnel_forwarder {
  /* 1 if another edge is known to hold a live connection of |tunnel_id|. */
  int (*reachable)(void *user, const char *tunnel_id);
  /* Opens a stream of |tunnel_id| through such an edge; the result as
   * wr_tunnel_server_open_stream's. */
  int (*open_stream)(void *user, const char *tunnel_id, const wr_tunnel_stream_callbacks *cbs,
                     void *cb_user, wr_tunnel_stream **out);
} wr_tunnel_forwarder;
/* Sets (NULL: removes) the forwarder; |fw| is borrowed. From then on
 * wr_tunnel_server_open_stream forwards when the tunnel has no live
 * connection here. */
void wr_tunnel_server_set_forwarder(wr_tunnel_server *ts, const wr_tunnel_forwarder *fw,
                                    void *user);
/* Live connections here, or 1 when there are none but the forwarder
 * knows an edge that has one: whether a stream of |tunnel_id| can be
 * opened at all. */
size_t wr_tunnel_server_reachable(const wr_tunnel_server *ts, const char *tunnel_id);
/* wr_tunnel_server_open_stream on this edge's own connections only:
 * streams forwarded to this edge are never forwarded again. */
int wr_tunnel_server_open_stream_local(wr_tunnel_server *ts, const char *tunnel_id,
                                       const wr_tunnel_stream_callbacks *cbs, void *user,
                                       wr_tunnel_stream **out);
/* Takes the live connection |conn_id| out of service as close_tunnel
 * does (its row in the store is already closed, e.g. by another edge).
 * Returns 1 if it was live. */
int wr_tunnel_server_close_conn(wr_tunnel_server *ts, const char *conn_id, const char *reason);

/* ---- private traffic (edge/router.h) -------------------------------------- */

/* QUIC datagrams of registered connections go to |fn| (NULL: dropped), with
 * the connection's id and the datagram version it speaks (2, or 3 when it
 * announced support_datagram_v3_2). |data| is valid during the call only. */
typedef void (*wr_tunnel_datagram_fn)(void *user, const char *conn_id, int version,
                                      const uint8_t *data, size_t len);
void wr_tunnel_server_set_datagram_handler(wr_tunnel_server *ts, wr_tunnel_datagram_fn fn,
                                           void *user);
/* The live registered connection |conn_id| (or WR_ERR_NOTFOUND): check
 * before every use of a connection remembered across loop iterations. */
int wr_tunnel_server_find(const wr_tunnel_server *ts, const char *conn_id,
                          wr_tunnel_conn_info *out);
/* wr_tunnel_server_open_stream, but on the live connection |conn_id| (a UDP
 * session's RPC stream must go where its datagrams go). Returns WR_OK,
 * WR_ERR_NOTFOUND, WR_AGAIN or WR_ERR_NOMEM. */
int wr_tunnel_server_open_stream_on(wr_tunnel_server *ts, const char *conn_id,
                                    const wr_tunnel_stream_callbacks *cbs, void *user,
                                    wr_tunnel_stream **out);

/* ---- counters (for the edge's --metrics, edge/edge_metrics.h) ------------- */

typedef struct wr_tunnel_server_stats {
  uint64_t registrations;   /* registerConnection calls that registered a connection */
  uint64_t refusals;        /* registerConnection calls that did not (error answer or
                             * undecodable call) */
  uint64_t unregistrations; /* registered connections taken out of service, for any
                             * reason (unregisterConnection, lost, replaced, deleted) */
  uint64_t unregistered_refused; /* handshakes closed at once: too many waiting to register */
  uint64_t unregistered_closed;  /* connections that ended without ever registering */
} wr_tunnel_server_stats;

/* Counters since wr_tunnel_server_new; valid while |ts| lives. */
const wr_tunnel_server_stats *wr_tunnel_server_get_stats(const wr_tunnel_server *ts);
/* Calls |fn| once for every live registered connection (newest first), in
 * one walk. |fn| must not change the registry (no registering, closing or
 * unregistering from inside it). */
void wr_tunnel_server_each(const wr_tunnel_server *ts,
                           void (*fn)(void *user, const wr_tunnel_conn_info *info), void *user);

#endif
