/* Splices the TCP stack's flows onto `tcp` data streams (private_tcp.h).
 * A pflow lives until both halves let go of it: the TCP flow (on_close, or
 * our wr_tcpflow_abort) and the stream (on_close, or our abandon). */
#include "edge/private_tcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/connect.h"
#include "proto/preamble.h"

/* ConnectResponse larger than this is refused (the connector sends a few
 * bytes: an error string and no metadata for tcp). */
#define HEAD_MAX 8192
/* Application code when the edge gives up a stream (as cloudflared's 0). */
#define RESET_CODE 0

struct wr_private_tcp {
  wr_private_tcp_config cfg;
  wr_tcpstack *stack;
  struct pflow *flows;    /* every live pflow, for wr_private_tcp_free */
};

typedef struct pflow {
  wr_private_tcp *p;
  wr_tcpflow *f;          /* NULL once the TCP side is done */
  wr_tunnel_stream *st;   /* NULL once the stream side is done */
  wr_buf head;            /* ConnectResponse bytes until it is complete */
  wr_buf down;            /* connector bytes the TCP send buffer has not taken */
  struct pflow *next, **pprev;
  int answered, down_fin, up_fin_pending, up_blocked;
  int busy;               /* inside a call that may end either side: free later */
  char dest[64];
} pflow;

static void maybe_free(pflow *pf) {
  if (pf->f || pf->st || pf->busy) return;
  *pf->pprev = pf->next;
  if (pf->next) pf->next->pprev = pf->pprev;
  wr_buf_free(&pf->head);
  wr_buf_free(&pf->down);
  free(pf);
}

/* Both sides reset: the client gets RST, the connector RESET_STREAM. */
static void fail(pflow *pf, const char *why) {
  if (why) wr_log_write(WR_LOG_DEBUG, "private tcp %s: %s", pf->dest, why);
  if (pf->f) wr_tcpflow_abort(pf->f);
  pf->f = NULL;
  if (pf->st) wr_tunnel_stream_abandon(pf->st, RESET_CODE);
  pf->st = NULL;
  maybe_free(pf);
}

/* ---- connector -> client ------------------------------------------------------ */

static void flush_down(pflow *pf) {
  if (!pf->f || !pf->answered) return;
  pf->busy++; /* the write may deliver this flow's on_close */
  if (pf->down.len) {
    size_t n = wr_tcpflow_write(pf->f, pf->down.data, pf->down.len);
    wr_buf_consume(&pf->down, n);
    if (n && pf->st) wr_tunnel_stream_consume(pf->st, n);
  }
  if (!pf->down.len && pf->down_fin && pf->f) wr_tcpflow_shutdown_write(pf->f);
  pf->busy--;
  maybe_free(pf);
}

/* Parses the preamble + ConnectResponse. Returns 1 when the stream is open
 * for data (leftover bytes appended to |down|), 0 to wait, -1 after failing. */
static int take_head(pflow *pf, int fin) {
  size_t pc = 0, used = 0;
  if (pf->head.len < WR_PREAMBLE_DATA_LEN) goto more;
  if (wr_preamble_classify(pf->head.data, WR_PREAMBLE_DATA_LEN, &pc, NULL) != WR_PREAMBLE_DATA) {
    fail(pf, "invalid stream preamble from the connector");
    return -1;
  }
  wr_connect_response cr;
  int rv = wr_connect_response_decode_alloc(pf->head.data + WR_PREAMBLE_DATA_LEN,
                                            pf->head.len - WR_PREAMBLE_DATA_LEN, NULL, NULL, 0,
                                            &cr, &used);
  if (rv == WR_AGAIN) goto more;
  if (rv != WR_OK) {
    fail(pf, "invalid ConnectResponse");
    return -1;
  }
  if (cr.error_len) {
    wr_log_write(WR_LOG_INFO, "private tcp %s: the connector refused: %.*s", pf->dest,
                 (int)(cr.error_len > 300 ? 300 : cr.error_len), cr.error);
    wr_connect_response_free(NULL, &cr);
    fail(pf, NULL);
    return -1;
  }
  wr_connect_response_free(NULL, &cr);
  size_t off = WR_PREAMBLE_DATA_LEN + used;
  wr_buf_append(&pf->down, pf->head.data + off, pf->head.len - off);
  wr_tunnel_stream_consume(pf->st, off); /* the data part returns credit when written */
  wr_buf_free(&pf->head);
  pf->answered = 1;
  return 1;
more:
  if (fin || pf->head.len >= HEAD_MAX) {
    fail(pf, "the connector closed the stream without a response");
    return -1;
  }
  return 0;
}

static int st_data(void *user, const uint8_t *data, size_t len, int fin) {
  pflow *pf = user;
  if (!pf->answered) {
    if (wr_buf_append(&pf->head, data, len) != WR_OK) {
      fail(pf, "response head too large");
      return 0;
    }
    if (take_head(pf, fin) <= 0) return 0;
  } else if (len && wr_buf_append(&pf->down, data, len) != WR_OK) {
    fail(pf, "out of memory");
    return 0;
  }
  if (fin) pf->down_fin = 1;
  flush_down(pf);
  return 0;
}

/* ---- client -> connector ------------------------------------------------------- */

static void send_up_fin(pflow *pf) {
  size_t acc = 0;
  int rv = wr_tunnel_stream_write(pf->st, NULL, 0, 1, &acc);
  pf->up_fin_pending = rv == WR_AGAIN;
}

static void st_writable(void *user) {
  pflow *pf = user;
  if (pf->up_fin_pending && pf->st) send_up_fin(pf);
  if (pf->up_blocked && pf->f) {
    pf->up_blocked = 0;
    pf->busy++;
    wr_tcpflow_resume(pf->f);
    pf->busy--;
    maybe_free(pf);
  }
}

static void st_reset(void *user, uint64_t code) { fail(user, "the connector reset the stream"); }

static void st_close(void *user) {
  pflow *pf = user;
  pf->st = NULL;
  /* The stream ended under us (connection lost): the client must know. */
  if (pf->f && !(pf->down_fin && !pf->down.len)) {
    wr_tcpflow_abort(pf->f);
    pf->f = NULL;
  }
  maybe_free(pf);
}

static const wr_tunnel_stream_callbacks st_cbs = {
    .on_data = st_data, .on_writable = st_writable, .on_reset = st_reset, .on_close = st_close};

static size_t tf_data(void *user, const uint8_t *data, size_t len) {
  pflow *pf = user;
  if (!pf->st) return len;
  if (!len) {
    send_up_fin(pf);
    return 0;
  }
  size_t acc = 0;
  int rv = wr_tunnel_stream_write(pf->st, data, len, 0, &acc);
  if (rv != WR_OK && rv != WR_AGAIN) {
    fail(pf, "stream write failed");
    return 0;
  }
  if (acc < len) pf->up_blocked = 1;
  if (acc) wr_tcpflow_consume(pf->f, acc); /* events wait: we are inside delivery */
  return acc;
}

static void tf_writable(void *user) { flush_down(user); }

static void tf_close(void *user, int reason) {
  pflow *pf = user;
  pf->f = NULL;
  if (pf->st) wr_tunnel_stream_abandon(pf->st, reason == WR_TCPFLOW_CLOSED ? -1 : RESET_CODE);
  pf->st = NULL;
  maybe_free(pf);
}

/* ---- new flows -------------------------------------------------------------------- */

static int open_stream(pflow *pf, const char *tunnel_id) {
  wr_private_tcp *p = pf->p;
  int rv = wr_tunnel_server_open_stream(p->cfg.ts, tunnel_id, &st_cbs, pf, &pf->st);
  if (rv != WR_OK) return rv;
  wr_buf out;
  wr_buf_init(&out, 4096, NULL);
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  rv = wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre));
  if (rv >= 0) rv = wr_buf_append(&out, pre, (size_t)rv);
  wr_connect_request req = {
      .dest = pf->dest, .dest_len = strlen(pf->dest), .type = WR_CONNECT_TCP, .has_meta = 0};
  if (rv == WR_OK) rv = wr_connect_request_encode(&req, NULL, &out);
  size_t acc = 0;
  /* One write for preamble + ConnectRequest (protocol.md 4.1). */
  if (rv == WR_OK) rv = wr_tunnel_stream_write(pf->st, out.data, out.len, 0, &acc);
  wr_buf_free(&out);
  if (rv != WR_OK) {
    wr_tunnel_stream_abandon(pf->st, RESET_CODE);
    pf->st = NULL;
  }
  return rv;
}

static int tf_flow(void *user, wr_tcpflow *f, void *ingress, const wr_ipaddr *src, uint16_t sport,
                    const wr_ipaddr *dst, uint16_t dport, void **flow_user) {
  wr_private_tcp *p = user;
  char tunnel[WR_STORE_UUID_LEN + 1] = "";
  if (p->cfg.resolve(p->cfg.user, ingress, src, dst, tunnel) != WR_OK) return -1;
  pflow *pf = calloc(1, sizeof(*pf));
  if (!pf) return -1;
  pf->p = p;
  wr_buf_init(&pf->head, HEAD_MAX, NULL);
  wr_buf_init(&pf->down, 64u << 20, NULL); /* bounded by the QUIC stream window */
  char ip[64];
  wr_ipaddr_format(dst, ip, sizeof(ip));
  snprintf(pf->dest, sizeof(pf->dest), dst->version == 6 ? "[%s]:%u" : "%s:%u", ip,
           (unsigned)dport);
  if (open_stream(pf, tunnel) != WR_OK) {
    wr_log_write(WR_LOG_INFO, "private tcp %s: no stream to tunnel %s", pf->dest, tunnel);
    wr_buf_free(&pf->head);
    wr_buf_free(&pf->down);
    free(pf);
    return -1;
  }
  pf->f = f;
  pf->next = p->flows;
  if (pf->next) pf->next->pprev = &pf->next;
  pf->pprev = &p->flows;
  p->flows = pf;
  *flow_user = pf;
  return 0;
}

static void tf_output(void *user, const uint8_t *pkt, size_t len, void *ingress) {
  wr_private_tcp *p = user;
  p->cfg.output(p->cfg.user, pkt, len, ingress);
}

int wr_private_tcp_new(const wr_private_tcp_config *cfg, wr_private_tcp **out) {
  if (!cfg || !out || !cfg->loop || !cfg->ts || !cfg->resolve || !cfg->output)
    return WR_ERR_INVAL;
  wr_private_tcp *p = calloc(1, sizeof(*p));
  if (!p) return WR_ERR_NOMEM;
  p->cfg = *cfg;
  wr_tcpstack_config sc = {
      .loop = cfg->loop,
      .cbs = {tf_output, tf_flow, tf_data, tf_writable, tf_close},
      .user = p,
      .max_flows = cfg->max_flows,
      .max_flows_per_client = cfg->max_flows_per_client,
      .mtu = cfg->mtu,
  };
  int rv = wr_tcpstack_new(&sc, &p->stack);
  if (rv != WR_OK) {
    free(p);
    return rv;
  }
  *out = p;
  return WR_OK;
}

void wr_private_tcp_free(wr_private_tcp *p) {
  if (!p) return;
  /* The stack frees its flows without callbacks: let go of the streams and
   * the pflows here. */
  while (p->flows) {
    pflow *pf = p->flows;
    pf->f = NULL;
    pf->busy = 0;
    if (pf->st) wr_tunnel_stream_abandon(pf->st, RESET_CODE);
    pf->st = NULL;
    maybe_free(pf);
  }
  wr_tcpstack_free(p->stack);
  free(p);
}

int wr_private_tcp_input(wr_private_tcp *p, const uint8_t *pkt, size_t len, void *ingress) {
  return wr_tcpstack_input(p->stack, pkt, len, ingress);
}

const wr_tcpstack_stats *wr_private_tcp_stats(const wr_private_tcp *p) {
  return wr_tcpstack_get_stats(p->stack);
}
