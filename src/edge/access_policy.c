/* Access policy evaluation; see access_policy.h. */
#include "edge/access_policy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Groups may name groups; deeper nesting (or a cycle) does not match. */
#define GROUP_DEPTH_MAX 4

int wr_access_parse_cidr(const char *s, int *family, uint8_t addr[16], unsigned *bits) {
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  if (n == 0 || n >= sizeof(buf)) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  memset(addr, 0, 16);
  if (inet_pton(AF_INET, buf, addr) == 1) *family = AF_INET;
  else if (inet_pton(AF_INET6, buf, addr) == 1) *family = AF_INET6;
  else return -1;
  unsigned max = *family == AF_INET ? 32 : 128;
  *bits = max;
  if (slash) {
    char *end;
    if (!slash[1] || slash[1] < '0' || slash[1] > '9') return -1;
    unsigned long b = strtoul(slash + 1, &end, 10);
    if (*end || b > max) return -1;
    *bits = (unsigned)b;
  }
  return 0;
}

static int ip_in(const wr_access_who *who, const char *cidr) {
  int fam;
  uint8_t net[16];
  unsigned bits;
  if (!who->family || wr_access_parse_cidr(cidr, &fam, net, &bits) != 0 || fam != who->family) return 0;
  for (unsigned i = 0; i < bits; i++) {
    unsigned byte = i / 8, mask = 0x80u >> (i % 8);
    if ((net[byte] & mask) != (who->ip[byte] & mask)) return 0;
  }
  return 1;
}

int wr_access_decision_valid(const char *d) {
  return d && (!strcmp(d, "allow") || !strcmp(d, "deny") || !strcmp(d, "non_identity") || !strcmp(d, "bypass"));
}

/* The string member |key| of the object rule[name]; NULL if absent. */
static const char *rule_str(json_t *body, const char *key) {
  json_t *v = json_object_get(body, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static int check_rule(json_t *r, char *err, size_t errlen) {
  const char *name;
  json_t *body;
  if (!json_is_object(r) || json_object_size(r) != 1) {
    snprintf(err, errlen, "each rule is an object with one member, such as {\"email\":{\"email\":\"a@example.com\"}}");
    return -1;
  }
  json_object_foreach(r, name, body) {
    int fam;
    uint8_t a[16];
    unsigned bits;
    const char *v = NULL;
    if (!json_is_object(body)) break;
    if (!strcmp(name, "everyone") || !strcmp(name, "any_valid_service_token")) return 0;
    if (!strcmp(name, "email")) v = rule_str(body, "email");
    else if (!strcmp(name, "email_domain")) v = rule_str(body, "domain");
    else if (!strcmp(name, "service_token")) v = rule_str(body, "token_id");
    else if (!strcmp(name, "group")) v = rule_str(body, "id");
    else if (!strcmp(name, "ip")) {
      v = rule_str(body, "ip");
      if (v && wr_access_parse_cidr(v, &fam, a, &bits) != 0) {
        snprintf(err, errlen, "rule ip: %.64s is not an address or CIDR", v);
        return -1;
      }
    } else {
      snprintf(err, errlen,
               "unknown rule %.40s (known: email, email_domain, everyone, ip, service_token, "
               "any_valid_service_token, group)", name);
      return -1;
    }
    if (!v || !*v) {
      snprintf(err, errlen, "rule %s needs its value (for example {\"%s\":{\"%s\":\"...\"}})", name, name,
               !strcmp(name, "email") ? "email" : !strcmp(name, "email_domain") ? "domain"
               : !strcmp(name, "service_token") ? "token_id" : !strcmp(name, "group") ? "id" : "ip");
      return -1;
    }
    return 0;
  }
  snprintf(err, errlen, "a rule's value must be an object");
  return -1;
}

int wr_access_rules_check(const json_t *rules, const char *kind, char *err, size_t errlen) {
  size_t i;
  json_t *r;
  char sub[256];
  if (!rules || json_is_null(rules)) return 0;
  if (!json_is_array(rules)) {
    snprintf(err, errlen, "%s must be an array of rules", kind);
    return -1;
  }
  if (json_array_size(rules) > 256) {
    snprintf(err, errlen, "%s has more than 256 rules", kind);
    return -1;
  }
  json_array_foreach((json_t *)rules, i, r) {
    if (check_rule(r, sub, sizeof(sub)) != 0) {
      snprintf(err, errlen, "%s[%zu]: %s", kind, i, sub);
      return -1;
    }
  }
  return 0;
}

static int set_match(const json_t *rules, const json_t *groups, const wr_access_who *who, int depth, int empty);

static int group_match(const json_t *groups, const char *id, const wr_access_who *who, int depth) {
  json_t *g = groups ? json_object_get(groups, id) : NULL;
  if (!json_is_object(g) || depth >= GROUP_DEPTH_MAX) return 0;
  return set_match(json_object_get(g, "include"), groups, who, depth + 1, 0) &&
         set_match(json_object_get(g, "require"), groups, who, depth + 1, 1) &&
         !set_match(json_object_get(g, "exclude"), groups, who, depth + 1, -1);
}

static int email_domain_is(const char *email, const char *domain) {
  const char *at = email ? strrchr(email, '@') : NULL;
  if (domain[0] == '@') domain++;
  return at && strcasecmp(at + 1, domain) == 0;
}

/* 1 if the single rule |r| matches |who|. */
static int rule_match(json_t *r, const json_t *groups, const wr_access_who *who, int depth) {
  const char *name;
  json_t *body;
  json_object_foreach(r, name, body) {
    if (!strcmp(name, "everyone")) return 1;
    if (!strcmp(name, "any_valid_service_token")) return who->token_id != NULL;
    const char *v = NULL;
    if (!strcmp(name, "email")) return who->email && (v = rule_str(body, "email")) && !strcasecmp(who->email, v);
    if (!strcmp(name, "email_domain")) return (v = rule_str(body, "domain")) && email_domain_is(who->email, v);
    if (!strcmp(name, "service_token"))
      return who->token_id && (v = rule_str(body, "token_id")) && !strcmp(who->token_id, v);
    if (!strcmp(name, "ip")) return (v = rule_str(body, "ip")) && ip_in(who, v);
    if (!strcmp(name, "group")) return (v = rule_str(body, "id")) && group_match(groups, v, who, depth);
    return 0;
  }
  return 0;
}

/* The rule list's verdict: |mode| 0 = any (include), 1 = all (require),
 * -1 = any (exclude). An absent or empty list: include no, require yes,
 * exclude no. */
static int set_match(const json_t *rules, const json_t *groups, const wr_access_who *who, int depth, int mode) {
  size_t i;
  json_t *r;
  if (!json_is_array(rules) || json_array_size(rules) == 0) return mode == 1;
  json_array_foreach((json_t *)rules, i, r) {
    int m = json_is_object(r) && rule_match(r, groups, who, depth);
    if (mode == 1 && !m) return 0;
    if (mode != 1 && m) return 1;
  }
  return mode == 1;
}

static int policy_match(json_t *p, const json_t *groups, const wr_access_who *who) {
  char err[8];
  json_t *inc = json_object_get(p, "include"), *req = json_object_get(p, "require"),
         *exc = json_object_get(p, "exclude");
  /* A malformed policy (stored before a check existed, or edited in the
   * database) never lets anyone in. */
  if (wr_access_rules_check(inc, "include", err, sizeof(err)) || wr_access_rules_check(req, "require", err, sizeof(err)) ||
      wr_access_rules_check(exc, "exclude", err, sizeof(err)))
    return 0;
  return set_match(inc, groups, who, 0, 0) && set_match(req, groups, who, 0, 1) &&
         !set_match(exc, groups, who, 0, -1);
}

static json_int_t precedence(json_t *p) {
  json_t *v = json_object_get(p, "precedence");
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* The first matching policy of decision |d| in precedence order, or NULL. */
static json_t *first_match(const json_t *policies, const char *d, const json_t *groups, const wr_access_who *who) {
  json_t *best = NULL, *p;
  size_t i;
  json_array_foreach((json_t *)policies, i, p) {
    json_t *dj = json_object_get(p, "decision");
    if (!json_is_string(dj) || strcmp(json_string_value(dj), d) != 0) continue;
    if (best && precedence(p) >= precedence(best)) continue;
    if (policy_match(p, groups, who)) best = p;
  }
  return best;
}

static void set_result(wr_access_result *out, int verdict, json_t *p) {
  out->verdict = verdict;
  json_t *id = p ? json_object_get(p, "id") : NULL, *d = p ? json_object_get(p, "decision") : NULL;
  snprintf(out->policy_id, sizeof(out->policy_id), "%s", json_is_string(id) ? json_string_value(id) : "");
  snprintf(out->decision, sizeof(out->decision), "%s", json_is_string(d) ? json_string_value(d) : "");
}

void wr_access_evaluate(const json_t *policies, const json_t *groups, const wr_access_who *who,
                        wr_access_result *out) {
  json_t *p;
  memset(out, 0, sizeof(*out));
  if (!json_is_array(policies)) policies = NULL;
  if (policies && (p = first_match(policies, "bypass", groups, who))) return set_result(out, WR_ACCESS_BYPASS, p);
  if (policies && (p = first_match(policies, "non_identity", groups, who))) return set_result(out, WR_ACCESS_ALLOW, p);
  if (!who->email && !who->token_id) return set_result(out, WR_ACCESS_NEED_LOGIN, NULL);
  if (policies && (p = first_match(policies, "deny", groups, who))) return set_result(out, WR_ACCESS_DENY, p);
  if (policies && (p = first_match(policies, "allow", groups, who))) return set_result(out, WR_ACCESS_ALLOW, p);
  set_result(out, WR_ACCESS_DENY, NULL);
}
