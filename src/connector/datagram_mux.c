/* The datagram multiplexer; see datagram_mux.h. */
#include "connector/datagram_mux.h"

#include <stdlib.h>
#include <string.h>

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
  if (wr_proxy_unregister_udp(m->cfg.proxy, qc, id, reason) == WR_OK) m->stats.unregister_sent++;
}

static int svc_register(void *user, wr_quic_conn *qc, const wr_tunnelrpc_udp_register_params *p,
                        char *err, size_t errlen) {
  wr_dgram_mux *m = user;
  char sid[WR_UUID_STR_LEN + 1];
  int rv;
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

static void svc_unregister(void *user, wr_quic_conn *qc, const uint8_t *id, const char *msg) {
  wr_dgram_mux *m = user;
  wr_udp_session_unregister(m->udp, qc, id, msg);
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

static void icmp_reply(void *reply_user, const uint8_t *pkt, size_t len) {
  mconn *c = reply_user;
  wr_dgram_mux *m = c->m;
  wr_dgram d = {.type = WR_DGRAM_IP, .payload = pkt, .payload_len = len};
  int n = wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, SIZE_MAX, m->out, sizeof(m->out));
  if (n < 0 || wr_quic_datagram_send(c->qc, m->out, (size_t)n) != WR_OK) {
    m->stats.icmp_send_dropped++;
    return;
  }
  m->stats.icmp_replies++;
}

static void icmp_input(wr_dgram_mux *m, wr_quic_conn *qc, const wr_dgram *d) {
  if (!m->cfg.icmp || !warp_enabled(m)) {
    m->stats.icmp_dropped++;
    return;
  }
  m->stats.icmp++;
  wr_icmp_proxy_request(m->cfg.icmp, d->payload, d->payload_len, icmp_reply, conn_handle(m, qc));
}

/* --- public -------------------------------------------------------------------------- */

int wr_dgram_mux_new(const wr_dgram_mux_config *cfg, wr_dgram_mux **out) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->proxy) return WR_ERR_INVAL;
  wr_dgram_mux *m = wr_xcalloc(1, sizeof(*m));
  m->cfg = *cfg;
  wr_udp_sessions_config uc = {.loop = cfg->loop,
                               .max_per_conn = cfg->max_sessions_per_conn,
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
    icmp_input(m, qc, &d);
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
