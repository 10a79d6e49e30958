/* Device policies: whether a device may reach a route's network. */
#include "edge/device_policy.h"

#include <string.h>

#include "lib/err.h"

/* Copies the next comma-separated entry of |*p| without surrounding spaces
 * into |buf| and advances |*p|. Returns 0 at the end, -1 for an entry that
 * does not fit (it can only be malformed), else 1. */
static int next_entry(const char **p, char *buf, size_t size) {
  const char *s = *p, *e;
  size_t len;
  if (!*s) return 0;
  e = strchr(s, ',');
  if (!e) e = s + strlen(s);
  *p = *e ? e + 1 : e;
  while (s < e && *s == ' ') s++;
  while (e > s && e[-1] == ' ') e--;
  len = (size_t)(e - s);
  if (len >= size) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  return 1;
}

void wr_device_policy_parse(const char *allowed, wr_device_policy *out) {
  const char *p = allowed ? allowed : "";
  char entry[WR_STORE_CIDR_MAX + 2], err[8];
  int rc;
  memset(out, 0, sizeof(*out));
  while (*p == ' ') p++;
  if (!*p) {
    out->all = 1;
    return;
  }
  while ((rc = next_entry(&p, entry, sizeof(entry))) != 0) {
    if (rc < 0 || !entry[0] || out->n == WR_DEVICE_POLICY_MAX ||
        wr_store_cidr_parse(entry, &out->nets[out->n], err, sizeof(err)) != WR_OK) {
      out->invalid = 1;
      out->n = 0;
      return;
    }
    out->n++;
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
