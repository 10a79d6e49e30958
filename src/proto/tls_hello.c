/* ClientHello SNI, alerts and name matching; see tls_hello.h. Every length
 * read from the wire is checked against what is left before it is used. */
#include "proto/tls_hello.h"

#include <string.h>
#include <strings.h>

#include "lib/err.h"

#define REC_HDR 5
#define CT_HANDSHAKE 22
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define SNI_HOST_NAME 0

/* A bounded reader over one buffer. */
typedef struct rd {
  const uint8_t *p;
  size_t n;
  int bad;
} rd;

static unsigned get_n(rd *r, size_t k) {
  unsigned v = 0;
  if (r->bad || r->n < k) {
    r->bad = 1;
    return 0;
  }
  for (size_t i = 0; i < k; i++) v = (v << 8) | r->p[i];
  r->p += k;
  r->n -= k;
  return v;
}

static const uint8_t *skip(rd *r, size_t k) {
  if (r->bad || r->n < k) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *at = r->p;
  r->p += k;
  r->n -= k;
  return at;
}

/* Joins the fragments of the handshake layer into |hs| (at most |cap|
 * bytes) from the records at the front of |data|. Returns WR_OK once the
 * whole ClientHello is in |hs| (*hslen), WR_AGAIN, WR_ERR_PROTO. */
static int gather(const uint8_t *data, size_t len, uint8_t *hs, size_t cap, size_t *hslen) {
  size_t off = 0, have = 0, want = 0;
  while (off + REC_HDR <= len) {
    const uint8_t *h = data + off;
    size_t rl = ((size_t)h[3] << 8) | h[4];
    if (h[0] != CT_HANDSHAKE || h[1] != 3 || rl == 0 || rl > 16384 + 256) return WR_ERR_PROTO;
    if (off + REC_HDR + rl > len) break;
    if (have + rl > cap) return WR_ERR_PROTO;
    memcpy(hs + have, h + REC_HDR, rl);
    have += rl;
    off += REC_HDR + rl;
    if (have >= 4 && !want) {
      if (hs[0] != HS_CLIENT_HELLO) return WR_ERR_PROTO;
      want = 4 + (((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3]);
      if (want > cap) return WR_ERR_PROTO;
    }
    if (want && have >= want) {
      *hslen = want;
      return WR_OK;
    }
  }
  if (len >= 1 && data[0] != CT_HANDSHAKE) return WR_ERR_PROTO;
  if (len >= 2 && data[1] != 3) return WR_ERR_PROTO;
  return WR_AGAIN;
}

/* The server_name extension's body: the first host_name entry into |sni|. */
static int parse_sni_ext(rd *e, char *sni, size_t cap) {
  size_t listlen = get_n(e, 2);
  if (e->bad || listlen != e->n) return WR_ERR_PROTO;
  while (e->n) {
    unsigned type = get_n(e, 1);
    size_t nl = get_n(e, 2);
    const uint8_t *name = skip(e, nl);
    if (e->bad) return WR_ERR_PROTO;
    if (type != SNI_HOST_NAME) continue;
    if (nl == 0 || nl > WR_TLS_NAME_MAX + 1 || nl >= cap) return WR_ERR_PROTO;
    for (size_t i = 0; i < nl; i++) {
      char ch = (char)name[i];
      sni[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    if (sni[nl - 1] == '.') nl--;
    sni[nl] = '\0';
    return wr_tls_name_valid(sni, 0) ? WR_OK : WR_ERR_PROTO;
  }
  return WR_OK;
}

static int parse_hello(const uint8_t *hs, size_t len, char *sni, size_t cap) {
  rd r = {hs + 4, len - 4, 0};
  skip(&r, 2 + 32);              /* legacy_version, random */
  skip(&r, get_n(&r, 1));        /* legacy_session_id */
  skip(&r, get_n(&r, 2));        /* cipher_suites */
  skip(&r, get_n(&r, 1));        /* legacy_compression_methods */
  if (r.bad) return WR_ERR_PROTO;
  if (r.n == 0) return WR_OK;    /* no extensions at all */
  size_t extlen = get_n(&r, 2);
  if (r.bad || extlen != r.n) return WR_ERR_PROTO;
  while (r.n) {
    unsigned type = get_n(&r, 2);
    size_t el = get_n(&r, 2);
    const uint8_t *body = skip(&r, el);
    if (r.bad) return WR_ERR_PROTO;
    if (type == EXT_SERVER_NAME) {
      rd e = {body, el, 0};
      return parse_sni_ext(&e, sni, cap);
    }
  }
  return WR_OK;
}

int wr_tls_hello_sni(const uint8_t *data, size_t len, char *sni, size_t cap) {
  static __thread uint8_t hs[WR_TLS_HELLO_MAX];
  size_t hslen = 0;
  if (!cap) return WR_ERR_PROTO;
  sni[0] = '\0';
  int rv = gather(data, len, hs, sizeof(hs), &hslen);
  if (rv == WR_AGAIN && len > WR_TLS_HELLO_MAX) return WR_ERR_LIMIT;
  if (rv != WR_OK) return rv;
  rv = parse_hello(hs, hslen, sni, cap);
  if (rv != WR_OK) sni[0] = '\0';
  return rv;
}

void wr_tls_alert_record(uint8_t out[7], uint8_t alert) {
  out[0] = 21; /* alert */
  out[1] = 3;
  out[2] = 3;
  out[3] = 0;
  out[4] = 2;
  out[5] = 2; /* fatal */
  out[6] = alert;
}

int wr_tls_name_valid(const char *name, int allow_wildcard) {
  size_t n = strlen(name), label = 0, labels = 1;
  if (n == 0 || n > WR_TLS_NAME_MAX) return 0;
  size_t i = 0;
  if (allow_wildcard && n > 2 && name[0] == '*' && name[1] == '.') {
    i = 2;
    labels = 2; /* the wildcard's and the first after it */
  }
  for (; i < n; i++) {
    char ch = name[i];
    if (ch == '.') {
      if (label == 0) return 0;
      label = 0;
      labels++;
      continue;
    }
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_';
    if (!ok || ++label > 63) return 0;
  }
  if (label == 0) return 0;
  /* "*.com" would cover a whole TLD. */
  if (name[0] == '*' && labels < 3) return 0;
  return 1;
}

int wr_tls_name_match(const char *pattern, const char *host) {
  size_t pl = strlen(pattern), hl = strlen(host);
  if (pl && pattern[pl - 1] == '.') pl--;
  if (hl && host[hl - 1] == '.') hl--;
  if (!pl || !hl) return 0;
  if (pattern[0] != '*') return pl == hl && strncasecmp(pattern, host, pl) == 0;
  if (pl < 3 || pattern[1] != '.') return 0;
  const char *dot = memchr(host, '.', hl);
  if (!dot || dot == host) return 0; /* the wildcard label must not be empty */
  size_t rest = hl - (size_t)(dot - host);
  return rest == pl - 1 && strncasecmp(pattern + 1, dot, rest) == 0;
}
