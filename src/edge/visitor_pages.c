/* The visitor front's own answers (visitor_int.h): the small HTML pages the
 * edge sends instead of an origin's response (400, 404, 408, 429, 431,
 * 502, 503, 504), and the response counters every answer goes through.
 * A page is only possible before the response head went out; after that an
 * error can only break the response (wr__vconn_abort). Pages of 5xx are
 * logged with the tunnel, connection and stream they concern. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"

void wr__vconn_count_response(vconn *c, int status) {
  wr_visitor_stats *st = &c->v->stats;
  wr__vconn_req(c)->status = status;
  st->requests++;
  if (status >= 100 && status < 600) st->responses_by_class[status / 100]++;
}

static size_t html_escape(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    const char *rep = NULL;
    switch (*s) {
      case '&': rep = "&amp;"; break;
      case '<': rep = "&lt;"; break;
      case '>': rep = "&gt;"; break;
      case '"': rep = "&quot;"; break;
      case '\'': rep = "&#39;"; break;
      default: break;
    }
    if (rep) {
      size_t l = strlen(rep);
      memcpy(out + o, rep, l);
      o += l;
    } else if ((unsigned char)*s >= 0x20 && *s != 0x7f) {
      out[o++] = *s;
    }
  }
  out[o] = '\0';
  return o;
}

int wr__vconn_answer(vconn *c, int status, const char *ctype, const wr_http_header *extra,
                     size_t nextra, int close, const char *body, size_t blen) {
  char clen[24];
  wr_http_header hd[8];
  size_t nh = 0;
  snprintf(clen, sizeof(clen), "%zu", blen);
  hd[nh++] = (wr_http_header){"Content-Type", 12, ctype, strlen(ctype)};
  hd[nh++] = (wr_http_header){"Content-Length", 14, clen, strlen(clen)};
  hd[nh++] = (wr_http_header){"Cache-Control", 13, "no-store", 8};
  for (size_t i = 0; i < nextra && nh < 7; i++) hd[nh++] = extra[i];
  if (close) hd[nh++] = (wr_http_header){"Connection", 10, "close", 5};
  wr_buf hb;
  wr_buf_init(&hb, 16384, NULL);
  int rv = wr_http1_write_response_head(&hb, status, NULL, hd, nh);
  if (rv != WR_OK) {
    wr_buf_free(&hb);
    wr__vconn_close_now(c);
    return rv;
  }
  wr__vconn_count_response(c, status);
  wr__vconn_write3(c, hb.data, hb.len, body, c->r->is_head ? 0 : blen, NULL, 0, 0);
  wr_buf_free(&hb);
  return WR_OK;
}

/* Answers the current request from the edge itself, with |extra| (or NULL)
 * among the headers. */
void wr__vconn_local_h(vconn *c, int status, const char *msg, int force_close,
                       const wr_http_header *extra) {
  if (c->closed || c->state == VC_CLOSING) return;
  wr__vconn_req(c);
  if (c->r->status) { /* the head went out already: it can only break */
    wr__vconn_abort(c, msg);
    return;
  }
  wr__vconn_release_stream(c, 0);
  int close = force_close || !c->r->keep_alive || !wr__vconn_body_complete(c);
  const char *reason = wr_http1_reason(status);
  char esc[1024], body[1536];
  html_escape(msg, esc, sizeof(esc));
  int blen = snprintf(body, sizeof(body),
                      "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
                      "<body><h1>%d %s</h1>\n<p>%s</p>\n<hr><p>warren-edge</p></body></html>\n",
                      status, reason, status, reason, esc);
  if (blen < 0) blen = 0;
  if ((size_t)blen >= sizeof(body)) blen = (int)sizeof(body) - 1;
  if (wr__vconn_answer(c, status, "text/html; charset=utf-8", extra, extra ? 1 : 0, close, body,
                       (size_t)blen) != WR_OK)
    return;
  if (status >= 500)
    wr_warn("visitor %" PRIu64 " (%s): %s %s%s: %d %s tunnel=%s connection=%s stream=%" PRId64,
            c->id, c->ip, c->r->method[0] ? c->r->method : "-", c->r->host, c->r->target, status,
            msg, c->r->tunnel_id[0] ? c->r->tunnel_id : "-", c->r->conn_id[0] ? c->r->conn_id : "-",
            c->r->sid);
  wr__vconn_end_request(c, close);
}

void wr__vconn_local(vconn *c, int status, const char *msg, int force_close) {
  wr__vconn_local_h(c, status, msg, force_close, NULL);
}

/* An error before or after the response head: a page, or a broken response. */
void wr__vconn_fail(vconn *c, int status, const char *msg) {
  if (wr__vconn_req(c)->status)
    wr__vconn_abort(c, msg);
  else
    wr__vconn_local(c, status, msg, 0);
}
