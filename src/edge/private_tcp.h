/* Private-network TCP at the edge: the glue between the user-space TCP
 * stack (edge/tcpstack.h) and the connectors. Every client connection the
 * stack accepts becomes one `tcp` data stream (protocol.md 4: preamble +
 * ConnectRequest type tcp, dest "IP:PORT", IPv6 as "[IP]:PORT") on a live
 * connection of the tunnel that routes the destination; bytes are spliced
 * both ways with backpressure (client bytes open the TCP receive window only
 * once the QUIC stream took them; connector bytes return QUIC credit only
 * once the TCP send buffer took them), and half-closes cross over (client
 * FIN -> stream FIN, stream FIN -> client FIN once the bytes before it were
 * written, even if the stream itself is gone by then). An error
 * ConnectResponse, a stream reset or a lost connection resets the client
 * (RST); a client RST or timeout resets the stream (RESET_STREAM 0).
 *
 * In the edge the glue sits on the router (edge/router.h): it installs the
 * router's TCP hook, so TCP packets that have a route, a policy yes and a
 * live tunnel come here; it resolves and opens streams with
 * wr_router_lookup / wr_router_open_stream and writes packets back with
 * wr_router_output. A test may give |ops| instead of a router: the same
 * five operations on its own stream objects.
 *
 * Everything runs on the loop thread. One instance per process (it owns the
 * tcpstack, whose lwIP state is global). */
#ifndef WR_EDGE_PRIVATE_TCP_H
#define WR_EDGE_PRIVATE_TCP_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/router.h"
#include "edge/tcpstack.h"
#include "edge/tunnel_server.h"

typedef struct wr_private_tcp wr_private_tcp;

/* How flows reach connectors: the router's by default. |stream| is the
 * ops' own handle (a wr_tunnel_stream for the router). */
typedef struct wr_private_tcp_ops {
  /* Opens a data stream for a client |src| of |ingress| reaching |dst|, its
   * events to |cbs| with |cb_user|. Returns WR_OK or an error (the client
   * gets RST). */
  int (*open)(void *user, void *ingress, const wr_ipaddr *src, const wr_ipaddr *dst,
              const wr_tunnel_stream_callbacks *cbs, void *cb_user, void **stream);
  int (*write)(void *stream, const uint8_t *data, size_t len, int fin, size_t *accepted);
  void (*consume)(void *stream, size_t n);
  void (*abandon)(void *stream, int64_t code); /* as wr_tunnel_stream_abandon */
  /* One IP packet to the client of |ingress|; must not call this module. */
  void (*output)(void *user, void *ingress, const uint8_t *pkt, size_t len);
} wr_private_tcp_ops;

typedef struct wr_private_tcp_config {
  uv_loop_t *loop;              /* required */
  wr_router *router;            /* the edge's: required unless |ops| is given */
  const wr_private_tcp_ops *ops;/* instead of the router (tests); copied */
  void *ops_user;
  size_t max_flows;             /* 0: the tcpstack default */
  size_t max_flows_per_client;  /* 0: the tcpstack default */
  uint16_t mtu;                 /* of the ingress; 0: the tcpstack default */
} wr_private_tcp_config;

/* The glue's own counters; SYNs refused for want of a stream are the
 * stack's |refused|. */
typedef struct wr_private_tcp_stats {
  uint64_t streams_opened;      /* data streams opened for accepted SYNs */
  uint64_t connector_refused;   /* error ConnectResponses (the dial failed) */
  uint64_t connector_resets;    /* streams the connector reset or lost */
  uint64_t bad_responses;       /* malformed or missing response heads */
  uint64_t client_resets;       /* client RST or timeout: stream reset */
} wr_private_tcp_stats;

/* Returns WR_OK, WR_ERR_INVAL, WR_ERR_EXISTS (another instance) or
 * WR_ERR_NOMEM. With a router, installs its TCP hook. */
int wr_private_tcp_new(const wr_private_tcp_config *cfg, wr_private_tcp **out);
/* Resets every flow and its stream, removes the router's TCP hook; run the
 * loop afterwards. NULL: no-op. */
void wr_private_tcp_free(wr_private_tcp *p);
/* One TCP/IP packet from a client of |ingress| (as wr_tcpstack_input); the
 * router's hook calls it. */
int wr_private_tcp_input(wr_private_tcp *p, const uint8_t *pkt, size_t len, void *ingress);
/* |ingress| is going away: its flows end and their streams are reset
 * (wr_tcpstack_forget_ingress). The router calls it from
 * wr_router_ingress_remove. */
void wr_private_tcp_forget(wr_private_tcp *p, void *ingress);
const wr_tcpstack_stats *wr_private_tcp_stack_stats(const wr_private_tcp *p);
const wr_private_tcp_stats *wr_private_tcp_get_stats(const wr_private_tcp *p);

#endif
