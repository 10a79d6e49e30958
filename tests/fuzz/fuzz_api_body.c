/* Fuzzes the JSON bodies the edge's REST API accepts (src/edge/api*.c),
 * one endpoint at a time, so that the fuzzer spends its effort on the body
 * rather than on finding paths (fuzz_api covers the router, targets and
 * authentication).
 *
 * Input: one control byte that picks the request (its low three bits, or
 * with bit 3 set, 8 + the high bits mod 3), then the body. In the body the bytes 0x01, 0x02, 0x03 and 0x04 stand for the
 * account id, the zone id, a live tunnel id and a virtual network id of the
 * store, so "tunnel_id" and "virtual_network_id" can name real objects.
 *   0 POST  /accounts/A/cfd_tunnel                         {name, tunnel_secret, config_src}
 *   1 PUT   /zones/Z/tunnels/T/routes                      {type, user_hostname, overwrite_existing}
 *   2 POST  /accounts/A/teamnet/routes                     {network, tunnel_id, comment, virtual_network_id}
 *   3 POST  /accounts/A/teamnet/routes/network/10.0.0.0%252F8 {tunnel_id, comment, virtual_network_id}
 *   4 POST  /accounts/A/teamnet/virtual_networks           {name, comment, is_default(_network)}
 *   5 PATCH /accounts/A/teamnet/virtual_networks/V         {name, comment, is_default(_network)}
 *   6 DELETE /accounts/A/cfd_tunnel/T                      (a body it must ignore)
 *   7 POST  /accounts/A/cfd_tunnel with the body as a JSON string value of
 *           "name" (exercises the name checks with any bytes)
 *   8 POST  /accounts/A/access/apps                         {name, domain, type, session_duration}
 *   9 POST  /accounts/A/access/groups                       {name, include, exclude, require}
 *  10 POST  /accounts/A/access/service_tokens               {name, duration}
 * Checked, beyond ASan/UBSan: exactly one answer, a status of the
 * documented set, the JSON envelope with "success" agreeing with the status;
 * a body that is not a JSON object is 400; and what a 200 says was written
 * is in the store: a created tunnel with the requested name, a DNS route of
 * the answered name to the tunnel, an IP route of the answered network, a
 * virtual network with the answered name.
 *
 * The answer and the store come from api_harness.h (shared with fuzz_api);
 * the store is recreated every RESET_EVERY inputs. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge/api.h"
#include "edge/api_int.h"
#include "edge/store.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/httpd.h"
#include "api_harness.h"

#define RESET_EVERY 1024
#define MAX_BODY 16384

/* ---- the store ---- */

static const harness_opts opts = {"fuzz-body", 64, 64, 1, 0};
static unsigned long runs;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  wr_log_set_level(WR_LOG_OFF);
  harness_store_open(&opts);
  atexit(harness_at_exit);
  return 0;
}

/* ---- checks of the answer ---- */

/* The envelope; returns its "result" (borrowed from *env). */
static json_t *check_envelope(json_t **env) {
  static const int ok_status[] = {200, 400, 403, 404, 405, 409, 500};
  int known = 0;
  for (size_t i = 0; i < sizeof(ok_status) / sizeof(ok_status[0]); i++) known |= status == ok_status[i];
  CHECK(known);
  CHECK(status != 500); /* the store never fails here: a 500 is a bug */
  json_error_t jerr;
  *env = json_loadb(answer, answer_len, 0, &jerr);
  CHECK(*env && json_is_object(*env));
  json_t *succ = json_object_get(*env, "success");
  CHECK(json_is_boolean(succ) && json_is_true(succ) == (status == 200));
  CHECK(json_is_array(json_object_get(*env, "errors")));
  CHECK(json_is_array(json_object_get(*env, "messages")));
  CHECK(json_object_get(*env, "result") != NULL);
  if (status != 200) {
    json_t *e0 = json_array_get(json_object_get(*env, "errors"), 0);
    CHECK(json_is_integer(json_object_get(e0, "code")));
    CHECK(json_is_string(json_object_get(e0, "message")));
  }
  return json_object_get(*env, "result");
}

static const char *str(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  CHECK(json_is_string(v));
  return json_string_value(v);
}

/* What a 200 says was written must be in the store. */
static void check_written(int which, json_t *res, json_t *body) {
  switch (which) {
  case 0:
  case 7: {
    wr_tunnel t;
    CHECK(wr_store_tunnel_get(store, str(res, "id"), &t) == WR_OK);
    CHECK(strcmp(t.name, str(res, "name")) == 0 && t.deleted_at == 0);
    json_t *name = json_object_get(body, "name");
    CHECK(json_is_string(name) && strcmp(json_string_value(name), t.name) == 0);
    break;
  }
  case 1: {
    wr_route r;
    CHECK(wr_store_route_get(store, str(res, "name"), &r) == WR_OK);
    CHECK(strcmp(r.tunnel_id, tunnel.id) == 0);
    break;
  }
  case 2:
  case 3: {
    wr_ip_route *rows = NULL;
    size_t n = 0;
    int found = 0;
    wr_ip_route_filter f;
    memset(&f, 0, sizeof(f));
    f.account_id = account.id;
    CHECK(wr_store_ip_route_list(store, &f, &rows, &n) == WR_OK);
    for (size_t i = 0; i < n; i++) found |= strcmp(rows[i].id, str(res, "id")) == 0;
    free(rows);
    CHECK(found);
    break;
  }
  case 4:
  case 5: {
    wr_vnet v;
    CHECK(wr_store_vnet_get(store, str(res, "id"), &v) == WR_OK);
    CHECK(strcmp(v.name, str(res, "name")) == 0 && v.deleted_at == 0);
    break;
  }
  default: break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char target[512], path[512];
  static uint8_t body[MAX_BODY * (WR_STORE_UUID_LEN + 1) + 64];
  char auth[WR_STORE_TOKEN_LEN + 16];
  if (size < 1 || size > MAX_BODY) return 0;
  if (++runs % RESET_EVERY == 0) {
    harness_store_close();
    harness_store_open(&opts);
  }
  int which = data[0] & 8 ? 8 + (data[0] >> 4) % 3 : data[0] & 7;
  size_t blen = 0;
  if (which == 7) {
    /* {"name": <the bytes as a JSON string>} */
    json_t *o = json_pack("{s:s%}", "name", (const char *)data + 1, size - 1);
    if (!o) return 0; /* not UTF-8 */
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    CHECK(t);
    blen = strlen(t);
    memcpy(body, t, blen);
    free(t);
  } else {
    for (size_t i = 1; i < size; i++) {
      const char *sub = data[i] == 1   ? account.id
                        : data[i] == 2 ? zone.id
                        : data[i] == 3 ? tunnel.id
                        : data[i] == 4 ? vnet.id
                                       : NULL;
      if (sub) {
        memcpy(body + blen, sub, strlen(sub));
        blen += strlen(sub);
      } else {
        body[blen++] = data[i];
      }
    }
  }
  body[blen] = '\0';
  static const char *const methods[] = {"POST", "PUT",    "POST", "POST", "POST", "PATCH",
                                        "DELETE", "POST", "POST", "POST", "POST"};
  switch (which) {
  case 0:
  case 7: snprintf(path, sizeof(path), "/client/v4/accounts/%s/cfd_tunnel", account.id); break;
  case 1: snprintf(path, sizeof(path), "/client/v4/zones/%s/tunnels/%s/routes", zone.id, tunnel.id); break;
  case 2: snprintf(path, sizeof(path), "/client/v4/accounts/%s/teamnet/routes", account.id); break;
  case 3:
    snprintf(path, sizeof(path), "/client/v4/accounts/%s/teamnet/routes/network/10.0.0.0%%252F8", account.id);
    break;
  case 4: snprintf(path, sizeof(path), "/client/v4/accounts/%s/teamnet/virtual_networks", account.id); break;
  case 5:
    snprintf(path, sizeof(path), "/client/v4/accounts/%s/teamnet/virtual_networks/%s", account.id, vnet.id);
    break;
  case 8: snprintf(path, sizeof(path), "/client/v4/accounts/%s/access/apps", account.id); break;
  case 9: snprintf(path, sizeof(path), "/client/v4/accounts/%s/access/groups", account.id); break;
  case 10: snprintf(path, sizeof(path), "/client/v4/accounts/%s/access/service_tokens", account.id); break;
  default: snprintf(path, sizeof(path), "/client/v4/accounts/%s/cfd_tunnel/%s", account.id, tunnel.id); break;
  }
  snprintf(target, sizeof(target), "%s", path);
  snprintf(auth, sizeof(auth), "Bearer %s", token);
  wr_http_header hdrs[2] = {{"Authorization", 13, auth, strlen(auth)},
                            {"Content-Type", 12, "application/json", 16}};
  wr_httpd_req req;
  memset(&req, 0, sizeof(req));
  req.method = methods[which];
  req.target = target;
  req.path = path;
  req.query = "";
  req.headers = hdrs;
  req.nheaders = 2;
  /* Its own allocation, NUL-terminated as httpd's, so overreads show. */
  uint8_t *b = malloc(blen + 1);
  CHECK(b);
  memcpy(b, body, blen + 1);
  req.body = b;
  req.body_len = blen;
  expect_req = &req;
  answers = 0;
  status = 0;
  CHECK(wr_api_handle(api, &req) == 1);
  CHECK(answers == 1);
  json_t *env = NULL;
  json_t *res = check_envelope(&env);
  json_error_t jerr;
  json_t *parsed = json_loadb((const char *)b, blen, JSON_REJECT_DUPLICATES, &jerr);
  if (which != 6 && !json_is_object(parsed)) CHECK(status != 200);
  if (status == 200 && which != 6) check_written(which, res, parsed);
  json_decref(parsed);
  json_decref(env);
  free(b);
  /* The seed tunnel may be deleted by case 6: recreate it under a new id. */
  wr_tunnel t;
  if (wr_store_tunnel_get(store, tunnel.id, &t) != WR_OK || t.deleted_at) {
    char name[32];
    snprintf(name, sizeof(name), "seed-%lu", runs);
    CHECK(wr_store_tunnel_create(store, "fuzz", account.id, name, NULL, 0, &tunnel) == WR_OK);
  }
  return 0;
}
