/* Connector-side Access token checks; see access_verify.h. */
#include "connector/access_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/http_client.h"
#include "net/owner.h"
#include "proto/jwt.h"

typedef struct team {
  struct team *next;
  char *name, *url, *issuer;
  wr_jwks *jwks;      /* NULL until a fetch succeeded */
  int fetching;
  uint64_t fetched_at; /* ms of the last fetch start */
} team;

struct wr_access_verifier {
  uv_loop_t *loop;
  team *teams;
  wr_owner fetches; /* holds the key fetches on the worker pool; its release frees |v| */
};

typedef struct fetch_job {
  uv_work_t w;
  wr_access_verifier *v;
  team *t;
  wr_jwks *jwks;
  char err[256];
} fetch_job;

static void verifier_release(wr_owner *o) {
  wr_access_verifier *v = WR_OWNER_OBJ(o, wr_access_verifier, fetches);
  team *t, *n;
  for (t = v->teams; t; t = n) {
    n = t->next;
    wr_jwks_free(t->jwks);
    free(t->name);
    free(t->url);
    free(t->issuer);
    free(t);
  }
  free(v);
}

wr_access_verifier *wr_access_verifier_new(uv_loop_t *loop) {
  wr_access_verifier *v = wr_xcalloc(1, sizeof(*v));
  v->loop = loop;
  wr_owner_init(&v->fetches, verifier_release);
  return v;
}

void wr_access_verifier_free(wr_access_verifier *v) {
  if (!v) return;
  wr_owner_close(&v->fetches); /* frees |v| now or after the last fetch */
}

static team *team_get(wr_access_verifier *v, const char *name) {
  char buf[512];
  for (team *t = v->teams; t; t = t->next)
    if (strcmp(t->name, name) == 0) return t;
  team *t = wr_xcalloc(1, sizeof(*t));
  const char *iss = getenv("WARREN_ACCESS_ISSUER"), *url = getenv("WARREN_ACCESS_CERTS_URL");
  t->name = wr_xstrdup(name);
  snprintf(buf, sizeof(buf), "https://%s.cloudflareaccess.com", name);
  t->issuer = wr_xstrdup(iss && *iss ? iss : buf);
  snprintf(buf, sizeof(buf), "%s/cdn-cgi/access/certs", t->issuer);
  t->url = wr_xstrdup(url && *url ? url : buf);
  t->next = v->teams;
  v->teams = t;
  return t;
}

/* On the worker pool: a blocking one-shot HTTP client of its own. */
static void fetch_work(uv_work_t *w) {
  fetch_job *j = w->data;
  wr_http_request rq = {.method = "GET", .url = j->t->url, .timeout_ms = 10000, .max_body = 1u << 20};
  wr_http_response rs;
  memset(&rs, 0, sizeof(rs));
  if (wr_http_do(&rq, &rs, j->err, sizeof(j->err)) != WR_OK) {
    wr_http_response_free(&rs);
    return;
  }
  if (rs.status != 200) snprintf(j->err, sizeof(j->err), "%s answered %d", j->t->url, rs.status);
  else if (wr_jwks_parse((const char *)rs.body, rs.body_len, &j->jwks) != WR_OK)
    snprintf(j->err, sizeof(j->err), "%s is not a JWK set", j->t->url);
  wr_http_response_free(&rs);
}

static void fetch_done(uv_work_t *w, int status) {
  fetch_job *j = w->data;
  wr_access_verifier *v = j->v;
  j->t->fetching = 0;
  if (j->jwks && !v->fetches.closing) {
    wr_jwks_free(j->t->jwks);
    j->t->jwks = j->jwks;
    wr_info("access: %zu key(s) of team %s from %s", wr_jwks_count(j->jwks), j->t->name, j->t->url);
  } else {
    wr_jwks_free(j->jwks);
    if (!v->fetches.closing) wr_warn("access: fetching the keys of team %s failed: %s", j->t->name, status ? "cancelled" : j->err);
  }
  free(j);
  wr_owner_drop(&v->fetches); /* may free |v| */
}

static void fetch(wr_access_verifier *v, team *t) {
  uint64_t now = uv_now(v->loop);
  if (t->fetching || (t->fetched_at && now - t->fetched_at < WR_ACCESS_VERIFY_REFETCH_MS)) return;
  fetch_job *j = wr_xcalloc(1, sizeof(*j));
  j->v = v;
  j->t = t;
  j->w.data = j;
  t->fetched_at = now;
  if (uv_queue_work(v->loop, &j->w, fetch_work, fetch_done) != 0) {
    free(j);
    return;
  }
  t->fetching = 1;
  wr_owner_hold(&v->fetches);
}

int wr_access_verifier_check(wr_access_verifier *v, const wr_access_config *acc, const char *token, size_t len,
                             char *err, size_t errlen) {
  if (!token || !len) {
    snprintf(err, errlen, "no Cf-Access-Jwt-Assertion");
    return WR_ERR_DENIED;
  }
  team *t = team_get(v, acc->team_name);
  if (!t->jwks) {
    fetch(v, t);
    snprintf(err, errlen, "the keys of team %s are not loaded yet", t->name);
    return WR_ERR_DENIED;
  }
  wr_jwt_expect w = {.now = (int64_t)time(NULL), .auds = acc->aud_tags, .naud = acc->n_aud_tags, .iss = t->issuer};
  int rv = wr_jwt_verify(t->jwks, token, len, &w, NULL, err, errlen);
  if (rv == WR_ERR_NOTFOUND) fetch(v, t); /* a new key, maybe: refresh */
  return rv == WR_OK ? WR_OK : WR_ERR_DENIED;
}
