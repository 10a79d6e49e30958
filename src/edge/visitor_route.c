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

static unsigned hash_str(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

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
static int route_query(wr_visitor *v, const char *host, wr_route *r) {
  int rv = wr_store_route_get(v->store, host, r);
  if (rv == WR_ERR_INVAL) rv = WR_ERR_NOTFOUND;
  for (const char *p = strchr(host, '.'); rv == WR_ERR_NOTFOUND && p && strchr(p + 1, '.');
       p = strchr(p + 1, '.')) {
    char w[WR_STORE_HOST_MAX + 2];
    snprintf(w, sizeof(w), "*%s", p);
    rv = wr_store_route_get(v->store, w, r);
    if (rv == WR_ERR_INVAL) rv = WR_ERR_NOTFOUND;
  }
  return rv;
}

int wr__visitor_route_lookup(wr_visitor *v, const char *host,
                             char tunnel_id[WR_STORE_UUID_LEN + 1]) {
  uint64_t now = uv_now(v->loop);
  unsigned b = hash_str(host) % WR__VISITOR_ROUTE_BUCKETS;
  route_ent *e;
  for (e = v->routes[b]; e; e = e->next)
    if (strcmp(e->host, host) == 0) break;
  if (e && e->expires > now) {
    if (!e->found) return WR_ERR_NOTFOUND;
    memcpy(tunnel_id, e->tunnel_id, WR_STORE_UUID_LEN + 1);
    return WR_OK;
  }
  wr_route r;
  int rv = route_query(v, host, &r);
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    wr_warn("route lookup for %s failed: %s", host, wr_store_errmsg(v->store));
    return rv;
  }
  if (!e) {
    if (v->nroutes >= ROUTE_MAX) route_purge(v, now, 0);
    if (v->nroutes >= ROUTE_MAX) route_purge(v, now, 1);
    size_t hl = strlen(host);
    e = wr_xcalloc(1, sizeof(*e) + hl + 1);
    memcpy(e->host, host, hl + 1);
    e->next = v->routes[b];
    v->routes[b] = e;
    v->nroutes++;
  }
  e->found = rv == WR_OK;
  e->expires = now + v->route_ttl_ms;
  if (e->found) memcpy(e->tunnel_id, r.tunnel_id, sizeof(e->tunnel_id));
  if (rv == WR_OK) memcpy(tunnel_id, r.tunnel_id, WR_STORE_UUID_LEN + 1);
  return rv;
}
