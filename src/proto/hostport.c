/* Go's SplitHostPort and LookupPort rules; see hostport.h. */
#include "proto/hostport.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#define MISSING_PORT "missing port in address"
#define TOO_MANY_COLONS "too many colons in address"

/* AddrError.Error(): "address <addr>: <why>" ("<why>" for an empty addr). */
static int addr_err(const char *s, size_t len, const char *why, char *err, size_t errlen) {
  if (len)
    snprintf(err, errlen, "address %.*s: %s", (int)len, s, why);
  else
    snprintf(err, errlen, "%s", why);
  return -1;
}

static const char *find(const char *s, size_t len, char c) { return memchr(s, c, len); }

static long last_colon(const char *s, size_t len) {
  for (size_t i = len; i > 0; i--)
    if (s[i - 1] == ':') return (long)(i - 1);
  return -1;
}

/* parsePort: decimal with an optional sign; Go clamps huge values so they
 * still fail the range check. Returns 1 when |p| needs a service lookup. */
static int parse_port(const char *p, size_t n, long *out) {
  size_t i = 0;
  int neg = 0;
  long v = 0;
  *out = 0;
  if (n == 0) return 0;
  if (p[0] == '+' || p[0] == '-') {
    neg = p[0] == '-';
    i = 1;
  }
  if (i == n) return 1;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 1;
    if (v < (1L << 30)) v = v * 10 + (p[i] - '0');
  }
  if (v > (1L << 30)) v = 1L << 30;
  *out = neg ? -v : v;
  return 0;
}

/* Splits as net.SplitHostPort; [hs, he) is the host, |i| the last colon. */
static int split(const char *s, size_t len, size_t *hs, size_t *he, long *colon, char *err,
                 size_t errlen) {
  long i = last_colon(s, len);
  size_t j = 0, k = 0;
  if (i < 0) return addr_err(s, len, MISSING_PORT, err, errlen);
  if (s[0] == '[') {
    const char *e = find(s, len, ']');
    size_t end;
    if (!e) return addr_err(s, len, "missing ']' in address", err, errlen);
    end = (size_t)(e - s);
    if (end + 1 == len) return addr_err(s, len, MISSING_PORT, err, errlen);
    if ((long)(end + 1) != i)
      return addr_err(s, len, s[end + 1] == ':' ? TOO_MANY_COLONS : MISSING_PORT, err, errlen);
    *hs = 1;
    *he = end;
    j = 1;
    k = end + 1;
  } else {
    if (find(s, (size_t)i, ':')) return addr_err(s, len, TOO_MANY_COLONS, err, errlen);
    *hs = 0;
    *he = (size_t)i;
  }
  if (find(s + j, len - j, '[')) return addr_err(s, len, "unexpected '[' in address", err, errlen);
  if (find(s + k, len - k, ']')) return addr_err(s, len, "unexpected ']' in address", err, errlen);
  *colon = i;
  return 0;
}

int wr_go_split_host_port(const char *s, size_t len, char *host, size_t hostcap, uint16_t *port,
                          char *err, size_t errlen) {
  size_t hs = 0, he = 0, pn;
  long colon = -1, v;
  const char *p;
  if (split(s, len, &hs, &he, &colon, err, errlen) != 0) return -1;
  if (he - hs >= hostcap) return addr_err(s, len, "host too long", err, errlen);
  if (find(s + hs, he - hs, '\0')) {
    /* Not a name any resolver knows; never cut it short at the NUL. */
    snprintf(err, errlen, "lookup %.*s: no such host", (int)(he - hs), s + hs);
    return -1;
  }
  p = s + colon + 1;
  pn = len - (size_t)colon - 1;
  if (parse_port(p, pn, &v)) {
    char name[64];
    struct servent *se;
    if (pn >= sizeof(name)) {
      snprintf(err, errlen, "lookup tcp/%.*s: unknown port", (int)pn, p);
      return -1;
    }
    memcpy(name, p, pn);
    name[pn] = '\0';
    se = memchr(name, '\0', pn) ? NULL : getservbyname(name, "tcp");
    if (!se) {
      snprintf(err, errlen, "lookup tcp/%s: unknown port", name);
      return -1;
    }
    v = ntohs((uint16_t)se->s_port);
  }
  if (v < 0 || v > 65535) {
    snprintf(err, errlen, "address %.*s: invalid port", (int)pn, p);
    return -1;
  }
  memcpy(host, s + hs, he - hs);
  host[he - hs] = '\0';
  *port = (uint16_t)v;
  return 0;
}
