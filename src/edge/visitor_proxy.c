/* One request proxied over a tunnel data stream (visitor_int.h, protocol.md
 * 4): the ConnectRequest (preamble + metadata in one write), the request
 * body visitor -> stream (length, de-chunked, or the WebSocket pipe), and
 * the response stream -> visitor (ConnectResponse, the HTTP/1.1 head with
 * hop-by-hop fields dropped, the body by length, chunked or until close).
 *
 * Two half machines run side by side while proxying: the request body
 * (enum rb_state) and the response (enum rs_state); the request ends when
 * both are done. Backpressure: visitor reads stop while the stream's send
 * queue is full (WR_AGAIN until on_writable); QUIC receive credit for
 * response bytes is returned only once their uv_write to the visitor
 * completed, so a slow visitor slows the connector instead of growing our
 * memory.
 *
 * The tunnel stream belongs to the tunnel server; the connection holds it
 * from open until it abandons it (no callbacks after that) or hears
 * on_close (the handle is gone after that). Nothing here is done from
 * inside a QUIC callback that would open streams or parse the next
 * request: that goes through wr__vconn_kick. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/connect.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"
#include "proto/stream_head.h"

#define MAX_RESP_HEADERS 256

static int ieq(const char *a, size_t n, const char *b) {
  return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* ---- the stream and the end of a request ------------------------------------------ */

/* Lets go of the data stream: |code| >= 0 aborts what is still open (RESET
 * + STOP_SENDING), -1 ends it normally (FIN if not sent yet). */
void wr__vconn_release_stream(vconn *c, int64_t code) {
  if (!c->r || !c->r->st) return;
  wr_tunnel_stream_abandon(c->r->st, code);
  c->r->st = NULL;
  c->r->stream_blocked = 0;
  c->gen++;
  c->v->stats.active_streams--;
}

/* Response and request body both done: next request. */
static void check_done(vconn *c) {
  if (c->closed || c->state != VC_PROXY || c->r->resp != RS_DONE) return;
  if (wr__vconn_body_complete(c)) {
    wr__vconn_end_request(c, 0);
    return;
  }
  /* The answer is complete while the visitor is still sending its body
   * (the origin did not need it): the connector is done with the stream;
   * read the rest of the body and drop it, so keep-alive survives. */
  wr__vconn_release_stream(c, 0);
  if (c->r->discarded > WR__VISITOR_DISCARD_MAX) {
    wr__vconn_end_request(c, 1);
  } else if (!c->r->discard) {
    c->r->discard = 1;
    wr__vconn_kick(c); /* drain what is buffered */
  }
}

/* ---- request body: visitor -> connector --------------------------------------- */

/* Writes body bytes to the stream (or drops them in discard mode).
 * Returns WR_OK or WR_AGAIN (blocked; *acc bytes were taken). */
static int fwd(vconn *c, const uint8_t *p, size_t n, int fin, size_t *acc) {
  *acc = 0;
  if (c->r->discard || !c->r->st) {
    if (c->r->body == RB_PIPE) { /* the pipe's other end is gone */
      wr__vconn_end_request(c, 1);
      return WR_AGAIN;
    }
    c->r->discard = 1;
    c->r->discarded += n;
    *acc = n;
    return WR_OK;
  }
  int rv = wr_tunnel_stream_write(c->r->st, p, n, fin, acc);
  c->r->up += *acc;
  if (c->r->body != RB_PIPE) wr_inspect_req_body(c->v->inspect, c->r->insp, p, *acc);
  if (rv == WR_AGAIN) {
    c->r->stream_blocked = 1;
    return WR_AGAIN;
  }
  if (rv != WR_OK) {
    /* The connector stopped reading (STOP_SENDING once its response was
     * complete, as cloudflared does) or the stream is closing. */
    wr_debug("visitor %" PRIu64 ": stream %" PRId64 " takes no more body (%s); dropping the rest",
             c->id, c->r->sid, wr_strerror(rv));
    if (c->r->body == RB_PIPE) {
      wr__vconn_end_request(c, 1);
      return WR_AGAIN;
    }
    c->r->discard = 1;
    c->r->discarded += n - *acc;
    *acc = n;
  }
  return WR_OK;
}

static void body_done(vconn *c) {
  c->r->body = RB_DONE;
  check_done(c);
}

/* The pump_* steps move one piece of the request body: each returns 1 to
 * go on, 0 to stop (blocked, waiting for bytes, or the request ended). */

static int pump_length(vconn *c) {
  size_t acc = 0;
  size_t n = c->in.len < c->r->body_left ? c->in.len : (size_t)c->r->body_left;
  if (n == 0) return 0;
  int rv = fwd(c, c->in.data, n, n == c->r->body_left, &acc);
  if (c->closed || c->state != VC_PROXY) return 0;
  wr_buf_consume(&c->in, acc);
  c->r->body_left -= acc;
  if (c->r->body_left == 0) body_done(c);
  return rv != WR_AGAIN;
}

static void chunked_malformed(vconn *c) {
  wr_buf_reset(&c->in);
  c->r->keep_alive = 0;
  if (c->r->status) {
    wr__vconn_abort(c, "malformed chunked request body");
  } else {
    c->r->body = RB_DONE; /* nothing more will be read */
    wr__vconn_local(c, 400, "The chunked request body is malformed.", 1);
  }
}

/* Decodes the next piece of chunked coding at the front of |in| and
 * forwards its data. */
static int pump_chunk_decode(vconn *c) {
  size_t used = 0, off = 0, dlen = 0, acc = 0;
  int rv = wr_http1_chunked_decode(&c->r->chunked, c->in.data, c->in.len, &used, &off, &dlen);
  if (rv != WR_OK) {
    chunked_malformed(c);
    return 0;
  }
  if (dlen) {
    rv = fwd(c, c->in.data + off, dlen, 0, &acc);
    size_t rem = dlen - acc;
    /* Keep the unsent data at the front, drop the framing around it. */
    if (rem) memmove(c->in.data + used - rem, c->in.data + off + acc, rem);
    wr_buf_consume(&c->in, used - rem);
    c->r->chunk_raw = rem;
    return rv != WR_AGAIN;
  }
  wr_buf_consume(&c->in, used);
  return used != 0 || c->r->chunked.done; /* else: need more bytes */
}

static int pump_chunked(vconn *c) {
  size_t acc = 0;
  int rv;
  if (c->r->chunk_raw) { /* de-chunked bytes a blocked write left behind */
    size_t n = c->r->chunk_raw < c->in.len ? c->r->chunk_raw : c->in.len;
    if (n == 0) return 0; /* cannot happen: they sit at the front of |in| */
    rv = fwd(c, c->in.data, n, 0, &acc);
    wr_buf_consume(&c->in, acc);
    c->r->chunk_raw -= acc;
    return rv != WR_AGAIN;
  }
  if (c->r->chunked.done) {
    rv = fwd(c, NULL, 0, 1, &acc);
    if (rv == WR_AGAIN) return 0;
    body_done(c);
    return 1;
  }
  return pump_chunk_decode(c);
}

/* HTTP/2 without Content-Length: what DATA brought, FIN with END_STREAM. */
static int pump_stream(vconn *c) {
  size_t acc = 0, n = c->in.len;
  if (n == 0 && !c->in_end) return 0;
  int rv = fwd(c, c->in.data, n, c->in_end, &acc);
  if (c->closed || c->state != VC_PROXY) return 0;
  wr_buf_consume(&c->in, acc);
  if (rv == WR_AGAIN) return 0;
  if (c->in_end && acc == n) {
    body_done(c);
    return 0;
  }
  return 1;
}

static int pump_pipe(vconn *c) {
  size_t acc = 0;
  if (c->in.len == 0) {
    if (c->sub && c->in_end) wr__vconn_end_request(c, 1); /* END_STREAM ends the pipe */
    return 0;
  }
  int rv = fwd(c, c->in.data, c->in.len, 0, &acc);
  if (c->closed || c->state != VC_PROXY) return 0;
  wr_buf_consume(&c->in, acc);
  return rv != WR_AGAIN;
}

/* Moves buffered request body bytes to the stream until it blocks or they
 * run out. */
static void pump_body(vconn *c) {
  int more = 1;
  while (more && !c->closed && c->state == VC_PROXY && !c->r->stream_blocked) {
    if (c->r->discard && c->r->discarded > WR__VISITOR_DISCARD_MAX) {
      c->r->keep_alive = 0;
      if (c->r->resp == RS_DONE) wr__vconn_end_request(c, 1);
      return;
    }
    switch (c->r->body) {
      case RB_LENGTH: more = pump_length(c); break;
      case RB_CHUNKED: more = pump_chunked(c); break;
      case RB_PIPE: more = pump_pipe(c); break;
      case RB_STREAM: more = pump_stream(c); break;
      default: more = 0; break;
    }
  }
}

/* ---- response: connector -> visitor ----------------------------------------------- */

static void consume_now(vconn *c, size_t n) {
  if (c->r->st && n) wr_tunnel_stream_consume(c->r->st, n);
}

static void resp_body(vconn *c, const uint8_t *data, size_t len, int fin, size_t credit) {
  char ch[24];
  if (len && c->r->resp != RS_PIPE && c->r->resp != RS_DONE)
    wr_inspect_resp_body(c->v->inspect, c->r->insp, data,
                         c->r->resp == RS_LENGTH && len > c->r->resp_left ? (size_t)c->r->resp_left : len);
  switch (c->r->resp) {
    case RS_LENGTH: {
      size_t n = len < c->r->resp_left ? len : (size_t)c->r->resp_left;
      if (n) wr__vconn_write(c, data, n, credit > n ? n : credit);
      if (credit > n) consume_now(c, credit - n);
      if (len > n)
        wr_debug("visitor %" PRIu64 ": stream %" PRId64 " sent %zu bytes past Content-Length",
                 c->id, c->r->sid, len - n);
      c->r->resp_left -= n;
      c->r->down += n;
      if (c->r->resp_left == 0) {
        c->r->resp = RS_DONE;
        check_done(c);
      } else if (fin) {
        wr__vconn_abort(c, "the connector ended the body before Content-Length");
      }
      return;
    }
    case RS_CHUNKED:
      if (len) {
        size_t hl = wr_http1_chunk_header(len, ch);
        wr__vconn_write3(c, ch, hl, data, len, "\r\n", 2, credit);
        c->r->down += len;
      } else {
        consume_now(c, credit);
      }
      if (fin) {
        if (c->rtrail.len) /* "0\r\n", the trailer section, the blank line */
          wr__vconn_write3(c, "0\r\n", 3, c->rtrail.data, c->rtrail.len, "\r\n", 2, 0);
        else
          wr__vconn_write(c, WR_HTTP1_LAST_CHUNK, strlen(WR_HTTP1_LAST_CHUNK), 0);
        wr_buf_free(&c->rtrail);
        c->r->resp = RS_DONE;
        check_done(c);
      }
      return;
    case RS_EOF:
    case RS_PIPE:
      if (len) {
        wr__vconn_write(c, data, len, credit);
        c->r->down += len;
      } else {
        consume_now(c, credit);
      }
      if (fin) {
        if (c->r->resp == RS_PIPE) {
          wr__vconn_end_request(c, 1); /* either side ending ends the pipe */
        } else {
          c->r->resp = RS_DONE;
          c->r->keep_alive = 0;
          check_done(c);
        }
      }
      return;
    default: /* RS_DONE: a body that must not be forwarded (HEAD, 204, 304) */
      consume_now(c, credit);
      return;
  }
}
/* What the response's own fields say about its framing. */
typedef struct resp_fields {
  int has_cl;
  uint64_t cl;        /* Content-Length, if has_cl */
  const char *upg;    /* Upgrade value, or NULL */
  size_t upg_len;
} resp_fields;

/* A Content-Length value: 1 to 18 digits. 0, or -1 if malformed. */
static int parse_content_length(const wr_http_header *h, uint64_t *out) {
  uint64_t x = 0;
  if (h->value_len == 0 || h->value_len > 18) return -1;
  for (size_t j = 0; j < h->value_len; j++) {
    if (h->value[j] < '0' || h->value[j] > '9') return -1;
    x = x * 10 + (uint64_t)(h->value[j] - '0');
  }
  *out = x;
  return 0;
}

/* Copies the end-to-end fields of the response (Content-Length once) from
 * |in| to |out|; fills |f|. -1 for an invalid or conflicting length. */
static int resp_filter(const wr_http_header *in, size_t nin, wr_http_header *out, size_t *nout,
                       resp_fields *f) {
  size_t n = 0;
  for (size_t i = 0; i < nin; i++) {
    const wr_http_header *h = &in[i];
    if (ieq(h->name, h->name_len, "Content-Length")) {
      uint64_t x = 0;
      if (parse_content_length(h, &x) != 0) return -1;
      if (f->has_cl && x != f->cl) return -1;
      if (f->has_cl) continue; /* one copy is enough */
      f->has_cl = 1;
      f->cl = x;
    }
    if (wr_http1_is_hop_by_hop(h->name, h->name_len)) {
      if (ieq(h->name, h->name_len, "Upgrade")) {
        f->upg = h->value;
        f->upg_len = h->value_len;
      }
      continue;
    }
    out[n++] = *h;
  }
  *nout = n;
  return 0;
}

/* The head of a 101: Content-Length means nothing after it; Connection and
 * Upgrade are the edge's to say. */
static void upgrade_fields(const resp_fields *f, wr_http_header *out, size_t *n) {
  size_t k = 0;
  for (size_t i = 0; i < *n; i++)
    if (!ieq(out[i].name, out[i].name_len, "Content-Length")) out[k++] = out[i];
  out[k++] = (wr_http_header){"Connection", 10, "Upgrade", 7};
  if (f->upg && f->upg_len)
    out[k++] = (wr_http_header){"Upgrade", 7, f->upg, f->upg_len};
  else
    out[k++] = (wr_http_header){"Upgrade", 7, "websocket", 9};
  *n = k;
}

/* How the body of a |status| response travels to the visitor: returns an
 * enum rs_state and adds the framing fields that go with it to |out|, or
 * returns WR_ERR_PROTO with |why| for a status the visitor must not get. */
static int resp_mode(vconn *c, int status, const resp_fields *f, wr_http_header *out, size_t *n,
                     const char **why) {
  int mode;
  if (status == 101) {
    if (!c->r->websocket) {
      *why = "The connector switched protocols for a request that did not ask to.";
      return WR_ERR_PROTO;
    }
    upgrade_fields(f, out, n);
    return RS_PIPE;
  }
  if (status < 200) {
    *why = "The connector sent an unexpected interim response.";
    return WR_ERR_PROTO;
  }
  if (c->r->is_head || status == 204 || status == 304) {
    mode = RS_DONE;
  } else if (f->has_cl) {
    mode = f->cl ? RS_LENGTH : RS_DONE;
  } else if (c->r->minor >= 1 && !c->sub) { /* HTTP/2 frames the body itself */
    mode = RS_CHUNKED;
    out[(*n)++] = (wr_http_header){"Transfer-Encoding", 17, "chunked", 7};
  } else {
    mode = RS_EOF;
    c->r->keep_alive = 0;
  }
  if (!c->r->keep_alive)
    out[(*n)++] = (wr_http_header){"Connection", 10, "close", 5};
  else if (c->r->minor == 0)
    out[(*n)++] = (wr_http_header){"Connection", 10, "keep-alive", 10};
  return mode;
}

/* Builds and sends the visitor's response head from the ConnectResponse
 * metadata. Returns WR_OK or an error after which |why| says what to tell
 * the visitor (502). */
static int send_head(vconn *c, const wr_connect_response *cr, const char **why) {
  wr_http_header in[MAX_RESP_HEADERS], out[MAX_RESP_HEADERS + 7];
  wr_httpmeta_response mr;
  resp_fields f = {0};
  size_t n = 0;
  int rv = wr_httpmeta_resp_decode(cr->meta, cr->nmeta, NULL, in, MAX_RESP_HEADERS, &mr);
  if (rv != WR_OK) {
    *why = "The connector sent an invalid response (bad status or headers).";
    return rv;
  }
  if (resp_filter(in, mr.nheaders, out, &n, &f) != 0) {
    *why = "The connector sent an invalid Content-Length.";
    return WR_ERR_PROTO;
  }
  wr_inspect_response(c->v->inspect, c->r->insp, mr.status, in, mr.nheaders);
  n += wr__vtls_resp_fields(c, out + n);
  int mode = resp_mode(c, mr.status, &f, out, &n, why);
  if (mode < 0) return mode;
  wr_buf hb;
  wr_buf_init(&hb, 256u * 1024u, NULL);
  rv = wr_http1_write_response_head(&hb, mr.status, NULL, out, n);
  if (rv != WR_OK) {
    wr_buf_free(&hb);
    *why = "The connector sent response headers that cannot be forwarded.";
    return rv;
  }
  wr__vconn_count_response(c, mr.status);
  wr__vconn_write(c, hb.data, hb.len, 0);
  wr_buf_free(&hb);
  c->r->resp = mode;
  c->r->resp_left = f.cl;
  if (mode == RS_PIPE) {
    c->r->body = RB_PIPE;
    wr__vconn_kick(c); /* visitor bytes already buffered go up the pipe */
  }
  return WR_OK;
}

/* Bytes for the response head arrived (already appended to rhead). */
static void resp_head(vconn *c, int fin) {
  char msg[600];
  wr_connect_response cr;
  size_t body_off = 0;
  int bad_preamble = 0;
  int rv = wr_stream_head_decode(c->rhead.data, c->rhead.len, &cr, &body_off, &bad_preamble);
  if (rv == WR_AGAIN) {
    if (c->rhead.len < WR_PREAMBLE_DATA_LEN) {
      if (fin) wr__vconn_fail(c, 502, "The connector closed the stream without a response.");
    } else if (fin) {
      wr__vconn_fail(c, 502, "The connector closed the stream before its response was complete.");
    } else if (c->rhead.len >= WR__VISITOR_RESP_HEAD_MAX) {
      wr__vconn_fail(c, 502, "The connector's response head is too large.");
    }
    return;
  }
  if (bad_preamble) {
    wr__vconn_fail(c, 502, "The connector answered with an invalid stream preamble.");
    return;
  }
  if (rv != WR_OK) {
    snprintf(msg, sizeof(msg), "The connector sent an invalid ConnectResponse (%s).",
             wr_strerror(rv));
    wr__vconn_fail(c, 502, msg);
    return;
  }
  if (cr.error_len) {
    snprintf(msg, sizeof(msg), "The connector could not serve this request: %.*s",
             (int)(cr.error_len > 500 ? 500 : cr.error_len), cr.error);
    wr_connect_response_free(NULL, &cr);
    wr__vconn_local(c, 502, msg, 0);
    return;
  }
  const char *why = NULL;
  rv = send_head(c, &cr, &why);
  wr_connect_response_free(NULL, &cr);
  if (rv != WR_OK) {
    wr__vconn_local(c, 502, why, 0);
    return;
  }
  size_t left = c->rhead.len - body_off;
  if (c->closed || c->state != VC_PROXY) return;
  /* The head buffer is done with: taken out of the connection (a long
   * response does not hold it), with the body bytes that came with the
   * head (their credit went back already). */
  uint8_t *head = c->rhead.data;
  c->rhead.data = NULL;
  c->rhead.len = c->rhead.cap = 0;
  if (left || fin) resp_body(c, head + body_off, left, fin, 0);
  wr_free(c->rhead.mem, head);
  if (!c->closed && c->state == VC_PROXY && c->r->resp == RS_DONE) check_done(c);
}

/* ---- tunnel stream callbacks ------------------------------------------------------ */

static int st_on_data(void *user, const uint8_t *data, size_t len, int fin) {
  vconn *c = user;
  if (c->closed || c->state != VC_PROXY) return 0;
  wr__vconn_activity(c);
  if (c->r->resp == RS_HEAD) {
    size_t room = WR__VISITOR_RESP_HEAD_MAX - c->rhead.len, take = len < room ? len : room;
    if (wr_buf_append(&c->rhead, data, take) != WR_OK) take = 0;
    /* Head bytes are held here, bounded: their credit goes back now. */
    consume_now(c, take);
    if (take < len) {
      consume_now(c, len - take);
      wr__vconn_fail(c, 502, "The connector's response head is too large.");
      return 0;
    }
    resp_head(c, fin);
    return 0;
  }
  resp_body(c, data, len, fin, len);
  return 0;
}

static void st_on_writable(void *user) {
  vconn *c = user;
  c->r->stream_blocked = 0;
  wr__vconn_kick(c); /* pump outside the QUIC callback */
}

/* The data stream ended (|closed|: closed, else reset) in response state
 * c->r->resp: a 502 saying |head| before the response head, the end of a
 * websocket, an abort saying |torn| in the middle of a body. A complete
 * response is only checked for its end when the stream closed. */
static void stream_ended(vconn *c, int closed, const char *head, const char *torn) {
  switch (c->r->resp) {
    case RS_HEAD:
      wr__vconn_fail(c, 502, head);
      break;
    case RS_PIPE:
      wr__vconn_end_request(c, 1);
      break;
    case RS_DONE:
      if (!closed) break;
      check_done(c);
      wr__vconn_kick(c); /* a body still to be read is now dropped */
      break;
    default:
      wr__vconn_abort(c, torn);
      break;
  }
}

static void st_on_reset(void *user, uint64_t code) {
  vconn *c = user;
  if (c->closed || c->state != VC_PROXY) return;
  stream_ended(c, 0, "The connector reset the stream before responding.", "the connector reset the stream");
}

static void st_on_close(void *user) {
  vconn *c = user;
  /* The handle is freed after this returns: forget it first. */
  if (c->r->st) {
    c->r->st = NULL;
    c->r->stream_blocked = 0;
    c->gen++;
    c->v->stats.active_streams--;
  }
  if (c->closed || c->state != VC_PROXY) return;
  stream_ended(c, 1, "The connection to the connector was lost before it responded.",
               "the data stream closed before the response was complete");
}

/* Response trailers. An HTTP/2 stream sends them as a trailing HEADERS
 * frame (visitor_h2.c); HTTP/1.1 keeps them for the chunked trailer
 * section when the visitor asked for them (RFC 9110 6.5: otherwise they may
 * be dropped), without the fields that frame or route a message. */
static void st_on_trailers(void *user, const wr_http_header *hs, size_t n) {
  vconn *c = user;
  if (c->closed || c->state != VC_PROXY) return;
  if (c->sub) { /* an HTTP/2 stream: a trailing HEADERS frame, TE or not */
    if (c->r->resp == RS_EOF) wr__vsub_trailers(c, hs, n);
    return;
  }
  if (c->r->resp != RS_CHUNKED || !c->r->te_trailers) return;
  wr_buf_reset(&c->rtrail);
  for (size_t i = 0; i < n; i++) {
    const wr_http_header *h = &hs[i];
    char name[256];
    if (h->name_len == 0 || h->name_len >= sizeof(name) || wr_http1_is_hop_by_hop(h->name, h->name_len) ||
        ieq(h->name, h->name_len, "Content-Length") || ieq(h->name, h->name_len, "Host") ||
        !wr_httpmeta_is_token(h->name, h->name_len) || memchr(h->value, '\r', h->value_len) ||
        memchr(h->value, '\n', h->value_len) || memchr(h->value, 0, h->value_len))
      continue;
    wr_httpmeta_canonical_key(h->name, h->name_len, name);
    if (wr_buf_printf(&c->rtrail, "%.*s: %.*s\r\n", (int)h->name_len, name, (int)h->value_len,
                      h->value) != WR_OK) {
      wr_buf_reset(&c->rtrail); /* over the head limit: none rather than some */
      return;
    }
  }
}

static const wr_tunnel_stream_callbacks st_cbs = {
    .on_data = st_on_data,
    .on_writable = st_on_writable,
    .on_reset = st_on_reset,
    .on_close = st_on_close,
    .on_trailers = st_on_trailers,
};

/* ---- the ConnectRequest ----------------------------------------------------------- */

static int drop_request_header(const wr_http_header *h, int expect_handled) {
  return ieq(h->name, h->name_len, "X-Forwarded-For") ||
         ieq(h->name, h->name_len, "X-Forwarded-Proto") ||
         ieq(h->name, h->name_len, "Cf-Connecting-IP") ||
         /* only the edge's Access gate may vouch for the visitor */
         ieq(h->name, h->name_len, "Cf-Access-Jwt-Assertion") ||
         (expect_handled && ieq(h->name, h->name_len, "Expect"));
}

/* Builds preamble + ConnectRequest into |out|. */
static int build_connect(vconn *c, const wr_http1_head *h, const char *path, size_t path_len,
                         int expect_handled, wr_buf *out) {
  wr_visitor *v = c->v;
  wr_http_header fw[WR__VISITOR_MAX_REQ_HEADERS + 4];
  wr_meta meta[WR__VISITOR_MAX_REQ_HEADERS + 8];
  size_t n = 0;
  /* Content-Length goes once, as plain digits ("5, 5" is one length to the
   * parser but a parse error to cloudflared). */
  char clen[24];
  int cl_done = 0;
  snprintf(clen, sizeof(clen), "%llu", (unsigned long long)h->content_length);
  for (size_t i = 0; i < h->nheaders && n < WR__VISITOR_MAX_REQ_HEADERS; i++) {
    const wr_http_header *x = &h->headers[i];
    if (drop_request_header(x, expect_handled)) continue;
    if (ieq(x->name, x->name_len, "Content-Length")) {
      if (cl_done) continue;
      cl_done = 1;
      fw[n++] = (wr_http_header){x->name, x->name_len, clen, strlen(clen)};
      continue;
    }
    fw[n++] = *x;
  }
  size_t iplen = strlen(c->ip);
  fw[n++] = (wr_http_header){"X-Forwarded-For", 15, c->ip, iplen};
  fw[n++] = (wr_http_header){"X-Forwarded-Proto", 17, v->scheme, strlen(v->scheme)};
  fw[n++] = (wr_http_header){"Cf-Connecting-IP", 16, c->ip, iplen};
  if (c->access_jwt)
    fw[n++] = (wr_http_header){"Cf-Access-Jwt-Assertion", 23, c->access_jwt, strlen(c->access_jwt)};
  unsigned flags = 0;
  if (c->r->websocket) flags |= WR_HTTPMETA_REQ_WEBSOCKET;
  if (c->r->body == RB_CHUNKED || c->r->body == RB_STREAM) flags |= WR_HTTPMETA_REQ_CHUNKED;

  wr_buf arena, dest;
  wr_buf_init(&arena, 256u * 1024u, NULL);
  wr_buf_init(&dest, 64u * 1024u, NULL);
  int rv = wr_httpmeta_req_encode(h->method, h->method_len, c->r->authority,
                                  strlen(c->r->authority), fw, n, flags, &arena,
                                  meta, sizeof(meta) / sizeof(meta[0]));
  if (rv < 0) goto out;
  size_t nmeta = (size_t)rv;
  rv = wr_buf_printf(&dest, "%s://%s%s%.*s", v->scheme, c->r->host,
                     path_len && path[0] == '/' ? "" : "/", (int)path_len, path);
  if (rv != WR_OK) goto out;
  uint8_t pre[WR_PREAMBLE_DATA_LEN];
  rv = wr_preamble_write(WR_PREAMBLE_DATA, pre, sizeof(pre));
  if (rv < 0) goto out;
  rv = wr_buf_append(out, pre, (size_t)rv);
  if (rv != WR_OK) goto out;
  wr_connect_request req = {
      .dest = (const char *)dest.data,
      .dest_len = dest.len,
      .type = c->r->websocket ? WR_CONNECT_WEBSOCKET : WR_CONNECT_HTTP,
      .has_meta = 1,
      .meta = meta,
      .nmeta = nmeta,
  };
  rv = wr_connect_request_encode(&req, NULL, out);
out:
  wr_buf_free(&arena);
  wr_buf_free(&dest);
  return rv;
}

/* ---- starting a request: route, open, send --------------------------------------- */

/* Resets the request record for head |h|. The connection is VC_PROXY from
 * here: the local answers expect it and undo it. */
static void req_begin(vconn *c, const wr_http1_head *h) {
  vreq *r = c->r;
  memset(r, 0, sizeof(*r));
  r->sid = -1;
  r->t0 = uv_now(c->v->loop);
  r->minor = h->minor;
  r->keep_alive = h->keep_alive;
  snprintf(r->method, sizeof(r->method), "%.*s", (int)h->method_len, h->method);
  r->is_head = ieq(h->method, h->method_len, "HEAD");
  for (size_t i = 0; i < h->nheaders; i++)
    if (ieq(h->headers[i].name, h->headers[i].name_len, "TE") &&
        wr_http1_has_token(h->headers[i].value, h->headers[i].value_len, "trailers"))
      r->te_trailers = 1;
  wr_buf_reset(&c->rtrail);
  r->body = h->body == WR_HTTP1_BODY_LENGTH ? (h->content_length ? RB_LENGTH : RB_NONE)
            : h->body == WR_HTTP1_BODY_CHUNKED ? RB_CHUNKED
                                               : RB_NONE;
  r->body_left = r->body == RB_LENGTH ? h->content_length : 0;
  /* An HTTP/2 request without Content-Length is rebuilt as chunked; its
   * DATA arrives unframed. */
  if (c->sub && r->body == RB_CHUNKED) r->body = RB_STREAM;
  wr_http1_chunked_init(&r->chunked);
  r->resp = RS_HEAD;
  c->state = VC_PROXY;
}

static void no_connector(vconn *c) {
  char msg[512];
  c->v->stats.no_connector++;
  snprintf(msg, sizeof(msg), "No connector is connected for tunnel %s (host %s).",
           c->r->tunnel_id, c->r->host);
  wr__vconn_local(c, 502, msg, 0);
}

/* Checks the target and finds the tunnel with a live connector. Returns 0,
 * or -1 after consuming the head (|used| bytes) and answering. */
static int route_request(vconn *c, const wr_http1_head *h, const wr__visitor_target *t,
                         size_t used) {
  wr_visitor *v = c->v;
  vreq *r = c->r;
  char msg[512];
  int bad_host = !t->auth || wr__visitor_canon_host(t->auth, t->auth_len, r->host,
                                                    sizeof(r->host), r->authority,
                                                    sizeof(r->authority)) != 0;
  if (ieq(h->method, h->method_len, "CONNECT") || !t->path || bad_host) {
    wr_buf_consume(&c->in, used);
    r->keep_alive = 0;
    wr__vconn_local(c, 400,
                    !t->path ? "This request-target is not supported."
                    : !t->auth ? "The request has no Host header."
                               : "The Host header is invalid.",
                    1);
    return -1;
  }
  if (wr__vtls_policy(c, t, used)) return -1;
  r->websocket = h->websocket && ieq(h->method, h->method_len, "GET") && r->body == RB_NONE;
  if (wr__visitor_mgmt_host(v, r->host)) return wr__visitor_mgmt_route(c, t, used);
  int rv = wr__visitor_route_lookup(v, r->host, c->route_waited, r->tunnel_id);
  c->route_waited = 0;
  if (rv == WR_AGAIN) { /* the head stays in |in|; parsed again when kicked */
    c->route_waited = 1;
    c->state = VC_ROUTE;
    wr__vconn_wait(c);
    return -1;
  }
  if (rv != WR_OK) {
    wr_buf_consume(&c->in, used);
    if (rv == WR_ERR_NOTFOUND) {
      v->stats.no_route++;
      snprintf(msg, sizeof(msg), "There is no route for host %s on this edge.", r->host);
      wr__vconn_local(c, 404, msg, 0);
    } else {
      wr__vconn_local(c, 502, "The edge could not look up the route for this host.", 0);
    }
    return -1;
  }
  /* Here, or on another edge sharing the store (edge/cluster.h). */
  if (wr_tunnel_server_reachable(v->ts, r->tunnel_id) == 0) {
    wr_buf_consume(&c->in, used);
    no_connector(c);
    return -1;
  }
  return 0;
}

/* Opens the data stream and writes preamble + ConnectRequest (with FIN
 * when no body follows). Consumes the head (|used| bytes; |h| is gone
 * afterwards). Returns 0, or -1 after answering. */
static int open_stream(vconn *c, const wr_http1_head *h, const wr__visitor_target *t,
                       size_t used, int expect) {
  wr_visitor *v = c->v;
  vreq *r = c->r;
  wr_buf out;
  wr_buf_init(&out, 1u << 20, NULL);
  int rv = build_connect(c, h, t->path, t->path_len, expect, &out);
  wr_buf_consume(&c->in, used); /* |h| points into c->in: not used below */
  if (rv != WR_OK) {
    wr_buf_free(&out);
    wr__vconn_local(c, 400, "The request cannot be forwarded through the tunnel.", 1);
    return -1;
  }
  rv = wr_tunnel_server_open_stream(v->ts, r->tunnel_id, &st_cbs, c, &r->st);
  if (rv != WR_OK) {
    wr_buf_free(&out);
    if (rv == WR_ERR_NOTFOUND)
      no_connector(c);
    else
      wr__vconn_local(c, 503, "The tunnel's connectors are at their stream limit.", 0);
    return -1;
  }
  v->stats.active_streams++;
  r->sid = wr_tunnel_stream_id(r->st);
  snprintf(r->conn_id, sizeof(r->conn_id), "%s", wr_tunnel_stream_conn_id(r->st));
  /* One write for preamble + ConnectRequest (protocol.md 4.1 hazard). */
  int fin = r->body == RB_NONE && !r->websocket;
  size_t acc = 0;
  rv = wr_tunnel_stream_write(r->st, out.data, out.len, fin, &acc);
  wr_buf_free(&out);
  if (rv != WR_OK) {
    wr__vconn_local(c, 502, "The edge could not write the request to the connector.", 0);
    return -1;
  }
  return 0;
}

/* The inspector's record of the request (before the head is consumed). */
static void inspect_begin(vconn *c, const wr_http1_head *h, const wr__visitor_target *t) {
  struct timespec ts;
  if (!c->v->inspect) return;
  clock_gettime(CLOCK_REALTIME, &ts);
  c->r->insp = wr_inspect_begin(c->v->inspect, c->r->tunnel_id, c->r->method, c->r->host,
                               t->path_len ? t->path : h->target, t->path_len ? t->path_len : h->target_len,
                               h->headers, h->nheaders,
                               (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, c->r->t0);
}

void wr__vconn_start_request(vconn *c, const wr_http1_head *h, size_t used) {
  vreq *r = c->r;
  wr__visitor_target t;
  req_begin(c, h);
  /* Where to: origin-form uses Host, absolute-form its own authority. */
  wr__visitor_split_target(h, &t);
  snprintf(r->target, sizeof(r->target), "%.*s", (int)(t.path_len ? t.path_len : h->target_len),
           t.path_len ? t.path : h->target);
  if (!c->route_waited && !c->access_waited && wr__visitor_over_rate(c, used)) return;
  if (c->v->acme && wr__visitor_acme_answer(c, &t, used)) return;
  if (c->v->access && wr__visitor_access(c, h, &t, used) != 0) return;
  if (route_request(c, h, &t, used) != 0) return;
  inspect_begin(c, h, &t);
  int expect = h->expect_continue && r->body != RB_NONE;
  if (open_stream(c, h, &t, used, expect) != 0) return;
  wr__vconn_arm(c, T_PROXY, c->v->proxy_idle_ms);
  if (expect && r->minor >= 1) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    wr__vconn_write(c, cont, sizeof(cont) - 1, 0);
  }
}

void wr__vconn_proxy_step(vconn *c) {
  pump_body(c);
  if (!c->closed && c->state == VC_PROXY && c->r->resp == RS_DONE) check_done(c);
}
