/* The datagram multiplexer; see datagram_mux.h. */
#include "connector/datagram_mux.h"

#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/datagram.h"

/* The ICMP proxy's reply handle for one QUIC connection: replies must go
 * back on the connection the request came from, and the proxy is told to
 * forget the handle when that connection goes. */
typedef struct mconn {
  wr_dgram_mux *m;
  wr_quic_conn *qc;
  struct mconn *next;
} mconn;

struct wr_dgram_mux {
  wr_dgram_mux_config cfg;
  wr_udp_sessions *udp;
  mconn *conns;
  wr_dgram_mux_stats stats;
  uint8_t out[WR_DGRAM_MAX_FRAME];
};

static int warp_enabled(const wr_dgram_mux *m) {
  const wr_ingress *ing = wr_proxy_ingress(m->cfg.proxy);
  return ing && ing->warp.enabled;
}

/* --- UDP sessions ------------------------------------------------------------------ */

static void on_session_end(void *user, wr_quic_conn *qc, const uint8_t *id, const char *reason) {
  wr_dgram_mux *m = user;
  if (m->cfg.v3) return; /* v3 has no unregister message: the edge's flow idles out */
  if (wr_proxy_unregister_udp(m->cfg.proxy, qc, id, reason) == WR_OK) m->stats.unregister_sent++;
}

static int svc_register(void *user, wr_quic_conn *qc, const wr_tunnelrpc_udp_register_params *p,
                        char *err, size_t errlen) {
  wr_dgram_mux *m = user;
  char sid[WR_UUID_STR_LEN + 1];
  int rv;
  if (m->cfg.v3) {
    m->stats.v3_rpc_refused++;
    snprintf(err, errlen, "%s", WR_DGRAM_MUX_V3_NO_REGISTER_RPC);
    return WR_ERR_UNSUPPORTED;
  }
  if (!warp_enabled(m)) {
    m->stats.refused_warp++;
    snprintf(err, errlen, "%s", WR_DGRAM_MUX_WARP_DISABLED);
    return WR_ERR_UNSUPPORTED;
  }
  wr_uuid_format((const wr_uuid *)p->session_id, sid);
  rv = wr_udp_session_register(m->udp, qc, p->session_id, p->dst_ip, p->dst_ip_len, p->dst_port,
                               p->close_after_idle_ns, err, errlen);
  if (rv != WR_OK)
    wr_error("Failed to create udp proxy for session %s: %s", sid, err);
  else
    wr_debug("Registered UDP session %s (port %u)", sid, p->dst_port);
  return rv;
}

static int svc_unregister(void *user, wr_quic_conn *qc, const uint8_t *id, const char *msg,
                          char *err, size_t errlen) {
  wr_dgram_mux *m = user;
  if (m->cfg.v3) {
    m->stats.v3_rpc_refused++;
    snprintf(err, errlen, "%s", WR_DGRAM_MUX_V3_NO_UNREGISTER_RPC);
    return WR_ERR_UNSUPPORTED;
  }
  wr_udp_session_unregister(m->udp, qc, id, msg);
  return WR_OK;
}

void wr_dgram_mux_services(wr_dgram_mux *m, wr_rpc_services *svc) {
  svc->register_udp = svc_register;
  svc->unregister_udp = svc_unregister;
  svc->udp_user = m;
}

/* --- ICMP -------------------------------------------------------------------------- */

static mconn *conn_handle(wr_dgram_mux *m, wr_quic_conn *qc) {
  for (mconn *c = m->conns; c; c = c->next)
    if (c->qc == qc) return c;
  mconn *c = wr_xcalloc(1, sizeof(*c));
  c->m = m;
  c->qc = qc;
  c->next = m->conns;
  m->conns = c;
  return c;
}

/* v2: the packet ‖ 0x01; v3: 0x02 ‖ the packet. */
static int encode_icmp(wr_dgram_mux *m, const uint8_t *pkt, size_t len) {
  if (m->cfg.v3) {
    wr_dgram_v3 d = {.type = WR_DGRAM_V3_ICMP, .payload = pkt, .payload_len = len};
    return wr_dgram_v3_encode(&d, m->out, sizeof(m->out));
  }
  wr_dgram d = {.type = WR_DGRAM_IP, .payload = pkt, .payload_len = len};
  return wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, m->out, sizeof(m->out));
}

static void icmp_reply(void *reply_user, const uint8_t *pkt, size_t len) {
  mconn *c = reply_user;
  wr_dgram_mux *m = c->m;
  int n = encode_icmp(m, pkt, len);
  if (n < 0 || wr_quic_datagram_send(c->qc, m->out, (size_t)n) != WR_OK) {
    m->stats.icmp_send_dropped++;
    return;
  }
  m->stats.icmp_replies++;
}

static void icmp_input(wr_dgram_mux *m, wr_quic_conn *qc, const uint8_t *pkt, size_t len) {
  if (!m->cfg.icmp || !warp_enabled(m)) {
    m->stats.icmp_dropped++;
    return;
  }
  m->stats.icmp++;
  wr_icmp_proxy_request(m->cfg.icmp, pkt, len, icmp_reply, conn_handle(m, qc));
}

/* --- datagram v3 ------------------------------------------------------------------ */

/* HEAD's RequestID.String(): 32 lower-case hex digits. */
static const char *flow_id(const uint8_t *id, char out[33]) {
  wr_hex_encode(id, 16, out);
  out[32] = '\0';
  return out;
}

static void v3_respond(wr_dgram_mux *m, wr_quic_conn *qc, const uint8_t *id, int code,
                       const char *msg) {
  wr_dgram_v3 d = {.type = WR_DGRAM_V3_RESPONSE, .resp_code = (uint8_t)code};
  memcpy(d.request_id, id, 16);
  if (code == WR_DGRAM_V3_RESP_ERROR_WITH_MSG && msg) {
    d.err_msg = (const uint8_t *)msg;
    d.err_msg_len = strlen(msg);
    if (d.err_msg_len > WR_DGRAM_V3_MAX_ERR_MSG) d.err_msg_len = WR_DGRAM_V3_MAX_ERR_MSG;
  }
  int n = wr_dgram_v3_encode(&d, m->out, sizeof(m->out));
  if (n < 0 || wr_quic_datagram_send(qc, m->out, (size_t)n) != WR_OK) {
    m->stats.v3_response_dropped++;
    return;
  }
  m->stats.v3_responses++;
}

static void v3_register(wr_dgram_mux *m, wr_quic_conn *qc, const wr_dgram_v3 *d) {
  static const char *const what[] = {"registered", "registration response retry",
                                     "registration migration"};
  char err[WR_UDP_REASON_MAX], fid[33];
  enum wr_udp_flow_result res = WR_UDP_FLOW_NEW;
  int code;
  m->stats.v3_register++;
  if (!warp_enabled(m)) {
    m->stats.refused_warp++;
    v3_respond(m, qc, d->request_id, WR_DGRAM_V3_RESP_ERROR_WITH_MSG, WR_DGRAM_MUX_WARP_DISABLED);
    return;
  }
  code = wr_udp_flow_register(m->udp, qc, d->request_id, d->dst_addr, d->ipv6 ? 16 : 4,
                              d->dst_port, (int64_t)d->idle_seconds * 1000000000LL, d->payload,
                              d->payload_len, &res, err, sizeof(err));
  if (code == WR_DGRAM_V3_RESP_OK)
    wr_debug("flow %s (port %u): %s", flow_id(d->request_id, fid), d->dst_port, what[res]);
  else
    wr_error("flow %s registration failure (%d): %s", flow_id(d->request_id, fid), code, err);
  v3_respond(m, qc, d->request_id, code, err);
}

static void v3_input(wr_dgram_mux *m, wr_quic_conn *qc, const uint8_t *data, size_t len) {
  wr_dgram_v3 d;
  char fid[33];
  if (wr_dgram_v3_decode(data, len, &d) != 0) {
    m->stats.malformed++;
    wr_debug("Failed to demux v3 datagram of %zu bytes", len);
    return;
  }
  switch (d.type) {
  case WR_DGRAM_V3_REGISTER:
    v3_register(m, qc, &d);
    break;
  case WR_DGRAM_V3_PAYLOAD:
    m->stats.udp++;
    if (wr_udp_session_to_origin(m->udp, qc, d.request_id, d.payload, d.payload_len) ==
        WR_ERR_NOTFOUND)
      wr_debug("flow %s not found", flow_id(d.request_id, fid));
    break;
  case WR_DGRAM_V3_ICMP:
    icmp_input(m, qc, d.payload, d.payload_len);
    break;
  default: /* a registration response: the edge never sends one */
    m->stats.unexpected++;
    break;
  }
}

/* --- public -------------------------------------------------------------------------- */

int wr_dgram_mux_new(const wr_dgram_mux_config *cfg, wr_dgram_mux **out) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->proxy) return WR_ERR_INVAL;
  wr_dgram_mux *m = wr_xcalloc(1, sizeof(*m));
  m->cfg = *cfg;
  wr_udp_sessions_config uc = {.loop = cfg->loop,
                               .max_per_conn = cfg->max_sessions_per_conn,
                               .v3 = cfg->v3,
                               .on_end = on_session_end,
                               .user = m};
  int rv = wr_udp_sessions_new(&uc, &m->udp);
  if (rv != WR_OK) {
    free(m);
    return rv;
  }
  *out = m;
  return WR_OK;
}

void wr_dgram_mux_free(wr_dgram_mux *m) {
  if (!m) return;
  while (m->conns) {
    mconn *c = m->conns;
    m->conns = c->next;
    if (m->cfg.icmp) wr_icmp_proxy_forget(m->cfg.icmp, c);
    free(c);
  }
  wr_udp_sessions_free(m->udp);
  free(m);
}

int wr_dgram_mux_input(wr_dgram_mux *m, wr_quic_conn *qc, const uint8_t *data, size_t len) {
  wr_dgram d;
  m->stats.received++;
  if (m->cfg.v3) {
    v3_input(m, qc, data, len);
    return 0;
  }
  if (wr_dgram_v2_decode(data, len, &d) != 0) {
    m->stats.malformed++;
    wr_debug("Failed to demux datagram of %zu bytes", len);
    return 0;
  }
  switch (d.type) {
  case WR_DGRAM_UDP:
    m->stats.udp++;
    if (wr_udp_session_to_origin(m->udp, qc, d.session_id.b, d.payload, d.payload_len) ==
        WR_ERR_NOTFOUND) {
      char sid[WR_UUID_STR_LEN + 1];
      wr_uuid_format(&d.session_id, sid);
      wr_debug("UDP session %s not found", sid);
    }
    break;
  case WR_DGRAM_IP:
  case WR_DGRAM_IP_TRACED:
    icmp_input(m, qc, d.payload, d.payload_len);
    break;
  default:
    m->stats.unexpected++;
    break;
  }
  return 0;
}

void wr_dgram_mux_conn_gone(wr_dgram_mux *m, wr_quic_conn *qc) {
  mconn **pp = &m->conns;
  wr_udp_sessions_conn_gone(m->udp, qc);
  while (*pp) {
    mconn *c = *pp;
    if (c->qc != qc) {
      pp = &c->next;
      continue;
    }
    *pp = c->next;
    if (m->cfg.icmp) wr_icmp_proxy_forget(m->cfg.icmp, c);
    free(c);
  }
}

const wr_dgram_mux_stats *wr_dgram_mux_get_stats(const wr_dgram_mux *m) { return &m->stats; }

wr_udp_sessions *wr_dgram_mux_sessions(wr_dgram_mux *m) { return m->udp; }
