/* Access policy evaluation: which visitor may reach an Access application.
 * Pure: no store, no clock, no I/O; the caller passes the app's policies and
 * the account's groups as the JSON the API stores (docs/access.md).
 *
 * A policy is {"id", "decision", "precedence", "include", "exclude",
 * "require"}; each of the three rule lists holds rules in Cloudflare's shape:
 *   {"email":{"email":"a@example.com"}}        the signed-in user's email
 *   {"email_domain":{"domain":"example.com"}}  the part after '@'
 *   {"everyone":{}}                            any visitor (see below)
 *   {"ip":{"ip":"192.0.2.0/24"}}               the visitor's address (v4/v6 CIDR
 *                                              or a single address)
 *   {"service_token":{"token_id":"<id>"}}      that service token
 *   {"any_valid_service_token":{}}             any valid service token
 *   {"group":{"id":"<group id>"}}              the group's own include/
 *                                              exclude/require match
 * Emails and domains compare without regard to ASCII case.
 *
 * A policy matches when at least one include rule matches (OR), every
 * require rule matches (AND) and no exclude rule matches (NOT); an empty
 * include list never matches.
 *
 * Order, as Cloudflare documents it: bypass policies first, then
 * non_identity (Service Auth), then deny, then allow; within one decision,
 * by ascending precedence (then list order). The first matching policy
 * decides. Bypass and non_identity policies are checked for every visitor,
 * anonymous ones included ("everyone" and "ip" match them). Deny and allow
 * policies need an identity (a signed-in user or a service token): an
 * anonymous visitor who matched neither bypass nor non_identity is sent to
 * sign in. An identified visitor whom no policy allowed is denied. */
#ifndef WR_EDGE_ACCESS_POLICY_H
#define WR_EDGE_ACCESS_POLICY_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Who is asking. */
typedef struct wr_access_who {
  const char *email;    /* a signed-in user, or NULL */
  const char *token_id; /* a valid service token's id, or NULL */
  int family;           /* AF_INET or AF_INET6; 0: unknown address */
  uint8_t ip[16];       /* 4 or 16 bytes */
} wr_access_who;

enum wr_access_verdict {
  WR_ACCESS_BYPASS = 1,   /* served without any check or token */
  WR_ACCESS_ALLOW,        /* an allow or non_identity policy matched */
  WR_ACCESS_DENY,         /* a deny policy matched, or none allowed */
  WR_ACCESS_NEED_LOGIN    /* anonymous and nothing let it through */
};

typedef struct wr_access_result {
  int verdict;              /* enum wr_access_verdict */
  char policy_id[64];       /* the deciding policy ("" when none) */
  char decision[16];        /* its decision, or "" */
} wr_access_result;

/* Checks one rule list (|kind| "include", "exclude" or "require" for the
 * message). Returns 0, or -1 with a sentence in |err|. */
int wr_access_rules_check(const json_t *rules, const char *kind, char *err, size_t errlen);
/* 1 if |d| is allow, deny, non_identity or bypass. */
int wr_access_decision_valid(const char *d);

/* Evaluates |policies| (a JSON array of policy objects, in any order) for
 * |who|; |groups| is an object from group id to {include, exclude, require}
 * (NULL: no groups; a rule naming a missing group does not match). Policies
 * with malformed rules never match. */
void wr_access_evaluate(const json_t *policies, const json_t *groups, const wr_access_who *who,
                        wr_access_result *out);

/* Parses an address or CIDR ("10.0.0.0/8", "2001:db8::/32", "192.0.2.1")
 * into |family|, |addr| and |bits|. Returns 0 or -1. */
int wr_access_parse_cidr(const char *s, int *family, uint8_t addr[16], unsigned *bits);

#endif
