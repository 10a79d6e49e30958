/* DNS on the edge, the sans-I/O part: the answering rules of proto/dnsmsg
 * (zone snapshots, CNAME chasing, wildcards, negative answers, EDNS and
 * truncation, malformed queries, lookup errors). The server over loopback,
 * record expiry and RFC 2136 UPDATE are in test_dns_server.c. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "edge/dns.h"
#include "edge/dns_update.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "lib/err.h"
#include "proto/dnsmsg.h"
#include "dns_support.h"

/* --- helpers: queries and responses ----------------------------------------------- */

/* Zone lookup over one snapshot (or none: everything REFUSED). */
typedef struct one_zone {
  const wr_dnszone *z;
  int fail; /* return a store error */
  int calls;
} one_zone;

static int find_one(void *user, const char *qname, const wr_dnszone **zone) {
  one_zone *o = user;
  o->calls++;
  if (o->fail) return WR_ERR_STORE;
  if (!o->z || !wr_dns_name_in_zone(qname, wr_dnszone_origin(o->z))) return WR_ERR_NOTFOUND;
  *zone = o->z;
  return WR_OK;
}

/* Answers |q| from |z| and parses the response; asserts it is well formed. */
static ldns_pkt *ask_raw(one_zone *o, const uint8_t *q, size_t qlen, int tcp, size_t *rlen,
                         wr_dnsmsg_info *info) {
  static uint8_t out[WR_DNSMSG_MAX];
  size_t outlen = 0;
  ldns_pkt *r = NULL;
  assert_int_equal(wr_dnsmsg_respond(q, qlen, tcp, find_one, o, out, sizeof(out), &outlen, info), WR_OK);
  assert_true(outlen >= 12);
  if (rlen) *rlen = outlen;
  assert_int_equal(ldns_wire2pkt(&r, out, outlen), LDNS_STATUS_OK);
  assert_true(ldns_pkt_qr(r));
  assert_int_equal(ldns_pkt_id(r), (q[0] << 8) | q[1]);
  return r;
}

static ldns_pkt *ask(one_zone *o, const char *name, uint16_t type, int edns, int tcp, size_t *rlen) {
  size_t qlen;
  uint8_t *q = unit_dns_query(name, type, LDNS_RR_CLASS_IN, edns, &qlen);
  ldns_pkt *r = ask_raw(o, q, qlen, tcp, rlen, NULL);
  free(q);
  return r;
}

static void expect_neg_soa(ldns_pkt *r) {
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 0);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_authority(r)), 1);
  unit_dns_expect_rr(ldns_pkt_authority(r), 0, ZONE ".", LDNS_RR_TYPE_SOA, "ns1." ZONE ".");
  /* RFC 2308: the TTL of the negative SOA is min(TTL, MINIMUM) = 60 */
  assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_authority(r), 0)), 60);
}

/* Asks |name| |type| over UDP without EDNS: |n| answer records. */
static void expect_answers(one_zone *o, const char *name, uint16_t type, size_t n) {
  ldns_pkt *r = ask(o, name, type, -1, 0, NULL);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), n);
  ldns_pkt_free(r);
}

/* The same: NODATA (NOERROR, no answer, the SOA in the authority section). */
static void expect_nodata(one_zone *o, const char *name, uint16_t type) {
  ldns_pkt *r = ask(o, name, type, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  expect_neg_soa(r);
  ldns_pkt_free(r);
}

static const uint8_t V4[2][4] = {{192, 0, 2, 1}, {192, 0, 2, 2}};
static const uint8_t V6[1][16] = {{0x20, 0x01, 0x0d, 0xb8, [15] = 1}};

/* The test zone: ns1 (in zone) and ns.other.test, one tunnel target, and
 * routes app, a.b (so b is an empty non-terminal), *.wild, dangling -> a
 * tunnel that is gone, and ext -> outside the zone. */
static wr_dnszone *test_zone(const wr_mem *mem, size_t nv4, size_t nv6) {
  static const char *const ns[] = {"ns1." ZONE, "ns.other.test"};
  wr_dnszone_params p = {.origin = ZONE, .ns = ns, .nns = 2, .hostmaster = "hostmaster." ZONE,
                         .serial = 42, .ttl = 300, .neg_ttl = 60,
                         .v4 = V4, .nv4 = nv4, .v6 = V6, .nv6 = nv6};
  wr_dnszone *z = NULL;
  int rv = wr_dnszone_new(mem, &p, &z);
  if (rv != WR_OK) return NULL;
  if (wr_dnszone_add(z, TARGET1, NULL) != WR_OK ||
      wr_dnszone_add(z, "app." ZONE, TARGET1) != WR_OK ||
      wr_dnszone_add(z, "a.b." ZONE, TARGET1) != WR_OK ||
      wr_dnszone_add(z, "*.wild." ZONE, TARGET1) != WR_OK ||
      wr_dnszone_add(z, "dangling." ZONE, UUID2 ".cfargotunnel." ZONE) != WR_OK ||
      wr_dnszone_add(z, "ext." ZONE, "elsewhere.example.net") != WR_OK ||
      wr_dnszone_add(z, "loop." ZONE, "loop2." ZONE) != WR_OK ||
      wr_dnszone_add(z, "loop2." ZONE, "loop." ZONE) != WR_OK ||
      /* shadowed: ns1 stays an address name (added first) */
      wr_dnszone_add(z, "ns1." ZONE, TARGET1) != WR_OK) {
    wr_dnszone_free(z);
    return NULL;
  }
  /* a chain c0 -> c1 -> ... -> c9 -> the tunnel */
  for (int i = 0; i < 10; i++) {
    char owner[64], target[64];
    snprintf(owner, sizeof(owner), "c%d." ZONE, i);
    snprintf(target, sizeof(target), i < 9 ? "c%d." ZONE : TARGET1, i + 1);
    if (wr_dnszone_add(z, owner, target) != WR_OK) {
      wr_dnszone_free(z);
      return NULL;
    }
  }
  wr_dnszone_seal(z);
  return z;
}

/* --- names and snapshots ------------------------------------------------------------ */

static void test_names(void **state) {
  (void)state;
  assert_int_equal(wr_dns_name_check("app.example.test"), WR_OK);
  assert_int_equal(wr_dns_name_check("*.example.test"), WR_OK);
  assert_int_equal(wr_dns_name_check("_acme-challenge.x.test"), WR_OK);
  assert_int_equal(wr_dns_name_check("a*.example.test"), WR_ERR_INVAL);
  assert_int_equal(wr_dns_name_check("App.example.test"), WR_ERR_INVAL);
  assert_int_equal(wr_dns_name_check("a..b"), WR_ERR_INVAL);
  assert_int_equal(wr_dns_name_check("a.b."), WR_ERR_INVAL);
  assert_int_equal(wr_dns_name_check(""), WR_ERR_INVAL);
  char long_label[80];
  memset(long_label, 'a', 64);
  strcpy(long_label + 64, ".test");
  assert_int_equal(wr_dns_name_check(long_label), WR_ERR_INVAL);
  assert_true(wr_dns_name_in_zone("example.test", "example.test"));
  assert_true(wr_dns_name_in_zone("a.example.test", "example.test"));
  assert_false(wr_dns_name_in_zone("aexample.test", "example.test"));
  assert_false(wr_dns_name_in_zone("test", "example.test"));
}

static void test_zone_build(void **state) {
  (void)state;
  static const char *const ns[] = {"ns1." ZONE};
  wr_dnszone_params p = {.origin = ZONE, .ns = ns, .nns = 1, .hostmaster = "hostmaster." ZONE};
  wr_dnszone *z;
  assert_int_equal(wr_dnszone_new(NULL, &p, &z), WR_OK);
  assert_int_equal(wr_dnszone_count(z), 1); /* ns1 */
  assert_int_equal(wr_dnszone_add(z, ZONE, NULL), WR_ERR_INVAL);          /* apex */
  assert_int_equal(wr_dnszone_add(z, "a.other.test", NULL), WR_ERR_INVAL); /* outside */
  assert_int_equal(wr_dnszone_add(z, "A." ZONE, NULL), WR_ERR_INVAL);     /* not canonical */
  assert_int_equal(wr_dnszone_add(z, "a." ZONE, "*.x.test"), WR_ERR_INVAL);
  assert_int_equal(wr_dnszone_add(z, "a." ZONE, NULL), WR_OK);
  assert_int_equal(wr_dnszone_add(z, "a." ZONE, "x.test"), WR_OK); /* duplicate: dropped at seal */
  wr_dnszone_seal(z);
  assert_int_equal(wr_dnszone_count(z), 2);
  assert_int_equal(wr_dnszone_add(z, "b." ZONE, NULL), WR_ERR_INVAL); /* sealed */
  wr_dnszone_free(z);
  /* bad parameters */
  p.nns = 0;
  assert_int_equal(wr_dnszone_new(NULL, &p, &z), WR_ERR_INVAL);
  p.nns = 1;
  p.origin = "Example.test";
  assert_int_equal(wr_dnszone_new(NULL, &p, &z), WR_ERR_INVAL);
  static const char *const apex_ns[] = {ZONE};
  p.origin = ZONE;
  p.ns = apex_ns;
  assert_int_equal(wr_dnszone_new(NULL, &p, &z), WR_ERR_INVAL);
}

/* Every allocation of building a snapshot fails in turn: no leak, no crash. */
static void test_zone_oom(void **state) {
  (void)state;
  long n_ok = -1;
  for (long i = 0; i < 200; i++) {
    unit_failmem fm;
    unit_failmem_init(&fm, i);
    wr_dnszone *z = test_zone(&fm.mem, 2, 1);
    if (z) {
      wr_dnszone_free(z);
      assert_int_equal(fm.live, 0);
      n_ok = i;
      break;
    }
    assert_int_equal(fm.live, 0);
  }
  assert_true(n_ok > 0);
}

/* --- answers ------------------------------------------------------------------------ */

static int zone_setup(void **state) {
  one_zone *o = calloc(1, sizeof(*o));
  o->z = test_zone(NULL, 2, 1);
  *state = o;
  return o->z ? 0 : -1;
}

static int zone_teardown(void **state) {
  one_zone *o = *state;
  wr_dnszone_free((wr_dnszone *)o->z);
  free(o);
  return 0;
}

static void test_cname_chase(void **state) {
  one_zone *o = *state;
  ldns_pkt *r = ask(o, "app." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  assert_true(ldns_pkt_aa(r));
  assert_true(ldns_pkt_rd(r)); /* copied */
  assert_false(ldns_pkt_ra(r));
  ldns_rr_list *an = ldns_pkt_answer(r);
  assert_int_equal(ldns_rr_list_rr_count(an), 3);
  unit_dns_expect_rr(an, 0, "app." ZONE ".", LDNS_RR_TYPE_CNAME, TARGET1 ".");
  unit_dns_expect_rr(an, 1, TARGET1 ".", LDNS_RR_TYPE_A, "192.0.2.1");
  unit_dns_expect_rr(an, 2, TARGET1 ".", LDNS_RR_TYPE_A, "192.0.2.2");
  assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(an, 0)), 300);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_authority(r)), 0);
  ldns_pkt_free(r);

  r = ask(o, "app." ZONE, LDNS_RR_TYPE_AAAA, -1, 0, NULL);
  an = ldns_pkt_answer(r);
  assert_int_equal(ldns_rr_list_rr_count(an), 2);
  unit_dns_expect_rr(an, 1, TARGET1 ".", LDNS_RR_TYPE_AAAA, "2001:db8::1");
  ldns_pkt_free(r);

  /* CNAME and ANY stop at the CNAME */
  expect_answers(o, "app." ZONE, LDNS_RR_TYPE_CNAME, 1);
  expect_answers(o, "app." ZONE, LDNS_RR_TYPE_ANY, 1);

  /* the target itself; a type it does not have is NODATA */
  expect_answers(o, TARGET1, LDNS_RR_TYPE_A, 2);
  expect_nodata(o, TARGET1, LDNS_RR_TYPE_MX);

  /* a CNAME to a gone tunnel: CNAME + NXDOMAIN (RFC 6604) */
  r = ask(o, "dangling." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 1);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_authority(r)), 1);
  ldns_pkt_free(r);

  /* a loop stops at the first name seen twice; a chain after 8 links */
  r = ask(o, "loop." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 2);
  unit_dns_expect_rr(ldns_pkt_answer(r), 1, "loop2." ZONE ".", LDNS_RR_TYPE_CNAME, "loop." ZONE ".");
  ldns_pkt_free(r);
  r = ask(o, "c0." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), WR_DNSMSG_MAX_CHASE);
  unit_dns_expect_rr(ldns_pkt_answer(r), 7, "c7." ZONE ".", LDNS_RR_TYPE_CNAME, "c8." ZONE ".");
  ldns_pkt_free(r);
  r = ask(o, "c3." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 7 + 2); /* 7 CNAMEs + 2 A */
  ldns_pkt_free(r);

  /* a CNAME out of the zone is not followed */
  r = ask(o, "ext." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 1);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, "ext." ZONE ".", LDNS_RR_TYPE_CNAME, "elsewhere.example.net.");
  ldns_pkt_free(r);
}

static void test_case_preserved(void **state) {
  one_zone *o = *state;
  ldns_pkt *r = ask(o, "ApP.ExAmple.TEST", LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  char *qn = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(r), 0)));
  assert_string_equal(qn, "ApP.ExAmple.TEST.");
  free(qn);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 3);
  ldns_pkt_free(r);
}

static void test_apex(void **state) {
  one_zone *o = *state;
  ldns_pkt *r = ask(o, ZONE, LDNS_RR_TYPE_SOA, -1, 0, NULL);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 1);
  ldns_rr *soa = ldns_rr_list_rr(ldns_pkt_answer(r), 0);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, ZONE ".", LDNS_RR_TYPE_SOA, "ns1." ZONE ".");
  char *rname = ldns_rdf2str(ldns_rr_rdf(soa, 1));
  assert_string_equal(rname, "hostmaster." ZONE ".");
  free(rname);
  assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 2)), 42);
  assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 6)), 60);
  ldns_pkt_free(r);

  r = ask(o, ZONE, LDNS_RR_TYPE_NS, -1, 0, NULL);
  ldns_rr_list *an = ldns_pkt_answer(r);
  assert_int_equal(ldns_rr_list_rr_count(an), 2);
  unit_dns_expect_rr(an, 0, ZONE ".", LDNS_RR_TYPE_NS, "ns1." ZONE ".");
  unit_dns_expect_rr(an, 1, ZONE ".", LDNS_RR_TYPE_NS, "ns.other.test.");
  /* glue for the in-zone name server only */
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_additional(r)), 3);
  unit_dns_expect_rr(ldns_pkt_additional(r), 0, "ns1." ZONE ".", LDNS_RR_TYPE_A, "192.0.2.1");
  ldns_pkt_free(r);

  expect_answers(o, ZONE, LDNS_RR_TYPE_ANY, 3);

  expect_nodata(o, ZONE, LDNS_RR_TYPE_A);

  /* ns1 is an address name even though a route with that name was added */
  r = ask(o, "ns1." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 2);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, "ns1." ZONE ".", LDNS_RR_TYPE_A, "192.0.2.1");
  ldns_pkt_free(r);
}

static void test_negative(void **state) {
  one_zone *o = *state;
  ldns_pkt *r = ask(o, "missing." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  assert_true(ldns_pkt_aa(r));
  expect_neg_soa(r);
  ldns_pkt_free(r);
  /* below an existing name */
  r = ask(o, "x.app." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(r);
  /* empty non-terminals: b (a.b exists), cfargotunnel (targets below) */
  expect_nodata(o, "b." ZONE, LDNS_RR_TYPE_A);
  r = ask(o, "cfargotunnel." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  ldns_pkt_free(r);
  /* other zones */
  r = ask(o, "example.net", LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
  assert_false(ldns_pkt_aa(r));
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 0);
  ldns_pkt_free(r);
  r = ask(o, "test", LDNS_RR_TYPE_SOA, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
  ldns_pkt_free(r);
  r = ask(o, ".", LDNS_RR_TYPE_NS, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
  ldns_pkt_free(r);
}

/* Dynamic TXT values (ACME DNS-01): answered per query, NODATA for other
 * types, and a name without values keeps its usual answer. */
static size_t txt_fn(void *user, const char *name, char *out, size_t row, size_t max) {
  (*(int *)user)++;
  if (strcmp(name, "_acme-challenge.app." ZONE) != 0 || max < 2) return 0;
  snprintf(out, row, "%s", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  snprintf(out + row, row, "%s", "second");
  return 2;
}

static void test_txt(void **state) {
  one_zone *o = *state;
  int calls = 0;
  wr_dnszone_set_txt((wr_dnszone *)o->z, txt_fn, &calls);
  ldns_pkt *r = ask(o, "_acme-challenge.app." ZONE, LDNS_RR_TYPE_TXT, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  assert_true(ldns_pkt_aa(r));
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 2);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, "_acme-challenge.app." ZONE ".", LDNS_RR_TYPE_TXT,
            "\"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0\"");
  assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(r), 0)), 0);
  ldns_pkt_free(r);
  r = ask(o, "_acme-challenge.app." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  expect_neg_soa(r);
  ldns_pkt_free(r);
  r = ask(o, "_acme-challenge.other." ZONE, LDNS_RR_TYPE_TXT, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(r);
  r = ask(o, "app." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  assert_true(ldns_rr_list_rr_count(ldns_pkt_answer(r)) >= 2);
  ldns_pkt_free(r);
  assert_true(calls >= 4);
  wr_dnszone_set_txt((wr_dnszone *)o->z, NULL, NULL);
}

static void test_wildcard(void **state) {
  one_zone *o = *state;
  ldns_pkt *r = ask(o, "x.wild." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  ldns_rr_list *an = ldns_pkt_answer(r);
  assert_int_equal(ldns_rr_list_rr_count(an), 3);
  unit_dns_expect_rr(an, 0, "x.wild." ZONE ".", LDNS_RR_TYPE_CNAME, TARGET1 ".");
  ldns_pkt_free(r);
  /* deeper names match the same wildcard (closest encloser wild.<zone>) */
  r = ask(o, "y.x.wild." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, "y.x.wild." ZONE ".", LDNS_RR_TYPE_CNAME, TARGET1 ".");
  ldns_pkt_free(r);
  /* the wildcard's parent exists only as an empty non-terminal */
  expect_nodata(o, "wild." ZONE, LDNS_RR_TYPE_A);
}

static void test_edns(void **state) {
  one_zone *o = *state;
  size_t qlen;
  wr_dnsmsg_info info;
  uint8_t *q = unit_dns_query("app." ZONE, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 4096, &qlen);
  ldns_pkt *r = ask_raw(o, q, qlen, 0, NULL, &info);
  free(q);
  assert_true(info.edns);
  assert_string_equal(info.qname, "app." ZONE);
  assert_int_equal(info.qtype, LDNS_RR_TYPE_A);
  assert_true(ldns_pkt_edns(r));
  assert_int_equal(ldns_pkt_edns_udp_size(r), WR_DNSMSG_EDNS_SIZE);
  assert_true(ldns_pkt_edns_do(r));
  assert_int_equal(ldns_pkt_edns_version(r), 0);
  ldns_pkt_free(r);

  /* version 1: BADVERS (extended rcode 1, header rcode 0) */
  ldns_pkt *qp = NULL;
  uint8_t *wire = NULL;
  ldns_pkt_query_new_frm_str(&qp, "app." ZONE, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
  ldns_pkt_set_edns_udp_size(qp, 1232);
  ldns_pkt_set_edns_version(qp, 1);
  assert_int_equal(ldns_pkt2wire(&wire, qp, &qlen), LDNS_STATUS_OK);
  ldns_pkt_free(qp);
  r = ask_raw(o, wire, qlen, 0, NULL, &info);
  free(wire);
  assert_int_equal(info.rcode, WR_DNS_RCODE_BADVERS);
  assert_int_equal(ldns_pkt_get_rcode(r), 0);
  assert_int_equal(ldns_pkt_edns_extended_rcode(r), 1);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 0);
  ldns_pkt_free(r);
}

/* Many addresses: TC over UDP without EDNS and above the EDNS size, the
 * full answer over TCP; an NS answer loses its glue, not its NS records. */
static void test_truncation(void **state) {
  (void)state;
  static const char *const ns[] = {"ns1." ZONE, "ns2." ZONE};
  uint8_t v6[64][16];
  for (int i = 0; i < 64; i++) {
    memcpy(v6[i], V6[0], 16);
    v6[i][15] = (uint8_t)(i + 1);
  }
  wr_dnszone_params p = {.origin = ZONE, .ns = ns, .nns = 2, .hostmaster = "hostmaster." ZONE,
                         .v6 = (const uint8_t(*)[16])v6, .nv6 = 64};
  wr_dnszone *z;
  assert_int_equal(wr_dnszone_new(NULL, &p, &z), WR_OK);
  assert_int_equal(wr_dnszone_add(z, "app." ZONE, "ns1." ZONE), WR_OK);
  wr_dnszone_seal(z);
  one_zone o = {.z = z};
  size_t rlen, qlen;
  wr_dnsmsg_info info;

  uint8_t *q = unit_dns_query("app." ZONE, LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_IN, -1, &qlen);
  ldns_pkt *r = ask_raw(&o, q, qlen, 0, &rlen, &info);
  assert_true(rlen <= 512);
  assert_true(ldns_pkt_tc(r));
  assert_true(info.truncated);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 0);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_question(r)), 1);
  ldns_pkt_free(r);
  r = ask_raw(&o, q, qlen, 1, &rlen, &info); /* TCP */
  assert_false(ldns_pkt_tc(r));
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 65);
  ldns_pkt_free(r);
  free(q);

  /* EDNS 4096 is clamped to 1232: still too big (64 x 28 bytes) */
  r = ask(&o, "app." ZONE, LDNS_RR_TYPE_AAAA, 4096, 0, &rlen);
  assert_true(ldns_pkt_tc(r));
  assert_true(rlen <= WR_DNSMSG_EDNS_SIZE);
  assert_true(ldns_pkt_edns(r)); /* OPT kept */
  ldns_pkt_free(r);
  /* EDNS size below 512 counts as 512 */
  r = ask(&o, "ns1." ZONE, LDNS_RR_TYPE_AAAA, 100, 0, &rlen);
  assert_true(ldns_pkt_tc(r));
  ldns_pkt_free(r);

  /* NS: glue (2 x 64 AAAA) dropped, no TC */
  r = ask(&o, ZONE, LDNS_RR_TYPE_NS, -1, 0, &rlen);
  assert_false(ldns_pkt_tc(r));
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 2);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_additional(r)), 0);
  ldns_pkt_free(r);
  r = ask(&o, ZONE, LDNS_RR_TYPE_NS, -1, 1, &rlen);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_additional(r)), 128);
  ldns_pkt_free(r);
  wr_dnszone_free(z);
}

/* Malformed and unusual queries. */
static void test_bad_queries(void **state) {
  one_zone *o = *state;
  uint8_t out[WR_DNSMSG_MAX];
  size_t outlen, qlen;
  wr_dnsmsg_info info;
  uint8_t *q = unit_dns_query("app." ZONE, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, -1, &qlen);

  /* short, responses, tiny output buffer: nothing sent */
  assert_int_equal(wr_dnsmsg_respond(q, 11, 0, find_one, o, out, sizeof(out), &outlen, NULL), WR_ERR_PROTO);
  q[2] |= 0x80;
  assert_int_equal(wr_dnsmsg_respond(q, qlen, 0, find_one, o, out, sizeof(out), &outlen, NULL), WR_ERR_PROTO);
  assert_int_equal(outlen, 0);
  q[2] &= 0x7f;
  assert_int_equal(wr_dnsmsg_respond(q, qlen, 0, find_one, o, out, 100, &outlen, NULL), WR_ERR_INVAL);

  /* NOTIFY (opcode 4): NOTIMP, header only */
  uint8_t *n = malloc(qlen);
  memcpy(n, q, qlen);
  n[2] = (uint8_t)((n[2] & 0x87) | (4 << 3));
  assert_int_equal(wr_dnsmsg_respond(n, qlen, 0, find_one, o, out, sizeof(out), &outlen, &info), WR_OK);
  assert_int_equal(outlen, 12);
  assert_int_equal(out[3] & 0x0f, WR_DNS_RCODE_NOTIMP);
  assert_int_equal((out[2] >> 3) & 0x0f, 4);
  assert_true(out[2] & 0x80);

  /* two questions, an answer record, garbage: FORMERR */
  memcpy(n, q, qlen);
  n[5] = 2;
  assert_int_equal(wr_dnsmsg_respond(n, qlen, 0, find_one, o, out, sizeof(out), &outlen, &info), WR_OK);
  assert_int_equal(info.rcode, WR_DNS_RCODE_FORMERR);
  assert_int_equal(out[3] & 0x0f, WR_DNS_RCODE_FORMERR);
  memcpy(n, q, qlen);
  n[7] = 1;
  assert_int_equal(wr_dnsmsg_respond(n, qlen, 0, find_one, o, out, sizeof(out), &outlen, &info), WR_OK);
  assert_int_equal(info.rcode, WR_DNS_RCODE_FORMERR);
  assert_int_equal(wr_dnsmsg_respond(q, qlen - 3, 0, find_one, o, out, sizeof(out), &outlen, &info), WR_OK);
  assert_int_equal(info.rcode, WR_DNS_RCODE_FORMERR);
  memcpy(n, q, qlen);
  n[12] = 0xc0; /* a compression pointer to itself */
  n[13] = 12;
  assert_int_equal(wr_dnsmsg_respond(n, qlen, 0, find_one, o, out, sizeof(out), &outlen, &info), WR_OK);
  assert_int_equal(info.rcode, WR_DNS_RCODE_FORMERR);
  free(n);
  free(q);

  /* class CH, AXFR, MAILB, TSIG as a question type */
  q = unit_dns_query("app." ZONE, LDNS_RR_TYPE_A, LDNS_RR_CLASS_CH, -1, &qlen);
  ldns_pkt *r = ask_raw(o, q, qlen, 0, NULL, &info);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
  ldns_pkt_free(r);
  free(q);
  r = ask(o, ZONE, LDNS_RR_TYPE_AXFR, -1, 1, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
  ldns_pkt_free(r);
  r = ask(o, ZONE, LDNS_RR_TYPE_MAILB, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOTIMPL);
  ldns_pkt_free(r);
  r = ask(o, ZONE, LDNS_RR_TYPE_TSIG, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_FORMERR);
  ldns_pkt_free(r);

  /* a TSIG-signed query: NOTAUTH (no keys here) */
  ldns_pkt *qp = NULL;
  uint8_t *wire = NULL;
  ldns_pkt_query_new_frm_str(&qp, "app." ZONE, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
  assert_int_equal(ldns_pkt_tsig_sign(qp, "k.", "c2VjcmV0c2VjcmV0c2VjcmV0", 300, "hmac-sha256.", NULL),
                   LDNS_STATUS_OK);
  assert_int_equal(ldns_pkt2wire(&wire, qp, &qlen), LDNS_STATUS_OK);
  ldns_pkt_free(qp);
  r = ask_raw(o, wire, qlen, 0, NULL, &info);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOTAUTH);
  ldns_pkt_free(r);
  free(wire);

  /* a label holding a dot byte cannot match "b.example.test" */
  static const uint8_t dotted[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                   3, 'a', '.', 'b', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e',
                                   4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
  r = ask_raw(o, dotted, sizeof(dotted), 0, NULL, &info);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  assert_string_equal(info.qname, "a?b." ZONE);
  ldns_pkt_free(r);
}

static void test_lookup_errors(void **state) {
  (void)state;
  one_zone o = {.fail = 1};
  ldns_pkt *r = ask(&o, "app." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_SERVFAIL);
  assert_false(ldns_pkt_aa(r));
  ldns_pkt_free(r);
  /* an unsealed snapshot is never used */
  static const char *const ns[] = {"ns1." ZONE};
  wr_dnszone_params p = {.origin = ZONE, .ns = ns, .nns = 1, .hostmaster = "h." ZONE};
  wr_dnszone *z;
  assert_int_equal(wr_dnszone_new(NULL, &p, &z), WR_OK);
  one_zone u = {.z = z};
  r = ask(&u, "app." ZONE, LDNS_RR_TYPE_A, -1, 0, NULL);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_SERVFAIL);
  ldns_pkt_free(r);
  wr_dnszone_free(z);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL, UNIT_TESTS(test_names, test_zone_build, test_zone_oom),
      UNIT_FIXTURE(zone_setup, zone_teardown, test_cname_chase, test_case_preserved, test_apex,
                   test_negative, test_txt, test_wildcard, test_edns),
      UNIT_TESTS(test_truncation), UNIT_FIXTURE(zone_setup, zone_teardown, test_bad_queries),
      UNIT_TESTS(test_lookup_errors));
}
