/* uuid.UUID, net.IP and net.IPNet as Go parses and prints them. See
 * values.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cfapi/values.h"
#include "lib/err.h"

/* ---- uuid.Parse ---------------------------------------------------------------- */

int wr_cfapi_uuid_parse(const char *s, wr_uuid *u, char *why, size_t whylen) {
  size_t n = strlen(s);
  char canon[37];
  if (n == 36 + 9) {
    if (strncasecmp(s, "urn:uuid:", 9) != 0) {
      snprintf(why, whylen, "invalid urn prefix: %.9s", s);
      return WR_ERR_PROTO;
    }
    s += 9;
  } else if (n == 38) {
    if (s[0] != '{' || s[37] != '}') goto bad_format;
    s++;
  } else if (n == 32) {
    for (int i = 0, o = 0; i < 32; i++) {
      if (o == 8 || o == 13 || o == 18 || o == 23) canon[o++] = '-';
      canon[o++] = s[i];
    }
    canon[36] = '\0';
    s = canon;
  } else if (n != 36) {
    snprintf(why, whylen, "invalid UUID length: %zu", n);
    return WR_ERR_PROTO;
  }
  if (wr_uuid_parse(s, 36, u) == WR_OK) return WR_OK;
bad_format:
  snprintf(why, whylen, "invalid UUID format");
  return WR_ERR_PROTO;
}

/* ---- net.IP ------------------------------------------------------------------------ */

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int wr_cfapi_ip_parse(const char *s, wr_cfapi_ip *ip) {
  memset(ip, 0, sizeof(*ip));
  if (strchr(s, '.') && !strchr(s, ':')) {
    if (inet_pton(AF_INET, s, ip->b + 12) != 1) return WR_ERR_PROTO;
    memcpy(ip->b, v4_prefix, 12);
    ip->len = 16; /* net.ParseIP returns the 16-byte form */
    return WR_OK;
  }
  if (strchr(s, '%') || inet_pton(AF_INET6, s, ip->b) != 1) return WR_ERR_PROTO;
  ip->len = 16;
  return WR_OK;
}

static int ip_is_v4(const wr_cfapi_ip *ip) {
  return ip->len == 4 || (ip->len == 16 && memcmp(ip->b, v4_prefix, 12) == 0);
}

static const uint8_t *ip_v4(const wr_cfapi_ip *ip) { return ip->len == 4 ? ip->b : ip->b + 12; }

/* The longest run (>= 2) of zero groups, the first one on a tie. */
static int zero_run(const wr_cfapi_ip *ip, int *run_len) {
  int best = -1;
  *run_len = 0;
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && ip->b[2 * j] == 0 && ip->b[2 * j + 1] == 0) j++;
    if (j - i > *run_len && j - i >= 2) best = i, *run_len = j - i;
    i = j > i ? j : i + 1;
  }
  return best;
}

void wr_cfapi_ip_str(const wr_cfapi_ip *ip, char out[WR_CFAPI_ADDR_STRLEN]) {
  if (ip->len == 0) {
    snprintf(out, WR_CFAPI_ADDR_STRLEN, "<nil>");
    return;
  }
  if (ip_is_v4(ip)) {
    const uint8_t *b = ip_v4(ip);
    snprintf(out, WR_CFAPI_ADDR_STRLEN, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return;
  }
  /* RFC 5952 as Go writes it: the zero run becomes "::", groups in
   * lower-case hex. */
  int best_len, best = zero_run(ip, &best_len);
  size_t o = 0;
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      o += (size_t)snprintf(out + o, WR_CFAPI_ADDR_STRLEN - o, "::");
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) out[o++] = ':';
    o += (size_t)snprintf(out + o, WR_CFAPI_ADDR_STRLEN - o, "%x", (unsigned)(ip->b[2 * i] << 8 | ip->b[2 * i + 1]));
  }
  out[o] = '\0';
}

/* ---- net.IPNet ------------------------------------------------------------------------ */

uint8_t wr_cfapi_cidr_mask_byte(const wr_cfapi_cidr *c, int i) {
  int keep = c->bits - 8 * i;
  return keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
}

int wr_cfapi_cidr_parse(const char *s, wr_cfapi_cidr *c) {
  char addr[64];
  const char *slash = strchr(s, '/');
  memset(c, 0, sizeof(*c));
  if (!slash || (size_t)(slash - s) >= sizeof(addr) || !slash[1]) return WR_ERR_PROTO;
  memcpy(addr, s, (size_t)(slash - s));
  addr[slash - s] = '\0';
  int bits = 0;
  for (const char *p = slash + 1; *p; p++) {
    if (!isdigit((unsigned char)*p) || (bits = bits * 10 + (*p - '0')) > 128) return WR_ERR_PROTO;
  }
  wr_cfapi_ip ip;
  if (wr_cfapi_ip_parse(addr, &ip) != WR_OK) return WR_ERR_PROTO;
  if (strchr(addr, ':') == NULL) {
    if (bits > 32) return WR_ERR_PROTO;
    memcpy(c->ip.b, ip.b + 12, 4);
    c->ip.len = 4;
  } else {
    c->ip = ip;
  }
  c->bits = bits;
  for (int i = 0; i < c->ip.len; i++) c->ip.b[i] &= wr_cfapi_cidr_mask_byte(c, i);
  return WR_OK;
}

void wr_cfapi_cidr_str(const wr_cfapi_cidr *c, char out[WR_CFAPI_ADDR_STRLEN]) {
  char ip[WR_CFAPI_ADDR_STRLEN];
  if (c->ip.len == 0) {
    snprintf(out, WR_CFAPI_ADDR_STRLEN, "<nil>");
    return;
  }
  wr_cfapi_ip_str(&c->ip, ip);
  snprintf(out, WR_CFAPI_ADDR_STRLEN, "%.47s/%d", ip, c->bits & 0xff);
}
