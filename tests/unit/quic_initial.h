/* Our QUIC client's first datagram: a real ClientHello in a padded Initial,
 * from 127.0.0.0/8 address |from| to |to| (host order), trusting the CA file
 * |ca|; |alpn| NULL: the default ("argotunnel"), "": none. What an attacker
 * replaying our own client code would send; test_quic.c and the
 * fuzz_quic_endpoint target both start from it. Header-only: the fuzz
 * targets link no test objects. Returns WR_OK with the datagram's length in
 * *n, or the failing call's error. */
#ifndef WR_UNIT_QUIC_INITIAL_H
#define WR_UNIT_QUIC_INITIAL_H
#include <arpa/inet.h>
#include <stdint.h>
#include <uv.h>

#include "lib/err.h"
#include "net/quic.h"

static inline int quic_client_initial(const char *ca, const char *alpn, uint32_t from, uint32_t to,
                                      uint8_t *buf, size_t cap, size_t *n) {
  wr_quic_config ccfg = {.ca_file = ca, .alpn = alpn};
  wr_quic_tls *t;
  wr_quic_conn *c;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(from)};
  struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(to)};
  wr_quic_path path = {(struct sockaddr *)&a, sizeof(a), (struct sockaddr *)&b, sizeof(b)};
  int rv = wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &t, NULL, 0);
  if (rv != WR_OK) return rv;
  rv = wr_quic_conn_client_new(t, &ccfg, &path, NULL, NULL, uv_hrtime(), &c);
  if (rv == WR_OK) {
    *n = 0;
    rv = wr_quic_conn_write(c, buf, cap, n, uv_hrtime());
    wr_quic_conn_free(c);
  }
  wr_quic_tls_free(t);
  return rv;
}

#endif
