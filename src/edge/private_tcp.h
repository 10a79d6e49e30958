/* Private-network TCP at the edge: the glue between the user-space TCP
 * stack (edge/tcpstack.h) and the connectors. Every client connection the
 * stack accepts becomes one `tcp` data stream (protocol.md 4: preamble +
 * ConnectRequest type tcp, dest "IP:PORT", IPv6 as "[IP]:PORT") on a live
 * connection of the tunnel that routes the destination; bytes are spliced
 * both ways with backpressure (client bytes open the TCP receive window only
 * once the QUIC stream took them; connector bytes return QUIC credit only
 * once the TCP send buffer took them), and half-closes cross over (client
 * FIN -> stream FIN, stream FIN -> client FIN). An error ConnectResponse,
 * a stream reset or a lost connection resets the client (RST); a client
 * RST or timeout resets the stream.
 *
 * Routing is the caller's: |resolve| names the tunnel for a destination
 * (the router's wr_router_lookup, edge/router.h). Everything runs on the
 * loop thread. One instance per process (it owns the tcpstack). */
#ifndef WR_EDGE_PRIVATE_TCP_H
#define WR_EDGE_PRIVATE_TCP_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/store.h"
#include "edge/tcpstack.h"
#include "edge/tunnel_server.h"

typedef struct wr_private_tcp wr_private_tcp;

typedef struct wr_private_tcp_config {
  uv_loop_t *loop;          /* required */
  wr_tunnel_server *ts;     /* required: where data streams open */
  /* Required: the tunnel for a client of |ingress| reaching |dst|; writes
   * its id into |tunnel_id| and returns WR_OK, or an error to refuse (RST). */
  int (*resolve)(void *user, void *ingress, const wr_ipaddr *src, const wr_ipaddr *dst,
                 char tunnel_id[WR_STORE_UUID_LEN + 1]);
  /* Required: one IP packet to the client of |ingress| (must not call back
   * into this module). */
  void (*output)(void *user, const uint8_t *pkt, size_t len, void *ingress);
  void *user;
  size_t max_flows;             /* 0: the tcpstack default */
  size_t max_flows_per_client;  /* 0: the tcpstack default */
  uint16_t mtu;                 /* 0: the tcpstack default */
} wr_private_tcp_config;

/* Returns WR_OK, WR_ERR_INVAL, WR_ERR_EXISTS (another instance) or
 * WR_ERR_NOMEM. */
int wr_private_tcp_new(const wr_private_tcp_config *cfg, wr_private_tcp **out);
/* Resets every flow and its stream; run the loop afterwards. NULL: no-op. */
void wr_private_tcp_free(wr_private_tcp *p);
/* One TCP/IP packet from a client of |ingress| (as wr_tcpstack_input). */
int wr_private_tcp_input(wr_private_tcp *p, const uint8_t *pkt, size_t len, void *ingress);
const wr_tcpstack_stats *wr_private_tcp_stats(const wr_private_tcp *p);

#endif
