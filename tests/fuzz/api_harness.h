/* What the two REST API fuzz targets (fuzz_api.c, fuzz_api_body.c) share:
 * the recorded answer and a store with one account, zone, user, API token
 * and tunnel (and, when asked, a virtual network) behind a wr_api.
 *
 * The HTTP server is replaced by the wr_httpd_respond(_simple) below, which
 * record the answer (the real ones need a connection). This works because
 * nothing these targets link pulls net/httpd.o out of libwarren.a; should
 * that change, the link fails with duplicate symbols rather than silently.
 * The store lives in a mkdtemp directory under /dev/shm (else /tmp); the
 * target recreates it now and then (harness_store_close + _open) so it does
 * not grow without bound, and harness_at_exit removes it.
 *
 * Header-only on purpose: each fuzz target is one translation unit linked
 * against libwarren.a, and this is test scaffolding, not library code. */
#ifndef WR_FUZZ_API_HARNESS_H
#define WR_FUZZ_API_HARNESS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge/api.h"
#include "edge/store.h"
#include "lib/err.h"
#include "net/httpd.h"
#include "fuzz.h"

/* ---- the answer ---- */

static const wr_httpd_req *expect_req;
static int answers, status;
static char *answer;
static size_t answer_len;

int wr_httpd_respond(wr_httpd_req *req, int st, const wr_http_header *hdrs, size_t n,
                     const void *body, size_t body_len) {
  CHECK(req == expect_req);
  answers++;
  status = st;
  CHECK(n == 0 || hdrs);
  free(answer);
  answer = malloc(body_len + 1);
  CHECK(answer);
  if (body_len) memcpy(answer, body, body_len);
  answer[body_len] = '\0';
  answer_len = body_len;
  return WR_OK;
}

int wr_httpd_respond_simple(wr_httpd_req *req, int st, const char *content_type, const void *body,
                            size_t body_len) {
  wr_http_header h = {"Content-Type", 12, content_type, content_type ? strlen(content_type) : 0};
  return wr_httpd_respond(req, st, &h, content_type ? 1 : 0, body, body_len);
}

/* ---- the store ---- */

/* What differs between the targets. */
typedef struct harness_opts {
  const char *name;       /* names the temporary directory */
  size_t max_tunnels, max_routes;
  int with_vnet;          /* also create a virtual network "lab" */
  int no_token_throttle;  /* inputs come from one source and most tokens are
                             invalid: with the default throttle every input
                             after the tenth would stop at 429 */
} harness_opts;

static char dir[64], dbpath[128];
static wr_store *store;
static wr_api *api;
static wr_account account;
static wr_zone zone;
static wr_tunnel tunnel;
static wr_vnet vnet;
static char token[WR_STORE_TOKEN_LEN + 1];

static void harness_store_close(void) {
  char p[160];
  wr_api_free(api);
  wr_store_close(store);
  api = NULL;
  store = NULL;
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof(p), "%s%s", dbpath, suffix[i]);
    unlink(p);
  }
}

static void harness_store_open(const harness_opts *o) {
  char err[256];
  wr_user user;
  wr_api_token tok;
  if (!dir[0]) {
    snprintf(dir, sizeof(dir), "%s/wr-%s-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             o->name);
    CHECK(mkdtemp(dir));
    snprintf(dbpath, sizeof(dbpath), "%s/warren.db", dir);
  }
  CHECK(wr_store_open(dbpath, WR_STORE_CREATE, &store, err, sizeof(err)) == WR_OK);
  CHECK(wr_store_account_create(store, "fuzz", "example.test", &account) == WR_OK);
  CHECK(wr_store_zone_create(store, "fuzz", account.id, "example.test", &zone) == WR_OK);
  CHECK(wr_store_user_create(store, "fuzz", account.id, "admin@example.test", NULL, 0, &user) == WR_OK);
  CHECK(wr_store_token_create(store, "fuzz", user.id, NULL, token, &tok) == WR_OK);
  CHECK(wr_store_tunnel_create(store, "fuzz", account.id, "seed", NULL, 0, &tunnel) == WR_OK);
  if (o->with_vnet) CHECK(wr_store_vnet_create(store, "fuzz", account.id, "lab", "", 0, &vnet) == WR_OK);
  wr_api_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.store = store;
  cfg.max_tunnels = o->max_tunnels;
  cfg.max_routes = o->max_routes;
  if (o->no_token_throttle) cfg.token_throttle.free_failures = 1u << 30;
  CHECK(wr_api_new(&cfg, &api) == WR_OK);
}

static void harness_at_exit(void) {
  harness_store_close();
  if (dir[0]) rmdir(dir);
  free(answer);
}

#endif
