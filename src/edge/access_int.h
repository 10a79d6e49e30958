/* Internals of edge/access.h shared by access.c (keys, the gate) and
 * access_login.c (the sign-in pages). */
#ifndef WR_EDGE_ACCESS_INT_H
#define WR_EDGE_ACCESS_INT_H
#include <jansson.h>

#include "edge/access.h"
#include "edge/throttle.h"
#include "proto/jwt.h"

#define WR__ACCESS_CACHE_SLOTS 64

typedef struct wr__access_host {
  char host[WR_STORE_HOST_MAX + 1];
  json_t *doc; /* wr_store_access_for_host's answer */
  uint64_t expires;
} wr__access_host;

struct wr_access {
  uv_loop_t *loop;
  wr_store *store;
  char *team;
  wr_jwt_key *keys[WR_JWKS_MAX_KEYS]; /* [0] signs */
  size_t nkeys;
  wr_jwks *jwks;
  char *certs;
  uint64_t keys_at; /* ms: when the keys were read */
  wr__access_host cache[WR__ACCESS_CACHE_SLOTS];
  wr_access_stats stats;
  wr_ratelimit audit_rl;
  wr_throttle *signin_rl; /* failed sign-ins per email */
  unsigned pending;       /* sign-ins on the worker pool */
  int freeing;            /* wr_access_free ran; the last job frees */
};

uint64_t wr__access_now_ms(const wr_access *a);
/* Re-reads the keys when WR_ACCESS_RELOAD_MS passed. */
void wr__access_keys_fresh(wr_access *a);
/* The apps of |host| (cached); NULL on a store error. Borrowed. */
json_t *wr__access_host_doc(wr_access *a, const char *host);
/* Signs an app token for |app| with identity claims |ident| (stolen). */
char *wr__access_sign(wr_access *a, json_t *app, json_t *ident);
/* An audit row within the budget. */
void wr__access_audit(wr_access *a, const char *account, const char *action, const char *target, json_t *detail);
/* Session length of an app in seconds (its session_duration; 24h default). */
int64_t wr__access_session_s(json_t *app);
/* Really frees |a| (after the last sign-in job). */
void wr__access_destroy(wr_access *a);

#endif
