/* The connector's QUIC datagram multiplexer, version 2 (protocol.md 6.1-6.3,
 * 6.5), as cloudflared 2023.7.3's DatagramMuxerV2 + packet router
 * (quic/datagramv2.go, ingress/packet_router.go):
 *
 *  - every DATAGRAM frame of a registered connection is decoded with
 *    wr_dgram_v2_decode (last byte = type);
 *  - type 0 (UDP payload ‖ session id): to the UDP session of that
 *    connection (connector/udp_session.h); unknown sessions are counted
 *    and dropped;
 *  - type 1 (IP) and 2 (IP + tracing identity): the IP packet goes to the
 *    ICMP proxy when one is configured and warp-routing is enabled
 *    (checked per packet, as cloudflared); its replies come back through
 *    a per-connection reply handle and leave as type 1 datagrams on the
 *    connection the request came from. Without an ICMP proxy or with
 *    warp-routing off they are counted and dropped;
 *  - type 3 (spans) from the edge, unknown types, empty or truncated
 *    datagrams: counted and dropped. Never fatal.
 * (That is version 2; see below for version 3.)
 *
 * It also implements the SessionManager half of the RPC services
 * (wr_dgram_mux_services): registerUdpSession is refused while
 * warp-routing is disabled (cloudflared 2023.7.3 does not check; this
 * connector does not dial private addresses unless told to), and a
 * session that ends on the connector's side is reported to the edge with
 * unregisterUdpSession on a new RPC stream (wr_proxy_unregister_udp), as
 * cloudflared's closeUDPSession.
 *
 * Datagram v3 (protocol.md 6.6; cloudflared HEAD quic/v3/muxer.go and
 * connection/quic_datagram_v3.go) instead, with |v3| in the config — the
 * connector announced support_datagram_v3_2 at registration (--features),
 * which is how cloudflared chooses it (its remote TXT-record selection is
 * not implemented). Every datagram is decoded with wr_dgram_v3_decode
 * (first byte = type):
 *  - type 0 (registration): a UDP flow (connector/udp_session.h,
 *    wr_udp_flow_register), answered with a type 3 response on the same
 *    connection: OK (new, re-registered or migrated), destination
 *    unreachable, unable to bind socket, too many active flows, or — while
 *    warp-routing is off — error with message (the text below);
 *  - type 1 (payload): to the flow with that request id;
 *  - type 2 (ICMP): the IP packet to the ICMP proxy as above; replies and
 *    time exceeded go back as type 2;
 *  - type 3 from the edge, unknown types, malformed datagrams: counted and
 *    dropped.
 * No unregister message exists: flows ending on the connector's side tell
 * the edge nothing. The RPC calls are refused with HEAD's texts:
 * registerUdpSession in RegisterUdpSessionResponse.err,
 * unregisterUdpSession as an RPC exception.
 * Threading: the loop's thread only. */
#ifndef WR_CONNECTOR_DATAGRAM_MUX_H
#define WR_CONNECTOR_DATAGRAM_MUX_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "connector/icmp_proxy.h"
#include "connector/proxy.h"
#include "connector/rpc_server.h"
#include "connector/udp_session.h"
#include "net/quic.h"

/* Text of a refused registration while warp-routing is off (the words
 * cloudflared uses for a refused WARP request). */
#define WR_DGRAM_MUX_WARP_DISABLED                                                           \
  "warren received a request from WARP client, but your configuration has disabled ingress " \
  "from WARP clients. To enable this, set \"warp-routing:\\n\\t enabled: true\" in your "     \
  "config.yaml"

#define WR_DGRAM_MUX_V3_NO_REGISTER_RPC "datagram v3 does not support RegisterUdpSession RPC"
#define WR_DGRAM_MUX_V3_NO_UNREGISTER_RPC "datagram v3 does not support UnregisterUdpSession RPC"

typedef struct wr_dgram_mux wr_dgram_mux;

typedef struct wr_dgram_mux_config {
  uv_loop_t *loop;
  wr_proxy *proxy;             /* required: warp-routing state, unregister calls */
  size_t max_sessions_per_conn; /* 0: WR_UDP_MAX_SESSIONS_PER_CONN */
  wr_icmp_proxy *icmp;          /* borrowed; NULL: ICMP datagrams are dropped */
  int v3;                       /* speak datagram v3 on every connection */
} wr_dgram_mux_config;

typedef struct wr_dgram_mux_stats {
  uint64_t received;        /* datagrams given to wr_dgram_mux_input */
  uint64_t malformed;       /* empty, truncated or unknown type */
  uint64_t unexpected;      /* type 3 (spans) from the edge */
  uint64_t udp;             /* type 0 handed to a session */
  uint64_t icmp;            /* type 1/2 handed to the ICMP proxy */
  uint64_t icmp_dropped;    /* type 1/2 without an ICMP proxy or with warp-routing off */
  uint64_t icmp_replies;    /* type 1 sent back */
  uint64_t icmp_send_dropped; /* replies QUIC refused (size, queue) */
  uint64_t refused_warp;    /* registerUdpSession refused: warp-routing off */
  uint64_t unregister_sent; /* unregisterUdpSession calls made to the edge */
  uint64_t v3_register;     /* v3 registration datagrams */
  uint64_t v3_responses;    /* v3 registration responses sent */
  uint64_t v3_response_dropped; /* ... that QUIC refused */
  uint64_t v3_rpc_refused;  /* register/unregisterUdpSession RPCs refused in v3 */
} wr_dgram_mux_stats;

/* Returns WR_OK or WR_ERR_INVAL (no loop or proxy). */
int wr_dgram_mux_new(const wr_dgram_mux_config *cfg, wr_dgram_mux **out);
/* Closes every UDP session (run the loop afterwards) and frees. Call
 * before freeing the proxy and the ICMP proxy. NULL is a no-op. */
void wr_dgram_mux_free(wr_dgram_mux *m);
/* Fills the SessionManager callbacks of |svc| (register_udp,
 * unregister_udp, udp_user). */
void wr_dgram_mux_services(wr_dgram_mux *m, wr_rpc_services *svc);

/* One DATAGRAM frame from |qc| (its on_datagram). Always returns 0 (bad
 * datagrams are counted, never fatal). */
int wr_dgram_mux_input(wr_dgram_mux *m, wr_quic_conn *qc, const uint8_t *data, size_t len);
/* |qc| is gone (its on_close): its UDP sessions close silently and the
 * ICMP proxy forgets it. */
void wr_dgram_mux_conn_gone(wr_dgram_mux *m, wr_quic_conn *qc);

const wr_dgram_mux_stats *wr_dgram_mux_get_stats(const wr_dgram_mux *m);
wr_udp_sessions *wr_dgram_mux_sessions(wr_dgram_mux *m);

#endif
