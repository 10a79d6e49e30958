/* Fuzzes config.yml loading from memory (YAML and, for inputs that look like
 * it, JSON) and then everything downstream that reads the tree: merging into
 * a flag bag, ingress validation, matching, rule descriptions and the local
 * configuration JSON. Besides memory errors it checks that every failure
 * leaves a NUL-terminated, non-empty message and no half-built object. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/opts.h"
#include "connector/ingress.h"
#include "lib/config.h"
#include "lib/log.h"
#include "fuzz.h"

static const wr_flag flags[] = {
    {"credentials-file", "cred-file", NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"edge", NULL, NULL, WR_FLAG_LIST, NULL, "", NULL},
    {"protocol", "p", NULL, WR_FLAG_STRING, "auto", "", NULL},
    {"no-autoupdate", NULL, NULL, WR_FLAG_BOOL, NULL, "", NULL},
    {"retries", NULL, NULL, WR_FLAG_INT, "5", "", NULL},
    {"grace-period", NULL, NULL, WR_FLAG_DURATION, "30s", "", NULL},
    {"url", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"hello-world", NULL, NULL, WR_FLAG_BOOL, NULL, "", NULL},
    {"metrics", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {0},
};

static void check_err(int rv, const char *err, size_t errlen) {
  if (rv == 0) return;
  if (memchr(err, '\0', errlen) == NULL || err[0] == '\0') abort();
}

static void exercise(wr_config *cfg) {
  char err[512];
  wr_opts o = {0};
  wr_opt items[sizeof(flags) / sizeof(flags[0]) - 1];
  memset(items, 0, sizeof(items));
  for (size_t i = 0; flags[i].name; i++) items[i].flag = &flags[i];
  o.items = items;
  o.n = o.cap = sizeof(items) / sizeof(items[0]);
  o.prog = "warren";

  err[0] = '\0';
  check_err(wr_config_apply_opts(cfg, &o, err, sizeof(err)), err, sizeof(err));

  wr_ingress *ing = NULL;
  err[0] = '\0';
  int rv = wr_ingress_load(cfg, &o, &ing, err, sizeof(err));
  check_err(rv, err, sizeof(err));
  if (rv == 0) {
    static const char *const hosts[] = {"a.example.com", "EXAMPLE.com:443", "[::1]:80", "::1",
                                        "xn--bcher-kva.example", "", "x"};
    static const char *const paths[] = {"/", "/api/v1/users", "/index.php", ""};
    for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++)
      for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
        int i = wr_ingress_match(ing, hosts[h], paths[p]);
        if (i < 0 || (size_t)i >= ing->n_rules) abort();
      }
    for (size_t i = 0; i < ing->n_rules; i++) free(wr_ingress_rule_describe(&ing->rules[i]));
    free(wr_ingress_local_config_json(ing, &o));
    wr_ingress_free(ing);
  } else if (ing) {
    abort();
  }

  for (size_t i = 0; i < o.n; i++) {
    for (size_t j = 0; j < items[i].n; j++) free(items[i].vals[j]);
    free(items[i].vals);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  wr_config *cfg = NULL;
  wr_log_set_level(WR_LOG_OFF);

  err[0] = '\0';
  int rv = wr_config_parse((const char *)data, size, "fuzz.yml", &cfg, err, sizeof(err));
  check_err(rv, err, sizeof(err));
  if (rv == 0) {
    exercise(cfg);
    wr_config_free(cfg);
  } else if (cfg) {
    abort();
  }

  if (size && data[0] == '{') {
    cfg = NULL;
    err[0] = '\0';
    rv = wr_config_parse_json((const char *)data, size, "--json", &cfg, err, sizeof(err));
    check_err(rv, err, sizeof(err));
    if (rv == 0) {
      exercise(cfg);
      wr_config_free(cfg);
    }
  }
  return 0;
}
