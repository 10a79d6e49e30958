/* Fuzzes the configuration JSON a connector reads from outside: the body of
 * cloudflared's UpdateConfiguration (remote management: {"ingress": [...],
 * "originRequest": {...}, "warp-routing": {...}}, durations as whole seconds,
 * protocol.md 3.6), which is also the shape of `ingress validate --json` and
 * of the local configuration the connector sends with
 * updateLocalConfiguration.
 *
 * Input: the JSON text, either bare or wrapped as the Cap'n Proto params of
 * an updateConfiguration call (version + config bytes): inputs that decode
 * as an RPC Call whose params are ConfigurationManager.updateConfiguration
 * are unwrapped first, the rest is taken as JSON.
 *
 * The JSON goes through wr_config_parse_json, wr_config_apply_opts and
 * wr_ingress_load (every rule validated, services parsed, path regexes
 * compiled), then matching, rule descriptions and the local configuration
 * JSON. Checked, beyond ASan/UBSan:
 *   - a failure leaves a NUL-terminated, non-empty message and no object;
 *   - wr_ingress_match always picks a rule of the ingress;
 *   - the local configuration JSON written from an accepted config is valid
 *     JSON, and when read back it describes the same rules (same count,
 *     same descriptions) and writes the same JSON again (a fixpoint). The
 *     one exception is a duration that is not a whole number of seconds:
 *     cloudflared writes it as a fraction that its own reader (integers
 *     only) refuses, and so do we. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "connector/ingress.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/rpc.h"
#include "proto/tunnelrpc.h"
#include "fuzz.h"

static const wr_capnp_limits lim = {.traversal_words = 1u << 16};

static void check_err(int rv, const char *err, size_t errlen) {
  if (rv == 0) return;
  CHECK(memchr(err, '\0', errlen) != NULL && err[0] != '\0');
}

/* An empty flag bag, as `tunnel run` has when nothing else is set. */
typedef struct bag {
  wr_opts o;
  wr_opt items[4];
} bag;

static const wr_flag flags[] = {
    {"url", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"hello-world", NULL, NULL, WR_FLAG_BOOL, NULL, "", NULL},
    {"protocol", "p", NULL, WR_FLAG_STRING, "auto", "", NULL},
    {0},
};

static void bag_init(bag *b) {
  memset(b, 0, sizeof(*b));
  for (size_t i = 0; flags[i].name; i++) b->items[i].flag = &flags[i];
  b->o.items = b->items;
  b->o.n = b->o.cap = 3;
  b->o.prog = "warren";
}

static void bag_free(bag *b) {
  for (size_t i = 0; i < b->o.n; i++) {
    for (size_t j = 0; j < b->items[i].n; j++) free(b->items[i].vals[j]);
    free(b->items[i].vals);
  }
}

/* Loads |json| into an ingress; NULL if it is refused. */
static wr_ingress *load(const char *json, size_t len, bag *b, wr_config **cfg_out) {
  char err[512];
  wr_config *cfg = NULL;
  wr_ingress *ing = NULL;
  *cfg_out = NULL;
  err[0] = '\0';
  int rv = wr_config_parse_json(json, len, "remote", &cfg, err, sizeof(err));
  check_err(rv, err, sizeof(err));
  if (rv) {
    CHECK(cfg == NULL);
    return NULL;
  }
  bag_init(b);
  err[0] = '\0';
  rv = wr_config_apply_opts(cfg, &b->o, err, sizeof(err));
  check_err(rv, err, sizeof(err));
  if (rv == 0) {
    err[0] = '\0';
    rv = wr_ingress_load(cfg, &b->o, &ing, err, sizeof(err));
    check_err(rv, err, sizeof(err));
    CHECK((rv == 0) == (ing != NULL));
  }
  if (!ing) {
    bag_free(b);
    wr_config_free(cfg);
    return NULL;
  }
  *cfg_out = cfg;
  return ing;
}

static int has_fraction(const json_t *j) {
  if (json_is_real(j)) return 1;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) if (has_fraction(v)) return 1;
  } else if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) if (has_fraction(v)) return 1;
  }
  return 0;
}

static void exercise(const char *json, size_t len) {
  static const char *const hosts[] = {"a.example.com", "EXAMPLE.com:443", "[::1]:80", "", "x",
                                      "app.example.test"};
  static const char *const paths[] = {"/", "/api/v1/users", "/index.php", ""};
  bag b1, b2;
  wr_config *c1, *c2;
  wr_ingress *ing = load(json, len, &b1, &c1);
  if (!ing) return;
  for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++)
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
      int i = wr_ingress_match(ing, hosts[h], paths[p]);
      CHECK(i >= 0 && (size_t)i < ing->n_rules);
    }
  char *local = wr_ingress_local_config_json(ing, NULL);
  json_error_t jerr;
  json_t *lj = json_loads(local, 0, &jerr);
  CHECK(lj != NULL);
  int fraction = has_fraction(lj);
  json_decref(lj);

  wr_ingress *again = load(local, strlen(local), &b2, &c2);
  if (!again && !fraction) fprintf(stderr, "local JSON refused: %s\n", local);
  CHECK(again != NULL || fraction);
  if (again) {
    CHECK(again->n_rules == ing->n_rules);
    for (size_t i = 0; i < ing->n_rules; i++) {
      char *d1 = wr_ingress_rule_describe(&ing->rules[i]);
      char *d2 = wr_ingress_rule_describe(&again->rules[i]);
      if (strcmp(d1, d2) != 0) fprintf(stderr, "rule %zu read back differs:\n%s\n---\n%s\n", i, d1, d2);
      CHECK(strcmp(d1, d2) == 0);
      free(d1);
      free(d2);
    }
    char *local2 = wr_ingress_local_config_json(again, NULL);
    if (strcmp(local, local2) != 0) fprintf(stderr, "local JSON not a fixpoint:\n%s\n%s\n", local, local2);
    CHECK(strcmp(local, local2) == 0);
    free(local2);
    wr_ingress_free(again);
    bag_free(&b2);
    wr_config_free(c2);
  }
  free(local);
  wr_ingress_free(ing);
  bag_free(&b1);
  wr_config_free(c1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_rpc_msg msg;
  wr_log_set_level(WR_LOG_OFF);
  size_t used;
  /* An updateConfiguration call: unwrap the JSON from its params. */
  if (size >= 8 && data[0] == 0 && wr_rpc_decode(&msg, data, size, &lim, &used) == 0 &&
      msg.which == WR_RPC_CALL && msg.call.interface_id == WR_TUNNELRPC_CONFIGURATION_MANAGER &&
      msg.call.method_id == WR_TUNNELRPC_UPDATE_CONFIGURATION) {
    wr_tunnelrpc_config_params p;
    if (wr_tunnelrpc_config_params_decode(&msg.call.params, &p) == 0 && p.config)
      exercise((const char *)p.config, p.config_len);
    return 0;
  }
  exercise((const char *)data, size);
  return 0;
}
