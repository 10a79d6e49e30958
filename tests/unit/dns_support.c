/* Helpers shared by the DNS suites: see dns_support.h. */
#include "dns_support.h"

#include <stdlib.h>

#include "unit.h"

uint8_t *unit_dns_query(const char *name, uint16_t type, uint16_t cls, int edns, size_t *len) {
  ldns_pkt *q = NULL;
  uint8_t *wire = NULL;
  assert_int_equal(ldns_pkt_query_new_frm_str(&q, name, (ldns_rr_type)type, (ldns_rr_class)cls, LDNS_RD),
                   LDNS_STATUS_OK);
  ldns_pkt_set_id(q, 0x1234);
  if (edns >= 0) {
    ldns_pkt_set_edns_udp_size(q, (uint16_t)edns);
    ldns_pkt_set_edns_do(q, true);
  }
  assert_int_equal(ldns_pkt2wire(&wire, q, len), LDNS_STATUS_OK);
  ldns_pkt_free(q);
  return wire;
}

void unit_dns_expect_rr(const ldns_rr_list *l, size_t i, const char *owner, ldns_rr_type type,
                        const char *rdata) {
  assert_true(i < ldns_rr_list_rr_count(l));
  ldns_rr *rr = ldns_rr_list_rr(l, i);
  if (owner) {
    char *o = ldns_rdf2str(ldns_rr_owner(rr));
    assert_string_equal(o, owner);
    free(o);
  }
  assert_int_equal(ldns_rr_get_type(rr), type);
  if (rdata) {
    char *d = ldns_rdf2str(ldns_rr_rdf(rr, 0));
    assert_string_equal(d, rdata);
    free(d);
  }
}
