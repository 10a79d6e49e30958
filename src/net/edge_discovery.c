/* Edge discovery through DNS; see edge_discovery.h. */
#include "net/edge_discovery.h"

#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

#define SRV_SERVICE "v2-origintunneld"
#define SRV_TAIL "._tcp.argotunnel.com"
/* Only the first two regions are used; a few more records are tolerated. */
#define MAX_SRV 8

int wr_edge_ip_version_parse(const char *s, int *out) {
  if (!s) return -1;
  if (strcmp(s, "auto") == 0) *out = WR_EDGE_IP_AUTO;
  else if (strcmp(s, "4") == 0) *out = WR_EDGE_IP_V4;
  else if (strcmp(s, "6") == 0) *out = WR_EDGE_IP_V6;
  else return -1;
  return 0;
}

int wr_edge_srv_name(const char *region, char *out, size_t cap) {
  int n = region && *region
              ? snprintf(out, cap, "_%s-" SRV_SERVICE SRV_TAIL, region)
              : snprintf(out, cap, "_" SRV_SERVICE SRV_TAIL);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void wr_edge_region_filter(wr_edge_region *r, int ip_version) {
  if (r->n == 0) return;
  int fam = ip_version == WR_EDGE_IP_V4   ? AF_INET
            : ip_version == WR_EDGE_IP_V6 ? AF_INET6
                                          : r->addr[0].ss_family;
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->addr[i].ss_family == fam) r->addr[k++] = r->addr[i];
  r->n = k;
}

size_t wr_edge_spread(const wr_edge_region *r1, const wr_edge_region *r2,
                      struct sockaddr_storage *out, size_t cap) {
  size_t u1 = 0, u2 = 0, n = 0;
  while (n < cap && (u1 < r1->n || u2 < r2->n)) {
    /* cloudflared's GetUnusedAddr: the region with more unused addresses. */
    if (r1->n - u1 >= r2->n - u2) out[n++] = r1->addr[u1++];
    else out[n++] = r2->addr[u2++];
  }
  return n;
}

typedef struct srv_rec {
  unsigned prio, port;
  char target[256];
} srv_rec;

/* Through glibc's resolver (res_nquery, libresolv's ns_parserr) rather
 * than ldns: ldns pulls OpenSSL (libssl, libcrypto) into the connector,
 * ~1.9 MB of its idle RSS for one lookup at start. */
static int srv_answer(const uint8_t *msg, int len, srv_rec *recs, size_t cap, size_t *n) {
  ns_msg m;
  if (ns_initparse(msg, len, &m) != 0) return -1;
  for (int i = 0; i < ns_msg_count(m, ns_s_an) && *n < cap; i++) {
    ns_rr rr;
    if (ns_parserr(&m, ns_s_an, i, &rr) != 0) return -1;
    if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in || ns_rr_rdlen(rr) < 7) continue;
    const uint8_t *rd = ns_rr_rdata(rr);
    srv_rec *s = &recs[*n];
    s->prio = ns_get16(rd);
    s->port = ns_get16(rd + 4);
    if (dn_expand(ns_msg_base(m), ns_msg_end(m), rd + 6, s->target, sizeof(s->target)) < 0)
      continue;
    /* By priority, as Go's LookupSRV sorts; answer order within one. */
    for (size_t j = *n; j > 0 && recs[j - 1].prio > recs[j].prio; j--) {
      srv_rec tmp = recs[j];
      recs[j] = recs[j - 1];
      recs[j - 1] = tmp;
    }
    (*n)++;
  }
  return 0;
}

static int srv_lookup(const char *name, srv_rec *recs, size_t cap, size_t *n, char *err,
                      size_t errlen) {
  struct __res_state st;
  memset(&st, 0, sizeof(st));
  *n = 0;
  if (res_ninit(&st) != 0) {
    snprintf(err, errlen, "cannot read the resolver configuration");
    return -1;
  }
  enum { ANSWER_MAX = 65535 };
  uint8_t *ans = malloc(ANSWER_MAX);
  int rv = -1;
  int len = ans ? res_nquery(&st, name, ns_c_in, ns_t_srv, ans, ANSWER_MAX) : -1;
  if (!ans) {
    snprintf(err, errlen, "out of memory");
  } else if (len < 0) {
    /* Go's wording; the caller names the domain. NO_DATA: the name exists
     * without SRV records. */
    if (st.res_h_errno == NO_DATA) rv = 0;
    else snprintf(err, errlen, "%s", st.res_h_errno == HOST_NOT_FOUND ? "no such host"
                                                                       : "server misbehaving");
  } else if (srv_answer(ans, len > ANSWER_MAX ? ANSWER_MAX : len, recs, cap, n) != 0) {
    snprintf(err, errlen, "cannot parse the DNS answer");
  } else {
    rv = 0;
  }
  free(ans);
  res_nclose(&st);
  return rv;
}

static int resolve_target(const srv_rec *s, wr_edge_region *r, char *err, size_t errlen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  char port[8];
  snprintf(port, sizeof(port), "%u", s->port);
  int e = getaddrinfo(s->target, port, &hints, &ai);
  if (e != 0) {
    snprintf(err, errlen, "Couldn't resolve SRV record %s:%u: %s", s->target, s->port,
             gai_strerror(e));
    return -1;
  }
  r->n = 0;
  for (struct addrinfo *p = ai; p && r->n < WR_EDGE_REGION_MAX; p = p->ai_next) {
    if (p->ai_family != AF_INET && p->ai_family != AF_INET6) continue;
    memset(&r->addr[r->n], 0, sizeof(r->addr[0]));
    memcpy(&r->addr[r->n++], p->ai_addr, p->ai_addrlen);
  }
  freeaddrinfo(ai);
  if (r->n == 0) {
    snprintf(err, errlen, "SRV record %s:%u had no IPs", s->target, s->port);
    return -1;
  }
  return 0;
}

int wr_edge_discover(const char *region, int ip_version, struct sockaddr_storage *out,
                     size_t cap, char *err, size_t errlen) {
  char name[300];
  if (wr_edge_srv_name(region, name, sizeof(name)) != 0) {
    snprintf(err, errlen, "invalid region %s", region);
    return -1;
  }
  wr_debug("Looking up edge SRV record domain=%s", name);
  srv_rec recs[MAX_SRV];
  size_t n;
  char why[256];
  if (srv_lookup(name, recs, MAX_SRV, &n, why, sizeof(why)) != 0) {
    wr_error("Error looking up Cloudflare edge IPs: the DNS query failed: %s", why);
    snprintf(err, errlen, "Could not lookup srv records on %s: %s", name, why);
    return -1;
  }
  if (n < 2) {
    snprintf(err, errlen,
             "expected at least 2 Cloudflare Regions regions, but SRV only returned %zu", n);
    return -1;
  }
  wr_edge_region r[2];
  for (int i = 0; i < 2; i++) {
    if (resolve_target(&recs[i], &r[i], err, errlen) != 0) return -1;
    wr_edge_region_filter(&r[i], ip_version);
  }
  size_t k = wr_edge_spread(&r[0], &r[1], out, cap);
  if (k == 0) {
    snprintf(err, errlen, "no edge address of IP version %d in %s", ip_version, name);
    return -1;
  }
  return (int)k;
}
