/* config.yml loading: the tree and its line numbers, flag merging under the
 * command line, warnings, errors in "file:line: key: reason" form, limits,
 * JSON input, default file search and Go durations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/opts.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "unit.h"

/* A subset of `warren tunnel`'s flags, enough to exercise every kind. */
static const wr_flag test_flags[] = {
    {"config", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"credentials-file", "cred-file", NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"edge", NULL, NULL, WR_FLAG_LIST, NULL, "", NULL},
    {"features", "F", NULL, WR_FLAG_LIST, NULL, "", NULL},
    {"protocol", "p", NULL, WR_FLAG_STRING, "auto", "", NULL},
    {"no-autoupdate", NULL, NULL, WR_FLAG_BOOL, NULL, "", NULL},
    {"retries", NULL, NULL, WR_FLAG_INT, "5", "", NULL},
    {"grace-period", NULL, NULL, WR_FLAG_DURATION, "30s", "", NULL},
    {"url", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"metrics", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {0},
};

static void opts_init(wr_opts *o) { wr_opts_init(o, "warren", test_flags); }
static void opts_fini(wr_opts *o) { wr_opts_free(o); }

static void parse_err(const char *yaml, const char *want) {
  char err[512] = "";
  wr_config *cfg = (wr_config *)1;
  assert_int_equal(wr_config_parse(yaml, strlen(yaml), "config.yml", &cfg, err, sizeof(err)),
                   WR_ERR_CONFIG);
  assert_null(cfg);
  if (strstr(err, want) == NULL) fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_vector_config(void **state) {
  (void)state;
  char err[512];
  wr_config *cfg = NULL;
  assert_int_equal(wr_config_load("tests/vectors/quic/config.yml", &cfg, err, sizeof(err)), 0);
  assert_string_equal(cfg->source, "tests/vectors/quic/config.yml");
  assert_string_equal(cfg->tunnel, "0c9cd40e-166a-439f-8bd1-fcef1cfb28f1");
  assert_non_null(cfg->ingress);
  assert_int_equal(cfg->ingress->kind, WR_YNODE_SEQ);
  assert_int_equal(cfg->ingress->n, 3);
  assert_int_equal(cfg->ingress->line, 6);
  assert_int_equal(cfg->ingress->items[1]->line, 8);
  const wr_ynode *svc = wr_ynode_get(cfg->ingress->items[1], "service", 0);
  assert_string_equal(svc->str, "http://127.0.0.1:9000");
  assert_int_equal(svc->line, 9);
  assert_string_equal(wr_ynode_get(cfg->ingress->items[0], "hostname", 0)->str, "ws.example.test");
  assert_null(cfg->origin_request);
  int enabled = 0;
  assert_non_null(cfg->warp_routing);
  assert_int_equal(wr_ynode_bool(wr_ynode_get(cfg->warp_routing, "enabled", 0), &enabled), 0);
  assert_true(enabled);

  wr_opts o;
  opts_init(&o);
  assert_int_equal(wr_config_apply_opts(cfg, &o, err, sizeof(err)), 0);
  assert_string_equal(wr_opts_get(&o, "credentials-file"), "credentials.json");
  assert_int_equal(wr_opts_source(&o, "credentials-file"), WR_SRC_CONFIG);
  assert_int_equal(cfg->n_warnings, 0);
  opts_fini(&o);
  wr_config_free(cfg);
}

static void test_apply_opts(void **state) {
  (void)state;
  char err[512];
  wr_opts o;
  wr_config *cfg = unit_config_of("edge: [127.0.0.1:7844, 127.0.0.2:7844]\n"
                            "features:\n  - a\n  - b\n"
                            "tag: x=y\n"
                            "no-autoupdate: yes\n"
                            "protocol: quic\n"
                            "retries: 7\n"
                            "grace-period: 1m30s\n"
                            "cred-file: /c.json\n"
                            "url:\n"
                            "proxy-port: 8000\n"
                            "colour: blue\n");
  opts_init(&o);
  /* The command line already chose the protocol: the file must not win. */
  assert_int_equal(wr_opts_set(&o, "protocol", "http2", WR_SRC_CLI), 0);
  assert_int_equal(wr_opts_set(&o, "features", "cli", WR_SRC_CLI), 0);
  assert_int_equal(wr_config_apply_opts(cfg, &o, err, sizeof(err)), 0);
  char *const *vals;
  assert_int_equal(wr_opts_list(&o, "edge", &vals), 2);
  assert_string_equal(vals[0], "127.0.0.1:7844");
  assert_string_equal(vals[1], "127.0.0.2:7844");
  assert_int_equal(wr_opts_list(&o, "features", &vals), 1);
  assert_string_equal(vals[0], "cli");
  assert_string_equal(wr_opts_get(&o, "no-autoupdate"), "true");
  assert_true(wr_opts_bool(&o, "no-autoupdate"));
  assert_string_equal(wr_opts_get(&o, "protocol"), "http2");
  assert_string_equal(wr_opts_get(&o, "retries"), "7");
  assert_string_equal(wr_opts_get(&o, "grace-period"), "1m30s");
  assert_string_equal(wr_opts_get(&o, "credentials-file"), "/c.json");
  assert_false(wr_opts_isset(&o, "url")); /* an empty value sets nothing */
  /* tag is not a flag of this command; proxy-port is cloudflared's only. */
  assert_int_equal(cfg->n_warnings, 3);
  assert_string_equal(cfg->warnings[0], "config.yml:5: unknown key \"tag\"; ignored");
  assert_string_equal(cfg->warnings[1],
                      "config.yml:12: \"proxy-port\" is not supported by warren; ignored");
  assert_string_equal(cfg->warnings[2], "config.yml:13: unknown key \"colour\"; ignored");
  opts_fini(&o);
  wr_config_free(cfg);
}

static void apply_err(const char *yaml, const char *want) {
  char err[512] = "";
  wr_opts o;
  wr_config *cfg = unit_config_of(yaml);
  opts_init(&o);
  assert_int_equal(wr_config_apply_opts(cfg, &o, err, sizeof(err)), WR_ERR_CONFIG);
  assert_string_equal(err, want);
  opts_fini(&o);
  wr_config_free(cfg);
}

static void test_apply_opts_errors(void **state) {
  (void)state;
  apply_err("tunnel: x\nretries: lots\n",
            "config.yml:2: retries: expected an integer, found \"lots\"");
  apply_err("no-autoupdate: maybe\n",
            "config.yml:1: no-autoupdate: expected true or false, found \"maybe\"");
  apply_err("grace-period: 10 parsecs\n",
            "config.yml:1: grace-period: expected a duration such as 30s or 1m30s, found \"10 "
            "parsecs\"");
  apply_err("protocol: [quic, http2]\n",
            "config.yml:1: protocol: expected a single value, found a list");
  apply_err("edge:\n  - a:1\n  - {x: 1}\n",
            "config.yml:3: edge[1]: expected a single value, found a map");
}

static void test_bad_yaml(void **state) {
  (void)state;
  parse_err("ingress:\n\t- service: http://x\n",
            "config.yml:2: YAML error: found a tab character where indentation is expected");
  parse_err("tunnel: abc\ningress:\n  - service: \"http://x\n",
            "config.yml:4: YAML error: found unexpected end of stream (while scanning a quoted "
            "scalar that starts at line 3)");
  parse_err("a: b: c\n", "config.yml:1: YAML error: mapping values are not allowed");
  parse_err("- a\n- b\n", "config.yml:1: the configuration must be a map of keys, found a list");
  parse_err("just text\n", "config.yml:1: the configuration must be a map of keys, found a scalar");
  parse_err("tunnel: a\nmetrics: x\ntunnel: b\n",
            "config.yml:3: mapping key \"tunnel\" already defined at line 1");
  parse_err("tunnel: [a]\n", "config.yml:1: tunnel: expected a tunnel ID or name, found a list");
  parse_err("a: *nope\n", "config.yml:1: unknown anchor \"nope\" referenced");
  parse_err("a: \"x\\0y\"\n", "config.yml:1: NUL character in a value is not allowed");
  parse_err("? [a]\n: b\n", "mapping keys must be plain strings, found a list");

  /* Deep nesting stops at the depth limit, not in a stack overflow. */
  size_t n = 100000;
  char *deep = malloc(2 * n + 8);
  memcpy(deep, "a: ", 3);
  memset(deep + 3, '[', n);
  memset(deep + 3 + n, ']', n);
  deep[3 + 2 * n] = '\0';
  parse_err(deep, "nesting deeper than 64 levels");
  free(deep);

  /* "Billion laughs": aliases multiply, the node budget stops it. */
  const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
  parse_err(bomb, "config.yml:5: document too large (more than 100000 nodes, counting aliases)");
  /* An alias inside the node it names would be a cycle. */
  parse_err("a: &a [1, *a]\n", "anchor \"a\" refers to a node that contains it");

  /* Input larger than 1 MiB is refused before parsing. */
  size_t big = WR_CONFIG_MAX_FILE + 1;
  char *huge = malloc(big);
  memset(huge, '#', big);
  char err[256];
  wr_config *cfg = NULL;
  assert_int_equal(wr_config_parse(huge, big, "big.yml", &cfg, err, sizeof(err)), WR_ERR_CONFIG);
  assert_string_equal(err, "big.yml: file larger than 1048576 bytes");
  free(huge);
}

static void test_yaml_features(void **state) {
  (void)state;
  /* Empty documents are valid (cloudflared logs and goes on). */
  wr_config *cfg = unit_config_of("# nothing here\n");
  assert_null(cfg->root);
  assert_null(cfg->ingress);
  wr_config_free(cfg);

  /* Anchors, aliases and merge keys as yaml.v3 handles them. */
  cfg = unit_config_of("base: &base\n  connectTimeout: 10s\n  noTLSVerify: true\n"
                 "originRequest:\n  <<: *base\n  noTLSVerify: false\n"
                 "ingress:\n  - service: &svc http_status:404\n");
  const wr_ynode *orq = cfg->origin_request;
  assert_int_equal(orq->kind, WR_YNODE_MAP);
  assert_int_equal(orq->n, 2);
  assert_string_equal(wr_ynode_get(orq, "noTLSVerify", 0)->str, "false");
  assert_string_equal(wr_ynode_get(orq, "connectTimeout", 0)->str, "10s");
  assert_int_equal(wr_ynode_get(orq, "connectTimeout", 0)->line, 2);
  assert_null(wr_ynode_get(orq, "<<", 0));
  wr_config_free(cfg);

  /* A redefined anchor: aliases see the latest definition. */
  cfg = unit_config_of("a: &x [&x 1]\nb: *x\nc: &x two\nd: *x\n");
  assert_string_equal(wr_ynode_get(cfg->root, "b", 0)->str, "1");
  assert_string_equal(wr_ynode_get(cfg->root, "d", 0)->str, "two");
  wr_config_free(cfg);

  /* Only the first document counts. */
  cfg = unit_config_of("tunnel: one\n---\ntunnel: two\n---\n: : bad\n");
  assert_string_equal(cfg->tunnel, "one");
  wr_config_free(cfg);

  /* null spellings and quoting. */
  cfg = unit_config_of("a: ~\nb: null\nc: \"null\"\nd:\ne: 'x'\n");
  assert_int_equal(wr_ynode_get(cfg->root, "a", 0)->kind, WR_YNODE_NULL);
  assert_int_equal(wr_ynode_get(cfg->root, "b", 0)->kind, WR_YNODE_NULL);
  assert_int_equal(wr_ynode_get(cfg->root, "c", 0)->kind, WR_YNODE_SCALAR);
  assert_int_equal(wr_ynode_get(cfg->root, "d", 0)->kind, WR_YNODE_NULL);
  assert_false(wr_ynode_get(cfg->root, "e", 0)->plain);
  assert_null(wr_ynode_get(cfg->root, "E", 0));
  assert_non_null(wr_ynode_get(cfg->root, "E", 1));
  wr_config_free(cfg);
}

static void test_ynode_bool(void **state) {
  (void)state;
  static const struct { const char *s; int ok, v; } cases[] = {
      {"true", 1, 1}, {"True", 1, 1}, {"TRUE", 1, 1}, {"yes", 1, 1},  {"on", 1, 1},
      {"Y", 1, 1},    {"false", 1, 0}, {"No", 1, 0},  {"OFF", 1, 0},  {"n", 1, 0},
      {"tRUE", 0, 0}, {"1", 0, 0},     {"", 0, 0},    {"yess", 0, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wr_ynode n = {.kind = WR_YNODE_SCALAR, .str = cases[i].s, .len = strlen(cases[i].s)};
    int v = -1;
    int rv = wr_ynode_bool(&n, &v);
    if ((rv == 0) != cases[i].ok) fail_msg("bool \"%s\": rv %d", cases[i].s, rv);
    if (cases[i].ok) assert_int_equal(v, cases[i].v);
  }
}

static void test_json(void **state) {
  (void)state;
  char err[256];
  wr_config *cfg = NULL;
  const char *j = "{\"Ingress\":[{\"service\":\"http_status:404\",\"originRequest\":"
                  "{\"connectTimeout\":10}}],\"warp-routing\":{\"enabled\":true},"
                  "\"OriginRequest\":{\"noTLSVerify\":true}}";
  assert_int_equal(wr_config_parse_json(j, strlen(j), "--json", &cfg, err, sizeof(err)), 0);
  assert_true(cfg->is_json);
  assert_int_equal(cfg->ingress->n, 1);
  assert_int_equal(cfg->ingress->line, 0);
  const wr_ynode *ct =
      wr_ynode_get(wr_ynode_get(cfg->ingress->items[0], "originRequest", 1), "connectTimeout", 1);
  assert_string_equal(ct->str, "10");
  assert_true(ct->plain);
  assert_string_equal(wr_ynode_get(cfg->warp_routing, "enabled", 1)->str, "true");
  assert_string_equal(wr_ynode_get(cfg->origin_request, "noTLSVerify", 1)->str, "true");
  wr_config_free(cfg);

  assert_int_equal(wr_config_parse_json("{\"ingress\": [", 13, "--json", &cfg, err, sizeof(err)),
                   WR_ERR_CONFIG);
  assert_null(cfg);
  assert_true(strncmp(err, "--json: invalid JSON at line 1", 30) == 0);
  assert_int_equal(wr_config_parse_json("[1]", 3, "--json", &cfg, err, sizeof(err)), WR_ERR_CONFIG);
  assert_string_equal(err, "--json: the configuration must be a map of keys, found a list");
  assert_int_equal(wr_config_parse_json("{\"a\":1,\"a\":2}", 13, "--json", &cfg, err, sizeof(err)),
                   WR_ERR_CONFIG);
}

static void test_load_errors(void **state) {
  (void)state;
  char err[256];
  wr_config *cfg = (wr_config *)1;
  assert_int_equal(wr_config_load("tests/vectors/nope.yml", &cfg, err, sizeof(err)), WR_ERR_IO);
  assert_null(cfg);
  assert_string_equal(err, "tests/vectors/nope.yml: No such file or directory");
  assert_int_equal(wr_config_load("tests/vectors", &cfg, err, sizeof(err)), WR_ERR_IO);
  assert_string_equal(err, "tests/vectors: Is a directory");
}

static void test_find_default(void **state) {
  (void)state;
  char tmpl[] = "/tmp/wr-config-XXXXXX", path[512];
  char *home = mkdtemp(tmpl);
  char *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  assert_non_null(home);
  setenv("HOME", home, 1);
  snprintf(path, sizeof(path), "%s/.cloudflare-warp", home);
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/.cloudflare-warp/config.yaml", home);
  assert_int_equal(wr_file_write(path, "tunnel: x\n", 10, 0600, 0), 0);
  /* /etc/cloudflared may exist on the host; the home directories come first. */
  char *found = wr_config_find_default();
  assert_non_null(found);
  assert_string_equal(found, path);
  free(found);
  /* In the same directory config.yml wins over config.yaml ... */
  snprintf(path, sizeof(path), "%s/.cloudflare-warp/config.yml", home);
  assert_int_equal(wr_file_write(path, "tunnel: y\n", 10, 0600, 0), 0);
  found = wr_config_find_default();
  assert_string_equal(found, path);
  free(found);
  /* ... and ~/.cloudflared wins over the other directories. */
  snprintf(path, sizeof(path), "%s/.cloudflared", home);
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/.cloudflared/config.yaml", home);
  assert_int_equal(wr_file_write(path, "tunnel: z\n", 10, 0600, 0), 0);
  found = wr_config_find_default();
  assert_string_equal(found, path);

  /* wr_config_load_opts: --config wins; without it the default file. */
  wr_opts o;
  wr_config *cfg = NULL;
  char err[256];
  wr_log_set_level(WR_LOG_ERROR);
  opts_init(&o);
  assert_int_equal(wr_config_load_opts(&o, &cfg, err, sizeof(err)), 0);
  assert_string_equal(cfg->source, found);
  assert_string_equal(cfg->tunnel, "z");
  wr_config_free(cfg);
  wr_opts_set(&o, "config", "tests/vectors/quic/config.yml", WR_SRC_CLI);
  assert_int_equal(wr_config_load_opts(&o, &cfg, err, sizeof(err)), 0);
  assert_string_equal(cfg->tunnel, "0c9cd40e-166a-439f-8bd1-fcef1cfb28f1");
  assert_string_equal(wr_opts_get(&o, "credentials-file"), "credentials.json");
  wr_config_free(cfg);
  opts_fini(&o);
  free(found);

  assert_int_equal(unit_rm_rf(home), 0);
  if (old) setenv("HOME", old, 1), free(old);
}

static void test_durations(void **state) {
  (void)state;
  static const struct { const char *s; long long ns; } ok[] = {
      {"30s", 30000000000LL},    {"1m30s", 90000000000LL}, {"1.5h", 5400000000000LL},
      {"300ms", 300000000LL},    {"0", 0},                 {"10", 10000000000LL},
      {"2h45m", 9900000000000LL}, {"1us", 1000},           {"-5s", -5000000000LL},
  };
  static const char *const bad[] = {"", "abc", "5x", "s", "1.5.5s", "10 s", "--1s"};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    long long ns = -1;
    if (wr_parse_duration(ok[i].s, &ns) != 0) fail_msg("duration \"%s\" refused", ok[i].s);
    assert_int_equal(ns, ok[i].ns);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    long long ns;
    if (wr_parse_duration(bad[i], &ns) == 0) fail_msg("duration \"%s\" accepted", bad[i]);
  }
}

static void test_errorf(void **state) {
  (void)state;
  char err[128];
  wr_config_errorf(err, sizeof(err), "c.yml", 7, "ingress[1].service", "unknown scheme \"%s\"",
                   "htp");
  assert_string_equal(err, "c.yml:7: ingress[1].service: unknown scheme \"htp\"");
  wr_config_errorf(err, sizeof(err), "--json", 0, NULL, "bad");
  assert_string_equal(err, "--json: bad");
  char small[8];
  wr_config_errorf(small, sizeof(small), "c.yml", 7, "k", "long reason");
  assert_string_equal(small, "c.yml:7");
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_vector_config, test_apply_opts, test_apply_opts_errors,
                             test_bad_yaml, test_yaml_features, test_ynode_bool, test_json,
                             test_load_errors, test_find_default, test_durations, test_errorf));
}
