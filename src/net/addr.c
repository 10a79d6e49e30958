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
