/* What HTTP/2 (visitor_h2.c) and HTTP/3 (visitor_h3.c) request streams
 * share (visitor_int.h, vsub):
 *
 *   header block ──wr_h2req──> HTTP/1.1 head ──> stream vconn (visitor.c)
 *   DATA ──wr__vsub_input──> its input; given back (window update) only
 *        once the vconn passed it to the tunnel stream
 *   stream vconn output (HTTP/1.1 head + raw body) ──> |out> ──> the
 *        protocol's HEADERS (wr__vsub_head) and DATA (wr__vsub_take)
 *
 * Flow control ties the two sides together without buffering a body: the
 * visitor never has more than one stream window buffered in the vconn, and
 * response bytes return their tunnel (QUIC) credit only once the protocol
 * took them for a DATA frame. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/err.h"

void wr__vsub_init(vsub *x, const vsub_ops *ops, void *owner) {
  memset(x, 0, sizeof(*x));
  x->ops = ops;
  x->owner = owner;
  wr_buf_init(&x->out, WR__VSUB_OUT_MAX, NULL);
  wr_fields_init(&x->trl, WR__VSUB_HEAD_MAX);
}

void wr__vsub_drop_sc(vsub *x) {
  vconn *sc = x->sc;
  if (!sc) return;
  x->sc = NULL;
  sc->sx = NULL;
  wr__vconn_close_now(sc);
}

void wr__vsub_free(vsub *x) {
  wr__vsub_drop_sc(x);
  wr_buf_free(&x->out);
  wr_fields_free(&x->trl);
}

int wr__vsub_start(vsub *x, wr_visitor *v, const vsub_parent *p, wr_h2req *req, int eos,
                   size_t window) {
  wr_buf head;
  wr_buf_init(&head, 2 * WR__VSUB_HEAD_MAX, NULL);
  int rv = wr_h2req_head(req, eos, &head);
  x->websocket = req->websocket;
  wr_h2req_free(req);
  if (rv != WR_OK) {
    int status = rv == WR_ERR_LIMIT ? 431 : 400;
    wr_buf_free(&head);
    x->head_sent = x->done = 1;
    v->stats.requests++;
    v->stats.responses_by_class[status / 100]++;
    return status;
  }
  vconn *sc = wr__vconn_sub_new(v, p, head.len + window);
  if (wr_buf_append(&sc->in, head.data, head.len) != WR_OK) abort(); /* sized for it */
  x->head_len = head.len;
  wr_buf_free(&head);
  sc->in_end = eos;
  sc->sx = x;
  sc->sops = x->ops;
  x->sc = sc;
  wr__vconn_kick(sc); /* runs outside the protocol's callbacks */
  return 0;
}

int wr__vsub_input(vsub *x, const uint8_t *data, size_t len) {
  vconn *sc = x->sc;
  if (!sc || sc->closed || sc->state == VC_CLOSING) {
    x->ops->consume(x, len); /* nobody takes these bytes: the window goes back at once */
    return WR_OK;
  }
  if (wr_buf_append(&sc->in, data, len) != WR_OK) {
    /* Past the window it was given (the protocol checks windows). */
    x->ops->consume(x, len);
    wr__vconn_close_now(sc); /* the stream is reset */
    return WR_ERR_LIMIT;
  }
  x->in_total += len;
  wr__vconn_activity(sc); /* an upload keeps the request alive, as on HTTP/1.1 */
  wr__vconn_kick(sc);
  return WR_OK;
}

void wr__vsub_input_end(vsub *x) {
  if (!x->sc) return;
  x->sc->in_end = 1;
  wr__vconn_kick(x->sc);
}

/* A gRPC response (content-type application/grpc...) with its status in
 * the head. */
static int has_grpc_status(const wr_h2resp *rh) {
  int grpc = 0, status = 0;
  for (size_t i = 0; i < rh->nfields; i++) {
    const wr_http_header *f = &rh->fields[i];
    if (f->name_len == 11 && memcmp(f->name, "grpc-status", 11) == 0) status = 1;
    if (f->name_len == 12 && memcmp(f->name, "content-type", 12) == 0 && f->value_len >= 16 &&
        strncasecmp(f->value, "application/grpc", 16) == 0)
      grpc = 1;
  }
  return grpc && status;
}

int wr__vsub_head(vsub *x, wr_h2resp *rh, size_t *used) {
  *used = 0;
  int rv = wr_h2resp_from_http1(x->out.data + x->out_off, x->out.len - x->out_off,
                                x->sc ? x->sc->r->method : NULL, x->websocket, rh, used);
  if (rv == WR_AGAIN) return x->done ? -1 : 0;
  if (rv != WR_OK) return -1;
  /* A gRPC status in the head is a Trailers-Only response: gRPC clients
   * want it as one HEADERS frame that ends the stream, so it waits for the
   * end (the body is empty) instead of going out with a DATA frame after it. */
  if (!x->done && rh->status >= 200 && has_grpc_status(rh)) return 0;
  return 1;
}

int wr__vsub_bare(const vsub *x, size_t used) {
  return x->done && x->out.len - x->out_off == used && x->trl.n == 0;
}

size_t wr__vsub_take(vsub *x, uint8_t *buf, size_t len) {
  size_t have = x->out.len - x->out_off, n = have < len ? have : len;
  if (!n) return 0;
  memcpy(buf, x->out.data + x->out_off, n);
  x->out_off += n;
  size_t k = n < x->credit ? n : x->credit;
  x->credit -= k;
  if (k && x->sc && x->sc->r->st) wr_tunnel_stream_consume(x->sc->r->st, k);
  if (x->out_off == x->out.len) {
    wr_buf_reset(&x->out);
    x->out_off = 0;
  } else if (x->out_off > 64u * 1024u) {
    wr_buf_consume(&x->out, x->out_off);
    x->out_off = 0;
  }
  return n;
}

/* ---- the stream vconn's side (called by visitor.c) ----------------------------------- */

void wr__vsub_write(vconn *sc, const void *a, size_t alen, const void *b, size_t blen,
                    const void *d, size_t dlen, size_t credit) {
  vsub *x = sc->sx;
  if (!x) return;
  if (wr_buf_append(&x->out, a, alen) != WR_OK || wr_buf_append(&x->out, b, blen) != WR_OK ||
      wr_buf_append(&x->out, d, dlen) != WR_OK) {
    wr__vconn_close_now(sc); /* cannot happen: tunnel credit bounds |out| */
    return;
  }
  x->credit += credit;
  x->ops->pump(x);
}

void wr__vsub_update(vconn *sc) {
  vsub *x = sc->sx;
  if (!x) return;
  size_t head = sc->state == VC_HEAD || sc->state == VC_ROUTE ? x->head_len : 0;
  size_t held = sc->in.len > head ? sc->in.len - head : 0;
  uint64_t pending = x->in_total - x->in_acked;
  if (pending <= held) return;
  x->in_acked += pending - held;
  x->ops->consume(x, pending - held);
}

void wr__vsub_done(vconn *sc) {
  vsub *x = sc->sx;
  if (!x) return;
  x->done = 1;
  x->ops->pump(x);
}

void wr__vsub_trailers(vconn *sc, const wr_http_header *hs, size_t n) {
  vsub *x = sc->sx;
  if (!x || x->done) return;
  wr_fields_reset(&x->trl);
  for (size_t i = 0; i < n; i++) {
    const wr_http_header *f = &hs[i];
    if (f->name_len == 0 || f->name[0] == ':' || wr_http1_is_hop_by_hop(f->name, f->name_len) ||
        (f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0) ||
        (f->name_len == 4 && strncasecmp(f->name, "host", 4) == 0))
      continue;
    if (wr_fields_add(&x->trl, f->name, f->name_len, f->value, f->value_len, 1) == WR_ERR_LIMIT)
      break;
  }
}

void wr__vsub_closed(vconn *sc, int reset) {
  vsub *x = sc->sx;
  if (!x) return;
  sc->sx = NULL;
  x->sc = NULL;
  /* Body bytes it held never reach the tunnel: their window goes back. */
  if (x->in_total > x->in_acked) {
    uint64_t n = x->in_total - x->in_acked;
    x->in_acked = x->in_total;
    x->ops->consume(x, n);
  }
  x->credit = 0; /* the tunnel stream is released */
  x->ops->closed(x, reset || !x->done);
}
