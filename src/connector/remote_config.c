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

struct wr_remote_config {
  wr_remote_config_apply_fn apply;
  void *user;
  int32_t version;
};

wr_remote_config *wr_remote_config_new(wr_remote_config_apply_fn apply, void *user) {
  wr_remote_config *rc = wr_xcalloc(1, sizeof(*rc));
  rc->apply = apply;
  rc->user = user;
  rc->version = -1;
  return rc;
}

void wr_remote_config_free(wr_remote_config *rc) { free(rc); }

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
  /* The rules own their strings: the parsed tree can go now. */
  wr_config_free(cfg);
  rc->version = version;
  wr_info("Updated to new configuration version=%d config=%.*s", version, (int)len,
          json ? (const char *)json : "");
  rc->apply(rc->user, ing);
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
