/* REST API: the zone settings and custom certificates of the HTTPS front,
 * in Cloudflare's shapes:
 *   GET|PATCH /zones/{z}/settings/always_use_https   {"value": "on"|"off"}
 *   GET|PATCH /zones/{z}/settings/min_tls_version    {"value": "1.2"|"1.3"}
 *   GET|PATCH /zones/{z}/settings/security_header
 *       {"value": {"strict_transport_security": {"enabled", "max_age",
 *        "include_subdomains", "preload", "nosniff"}}}
 *   GET|POST /zones/{z}/custom_certificates          POST {"certificate",
 *                                                    "private_key"}
 *   GET|DELETE /zones/{z}/custom_certificates/{id}
 * A running edge applies changes within a couple of seconds (its cache of
 * zone settings and its scan of DATA_DIR/certs). Private keys are never
 * returned or logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/api_int.h"
#include "edge/certs.h"
#include "edge/zone_settings.h"
#include "lib/err.h"
#include "lib/log.h"

static json_t *setting_json(const wr_zone_settings *z, const char *id) {
  json_t *v;
  if (strcmp(id, "always_use_https") == 0)
    v = json_string(z->always_use_https ? "on" : "off");
  else if (strcmp(id, "min_tls_version") == 0)
    v = json_string(z->min_tls_13 ? "1.3" : "1.2");
  else
    v = json_pack("{s:{s:b,s:I,s:b,s:b,s:b}}", "strict_transport_security", "enabled",
                  z->hsts_enabled, "max_age", (json_int_t)z->hsts_max_age, "include_subdomains",
                  z->hsts_include_subdomains, "preload", z->hsts_preload, "nosniff",
                  z->hsts_nosniff);
  return json_pack("{s:s,s:o,s:b,s:o}", "id", id, "value", v, "editable", 1, "modified_on",
                   z->modified_on ? wr__api_time(z->modified_on) : json_null());
}

static int bool_field(json_t *o, const char *k, int *out) {
  json_t *v = json_object_get(o, k);
  if (!v) return 0;
  if (!json_is_boolean(v)) return -1;
  *out = json_is_true(v);
  return 0;
}

/* The PATCH body's value into |z|. 0, or -1 for a bad value. */
static int apply_value(const char *id, json_t *v, wr_zone_settings *z) {
  if (strcmp(id, "always_use_https") == 0 || strcmp(id, "min_tls_version") == 0) {
    const char *s = json_string_value(v);
    if (!s) return -1;
    if (id[0] == 'a') {
      if (strcmp(s, "on") != 0 && strcmp(s, "off") != 0) return -1;
      z->always_use_https = strcmp(s, "on") == 0;
    } else {
      if (strcmp(s, "1.2") != 0 && strcmp(s, "1.3") != 0) return -1;
      z->min_tls_13 = strcmp(s, "1.3") == 0;
    }
    return 0;
  }
  json_t *sts = json_object_get(v, "strict_transport_security");
  if (!json_is_object(sts)) return -1;
  json_t *age = json_object_get(sts, "max_age");
  if (age && (!json_is_integer(age) || json_integer_value(age) < 0)) return -1;
  if (age) z->hsts_max_age = json_integer_value(age);
  if (bool_field(sts, "enabled", &z->hsts_enabled) || bool_field(sts, "include_subdomains", &z->hsts_include_subdomains) ||
      bool_field(sts, "preload", &z->hsts_preload) || bool_field(sts, "nosniff", &z->hsts_nosniff))
    return -1;
  return 0;
}

static void settings(wr__api_ctx *c, const wr_zone *zone) {
  const char *id = c->segs[3];
  wr_zone_settings z;
  if (strcmp(id, "always_use_https") != 0 && strcmp(id, "min_tls_version") != 0 &&
      strcmp(id, "security_header") != 0) {
    wr__api_err(c, 404, WR_API_CODE_NOTFOUND, "unknown zone setting %.64s", id);
    return;
  }
  int rv = wr_store_zone_settings_get(c->store, zone->id, &z);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  if (strcmp(c->method, "PATCH") == 0) {
    json_t *body = wr__api_body(c);
    if (!body) return;
    if (apply_value(id, json_object_get(body, "value"), &z) != 0) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "invalid value for zone setting %s", id);
      return;
    }
    if ((rv = wr_store_zone_settings_set(c->store, c->actor, &z)) != WR_OK ||
        (rv = wr_store_zone_settings_get(c->store, zone->id, &z)) != WR_OK) {
      wr__api_store_err(c, rv, NULL);
      return;
    }
    wr_info("api: %s changed %s of zone %s", c->actor, id, zone->name);
  } else if (strcmp(c->method, "GET") != 0) {
    wr__api_method(c, "GET, PATCH");
    return;
  }
  wr__api_ok(c, setting_json(&z, id), NULL);
}

static json_t *cert_json(const wr_cert_info *i, const wr_zone *z) {
  json_t *hosts = json_array();
  for (size_t k = 0; k < i->n_names; k++) json_array_append_new(hosts, json_string(i->names[k]));
  return json_pack("{s:s,s:s,s:o,s:s,s:s,s:s,s:o,s:o,s:o,s:i}", "id", i->id, "zone_id", z->id,
                   "hosts", hosts, "issuer", i->issuer, "signature", i->signature, "status",
                   "active", "uploaded_on", wr__api_time(i->uploaded_at), "modified_on",
                   wr__api_time(i->uploaded_at), "expires_on", wr__api_time(i->not_after),
                   "priority", 0);
}

static void cert_upload(wr__api_ctx *c, const wr_zone *z) {
  json_t *body = wr__api_body(c);
  int bad = 0;
  char err[512], id[WR_CERTS_ID_LEN + 1];
  wr_cert_info info;
  if (!body) return;
  const char *cert = wr__api_json_str(c, body, "certificate", &bad);
  const char *key = wr__api_json_str(c, body, "private_key", &bad);
  if (bad) return;
  if (!cert || !key) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "certificate and private_key are required");
    return;
  }
  if (wr_certs_add(c->api->data_dir, cert, key, &info, err, sizeof(err)) != WR_OK) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "%s", err);
    return;
  }
  if (!wr_cert_info_in_zone(&info, z->name)) {
    snprintf(id, sizeof(id), "%s", info.id);
    wr_certs_delete(c->api->data_dir, id);
    wr__api_err(c, 400, WR_API_CODE_INVALID, "the certificate has no name in zone %s", z->name);
    return;
  }
  wr_info("api: %s uploaded certificate %s for zone %s", c->actor, info.id, z->name);
  wr__api_ok(c, cert_json(&info, z), NULL);
}

static void certificates(wr__api_ctx *c, const wr_zone *z) {
  const char *dir = c->api->data_dir;
  wr_cert_info info;
  if (!dir) {
    wr__api_err(c, 404, WR_API_CODE_NOTFOUND, "this edge keeps no certificates");
    return;
  }
  if (c->nsegs == 3) {
    if (strcmp(c->method, "POST") == 0) {
      cert_upload(c, z);
    } else if (strcmp(c->method, "GET") == 0) {
      wr_cert_info *list = NULL;
      size_t n = 0;
      json_t *arr = json_array();
      wr_certs_list(dir, &list, &n);
      for (size_t i = 0; i < n; i++)
        if (wr_cert_info_in_zone(&list[i], z->name)) json_array_append_new(arr, cert_json(&list[i], z));
      free(list);
      wr__api_ok(c, arr, NULL);
    } else {
      wr__api_method(c, "GET, POST");
    }
    return;
  }
  if (wr_certs_get(dir, c->segs[3], &info) != WR_OK || !wr_cert_info_in_zone(&info, z->name)) {
    wr__api_err(c, 404, WR_API_CODE_NOTFOUND, "no custom certificate %.64s in this zone", c->segs[3]);
    return;
  }
  if (strcmp(c->method, "GET") == 0) {
    wr__api_ok(c, cert_json(&info, z), NULL);
  } else if (strcmp(c->method, "DELETE") == 0) {
    if (wr_certs_delete(dir, info.id) != WR_OK) {
      wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot delete certificate %s", info.id);
      return;
    }
    wr_info("api: %s deleted certificate %s", c->actor, info.id);
    wr__api_ok(c, json_pack("{s:s}", "id", info.id), NULL);
  } else {
    wr__api_method(c, "GET, DELETE");
  }
}

void wr__api_https(wr__api_ctx *c) {
  wr_zone z;
  if (wr__api_load_zone(c, &z) != 0) return;
  if (strcmp(c->segs[2], "settings") == 0) {
    if (c->nsegs != 4) {
      wr__api_no_route(c);
      return;
    }
    settings(c, &z);
    return;
  }
  certificates(c, &z);
}
