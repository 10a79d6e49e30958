#include "proto/dnsmsg.h"

#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bytes.h"
#include "lib/err.h"

#define MAX_NS 16
#define MAX_ADDRS 64
#define SOA_REFRESH 3600
#define SOA_RETRY 600
#define SOA_EXPIRE 604800
#define HDR_LEN 12

/* --- names ------------------------------------------------------------------- */

static int label_char(int c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int wr_dns_name_check(const char *name) {
  size_t len, lab = 0;
  if (!name || !(len = strlen(name)) || len > WR_DNS_NAME_MAX) return WR_ERR_INVAL;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || name[i] == '.') {
      if (lab == 0 || lab > 63) return WR_ERR_INVAL;
      /* "*" only as a whole label */
      if (memchr(name + i - lab, '*', lab) && lab != 1) return WR_ERR_INVAL;
      lab = 0;
    } else if (label_char((unsigned char)name[i]) || name[i] == '*') {
      lab++;
    } else {
      return WR_ERR_INVAL;
    }
  }
  return WR_OK;
}

int wr_dns_name_in_zone(const char *name, const char *zone) {
  size_t n = strlen(name), z = strlen(zone);
  if (n == z) return strcmp(name, zone) == 0;
  return n > z && name[n - z - 1] == '.' && strcmp(name + n - z, zone) == 0;
}

/* Writes |name| with its labels in reverse order ("a.b.test" -> "test.b.a")
 * to |out| (WR_DNS_NAME_MAX + 1 bytes). Sorted by strcmp, these keys put a
 * name's descendants right after it, behind the prefix "<key>.". */
static void name_key(const char *name, char *out) {
  size_t len = strlen(name), o = 0, end = len;
  while (end > 0) {
    size_t start = end;
    while (start > 0 && name[start - 1] != '.') start--;
    if (o) out[o++] = '.';
    memcpy(out + o, name + start, end - start);
    o += end - start;
    end = start ? start - 1 : 0;
  }
  out[o] = '\0';
}

/* --- zone snapshots ------------------------------------------------------------ */

typedef struct node {
  const char *key;    /* reversed labels (see name_key) */
  const char *name;   /* canonical owner */
  const char *target; /* CNAME target, NULL for an address name */
  uint32_t seq;       /* insertion order: the first of duplicates wins */
} node;

struct wr_dnszone {
  const wr_mem *mem;
  char *origin;
  char *ns[MAX_NS];
  size_t nns;
  char *hostmaster;
  uint32_t serial, ttl, neg_ttl;
  uint8_t v4[MAX_ADDRS][4];
  size_t nv4;
  uint8_t v6[MAX_ADDRS][16];
  size_t nv6;
  node *nodes;
  size_t n, cap;
  int sealed;
  wr_dnszone_txt_fn txt;
  void *txt_user;
};

void wr_dnszone_set_txt(wr_dnszone *z, wr_dnszone_txt_fn fn, void *user) {
  z->txt = fn;
  z->txt_user = user;
}

static char *dup_str(const wr_mem *mem, const char *s) { return wr_strndup(mem, s, strlen(s)); }

void wr_dnszone_free(wr_dnszone *z) {
  if (!z) return;
  for (size_t i = 0; i < z->n; i++) wr_free(z->mem, (void *)z->nodes[i].key);
  wr_free(z->mem, z->nodes);
  for (size_t i = 0; i < z->nns; i++) wr_free(z->mem, z->ns[i]);
  wr_free(z->mem, z->hostmaster);
  wr_free(z->mem, z->origin);
  wr_free(z->mem, z);
}

/* Whether |p| describes a zone we can serve (see wr_dnszone_new). */
static int params_ok(const wr_dnszone_params *p) {
  if (!p || wr_dns_name_check(p->origin) != WR_OK || strchr(p->origin, '*')) return 0;
  if (p->nns == 0 || p->nns > MAX_NS || !p->ns || wr_dns_name_check(p->hostmaster) != WR_OK)
    return 0;
  if (p->nv4 > MAX_ADDRS || p->nv6 > MAX_ADDRS || (p->nv4 && !p->v4) || (p->nv6 && !p->v6))
    return 0;
  for (size_t i = 0; i < p->nns; i++)
    if (wr_dns_name_check(p->ns[i]) != WR_OK || strchr(p->ns[i], '*')) return 0;
  return 1;
}

/* Copies the names of |p| into |z|: WR_OK or WR_ERR_NOMEM (what was copied
 * is counted in |z| for wr_dnszone_free). */
static int zone_copy_names(wr_dnszone *z, const wr_dnszone_params *p) {
  if (!(z->origin = dup_str(z->mem, p->origin)) ||
      !(z->hostmaster = dup_str(z->mem, p->hostmaster)))
    return WR_ERR_NOMEM;
  for (; z->nns < p->nns; z->nns++)
    if (!(z->ns[z->nns] = dup_str(z->mem, p->ns[z->nns]))) return WR_ERR_NOMEM;
  return WR_OK;
}

/* In-zone name servers must resolve, and come first so no route shadows
 * them. Returns WR_OK, WR_ERR_INVAL (an NS at the apex, which cannot be a
 * host name with A records here) or an error of wr_dnszone_add. */
static int zone_add_ns_hosts(wr_dnszone *z) {
  int rv;
  for (size_t i = 0; i < z->nns; i++) {
    if (strcmp(z->ns[i], z->origin) == 0) return WR_ERR_INVAL;
    if (wr_dns_name_in_zone(z->ns[i], z->origin) && (rv = wr_dnszone_add(z, z->ns[i], NULL)) != WR_OK)
      return rv;
  }
  return WR_OK;
}

int wr_dnszone_new(const wr_mem *mem, const wr_dnszone_params *p, wr_dnszone **out) {
  wr_dnszone *z;
  int rv;
  *out = NULL;
  if (!mem) mem = wr_mem_default();
  if (!params_ok(p)) return WR_ERR_INVAL;
  if (!(z = wr_calloc(mem, 1, sizeof(*z)))) return WR_ERR_NOMEM;
  z->mem = mem;
  z->serial = p->serial;
  z->ttl = p->ttl ? p->ttl : 300;
  z->neg_ttl = p->neg_ttl ? p->neg_ttl : 60;
  if (p->nv4) memcpy(z->v4, p->v4, p->nv4 * 4);
  if (p->nv6) memcpy(z->v6, p->v6, p->nv6 * 16);
  z->nv4 = p->nv4;
  z->nv6 = p->nv6;
  if ((rv = zone_copy_names(z, p)) != WR_OK || (rv = zone_add_ns_hosts(z)) != WR_OK) goto fail;
  *out = z;
  return WR_OK;
fail:
  wr_dnszone_free(z);
  return rv;
}

int wr_dnszone_add(wr_dnszone *z, const char *owner, const char *target) {
  char key[WR_DNS_NAME_MAX + 1];
  if (!z || z->sealed || wr_dns_name_check(owner) != WR_OK || strcmp(owner, z->origin) == 0 ||
      !wr_dns_name_in_zone(owner, z->origin))
    return WR_ERR_INVAL;
  if (target && (wr_dns_name_check(target) != WR_OK || strchr(target, '*'))) return WR_ERR_INVAL;
  if (z->n >= WR_DNSZONE_MAX_NAMES) return WR_ERR_LIMIT;
  if (z->n == z->cap) {
    size_t cap = z->cap ? z->cap * 2 : 16;
    node *nn = wr_realloc(z->mem, z->nodes, cap * sizeof(*nn));
    if (!nn) return WR_ERR_NOMEM;
    z->nodes = nn;
    z->cap = cap;
  }
  size_t ol = strlen(owner), tl = target ? strlen(target) : 0;
  /* One block: key, owner, target. */
  char *b = wr_malloc(z->mem, 2 * (ol + 1) + (target ? tl + 1 : 0));
  if (!b) return WR_ERR_NOMEM;
  name_key(owner, key);
  memcpy(b, key, ol + 1);
  memcpy(b + ol + 1, owner, ol + 1);
  if (target) memcpy(b + 2 * (ol + 1), target, tl + 1);
  z->nodes[z->n] = (node){b, b + ol + 1, target ? b + 2 * (ol + 1) : NULL, (uint32_t)z->n};
  z->n++;
  return WR_OK;
}

static int node_cmp(const void *a, const void *b) {
  const node *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void wr_dnszone_seal(wr_dnszone *z) {
  if (!z || z->sealed) return;
  if (z->n > 1) qsort(z->nodes, z->n, sizeof(*z->nodes), node_cmp);
  size_t o = 0;
  for (size_t i = 0; i < z->n; i++) {
    if (o && strcmp(z->nodes[o - 1].key, z->nodes[i].key) == 0) {
      wr_free(z->mem, (void *)z->nodes[i].key);
      continue;
    }
    z->nodes[o++] = z->nodes[i];
  }
  z->n = o;
  z->sealed = 1;
}

const char *wr_dnszone_origin(const wr_dnszone *z) { return z->origin; }
size_t wr_dnszone_count(const wr_dnszone *z) { return z->n; }

/* First node whose key is >= |key|. */
static size_t lower_bound(const wr_dnszone *z, const char *key) {
  size_t lo = 0, hi = z->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(z->nodes[mid].key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static const node *zone_find(const wr_dnszone *z, const char *name) {
  char key[WR_DNS_NAME_MAX + 1];
  name_key(name, key);
  size_t i = lower_bound(z, key);
  return i < z->n && strcmp(z->nodes[i].key, key) == 0 ? &z->nodes[i] : NULL;
}

/* Whether some name lies strictly below |name|. */
static int zone_has_below(const wr_dnszone *z, const char *name) {
  char key[WR_DNS_NAME_MAX + 3];
  name_key(name, key);
  size_t kl = strlen(key);
  key[kl] = '.';
  key[kl + 1] = '\0';
  size_t i = lower_bound(z, key);
  return i < z->n && strncmp(z->nodes[i].key, key, kl + 1) == 0;
}

/* --- answering ----------------------------------------------------------------- */

typedef struct answer_ctx {
  const wr_dnszone *z;
  ldns_pkt *r;
  uint16_t qtype;
  int rcode;
} answer_ctx;

/* Pushes |rr| (may be NULL after a failed allocation) to a section. */
static int push(ldns_pkt *r, ldns_pkt_section sec, ldns_rr *rr) {
  if (!rr) return WR_ERR_NOMEM;
  if (!ldns_pkt_push_rr(r, sec, rr)) {
    ldns_rr_free(rr);
    return WR_ERR_NOMEM;
  }
  return WR_OK;
}

/* A new IN record owned by |owner| (taken; NULL fails). */
static ldns_rr *rr_new(ldns_rdf *owner, ldns_rr_type type, uint32_t ttl) {
  ldns_rr *rr;
  if (!owner) return NULL;
  if (!(rr = ldns_rr_new())) {
    ldns_rdf_deep_free(owner);
    return NULL;
  }
  ldns_rr_set_owner(rr, owner);
  ldns_rr_set_type(rr, type);
  ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
  ldns_rr_set_ttl(rr, ttl);
  return rr;
}

/* Appends |rdf| to |rr|; on failure frees both and returns NULL. */
static ldns_rr *rr_rdf(ldns_rr *rr, ldns_rdf *rdf) {
  if (!rr || !rdf || !ldns_rr_push_rdf(rr, rdf)) {
    if (rdf) ldns_rdf_deep_free(rdf);
    if (rr) ldns_rr_free(rr);
    return NULL;
  }
  return rr;
}

static ldns_rdf *dname(const char *name) { return ldns_dname_new_frm_str(name); }

static ldns_rr *soa_rr(const wr_dnszone *z, uint32_t ttl) {
  ldns_rr *rr = rr_new(dname(z->origin), LDNS_RR_TYPE_SOA, ttl);
  rr = rr_rdf(rr, dname(z->ns[0]));
  rr = rr_rdf(rr, dname(z->hostmaster));
  rr = rr_rdf(rr, ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, z->serial));
  rr = rr_rdf(rr, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, SOA_REFRESH));
  rr = rr_rdf(rr, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, SOA_RETRY));
  rr = rr_rdf(rr, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, SOA_EXPIRE));
  return rr_rdf(rr, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, z->neg_ttl));
}

/* The SOA for negative answers: TTL min(SOA TTL, MINIMUM) (RFC 2308 5). */
static int push_neg_soa(answer_ctx *a) {
  const wr_dnszone *z = a->z;
  return push(a->r, LDNS_SECTION_AUTHORITY, soa_rr(z, z->ttl < z->neg_ttl ? z->ttl : z->neg_ttl));
}

/* A/AAAA records of the zone's address list at |owner| (cloned). */
static int push_addrs(answer_ctx *a, ldns_pkt_section sec, const ldns_rdf *owner, uint16_t qtype,
                      int *pushed) {
  const wr_dnszone *z = a->z;
  int rv = WR_OK;
  if (qtype == WR_DNS_TYPE_A || qtype == WR_DNS_TYPE_ANY)
    for (size_t i = 0; i < z->nv4 && rv == WR_OK; i++, (*pushed)++)
      rv = push(a->r, sec,
                rr_rdf(rr_new(ldns_rdf_clone(owner), LDNS_RR_TYPE_A, z->ttl),
                       ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, z->v4[i])));
  if (qtype == WR_DNS_TYPE_AAAA || qtype == WR_DNS_TYPE_ANY)
    for (size_t i = 0; i < z->nv6 && rv == WR_OK; i++, (*pushed)++)
      rv = push(a->r, sec,
                rr_rdf(rr_new(ldns_rdf_clone(owner), LDNS_RR_TYPE_AAAA, z->ttl),
                       ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, z->v6[i])));
  return rv;
}

static int answer_apex(answer_ctx *a, const ldns_rdf *owner) {
  const wr_dnszone *z = a->z;
  int rv = WR_OK, pushed = 0, glue = 0;
  if (a->qtype == WR_DNS_TYPE_SOA || a->qtype == WR_DNS_TYPE_ANY) {
    ldns_rr *rr = soa_rr(z, z->ttl);
    if (rr) { /* the owner as asked (case preserved) */
      ldns_rdf *o = ldns_rdf_clone(owner);
      if (!o) {
        ldns_rr_free(rr);
        return WR_ERR_NOMEM;
      }
      ldns_rdf_deep_free(ldns_rr_owner(rr));
      ldns_rr_set_owner(rr, o);
    }
    rv = push(a->r, LDNS_SECTION_ANSWER, rr);
    pushed++;
  }
  if (a->qtype == WR_DNS_TYPE_NS || a->qtype == WR_DNS_TYPE_ANY) {
    for (size_t i = 0; i < z->nns && rv == WR_OK; i++, pushed++)
      rv = push(a->r, LDNS_SECTION_ANSWER,
                rr_rdf(rr_new(ldns_rdf_clone(owner), LDNS_RR_TYPE_NS, z->ttl), dname(z->ns[i])));
    /* Addresses of in-zone name servers as additional data. */
    for (size_t i = 0; i < z->nns && rv == WR_OK; i++) {
      if (!wr_dns_name_in_zone(z->ns[i], z->origin)) continue;
      ldns_rdf *o = dname(z->ns[i]);
      if (!o) return WR_ERR_NOMEM;
      rv = push_addrs(a, LDNS_SECTION_ADDITIONAL, o, WR_DNS_TYPE_ANY, &glue);
      ldns_rdf_deep_free(o);
    }
  }
  if (rv == WR_OK && !pushed) rv = push_neg_soa(a);
  return rv;
}

/* The deepest existing ancestor of |name| (which does not exist), then the
 * wildcard that sits right below it (RFC 4592 3.3.1). */
static const node *find_wildcard(const wr_dnszone *z, const char *name) {
  char w[WR_DNS_NAME_MAX + 3];
  const char *p = name;
  while ((p = strchr(p, '.')) != NULL) {
    p++;
    if (strcmp(p, z->origin) == 0 || zone_find(z, p) || zone_has_below(z, p)) break;
  }
  if (!p) return NULL; /* not reached for names inside the zone */
  if (strlen(p) + 2 > WR_DNS_NAME_MAX) return NULL;
  w[0] = '*';
  w[1] = '.';
  memcpy(w + 2, p, strlen(p) + 1);
  return zone_find(z, w);
}

#define TXT_MAX 4
#define TXT_ROW 256

/* The dynamic TXT values of |qname|, if it has any: answered (1), else 0.
 * *rv is the push result. */
static int answer_txt(answer_ctx *a, const char *qname, const ldns_rdf *qowner, int *rv) {
  char vals[TXT_MAX][TXT_ROW];
  const wr_dnszone *z = a->z;
  size_t n = z->txt ? z->txt(z->txt_user, qname, vals[0], TXT_ROW, TXT_MAX) : 0;
  if (n == 0) return 0;
  if (n > TXT_MAX) n = TXT_MAX;
  *rv = WR_OK;
  if (a->qtype != WR_DNS_TYPE_TXT && a->qtype != WR_DNS_TYPE_ANY) {
    *rv = push_neg_soa(a);
    return 1;
  }
  for (size_t i = 0; i < n && *rv == WR_OK; i++) {
    vals[i][TXT_ROW - 1] = '\0';
    ldns_rr *rr = rr_new(ldns_rdf_clone(qowner), LDNS_RR_TYPE_TXT, 0); /* never cached */
    *rv = push(a->r, LDNS_SECTION_ANSWER, rr_rdf(rr, ldns_rdf_new_frm_str(LDNS_RDF_TYPE_STR, vals[i])));
  }
  return 1;
}

/* Fills the answer for |qname| (canonical; |qowner| the question's name as
 * asked) in zone a->z, chasing CNAMEs inside the zone. */
static int answer_zone(answer_ctx *a, const char *qname, const ldns_rdf *qowner) {
  const wr_dnszone *z = a->z;
  char name[WR_DNS_NAME_MAX + 1];
  const node *seen[WR_DNSMSG_MAX_CHASE]; /* CNAME owners followed so far */
  int rv = WR_OK;
  if (answer_txt(a, qname, qowner, &rv)) return rv;
  ldns_rdf *owner = ldns_rdf_clone(qowner);
  if (!owner) return WR_ERR_NOMEM;
  snprintf(name, sizeof(name), "%s", qname);
  for (int chase = 0;; chase++) {
    if (strcmp(name, z->origin) == 0) {
      rv = answer_apex(a, owner);
      break;
    }
    const node *nd = zone_find(z, name);
    if (!nd && zone_has_below(z, name)) { /* empty non-terminal: NODATA */
      rv = push_neg_soa(a);
      break;
    }
    if (!nd && !(nd = find_wildcard(z, name))) {
      /* RFC 6604: the rcode describes the last name of the chain. */
      a->rcode = WR_DNS_RCODE_NXDOMAIN;
      rv = push_neg_soa(a);
      break;
    }
    if (!nd->target) {
      int pushed = 0;
      rv = push_addrs(a, LDNS_SECTION_ANSWER, owner, a->qtype, &pushed);
      if (rv == WR_OK && !pushed) rv = push_neg_soa(a);
      break;
    }
    rv = push(a->r, LDNS_SECTION_ANSWER,
              rr_rdf(rr_new(ldns_rdf_clone(owner), LDNS_RR_TYPE_CNAME, z->ttl), dname(nd->target)));
    if (rv != WR_OK || a->qtype == WR_DNS_TYPE_CNAME || a->qtype == WR_DNS_TYPE_ANY) break;
    /* Follow the CNAME when this zone holds its target; otherwise the
     * resolver does (RFC 1034 4.3.2 step 3a). A loop ends at the first
     * name seen twice, a chain after WR_DNSMSG_MAX_CHASE links. */
    if (!wr_dns_name_in_zone(nd->target, z->origin) || chase + 1 >= WR_DNSMSG_MAX_CHASE) break;
    seen[chase] = nd;
    int loop = 0;
    for (int k = 0; k <= chase && !loop; k++) loop = strcmp(seen[k]->name, nd->target) == 0;
    if (loop || strcmp(qname, nd->target) == 0) break;
    snprintf(name, sizeof(name), "%s", nd->target);
    ldns_rdf_deep_free(owner);
    if (!(owner = dname(name))) return WR_ERR_NOMEM;
  }
  ldns_rdf_deep_free(owner);
  return rv;
}

/* Presentation form of a wire-format name, lower-cased, without the final
 * dot; bytes that cannot appear in a stored name (including '.' inside a
 * label) become '?'. Returns WR_OK or WR_ERR_PROTO. */
static int canon_qname(const ldns_rdf *rdf, char out[WR_DNS_NAME_MAX + 1]) {
  const uint8_t *d = ldns_rdf_data(rdf);
  size_t len = ldns_rdf_size(rdf), i = 0, o = 0;
  if (ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME) return WR_ERR_PROTO;
  while (i < len && d[i]) {
    size_t l = d[i++];
    if (l > 63 || i + l > len) return WR_ERR_PROTO;
    if (o + (o ? 1 : 0) + l > WR_DNS_NAME_MAX) return WR_ERR_PROTO;
    if (o) out[o++] = '.';
    for (size_t k = 0; k < l; k++) {
      int c = d[i + k];
      if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
      out[o++] = (char)(label_char(c) || c == '*' ? c : '?');
    }
    i += l;
  }
  out[o] = '\0';
  return WR_OK;
}

/* A response made of the query's header alone (no sections): for queries
 * that cannot be parsed or whose opcode we do not serve. */
static size_t header_only(const uint8_t *q, int rcode, uint8_t *out) {
  memset(out, 0, HDR_LEN);
  out[0] = q[0];
  out[1] = q[1];
  out[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, the opcode and RD as asked */
  out[3] = (uint8_t)((q[3] & 0x10) | (rcode & 0x0f)); /* CD as asked */
  return HDR_LEN;
}

static int clear_section(ldns_pkt *r, ldns_pkt_section sec) {
  ldns_rr_list *empty = ldns_rr_list_new();
  if (!empty) return WR_ERR_NOMEM;
  switch (sec) {
  case LDNS_SECTION_ANSWER:
    ldns_rr_list_deep_free(ldns_pkt_answer(r));
    ldns_pkt_set_answer(r, empty);
    ldns_pkt_set_ancount(r, 0);
    break;
  case LDNS_SECTION_AUTHORITY:
    ldns_rr_list_deep_free(ldns_pkt_authority(r));
    ldns_pkt_set_authority(r, empty);
    ldns_pkt_set_nscount(r, 0);
    break;
  default:
    ldns_rr_list_deep_free(ldns_pkt_additional(r));
    ldns_pkt_set_additional(r, empty);
    ldns_pkt_set_arcount(r, 0);
    break;
  }
  return WR_OK;
}

/* Encodes |r| into |out| within |limit| bytes: whole, else without the
 * additional section, else header + question (+ OPT) with TC set. */
static int encode_fit(ldns_pkt *r, size_t limit, uint8_t *out, size_t *outlen, int *tc) {
  for (int stage = 0; stage < 3; stage++) {
    uint8_t *wire = NULL;
    size_t size = 0;
    int rv;
    if (stage == 1) {
      if (ldns_pkt_arcount(r) == 0) continue; /* nothing to drop */
      if ((rv = clear_section(r, LDNS_SECTION_ADDITIONAL)) != WR_OK) return rv;
    }
    if (stage == 2) {
      if ((rv = clear_section(r, LDNS_SECTION_ANSWER)) != WR_OK ||
          (rv = clear_section(r, LDNS_SECTION_AUTHORITY)) != WR_OK ||
          (rv = clear_section(r, LDNS_SECTION_ADDITIONAL)) != WR_OK)
        return rv;
      ldns_pkt_set_tc(r, true);
      *tc = 1;
    }
    ldns_status st = ldns_pkt2wire(&wire, r, &size);
    if (st != LDNS_STATUS_OK) {
      free(wire);
      return st == LDNS_STATUS_MEM_ERR ? WR_ERR_NOMEM : WR_ERR_INTERNAL;
    }
    if (size <= limit) {
      memcpy(out, wire, size);
      *outlen = size;
      free(wire);
      return WR_OK;
    }
    free(wire);
  }
  return WR_ERR_INTERNAL; /* a header and one question always fit in 512 */
}

/* A header-only answer with |rcode| (see header_only). Returns WR_OK. */
static int reply_header_only(const uint8_t *q, int rcode, uint8_t *out, size_t *outlen,
                             wr_dnsmsg_info *info) {
  info->rcode = rcode;
  *outlen = header_only(q, rcode, out);
  return WR_OK;
}

/* Parses a query whose header passed the checks. Sets *qp (the caller frees
 * it), *question, and info's edns, qtype and qname. Returns WR_OK,
 * WR_ERR_NOMEM, or WR_ERR_PROTO for a query to answer with FORMERR. */
static int parse_query(const uint8_t *q, size_t qlen, wr_dnsmsg_info *info, ldns_pkt **qp,
                       ldns_rr **question) {
  unsigned qd = (unsigned)(q[4] << 8 | q[5]), an = (unsigned)(q[6] << 8 | q[7]),
           ns = (unsigned)(q[8] << 8 | q[9]), ar = (unsigned)(q[10] << 8 | q[11]);
  /* Bound what ldns parses: a query is one question plus OPT and TSIG. */
  if (qd != 1 || an != 0 || ns != 0 || ar > 2) return WR_ERR_PROTO;
  ldns_status st = ldns_wire2pkt(qp, q, qlen);
  if (st == LDNS_STATUS_MEM_ERR) return WR_ERR_NOMEM;
  if (st != LDNS_STATUS_OK) return WR_ERR_PROTO;
  *question = ldns_rr_list_rr(ldns_pkt_question(*qp), 0);
  /* RFC 6891 6.1.1: more than one OPT is FORMERR. ldns keeps the count in
   * the packet's (public) _edns_present field. */
  if (!*question || (*qp)->_edns_present > 1) return WR_ERR_PROTO;
  info->edns = ldns_pkt_edns(*qp);
  info->qtype = (uint16_t)ldns_rr_get_type(*question);
  return canon_qname(ldns_rr_owner(*question), info->qname);
}

/* How large the response may be: a TCP message, else 512 bytes or with
 * EDNS(0) the requester's size clamped to [512, WR_DNSMSG_EDNS_SIZE]; never
 * more than |cap|. */
static size_t response_limit(const ldns_pkt *qp, int tcp, int edns, size_t cap) {
  size_t limit;
  if (tcp) {
    limit = WR_DNSMSG_MAX;
  } else if (edns) {
    limit = ldns_pkt_edns_udp_size(qp);
    if (limit < WR_DNSMSG_UDP_MIN) limit = WR_DNSMSG_UDP_MIN;
    if (limit > WR_DNSMSG_EDNS_SIZE) limit = WR_DNSMSG_EDNS_SIZE;
  } else {
    limit = WR_DNSMSG_UDP_MIN;
  }
  return limit > cap ? cap : limit;
}

/* The response skeleton: our header bits, the question, and our OPT when
 * the query had one. Returns WR_OK or WR_ERR_NOMEM (*r may be set: the
 * caller frees it). */
static int response_new(const ldns_pkt *qp, const ldns_rr *question, const wr_dnsmsg_info *info,
                        ldns_pkt **r) {
  if (!(*r = ldns_pkt_new())) return WR_ERR_NOMEM;
  ldns_pkt_set_id(*r, info->id);
  ldns_pkt_set_qr(*r, true);
  ldns_pkt_set_opcode(*r, LDNS_PACKET_QUERY);
  ldns_pkt_set_rd(*r, ldns_pkt_rd(qp));
  ldns_pkt_set_cd(*r, ldns_pkt_cd(qp));
  int rv = push(*r, LDNS_SECTION_QUESTION, ldns_rr_clone(question));
  if (rv != WR_OK) return rv;
  if (info->edns) {
    ldns_pkt_set_edns_udp_size(*r, WR_DNSMSG_EDNS_SIZE);
    ldns_pkt_set_edns_version(*r, 0);
    ldns_pkt_set_edns_do(*r, ldns_pkt_edns_do(qp)); /* RFC 3225 3: copied */
  }
  return WR_OK;
}

/* The rcode of a query that no zone is asked about, or -1 when the zones
 * decide. */
static int query_rcode(const ldns_pkt *qp, const ldns_rr *question, const wr_dnsmsg_info *info) {
  uint16_t qtype = info->qtype;
  if (info->edns && ldns_pkt_edns_version(qp) != 0) return WR_DNS_RCODE_BADVERS;
  if (ldns_pkt_tsig(qp)) return WR_DNS_RCODE_NOTAUTH; /* we hold no TSIG keys */
  if (qtype == LDNS_RR_TYPE_OPT || qtype == LDNS_RR_TYPE_TSIG || qtype == LDNS_RR_TYPE_TKEY)
    return WR_DNS_RCODE_FORMERR;
  if (ldns_rr_get_class(question) != LDNS_RR_CLASS_IN || qtype == LDNS_RR_TYPE_AXFR ||
      qtype == LDNS_RR_TYPE_IXFR)
    return WR_DNS_RCODE_REFUSED;
  if (qtype == LDNS_RR_TYPE_MAILA || qtype == LDNS_RR_TYPE_MAILB) return WR_DNS_RCODE_NOTIMP;
  return -1;
}

/* Answers from the zone |find| names for info->qname into |r|: sets *rcode,
 * and *aa when a zone of ours answered. Returns WR_OK or WR_ERR_NOMEM. */
static int answer_from_zone(wr_dnsmsg_zone_fn find, void *user, const wr_dnsmsg_info *info,
                            const ldns_rr *question, ldns_pkt *r, int *rcode, int *aa) {
  const wr_dnszone *z = NULL;
  int frv = info->qname[0] ? find(user, info->qname, &z) : WR_ERR_NOTFOUND;
  if (frv == WR_ERR_NOTFOUND) {
    *rcode = WR_DNS_RCODE_REFUSED;
    return WR_OK;
  }
  if (frv != WR_OK || !z || !z->sealed || !wr_dns_name_in_zone(info->qname, z->origin)) {
    *rcode = WR_DNS_RCODE_SERVFAIL;
    return WR_OK;
  }
  answer_ctx a = {.z = z, .r = r, .qtype = info->qtype, .rcode = WR_DNS_RCODE_NOERROR};
  int rv = answer_zone(&a, info->qname, ldns_rr_owner(question));
  if (rv != WR_OK) return rv;
  *rcode = a.rcode;
  *aa = 1;
  return WR_OK;
}

int wr_dnsmsg_respond(const uint8_t *q, size_t qlen, int tcp, wr_dnsmsg_zone_fn find, void *user,
                      uint8_t *out, size_t cap, size_t *outlen, wr_dnsmsg_info *info) {
  wr_dnsmsg_info dummy;
  ldns_pkt *qp = NULL, *r = NULL;
  ldns_rr *question = NULL;
  int rv, rcode, aa = 0;
  if (!info) info = &dummy;
  memset(info, 0, sizeof(*info));
  info->rcode = -1;
  *outlen = 0;
  if (cap < WR_DNSMSG_UDP_MIN) return WR_ERR_INVAL;
  if (qlen < HDR_LEN || qlen > WR_DNSMSG_MAX) return WR_ERR_PROTO;
  if (q[2] & 0x80) return WR_ERR_PROTO; /* a response: answering could loop */
  info->id = wr_get_be16(q);
  if (((q[2] >> 3) & 0x0f) != LDNS_PACKET_QUERY)
    return reply_header_only(q, WR_DNS_RCODE_NOTIMP, out, outlen, info);

  rv = parse_query(q, qlen, info, &qp, &question);
  if (rv == WR_ERR_PROTO) {
    rv = reply_header_only(q, WR_DNS_RCODE_FORMERR, out, outlen, info);
    goto out;
  }
  if (rv != WR_OK) goto out;
  if ((rv = response_new(qp, question, info, &r)) != WR_OK) goto out;
  rcode = query_rcode(qp, question, info);
  if (rcode < 0 && (rv = answer_from_zone(find, user, info, question, r, &rcode, &aa)) != WR_OK)
    goto out;
  ldns_pkt_set_aa(r, aa);
  ldns_pkt_set_rcode(r, (uint8_t)(rcode & 0x0f));
  if (info->edns) ldns_pkt_set_edns_extended_rcode(r, (uint8_t)(rcode >> 4));
  info->rcode = rcode;
  rv = encode_fit(r, response_limit(qp, tcp, info->edns, cap), out, outlen, &info->truncated);
out:
  if (rv != WR_OK) {
    *outlen = 0;
    info->rcode = -1;
  }
  ldns_pkt_free(r);
  ldns_pkt_free(qp);
  return rv;
}
