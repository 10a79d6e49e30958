/* Edge-to-edge forwarding: a data stream of a tunnel that has no live
 * connector connection on this edge is carried to an edge that has one.
 *
 * A forwarded stream runs on a TLS connection from the forwarding edge to
 * the serving edge's peer listener (--peer-listen), one stream at a time
 * (connections are kept for the next stream, see WR_PEER_MAX_IDLE), mutually
 * authenticated:
 * each side presents its DIR/tunnel-server.pem and accepts only a chain to
 * DIR/ca.pem, so only edges sharing the edge CA talk to each other. On it
 * travel the frames of proto/peer_frame.h: OPEN with the tunnel id, then
 * the stream's bytes both ways exactly as on a connector's QUIC data stream
 * (preamble, ConnectRequest, bodies, ConnectResponse), with FIN, RESET and
 * STOP per direction. The serving edge opens the stream on one of its own
 * connections only (wr_tunnel_server_open_stream_local), so a stream is
 * never forwarded twice; without one it answers RESET with
 * WR_PEER_CODE_REFUSED.
 *
 * The forwarding side makes wr_tunnel_stream handles (tunnel_transport.h's
 * via connection), so visitors, WebSockets and private TCP use forwarded
 * streams as any other. Writes are queued until the TLS connection is up
 * (the request head is never refused).
 *
 * Second attempts. Until the serving edge sends the first byte of its
 * answer, the forwarding side keeps every frame it sent (up to
 * WR_PEER_REPLAY_MAX; a longer request body is streamed, not kept). The
 * stream then starts again, from its OPEN, on the next address given when
 *   - the chosen edge cannot be reached (connect or handshake failure);
 *   - it refuses the stream (RESET with WR_PEER_CODE_REFUSED: no live
 *     connection of the tunnel there; nothing reached a connector);
 *   - its connection, or its connector's stream, ends before the answer
 *     started and the request is idempotent (an HTTP or WebSocket
 *     request with GET, HEAD, OPTIONS, TRACE, PUT or DELETE): that
 *     request may have reached the origin once already, which HTTP
 *     allows for these methods only.
 * This holds for a kept connection too: an edge that died since its last
 * stream fails the first write, and the next edge takes the stream. Each
 * edge that could not be reached, or whose connection died under a
 * stream, is reported to the on_down callback (the cluster then puts it
 * last until the store shows a new run of it).
 * Backpressure: at most WR_PEER_WINDOW bytes sit unconsumed or unsent per
 * stream on either side; beyond that the TLS connection stops being read
 * (TCP's window then holds the sender back) and the connector's stream
 * gets no credit.
 *
 * Everything runs on the loop thread. */
#ifndef WR_EDGE_PEER_H
#define WR_EDGE_PEER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "edge/tunnel_server.h"

#define WR_PEER_WINDOW (1u << 20)
/* Connections between edges carry one stream after the other: a stream
 * that ended cleanly (each side sent its FIN or RESET) leaves its
 * connection in a pool, at most WR_PEER_MAX_IDLE of them, each closed
 * after WR_PEER_IDLE_MS unused. */
#define WR_PEER_MAX_IDLE 256
#define WR_PEER_IDLE_MS 30000
/* Addresses tried, in order, for one stream. */
#define WR_PEER_MAX_ADDRS 4
/* Bytes of a stream kept for a second attempt on another edge. */
#define WR_PEER_REPLAY_MAX (64u * 1024u)

typedef struct wr_peer wr_peer;

typedef struct wr_peer_config {
  uv_loop_t *loop;
  wr_tunnel_server *ts;   /* borrowed: streams of its connections */
  const char *cert_file;  /* this edge's certificate and key, shown both ways */
  const char *key_file;
  const char *ca_file;    /* the edge CA: peers must chain to it */
  const struct sockaddr *listen; /* the peer listener; NULL: forward only */
} wr_peer_config;

typedef struct wr_peer_stats {
  uint64_t forwarded;      /* streams this edge forwarded */
  uint64_t reused;         /* ... of those, on a connection kept from an earlier stream */
  uint64_t forward_failed; /* of those, ended because no peer could be reached */
  uint64_t retried;        /* second (and further) attempts on another edge */
  uint64_t served;         /* streams other edges forwarded here, opened */
  uint64_t refused;        /* ... refused: no live connection of the tunnel here */
} wr_peer_stats;

/* Loads the credentials and listens. Returns WR_OK, WR_ERR_CRYPTO (a
 * certificate or key; |err| says which) or WR_ERR_IO (cannot listen). */
int wr_peer_new(const wr_peer_config *cfg, wr_peer **out, char *err, size_t errlen);
/* The bound listener address (WR_ERR_NOTFOUND without a listener). */
int wr_peer_addr(const wr_peer *p, struct sockaddr_storage *out);
/* Opens a stream of |tunnel_id| through the edges at |addrs| ("HOST:PORT",
 * tried in order; at most WR_PEER_MAX_ADDRS are used). Returns WR_OK with
 * *out, WR_ERR_NOTFOUND (no address) or WR_ERR_INVAL (stopping). */
int wr_peer_open_stream(wr_peer *p, const char *const *addrs, size_t naddrs, const char *tunnel_id,
                        const wr_tunnel_stream_callbacks *cbs, void *user, wr_tunnel_stream **out);
const wr_peer_stats *wr_peer_get_stats(const wr_peer *p);
/* |fn| hears "HOST:PORT" of an edge that could not be reached, or whose
 * connection ended under a stream before its answer (NULL: nobody). */
void wr_peer_set_on_down(wr_peer *p, void (*fn)(void *user, const char *addr), void *user);
/* Closes the listener and every stream (owners hear on_close); the memory
 * goes once the loop ran the close callbacks. NULL is a no-op. */
void wr_peer_free(wr_peer *p);

#endif
