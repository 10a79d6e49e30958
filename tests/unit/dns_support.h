/* Helpers shared by the DNS suites (test_dns.c: the answering rules of
 * proto/dnsmsg; test_dns_server.c: the server, expiry and UPDATE): the test
 * zone's names, and building queries and checking records with ldns. Linked
 * into every unit test, like unit.c. */
#ifndef WR_UNIT_DNS_SUPPORT_H
#define WR_UNIT_DNS_SUPPORT_H
#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

#define UUID1 "6ff42ae2-765d-4adf-8112-31c55c1551ef"
#define UUID2 "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
#define ZONE "example.test"
#define TARGET1 UUID1 ".cfargotunnel." ZONE

/* A query for |name| as ldns writes it (id 0x1234, RD); |edns| < 0: no OPT
 * record. Asserts on failure; the caller frees the result. */
uint8_t *unit_dns_query(const char *name, uint16_t type, uint16_t cls, int edns, size_t *len);
/* Checks record |i| of |l|: owner (presentation, with final dot), type and
 * first rdata field as ldns prints it (NULL: not checked). */
void unit_dns_expect_rr(const ldns_rr_list *l, size_t i, const char *owner, ldns_rr_type type,
                        const char *rdata);
#endif
