/* Access policy evaluation (src/edge/access_policy.c): Cloudflare's order
 * (bypass, non_identity, deny, allow; precedence within one decision),
 * include OR / require AND / exclude NOT as a truth table, each rule type,
 * groups (nested, missing, cyclic) and the rule checker. */
#include "unit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "edge/access_policy.h"

static json_t *J(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
  if (!j) fail_msg("bad JSON in the test: %s: %s", text, e.text);
  return j;
}

static wr_access_who user(const char *email, const char *ip) {
  wr_access_who w = {.email = email};
  if (ip && inet_pton(AF_INET, ip, w.ip) == 1) w.family = AF_INET;
  else if (ip && inet_pton(AF_INET6, ip, w.ip) == 1) w.family = AF_INET6;
  return w;
}

static int eval(const char *policies, const char *groups, wr_access_who w, char *pid) {
  json_t *p = J(policies), *g = groups ? J(groups) : NULL;
  wr_access_result r;
  wr_access_evaluate(p, g, &w, &r);
  if (pid) strcpy(pid, r.policy_id);
  json_decref(p);
  json_decref(g);
  return r.verdict;
}

static void test_truth_table(void **state) {
  (void)state;
  /* include: a OR b; require: c; exclude: d. Identity flags as emails of
   * domains: a.test, b.test; require matches when the ip is in 10/8;
   * exclude when the ip is 10.0.0.66. */
  const char *pol = "[{\"id\":\"p\",\"decision\":\"allow\","
                    "\"include\":[{\"email_domain\":{\"domain\":\"a.test\"}},{\"email\":{\"email\":\"x@b.test\"}}],"
                    "\"require\":[{\"ip\":{\"ip\":\"10.0.0.0/8\"}}],"
                    "\"exclude\":[{\"ip\":{\"ip\":\"10.0.0.66\"}}]}]";
  struct {
    const char *email, *ip;
    int want;
  } rows[] = {
      {"u@a.test", "10.1.2.3", WR_ACCESS_ALLOW},   /* include a, require, not excluded */
      {"X@B.test", "10.1.2.3", WR_ACCESS_ALLOW},   /* include b (case-insensitive) */
      {"y@b.test", "10.1.2.3", WR_ACCESS_DENY},    /* neither include */
      {"u@a.test", "192.0.2.1", WR_ACCESS_DENY},   /* require fails */
      {"u@a.test", "10.0.0.66", WR_ACCESS_DENY},   /* excluded */
      {"u@a.test.evil", "10.1.2.3", WR_ACCESS_DENY}, /* domain is not a suffix match */
      {"u@sub.a.test", "10.1.2.3", WR_ACCESS_DENY},
      {NULL, "10.1.2.3", WR_ACCESS_NEED_LOGIN},    /* anonymous */
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    int got = eval(pol, NULL, user(rows[i].email, rows[i].ip), NULL);
    if (got != rows[i].want) fail_msg("row %zu (%s, %s): verdict %d, want %d", i, rows[i].email, rows[i].ip, got, rows[i].want);
  }
}

static void test_order(void **state) {
  char pid[64];
  (void)state;
  /* Deny beats allow whatever the precedence; bypass beats deny. */
  const char *pol = "[{\"id\":\"allow1\",\"decision\":\"allow\",\"precedence\":1,\"include\":[{\"everyone\":{}}]},"
                    "{\"id\":\"deny5\",\"decision\":\"deny\",\"precedence\":5,\"include\":[{\"email\":{\"email\":\"bad@x.test\"}}]},"
                    "{\"id\":\"bypass9\",\"decision\":\"bypass\",\"precedence\":9,\"include\":[{\"ip\":{\"ip\":\"192.0.2.0/24\"}}]}]";
  assert_int_equal(eval(pol, NULL, user("ok@x.test", "198.51.100.1"), pid), WR_ACCESS_ALLOW);
  assert_string_equal(pid, "allow1");
  assert_int_equal(eval(pol, NULL, user("bad@x.test", "198.51.100.1"), pid), WR_ACCESS_DENY);
  assert_string_equal(pid, "deny5");
  assert_int_equal(eval(pol, NULL, user("bad@x.test", "192.0.2.7"), pid), WR_ACCESS_BYPASS);
  assert_string_equal(pid, "bypass9");
  /* Bypass needs no identity at all. */
  assert_int_equal(eval(pol, NULL, user(NULL, "192.0.2.7"), NULL), WR_ACCESS_BYPASS);
  assert_int_equal(eval(pol, NULL, user(NULL, "198.51.100.1"), NULL), WR_ACCESS_NEED_LOGIN);
  /* Within one decision, the lower precedence decides. */
  const char *two = "[{\"id\":\"b\",\"decision\":\"allow\",\"precedence\":2,\"include\":[{\"everyone\":{}}]},"
                    "{\"id\":\"a\",\"decision\":\"allow\",\"precedence\":1,\"include\":[{\"everyone\":{}}]}]";
  assert_int_equal(eval(two, NULL, user("u@x.test", NULL), pid), WR_ACCESS_ALLOW);
  assert_string_equal(pid, "a");
  /* No policy at all: identified visitors are denied. */
  assert_int_equal(eval("[]", NULL, user("u@x.test", NULL), pid), WR_ACCESS_DENY);
  assert_string_equal(pid, "");
}

static void test_service_tokens(void **state) {
  (void)state;
  const char *pol = "[{\"id\":\"s\",\"decision\":\"non_identity\",\"include\":[{\"service_token\":{\"token_id\":\"t1\"}}]},"
                    "{\"id\":\"any\",\"decision\":\"allow\",\"include\":[{\"any_valid_service_token\":{}}],"
                    "\"exclude\":[{\"service_token\":{\"token_id\":\"t3\"}}]}]";
  wr_access_who w = {.token_id = "t1"};
  assert_int_equal(eval(pol, NULL, w, NULL), WR_ACCESS_ALLOW);
  w.token_id = "t2";
  assert_int_equal(eval(pol, NULL, w, NULL), WR_ACCESS_ALLOW); /* via any_valid_service_token */
  w.token_id = "t3";
  assert_int_equal(eval(pol, NULL, w, NULL), WR_ACCESS_DENY);
  /* A user does not match token rules. */
  assert_int_equal(eval(pol, NULL, user("u@x.test", NULL), NULL), WR_ACCESS_DENY);
  assert_int_equal(eval(pol, NULL, user(NULL, NULL), NULL), WR_ACCESS_NEED_LOGIN);
}

static void test_groups(void **state) {
  (void)state;
  const char *groups = "{\"g1\":{\"include\":[{\"email_domain\":{\"domain\":\"corp.test\"}}],"
                       "\"exclude\":[{\"email\":{\"email\":\"intern@corp.test\"}}]},"
                       "\"g2\":{\"include\":[{\"group\":{\"id\":\"g1\"}}]},"
                       "\"loop\":{\"include\":[{\"group\":{\"id\":\"loop\"}}]}}";
  const char *pol = "[{\"id\":\"p\",\"decision\":\"allow\",\"include\":[{\"group\":{\"id\":\"g2\"}}]}]";
  assert_int_equal(eval(pol, groups, user("a@corp.test", NULL), NULL), WR_ACCESS_ALLOW);
  assert_int_equal(eval(pol, groups, user("intern@corp.test", NULL), NULL), WR_ACCESS_DENY);
  assert_int_equal(eval(pol, groups, user("a@other.test", NULL), NULL), WR_ACCESS_DENY);
  const char *lp = "[{\"id\":\"p\",\"decision\":\"allow\",\"include\":[{\"group\":{\"id\":\"loop\"}}]}]";
  assert_int_equal(eval(lp, groups, user("a@corp.test", NULL), NULL), WR_ACCESS_DENY);
  const char *missing = "[{\"id\":\"p\",\"decision\":\"allow\",\"include\":[{\"group\":{\"id\":\"nope\"}}]}]";
  assert_int_equal(eval(missing, groups, user("a@corp.test", NULL), NULL), WR_ACCESS_DENY);
  assert_int_equal(eval(missing, NULL, user("a@corp.test", NULL), NULL), WR_ACCESS_DENY);
}

static void test_ipv6_and_malformed(void **state) {
  (void)state;
  const char *pol = "[{\"id\":\"p\",\"decision\":\"allow\",\"include\":[{\"ip\":{\"ip\":\"2001:db8::/32\"}}]}]";
  assert_int_equal(eval(pol, NULL, user("u@x.test", "2001:db8:1::5"), NULL), WR_ACCESS_ALLOW);
  assert_int_equal(eval(pol, NULL, user("u@x.test", "2001:db9::5"), NULL), WR_ACCESS_DENY);
  assert_int_equal(eval(pol, NULL, user("u@x.test", "10.0.0.1"), NULL), WR_ACCESS_DENY);
  /* A policy with a malformed rule never matches, even with everyone. */
  const char *bad = "[{\"id\":\"p\",\"decision\":\"allow\",\"include\":[{\"everyone\":{}},{\"ip\":{\"ip\":\"nope\"}}]}]";
  assert_int_equal(eval(bad, NULL, user("u@x.test", NULL), NULL), WR_ACCESS_DENY);
  /* Empty include matches nobody. */
  const char *empty = "[{\"id\":\"p\",\"decision\":\"allow\",\"include\":[]}]";
  assert_int_equal(eval(empty, NULL, user("u@x.test", NULL), NULL), WR_ACCESS_DENY);
}

static void test_rules_check(void **state) {
  char err[256];
  (void)state;
  const char *good[] = {"[{\"email\":{\"email\":\"a@b\"}},{\"everyone\":{}},{\"ip\":{\"ip\":\"::1\"}},"
                        "{\"group\":{\"id\":\"g\"}},{\"any_valid_service_token\":{}},"
                        "{\"service_token\":{\"token_id\":\"t\"}},{\"email_domain\":{\"domain\":\"b\"}}]",
                        "[]", "null"};
  for (size_t i = 0; i < 3; i++) {
    json_t *j = J(good[i]);
    assert_int_equal(wr_access_rules_check(j, "include", err, sizeof(err)), 0);
    json_decref(j);
  }
  const char *bad[] = {"{}", "[1]", "[{}]", "[{\"email\":{}}]", "[{\"email\":\"a@b\"}]", "[{\"ip\":{\"ip\":\"1.2.3.4/33\"}}]",
                       "[{\"magic\":{}}]", "[{\"email\":{\"email\":\"a\"},\"everyone\":{}}]", "[{\"ip\":{\"ip\":\"1.2.3.4/\"}}]"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *j = J(bad[i]);
    if (wr_access_rules_check(j, "include", err, sizeof(err)) == 0) fail_msg("accepted %s", bad[i]);
    json_decref(j);
  }
  assert_true(wr_access_decision_valid("non_identity"));
  assert_false(wr_access_decision_valid("Allow"));
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_TESTS(test_truth_table, test_order, test_service_tokens, test_groups,
                             test_ipv6_and_malformed, test_rules_check));
}
