/* The edge side of a data stream (see proxy_int.h): bytes towards the edge
 * with backpressure, FIN and RESET, the ConnectResponse that opens every
 * answer, error answers, and the raw two-way pipe a websocket becomes after
 * the origin's 101. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/proxy_int.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/preamble.h"

/* --- the transport: QUIC, or another one's ops (proxy.h) -------------------- */

int wr__proxy_live(const pstream *s) { return s->qc != NULL || s->ops != NULL; }

static int edge_write(pstream *s, const uint8_t *data, size_t len, int fin, size_t *acc) {
  if (s->ops) return s->ops->write(s->ot, data, len, fin, acc);
  return wr_quic_stream_write(s->qc, s->sid, data, len, fin, acc);
}

void wr__proxy_consume(pstream *s, size_t n) {
  if (!n) return;
  if (s->ops)
    s->ops->consume(s->ot, n);
  else if (s->qc)
    wr_quic_stream_consume(s->qc, s->sid, n);
}

void wr__proxy_stop_sending(pstream *s) {
  if (!s->edge_fin) {
    if (s->ops)
      s->ops->stop_sending(s->ot);
    else if (s->qc)
      wr_quic_stream_stop_sending(s->qc, s->sid, 0);
  }
  s->edge_fin = 1;
}

void wr__proxy_drop_held(pstream *s) {
  wr__proxy_consume(s, s->held.len);
  wr_buf_reset(&s->held);
}

int wr__proxy_hold_input(pstream *s, const uint8_t *data, size_t len) {
  if (wr_buf_append(&s->held, data, len) == WR_OK) return WR_OK;
  wr__proxy_consume(s, len);
  wr__proxy_reset(s);
  return WR_ERR_NOMEM;
}

/* RESET_STREAM(0) (and STOP_SENDING(0) on the read side): undecodable
 * requests, and failures after the response started. */
void wr__proxy_reset(pstream *s) {
  if (!s->fin_sent) {
    if (s->ops)
      s->ops->reset(s->ot);
    else if (s->qc)
      wr_quic_stream_reset(s->qc, s->sid, 0);
  }
  wr__proxy_stop_sending(s);
  s->fin_sent = 1;
  s->fin_pending = 0;
  wr_buf_reset(&s->out);
  wr__proxy_drop_held(s);
  wr__proxy_detach(s, 0);
  wr__proxy_set_state(s, ST_DONE);
}

void wr__proxy_reject(pstream *s, const char *why) {
  wr_debug("data stream %lld reset: %s", (long long)s->sid, why);
  wr__proxy_reset(s);
}

/* The stream cannot take our bytes any more (the edge stopped it). */
static void stream_broken(pstream *s) {
  s->fin_sent = 1;
  s->fin_pending = 0;
  wr_buf_reset(&s->out);
  wr__proxy_detach(s, 0);
  wr__proxy_stop_sending(s);
  wr__proxy_drop_held(s);
  wr__proxy_set_state(s, ST_DONE);
}

/* --- backpressure: origin reads follow the QUIC send queue ---------------------- */

static void origin_pause(pstream *s) {
  if (s->h2s) {
    s->paused = 1; /* origin_h2.c stops returning HTTP/2 window */
    return;
  }
  if (s->o && !s->paused) {
    s->paused = 1;
    wr_conn_read_stop(s->o->conn);
  }
}

static void origin_resume(pstream *s) {
  if (s->paused) {
    s->paused = 0;
    if (s->o) wr_conn_read_start(s->o->conn);
    if (s->h2s) wr__oh2_resume(s);
  }
}

void wr__proxy_emit(pstream *s, const uint8_t *data, size_t len) {
  size_t acc = 0;
  int rv;
  if (!wr__proxy_live(s) || s->fin_sent || len == 0) return;
  if (s->out.len == 0) {
    rv = edge_write(s, data, len, 0, &acc);
    if (rv != WR_OK && rv != WR_AGAIN) {
      stream_broken(s);
      return;
    }
  }
  if (acc < len) {
    if (wr_buf_append(&s->out, data + acc, len - acc) != WR_OK) {
      wr__proxy_reset(s);
      return;
    }
    origin_pause(s);
  }
}

void wr__proxy_finish(pstream *s) {
  size_t acc;
  if (!wr__proxy_live(s) || s->fin_sent) return;
  if (s->out.len) {
    s->fin_pending = 1;
    return;
  }
  if (edge_write(s, NULL, 0, 1, &acc) != WR_OK) {
    stream_broken(s);
    return;
  }
  s->fin_sent = 1;
}

void wr__proxy_flush(pstream *s) {
  size_t acc = 0;
  int rv;
  if (!wr__proxy_live(s) || s->fin_sent) return;
  if (s->out.len) {
    rv = edge_write(s, s->out.data, s->out.len, s->fin_pending, &acc);
    if (rv != WR_OK && rv != WR_AGAIN) {
      stream_broken(s);
      return;
    }
    wr_buf_consume(&s->out, acc);
    if (s->out.len) return;
    if (s->fin_pending) {
      s->fin_pending = 0;
      s->fin_sent = 1;
    }
  } else if (s->fin_pending) {
    s->fin_pending = 0;
    wr__proxy_finish(s);
  }
  if (s->state == ST_BODY || s->state == ST_PIPE) origin_resume(s);
}

void wr__proxy_complete(pstream *s, int reuse) {
  wr__proxy_finish(s);
  wr__proxy_stop_sending(s);
  wr__proxy_drop_held(s);
  wr__proxy_detach(s, reuse);
  wr__proxy_set_state(s, ST_DONE);
}

/* --- answers ----------------------------------------------------------------------- */

static int status_class(int status) {
  return status >= 100 && status < 600 ? status / 100 : 0;
}

/* The answer's head on another transport: its own encoding of |r|. */
static int send_response_ops(pstream *s, const wr_connect_response *r) {
  if (!s->ops) return WR_OK; /* the transport forgot the stream */
  if (s->ops->respond(s->ot, r) != WR_OK) return WR_ERR_INTERNAL;
  s->resp_started = 1;
  return WR_OK;
}

/* Writes preamble + ConnectResponse in one stream write (protocol.md 4.1). */
int wr__proxy_send_response(pstream *s, const wr_connect_response *r) {
  wr_buf b;
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  int rv;
  if (!s->qc && (s->ops || s->ot)) return send_response_ops(s, r);
  wr_buf_init(&b, WR__PROXY_ARENA_MAX, NULL);
  if (wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre)) != WR_PREAMBLE_DATA_LEN ||
      (rv = wr_buf_append(&b, pre, sizeof(pre))) != WR_OK ||
      (rv = wr_connect_response_encode(r, NULL, &b)) != WR_OK) {
    wr_buf_free(&b);
    return WR_ERR_INTERNAL;
  }
  s->resp_started = 1;
  wr__proxy_emit(s, b.data, b.len);
  wr_buf_free(&b);
  return WR_OK;
}


int wr__proxy_send_head(pstream *s, int status, const wr_http_header *hs, size_t n) {
  wr_buf arena;
  wr_meta *meta = wr_xcalloc(n + 1, sizeof(*meta));
  wr_connect_response r;
  int m;
  wr_buf_init(&arena, WR__PROXY_ARENA_MAX, NULL);
  m = wr_httpmeta_resp_encode(status, hs, n, &arena, meta, n + 1);
  if (m >= 0) {
    memset(&r, 0, sizeof(r));
    r.error = "";
    r.has_meta = 1;
    r.meta = meta;
    r.nmeta = (size_t)m;
    s->p->stats.responses_by_code[status_class(status)]++;
    if (wr__proxy_send_response(s, &r) != WR_OK) wr__proxy_reset(s);
  }
  free(meta);
  wr_buf_free(&arena);
  return m < 0 ? m : WR_OK;
}

void wr__proxy_respond_error(pstream *s, const char *msg) {
  wr_connect_response r;
  s->p->stats.request_errors++;
  if (s->state != ST_HEAD || s->have_req)
    wr_error("Request failed error=\"%s\" dest=%.*s%s%s", msg,
             s->have_req ? (int)s->req.dest_len : 0, s->have_req ? s->req.dest : "",
             s->rule ? " originService=" : "", s->rule ? s->rule->service.display : "");
  wr__proxy_detach(s, 0);
  if (s->resp_started) {
    wr__proxy_reset(s);
    return;
  }
  memset(&r, 0, sizeof(r));
  r.error = msg;
  r.error_len = strlen(msg);
  r.has_meta = 0;
  if (wr__proxy_send_response(s, &r) != WR_OK) {
    wr__proxy_reset(s);
    return;
  }
  wr__proxy_complete(s, 0);
}

void wr__proxy_respond_errorf(pstream *s, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wr__proxy_respond_error(s, msg);
}

void wr__proxy_respond_local(pstream *s, int status, const wr_http_header *hs, size_t n,
                             const uint8_t *body, size_t blen) {
  int rv = wr__proxy_send_head(s, status, hs, n);
  if (rv != WR_OK) {
    wr__proxy_respond_errorf(s, "invalid response: %s", wr_strerror(rv));
    return;
  }
  if (s->state == ST_DONE) return; /* the stream was reset */
  wr__proxy_emit(s, body, blen);
  wr__proxy_complete(s, 0);
}

/* --- the websocket pipe -------------------------------------------------------------- */

void wr__proxy_pipe_start(pstream *s) {
  wr__proxy_set_state(s, ST_PIPE);
  s->rb = RB_PIPE;
  s->hold = 0;
  s->resp_keepalive = 0;
  if (s->held.len) {
    size_t n = s->held.len;
    if (wr__proxy_origin_write(s, s->held.data, n) != WR_OK) return;
    s->credit_owed += n;
    wr_buf_reset(&s->held);
    wr__proxy_return_credit(s);
  }
  if (s->edge_fin) wr__proxy_pipe_edge_fin(s); /* the edge already ended */
}

void wr__proxy_pipe_edge_fin(pstream *s) {
  if (s->state == ST_PIPE && s->o) {
    /* Let the queued bytes out to the origin, then FIN the stream. */
    wr_conn_shutdown(s->o->conn);
    wr__proxy_finish(s);
    wr__proxy_set_state(s, ST_DONE);
  }
}
