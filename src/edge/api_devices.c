/* REST API: /accounts/{a}/devices..., the account's WireGuard devices (our
 * own resource; shapes in api.h and edge/device_config.h). A private key
 * the edge generates for a new device is in the POST answer only. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/api_int.h"
#include "edge/device_config.h"
#include "edge/wg_key.h"
#include "lib/err.h"
#include "lib/mem.h"

/* The wg-quick text for |d|, or json null when the edge's key or an
 * endpoint is not known. |endpoint| (from the request) wins over the
 * configured one. Returns NULL after answering 400 for a bad endpoint or
 * 500 for a failure. */
static json_t *config_json(wr__api_ctx *c, const wr_device *d, const char *priv_b64,
                           const char *endpoint) {
  wr_api *a = c->api;
  uint8_t priv[WR_WG_KEY_LEN], pub[WR_WG_KEY_LEN];
  char ep[WR_DEVICE_ENDPOINT_MAX + 1], pub_b64[WR_WG_KEY_B64_LEN + 1], err[512], *text = NULL;
  int rv;
  if (!a->data_dir) return json_null();
  if (endpoint && *endpoint) {
    if (wr_device_check_endpoint(endpoint, err, sizeof(err)) != WR_OK) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "%s", err);
      return NULL;
    }
    snprintf(ep, sizeof(ep), "%s", endpoint);
  } else if (a->wg_endpoint) {
    snprintf(ep, sizeof(ep), "%s", a->wg_endpoint);
  } else if (wr_device_endpoint_default(a->data_dir, ep, err, sizeof(err)) != WR_OK) {
    return json_null();
  }
  if (wr_wg_key_load_or_create(a->data_dir, priv, pub, err, sizeof(err)) != WR_OK) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "the edge's WireGuard key: %s", err);
    return NULL;
  }
  sodium_memzero(priv, sizeof(priv));
  wr_wg_key_to_b64(pub, pub_b64);
  rv = wr_device_config(c->store, d, priv_b64, pub_b64, ep, &text, err, sizeof(err));
  if (rv != WR_OK) {
    wr__api_err(c, rv == WR_ERR_INVAL ? 400 : 500, rv == WR_ERR_INVAL ? WR_API_CODE_INVALID : WR_API_CODE_INTERNAL,
                "%s", err);
    return NULL;
  }
  json_t *j = json_string(text);
  sodium_memzero(text, strlen(text));
  free(text);
  return j;
}

/* The policy of a body: a string, an array of strings, or null/absent (NULL
 * policy = ""). |*set| says whether the member was present. Returns 0, or -1
 * after answering 400. |out| gets a malloc'd string or NULL. */
static int policy_arg(wr__api_ctx *c, json_t *body, char **out, int *set) {
  json_t *v = json_object_get(body, "allowed"), *e;
  size_t i, len = 0;
  *out = NULL;
  *set = v != NULL;
  if (!v || json_is_null(v)) return 0;
  if (json_is_string(v)) {
    *out = wr_xstrdup(json_string_value(v));
    return 0;
  }
  if (!json_is_array(v)) goto bad;
  json_array_foreach(v, i, e) {
    if (!json_is_string(e)) goto bad;
    len += strlen(json_string_value(e)) + 1;
  }
  *out = wr_xcalloc(1, len + 1);
  json_array_foreach(v, i, e) {
    if (i) strcat(*out, ",");
    strcat(*out, json_string_value(e));
  }
  return 0;
bad:
  wr__api_err(c, 400, WR_API_CODE_INVALID, "allowed must be an array of CIDR strings (or one comma-separated string)");
  return -1;
}

static void device_list(wr__api_ctx *c) {
  wr_device *rows = NULL;
  size_t n = 0;
  int active = wr__api_param_bool(c, "active"), rv;
  if (active == -2) return;
  if ((rv = wr_store_device_list(c->store, c->token.account_id, active != 1, &rows, &n)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, wr_device_json(&rows[i]));
  free(rows);
  wr__api_ok(c, arr, wr__api_result_info(1, n, n, n));
}

static void device_create(wr__api_ctx *c) {
  json_t *body = wr__api_body(c), *res, *conf;
  uint8_t priv[WR_WG_KEY_LEN], pub[WR_WG_KEY_LEN];
  char priv_b64[WR_WG_KEY_B64_LEN + 1] = "", pub_b64[WR_WG_KEY_B64_LEN + 1], *allowed = NULL;
  const char *name, *key = NULL, *vnet = NULL, *endpoint = NULL;
  int bad = 0, set, rv;
  wr_device d;
  if (!body) return;
  name = wr__api_json_str(c, body, "name", &bad);
  if (!bad) key = wr__api_json_str(c, body, "public_key", &bad);
  if (!bad) vnet = wr__api_json_str(c, body, "vnet_id", &bad);
  if (!bad) endpoint = wr__api_json_str(c, body, "endpoint", &bad);
  if (bad || policy_arg(c, body, &allowed, &set) != 0) return;
  if (!name || !*name) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "name is required");
    goto out;
  }
  if (key && *key) {
    snprintf(pub_b64, sizeof(pub_b64), "%.44s", key);
    if (strlen(key) != WR_WG_KEY_B64_LEN || wr_wg_key_from_b64(key, pub) != WR_OK) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "public_key is not a WireGuard key (44 characters of base64)");
      goto out;
    }
  } else {
    if (wr_wg_key_generate(priv, pub) != WR_OK) {
      wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot generate a key pair");
      goto out;
    }
    wr_wg_key_to_b64(priv, priv_b64);
    sodium_memzero(priv, sizeof(priv));
    wr_wg_key_to_b64(pub, pub_b64);
  }
  /* A bad endpoint is refused before anything is created. */
  if (endpoint && *endpoint) {
    char err[256];
    if (wr_device_check_endpoint(endpoint, err, sizeof(err)) != WR_OK) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "%s", err);
      goto out;
    }
  }
  rv = wr_store_device_create(c->store, c->actor, c->token.account_id, name, pub_b64, vnet, allowed, &d);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    goto out;
  }
  if (!(conf = config_json(c, &d, priv_b64[0] ? priv_b64 : NULL, endpoint))) goto out;
  res = wr_device_json(&d);
  json_object_set_new(res, "config", conf);
  if (priv_b64[0]) json_object_set_new(res, "private_key", json_string(priv_b64));
  wr__api_ok(c, res, NULL);
out:
  sodium_memzero(priv_b64, sizeof(priv_b64));
  free(allowed);
}

static void device_get(wr__api_ctx *c, const wr_device *d) {
  int want = wr__api_param_bool(c, "config");
  json_t *res, *conf = NULL;
  if (want == -2) return;
  if (want == 1 && !d->revoked_at && !(conf = config_json(c, d, NULL, wr__api_param(c, "endpoint")))) return;
  res = wr_device_json(d);
  if (want == 1) json_object_set_new(res, "config", conf ? conf : json_null());
  wr__api_ok(c, res, NULL);
}

static void device_patch(wr__api_ctx *c, wr_device *d) {
  wr_store *s = c->store;
  json_t *body = wr__api_body(c), *rev;
  char *allowed = NULL;
  int set, rv = WR_OK;
  if (!body || policy_arg(c, body, &allowed, &set) != 0) return;
  rev = json_object_get(body, "revoked");
  if (rev && !json_is_boolean(rev)) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "revoked must be true or false");
    goto out;
  }
  if (rev && json_is_false(rev) && d->revoked_at) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "a revoked device cannot be restored; add it again");
    goto out;
  }
  if (!set && !(rev && json_is_true(rev))) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "nothing to change: send allowed or revoked");
    goto out;
  }
  if (set) rv = wr_store_device_set_allowed(s, c->actor, c->token.account_id, d->id, allowed ? allowed : "");
  if (rv == WR_OK && rev && json_is_true(rev)) rv = wr_store_device_revoke(s, c->actor, c->token.account_id, d->id);
  if (rv == WR_OK) rv = wr_store_device_get(s, c->token.account_id, d->id, d);
  if (rv != WR_OK) wr__api_store_err(c, rv, NULL);
  else wr__api_ok(c, wr_device_json(d), NULL);
out:
  free(allowed);
}

void wr__api_devices(wr__api_ctx *c) {
  wr_device d;
  int rv;
  if (!wr__api_resource(c, 3, device_list, device_create, "GET, PATCH, DELETE")) return;
  if ((rv = wr_store_device_get(c->store, c->token.account_id, c->segs[3], &d)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  if (strcmp(c->method, "GET") == 0) {
    device_get(c, &d);
  } else if (strcmp(c->method, "PATCH") == 0) {
    device_patch(c, &d);
  } else if ((rv = wr_store_device_revoke(c->store, c->actor, c->token.account_id, d.id)) != WR_OK ||
             (rv = wr_store_device_get(c->store, c->token.account_id, d.id, &d)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
  } else {
    wr__api_ok(c, wr_device_json(&d), NULL);
  }
}
