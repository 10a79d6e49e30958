/* Fuzzes the edge's DNS answering (proto/dnsmsg) and the checker of UPDATE
 * responses (edge/dns_update). Input: one flags byte, then a DNS message.
 *   bit 0 of the flags: TCP (else UDP); bit 1: feed the message to the
 *   UPDATE response checker instead.
 * Beyond "no crash" (ASan/UBSan) it checks what a server must guarantee:
 * every answer parses, echoes the id, has QR set, stays within the
 * transport's limit (512 without EDNS, WR_DNSMSG_EDNS_SIZE with it, 65535
 * over TCP), and nothing is sent back to a message that is itself a
 * response. The zone snapshot is the one the unit tests use (CNAMEs,
 * wildcard, empty non-terminal, a dangling CNAME, an out-of-zone target). */
#include <ldns/ldns.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/dns_update.h"
#include "lib/err.h"
#include "proto/dnsmsg.h"
#include "fuzz.h"

#define ZONE "example.test"
#define TARGET "6ff42ae2-765d-4adf-8112-31c55c1551ef.cfargotunnel." ZONE

static wr_dnszone *zone;
static wr_dns_update_msg upmsg;
static wr_dns_update_config upcfg = {
    .server = "127.0.0.1", .zone = "example.org", .key_name = "warren-key",
    .algorithm = "hmac-sha256", .secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="};

static int find(void *user, const char *qname, const wr_dnszone **z) {
  (void)user;
  if (!wr_dns_name_in_zone(qname, wr_dnszone_origin(zone))) return WR_ERR_NOTFOUND;
  *z = zone;
  return WR_OK;
}

static void setup(void) {
  static const char *const ns[] = {"ns1." ZONE, "ns.other.test"};
  static const uint8_t v4[2][4] = {{192, 0, 2, 1}, {192, 0, 2, 2}};
  static const uint8_t v6[1][16] = {{0x20, 0x01, 0x0d, 0xb8, [15] = 1}};
  wr_dnszone_params p = {.origin = ZONE, .ns = ns, .nns = 2, .hostmaster = "hostmaster." ZONE,
                         .serial = 1, .v4 = v4, .nv4 = 2, .v6 = v6, .nv6 = 1};
  if (wr_dnszone_new(NULL, &p, &zone) != WR_OK) abort();
  if (wr_dnszone_add(zone, TARGET, NULL) || wr_dnszone_add(zone, "app." ZONE, TARGET) ||
      wr_dnszone_add(zone, "a.b." ZONE, TARGET) || wr_dnszone_add(zone, "*.wild." ZONE, TARGET) ||
      wr_dnszone_add(zone, "loop." ZONE, "loop." ZONE) ||
      wr_dnszone_add(zone, "dangling." ZONE, "gone.cfargotunnel." ZONE) ||
      wr_dnszone_add(zone, "ext." ZONE, "elsewhere.example.net"))
    abort();
  wr_dnszone_seal(zone);
  static const char *const tg[] = {TARGET};
  wr_dns_change ch = {WR_DNS_CHANGE_SET, WR_DNS_TYPE_CNAME, "app.example.org", tg, 1};
  char err[256];
  if (wr_dns_update_build(&upcfg, &ch, 1, 0x1234, &upmsg, err, sizeof(err)) != WR_OK) abort();
}

static void check_answer(const uint8_t *q, size_t qlen, int tcp) {
  static uint8_t out[WR_DNSMSG_MAX];
  size_t outlen = 0;
  wr_dnsmsg_info info;
  int rv = wr_dnsmsg_respond(q, qlen, tcp, find, NULL, out, sizeof(out), &outlen, &info);
  if (rv != WR_OK) {
    if (outlen != 0) abort();
    if (rv != WR_ERR_PROTO && rv != WR_ERR_NOMEM) abort();
    return;
  }
  if (qlen >= 3 && (q[2] & 0x80)) abort(); /* answered a response */
  if (outlen < 12) abort();
  if (!tcp && outlen > (info.edns ? WR_DNSMSG_EDNS_SIZE : WR_DNSMSG_UDP_MIN)) abort();
  if (out[0] != q[0] || out[1] != q[1] || !(out[2] & 0x80)) abort();
  ldns_pkt *p = NULL;
  if (ldns_wire2pkt(&p, out, outlen) != LDNS_STATUS_OK) abort();
  /* TC only over UDP */
  if (tcp && ldns_pkt_tc(p)) abort();
  ldns_pkt_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!zone) setup();
  if (size < 1) return 0;
  uint8_t flags = data[0];
  data++;
  size--;
  if (flags & 2) {
    int rcode;
    char err[WR_DNS_UPDATE_MSG_MAX];
    (void)wr_dns_update_check(&upcfg, &upmsg, data, size, &rcode, err, sizeof(err));
    return 0;
  }
  check_answer(data, size, flags & 1);
  return 0;
}
