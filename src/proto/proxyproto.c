/* PROXY protocol v1/v2 headers; see proxyproto.h. Layouts from HAProxy's
 * proxy-protocol.txt: v1 section 2.1, v2 section 2.2 (signature, version
 * and command 0x21, family/transport 0x11 TCP4 or 0x21 TCP6, big-endian
 * length, then addresses and ports). */
#include "proto/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* One side of the header in a common family: 4 or 16 address bytes. */
typedef struct side {
  uint8_t addr[16];
  uint16_t port;
} side;

static int known(const struct sockaddr_storage *a) {
  return a && (a->ss_family == AF_INET || a->ss_family == AF_INET6);
}

/* |a| as IPv6 (IPv4-mapped when |v6| and |a| is IPv4), or as IPv4. */
static void to_side(const struct sockaddr_storage *a, int v6, side *s) {
  memset(s, 0, sizeof(*s));
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)a;
    s->port = ntohs(in->sin_port);
    if (v6) {
      s->addr[10] = s->addr[11] = 0xff;
      memcpy(s->addr + 12, &in->sin_addr, 4);
    } else {
      memcpy(s->addr, &in->sin_addr, 4);
    }
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    s->port = ntohs(in6->sin6_port);
    memcpy(s->addr, &in6->sin6_addr, 16);
  }
}

static int write_v1(int v6, const side *s, const side *d, int unknown, uint8_t *out, size_t cap) {
  char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN], line[WR_PROXYPROTO_MAX];
  int n;
  if (unknown) {
    n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
  } else {
    int af = v6 ? AF_INET6 : AF_INET;
    if (!inet_ntop(af, s->addr, sa, sizeof(sa)) || !inet_ntop(af, d->addr, da, sizeof(da)))
      return -1;
    n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4", sa, da,
                 (unsigned)s->port, (unsigned)d->port);
  }
  if (n < 0 || (size_t)n >= sizeof(line) || (size_t)n > cap) return -1;
  memcpy(out, line, (size_t)n);
  return n;
}

static int write_v2(int v6, const side *s, const side *d, int unknown, uint8_t *out, size_t cap) {
  size_t alen = unknown ? 0 : v6 ? 16 : 4, len = unknown ? 0 : 2 * alen + 4;
  if (cap < 16 + len) return -1;
  memcpy(out, v2_sig, 12);
  out[12] = 0x21; /* version 2, PROXY */
  out[13] = unknown ? 0x00 : v6 ? 0x21 : 0x11;
  out[14] = (uint8_t)(len >> 8);
  out[15] = (uint8_t)len;
  if (!unknown) {
    uint8_t *p = out + 16;
    memcpy(p, s->addr, alen);
    memcpy(p + alen, d->addr, alen);
    p += 2 * alen;
    p[0] = (uint8_t)(s->port >> 8);
    p[1] = (uint8_t)s->port;
    p[2] = (uint8_t)(d->port >> 8);
    p[3] = (uint8_t)d->port;
  }
  return (int)(16 + len);
}

int wr_proxyproto_write(int version, const struct sockaddr_storage *src,
                        const struct sockaddr_storage *dst, uint8_t *out, size_t cap) {
  side s, d;
  int unknown = !known(src) || !known(dst);
  int v6 = !unknown && (src->ss_family == AF_INET6 || dst->ss_family == AF_INET6);
  if (!out) return -1;
  if (!unknown) {
    to_side(src, v6, &s);
    to_side(dst, v6, &d);
  }
  if (version == WR_PROXYPROTO_V1) return write_v1(v6, &s, &d, unknown, out, cap);
  if (version == WR_PROXYPROTO_V2) return write_v2(v6, &s, &d, unknown, out, cap);
  return -1;
}

int wr_proxyproto_addr(const char *ip, size_t len, uint16_t port, struct sockaddr_storage *out) {
  char buf[INET6_ADDRSTRLEN + 2];
  memset(out, 0, sizeof(*out));
  out->ss_family = AF_UNSPEC;
  if (!ip) return -1;
  if (len >= 2 && ip[0] == '[' && ip[len - 1] == ']') {
    ip++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof(buf)) return -1;
  memcpy(buf, ip, len);
  buf[len] = '\0';
  struct sockaddr_in *in = (struct sockaddr_in *)out;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, buf, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    return 0;
  }
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return 0;
  }
  memset(out, 0, sizeof(*out));
  out->ss_family = AF_UNSPEC;
  return -1;
}
