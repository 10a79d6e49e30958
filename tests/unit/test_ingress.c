/* Ingress rules: cloudflared's validation with exact messages, service
 * parsing, originRequest defaults and merging, matching, rules from flags,
 * warp-routing and the local-configuration JSON. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/opts.h"
#include "connector/ingress.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "quic_pair.h"
#include "unit.h"

#define SEC 1000000000LL

static const wr_flag test_flags[] = {
    {"url", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"hello-world", NULL, NULL, WR_FLAG_BOOL, NULL, "", NULL},
    {"unix-socket", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"token", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"http-host-header", NULL, NULL, WR_FLAG_STRING, NULL, "", NULL},
    {"no-tls-verify", NULL, NULL, WR_FLAG_BOOL, NULL, "", NULL},
    {"protocol", "p", NULL, WR_FLAG_STRING, "auto", "", NULL},
    {"no-autoupdate", NULL, NULL, WR_FLAG_BOOL, NULL, "", NULL},
    {"loglevel", NULL, NULL, WR_FLAG_STRING, "info", "", NULL},
    {"metrics", NULL, NULL, WR_FLAG_STRING, "localhost:0", "", NULL},
    {0},
};

static void opts_init(wr_opts *o) { wr_opts_init(o, "warren", test_flags); }
static void opts_fini(wr_opts *o) { wr_opts_free(o); }

/* The fixture of the rules-from-flags tests: logs off and a fresh option
 * bag (opts_init) in *state, freed after the test. */
static int cli_setup(void **state) {
  wr_opts *o = malloc(sizeof(*o));
  assert_non_null(o);
  wr_log_set_level(WR_LOG_OFF);
  opts_init(o);
  *state = o;
  return 0;
}
static int cli_teardown(void **state) {
  opts_fini(*state);
  free(*state);
  return 0;
}

static void ing_err(const char *yaml, int want_rv, const char *want) {
  char err[512] = "";
  wr_ingress *ing = (wr_ingress *)1;
  wr_config *cfg = unit_config_of(yaml);
  int rv = wr_ingress_parse(cfg, &ing, err, sizeof(err));
  if (rv != want_rv) fail_msg("rv %d, want %d (%s)", rv, want_rv, err);
  assert_null(ing);
  if (strcmp(err, want) != 0) fail_msg("error\n  got:  %s\n  want: %s", err, want);
  wr_config_free(cfg);
}

/* A request (host, path) and the index of the rule it must match. */
typedef struct match_case {
  const char *host, *path;
  int rule;
} match_case;

/* Asserts each of |cases| (an array) against |ing|. */
#define ASSERT_MATCHES(ing, cases) assert_matches((ing), (cases), sizeof(cases) / sizeof((cases)[0]))
static void assert_matches(const wr_ingress *ing, const match_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int got = wr_ingress_match(ing, cases[i].host, cases[i].path);
    if (got != cases[i].rule)
      fail_msg("host %s path %s: rule %d, want %d", cases[i].host ? cases[i].host : "(null)",
               cases[i].path ? cases[i].path : "(null)", got, cases[i].rule);
  }
}

/* The rules of tests/vectors/quic/config.yml; its config in *cfg (the
 * caller frees both). */
static wr_ingress *vector_ingress(wr_config **cfg) {
  size_t len;
  char err[256];
  wr_ingress *ing = NULL;
  char *data = (char *)unit_read_vector("quic/config.yml", &len);
  *cfg = NULL;
  assert_int_equal(wr_config_parse(data, len, "config.yml", cfg, err, sizeof(err)), 0);
  free(data);
  assert_int_equal(wr_ingress_parse(*cfg, &ing, err, sizeof(err)), 0);
  return ing;
}

static void test_vector_rules(void **state) {
  (void)state;
  wr_config *cfg;
  wr_ingress *ing = vector_ingress(&cfg);
  assert_int_equal(cfg->n_warnings, 0);
  wr_config_free(cfg);

  assert_int_equal(ing->n_rules, 3);
  assert_string_equal(ing->rules[0].hostname, "ws.example.test");
  assert_string_equal(ing->rules[1].hostname, "app.example.test");
  assert_null(ing->rules[2].hostname);
  assert_int_equal(ing->rules[0].line, 6);
  assert_int_equal(ing->rules[2].line, 10);
  assert_int_equal(ing->rules[0].service.kind, WR_SVC_HTTP);
  assert_string_equal(ing->rules[0].service.display, "http://127.0.0.1:9001");
  assert_string_equal(ing->rules[0].service.host, "127.0.0.1");
  assert_string_equal(ing->rules[0].service.authority, "127.0.0.1:9001");
  assert_int_equal(ing->rules[0].service.port, 9001);
  assert_false(ing->rules[0].service.tls);
  assert_int_equal(ing->rules[1].service.port, 9000);
  assert_int_equal(ing->rules[2].service.kind, WR_SVC_HTTP_STATUS);
  assert_int_equal(ing->rules[2].service.status, 404);
  assert_true(ing->warp.enabled);
  assert_int_equal(ing->warp.connect_timeout_ns, 5 * SEC);
  assert_int_equal(ing->warp.tcp_keepalive_ns, 30 * SEC);

  static const match_case matches[] = {
      {"ws.example.test", "/", 0},
      {"app.example.test", "/x", 1},
      {"APP.Example.TEST:8443", "/x", 1},
      {"app.example.test.evil", "/", 2},
      {"other.test", NULL, 2},
      {NULL, NULL, 2},
  };
  ASSERT_MATCHES(ing, matches);

  char *d = wr_ingress_rule_describe(&ing->rules[1]);
  assert_string_equal(d, "\thostname: app.example.test\n\tservice: http://127.0.0.1:9000");
  free(d);
  d = wr_ingress_rule_describe(&ing->rules[2]);
  assert_string_equal(d, "\tservice: http_status:404");
  free(d);
  wr_ingress_free(ing);
}

static void test_matching(void **state) {
  (void)state;
  wr_ingress *ing = unit_ingress_of("ingress:\n"
                           "  - hostname: '*.example.com'\n"
                           "    path: ^/api/v\\d+/\n"
                           "    service: http://localhost:1\n"
                           "  - hostname: \"*.example.com\"\n"
                           "    service: http://localhost:2\n"
                           "  - hostname: example.com\n"
                           "    path: (?i)static|assets\n"
                           "    service: http://localhost:3\n"
                           "  - hostname: \"::1\"\n"
                           "    service: http://localhost:4\n"
                           "  - path: \\.php$\n"
                           "    service: http_status:403\n"
                           "  - hostname: bücher.example\n"
                           "    service: http://localhost:6\n"
                           "  - hostname: '*'\n"
                           "    service: http_status:404\n");
  static const match_case matches[] = {
      {"a.example.com", "/api/v2/users", 0},
      {"a.example.com", "/api/vX/users", 1},
      {"a.b.example.com:443", "/api/v1/", 0},
      {"A.EXAMPLE.COM", "/", 1},
      /* The wildcard needs a subdomain; example.com itself goes on. */
      {"example.com", "/api/v1/", 6},
      {"notexample.com", "/", 6},
      /* Unanchored regex, case-insensitive flag. */
      {"example.com", "/x/STATIC/y", 2},
      {"example.com:80", "/assets", 2},
      /* A hostless rule with a path is not a catch-all. */
      {"zzz", "/index.php", 4},
      {"zzz", "/index.phpx", 6},
      /* Host ports: "[v6]:port" and "host:port" lose the port, a bare v6 not. */
      {"[::1]:8443", "/", 3},
      {"::1", "/", 3},
      /* IDN rules also match their punycode form. */
      {"xn--bcher-kva.example", "/", 5},
      {"bücher.example", "/", 5},
  };
  assert_int_equal(ing->n_rules, 7);
  ASSERT_MATCHES(ing, matches);
  assert_string_equal(ing->rules[5].punycode, "xn--bcher-kva.example");
  assert_null(ing->rules[0].punycode);
  wr_ingress_free(ing);

  /* More RE2 spellings: lazy quantifiers, classes inside brackets, (?:). */
  ing = unit_ingress_of("ingress:\n"
               "  - hostname: a\n    path: ^/v[\\d.]+?/(?:x|y)\\w*?$\n    service: http://a\n"
               "  - hostname: münchen.de\n    service: http://b\n"
               "  - hostname: 例え.jp\n    service: http://c\n"
               "  - service: http_status:404\n");
  static const match_case re2_matches[] = {{"a", "/v1.2/x_9", 0}, {"a", "/v1.2/z", 3}, {"a", "/va/x", 3}};
  ASSERT_MATCHES(ing, re2_matches);
  assert_string_equal(ing->rules[1].punycode, "xn--mnchen-3ya.de");
  assert_string_equal(ing->rules[2].punycode, "xn--r8jz45g.jp");
  wr_ingress_free(ing);
}

static void test_services(void **state) {
  (void)state;
  wr_ingress *ing = unit_ingress_of("ingress:\n"
                           "  - {hostname: a, service: https://origin}\n"
                           "  - {hostname: b, service: 'ws://127.0.0.1:8080'}\n"
                           "  - {hostname: c, service: 'WSS://[::1]'}\n"
                           "  - {hostname: d, service: 'unix:/run/app.sock'}\n"
                           "  - {hostname: e, service: 'unix+tls:/run/tls.sock'}\n"
                           "  - {hostname: f, service: 'http_status:418'}\n"
                           "  - {hostname: g, service: hello-world}\n"
                           "  - {hostname: h, service: hello_world}\n"
                           "  - {hostname: i, service: 'ssh://localhost'}\n"
                           "  - {hostname: j, service: 'rdp://10.0.0.1'}\n"
                           "  - {hostname: k, service: 'smb://fs'}\n"
                           "  - {hostname: l, service: 'tcp://db'}\n"
                           "  - {hostname: m, service: 'tcp://db:5432'}\n"
                           "  - {hostname: n, service: 'postgres://db:5432'}\n"
                           "  - {hostname: o, service: 'ssh://[::1]'}\n"
                           "  - {hostname: p, service: bastion}\n"
                           "  - {hostname: q, service: socks-proxy}\n"
                           "  - {hostname: r, service: 'http://user@name@host:81?x=1'}\n"
                           "  - {hostname: s, service: 'http://h', originRequest: {bastionMode: true}}\n"
                           "  - service: 'http_status:+200'\n");
  const wr_service *s = &ing->rules[0].service;
  assert_int_equal(s->kind, WR_SVC_HTTP);
  assert_true(s->tls);
  assert_string_equal(s->scheme, "https");
  assert_int_equal(s->port, 443);
  assert_string_equal(s->authority, "origin");
  s = &ing->rules[1].service;
  assert_string_equal(s->scheme, "http");
  assert_int_equal(s->port, 8080);
  assert_string_equal(s->display, "ws://127.0.0.1:8080");
  s = &ing->rules[2].service;
  assert_string_equal(s->scheme, "https");
  assert_string_equal(s->host, "::1");
  assert_string_equal(s->authority, "[::1]");
  assert_int_equal(s->port, 443);
  assert_string_equal(s->display, "wss://[::1]");
  s = &ing->rules[3].service;
  assert_int_equal(s->kind, WR_SVC_UNIX);
  assert_false(s->tls);
  assert_string_equal(s->path, "/run/app.sock");
  assert_string_equal(s->display, "unix:/run/app.sock");
  s = &ing->rules[4].service;
  assert_true(s->tls);
  assert_string_equal(s->scheme, "https");
  assert_string_equal(s->display, "unix+tls:/run/tls.sock");
  assert_int_equal(ing->rules[5].service.status, 418);
  assert_int_equal(ing->rules[6].service.kind, WR_SVC_HELLO_WORLD);
  assert_string_equal(ing->rules[6].service.display, "hello_world");
  assert_int_equal(ing->rules[7].service.kind, WR_SVC_HELLO_WORLD);
  static const struct { size_t i; const char *display; uint16_t port; } streams[] = {
      {8, "ssh://localhost:22", 22},   {9, "rdp://10.0.0.1:3389", 3389},
      {10, "smb://fs:445", 445},       {11, "tcp://db:7864", 7864},
      {12, "tcp://db:5432", 5432},     {13, "postgres://db:5432", 5432},
      {14, "ssh://[::1]:22", 22},
  };
  for (size_t k = 0; k < sizeof(streams) / sizeof(streams[0]); k++) {
    s = &ing->rules[streams[k].i].service;
    assert_int_equal(s->kind, WR_SVC_STREAM);
    assert_string_equal(s->display, streams[k].display);
    assert_int_equal(s->port, streams[k].port);
  }
  assert_string_equal(ing->rules[14].service.authority, "[::1]:22");
  assert_int_equal(ing->rules[15].service.kind, WR_SVC_BASTION);
  assert_true(ing->rules[15].origin.bastion_mode);
  assert_int_equal(ing->rules[16].service.kind, WR_SVC_SOCKS_PROXY);
  s = &ing->rules[17].service;
  /* Userinfo runs to the last '@', as in Go's url.Parse (found by fuzz_remote_config). */
  assert_string_equal(s->host, "host");
  assert_string_equal(s->authority, "host:81");
  /* bastionMode turns even a URL service into a bastion, as in cloudflared. */
  assert_int_equal(ing->rules[18].service.kind, WR_SVC_BASTION);
  assert_string_equal(ing->rules[19].service.display, "http_status:200");
  wr_ingress_free(ing);
}

static void test_validation_errors(void **state) {
  (void)state;
  ing_err("tunnel: x\ningress:\n  - hostname: a.example.com\n    service: http://localhost:8000\n"
          "  - hostname: b.example.com\n    service: htp://localhost\n  - service: http_status:404\n",
          WR_ERR_CONFIG, "config.yml:6: ingress[1].service: unknown scheme \"htp\"");
  ing_err("ingress:\n  - hostname: a.example.com\n    service: http://localhost:8000\n",
          WR_ERR_CONFIG,
          "config.yml:2: ingress[0]: The last ingress rule must match all URLs (i.e. it should "
          "not have a hostname or path filter)");
  ing_err("ingress:\n  - path: /x\n    service: http://localhost:8000\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0]: The last ingress rule must match all URLs (i.e. it should "
          "not have a hostname or path filter)");
  ing_err("ingress:\n  - hostname: '*'\n    service: http://a\n  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:2: ingress[0].hostname: Rule #1 is matching the hostname '*', but this will "
          "match every hostname, meaning the rules which follow it will never be triggered.");
  ing_err("ingress:\n  - service: http://a\n  - service: http_status:404\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0]: Rule #1 is matching the hostname '', but this will match "
          "every hostname, meaning the rules which follow it will never be triggered.");
  static const char bad_wildcard[] =
      ": Hostname patterns can have at most one wildcard character (\"*\") and it can only be "
      "used for subdomains, e.g. \"*.example.com\"";
  char want[512];
  snprintf(want, sizeof(want), "config.yml:3: ingress[1].hostname%s", bad_wildcard);
  ing_err("ingress:\n  - {hostname: a, service: http://a}\n  - hostname: a.*.example.com\n"
          "    service: http://a\n  - service: http_status:404\n",
          WR_ERR_CONFIG, want);
  snprintf(want, sizeof(want), "config.yml:2: ingress[0].hostname%s", bad_wildcard);
  ing_err("ingress:\n  - hostname: '*foo.example.com'\n    service: http://a\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG, want);
  ing_err("ingress:\n  - hostname: example.com:8080\n    service: http://a\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG, "config.yml:2: ingress[0].hostname: Hostname cannot contain a port");
  ing_err("ingress:\n  - hostname: a\n  - service: http_status:404\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0]: \"service\" is required");
  ing_err("ingress:\n  - {hostname: a, service: 'localhost:8080'}\n  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: localhost:8080 is an invalid address, please make "
          "sure it has a scheme and a hostname");
  ing_err("ingress:\n  - {hostname: a, service: 'http://'}\n  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: http:// is an invalid address, please make sure it "
          "has a scheme and a hostname");
  ing_err("ingress:\n  - {hostname: a, service: 'http://localhost:8080/app'}\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: http://localhost:8080/app is an invalid address, "
          "ingress rules don't support proxying to a different path on the origin service. The "
          "path will be the same as the eyeball request's path");
  ing_err("ingress:\n  - {hostname: a, service: 'http://h:99999'}\n  - service: http_status:404\n",
          WR_ERR_CONFIG, "config.yml:2: ingress[0].service: http://h:99999 is an invalid address: "
                         "port 99999 out of range");
  ing_err("ingress:\n  - service: http_status:99\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: invalid HTTP status code: 99");
  ing_err("ingress:\n  - service: http_status:1000\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: invalid HTTP status code: 1000");
  ing_err("ingress:\n  - service: http_status:abc\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: invalid HTTP status code \"abc\"");
  ing_err("ingress:\n  - service: 'unix:'\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: unix:: the unix socket path is empty");
  ing_err("ingress:\n  - hostname: a\n    path: '(unclosed'\n    service: http://a\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:3: ingress[0].path: Rule #1 has an invalid regex: Unmatched ( or \\(");
  ing_err("ingress:\n  - hostname: a\n    path: '(a)\\1'\n    service: http://a\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:3: ingress[0].path: Rule #1 has an invalid regex: backreferences are not "
          "supported");
  ing_err("ingress:\n  - hostname: a\n    path: '\\bword'\n    service: http://a\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:3: ingress[0].path: Rule #1 has an invalid regex: this RE2 escape is not "
          "supported (supported: \\d \\w \\s \\D \\W \\S and escaped punctuation)");
  ing_err("ingress:\n  - hostname: a\n    path: '((a{1000}){1000})'\n    service: http://a\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:3: ingress[0].path: Rule #1 has an invalid regex: pattern expands to too "
          "many states (nested repetitions)");
  /* glibc copies the operand of + once per level: stacked ones are refused
   * as RE2 does, nested ones are bounded. */
  ing_err("ingress:\n  - hostname: a\n    path: 'a+++'\n    service: http://a\n"
          "  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:3: ingress[0].path: Rule #1 has an invalid regex: invalid nested "
          "repetition operator");
  char nested[256] = "ingress:\n  - hostname: a\n    path: '";
  for (int i = 0; i < 20; i++) strcat(nested, "(");
  strcat(nested, "a");
  for (int i = 0; i < 20; i++) strcat(nested, ")+");
  strcat(nested, "'\n    service: http://a\n  - service: http_status:404\n");
  ing_err(nested, WR_ERR_CONFIG,
          "config.yml:3: ingress[0].path: Rule #1 has an invalid regex: pattern expands to too "
          "many states (nested repetitions)");
  /* Shapes. */
  ing_err("ingress: {service: http://a}\n", WR_ERR_CONFIG,
          "config.yml:1: ingress: expected a list of rules, found a map");
  ing_err("ingress:\n  - http://a\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0]: expected a map with hostname, path and service, found a "
          "scalar");
  ing_err("ingress:\n  - service: [a]\n", WR_ERR_CONFIG,
          "config.yml:2: ingress[0].service: expected a string, found a list");
  ing_err("tunnel: x\n", WR_ERR_NOTFOUND, WR_INGRESS_ERR_NO_RULES);
  ing_err("ingress: []\n", WR_ERR_NOTFOUND, WR_INGRESS_ERR_NO_RULES);
  /* originRequest values. */
  ing_err("originRequest:\n  connectTimeout: soon\ningress:\n  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:2: originRequest.connectTimeout: invalid duration \"soon\" (use e.g. 30s, "
          "1m30s, 500ms)");
  ing_err("ingress:\n  - service: http://a\n    originRequest:\n      noTLSVerify: perhaps\n",
          WR_ERR_CONFIG,
          "config.yml:4: ingress[0].originRequest.noTLSVerify: expected true or false, found "
          "\"perhaps\"");
  ing_err("ingress:\n  - service: http://a\n    originRequest:\n      proxyPort: 70000\n",
          WR_ERR_CONFIG,
          "config.yml:4: ingress[0].originRequest.proxyPort: 70000 is out of range (0 to 65535)");
  ing_err("ingress:\n  - service: http://a\n    originRequest: [x]\n", WR_ERR_CONFIG,
          "config.yml:3: ingress[0].originRequest: expected a map of origin settings, found a "
          "list");
  ing_err("ingress:\n  - service: socks-proxy\n    originRequest:\n      ipRules:\n"
          "        - prefix: 10.0.0.300/8\n",
          WR_ERR_CONFIG,
          "config.yml:5: ingress[0].originRequest.ipRules[0].prefix: unable to parse cidr: "
          "10.0.0.300/8");
  ing_err("ingress:\n  - service: socks-proxy\n    originRequest:\n      ipRules:\n"
          "        - prefix: 10.0.0.0/8\n          ports: [80, 0]\n",
          WR_ERR_CONFIG,
          "config.yml:6: ingress[0].originRequest.ipRules[0].ports[1]: invalid port 0, needs to "
          "be between 1 and 65535");
  ing_err("ingress:\n  - service: socks-proxy\n    originRequest:\n      ipRules:\n"
          "        - allow: true\n",
          WR_ERR_CONFIG,
          "config.yml:5: ingress[0].originRequest.ipRules[0].prefix: no prefix provided");
  ing_err("ingress:\n  - service: http://a\n    originRequest:\n      access:\n"
          "        required: true\n        audTag: [abc]\n",
          WR_ERR_CONFIG,
          "config.yml:5: ingress[0].originRequest.access: access.TeamName cannot be blank when "
          "access.audTags are present");
  ing_err("warp-routing:\n  enabled: sure\ningress:\n  - service: http_status:404\n",
          WR_ERR_CONFIG,
          "config.yml:2: warp-routing.enabled: expected true or false, found \"sure\"");
  ing_err("warp-routing: true\ningress:\n  - service: http_status:404\n", WR_ERR_CONFIG,
          "config.yml:1: warp-routing: expected a map, found a scalar");
}

static void test_origin_request(void **state) {
  (void)state;
  char err[256];
  wr_ingress *ing = NULL;
  wr_config *cfg = unit_config_of("originRequest:\n"
                          "  connectTimeout: 1m30s\n"
                          "  noTLSVerify: true\n"
                          "  httpHostHeader: global.example\n"
                          "  ipRules:\n"
                          "    - prefix: 10.1.2.3/8\n"
                          "      ports: [443, 80]\n"
                          "      allow: true\n"
                          "  bogus: 1\n"
                          "ingress:\n"
                          "  - hostname: a\n"
                          "    service: http://a\n"
                          "    originRequest:\n"
                          "      connectTimeout: 5s\n"
                          "      noTLSVerify: false\n"
                          "      keepAliveConnections: 7\n"
                          "      proxyAddress: 0.0.0.0\n"
                          "      ipRules: []\n"
                          "      access: {required: true, teamName: team, audTag: [x, y]}\n"
                          "  - service: socks-proxy\n"
                          "    servce: typo\n"
                          "    originRequest:\n"
                          "      ipRules:\n"
                          "        - {prefix: 'fd00::1/64', allow: false}\n");
  assert_int_equal(wr_ingress_parse(cfg, &ing, err, sizeof(err)), 0);
  assert_int_equal(cfg->n_warnings, 2);
  assert_string_equal(cfg->warnings[0], "config.yml:9: originRequest: unknown key \"bogus\"; ignored");
  assert_string_equal(cfg->warnings[1], "config.yml:21: ingress[1]: unknown key \"servce\"; ignored");
  wr_config_free(cfg);

  /* Global block over cloudflared's defaults. */
  const wr_origin_request *d = &ing->defaults;
  assert_int_equal(d->connect_timeout_ns, 90 * SEC);
  assert_int_equal(d->tls_timeout_ns, 10 * SEC);
  assert_int_equal(d->tcp_keepalive_ns, 30 * SEC);
  assert_int_equal(d->keepalive_timeout_ns, 90 * SEC);
  assert_int_equal(d->keepalive_connections, 100);
  assert_string_equal(d->proxy_address, "127.0.0.1");
  assert_true(d->no_tls_verify);
  assert_string_equal(d->http_host_header, "global.example");
  assert_int_equal(d->n_ip_rules, 1);
  assert_string_equal(d->ip_rules[0].cidr, "10.0.0.0/8");
  assert_int_equal(d->ip_rules[0].n_ports, 2);
  assert_int_equal(d->ip_rules[0].ports[0], 80); /* sorted */
  assert_int_equal(d->ip_rules[0].ports[1], 443);

  /* Rule values over the global ones; an empty ipRules keeps the global. */
  const wr_origin_request *o = &ing->rules[0].origin;
  assert_int_equal(o->connect_timeout_ns, 5 * SEC);
  assert_false(o->no_tls_verify);
  assert_int_equal(o->keepalive_connections, 7);
  assert_string_equal(o->proxy_address, "0.0.0.0");
  assert_string_equal(o->http_host_header, "global.example");
  assert_string_equal(o->origin_server_name, "");
  assert_string_equal(o->ca_pool, "");
  assert_int_equal(o->n_ip_rules, 1);
  assert_true(o->access.required);
  assert_string_equal(o->access.team_name, "team");
  assert_int_equal(o->access.n_aud_tags, 2);
  assert_string_equal(o->access.aud_tags[1], "y");
  assert_true(o->set & WR_OR_CONNECT_TIMEOUT);

  const wr_origin_request *s = &ing->rules[1].origin;
  assert_int_equal(s->connect_timeout_ns, 90 * SEC);
  assert_int_equal(s->n_ip_rules, 1);
  assert_string_equal(s->ip_rules[0].cidr, "fd00::/64");
  assert_false(s->ip_rules[0].allow);

  /* ipRules evaluation. */
  uint8_t a4[4], a6[16];
  inet_pton(AF_INET, "10.9.9.9", a4);
  assert_true(wr_ip_rules_allowed(d->ip_rules, d->n_ip_rules, AF_INET, a4, 443, 0));
  assert_false(wr_ip_rules_allowed(d->ip_rules, d->n_ip_rules, AF_INET, a4, 22, 0));
  inet_pton(AF_INET, "11.0.0.1", a4);
  assert_false(wr_ip_rules_allowed(d->ip_rules, d->n_ip_rules, AF_INET, a4, 443, 0));
  assert_true(wr_ip_rules_allowed(d->ip_rules, d->n_ip_rules, AF_INET, a4, 443, 1));
  inet_pton(AF_INET6, "fd00::1234", a6);
  assert_false(wr_ip_rules_allowed(s->ip_rules, s->n_ip_rules, AF_INET6, a6, 80, 1));
  inet_pton(AF_INET6, "fd00:0:0:1::1", a6);
  assert_true(wr_ip_rules_allowed(s->ip_rules, s->n_ip_rules, AF_INET6, a6, 80, 1));
  wr_ingress_free(ing);

  /* Without any originRequest, every rule carries cloudflared's defaults. */
  ing = unit_ingress_of("ingress:\n  - service: http://x\n");
  o = &ing->rules[0].origin;
  assert_int_equal(o->connect_timeout_ns, 30 * SEC);
  assert_int_equal(o->tls_timeout_ns, 10 * SEC);
  assert_int_equal(o->tcp_keepalive_ns, 30 * SEC);
  assert_int_equal(o->keepalive_timeout_ns, 90 * SEC);
  assert_int_equal(o->keepalive_connections, 100);
  assert_false(o->no_happy_eyeballs);
  assert_false(o->no_tls_verify);
  assert_false(o->disable_chunked_encoding);
  assert_false(o->bastion_mode);
  assert_false(o->http2_origin);
  assert_string_equal(o->proxy_address, "127.0.0.1");
  assert_int_equal(o->proxy_port, 0);
  assert_string_equal(o->proxy_type, "");
  assert_int_equal(o->n_ip_rules, 0);
  assert_false(o->access.required);
  assert_int_equal(o->set, 0);
  wr_ingress_free(ing);
}

static void test_durations_in_rules(void **state) {
  (void)state;
  wr_ingress *ing = unit_ingress_of("warp-routing:\n  enabled: yes\n  connectTimeout: 2s\n"
                           "  tcpKeepAlive: 1m\n"
                           "ingress:\n  - service: http://x\n    originRequest:\n"
                           "      connectTimeout: 1m30s\n      tlsTimeout: 500ms\n"
                           "      tcpKeepAlive: 2h\n      keepAliveTimeout: 45\n");
  const wr_origin_request *o = &ing->rules[0].origin;
  assert_int_equal(o->connect_timeout_ns, 90 * SEC);
  assert_int_equal(o->tls_timeout_ns, SEC / 2);
  assert_int_equal(o->tcp_keepalive_ns, 7200 * SEC);
  assert_int_equal(o->keepalive_timeout_ns, 45 * SEC); /* a bare number is seconds */
  assert_true(ing->warp.enabled);
  assert_int_equal(ing->warp.connect_timeout_ns, 2 * SEC);
  assert_int_equal(ing->warp.tcp_keepalive_ns, 60 * SEC);
  wr_ingress_free(ing);
}

static void test_json_rules(void **state) {
  (void)state;
  char err[256];
  wr_config *cfg = NULL;
  wr_ingress *ing = NULL;
  const char *j = "{\"ingress\":[{\"hostname\":\"a.com\",\"service\":\"http://x:1\","
                  "\"originRequest\":{\"ConnectTimeout\":15,\"noTLSVerify\":true}},"
                  "{\"service\":\"http_status:404\"}],\"warp-routing\":{\"enabled\":true}}";
  assert_int_equal(wr_config_parse_json(j, strlen(j), "--json", &cfg, err, sizeof(err)), 0);
  assert_int_equal(wr_ingress_parse(cfg, &ing, err, sizeof(err)), 0);
  assert_int_equal(ing->rules[0].origin.connect_timeout_ns, 15 * SEC);
  assert_true(ing->rules[0].origin.no_tls_verify);
  assert_true(ing->warp.enabled);
  wr_ingress_free(ing);
  wr_config_free(cfg);

  j = "{\"ingress\":[{\"hostname\":\"a.com\",\"service\":\"http://x:1\"}]}";
  assert_int_equal(wr_config_parse_json(j, strlen(j), "--json", &cfg, err, sizeof(err)), 0);
  assert_int_equal(wr_ingress_parse(cfg, &ing, err, sizeof(err)), WR_ERR_CONFIG);
  assert_string_equal(err, "--json: ingress[0]: The last ingress rule must match all URLs (i.e. "
                           "it should not have a hostname or path filter)");
  wr_config_free(cfg);
}

static void test_from_cli(void **state) {
  wr_opts *o = *state;
  char err[256];
  wr_ingress *ing = NULL;

  /* Nothing set: every request gets 503. */
  assert_int_equal(wr_ingress_from_cli(o, &ing, err, sizeof(err)), 0);
  assert_int_equal(ing->n_rules, 1);
  assert_true(ing->from_cli);
  assert_int_equal(ing->rules[0].service.kind, WR_SVC_HTTP_STATUS);
  assert_int_equal(ing->rules[0].service.status, 503);
  assert_int_equal(wr_ingress_match(ing, "any", "/"), 0);
  wr_ingress_free(ing);

  /* --url without a scheme means http; the origin flags shape originRequest. */
  wr_opts_set(o, "url", "localhost:8080", WR_SRC_CLI);
  wr_opts_set(o, "http-host-header", "internal.example", WR_SRC_ENV);
  wr_opts_set(o, "no-tls-verify", "true", WR_SRC_CLI);
  assert_int_equal(wr_ingress_from_cli(o, &ing, err, sizeof(err)), 0);
  assert_int_equal(ing->rules[0].service.kind, WR_SVC_HTTP);
  assert_string_equal(ing->rules[0].service.display, "http://localhost:8080");
  assert_string_equal(ing->rules[0].origin.http_host_header, "internal.example");
  assert_true(ing->rules[0].origin.no_tls_verify);
  assert_null(ing->rules[0].hostname);
  wr_ingress_free(ing);

  /* --url keeps the scheme and host, drops a path (kind -1: not checked). */
  static const struct { const char *url, *display; int kind; } urls[] = {
      {"https://127.0.0.1:8443/app/", "https://127.0.0.1:8443", -1},
      {"ssh://127.0.0.1", "ssh://127.0.0.1:22", WR_SVC_STREAM},
      {"::1", "http://[::1]", -1},
  };
  for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
    wr_opts_set(o, "url", urls[i].url, WR_SRC_CLI);
    assert_int_equal(wr_ingress_from_cli(o, &ing, err, sizeof(err)), 0);
    if (urls[i].kind >= 0) assert_int_equal(ing->rules[0].service.kind, urls[i].kind);
    assert_string_equal(ing->rules[0].service.display, urls[i].display);
    wr_ingress_free(ing);
  }
  wr_opts_set(o, "url", "ftp://files", WR_SRC_CLI);
  assert_int_equal(wr_ingress_from_cli(o, &ing, err, sizeof(err)), WR_ERR_CONFIG);
  assert_null(ing);
  assert_string_equal(err, "--url: Currently Cloudflare Tunnel does not support ftp protocol.");

  /* --hello-world comes before --url. */
  wr_opts_set(o, "hello-world", "true", WR_SRC_CLI);
  assert_int_equal(wr_ingress_from_cli(o, &ing, err, sizeof(err)), 0);
  assert_int_equal(ing->rules[0].service.kind, WR_SVC_HELLO_WORLD);
  wr_ingress_free(ing);
  opts_fini(o);

  opts_init(o);
  wr_opts_set(o, "unix-socket", "/run/o.sock", WR_SRC_CLI);
  assert_int_equal(wr_ingress_from_cli(o, &ing, err, sizeof(err)), 0);
  assert_int_equal(ing->rules[0].service.kind, WR_SVC_UNIX);
  assert_string_equal(ing->rules[0].service.path, "/run/o.sock");
  assert_string_equal(ing->rules[0].service.display, "unix:/run/o.sock");
  wr_ingress_free(ing);
}

static void test_load(void **state) {
  wr_opts *o = *state;
  char err[256];
  wr_ingress *ing = NULL;
  wr_opts_set(o, "url", "http://localhost:1", WR_SRC_CLI);

  /* Config rules win over --url at run time (only `validate` complains). */
  wr_config *cfg = unit_config_of("ingress:\n  - service: http_status:418\n");
  assert_int_equal(wr_ingress_load(cfg, o, &ing, err, sizeof(err)), 0);
  assert_false(ing->from_cli);
  assert_int_equal(ing->rules[0].service.status, 418);
  wr_ingress_free(ing);
  wr_config_free(cfg);

  /* No rules in the config: the flags, with warp-routing from the file. */
  cfg = unit_config_of("warp-routing: {enabled: true}\n");
  assert_int_equal(wr_ingress_load(cfg, o, &ing, err, sizeof(err)), 0);
  assert_true(ing->from_cli);
  assert_string_equal(ing->rules[0].service.display, "http://localhost:1");
  assert_true(ing->warp.enabled);
  wr_ingress_free(ing);
  wr_config_free(cfg);

  /* No config at all. */
  assert_int_equal(wr_ingress_load(NULL, o, &ing, err, sizeof(err)), 0);
  assert_false(ing->warp.enabled);
  wr_ingress_free(ing);

  /* A broken config is an error, not a fallback. */
  cfg = unit_config_of("ingress:\n  - service: nope\n");
  assert_int_equal(wr_ingress_load(cfg, o, &ing, err, sizeof(err)), WR_ERR_CONFIG);
  assert_null(ing);
  wr_config_free(cfg);
}

static void test_local_config_json(void **state) {
  (void)state;
  wr_config *cfg;
  wr_ingress *ing = vector_ingress(&cfg);
  wr_opts o;
  opts_init(&o);
  wr_opts_set(&o, "protocol", "quic", WR_SRC_CLI);
  wr_opts_set(&o, "no-autoupdate", "true", WR_SRC_CONFIG);
  wr_opts_set(&o, "loglevel", "", WR_SRC_CLI); /* empty values are left out */
  char *json = wr_ingress_local_config_json(ing, &o);
  assert_string_equal(
      json,
      "{\"__configuration_flags\":{\"no-autoupdate\":\"true\",\"protocol\":\"quic\"},"
      "\"ingress\":[{\"hostname\":\"ws.example.test\",\"service\":\"http://127.0.0.1:9001\","
      "\"originRequest\":{}},{\"hostname\":\"app.example.test\",\"service\":"
      "\"http://127.0.0.1:9000\",\"originRequest\":{}},{\"service\":\"http_status:404\","
      "\"originRequest\":{}}],\"warp-routing\":{\"enabled\":true}}");
  free(json);
  opts_fini(&o);
  wr_ingress_free(ing);
  wr_config_free(cfg);

  /* Non-default values only, durations in seconds, Go's key order. */
  ing = unit_ingress_of("originRequest:\n  noTLSVerify: true\n"
               "warp-routing:\n  connectTimeout: 10s\n  tcpKeepAlive: 1500ms\n"
               "ingress:\n"
               "  - hostname: '*.example.com'\n"
               "    path: ^/api\n"
               "    service: https://localhost:8443\n"
               "    originRequest:\n"
               "      access: {required: true, teamName: t}\n"
               "      http2Origin: true\n"
               "      proxyType: socks\n"
               "      proxyPort: 1080\n"
               "      proxyAddress: 0.0.0.0\n"
               "      caPool: /ca.pem\n"
               "      keepAliveConnections: 100\n"
               "      connectTimeout: 1m\n"
               "      tlsTimeout: 10s\n"
               "      ipRules:\n"
               "        - {prefix: 192.168.0.0/16, ports: [22], allow: true}\n"
               "        - {prefix: 0.0.0.0/0}\n"
               "  - service: hello_world\n");
  json = wr_ingress_local_config_json(ing, NULL);
  assert_string_equal(
      json,
      "{\"ingress\":[{\"hostname\":\"*.example.com\",\"path\":\"^/api\",\"service\":"
      "\"https://localhost:8443\",\"originRequest\":{\"connectTimeout\":60,\"caPool\":\"/ca.pem\","
      "\"noTLSVerify\":true,\"proxyAddress\":\"0.0.0.0\",\"proxyPort\":1080,\"proxyType\":"
      "\"socks\",\"ipRules\":[{\"prefix\":\"192.168.0.0/16\",\"ports\":[22],\"allow\":true},"
      "{\"prefix\":\"0.0.0.0/0\",\"ports\":null,\"allow\":false}],\"http2Origin\":true,"
      "\"access\":{\"required\":true,\"teamName\":\"t\",\"audTag\":null}}},"
      "{\"service\":\"hello_world\",\"originRequest\":{\"noTLSVerify\":true}}],"
      "\"warp-routing\":{\"enabled\":false,\"connectTimeout\":10,\"tcpKeepAlive\":1.5}}");
  free(json);
  wr_ingress_free(ing);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_vector_rules, test_matching, test_services,
                             test_validation_errors, test_origin_request, test_durations_in_rules,
                             test_json_rules),
                  UNIT_FIXTURE(cli_setup, cli_teardown, test_from_cli, test_load),
                  UNIT_TESTS(test_local_config_json));
}
