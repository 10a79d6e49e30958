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
#include "proto/stream_head.h"

/* ConnectResponse larger than this is refused (the connector sends a few
 * bytes: an error string and no metadata for tcp). */
#define HEAD_MAX 8192
/* Application code when the edge gives up a stream (as cloudflared's 0). */
#define RESET_CODE 0

struct wr_private_tcp {
  wr_private_tcp_config cfg;
  wr_private_tcp_ops ops;
  void *ops_user;
  wr_tcpstack *stack;
  struct pflow *flows;    /* every live pflow, for wr_private_tcp_free */
  wr_private_tcp_stats st;
};

typedef struct pflow {
  wr_private_tcp *p;
  wr_tcpflow *f;          /* NULL once the TCP side is done */
  void *st;               /* the ops' stream; NULL once the stream side is done */
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

static void drop_stream(pflow *pf, int64_t code) {
  if (pf->st) pf->p->ops.abandon(pf->st, code);
  pf->st = NULL;
}

/* Both sides reset: the client gets RST, the connector RESET_STREAM. */
static void fail(pflow *pf, const char *why) {
  if (why) wr_log_write(WR_LOG_DEBUG, "private tcp %s: %s", pf->dest, why);
  if (pf->f) wr_tcpflow_abort(pf->f);
  pf->f = NULL;
  drop_stream(pf, RESET_CODE);
  maybe_free(pf);
}

/* ---- connector -> client ------------------------------------------------------ */

static void flush_down(pflow *pf) {
  if (!pf->f || !pf->answered) return;
  pf->busy++; /* the write may deliver this flow's on_close */
  if (pf->down.len) {
    size_t n = wr_tcpflow_write(pf->f, pf->down.data, pf->down.len);
    wr_buf_consume(&pf->down, n);
    if (n && pf->st) pf->p->ops.consume(pf->st, n);
  }
  if (!pf->down.len && pf->down_fin && pf->f) wr_tcpflow_shutdown_write(pf->f);
  pf->busy--;
  maybe_free(pf);
}

/* Reads the preamble + ConnectResponse (proto/stream_head.h). Returns 1
 * when the stream is open for data (leftover bytes appended to |down|), 0
 * to wait, -1 after failing the flow. */
static int take_head(pflow *pf, int fin) {
  wr_private_tcp *p = pf->p;
  wr_connect_response cr;
  size_t used = 0;
  int bad_preamble = 0;
  int rv = wr_stream_head_decode(pf->head.data, pf->head.len, &cr, &used, &bad_preamble);
  if (rv == WR_AGAIN) {
    if (!fin && pf->head.len < HEAD_MAX) return 0;
    p->st.bad_responses++;
    fail(pf, fin ? "the connector closed the stream without a response"
                 : "the connector's response head is too large");
    return -1;
  }
  if (rv != WR_OK) {
    p->st.bad_responses++;
    fail(pf, bad_preamble ? "invalid stream preamble from the connector" : "invalid ConnectResponse");
    return -1;
  }
  if (cr.error_len) {
    /* The connector could not dial: the client sees its connection reset,
     * as if the host had refused it. */
    p->st.connector_refused++;
    wr_log_write(WR_LOG_INFO, "private tcp %s: the connector refused: %.*s", pf->dest,
                 (int)(cr.error_len > 300 ? 300 : cr.error_len), cr.error);
    wr_connect_response_free(NULL, &cr);
    fail(pf, NULL);
    return -1;
  }
  wr_connect_response_free(NULL, &cr);
  wr_buf_append(&pf->down, pf->head.data + used, pf->head.len - used);
  p->ops.consume(pf->st, used); /* the data part returns credit when written */
  wr_buf_free(&pf->head);
  pf->answered = 1;
  return 1;
}

static int st_data(void *user, const uint8_t *data, size_t len, int fin) {
  pflow *pf = user;
  if (!pf->answered) {
    /* The head is bounded, the payload that may follow it in the same
     * chunk is not: only what fits goes to |head|, the rest to |down|. */
    size_t room = HEAD_MAX - pf->head.len, take = len < room ? len : room;
    if (take && wr_buf_append(&pf->head, data, take) != WR_OK) {
      fail(pf, "out of memory");
      return 0;
    }
    data += take;
    len -= take;
    if (take_head(pf, fin) <= 0) return 0;
  }
  if (len && wr_buf_append(&pf->down, data, len) != WR_OK) {
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
  int rv = pf->p->ops.write(pf->st, NULL, 0, 1, &acc);
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

static void st_reset(void *user, uint64_t code) {
  pflow *pf = user;
  (void)code;
  pf->p->st.connector_resets++;
  fail(pf, "the connector reset the stream");
}

static void st_close(void *user) {
  pflow *pf = user;
  pf->st = NULL;
  /* A stream that ended after the connector's FIN leaves bytes to write and
   * then the client's FIN (flush_down). One that ended before (connection
   * lost) must reset the client, or it would wait forever. */
  if (pf->f && !pf->down_fin) {
    pf->p->st.connector_resets++;
    wr_tcpflow_abort(pf->f);
    pf->f = NULL;
  }
  maybe_free(pf);
}

static const wr_tunnel_stream_callbacks st_cbs = {
    .on_data = st_data, .on_writable = st_writable, .on_reset = st_reset, .on_close = st_close};

static size_t tf_data(void *user, const uint8_t *data, size_t len) {
  pflow *pf = user;
  if (!pf->st) return len; /* nobody to take them: the connector is gone */
  if (!len) {
    send_up_fin(pf);
    return 0;
  }
  size_t acc = 0;
  int rv = pf->p->ops.write(pf->st, data, len, 0, &acc);
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
  if (reason != WR_TCPFLOW_CLOSED) pf->p->st.client_resets++;
  drop_stream(pf, reason == WR_TCPFLOW_CLOSED ? -1 : RESET_CODE);
  maybe_free(pf);
}

/* ---- new flows -------------------------------------------------------------------- */

/* Preamble + ConnectRequest type tcp, in one write (protocol.md 4.1). */
static int send_request(pflow *pf) {
  wr_buf out;
  wr_buf_init(&out, 4096, NULL);
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  int rv = wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre));
  if (rv >= 0) rv = wr_buf_append(&out, pre, (size_t)rv);
  wr_connect_request req = {
      .dest = pf->dest, .dest_len = strlen(pf->dest), .type = WR_CONNECT_TCP, .has_meta = 0};
  if (rv == WR_OK) rv = wr_connect_request_encode(&req, NULL, &out);
  size_t acc = 0;
  if (rv == WR_OK) rv = pf->p->ops.write(pf->st, out.data, out.len, 0, &acc);
  wr_buf_free(&out);
  return rv;
}

static int tf_flow(void *user, wr_tcpflow *f, void *ingress, const wr_ipaddr *src, uint16_t sport,
                   const wr_ipaddr *dst, uint16_t dport, void **flow_user) {
  wr_private_tcp *p = user;
  (void)sport;
  pflow *pf = calloc(1, sizeof(*pf));
  if (!pf) return -1;
  pf->p = p;
  wr_buf_init(&pf->head, HEAD_MAX, NULL);
  wr_buf_init(&pf->down, 64u << 20, NULL); /* bounded by the QUIC stream window */
  char ip[64];
  wr_ipaddr_format(dst, ip, sizeof(ip));
  snprintf(pf->dest, sizeof(pf->dest), dst->version == 6 ? "[%s]:%u" : "%s:%u", ip,
           (unsigned)dport);
  int rv = p->ops.open(p->ops_user, ingress, src, dst, &st_cbs, pf, &pf->st);
  if (rv == WR_OK && (rv = send_request(pf)) != WR_OK) drop_stream(pf, RESET_CODE);
  if (rv != WR_OK) {
    wr_log_write(WR_LOG_INFO, "private tcp %s: no data stream to the connector: %s", pf->dest,
                 wr_strerror(rv));
    wr_buf_free(&pf->head);
    wr_buf_free(&pf->down);
    free(pf);
    return -1;
  }
  p->st.streams_opened++;
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
  p->ops.output(p->ops_user, ingress, pkt, len);
}

/* ---- the router's operations ---------------------------------------------------------- */

static int r_open(void *user, void *ingress, const wr_ipaddr *src, const wr_ipaddr *dst,
                  const wr_tunnel_stream_callbacks *cbs, void *cb_user, void **stream) {
  wr_router_target t;
  wr_tunnel_stream *st = NULL;
  int rv = wr_router_lookup(user, ingress, src, dst, &t);
  if (rv == WR_OK) rv = wr_router_open_stream(user, &t, cbs, cb_user, &st);
  if (rv == WR_OK) *stream = st;
  return rv;
}

static int r_write(void *st, const uint8_t *data, size_t len, int fin, size_t *accepted) {
  return wr_tunnel_stream_write(st, data, len, fin, accepted);
}

static void r_consume(void *st, size_t n) { wr_tunnel_stream_consume(st, n); }

static void r_abandon(void *st, int64_t code) { wr_tunnel_stream_abandon(st, code); }

static void r_output(void *user, void *ingress, const uint8_t *pkt, size_t len) {
  wr_router_output(user, ingress, pkt, len);
}

static const wr_private_tcp_ops router_ops = {r_open, r_write, r_consume, r_abandon, r_output};

static void r_hook(void *user, wr_router_ingress *in, const wr_ip_packet *ip, const uint8_t *pkt,
                   size_t len) {
  (void)ip;
  wr_private_tcp_input(user, pkt, len, in);
}

static void r_forget(void *user, wr_router_ingress *in) { wr_private_tcp_forget(user, in); }

/* ---- life ---------------------------------------------------------------------------------- */

int wr_private_tcp_new(const wr_private_tcp_config *cfg, wr_private_tcp **out) {
  if (!cfg || !out || !cfg->loop || (!cfg->router && !cfg->ops)) return WR_ERR_INVAL;
  const wr_private_tcp_ops *ops = cfg->ops ? cfg->ops : &router_ops;
  if (!ops->open || !ops->write || !ops->consume || !ops->abandon || !ops->output)
    return WR_ERR_INVAL;
  wr_private_tcp *p = calloc(1, sizeof(*p));
  if (!p) return WR_ERR_NOMEM;
  p->cfg = *cfg;
  p->ops = *ops;
  p->ops_user = cfg->ops ? cfg->ops_user : cfg->router;
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
  if (!cfg->ops) {
    wr_router_set_tcp_input(cfg->router, r_hook, p);
    wr_router_set_tcp_forget(cfg->router, r_forget);
  }
  *out = p;
  return WR_OK;
}

void wr_private_tcp_free(wr_private_tcp *p) {
  if (!p) return;
  if (!p->cfg.ops) {
    wr_router_set_tcp_input(p->cfg.router, NULL, NULL);
    wr_router_set_tcp_forget(p->cfg.router, NULL);
  }
  /* The stack frees its flows without callbacks: let go of the streams and
   * the pflows here. */
  while (p->flows) {
    pflow *pf = p->flows;
    pf->f = NULL;
    pf->busy = 0;
    drop_stream(pf, RESET_CODE);
    maybe_free(pf);
  }
  wr_tcpstack_free(p->stack);
  free(p);
}

int wr_private_tcp_input(wr_private_tcp *p, const uint8_t *pkt, size_t len, void *ingress) {
  return wr_tcpstack_input(p->stack, pkt, len, ingress);
}

void wr_private_tcp_forget(wr_private_tcp *p, void *ingress) {
  if (p) wr_tcpstack_forget_ingress(p->stack, ingress);
}

const wr_tcpstack_stats *wr_private_tcp_stack_stats(const wr_private_tcp *p) {
  return wr_tcpstack_get_stats(p->stack);
}

const wr_private_tcp_stats *wr_private_tcp_get_stats(const wr_private_tcp *p) { return &p->st; }
