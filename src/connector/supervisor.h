/* The connector's HA connections (protocol.md 0.1, 1.4–1.6): one QUIC
 * connection per edge address, up to four, each registered on its control
 * stream (connector/registration.h), its data and RPC streams handed to the
 * proxy (connector/proxy.h), its QUIC datagrams to the datagram
 * multiplexer (connector/datagram_mux.h) once it registered.
 *
 * Connection 0 starts first; the others start once it registered, as
 * cloudflared does, or, with several edge addresses, once it could not
 * reach its own (an edge that is down never keeps the connector off the
 * others). Connection i dials edge address i modulo their number, so the
 * connections spread over the edges given. A connection that ends is dialled again:
 *   - at once (0–100 ms jitter) after a Stateless Reset, which is what a
 *     restarted edge answers (net/quic.h reset_key);
 *   - after 100 ms, 200 ms, ... capped at 500 ms while the edge does not
 *     answer at all (handshake timeout, idle timeout), with a 1.5 s handshake
 *     timeout on reconnects, so a returning edge sees a fresh Initial at
 *     least once a second and registration follows within about a second;
 *   - after 1 s, 2 s, ... capped at 32 s when the edge answered but refused
 *     (cloudflared's backoff for shouldRetry errors).
 * A registration the edge does not answer within rpc_timeout_ms closes the
 * connection, which is then dialled again as an unreachable one.
 * A permanent refusal (shouldRetry false) before any connection ever
 * registered is fatal (on_fatal): cloudflared exits then, printing the
 * edge's reason.
 *
 * Transport per connection: QUIC, or HTTP/2 over TLS over TCP to the same
 * address and port (connector/h2_link.h, protocol.md 7), where the edge
 * opens the control stream and the registration runs over it. With
 * WR_PROTOCOL_AUTO connections start on QUIC and, while none ever
 * registered, a connection whose QUIC dial failed |retries| times in a row
 * (handshake or idle timeouts, unreachable) switches every connection to
 * HTTP/2 for good, as cloudflared's protocol fallback; it is logged.
 *
 * Shutdown: unregister every registered connection (the edge stops routing
 * new requests to them), let in-flight streams finish within the grace
 * period, close the connections (application error 0), then on_stopped. */
#ifndef WR_CONNECTOR_SUPERVISOR_H
#define WR_CONNECTOR_SUPERVISOR_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "connector/datagram_mux.h"
#include "connector/proxy.h"
#include "lib/credentials.h"
#include "lib/encoding.h"

#define WR_SUPERVISOR_MAX_CONNS 4

/* --protocol (protocol.md 1.5). */
enum { WR_PROTOCOL_QUIC = 0, WR_PROTOCOL_HTTP2, WR_PROTOCOL_AUTO };

typedef struct wr_supervisor wr_supervisor;

/* How to reach and register with the edge: the settings that come from
 * the command line. The connector's options carry one
 * (wr_connector_options.edge) and hand it to the supervisor as it is;
 * wr_supervisor_start copies everything it points to. */
typedef struct wr_supervisor_edge {
  const wr_credentials *cred;            /* required: account, secret, tunnel ID */
  const struct sockaddr_storage *edges;  /* required: one connection per address */
  size_t nedges;                         /* 1..WR_SUPERVISOR_MAX_CONNS */
  unsigned ha_connections;               /* 0: 4; capped at nedges and 4 */
  const char *ca_file;                   /* trust anchors for the edge; NULL: system */
  const char *local_config;              /* updateLocalConfiguration JSON, or NULL */
  const struct sockaddr_storage *bind_addr; /* --edge-bind-address, or NULL */
  uint64_t dial_timeout_ms;              /* --dial-edge-timeout: QUIC handshake limit;
                                            0: 5000 first, 1500 after */
  uint64_t rpc_timeout_ms;               /* --rpc-timeout: registration answer limit; 0: none */
  int protocol;                          /* --protocol: WR_PROTOCOL_*; 0: QUIC */
  unsigned retries;                      /* --retries: auto's QUIC failures before HTTP/2; 0: 5 */
  uint64_t max_conn_window, max_stream_window; /* --quic-*-flow-control-limit: QUIC receive
                                                  window ceilings; 0: default */
} wr_supervisor_edge;

typedef struct wr_supervisor_config {
  uv_loop_t *loop;
  const wr_supervisor_edge *edge;        /* required; copied */
  wr_uuid connector_id;
  const char *const *extra_features;     /* --features (copied) */
  size_t nextra_features;
  wr_proxy *proxy;                       /* required; borrowed */
  wr_dgram_mux *mux;                     /* datagrams of registered connections; may be NULL */
  /* Registration refused for good before anything ever registered. */
  void (*on_fatal)(void *user, const char *why);
  /* A connection registered or went away (for /ready and metrics). */
  void (*on_change)(void *user);
  /* wr_supervisor_shutdown finished: every connection is closed. */
  void (*on_stopped)(void *user);
  void *user;
} wr_supervisor_config;

/* Starts connection 0. Returns WR_OK, WR_ERR_INVAL (no settings, credentials,
 * edge or proxy), WR_ERR_CRYPTO (the CA file; |err| says why) or WR_ERR_NOMEM. */
int wr_supervisor_start(const wr_supervisor_config *cfg, wr_supervisor **out, char *err,
                        size_t errlen);
/* Connections registered right now. */
unsigned wr_supervisor_ready(const wr_supervisor *s);
/* Registrations since start (for metrics). */
uint64_t wr_supervisor_registrations(const wr_supervisor *s);
/* Connection id ("" when none) and edge location of slot |i|. */
const char *wr_supervisor_conn_id(const wr_supervisor *s, unsigned i, const char **location);
unsigned wr_supervisor_nslots(const wr_supervisor *s);
/* Graceful stop, see above. |grace_ms| bounds the wait for in-flight
 * streams. Calling it again closes everything at once. */
void wr_supervisor_shutdown(wr_supervisor *s, uint64_t grace_ms);
/* Frees. Call after on_stopped (or after the loop ended). */
void wr_supervisor_free(wr_supervisor *s);

#endif
