/* HOST:PORT helpers; see addr.h. */
#include "net/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wr_addr_split(const char *s, char *host, size_t hostlen, unsigned *port) {
  const char *colon = s ? strrchr(s, ':') : NULL;
  if (!colon || colon[1] == '\0') return -1;
  size_t hl = (size_t)(colon - s);
  const char *h = s;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  } else if (memchr(s, ':', hl)) {
    return -1; /* an IPv6 literal needs brackets */
  }
  if (hl >= hostlen) return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || p < 0 || p > 65535) return -1;
  *port = (unsigned)p;
  return 0;
}

int wr_addr_resolve(const char *what, const char *s, int socktype, int prefer_v4,
                    struct sockaddr_storage *out, size_t cap, char *err, size_t errlen) {
  char host[256], port[8];
  unsigned p;
  if (wr_addr_split(s, host, sizeof(host), &p) != 0) {
    snprintf(err, errlen, "%s \"%s\" is not HOST:PORT", what, s);
    return -1;
  }
  snprintf(port, sizeof(port), "%u", p);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV | (host[0] ? 0 : AI_PASSIVE);
  int rv = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (rv != 0 || !res) {
    snprintf(err, errlen, "%s \"%s\": %s", what, s, gai_strerror(rv));
    return -1;
  }
  size_t n = 0;
  /* Two passes when IPv4 comes first (Go's listener choice for localhost). */
  for (int pass = prefer_v4 ? 0 : 1; pass < 2; pass++) {
    for (struct addrinfo *a = res; a && n < cap; a = a->ai_next) {
      int v4 = a->ai_family == AF_INET;
      if (prefer_v4 && (pass == 0) != v4) continue;
      memset(&out[n], 0, sizeof(out[n]));
      memcpy(&out[n], a->ai_addr, a->ai_addrlen);
      n++;
    }
  }
  freeaddrinfo(res);
  return (int)n;
}

void wr_addr_format(const struct sockaddr_storage *ss, char *out, size_t outlen) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    snprintf(out, outlen, "[%s]:%d", host, ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    snprintf(out, outlen, "%s:%d", host, ntohs(a->sin_port));
  }
}

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int wr_addr_ip16(const struct sockaddr *sa, uint8_t out[16]) {
  memset(out, 0, 16);
  if (sa && sa->sa_family == AF_INET) {
    memcpy(out, v4_mapped_prefix, sizeof(v4_mapped_prefix));
    memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa && sa->sa_family == AF_INET6) {
    memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    return 0;
  }
  return -1;
}

void wr_addr_ip_text(const uint8_t *ip, size_t len, char *out, size_t outlen) {
  if (outlen) out[0] = '\0';
  if (len == 16 && memcmp(ip, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
    ip += 12;
    len = 4;
  }
  if (len == 4)
    inet_ntop(AF_INET, ip, out, (socklen_t)outlen);
  else if (len == 16)
    inet_ntop(AF_INET6, ip, out, (socklen_t)outlen);
}

/* ---- sources ------------------------------------------------------------------ */

int wr_addr_source_key(const struct sockaddr *sa, uint8_t key[WR_ADDR_SOURCE_KEY_LEN]) {
  memset(key, 0, WR_ADDR_SOURCE_KEY_LEN);
  if (sa && sa->sa_family == AF_INET) {
    memcpy(key, v4_mapped_prefix, sizeof(v4_mapped_prefix));
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa && sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    memcpy(key, a->s6_addr, IN6_IS_ADDR_V4MAPPED(a) ? 16 : 8);
    return 0;
  }
  return -1;
}

void wr_addr_source_name(const uint8_t key[WR_ADDR_SOURCE_KEY_LEN], char *out, size_t cap) {
  char a[INET6_ADDRSTRLEN] = "?";
  if (!cap) return;
  if (memcmp(key, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
    inet_ntop(AF_INET, key + 12, a, sizeof(a));
    snprintf(out, cap, "%s", a);
  } else {
    inet_ntop(AF_INET6, key, a, sizeof(a));
    snprintf(out, cap, "%s/64", a);
  }
}

int wr_addr_same_source(const struct sockaddr *a, const struct sockaddr *b) {
  uint8_t ka[WR_ADDR_SOURCE_KEY_LEN], kb[WR_ADDR_SOURCE_KEY_LEN];
  if (wr_addr_source_key(a, ka) != 0 || wr_addr_source_key(b, kb) != 0) return 0;
  return memcmp(ka, kb, sizeof(ka)) == 0;
}
