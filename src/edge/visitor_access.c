/* The visitor front's Access gate (edge/access.h): runs before a request is
 * routed to a tunnel. It answers /cdn-cgi/access/{certs,logout,authorized,
 * login} on every host, and for a host covered by an Access application it
 * lets the request on (with the application token to forward in
 * c->access_jwt), or answers 302 / 401 / 403 / 502 itself. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "edge/access.h"
#include "edge/visitor_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/cookie.h"
#include "proto/jwt.h"

#define CDN_CGI "/cdn-cgi/access/"

static int ieq(const char *a, size_t n, const char *b) { return strlen(b) == n && strncasecmp(a, b, n) == 0; }

static const wr_http_header *header(const wr_http1_head *h, const char *name) {
  for (size_t i = 0; i < h->nheaders; i++)
    if (ieq(h->headers[i].name, h->headers[i].name_len, name)) return &h->headers[i];
  return NULL;
}

/* A header's value as a C string (malloc'd), NULL when absent, too long or
 * holding a NUL. */
static char *header_str(const wr_http1_head *h, const char *name, size_t max) {
  const wr_http_header *x = header(h, name);
  if (!x || !x->value_len || x->value_len > max || memchr(x->value, '\0', x->value_len)) return NULL;
  return wr_xstrndup(x->value, x->value_len);
}

/* The CF_Authorization cookie, or the Cf-Access-Token header (cloudflared's
 * `access curl`), malloc'd, or NULL. */
static char *visitor_token(const wr_http1_head *h) {
  char *t = header_str(h, "Cf-Access-Token", WR_JWT_MAX_LEN);
  if (t) return t;
  for (size_t i = 0; i < h->nheaders; i++) {
    const wr_http_header *x = &h->headers[i];
    const char *v;
    size_t vl;
    if (ieq(x->name, x->name_len, "Cookie") && wr_cookie_find(x->value, x->value_len, WR_ACCESS_COOKIE, &v, &vl) &&
        vl && vl <= WR_JWT_MAX_LEN && !memchr(v, '\0', vl))
      return wr_xstrndup(v, vl);
  }
  return NULL;
}

void wr__vconn_respond(vconn *c, int status, const char *ctype, const wr_http_header *extra, size_t nextra,
                    const char *body, size_t blen) {
  int close = !c->r->keep_alive || !wr__vconn_body_complete(c);
  if (wr__vconn_answer(c, status, ctype, extra, nextra, close, body, blen) == WR_OK)
    wr__vconn_end_request(c, close);
}

static void page(vconn *c, int status, const char *title, const wr_http_header *extra, size_t nextra) {
  char body[512];
  int n = snprintf(body, sizeof(body),
                   "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n<body><h1>%s</h1>\n"
                   "<hr><p>warren-edge Access</p></body></html>\n", status, wr_http1_reason(status), title);
  wr__vconn_respond(c, status, "text/html; charset=utf-8", extra, nextra, body, (size_t)n);
}

/* The value of query parameter |name| of |q| (|ql| bytes), decoded. */
static int query_param(const char *q, size_t ql, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name), i = 0;
  while (i < ql) {
    const char *amp = memchr(q + i, '&', ql - i);
    size_t end = amp ? (size_t)(amp - q) : ql;
    if (end - i > nl && !memcmp(q + i, name, nl) && q[i + nl] == '=')
      return wr_pct_decode(q + i + nl + 1, end - i - nl - 1, WR_PCT_PLUS, out, cap) < 0 ? -1 : 0;
    i = end + 1;
  }
  return -1;
}

/* /cdn-cgi/access/authorized?token=&redirect_url=: the end of a sign-in. */
static void authorized(vconn *c, const char *q, size_t ql) {
  wr_access *a = c->v->access;
  char *tok = wr_xmalloc(WR_JWT_MAX_LEN + 1), redirect[2048], cookie[WR_JWT_MAX_LEN + 128];
  int64_t max_age = 0;
  if (query_param(q, ql, "token", tok, WR_JWT_MAX_LEN + 1) != 0 ||
      wr_access_authorized(a, c->r->host, tok, &max_age) != WR_OK) {
    free(tok);
    page(c, 403, "This sign-in link is not valid.", NULL, 0);
    return;
  }
  /* Only a redirect back to this host: never an open redirect. */
  if (query_param(q, ql, "redirect_url", redirect, sizeof(redirect)) != 0 || redirect[0] != '/' || redirect[1] == '/') {
    char want[sizeof(redirect)];
    int n = snprintf(want, sizeof(want), "%s://%s/", c->v->scheme, c->r->authority);
    if (strncmp(redirect, want, (size_t)n - 1) != 0 || (redirect[n - 1] != '/' && redirect[n - 1] != '\0'))
      snprintf(redirect, sizeof(redirect), "/");
  }
  snprintf(cookie, sizeof(cookie), WR_ACCESS_COOKIE "=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Lax%s", tok,
           (long long)max_age, strcmp(c->v->scheme, "https") ? "" : "; Secure");
  free(tok);
  wr_http_header x[2] = {{"Location", 8, redirect, strlen(redirect)}, {"Set-Cookie", 10, cookie, strlen(cookie)}};
  page(c, 302, "Signed in.", x, 2);
}

static void need_login(vconn *c, int html, const char *target, const wr_access_decision *d);

/* /cdn-cgi/access/cli?token=KEY&aud=AUD&redirect_url=...: the browser step
 * of `warren access login`. With a valid token for the app, it is left for
 * the CLI under KEY; without, the browser signs in first and comes back. */
static void cli(vconn *c, const char *tok, const char *q, size_t ql) {
  wr_access *a = c->v->access;
  char key[128], aud[80];
  size_t al;
  if (query_param(q, ql, "token", key, sizeof(key)) != 0 || query_param(q, ql, "aud", aud, sizeof(aud)) != 0 ||
      (al = strlen(aud)) != 64 || strspn(aud, "0123456789abcdef") != al) {
    page(c, 400, "This link needs a token and an application aud.", NULL, 0);
    return;
  }
  int rv = wr_access_cli_token(a, c->r->host, aud, tok, key);
  if (rv == WR_OK) {
    page(c, 200, "Signed in: the command line has your token. You may close this window.", NULL, 0);
  } else if (rv == WR_ERR_DENIED) {
    wr_access_decision d;
    char target[1024];
    memset(&d, 0, sizeof(d));
    snprintf(d.login_url, sizeof(d.login_url), "%s/cdn-cgi/access/login/%s?kid=%s", wr_access_team_domain(a),
             c->r->host, aud);
    snprintf(target, sizeof(target), CDN_CGI "cli?%.*s", (int)(ql < 900 ? ql : 900), q);
    need_login(c, 1, target, &d);
  } else {
    page(c, 400, "This link's token is not valid.", NULL, 0);
  }
}

/* /cdn-cgi/access/transfer/KEY: what cli() left for KEY, once. */
static void transfer(vconn *c, const char *key) {
  char *body = NULL;
  if (wr_access_transfer_take(c->v->access, key, &body) != WR_OK) {
    static const char waiting[] = "waiting for the sign-in\n";
    wr__vconn_respond(c, 404, "text/plain", NULL, 0, waiting, sizeof(waiting) - 1);
    return;
  }
  wr__vconn_respond(c, 200, "application/json", NULL, 0, body, strlen(body));
  explicit_bzero(body, strlen(body));
  free(body);
}

/* The edge's own /cdn-cgi/access/ paths. */
static void cdn_cgi(vconn *c, const char *rest, size_t rl, const char *q, size_t ql, const char *tok) {
  wr_access *a = c->v->access;
  if (ieq(rest, rl, "certs")) {
    const char *certs = wr_access_certs(a);
    wr__vconn_respond(c, 200, "application/json", NULL, 0, certs, strlen(certs));
  } else if (ieq(rest, rl, "logout")) {
    static const char clear[] = WR_ACCESS_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax";
    wr_http_header x = {"Set-Cookie", 10, clear, sizeof(clear) - 1};
    page(c, 200, "You are signed out.", &x, 1);
  } else if (ieq(rest, rl, "authorized")) {
    authorized(c, q, ql);
  } else if (ieq(rest, rl, "cli")) {
    cli(c, tok, q, ql);
  } else if (rl > 9 && !strncmp(rest, "transfer/", 9)) {
    transfer(c, rest + 9);
  } else {
    page(c, 404, "Not found.", NULL, 0);
  }
}

static int wants_html(const wr_http1_head *h) {
  const wr_http_header *acc = header(h, "Accept");
  if (!ieq(h->method, h->method_len, "GET") && !ieq(h->method, h->method_len, "HEAD")) return 0;
  for (size_t i = 0; acc && i + 9 <= acc->value_len; i++)
    if (!strncasecmp(acc->value + i, "text/html", 9)) return 1;
  return 0;
}

/* No identity: browsers go to the sign-in page, other clients get 401.
 * |target| is the request-target (copied: the head is consumed). */
static void need_login(vconn *c, int html, const char *target, const wr_access_decision *d) {
  if (html) {
    char back[2048], esc[6144], loc[8192];
    snprintf(back, sizeof(back), "%s://%s%s", c->v->scheme, c->r->authority, target);
    size_t o = 0;
    for (const char *p = back; *p && o + 4 < sizeof(esc); p++) {
      unsigned char ch = (unsigned char)*p;
      if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch))
        esc[o++] = (char)ch;
      else
        o += (size_t)snprintf(esc + o, sizeof(esc) - o, "%%%02X", ch);
    }
    esc[o] = '\0';
    snprintf(loc, sizeof(loc), "%s&redirect_url=%s", d->login_url, esc);
    wr_http_header x = {"Location", 8, loc, strlen(loc)};
    page(c, 302, "Sign in first.", &x, 1);
    return;
  }
  wr_http_header x[2] = {{"CF-Access-Aud", 13, d->aud, strlen(d->aud)},
                         {"CF-Access-Domain", 16, d->app_domain, strlen(d->app_domain)}};
  page(c, 401, "This application needs an Access identity: a service token or a sign-in.", x, 2);
}

static int waits_for_access(const vconn *c) { return c->state == VC_ROUTE && c->access_waited; }

void wr__visitor_access_ready(void *user) {
  wr__visitor_wake_waiting(user, waits_for_access);
}

/* Frees the service token headers' copies, the secret wiped. */
static void drop_token(char *cid, char *sec) {
  if (sec) explicit_bzero(sec, strlen(sec));
  free(cid);
  free(sec);
}

int wr__visitor_access(vconn *c, const wr_http1_head *h, const wr__visitor_target *t, size_t used) {
  vreq *r = c->r;
  free(c->access_jwt);
  c->access_jwt = NULL;
  if (!t->auth || !t->path ||
      wr__visitor_canon_host(t->auth, t->auth_len, r->host, sizeof(r->host), r->authority, sizeof(r->authority)) != 0)
    return 0; /* route_request answers 400 */
  /* The host's applications (and a service token's check) come from the
   * store thread: the head waits in |in| (VC_ROUTE) and is parsed again
   * when they are back. */
  int waited = c->access_waited;
  int pf = wr_access_prefetch(c->v->access, r->host, waited);
  c->access_waited = 0;
  char *cid = NULL, *sec = NULL;
  if (pf == WR_OK && (cid = header_str(h, "CF-Access-Client-Id", 256)) &&
      (sec = header_str(h, "CF-Access-Client-Secret", 256)))
    pf = wr_access_prefetch_token(c->v->access, r->host, cid, sec, waited);
  if (pf == WR_AGAIN) {
    drop_token(cid, sec);
    c->access_waited = 1;
    c->state = VC_ROUTE;
    wr__vconn_wait(c);
    return -1;
  }
  if (pf != WR_OK) {
    drop_token(cid, sec);
    wr_buf_consume(&c->in, used);
    page(c, 503, "The edge is busy checking access; try again.", NULL, 0);
    return -1;
  }
  const char *qm = memchr(t->path, '?', t->path_len);
  size_t plen = qm ? (size_t)(qm - t->path) : t->path_len;
  const char *q = qm ? qm + 1 : "";
  size_t ql = qm ? t->path_len - plen - 1 : 0;
  if (plen >= sizeof(CDN_CGI) - 1 && !memcmp(t->path, CDN_CGI, sizeof(CDN_CGI) - 1)) {
    /* |h| points into c->in: copy what is needed before consuming. */
    char rest[160], query[WR_JWT_MAX_LEN * 3 + 4096];
    snprintf(rest, sizeof(rest), "%.*s", (int)(plen - (sizeof(CDN_CGI) - 1)), t->path + sizeof(CDN_CGI) - 1);
    if (ql >= sizeof(query)) ql = 0;
    memcpy(query, q, ql);
    query[ql] = '\0';
    char *tok = visitor_token(h);
    drop_token(cid, sec);
    wr_buf_consume(&c->in, used);
    cdn_cgi(c, rest, strlen(rest), query, ql, tok);
    free(tok);
    return -1;
  }
  wr_access_req aq = {.host = r->host, .path = t->path, .path_len = plen, .ip_text = c->ip};
  if (inet_pton(AF_INET, c->ip, aq.ip) == 1) aq.family = AF_INET;
  else if (inet_pton(AF_INET6, c->ip, aq.ip) == 1) aq.family = AF_INET6;
  char *tok = visitor_token(h);
  aq.client_id = cid;
  aq.client_secret = sec;
  aq.token = tok;
  wr_access_decision d;
  wr_access_check(c->v->access, &aq, &d);
  drop_token(cid, sec);
  free(tok);
  switch (d.outcome) {
  case WR_ACCESS_PASS:
    return 0;
  case WR_ACCESS_FORWARD:
    c->access_jwt = d.jwt;
    return 0;
  case WR_ACCESS_LOGIN: {
    char target[1024];
    int html = wants_html(h);
    snprintf(target, sizeof(target), "%.*s", (int)(t->path_len < 1000 ? t->path_len : 1000), t->path);
    wr_buf_consume(&c->in, used);
    need_login(c, html, target, &d);
    return -1;
  }
  case WR_ACCESS_FORBIDDEN:
    wr_buf_consume(&c->in, used);
    page(c, 403, "Access denied: you are not allowed to reach this application.", NULL, 0);
    return -1;
  default:
    wr_buf_consume(&c->in, used);
    page(c, 502, "The edge could not check access to this application.", NULL, 0);
    return -1;
  }
}
