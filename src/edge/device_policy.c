/* Device policies: whether a device may reach a route's network. */
#include "edge/device_policy.h"

#include <string.h>

#include "lib/err.h"

/* Parses one entry, |s|..|e| with surrounding spaces, into |out|. */
static int parse_entry(const char *s, const char *e, wr_store_cidr *out) {
  char entry[WR_STORE_CIDR_MAX + 2], err[8];
  while (s < e && *s == ' ') s++;
  while (e > s && e[-1] == ' ') e--;
  if (e == s || (size_t)(e - s) >= sizeof(entry)) return WR_ERR_INVAL;
  memcpy(entry, s, (size_t)(e - s));
  entry[e - s] = '\0';
  return wr_store_cidr_parse(entry, out, err, sizeof(err));
}

void wr_device_policy_parse(const char *allowed, wr_device_policy *out) {
  const char *p = allowed ? allowed : "";
  memset(out, 0, sizeof(*out));
  while (*p == ' ') p++;
  if (!*p) {
    out->all = 1;
    return;
  }
  /* Every comma promises another entry: "10.0.0.0/8," is malformed. */
  for (;;) {
    const char *e = strchr(p, ',');
    if (out->n == WR_DEVICE_POLICY_MAX ||
        parse_entry(p, e ? e : p + strlen(p), &out->nets[out->n]) != WR_OK) {
      out->invalid = 1;
      out->n = 0;
      return;
    }
    out->n++;
    if (!e) return;
    p = e + 1;
  }
}

int wr_device_policy_allows(const wr_device_policy *p, const wr_store_cidr *network) {
  if (p->invalid) return 0;
  if (p->all) return 1;
  for (size_t i = 0; i < p->n; i++)
    if (wr_store_cidr_contains(&p->nets[i], network)) return 1;
  return 0;
}

int wr_device_policy_text_allows(const char *allowed, const char *route_network_cidr) {
  wr_device_policy p;
  wr_store_cidr net;
  char err[8];
  wr_device_policy_parse(allowed, &p);
  if (p.invalid) return 0;
  if (p.all) return 1;
  if (!route_network_cidr ||
      wr_store_cidr_parse(route_network_cidr, &net, err, sizeof(err)) != WR_OK)
    return 0;
  return wr_device_policy_allows(&p, &net);
}

int wr_device_allows(const wr_device *d, const char *route_network_cidr) {
  return d && wr_device_policy_text_allows(d->allowed, route_network_cidr);
}
