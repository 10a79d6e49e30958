/* The HTTPS visitor front's TLS layer (visitor_int.h). A connection of an
 * HTTPS front starts in VC_TLS:
 *
 *   ClientHello bytes ──SNI──> certificate: uploaded (certs.h), else the
 *   route lookup (visitor_route.c, maybe on the store thread: tls_wait)
 *   and one issued by the edge CA (prepared when the name was routed, or
 *   signed on the worker pool now: tls_wait again), else the
 *   unrecognized_name alert
 *   ──> GnuTLS session (the zone's minimum version, ALPN h2 and
 *   http/1.1) ──> handshake ──> VC_HEAD, and from then on the HTTP/1.1
 *   front of visitor.c runs unchanged over the plaintext, or with ALPN h2,
 *   VC_H2 and the HTTP/2 front of visitor_h2.c.
 *
 * The name is read before GnuTLS sees the connection (proto/tls_hello.h)
 * so that the choice may wait for the store thread and an unknown name is
 * refused without loading anybody's key. Plaintext goes into c->in as
 * visitor.c's reads would, and gathered output is encrypted as it is
 * flushed (wr__vtls_wrap), so that backpressure and the one-write-per-
 * iteration batching stay as they are. Keys never reach a log line. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/visitor_int.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/tls_hello.h"

/* h2 first (visitor_h2.c); the management hostname's WebSocket is HTTP/1.1. */
#define ALPN "h2,http/1.1"
#define ALPN_H1 "http/1.1"

void wr__vtls_start(vconn *c) {
  c->tls_mode = 1;
  c->state = VC_TLS;
  wr_buf_init(&c->hello, WR_TLS_HELLO_MAX + WR__VISITOR_READ_CHUNK, NULL);
  wr__vconn_arm(c, T_HANDSHAKE, c->v->header_timeout_ms);
}

void wr__vtls_free(vconn *c) {
  wr_buf_free(&c->hello);
  if (c->tls) wr_tls_free(c->tls);
  c->tls = NULL;
  wr_cert_release(c->cert); /* after the session that used its credentials */
  c->cert = NULL;
}

int wr__vtls_input(vconn *c, const uint8_t *data, size_t len) {
  int rv = c->tls ? wr_tls_feed(c->tls, data, len) : wr_buf_append(&c->hello, data, len);
  if (rv != WR_OK) {
    wr_debug("visitor %" PRIu64 " (%s): TLS input over its limit", c->id, c->ip);
    wr__vconn_close_now(c);
    return rv;
  }
  c->tls_starved = 0;
  return WR_OK;
}

void wr__vtls_input_eof(vconn *c) {
  if (!c->tls) return;
  wr_tls_feed_eof(c->tls);
  c->tls_starved = 0;
  if (c->tls_up) wr__vtls_drain(c);
}

/* Sends what the session has for the visitor with the next flush. */
static void push_pending(vconn *c) {
  const uint8_t *p;
  if (c->tls && wr_tls_pending(c->tls, &p)) wr__vconn_write(c, NULL, 0, 0);
}

/* Refuses the handshake with a fatal alert, before any session exists. */
static int refuse(vconn *c, uint8_t alert, const char *why) {
  uint8_t rec[7];
  c->v->stats.tls_refused++;
  wr_debug("visitor %" PRIu64 " (%s): TLS refused for \"%s\": %s", c->id, c->ip, c->sni, why);
  wr_tls_alert_record(rec, alert);
  wr__vconn_write(c, rec, sizeof(rec), 0);
  wr__vconn_finish(c);
  return WR_ERR_DENIED;
}

/* The certificate for c->sni: uploaded, else for a routed name the ACME
 * one, else one issued by the edge CA.
 * WR_OK, WR_AGAIN (route lookup or signing in flight: c->tls_wait),
 * WR_ERR_NOTFOUND, WR_ERR_CRYPTO. */
static int pick_cert(vconn *c) {
  char tid[WR_STORE_UUID_LEN + 1];
  wr_visitor *v = c->v;
  if ((c->cert = wr_certs_uploaded(v->certs, c->sni))) return WR_OK;
  int rv = wr__visitor_route_lookup(v, c->sni, c->tls_wait, tid);
  c->tls_wait = rv == WR_AGAIN;
  if (c->tls_wait) wr__vconn_wait(c);
  if (rv != WR_OK) return rv == WR_AGAIN ? rv : WR_ERR_NOTFOUND;
  if ((c->cert = wr_certs_acme(v->certs, c->sni))) return WR_OK;
  if ((c->cert = wr_certs_issued_cached(v->certs, c->sni))) return WR_OK;
  /* Not prepared yet (a route this edge has not swept): signed on the
   * worker pool, first in its queue, while the visitor waits. */
  rv = wr_certs_prepare(v->certs, c->sni, 1);
  if (rv == WR_AGAIN) {
    c->tls_wait = 1;
    wr__vconn_wait(c);
    return rv;
  }
  if (rv == WR_OK && (c->cert = wr_certs_issued_cached(v->certs, c->sni))) return WR_OK;
  if (rv == WR_ERR_INVAL) c->cert = wr_certs_issued(v->certs, c->sni); /* no loop: sign here */
  return c->cert ? WR_OK : WR_ERR_CRYPTO;
}

static int waits_in_tls(const vconn *c) { return c->state == VC_TLS; }

void wr__vtls_cert_ready(void *user) { wr__visitor_wake_waiting(user, waits_in_tls); }

/* Reads the SNI and makes the session. WR_OK, WR_AGAIN, or an error after
 * which the connection is closing. */
static int begin(vconn *c) {
  int rv = wr_tls_hello_sni(c->hello.data, c->hello.len, c->sni, sizeof(c->sni));
  if (rv == WR_AGAIN) return rv;
  if (rv != WR_OK) return refuse(c, WR_TLS_ALERT_DECODE_ERROR, "not a TLS ClientHello");
  if (!c->sni[0]) return refuse(c, WR_TLS_ALERT_UNRECOGNIZED_NAME, "no server name");
  rv = pick_cert(c);
  if (rv == WR_AGAIN) return rv;
  if (rv != WR_OK)
    return refuse(c, WR_TLS_ALERT_UNRECOGNIZED_NAME,
                  rv == WR_ERR_NOTFOUND ? "no route and no certificate for this name"
                                        : "no certificate could be issued");
  const wr_zone_settings *z = wr_zone_cache_find(c->v->zones, c->sni);
  const char *alpn = wr__visitor_mgmt_host(c->v, c->sni) ? ALPN_H1 : ALPN;
  rv = wr_tls_server_new_opts(wr_cert_creds(c->cert), z && z->min_tls_13, alpn, &c->tls);
  if (rv == WR_OK) rv = wr_tls_feed(c->tls, c->hello.data, c->hello.len);
  if (rv != WR_OK) {
    wr_warn("visitor %" PRIu64 " (%s): cannot start a TLS session for %s", c->id, c->ip, c->sni);
    wr__vconn_close_now(c);
    return rv;
  }
  wr_buf_free(&c->hello);
  return WR_OK;
}

int wr__vtls_step(vconn *c) {
  if (!c->tls) {
    int rv = begin(c);
    if (rv != WR_OK) return rv;
  }
  int rv = wr_tls_handshake(c->tls);
  push_pending(c);
  if (rv == WR_AGAIN) return rv;
  if (rv != WR_OK) {
    c->v->stats.tls_failed++;
    wr_debug("visitor %" PRIu64 " (%s): TLS handshake for %s failed: %s", c->id, c->ip, c->sni,
             wr_tls_errmsg(c->tls));
    wr__vconn_finish(c); /* the alert GnuTLS queued goes out first */
    return WR_ERR_CRYPTO;
  }
  c->tls_up = 1;
  c->v->stats.tls_handshakes++;
  wr_debug("visitor %" PRIu64 " (%s): %s for %s (%s certificate)", c->id, c->ip,
           wr_tls_version(c->tls), c->sni, wr_cert_source(c->cert));
  c->state = VC_HEAD;
  c->tmode = T_NONE;
  if (strcmp(wr_tls_alpn(c->tls), "h2") == 0) wr__vh2_start(c);
  return WR_OK;
}

void wr__vtls_drain(vconn *c) {
  while (!c->closed && c->in.len < c->in.max) {
    size_t room = c->in.max - c->in.len, n = 0;
    if (room > WR__VISITOR_READ_CHUNK) room = WR__VISITOR_READ_CHUNK;
    if (wr_buf_reserve(&c->in, room) != WR_OK) return;
    int eof = 0;
    int rv = wr_tls_read(c->tls, c->in.data + c->in.len, room, &n, &eof);
    if (rv == WR_AGAIN) {
      c->tls_starved = 1;
      return;
    }
    if (rv != WR_OK) {
      /* A reset or a bad record: nothing more comes from this visitor. */
      wr_debug("visitor %" PRIu64 " (%s): TLS read: %s", c->id, c->ip, wr_tls_errmsg(c->tls));
      push_pending(c);
      c->tls_starved = 1;
      if (rv != WR_ERR_TRUNC) wr__vconn_close_now(c);
      return;
    }
    if (eof) {
      c->tls_starved = 1; /* close_notify: the TCP EOF follows */
      return;
    }
    c->in.len += n;
  }
}

int wr__vtls_backlog(vconn *c) { return c->tls && !c->tls_starved && wr_tls_has_unread(c->tls); }

wreq *wr__vtls_wrap(vconn *c, wreq *w) {
  if (!c->tls) return w; /* an alert written before any session */
  if (c->tls_up && w->len && wr_tls_write(c->tls, w->data, w->len) != WR_OK) {
    free(w);
    wr__vconn_close_now(c);
    return NULL;
  }
  const uint8_t *p;
  size_t n = wr_tls_pending(c->tls, &p);
  if (n == 0) {
    free(w);
    return NULL;
  }
  wreq *nw = wr_xmalloc(sizeof(*nw) + n);
  memset(nw, 0, sizeof(*nw));
  nw->c = c;
  nw->gen = w->gen;
  nw->credit = w->credit;
  nw->len = nw->cap = n;
  memcpy(nw->data, p, n);
  wr_tls_sent(c->tls, n);
  free(w);
  return nw;
}

void wr__vtls_bye(vconn *c) {
  if (c->tls_up && wr_tls_bye(c->tls) == WR_OK) push_pending(c);
}

/* ---- per-request rules ------------------------------------------------------------- */

int wr__vtls_policy(vconn *c, const struct wr__visitor_target *t, size_t used) {
  vreq *r = c->r;
  if (c->tls_mode) {
    if (strcmp(r->host, c->sni) == 0) return 0;
    wr_buf_consume(&c->in, used);
    wr__vconn_local(c, 421, "This connection was made for another host name (SNI).", 1);
    return 1;
  }
  const wr_zone_settings *z = wr_zone_cache_find(c->v->zones, r->host);
  if (!z || !z->always_use_https || !c->v->https_port) return 0;
  char loc[2048], port[16] = "";
  if (c->v->https_port != 443) snprintf(port, sizeof(port), ":%u", c->v->https_port);
  int n = snprintf(loc, sizeof(loc), "https://%s%s%.*s", r->host, port, (int)t->path_len, t->path);
  if (n < 0 || (size_t)n >= sizeof(loc)) return 0; /* too long to redirect: served as is */
  wr_http_header h = {"Location", 8, loc, (size_t)n};
  wr_buf_consume(&c->in, used);
  wr__vconn_local_h(c, 301, "This site is served over HTTPS.", 0, &h);
  return 1;
}

size_t wr__vtls_resp_fields(vconn *c, wr_http_header *out) {
  static __thread char hsts[96], alt[48];
  size_t k = 0;
  if (!c->tls_mode) return 0;
  /* HTTP/3 is offered on h1 and h2 answers (RFC 7838), not repeated on h3. */
  if (c->v->h3_port && !(c->sub && c->sops == &wr__vh3_ops)) {
    int n = snprintf(alt, sizeof(alt), "h3=\":%u\"; ma=86400", c->v->h3_port);
    out[k++] = (wr_http_header){"Alt-Svc", 7, alt, (size_t)n};
  }
  const wr_zone_settings *z = wr_zone_cache_find(c->v->zones, c->r->host);
  if (!z || !z->hsts_enabled) return k;
  int n = snprintf(hsts, sizeof(hsts), "max-age=%" PRId64 "%s%s", z->hsts_max_age,
                   z->hsts_include_subdomains ? "; includeSubDomains" : "",
                   z->hsts_preload ? "; preload" : "");
  out[k++] = (wr_http_header){"Strict-Transport-Security", 25, hsts, (size_t)n};
  if (z->hsts_nosniff) out[k++] = (wr_http_header){"X-Content-Type-Options", 22, "nosniff", 7};
  return k;
}
