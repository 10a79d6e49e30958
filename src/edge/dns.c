#include "edge/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edge/acme.h"
#include "edge/store_async.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/owner.h"
#include "net/read_gate.h"
#include "proto/dnsmsg.h"

#define DEF_TTL 300
#define DEF_NEG_TTL 60
#define DEF_CACHE_TTL_MS 1000
#define DEF_MAX_TCP 256
#define DEF_TCP_IDLE_MS 10000
#define MAX_ADDRS 64
#define MAX_NS 16
#define TCP_BUF_MAX (2 + WR_DNSMSG_MAX)
#define TCP_BUF_MIN 512
#define TCP_WRITE_HIGH (256 * 1024)
#define UDP_OUT_CAP 4096
#define TARGET_LABEL "cfargotunnel"

/* One zone of the store and its snapshot, built on first use. */
typedef struct zone_ent {
  wr_zone z;
  wr_dnszone *snap;
  uint64_t expires; /* uv_now() after which the snapshot is rebuilt */
} zone_ent;

typedef struct tcp_conn {
  wr_dns *d;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uint8_t *buf;     /* received bytes not yet answered */
  size_t len, cap;  /* cap <= TCP_BUF_MAX */
  size_t pending;   /* response bytes handed to uv_write, not yet written */
  wr_owner owner;   /* holds tcp + timer; its release frees the connection */
  int reading;
  int closing;
  struct tcp_conn *prev, *next;
} tcp_conn;

typedef struct tcp_write {
  uv_write_t req;
  tcp_conn *c;
  size_t len;
  uint8_t data[]; /* 2-byte length + message */
} tcp_write;

struct wr_dns {
  uv_loop_t *loop;
  wr_store *store;
  struct wr_acme *acme; /* DNS-01 answers, or NULL */
  char ns[MAX_NS][WR_DNS_NAME_MAX + 2];
  size_t nns;
  char hostmaster[WR_DNS_NAME_MAX + 2];
  uint8_t v4[MAX_ADDRS][4];
  size_t nv4;
  uint8_t v6[MAX_ADDRS][16];
  size_t nv6;
  uint32_t ttl, neg_ttl;
  uint64_t cache_ttl_ms, tcp_idle_ms;
  size_t max_tcp;

  zone_ent *zones; /* sorted by name */
  size_t nzones;
  int zones_loaded;
  uint64_t zones_expires;
  wr_store_async *async;  /* reads on the store thread; NULL: on the loop */
  struct load_job *load;  /* the read in flight (async) */
  int load_again;         /* invalidated while it ran: read once more */

  uv_udp_t udp;
  uv_tcp_t listener;
  wr_owner owner; /* holds udp + listener + each connection */
  int closing;
  tcp_conn *conns;
  wr_dns_stats stats;

  uint8_t udp_in[65536];
  uint8_t udp_out[UDP_OUT_CAP];
  uint8_t tcp_out[WR_DNSMSG_MAX];
};

/* --- configuration --------------------------------------------------------------- */

/* |in| relative ("ns1") or absolute ("ns.example.net.") to a canonical name
 * pattern: absolute names end with '.', relative ones get ".<zone>" later. */
static int canon_pattern(const char *in, char *out, size_t size) {
  size_t len = in ? strlen(in) : 0, o = 0;
  if (len == 0 || len + 1 >= size) return WR_ERR_CONFIG;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    out[o++] = c;
  }
  out[o] = '\0';
  /* Check the name part (without the final dot). */
  char tmp[WR_DNS_NAME_MAX + 2];
  size_t n = out[o - 1] == '.' ? o - 1 : o;
  if (n == 0 || n > WR_DNS_NAME_MAX) return WR_ERR_CONFIG;
  memcpy(tmp, out, n);
  tmp[n] = '\0';
  return wr_dns_name_check(tmp) == WR_OK && !strchr(tmp, '*') ? WR_OK : WR_ERR_CONFIG;
}

/* Parses the address list into |d| (or only checks it when |d| is NULL). */
static int parse_addrs(const wr_dns_config *cfg, wr_dns *d, char *err, size_t errlen) {
  size_t n4 = 0, n6 = 0;
  if (cfg->naddrs > MAX_ADDRS) {
    snprintf(err, errlen, "too many DNS addresses (%zu; the limit is %d)", cfg->naddrs, MAX_ADDRS);
    return WR_ERR_CONFIG;
  }
  for (size_t i = 0; i < cfg->naddrs; i++) {
    const char *a = cfg->addrs[i];
    uint8_t b[16];
    static const uint8_t zero[16];
    if (a && inet_pton(AF_INET, a, b) == 1) {
      if (memcmp(b, zero, 4) == 0) goto unspec;
      if (d) memcpy(d->v4[n4], b, 4);
      n4++;
    } else if (a && inet_pton(AF_INET6, a, b) == 1) {
      if (memcmp(b, zero, 16) == 0) goto unspec;
      if (d) memcpy(d->v6[n6], b, 16);
      n6++;
    } else {
      snprintf(err, errlen, "DNS address \"%.64s\" is not an IPv4 or IPv6 address", a ? a : "");
      return WR_ERR_CONFIG;
    }
    continue;
  unspec:
    snprintf(err, errlen,
             "DNS address %s is the unspecified address; name the edge's public address instead", a);
    return WR_ERR_CONFIG;
  }
  if (d) {
    d->nv4 = n4;
    d->nv6 = n6;
  }
  return WR_OK;
}

static int parse_config(const wr_dns_config *cfg, wr_dns *d, char *err, size_t errlen) {
  static const char *const def_ns[] = {"ns1"};
  const char *const *ns = cfg->nns ? cfg->ns : def_ns;
  size_t nns = cfg->nns ? cfg->nns : 1;
  char tmp[WR_DNS_NAME_MAX + 2];
  int rv;
  if (!cfg->store) {
    snprintf(err, errlen, "the DNS server needs a store");
    return WR_ERR_CONFIG;
  }
  if ((rv = parse_addrs(cfg, d, err, errlen)) != WR_OK) return rv;
  if (nns > MAX_NS || !ns) {
    snprintf(err, errlen, "between 1 and %d NS names", MAX_NS);
    return WR_ERR_CONFIG;
  }
  for (size_t i = 0; i < nns; i++) {
    if (canon_pattern(ns[i], d ? d->ns[i] : tmp, sizeof(tmp)) != WR_OK) {
      snprintf(err, errlen, "NS name \"%.64s\" is not a host name", ns[i] ? ns[i] : "");
      return WR_ERR_CONFIG;
    }
  }
  if (canon_pattern(cfg->hostmaster ? cfg->hostmaster : "hostmaster", d ? d->hostmaster : tmp,
                    sizeof(tmp)) != WR_OK) {
    snprintf(err, errlen, "hostmaster \"%.64s\" is not a DNS name", cfg->hostmaster);
    return WR_ERR_CONFIG;
  }
  if (d) {
    d->nns = nns;
    d->ttl = cfg->ttl ? cfg->ttl : DEF_TTL;
    d->neg_ttl = cfg->neg_ttl ? cfg->neg_ttl : DEF_NEG_TTL;
    d->cache_ttl_ms = cfg->cache_ttl_ms ? cfg->cache_ttl_ms : DEF_CACHE_TTL_MS;
    d->max_tcp = cfg->max_tcp_conns ? cfg->max_tcp_conns : DEF_MAX_TCP;
    d->tcp_idle_ms = cfg->tcp_idle_ms ? cfg->tcp_idle_ms : DEF_TCP_IDLE_MS;
  }
  return WR_OK;
}

int wr_dns_config_check(const wr_dns_config *cfg, char *err, size_t errlen) {
  if (!cfg) return WR_ERR_CONFIG;
  return parse_config(cfg, NULL, err, errlen);
}

/* A name pattern made absolute for |zone|: "ns1" -> "ns1.<zone>", "x.y." -> "x.y".
 * WR_ERR_LIMIT if the result is too long. */
static int expand(const char *pattern, const char *zone, char *out, size_t size) {
  size_t pl = strlen(pattern);
  int n = pattern[pl - 1] == '.' ? snprintf(out, size, "%.*s", (int)(pl - 1), pattern)
                                 : snprintf(out, size, "%s.%s", pattern, zone);
  return n < 0 || (size_t)n >= size || (size_t)n > WR_DNS_NAME_MAX ? WR_ERR_LIMIT : WR_OK;
}

/* --- zones and snapshots ---------------------------------------------------------- */

static void zones_free(wr_dns *d) {
  for (size_t i = 0; i < d->nzones; i++) wr_dnszone_free(d->zones[i].snap);
  free(d->zones);
  d->zones = NULL;
  d->nzones = 0;
  d->zones_loaded = 0;
}

static void load_submit(wr_dns *d);

void wr_dns_invalidate(wr_dns *d) {
  if (!d) return;
  if (!d->async) {
    zones_free(d);
    return;
  }
  /* Read again now; the current answers serve until the read is back. */
  if (d->load) d->load_again = 1;
  else load_submit(d);
}

static int zone_name_cmp(const void *a, const void *b) {
  return strcmp(((const zone_ent *)a)->z.name, ((const zone_ent *)b)->z.name);
}

static zone_ent *zone_by_name(wr_dns *d, const char *name) {
  zone_ent key;
  if (!d->nzones) return NULL;
  snprintf(key.z.name, sizeof(key.z.name), "%s", name);
  return bsearch(&key, d->zones, d->nzones, sizeof(*d->zones), zone_name_cmp);
}

/* Re-reads the zone list, keeping the snapshots of zones that are still
 * there (same id and name). */
static int zones_reload(wr_dns *d, uint64_t now) {
  wr_zone *list = NULL;
  size_t n = 0;
  int rv = wr_store_zone_list(d->store, NULL, &list, &n);
  if (rv != WR_OK) {
    d->stats.store_errors++;
    wr_warn("dns: reading the zone list failed: %s", wr_store_errmsg(d->store));
    if (d->zones_loaded) {
      d->zones_expires = now + d->cache_ttl_ms; /* serve the old list meanwhile */
      return WR_OK;
    }
    return rv;
  }
  zone_ent *ents = n ? wr_xcalloc(n, sizeof(*ents)) : NULL;
  for (size_t i = 0; i < n; i++) ents[i].z = list[i];
  free(list);
  if (n > 1) qsort(ents, n, sizeof(*ents), zone_name_cmp);
  for (size_t i = 0; i < n; i++) {
    zone_ent *old = zone_by_name(d, ents[i].z.name);
    if (old && strcmp(old->z.id, ents[i].z.id) == 0) {
      ents[i].snap = old->snap;
      ents[i].expires = old->expires;
      old->snap = NULL;
    }
  }
  zones_free(d);
  d->zones = ents;
  d->nzones = n;
  d->zones_loaded = 1;
  d->zones_expires = now + d->cache_ttl_ms;
  return WR_OK;
}

/* wr_dnszone_txt_fn: the ACME DNS-01 values of _acme-challenge names. */
static size_t acme_txt(void *user, const char *name, char *out, size_t row, size_t max) {
  wr_dns *d = user;
  char vals[4][WR_ACME_THUMB_LEN + 1];
  if (strncmp(name, "_acme-challenge.", 16) != 0) return 0;
  size_t n = wr_acme_dns01(d->acme, name, vals, max < 4 ? max : 4);
  for (size_t i = 0; i < n; i++) snprintf(out + i * row, row, "%s", vals[i]);
  return n;
}

/* Builds the snapshot of one zone from its account's tunnels and routes
 * (read by the caller): NS hosts, live tunnels, routes. */
static int snapshot_from(wr_dns *d, const wr_zone *z, const wr_tunnel *tunnels, size_t nt,
                         const wr_route *routes, size_t nr, wr_dnszone **out) {
  char ns[MAX_NS][WR_DNS_NAME_MAX + 2], hm[WR_DNS_NAME_MAX + 2], reserved[WR_DNS_NAME_MAX + 32];
  char name[WR_DNS_NAME_MAX + 64], target[WR_DNS_NAME_MAX + 64];
  const char *nsp[MAX_NS];
  size_t nns = 0;
  wr_dnszone *snap = NULL;
  int rv;
  *out = NULL;
  for (size_t i = 0; i < d->nns; i++)
    if (expand(d->ns[i], z->name, ns[nns], sizeof(ns[nns])) == WR_OK) nsp[nns] = ns[nns], nns++;
  if (nns == 0 || expand(d->hostmaster, z->name, hm, sizeof(hm)) != WR_OK) {
    wr_warn("dns: zone %s: its NS or hostmaster names are too long", z->name);
    return WR_ERR_LIMIT;
  }
  wr_dnszone_params p = {.origin = z->name, .ns = nsp, .nns = nns, .hostmaster = hm,
                         .serial = (uint32_t)time(NULL), .ttl = d->ttl, .neg_ttl = d->neg_ttl,
                         .v4 = (const uint8_t(*)[4])d->v4, .nv4 = d->nv4,
                         .v6 = (const uint8_t(*)[16])d->v6, .nv6 = d->nv6};
  if ((rv = wr_dnszone_new(NULL, &p, &snap)) != WR_OK) {
    wr_warn("dns: zone %s: %s", z->name, wr_strerror(rv));
    return rv;
  }
  snprintf(reserved, sizeof(reserved), TARGET_LABEL ".%s", z->name);
  for (size_t i = 0; i < nt && rv == WR_OK; i++) {
    if (tunnels[i].deleted_at) continue;
    snprintf(name, sizeof(name), "%s." TARGET_LABEL ".%s", tunnels[i].id, z->name);
    rv = wr_dnszone_add(snap, name, NULL);
    if (rv == WR_ERR_INVAL) rv = WR_OK; /* name too long for this zone: nothing to serve */
  }
  for (size_t i = 0; i < nr && rv == WR_OK; i++) {
    const wr_route *r = &routes[i];
    if (strcmp(r->zone_id, z->id) != 0) continue;
    if (wr_dns_name_in_zone(r->hostname, reserved)) {
      wr_debug("dns: route %s lies under %s (reserved for tunnel targets): not served",
               r->hostname, reserved);
      continue;
    }
    snprintf(target, sizeof(target), "%s." TARGET_LABEL ".%s", r->tunnel_id, z->name);
    rv = wr_dnszone_add(snap, r->hostname, target);
    if (rv == WR_ERR_INVAL) {
      wr_debug("dns: route %s -> %s cannot be served", r->hostname, target);
      rv = WR_OK;
    }
  }
  if (rv != WR_OK) {
    wr_dnszone_free(snap);
    return rv;
  }
  if (d->acme) wr_dnszone_set_txt(snap, acme_txt, d);
  wr_dnszone_seal(snap);
  d->stats.snapshots++;
  *out = snap;
  return WR_OK;
}

/* What one zone's snapshot is made of, as read from a store. */
typedef struct zone_data {
  wr_tunnel *tunnels;
  wr_route *routes;
  size_t nt, nr;
} zone_data;

static int zone_read(wr_store *s, const wr_zone *z, zone_data *out) {
  wr_tunnel_filter f = {.account_id = z->account_id};
  int rv = wr_store_tunnel_list(s, &f, &out->tunnels, &out->nt);
  if (rv == WR_OK) rv = wr_store_route_list(s, z->account_id, NULL, &out->routes, &out->nr);
  return rv;
}

static void zone_data_free(zone_data *zd) {
  if (zd->tunnels) memset(zd->tunnels, 0, zd->nt * sizeof(*zd->tunnels)); /* they carry the tunnel secrets */
  free(zd->tunnels);
  free(zd->routes);
  memset(zd, 0, sizeof(*zd));
}

/* Builds the snapshot of one zone, reading it on the loop (no store thread). */
static int snapshot_build(wr_dns *d, const wr_zone *z, wr_dnszone **out) {
  zone_data zd = {0};
  int rv = zone_read(d->store, z, &zd);
  if (rv != WR_OK) {
    d->stats.store_errors++;
    wr_warn("dns: reading zone %s failed: %s", z->name, wr_store_errmsg(d->store));
  } else {
    rv = snapshot_from(d, z, zd.tunnels, zd.nt, zd.routes, zd.nr, out);
  }
  zone_data_free(&zd);
  return rv;
}

/* ---- reads on the store thread: every zone at once, the old ones serving meanwhile ---- */

typedef struct load_job {
  wr_dns *d;         /* NULL once |d| went away */
  int rv;
  char errmsg[WR_STORE_ERRMSG_MAX];
  wr_zone *zones;
  zone_data *data;
  size_t n;
} load_job;

static void load_run(wr_store *s, void *arg) {
  load_job *j = arg;
  j->rv = wr_store_zone_list(s, NULL, &j->zones, &j->n);
  if (j->rv == WR_OK) {
    j->data = wr_xcalloc(j->n ? j->n : 1, sizeof(*j->data));
    for (size_t i = 0; i < j->n && j->rv == WR_OK; i++) j->rv = zone_read(s, &j->zones[i], &j->data[i]);
  }
  if (j->rv != WR_OK) snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(s));
}

static void load_job_free(load_job *j) {
  for (size_t i = 0; j->data && i < j->n; i++) zone_data_free(&j->data[i]);
  free(j->data);
  free(j->zones);
  free(j);
}

/* On the loop: the new snapshots replace the old ones at once. */
static void load_apply(wr_dns *d, load_job *j) {
  uint64_t now = uv_now(d->loop);
  zone_ent *ents = j->n ? wr_xcalloc(j->n, sizeof(*ents)) : NULL;
  for (size_t i = 0; i < j->n; i++) {
    ents[i].z = j->zones[i];
    if (snapshot_from(d, &ents[i].z, j->data[i].tunnels, j->data[i].nt, j->data[i].routes, j->data[i].nr,
                      &ents[i].snap) != WR_OK)
      ents[i].snap = NULL; /* logged; its names are answered SERVFAIL */
  }
  if (j->n > 1) qsort(ents, j->n, sizeof(*ents), zone_name_cmp);
  zones_free(d);
  d->zones = ents;
  d->nzones = j->n;
  d->zones_loaded = 1;
  d->zones_expires = now + d->cache_ttl_ms;
}

static void load_done(void *arg, int status) {
  load_job *j = arg;
  wr_dns *d = j->d;
  if (d) {
    d->load = NULL;
    if (status != WR_OK || j->rv != WR_OK) {
      d->stats.store_errors++;
      wr_warn("dns: reading the zones failed: %s; the last answers serve meanwhile",
              wr_store_async_why(status, j->errmsg));
      d->zones_expires = uv_now(d->loop) + d->cache_ttl_ms;
    } else {
      load_apply(d, j);
    }
    if (d->load_again && !d->closing) {
      d->load_again = 0;
      load_submit(d);
    }
  }
  load_job_free(j);
}

static void load_submit(wr_dns *d) {
  if (d->load) {
    d->load_again = 1;
    return;
  }
  load_job *j = wr_xcalloc(1, sizeof(*j));
  j->d = d;
  if (wr_store_async_submit(d->async, load_run, load_done, j) != WR_OK) {
    free(j);
    d->zones_expires = uv_now(d->loop) + d->cache_ttl_ms; /* the old answers serve; try again later */
    return;
  }
  d->load = j;
}

/* With a store thread: the deepest zone holding |qname| as last read; an
 * expired set is read again on the store thread meanwhile. */
static int find_zone_cached(wr_dns *d, const char *qname, const wr_dnszone **zone, uint64_t now) {
  if ((!d->zones_loaded || now >= d->zones_expires) && !d->load) load_submit(d);
  zone_ent *e = NULL;
  for (const char *p = qname; p && *p && !e; p = strchr(p, '.'), p = p ? p + 1 : NULL)
    e = zone_by_name(d, p);
  if (!d->zones_loaded || (e && !e->snap)) return WR_ERR_STORE;
  if (!e) return WR_ERR_NOTFOUND;
  *zone = e->snap;
  return WR_OK;
}

/* wr_dnsmsg_zone_fn: the deepest zone holding |qname|, its snapshot fresh. */
static int find_zone(void *user, const char *qname, const wr_dnszone **zone) {
  wr_dns *d = user;
  uint64_t now = uv_now(d->loop);
  int rv;
  if (d->async) return find_zone_cached(d, qname, zone, now);
  if ((!d->zones_loaded || now >= d->zones_expires) && (rv = zones_reload(d, now)) != WR_OK)
    return WR_ERR_STORE;
  zone_ent *e = NULL;
  for (const char *p = qname; p && *p && !e; p = strchr(p, '.'), p = p ? p + 1 : NULL)
    e = zone_by_name(d, p);
  if (!e) return WR_ERR_NOTFOUND;
  if (!e->snap || now >= e->expires) {
    wr_dnszone *snap;
    if (snapshot_build(d, &e->z, &snap) == WR_OK) {
      wr_dnszone_free(e->snap);
      e->snap = snap;
    } else if (!e->snap) {
      return WR_ERR_STORE;
    }
    e->expires = now + d->cache_ttl_ms;
  }
  *zone = e->snap;
  return WR_OK;
}

/* Answers one message; *outlen = 0 when nothing is to be sent. */
static void answer(wr_dns *d, int tcp, const uint8_t *q, size_t qlen, uint8_t *out, size_t cap,
                   size_t *outlen) {
  wr_dnsmsg_info info;
  int rv = wr_dnsmsg_respond(q, qlen, tcp, find_zone, d, out, cap, outlen, &info);
  if (tcp)
    d->stats.queries_tcp++;
  else
    d->stats.queries_udp++;
  if (rv != WR_OK) {
    d->stats.dropped++;
    if (rv != WR_ERR_PROTO) wr_warn("dns: cannot answer a query: %s", wr_strerror(rv));
    *outlen = 0;
    return;
  }
  if (info.rcode >= 0 && info.rcode <= WR_DNS_RCODE_REFUSED)
    d->stats.rcodes[info.rcode]++;
  else
    d->stats.rcode_other++;
  if (info.truncated) d->stats.truncated++;
  wr_debug("dns: %s %s type %u -> rcode %d%s", tcp ? "tcp" : "udp",
           info.qname[0] ? info.qname : "-", info.qtype, info.rcode, info.truncated ? " TC" : "");
}

/* --- UDP ------------------------------------------------------------------------------- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  wr_dns *d = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)d->udp_in, sizeof(d->udp_in));
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags) {
  wr_dns *d = h->data;
  size_t outlen = 0;
  if (nread < 0) {
    wr_debug("dns: udp receive: %s", uv_strerror((int)nread));
    return;
  }
  if (nread == 0 || !addr || d->closing) return;
  if (flags & UV_UDP_PARTIAL) {
    d->stats.dropped++;
    return;
  }
  answer(d, 0, (const uint8_t *)buf->base, (size_t)nread, d->udp_out, sizeof(d->udp_out), &outlen);
  if (!outlen) return;
  uv_buf_t b = uv_buf_init((char *)d->udp_out, (unsigned)outlen);
  int r = uv_udp_try_send(h, &b, 1, addr);
  if (r < 0) {
    d->stats.dropped++;
    wr_debug("dns: udp send: %s", uv_strerror(r));
  }
}

/* --- TCP ------------------------------------------------------------------------------- */

static void dns_release(wr_owner *o) {
  wr_dns *d = WR_OWNER_OBJ(o, wr_dns, owner);
  zones_free(d);
  free(d);
}

static void conn_release(wr_owner *o) {
  tcp_conn *c = WR_OWNER_OBJ(o, tcp_conn, owner);
  wr_dns *d = c->d;
  free(c->buf);
  free(c);
  wr_owner_drop(&d->owner); /* may free |d| */
}

static void conn_close(tcp_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  WR_LIST_REMOVE(c->d->conns, c);
  c->d->stats.tcp_conns--;
  /* The writes cancelled by the close find |c| through their requests. */
  wr_owner_close_handle(&c->owner, (uv_handle_t *)&c->tcp);
  wr_owner_close_handle(&c->owner, (uv_handle_t *)&c->timer);
  wr_owner_close(&c->owner);
}

static void conn_idle(uv_timer_t *t) { conn_close(t->data); }

static void conn_process(tcp_conn *c);

static void conn_written(uv_write_t *req, int status) {
  tcp_write *w = (tcp_write *)req;
  tcp_conn *c = w->c;
  c->pending -= w->len;
  free(w);
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (!c->closing) conn_process(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tcp_conn *c = h->data;
  (void)suggested;
  /* Room for the message being received: its length prefix says how much. */
  size_t want = c->len < 2 ? TCP_BUF_MIN : 2 + (size_t)(c->buf[0] << 8 | c->buf[1]);
  if (want < TCP_BUF_MIN) want = TCP_BUF_MIN;
  if (want > TCP_BUF_MAX) want = TCP_BUF_MAX;
  if (c->cap < want) {
    c->buf = wr_xrealloc(c->buf, want);
    c->cap = want;
  }
  *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tcp_conn *c = s->data;
  (void)buf;
  if (nread < 0) { /* EOF, reset, or UV_ENOBUFS (no room: cannot happen while reading) */
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  conn_process(c);
}

/* Answers every complete message in the buffer while the peer keeps up with
 * reading the responses; pauses reading above TCP_WRITE_HIGH. */
static void conn_process(tcp_conn *c) {
  wr_dns *d = c->d;
  while (!c->closing && c->pending < TCP_WRITE_HIGH && c->len >= 2) {
    size_t mlen = (size_t)(c->buf[0] << 8 | c->buf[1]), outlen = 0;
    if (mlen < 12) { /* not even a header: the framing is off */
      d->stats.dropped++;
      conn_close(c);
      return;
    }
    if (c->len < 2 + mlen) break;
    answer(d, 1, c->buf + 2, mlen, d->tcp_out, sizeof(d->tcp_out), &outlen);
    memmove(c->buf, c->buf + 2 + mlen, c->len - 2 - mlen);
    c->len -= 2 + mlen;
    uv_timer_start(&c->timer, conn_idle, d->tcp_idle_ms, 0);
    if (!outlen) continue;
    tcp_write *w = wr_xmalloc(sizeof(*w) + 2 + outlen);
    w->c = c;
    w->len = 2 + outlen;
    w->data[0] = (uint8_t)(outlen >> 8);
    w->data[1] = (uint8_t)outlen;
    memcpy(w->data + 2, d->tcp_out, outlen);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_written) != 0) {
      free(w);
      conn_close(c);
      return;
    }
    c->pending += w->len;
  }
  if (c->closing) return;
  int want = c->pending < TCP_WRITE_HIGH;
  if (!want && c->reading) d->stats.tcp_paused++;
  c->reading = wr_read_gate((uv_stream_t *)&c->tcp, c->reading, want, conn_alloc, conn_read);
  if (want && !c->reading) conn_close(c);
}

static void on_connection(uv_stream_t *srv, int status) {
  wr_dns *d = srv->data;
  if (status < 0) {
    wr_warn("dns: tcp listener: %s", uv_strerror(status));
    return;
  }
  if (d->closing) return;
  tcp_conn *c = wr_xcalloc(1, sizeof(*c));
  c->d = d;
  wr_owner_init(&c->owner, conn_release);
  uv_tcp_init(d->loop, &c->tcp);
  c->tcp.data = c;
  wr_owner_hold(&c->owner);
  wr_owner_timer_init(&c->owner, d->loop, &c->timer, c);
  wr_owner_hold(&d->owner); /* the connection */
  WR_LIST_INSERT_HEAD(d->conns, c);
  d->stats.tcp_conns++;
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  if (d->stats.tcp_conns > d->max_tcp) {
    d->stats.tcp_refused++;
    wr_debug("dns: tcp connection refused: %zu open (limit)", d->max_tcp);
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, conn_idle, d->tcp_idle_ms, 0);
  conn_process(c);
}

/* --- lifecycle -------------------------------------------------------------------------- */

static int port_of(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* A non-blocking socket of |type| bound to |ss|: the fd, or -errno. */
static int bound_socket(int type, const struct sockaddr_storage *ss, socklen_t alen) {
  int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  if (fd == -1) return -errno;
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (const struct sockaddr *)ss, alen) == -1) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* Binds UDP then TCP to the same address and port. With port 0 the kernel
 * picks the UDP port and TCP takes the same one; if TCP finds it taken, both
 * are tried again (the sockets are bound before libuv sees them, so a failed
 * attempt leaves no handle behind). */
static int bind_both(wr_dns *d, const struct sockaddr *addr, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int ufd = -1, tfd = -1, r = 0;
  for (int attempt = 0; attempt < 16; attempt++) {
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, addr, alen);
    int ephemeral = port_of(&ss) == 0;
    socklen_t len = alen;
    if ((ufd = bound_socket(SOCK_DGRAM, &ss, alen)) < 0) {
      r = ufd;
      break;
    }
    if (getsockname(ufd, (struct sockaddr *)&ss, &len) == -1) {
      r = -errno;
      close(ufd);
      break;
    }
    if ((tfd = bound_socket(SOCK_STREAM, &ss, alen)) >= 0) break;
    r = tfd;
    close(ufd);
    ufd = -1;
    if (!(ephemeral && r == -EADDRINUSE)) break;
  }
  if (ufd < 0 || tfd < 0) {
    snprintf(err, errlen, "cannot listen for DNS: %s", strerror(-r));
    return WR_ERR_IO;
  }
  uv_udp_init(d->loop, &d->udp);
  uv_tcp_init(d->loop, &d->listener);
  d->udp.data = d->listener.data = d;
  wr_owner_hold(&d->owner); /* udp */
  wr_owner_hold(&d->owner); /* listener */
  if ((r = uv_udp_open(&d->udp, ufd)) == 0) ufd = -1;
  if (r == 0 && (r = uv_tcp_open(&d->listener, tfd)) == 0) tfd = -1;
  if (r == 0) r = uv_listen((uv_stream_t *)&d->listener, 128, on_connection);
  if (r == 0) r = uv_udp_recv_start(&d->udp, udp_alloc, udp_recv);
  if (r == 0) return WR_OK;
  if (ufd >= 0) close(ufd);
  if (tfd >= 0) close(tfd);
  wr_owner_close_handle(&d->owner, (uv_handle_t *)&d->udp);
  wr_owner_close_handle(&d->owner, (uv_handle_t *)&d->listener);
  snprintf(err, errlen, "cannot listen for DNS: %s", uv_strerror(r));
  return WR_ERR_IO;
}

int wr_dns_listen(uv_loop_t *loop, const wr_dns_config *cfg, const struct sockaddr *addr,
                  wr_dns **out, char *err, size_t errlen) {
  int rv;
  *out = NULL;
  if (!cfg || !addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
    snprintf(err, errlen, "the DNS server needs a configuration and an IPv4 or IPv6 address");
    return WR_ERR_CONFIG;
  }
  wr_dns *d = wr_xcalloc(1, sizeof(*d));
  d->loop = loop;
  wr_owner_init(&d->owner, dns_release);
  d->store = cfg->store;
  d->acme = cfg->acme;
  if ((rv = parse_config(cfg, d, err, errlen)) != WR_OK) {
    free(d);
    return rv;
  }
  if (cfg->async) {
    /* The first read before serving (start-up); later ones on the store thread. */
    load_job *j = wr_xcalloc(1, sizeof(*j));
    load_run(d->store, j);
    if (j->rv == WR_OK) load_apply(d, j);
    else wr_warn("dns: reading the zones failed: %s", j->errmsg);
    load_job_free(j);
    d->async = cfg->async;
  }
  if ((rv = bind_both(d, addr, err, errlen)) != WR_OK) {
    d->closing = 1;
    wr_owner_close(&d->owner); /* frees |d|, now or from the close callbacks */
    return rv;
  }
  *out = d;
  return WR_OK;
}

int wr_dns_addr(const wr_dns *d, struct sockaddr_storage *ss) {
  int len = sizeof(*ss);
  return uv_udp_getsockname(&d->udp, (struct sockaddr *)ss, &len) == 0 ? WR_OK : WR_ERR_IO;
}

const wr_dns_stats *wr_dns_get_stats(const wr_dns *d) { return &d->stats; }

void wr_dns_free(wr_dns *d) {
  if (!d || d->closing) return;
  d->closing = 1;
  if (d->load) d->load->d = NULL;
  d->load = NULL;
  while (d->conns) conn_close(d->conns);
  wr_owner_close_handle(&d->owner, (uv_handle_t *)&d->udp);
  wr_owner_close_handle(&d->owner, (uv_handle_t *)&d->listener);
  wr_owner_close(&d->owner); /* frees |d| once the handles and connections closed */
}

/* --- cleanup ---------------------------------------------------------------------------- */

static void unpublish_done(void *user, int rv, int rcode, const char *msg) {
  char *host = user;
  if (rv == WR_OK)
    wr_info("dns: removed the CNAME of %s at the primary server", host);
  else
    wr_warn("dns: removing the CNAME of %s at the primary server failed: %s", host, msg);
  (void)rcode;
  free(host);
}

/* After a pass removed |rows|: logs each, queues its unpublish and drops
 * the DNS server's snapshots. On the loop. */
static void cleanup_report(const wr_dns_cleanup_config *cfg, const wr_route *rows, size_t n, int64_t age) {
  for (size_t i = 0; i < n; i++) {
    wr_info("dns: removed the route of %s: tunnel %s is deleted or has been unregistered for %" PRId64
            " s or more",
            rows[i].hostname, rows[i].tunnel_id, age);
    if (cfg->updater) {
      char *host = wr_xstrdup(rows[i].hostname);
      if (wr_dns_update_unpublish(cfg->updater, rows[i].hostname, rows[i].tunnel_id,
                                  unpublish_done, host) != WR_OK) {
        wr_warn("dns: cannot queue the removal of %s at the primary server", host);
        free(host);
      }
    }
  }
  if (n && cfg->dns) wr_dns_invalidate(cfg->dns);
}

static int64_t cleanup_age(const wr_dns_cleanup_config *cfg) {
  return cfg->unregistered_s ? cfg->unregistered_s : 86400;
}

int wr_dns_cleanup(const wr_dns_cleanup_config *cfg, size_t *removed) {
  wr_route *rows = NULL;
  size_t n = 0;
  if (removed) *removed = 0;
  if (!cfg || !cfg->store) return WR_ERR_INVAL;
  int rv = wr_store_route_expire(cfg->store, cfg->actor ? cfg->actor : "edge:dns-cleanup", cleanup_age(cfg), 0,
                                 &rows, &n);
  if (rv != WR_OK) {
    wr_warn("dns: record cleanup failed: %s", wr_store_errmsg(cfg->store));
    return rv;
  }
  cleanup_report(cfg, rows, n, cleanup_age(cfg));
  free(rows);
  if (removed) *removed = n;
  return WR_OK;
}

struct wr_dns_janitor {
  uv_timer_t timer;
  wr_dns_cleanup_config cfg;
  char actor[128];
  struct janitor_job *job; /* the pass on the store thread */
};

/* A pass on the store thread (cfg.async). */
typedef struct janitor_job {
  wr_dns_janitor *j; /* NULL once the janitor went away */
  char actor[128];
  int64_t age;
  int rv;
  char errmsg[WR_STORE_ERRMSG_MAX];
  wr_route *rows;
  size_t n;
} janitor_job;

static void janitor_run(wr_store *s, void *arg) {
  janitor_job *jj = arg;
  jj->rv = wr_store_route_expire(s, jj->actor, jj->age, 0, &jj->rows, &jj->n);
  if (jj->rv != WR_OK) snprintf(jj->errmsg, sizeof(jj->errmsg), "%s", wr_store_errmsg(s));
}

static void janitor_done(void *arg, int status) {
  janitor_job *jj = arg;
  wr_dns_janitor *j = jj->j;
  if (j) {
    j->job = NULL;
    if (status != WR_OK || jj->rv != WR_OK) {
      wr_warn("dns: record cleanup failed: %s", wr_store_async_why(status, jj->errmsg));
    } else {
      cleanup_report(&j->cfg, jj->rows, jj->n, jj->age);
      if (jj->n) wr_info("dns: record cleanup removed %zu route(s)", jj->n);
    }
  }
  free(jj->rows);
  free(jj);
}

static void janitor_tick(uv_timer_t *t) {
  wr_dns_janitor *j = t->data;
  size_t n = 0;
  if (j->cfg.async) {
    if (j->job) return; /* the last pass is still out */
    janitor_job *jj = wr_xcalloc(1, sizeof(*jj));
    jj->j = j;
    jj->age = cleanup_age(&j->cfg);
    snprintf(jj->actor, sizeof(jj->actor), "%s", j->actor);
    if (wr_store_async_submit(j->cfg.async, janitor_run, janitor_done, jj) != WR_OK) {
      free(jj);
      return;
    }
    j->job = jj;
    return;
  }
  if (wr_dns_cleanup(&j->cfg, &n) == WR_OK && n)
    wr_info("dns: record cleanup removed %zu route(s)", n);
}

int wr_dns_janitor_start(uv_loop_t *loop, const wr_dns_cleanup_config *cfg, wr_dns_janitor **out) {
  *out = NULL;
  if (!cfg || !cfg->store) return WR_ERR_INVAL;
  wr_dns_janitor *j = wr_xcalloc(1, sizeof(*j));
  j->cfg = *cfg;
  snprintf(j->actor, sizeof(j->actor), "%s", cfg->actor ? cfg->actor : "edge:dns-cleanup");
  j->cfg.actor = j->actor;
  uint64_t every = cfg->interval_ms ? cfg->interval_ms : 60000;
  uv_timer_init(loop, &j->timer);
  j->timer.data = j;
  uv_timer_start(&j->timer, janitor_tick, every, every);
  *out = j;
  return WR_OK;
}

static void janitor_closed(uv_handle_t *h) { free(h->data); }

void wr_dns_janitor_free(wr_dns_janitor *j) {
  if (!j) return;
  if (j->job) j->job->j = NULL;
  j->job = NULL;
  uv_timer_stop(&j->timer);
  uv_close((uv_handle_t *)&j->timer, janitor_closed);
}
