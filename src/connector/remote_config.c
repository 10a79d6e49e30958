/* Remote configuration; see remote_config.h. */
#include "connector/remote_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/ingress.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

/* One applied version: the ingress and the parsed tree it came from. */
typedef struct applied {
  wr_config *cfg;
  wr_ingress *ing;
  struct applied *next;
} applied;

struct wr_remote_config {
  wr_proxy *proxy;
  int32_t version;
  applied *list;
};

wr_remote_config *wr_remote_config_new(wr_proxy *proxy) {
  wr_remote_config *rc = wr_xcalloc(1, sizeof(*rc));
  rc->proxy = proxy;
  rc->version = -1;
  return rc;
}

void wr_remote_config_free(wr_remote_config *rc) {
  if (!rc) return;
  while (rc->list) {
    applied *a = rc->list;
    rc->list = a->next;
    wr_ingress_free(a->ing);
    wr_config_free(a->cfg);
    free(a);
  }
  free(rc);
}

/* The rules of |cfg|, or the 503 default when it has none, with its
 * warp-routing. Returns WR_OK or an error with |err|. */
static int build(wr_config *cfg, wr_ingress **out, char *err, size_t errlen) {
  int rv = wr_ingress_parse(cfg, out, err, errlen);
  if (rv != WR_ERR_NOTFOUND) return rv;
  if (errlen) err[0] = '\0'; /* "no ingress rules" is not an error here */
  /* GetDefaultIngressRules: http_status:503 for everything. */
  if ((rv = wr_ingress_from_cli(NULL, out, err, errlen)) != WR_OK) return rv;
  rv = wr_warp_routing_parse(cfg, cfg->warp_routing, &(*out)->warp, err, errlen);
  if (rv != WR_OK) {
    wr_ingress_free(*out);
    *out = NULL;
  }
  return rv;
}

int32_t wr_remote_config_update(wr_remote_config *rc, int32_t version, const uint8_t *json,
                                size_t len, char *err, size_t errlen) {
  wr_config *cfg = NULL;
  wr_ingress *ing = NULL;
  int rv;
  if (errlen) err[0] = '\0';
  if (rc->version >= version) {
    wr_debug("Current version %d is equal or newer than received version %d", rc->version,
             version);
    return rc->version;
  }
  rv = wr_config_parse_json(json ? (const char *)json : "", json ? len : 0, "remote config", &cfg,
                            err, errlen);
  if (rv == WR_OK) rv = build(cfg, &ing, err, errlen);
  if (rv != WR_OK) {
    if (errlen && !err[0]) snprintf(err, errlen, "%s", wr_strerror(rv));
    wr_error("Failed to update ingress version=%d: %s", version, err);
    wr_config_free(cfg);
    return rc->version;
  }
  applied *a = wr_xcalloc(1, sizeof(*a));
  a->cfg = cfg;
  a->ing = ing;
  a->next = rc->list;
  rc->list = a;
  wr_proxy_set_ingress(rc->proxy, ing);
  rc->version = version;
  wr_info("Updated to new configuration version=%d config=%.*s", version, (int)len,
          json ? (const char *)json : "");
  for (size_t i = 0; i < ing->n_rules; i++)
    wr_info("ingress rule %zu: hostname=%s path=%s service=%s", i,
            ing->rules[i].hostname ? ing->rules[i].hostname : "*",
            ing->rules[i].path ? ing->rules[i].path : "", ing->rules[i].service.display);
  return rc->version;
}

int32_t wr_remote_config_version(const wr_remote_config *rc) { return rc->version; }

static int32_t svc_update(void *user, int32_t version, const uint8_t *json, size_t len, char *err,
                          size_t errlen) {
  return wr_remote_config_update(user, version, json, len, err, errlen);
}

void wr_remote_config_services(wr_remote_config *rc, wr_rpc_services *svc) {
  svc->update_config = svc_update;
  svc->config_user = rc;
}
