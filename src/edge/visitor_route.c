/* The visitor front's routing (visitor_int.h): where a request goes.
 * Owns the request-target forms the edge accepts (origin-form with Host,
 * absolute-form), the canonical host (lower case, no port or trailing dot)
 * and the route cache: hostname -> tunnel through the store's DNS routes,
 * exact first, then the nearest "*.parent" wildcard, answers (also "no
 * route") kept for route_ttl_ms in a bounded hash table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/visitor_int.h"
#include "lib/err.h"
#include "lib/hash.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"

#define ROUTE_MAX 4096

/* ---- the request-target --------------------------------------------------------- */

void wr__visitor_split_target(const wr_http1_head *h, wr__visitor_target *out) {
  const char *t = h->target;
  size_t tl = h->target_len;
  size_t skip = tl >= 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                : tl >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                : 0;
  memset(out, 0, sizeof(*out));
  if (tl && t[0] == '/') {
    out->auth = h->host;
    out->auth_len = h->host_len;
    out->path = t;
    out->path_len = tl;
  } else if (skip) {
    size_t i = skip;
    while (i < tl && t[i] != '/' && t[i] != '?' && t[i] != '#') i++;
    out->auth = t + skip;
    out->auth_len = i - skip;
    out->path = t + i;
    out->path_len = tl - i;
  }
}

/* Where the host of authority |a| ends: *port_at is n, or the offset of
 * the ':' before a port of digits only. -1 for a malformed IP literal or
 * port. */
static int host_port_split(const char *a, size_t n, size_t *port_at) {
  size_t end = n;
  if (n && a[0] == '[') {
    const char *rb = memchr(a, ']', n);
    if (!rb) return -1;
    end = (size_t)(rb - a) + 1;
    if (end < n && a[end] != ':') return -1;
  } else {
    const char *colon = memchr(a, ':', n);
    if (colon) end = (size_t)(colon - a);
  }
  if (end < n) { /* a port: digits only */
    if (end + 1 == n || n - end - 1 > 5) return -1;
    for (size_t i = end + 1; i < n; i++)
      if (a[i] < '0' || a[i] > '9') return -1;
  }
  *port_at = end;
  return 0;
}

/* Copies the |len| host characters of |a| lower-cased into |out|: a DNS
 * name, or an IP literal in brackets. -1 for any other character. */
static int host_chars(const char *a, size_t len, char *out) {
  int literal = a[0] == '[';
  for (size_t i = 0; i < len; i++) {
    char ch = a[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
             ch == '_' || (literal && (ch == ':' || ch == '[' || ch == ']'));
    if (!ok) return -1;
    out[i] = ch;
  }
  out[len] = '\0';
  return 0;
}

int wr__visitor_canon_host(const char *a, size_t n, char *out, size_t cap, char *auth,
                           size_t authcap) {
  size_t port_at = 0;
  if (host_port_split(a, n, &port_at) != 0) return -1;
  size_t end = port_at;
  if (end && a[end - 1] == '.' && a[0] != '[') end--;
  if (end == 0 || end >= cap || end + (n - port_at) >= authcap) return -1;
  if (host_chars(a, end, out) != 0) return -1;
  /* cloudflared matches ingress hostnames case-sensitively: send the
   * canonical host, with the port the visitor used. */
  snprintf(auth, authcap, "%s%.*s", out, (int)(n - port_at), a + port_at);
  return 0;
}

/* ---- the route cache ------------------------------------------------------------- */

static void route_purge(wr_visitor *v, uint64_t now, int all) {
  for (size_t i = 0; i < WR__VISITOR_ROUTE_BUCKETS; i++) {
    route_ent **pp = &v->routes[i];
    while (*pp) {
      route_ent *e = *pp;
      if (all || e->expires <= now) {
        *pp = e->next;
        free(e);
        v->nroutes--;
      } else {
        pp = &e->next;
      }
    }
  }
}

void wr_visitor_invalidate_routes(wr_visitor *v) {
  if (v) route_purge(v, 0, 1);
}

void wr__visitor_routes_free(wr_visitor *v) {
  for (size_t i = 0; i < WR__VISITOR_ROUTE_BUCKETS; i++) {
    route_ent *e = v->routes[i];
    while (e) {
      route_ent *n = e->next;
      free(e);
      e = n;
    }
  }
}

/* Asks the store: the exact route of |host|, else the nearest wildcard. */
static int route_query(wr_store *s, const char *host, wr_route *r) {
  int rv = wr_store_route_get(s, host, r);
  if (rv == WR_ERR_INVAL) rv = WR_ERR_NOTFOUND;
  for (const char *p = strchr(host, '.'); rv == WR_ERR_NOTFOUND && p && strchr(p + 1, '.');
       p = strchr(p + 1, '.')) {
    char w[WR_STORE_HOST_MAX + 2];
    snprintf(w, sizeof(w), "*%s", p);
    rv = wr_store_route_get(s, w, r);
    if (rv == WR_ERR_INVAL) rv = WR_ERR_NOTFOUND;
  }
  return rv;
}

static route_ent *route_find(wr_visitor *v, const char *host) {
  route_ent *e;
  for (e = v->routes[wr_hash_str(host) % WR__VISITOR_ROUTE_BUCKETS]; e; e = e->next)
    if (strcmp(e->host, host) == 0) break;
  return e;
}

/* The entry of |host|, made (evicting when the table is full) if missing. */
static route_ent *route_make(wr_visitor *v, const char *host, uint64_t now) {
  route_ent *e = route_find(v, host);
  if (e) return e;
  if (v->nroutes >= ROUTE_MAX) route_purge(v, now, 0);
  if (v->nroutes >= ROUTE_MAX) route_purge(v, now, 1);
  unsigned b = wr_hash_str(host) % WR__VISITOR_ROUTE_BUCKETS;
  size_t hl = strlen(host);
  e = wr_xcalloc(1, sizeof(*e) + hl + 1);
  memcpy(e->host, host, hl + 1);
  e->next = v->routes[b];
  v->routes[b] = e;
  v->nroutes++;
  return e;
}

/* Stores the answer |rv| (|r| when WR_OK) for |host|; returns its entry. */
static route_ent *route_fill(wr_visitor *v, const char *host, int rv, const wr_route *r) {
  uint64_t now = uv_now(v->loop);
  route_ent *e = route_make(v, host, now);
  e->pending = 0;
  e->err = rv == WR_OK || rv == WR_ERR_NOTFOUND ? WR_OK : rv;
  e->found = rv == WR_OK;
  /* A store error is not cached: the next request asks again. */
  e->expires = e->err == WR_OK ? now + v->route_ttl_ms : now;
  if (e->found) memcpy(e->tunnel_id, r->tunnel_id, sizeof(e->tunnel_id));
  return e;
}

/* The answer of entry |e|. */
static int route_answer(const route_ent *e, char tunnel_id[WR_STORE_UUID_LEN + 1]) {
  if (e->err != WR_OK) return e->err;
  if (!e->found) return WR_ERR_NOTFOUND;
  memcpy(tunnel_id, e->tunnel_id, WR_STORE_UUID_LEN + 1);
  return WR_OK;
}

/* ---- lookups on the store thread ---------------------------------------------- */

struct route_job {
  route_job *next, *prev;
  wr_visitor *v; /* NULL: the visitor is gone */
  int rv;        /* set on the store thread */
  wr_route r;
  char errmsg[WR_STORE_ERRMSG_MAX];
  char host[WR_STORE_HOST_MAX + 1];
};

static void job_run(wr_store *s, void *arg) {
  route_job *j = arg;
  j->rv = route_query(s, j->host, &j->r);
  if (j->rv != WR_OK && j->rv != WR_ERR_NOTFOUND)
    snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(s));
}

/* On the loop: caches the answer and wakes the heads that wait for a route
 * (all of them: a kicked head whose host is still pending waits again). */
static void job_done(void *arg, int status) {
  route_job *j = arg;
  wr_visitor *v = j->v;
  if (v) {
    WR_LIST_REMOVE(v->route_jobs, j);
    int rv = status == WR_OK ? j->rv : WR_ERR_STORE;
    if (rv != WR_OK && rv != WR_ERR_NOTFOUND)
      wr_warn("route lookup for %s failed: %s", j->host,
              wr_store_async_why(status, j->errmsg));
    route_fill(v, j->host, rv, &j->r);
    /* Heads waiting for a route, and HTTPS handshakes for their SNI's. */
    wr__visitor_wake_waiting(v, NULL);
  }
  free(j);
}

static int route_submit(wr_visitor *v, route_ent *e) {
  route_job *j = wr_xcalloc(1, sizeof(*j));
  j->v = v;
  snprintf(j->host, sizeof(j->host), "%s", e->host);
  int rv = wr_store_async_submit(v->store_async, job_run, job_done, j);
  if (rv != WR_OK) {
    free(j);
    wr_warn("route lookup for %s: the store thread refused it (%s)", e->host,
            rv == WR_ERR_LIMIT ? "queue full" : "stopping");
    return WR_ERR_STORE;
  }
  WR_LIST_INSERT_HEAD(v->route_jobs, j);
  e->pending = 1;
  return WR_AGAIN;
}

void wr__visitor_routes_detach(wr_visitor *v) {
  for (route_job *j = v->route_jobs; j; j = j->next) j->v = NULL;
  v->route_jobs = NULL;
}

int wr__visitor_route_lookup(wr_visitor *v, const char *host, int stale_ok,
                             char tunnel_id[WR_STORE_UUID_LEN + 1]) {
  uint64_t now = uv_now(v->loop);
  route_ent *e = route_find(v, host);
  if (e && !e->pending && (e->expires > now || stale_ok)) return route_answer(e, tunnel_id);
  if (e && e->pending) return WR_AGAIN;
  if (v->store_async) return route_submit(v, route_make(v, host, now));
  wr_route r;
  int rv = route_query(v->store, host, &r);
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND)
    wr_warn("route lookup for %s failed: %s", host, wr_store_errmsg(v->store));
  return route_answer(route_fill(v, host, rv, &r), tunnel_id);
}
