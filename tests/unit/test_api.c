/* The edge's REST API (src/edge/api*.c) served by a wr_httpd on
 * 127.0.0.1:0, driven from the test thread: each request goes out on a
 * plain socket while the test pumps the loop (UV_RUN_NOWAIT) until the
 * answer is complete, so the store can be set up and inspected between
 * requests without threads. The requests are the ones cloudflared 2023.7.3
 * (and later versions) send (../shared/cloudflare-api.md §2.9).
 *
 * The last tests run the tunnel server's limits and tunnel closing over
 * real QUIC on 127.0.0.1 (as test_registration.c does). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "connector/registration.h"
#include "edge/api.h"
#include "edge/mgmt_key.h"
#include "proto/mgmt_token.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/tunnel_server.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/httpd.h"
#include "net/quic.h"
#include "unit.h"

#define ACTOR "api:admin@example.test"

typedef struct fx {
  char dir[64], path[128];
  wr_store *s;
  wr_account acct, other_acct;
  wr_zone zone, other_zone;
  wr_user user;
  char token[WR_STORE_TOKEN_LEN + 1];
  wr_api_token tok;
  uv_loop_t loop;
  wr_httpd *h;
  wr_api *api;
  wr_api_config cfg;
  wr_store_async *async; /* setup_async: handlers run on a store thread */
  int port;
  int fallback_hits; /* requests the API declined (not under /client/v4) */
  const char *from;  /* the client's source address; NULL: 127.0.0.1 */
  uint64_t clock_ms; /* the API's clock when cfg.now_ms is test_clock */
  char base[160];    /* /client/v4/accounts/<acct> */
} fx;

/* The last answer, for assertions. */
typedef struct answer {
  int status;
  char ctype[128];
  json_t *json;  /* the whole envelope */
  json_t *result; /* borrowed from json */
  const char *message; /* errors[0].message or "" */
  long code;
} answer;

static answer last;
static char last_retry_after[32]; /* the Retry-After field of the last answer, "" if none */

static void handler(wr_httpd *h, wr_httpd_req *req, void *user) {
  fx *f = user;
  (void)h;
  if (wr_api_handle(f->api, req)) return;
  f->fallback_hits++;
  wr_httpd_respond_simple(req, 404, "text/plain", "not the API\n", 12);
}

static void start_api(fx *f) {
  wr_api_free(f->api);
  f->api = NULL;
  assert_int_equal(wr_api_new(&f->cfg, &f->api), WR_OK);
  if (f->h) return;
  f->port = unit_httpd_listen(&f->loop, NULL, handler, f, &f->h);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  if (unit_store_new("wr-api", f->dir, sizeof(f->dir), f->path, sizeof(f->path), &f->s) != 0) return -1;
  if (wr_store_account_create(f->s, "test", "example.test", &f->acct) != WR_OK ||
      wr_store_zone_create(f->s, "test", f->acct.id, "example.test", &f->zone) != WR_OK ||
      wr_store_user_create(f->s, "test", f->acct.id, "admin@example.test", NULL, 0, &f->user) != WR_OK ||
      wr_store_token_create(f->s, "test", f->user.id, NULL, f->token, &f->tok) != WR_OK ||
      wr_store_account_create(f->s, "test", "other", &f->other_acct) != WR_OK ||
      wr_store_zone_create(f->s, "test", f->other_acct.id, "other.test", &f->other_zone) != WR_OK)
    return -1;
  snprintf(f->base, sizeof(f->base), "/client/v4/accounts/%s", f->acct.id);
  if (uv_loop_init(&f->loop) != 0) return -1;
  f->cfg.store = f->s;
  wr_log_set_level(WR_LOG_ERROR);
  *state = f;
  start_api(f);
  return 0;
}

/* The same, with the API's handlers on a store thread (the edge's way). */
static int setup_async(void **state) {
  char err[256];
  if (setup(state) != 0) return -1;
  fx *f = *state;
  if (wr_store_async_new(&f->loop, f->path, &f->async, err, sizeof(err)) != WR_OK) return -1;
  f->cfg.async = f->async;
  start_api(f);
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  json_decref(last.json);
  memset(&last, 0, sizeof(last));
  wr_store_async_free(f->async); /* answers what it still holds */
  wr_httpd_free(f->h);
  unit_loop_finish(&f->loop);
  wr_api_free(f->api);
  return unit_store_drop(f->s, f->dir, f);
}

/* ---- the client ------------------------------------------------------------------------- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sends |raw| and pumps the loop until the server closes; returns the bytes. */
static char *exchange(fx *f, const char *raw, size_t rawlen, size_t *outlen) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  if (f->from) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, f->from, &src.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
  }
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(send(fd, raw, rawlen, MSG_NOSIGNAL), (ssize_t)rawlen);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  uint64_t deadline = now_ms() + 5000;
  for (;;) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 1) > 0) {
      ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
      if (k == 0) break;
      if (k > 0) len += (size_t)k;
      else if (errno != EAGAIN && errno != EINTR) break;
    }
    if (now_ms() > deadline) fail_msg("no complete answer within 5 s for %.80s", raw);
  }
  close(fd);
  buf[len] = '\0';
  *outlen = len;
  return buf;
}

/* Sends a request with the given Authorization (NULL: none) and parses the
 * answer into |last|, checking the envelope. Returns the status. */
static int call_auth(fx *f, const char *method, const char *path, const char *auth, const char *body) {
  char *raw = NULL;
  size_t blen = body ? strlen(body) : 0, n;
  char authline[256] = "";
  if (auth) snprintf(authline, sizeof(authline), "Authorization: %s\r\n", auth);
  int rl = asprintf(&raw,
                    "%s %s HTTP/1.1\r\nHost: api.test\r\nUser-Agent: cloudflared/2023.7.3\r\n"
                    "Accept: application/json;version=1\r\n%s%sContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n%s",
                    method, path, authline, body ? "Content-Type: application/json\r\n" : "", blen,
                    body ? body : "");
  assert_true(rl > 0);
  char *resp = exchange(f, raw, (size_t)rl, &n);
  free(raw);
  json_decref(last.json);
  memset(&last, 0, sizeof(last));
  assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &last.status), 1);
  char *ct = strcasestr(resp, "\r\nContent-Type: ");
  char *end = strstr(resp, "\r\n\r\n");
  assert_non_null(end);
  if (ct && ct < end) {
    ct += 16;
    size_t cl = strcspn(ct, "\r");
    snprintf(last.ctype, sizeof(last.ctype), "%.*s", (int)cl, ct);
  }
  char *ra = strcasestr(resp, "\r\nRetry-After: ");
  last_retry_after[0] = '\0';
  if (ra && ra < end) snprintf(last_retry_after, sizeof(last_retry_after), "%.*s", (int)strcspn(ra + 15, "\r"), ra + 15);
  if (strcmp(last.ctype, "application/json") == 0) {
    json_error_t jerr;
    last.json = json_loads(end + 4, 0, &jerr);
    if (!last.json) fail_msg("not JSON (%s): %s", jerr.text, end + 4);
    /* The envelope cloudflared decodes (cloudflare-api.md §2.3). */
    json_t *ok = json_object_get(last.json, "success");
    assert_true(json_is_boolean(ok));
    assert_true(json_is_array(json_object_get(last.json, "errors")));
    assert_true(json_is_array(json_object_get(last.json, "messages")));
    assert_int_equal(json_array_size(json_object_get(last.json, "messages")), 0);
    assert_non_null(json_object_get(last.json, "result"));
    last.result = json_object_get(last.json, "result");
    json_t *e0 = json_array_get(json_object_get(last.json, "errors"), 0);
    last.message = e0 ? json_string_value(json_object_get(e0, "message")) : "";
    last.code = e0 ? (long)json_integer_value(json_object_get(e0, "code")) : 0;
    if (e0) assert_non_null(last.message);
    /* success and the status agree; errors only on failure */
    assert_int_equal(json_is_true(ok), last.status == 200);
    assert_int_equal(e0 == NULL, last.status == 200);
  }
  free(resp);
  return last.status;
}

static int call(fx *f, const char *method, const char *path, const char *body) {
  char auth[128];
  snprintf(auth, sizeof(auth), "Bearer %s", f->token);
  return call_auth(f, method, path, auth, body);
}

/* Path under /client/v4/accounts/<acct>. */
static const char *ap(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *ap(fx *f, const char *fmt, ...) {
  static char buf[4][640];
  static int k;
  char rest[400];
  va_list va;
  va_start(va, fmt);
  vsnprintf(rest, sizeof(rest), fmt, va);
  va_end(va);
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof(buf[k]), "%s%s", f->base, rest);
  return buf[k];
}

static const char *rstr(const char *key) { return json_string_value(json_object_get(last.result, key)); }
static const char *rstr_at(size_t i, const char *key) {
  return json_string_value(json_object_get(json_array_get(last.result, i), key));
}

/* GET |rest| (under ap) answers 200 and a list of |n| results. */
static void assert_list(fx *f, const char *rest, size_t n) {
  assert_int_equal(call(f, "GET", ap(f, "%s", rest), NULL), 200);
  assert_int_equal(json_array_size(last.result), n);
}

static void assert_msg(const char *needle) {
  if (!strstr(last.message, needle)) fail_msg("message \"%s\" lacks \"%s\"", last.message, needle);
}

/* Creates a tunnel the way cloudflared does; returns its id in |id|. */
static void create_tunnel(fx *f, const char *name, char id[WR_STORE_UUID_LEN + 1]) {
  char body[256];
  snprintf(body, sizeof(body),
           "{\"name\":\"%s\",\"tunnel_secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}", name);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), body), 200);
  snprintf(id, WR_STORE_UUID_LEN + 1, "%s", rstr("id"));
}

static int audit_has(fx *f, const char *action, const char *target) {
  wr_audit *rows;
  size_t n;
  int found = 0;
  assert_int_equal(wr_store_audit_list(f->s, NULL, 0, &rows, &n), WR_OK);
  for (size_t i = 0; i < n && !found; i++)
    found = !strcmp(rows[i].action, action) && (!target || !strcmp(rows[i].target_id, target)) &&
            !strcmp(rows[i].actor, ACTOR);
  wr_store_audit_free(rows, n);
  return found;
}

/* ---- authentication ------------------------------------------------------------------------ */

static void test_auth(void **state) {
  fx *f = *state;
  char auth[128];
  /* No token, another scheme, garbage: 403 in the envelope, exactly
   * application/json so cloudflared shows the message. */
  assert_int_equal(call_auth(f, "GET", ap(f, "/cfd_tunnel"), NULL, NULL), 403);
  assert_string_equal(last.ctype, "application/json");
  assert_int_equal(last.code, 10000);
  assert_msg("Authorization: Bearer");
  assert_int_equal(call_auth(f, "GET", ap(f, "/cfd_tunnel"), "Basic YWJjOmRlZg==", NULL), 403);
  assert_int_equal(call_auth(f, "GET", ap(f, "/cfd_tunnel"), "Bearer nope", NULL), 403);
  assert_msg("tunnel login");
  assert_msg("cert.pem");
  /* The token of another account's path. */
  assert_int_equal(call(f, "GET", "/client/v4/accounts/00000000000000000000000000000000/cfd_tunnel", NULL),
                   403);
  assert_msg("not valid for account");
  char p[256];
  snprintf(p, sizeof(p), "/client/v4/accounts/%s/cfd_tunnel", f->other_acct.id);
  assert_int_equal(call(f, "GET", p, NULL), 403);
  /* Another account's zone, and an unknown zone. */
  snprintf(p, sizeof(p), "/client/v4/zones/%s/dns_records", f->other_zone.id);
  assert_int_equal(call(f, "GET", p, NULL), 403);
  assert_msg("not valid for zone");
  assert_int_equal(call(f, "GET", "/client/v4/zones/nope/dns_records", NULL), 403);
  /* The bearer's scheme is case-insensitive; the token works. */
  snprintf(auth, sizeof(auth), "bearer %s", f->token);
  assert_int_equal(call_auth(f, "GET", ap(f, "/cfd_tunnel"), auth, NULL), 200);
  assert_int_equal(call(f, "GET", "/client/v4/user/tokens/verify", NULL), 200);
  assert_string_equal(rstr("status"), "active");
  assert_string_equal(rstr("id"), f->tok.id);

  /* A revoked (rolled) token: 403 telling the user to log in again. */
  char newtok[WR_STORE_TOKEN_LEN + 1];
  assert_int_equal(wr_store_token_revoke(f->s, "test", f->tok.id), WR_OK);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel"), NULL), 403);
  assert_msg("revoked");
  assert_msg("`cloudflared tunnel login`");
  assert_msg("`warren tunnel login`");
  assert_int_equal(wr_store_token_create(f->s, "test", f->user.id, NULL, newtok, &f->tok), WR_OK);
  memcpy(f->token, newtok, sizeof(newtok));
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel"), NULL), 200);

  /* A token limited to another zone of the account may not route there. */
  wr_zone z2;
  wr_api_token zt;
  char ztok[WR_STORE_TOKEN_LEN + 1];
  assert_int_equal(wr_store_zone_create(f->s, "test", f->acct.id, "second.test", &z2), WR_OK);
  assert_int_equal(wr_store_token_create(f->s, "test", f->user.id, z2.id, ztok, &zt), WR_OK);
  snprintf(auth, sizeof(auth), "Bearer %s", ztok);
  snprintf(p, sizeof(p), "/client/v4/zones/%s/dns_records", f->zone.id);
  assert_int_equal(call_auth(f, "GET", p, auth, NULL), 403);
  assert_msg("limited to one zone");
  snprintf(p, sizeof(p), "/client/v4/zones/%s/dns_records", z2.id);
  assert_int_equal(call_auth(f, "GET", p, auth, NULL), 200);

  /* Paths outside /client/v4 are left to the caller. */
  int before = f->fallback_hits;
  assert_int_equal(call(f, "GET", "/client/v40/x", NULL), 404);
  assert_int_equal(call(f, "GET", "/login", NULL), 404);
  assert_int_equal(f->fallback_hits, before + 2);
  assert_int_equal(call(f, "GET", "/client/v4", NULL), 404);
  assert_int_equal(last.code, 7003);
  assert_int_equal(f->fallback_hits, before + 2);
}

static void test_bad_requests(void **state) {
  fx *f = *state;
  assert_int_equal(call(f, "GET", ap(f, "/nothing"), NULL), 404);
  assert_int_equal(last.code, 7003);
  assert_int_equal(call(f, "PUT", ap(f, "/cfd_tunnel"), "{}"), 405);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), NULL), 400);
  assert_msg("JSON body");
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "{\"name\":"), 400);
  assert_msg("not valid JSON");
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "[1]"), 400);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "{\"name\":5}"), 400);
  assert_msg("name must be a string");
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?name=%%zz"), NULL), 400);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?page=0"), NULL), 400);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?per_page=5000"), NULL), 400);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?is_deleted=maybe"), NULL), 400);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?uuid=nope"), NULL), 400);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?existed_at=yesterday"), NULL), 400);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/not-a-uuid"), NULL), 400);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/0b1e0a3c-5b5b-4c4c-8d8d-0123456789ab"), NULL), 404);
  assert_int_equal(last.code, 1003);
}

/* ---- tunnels ------------------------------------------------------------------------------- */

static void test_tunnel_lifecycle(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1], id2[WR_STORE_UUID_LEN + 1];

  /* tunnel create mytun */
  create_tunnel(f, "mytun", id);
  assert_string_equal(rstr("name"), "mytun");
  assert_true(json_is_null(json_object_get(last.result, "deleted_at")));
  assert_true(json_is_array(json_object_get(last.result, "connections")));
  assert_non_null(strstr(rstr("created_at"), "T"));
  assert_true(audit_has(f, "tunnel.create", id));
  /* The token in the create answer is the one `tunnel token` prints. */
  char token[512];
  snprintf(token, sizeof(token), "%s", rstr("token"));
  wr_credentials cr;
  char err[256];
  assert_int_equal(wr_token_parse(token, strlen(token), &cr, err, sizeof(err)), WR_OK);
  assert_string_equal(cr.account_tag, f->acct.id);
  assert_int_equal(cr.secret_len, 32);
  for (int i = 0; i < 32; i++) assert_int_equal(cr.secret[i], i); /* the client's secret is kept */

  /* Name clash: 409 (cloudflared: "tunnel with name already exists"). */
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"),
                        "{\"name\":\"mytun\",\"tunnel_secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}"),
                   409);
  assert_msg("already exists");
  /* A UUID as name, a short secret, a bad config_src. */
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "{\"name\":\"0b1e0a3c-5b5b-4c4c-8d8d-0123456789ab\"}"),
                   400);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "{\"name\":\"x\",\"tunnel_secret\":\"AAEC\"}"), 400);
  assert_msg("at least 32");
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "{\"name\":\"x\",\"config_src\":\"elsewhere\"}"), 400);
  /* A dashboard-style remotely managed tunnel, secret made by the edge. */
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "{\"name\":\"remote\",\"config_src\":\"cloudflare\"}"),
                   200);
  assert_true(json_is_true(json_object_get(last.result, "remote_config")));
  snprintf(id2, sizeof(id2), "%s", rstr("id"));

  /* tunnel list (2023.7.3 sends is_deleted=false; no page: everything). */
  assert_list(f, "/cfd_tunnel?is_deleted=false", 2);
  json_t *info = json_object_get(last.json, "result_info");
  assert_int_equal(json_integer_value(json_object_get(info, "total_count")), 2);
  assert_int_equal(json_integer_value(json_object_get(info, "count")), 2);
  /* name -> id lookup, info's uuid check */
  assert_list(f, "/cfd_tunnel?is_deleted=false&name=mytun", 1);
  assert_string_equal(rstr_at(0, "id"), id);
  char p[256];
  snprintf(p, sizeof(p), "/cfd_tunnel?uuid=%s", id);
  assert_int_equal(call(f, "GET", ap(f, "%s", p), NULL), 200);
  assert_int_equal(json_array_size(last.result), 1);
  assert_list(f, "/cfd_tunnel?name_prefix=my", 1);
  assert_list(f, "/cfd_tunnel?exclude_prefix=my", 1);
  assert_string_equal(rstr_at(0, "name"), "remote");
  assert_list(f, "/cfd_tunnel?existed_at=2000-01-01T00:00:00Z", 0);
  assert_list(f, "/cfd_tunnel?existed_at=2999-01-01T00:00:00%2B01:00", 2);
  /* Paging as cloudflared >= 2024.3 does it. */
  assert_list(f, "/cfd_tunnel?is_deleted=false&per_page=1&page=2", 1);
  assert_string_equal(rstr_at(0, "id"), id2);
  info = json_object_get(last.json, "result_info");
  assert_int_equal(json_integer_value(json_object_get(info, "page")), 2);
  assert_int_equal(json_integer_value(json_object_get(info, "per_page")), 1);
  assert_int_equal(json_integer_value(json_object_get(info, "total_count")), 2);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?page=1"), NULL), 200);
  info = json_object_get(last.json, "result_info");
  assert_int_equal(json_integer_value(json_object_get(info, "per_page")), 20);

  /* get, token */
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  assert_string_equal(rstr("name"), "mytun");
  assert_string_equal(rstr("status"), "inactive");
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s/token", id), NULL), 200);
  assert_true(json_is_string(last.result));
  assert_string_equal(json_string_value(last.result), token);
  assert_int_equal(strncmp(token, "eyJhIjoi", 8), 0);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s/connections", id), NULL), 200);
  assert_int_equal(json_array_size(last.result), 0);

  /* Another account's tunnel is invisible. */
  wr_tunnel other;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->other_acct.id, "theirs", NULL, 0, &other), WR_OK);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s", other.id), NULL), 404);
  assert_msg("no tunnel with ID");
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", other.id), NULL), 404);

  /* delete: its routes go with it; a second delete is refused. */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  assert_true(json_is_string(json_object_get(last.result, "deleted_at")));
  assert_true(audit_has(f, "tunnel.delete", id));
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  assert_true(json_is_string(json_object_get(last.result, "deleted_at")));
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id), NULL), 400);
  assert_msg("already deleted");
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s/token", id), NULL), 400);
  assert_list(f, "/cfd_tunnel?is_deleted=false&name=mytun", 0);
  assert_list(f, "/cfd_tunnel?is_deleted=true", 1);
  assert_list(f, "/cfd_tunnel", 2);
  /* The name is free again. */
  create_tunnel(f, "mytun", id);
}

/* Connection rows as the tunnel server writes them. */
static void add_conn(fx *f, const char *tunnel_id, const char *client_id, unsigned idx) {
  wr_conn_rec rec;
  wr_uuid u;
  char id[WR_STORE_UUID_LEN + 1];
  wr_uuid_random(&u);
  wr_uuid_format(&u, id);
  unit_conn_rec(&rec, id, tunnel_id, client_id, idx, "LOCAL");
  assert_int_equal(wr_store_conn_open(f->s, &rec), WR_OK);
}

static void test_connections_cleanup_and_cascade(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1];
  const char *c1 = "11111111-1111-4111-8111-111111111111", *c2 = "22222222-2222-4222-8222-222222222222";
  create_tunnel(f, "busy", id);
  add_conn(f, id, c1, 0);
  add_conn(f, id, c1, 1);
  add_conn(f, id, c2, 0);

  /* tunnel info: active connectors with their connections ("conns"). */
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s/connections", id), NULL), 200);
  assert_int_equal(json_array_size(last.result), 2);
  json_t *a0 = json_array_get(last.result, 0);
  assert_string_equal(json_string_value(json_object_get(a0, "id")), c1);
  assert_string_equal(json_string_value(json_object_get(a0, "version")), "2023.7.3");
  assert_string_equal(json_string_value(json_object_get(a0, "arch")), "linux_amd64");
  assert_string_equal(json_string_value(json_array_get(json_object_get(a0, "features"), 0)), "serialized_headers");
  assert_int_equal(json_array_size(json_object_get(a0, "conns")), 2);
  json_t *conn = json_array_get(json_object_get(a0, "conns"), 0);
  assert_string_equal(json_string_value(json_object_get(conn, "colo_name")), "LOCAL");
  assert_string_equal(json_string_value(json_object_get(conn, "origin_ip")), "127.0.0.1");
  assert_true(json_is_false(json_object_get(conn, "is_pending_reconnect")));
  /* tunnel list shows them too */
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel?name=busy"), NULL), 200);
  json_t *t0 = json_array_get(last.result, 0);
  assert_int_equal(json_array_size(json_object_get(t0, "connections")), 3);
  assert_string_equal(json_string_value(json_object_get(t0, "status")), "healthy");

  /* delete without cascade is refused while connected */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id), NULL), 400);
  assert_msg("3 active connections");
  assert_msg("-f");

  /* tunnel cleanup --connector-id c2 */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s/connections?client_id=%s", id, c2), NULL), 200);
  assert_true(json_is_null(last.result));
  assert_true(audit_has(f, "tunnel.cleanup", id));
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s/connections", id), NULL), 200);
  assert_int_equal(json_array_size(last.result), 1);
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s/connections?client_id=bad", id), NULL), 400);

  /* delete -f on >= 2023.10: cascade=true closes the rest */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s?cascade=true", id), NULL), 200);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s/connections", id), NULL), 200);
  assert_int_equal(json_array_size(last.result), 0);
  wr_conn_rec *rows;
  size_t n;
  assert_int_equal(wr_store_conn_list(f->s, id, 1, &rows, &n), WR_OK);
  free(rows);
  assert_int_equal(n, 0);

  /* delete -f on 2023.7.3: cleanup, then delete */
  create_tunnel(f, "busy2", id);
  add_conn(f, id, c1, 0);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  assert_string_equal(rstr("status"), "healthy");
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s/connections", id), NULL), 200);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  assert_string_equal(rstr("status"), "down");
  assert_true(json_is_string(json_object_get(last.result, "conns_inactive_at")));
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
}

static void test_limits(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1], p[512];
  f->cfg.max_tunnels = 2;
  f->cfg.max_routes = 1;
  start_api(f);
  create_tunnel(f, "a", id);
  create_tunnel(f, "b", id);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel"), "{\"name\":\"c\"}"), 400);
  assert_int_equal(last.code, 1015);
  assert_msg("2 tunnels, the limit");
  /* Deleted tunnels do not count. */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  create_tunnel(f, "c", id);

  snprintf(p, sizeof(p), "/client/v4/zones/%s/tunnels/%s/routes", f->zone.id, id);
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"one.example.test\",\"overwrite_existing\":false}"), 200);
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"two.example.test\",\"overwrite_existing\":false}"), 400);
  assert_msg("1 hostname routes, the limit");
  /* Re-routing an existing name is not a new route. */
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"one.example.test\",\"overwrite_existing\":false}"), 200);
  assert_string_equal(rstr("cname"), "unchanged");

  snprintf(p, sizeof(p), "{\"tunnel_id\":\"%s\",\"comment\":\"c\"}", id);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes/network/10.0.0.0%%252F8"), p), 200);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes/network/10.1.0.0%%252F16"), p), 400);
  assert_int_equal(last.code, 1015);
  assert_msg("IP routes, the limit");
}

/* ---- route dns ------------------------------------------------------------------------------ */

static void test_route_dns(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1], id2[WR_STORE_UUID_LEN + 1], p[256], p2[256], want[128];
  create_tunnel(f, "web", id);
  create_tunnel(f, "web2", id2);
  snprintf(p, sizeof(p), "/client/v4/zones/%s/tunnels/%s/routes", f->zone.id, id);
  snprintf(p2, sizeof(p2), "/client/v4/zones/%s/tunnels/%s/routes", f->zone.id, id2);

  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"App.Example.test\",\"overwrite_existing\":false}"), 200);
  assert_string_equal(rstr("cname"), "new");
  assert_string_equal(rstr("name"), "app.example.test");
  snprintf(want, sizeof(want), "%s.cfargotunnel.example.test", id);
  assert_string_equal(rstr("content"), want);
  assert_true(audit_has(f, "route.create", "app.example.test"));
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"app.example.test\",\"overwrite_existing\":false}"), 200);
  assert_string_equal(rstr("cname"), "unchanged");
  /* Another tunnel: refused without overwrite, "updated" with it. */
  assert_int_equal(call(f, "PUT", p2, "{\"type\":\"dns\",\"user_hostname\":\"app.example.test\",\"overwrite_existing\":false}"), 409);
  assert_msg("already routed");
  assert_msg("--overwrite-dns");
  assert_int_equal(call(f, "PUT", p2, "{\"type\":\"dns\",\"user_hostname\":\"app.example.test\",\"overwrite_existing\":true}"), 200);
  assert_string_equal(rstr("cname"), "updated");
  assert_true(audit_has(f, "route.update", "app.example.test"));
  /* A single label is a name in the zone; wildcards work. */
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"blog\",\"overwrite_existing\":false}"), 200);
  assert_string_equal(rstr("name"), "blog.example.test");
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"*.dev.example.test\"}"), 200);
  /* The apex, names outside the zone, bad names, lb, bad bodies. */
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"example.test\",\"overwrite_existing\":false}"), 400);
  assert_msg("apex");
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"app.example.com\"}"), 400);
  assert_msg("not inside");
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"http://x.example.test/\"}"), 400);
  assert_msg("URL");
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"lb\",\"lb_name\":\"lb.example.test\",\"lb_pool\":\"p\"}"), 400);
  assert_msg("load balancer");
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\"}"), 400);
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"x\",\"overwrite_existing\":\"yes\"}"), 400);
  assert_int_equal(call(f, "POST", p, "{}"), 405);

  /* dns_records: what the edge would serve (and a partial setup needs). */
  char r[256];
  snprintf(r, sizeof(r), "/client/v4/zones/%s/dns_records", f->zone.id);
  assert_int_equal(call(f, "GET", r, NULL), 200);
  assert_int_equal(json_array_size(last.result), 3);
  snprintf(r, sizeof(r), "/client/v4/zones/%s/dns_records?name=app.example.test&type=CNAME", f->zone.id);
  assert_int_equal(call(f, "GET", r, NULL), 200);
  assert_int_equal(json_array_size(last.result), 1);
  json_t *rec = json_array_get(last.result, 0);
  snprintf(want, sizeof(want), "%s.cfargotunnel.example.test", id2);
  assert_string_equal(json_string_value(json_object_get(rec, "content")), want);
  assert_string_equal(json_string_value(json_object_get(rec, "type")), "CNAME");
  char rid[64];
  snprintf(rid, sizeof(rid), "%s", json_string_value(json_object_get(rec, "id")));
  snprintf(r, sizeof(r), "/client/v4/zones/%s/dns_records?type=A", f->zone.id);
  assert_int_equal(call(f, "GET", r, NULL), 200);
  assert_int_equal(json_array_size(last.result), 0);
  snprintf(r, sizeof(r), "/client/v4/zones/%s/dns_records/%s", f->zone.id, rid);
  assert_int_equal(call(f, "DELETE", r, NULL), 200);
  assert_true(audit_has(f, "route.delete", "app.example.test"));
  assert_int_equal(call(f, "DELETE", r, NULL), 404);

  /* A configured CNAME domain. */
  f->cfg.cname_domain = "tunnels.edge.test.";
  start_api(f);
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"blog\"}"), 200);
  snprintf(want, sizeof(want), "%s.tunnels.edge.test", id);
  assert_string_equal(rstr("content"), want);

  /* A deleted tunnel's routes are gone, and it cannot be routed. */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  wr_route rt;
  assert_int_equal(wr_store_route_get(f->s, "blog.example.test", &rt), WR_ERR_NOTFOUND);
  assert_int_equal(call(f, "PUT", p, "{\"type\":\"dns\",\"user_hostname\":\"blog\"}"), 400);
  assert_msg("deleted");
}

/* ---- route ip, vnets --------------------------------------------------------------------------- */

static void test_route_ip(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1], id2[WR_STORE_UUID_LEN + 1], body[256], rid[64], vid[64], defid[64];
  create_tunnel(f, "net", id);
  create_tunnel(f, "net2", id2);

  /* route ip add 10.0.0.0/8 net "c" (2023.7.3: CIDR escaped twice) */
  snprintf(body, sizeof(body), "{\"tunnel_id\":\"%s\",\"comment\":\"c\"}", id);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes/network/10.0.0.0%%252F8"), body), 200);
  assert_string_equal(rstr("network"), "10.0.0.0/8");
  assert_string_equal(rstr("tunnel_id"), id);
  assert_string_equal(rstr("comment"), "c");
  assert_true(json_is_string(json_object_get(last.result, "virtual_network_id")));
  snprintf(defid, sizeof(defid), "%s", rstr("virtual_network_id"));
  assert_true(audit_has(f, "route.create", NULL));
  /* The same network again: 409; host bits are cleared as Go's ParseCIDR. */
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes/network/10.9.9.9%%252F8"), body), 409);
  assert_msg("already routed");
  /* >= 2023.10 form; IPv6 too */
  snprintf(body, sizeof(body), "{\"network\":\"10.1.0.0/16\",\"tunnel_id\":\"%s\",\"comment\":\"\"}", id2);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), body), 200);
  snprintf(rid, sizeof(rid), "%s", rstr("id"));
  snprintf(body, sizeof(body), "{\"network\":\"2001:DB8::/32\",\"tunnel_id\":\"%s\"}", id);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), body), 200);
  assert_string_equal(rstr("network"), "2001:db8::/32");
  /* bad input */
  snprintf(body, sizeof(body), "{\"network\":\"10.0.0.0/33\",\"tunnel_id\":\"%s\"}", id);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), body), 400);
  assert_msg("prefix length");
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), "{\"network\":\"10.0.0.0/8\"}"), 400);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), "{\"network\":\"10.0.0.0/8\",\"tunnel_id\":\"x\"}"), 400);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"),
                        "{\"network\":\"10.0.0.0/8\",\"tunnel_id\":\"0b1e0a3c-5b5b-4c4c-8d8d-0123456789ab\"}"),
                   404);

  /* route ip show */
  assert_list(f, "/teamnet/routes?is_deleted=false", 3);
  json_t *r0 = json_array_get(last.result, 0);
  assert_string_equal(json_string_value(json_object_get(r0, "tunnel_name")), "net");
  assert_string_equal(json_string_value(json_object_get(r0, "virtual_network_name")), "default");
  assert_true(json_is_null(json_object_get(r0, "deleted_at")));
  /* filters: subset/superset (both = exact, as >= 2023.10's delete lookup) */
  assert_list(f, "/teamnet/routes?is_deleted=false&network_subset=10.0.0.0%2F8&network_superset=10.0.0.0%2F8&tun_types=cfd_tunnel&page=1", 1);
  assert_list(f, "/teamnet/routes?network_subset=10.0.0.0/8", 2);
  assert_list(f, "/teamnet/routes?network_superset=10.1.2.0/24", 2);
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes?tunnel_id=%s", id2), NULL), 200);
  assert_int_equal(json_array_size(last.result), 1);
  assert_list(f, "/teamnet/routes?comment=c", 1);
  assert_list(f, "/teamnet/routes?tun_types=warp_connector", 0);
  assert_list(f, "/teamnet/routes?per_page=2&page=2", 1);
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes?network_subset=nope"), NULL), 400);

  /* route ip get: longest prefix; {} when nothing matches */
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/ip/10.1.2.3"), NULL), 200);
  assert_string_equal(rstr("network"), "10.1.0.0/16");
  assert_string_equal(rstr("tunnel_name"), "net2");
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/ip/10.2.0.1"), NULL), 200);
  assert_string_equal(rstr("network"), "10.0.0.0/8");
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/ip/192.168.0.1"), NULL), 200);
  assert_true(json_is_object(last.result));
  assert_int_equal(json_object_size(last.result), 0);
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/ip/2001:db8::1"), NULL), 200);
  assert_string_equal(rstr("network"), "2001:db8::/32");
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/ip/nope"), NULL), 400);

  /* virtual networks: add, list by name (--vnet NAME lookup), route in it */
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/virtual_networks"), "{\"name\":\"vn1\",\"comment\":\"lab\",\"is_default\":false}"), 200);
  snprintf(vid, sizeof(vid), "%s", rstr("id"));
  assert_true(json_is_false(json_object_get(last.result, "is_default_network")));
  assert_true(audit_has(f, "vnet.create", vid));
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/virtual_networks"), "{\"name\":\"vn1\"}"), 409);
  assert_list(f, "/teamnet/virtual_networks?is_deleted=false&name=vn1", 1);
  assert_list(f, "/teamnet/virtual_networks?is_deleted=false", 2);
  assert_list(f, "/teamnet/virtual_networks?is_default=true", 1);
  assert_string_equal(rstr_at(0, "id"), defid);
  snprintf(body, sizeof(body), "{\"tunnel_id\":\"%s\",\"comment\":\"lab\",\"virtual_network_id\":\"%s\"}", id2, vid);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes/network/10.0.0.0%%252F8"), body), 200);
  assert_string_equal(rstr("virtual_network_id"), vid);
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/ip/10.2.0.1?virtual_network_id=%s", vid), NULL), 200);
  assert_string_equal(rstr("tunnel_id"), id2);
  /* a vnet with routes is deleted only with force; the default never */
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/virtual_networks/%s", vid), NULL), 400);
  assert_msg("--force");
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/virtual_networks/%s", defid), NULL), 400);
  assert_msg("default");
  /* update: rename, make default (the old one stops being it) */
  assert_int_equal(call(f, "PATCH", ap(f, "/teamnet/virtual_networks/%s", vid), "{\"name\":\"lab\",\"is_default_network\":true}"), 200);
  assert_string_equal(rstr("name"), "lab");
  assert_true(json_is_true(json_object_get(last.result, "is_default_network")));
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/virtual_networks/%s", defid), NULL), 200);
  assert_true(json_is_false(json_object_get(last.result, "is_default_network")));
  assert_int_equal(call(f, "PATCH", ap(f, "/teamnet/virtual_networks/%s", vid), "{\"is_default_network\":false}"), 400);
  /* route ip delete (2023.7.3) in the old default vnet, then by id */
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/routes/network/10.0.0.0%%252F8?virtual_network_id=%s", defid), NULL), 200);
  assert_string_equal(rstr("network"), "10.0.0.0/8");
  assert_string_equal(rstr("tunnel_id"), id);
  assert_true(json_is_string(json_object_get(last.result, "deleted_at")));
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/routes/network/10.0.0.0%%252F8?virtual_network_id=%s", defid), NULL), 404);
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/routes/%s", rid), NULL), 200);
  assert_true(audit_has(f, "route.delete", rid));
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/routes/%s", rid), NULL), 400);
  assert_list(f, "/teamnet/routes?is_deleted=true", 2);
  /* now the old default can go, with force for its IPv6 route */
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/virtual_networks/%s", defid), NULL), 400);
  assert_int_equal(call(f, "DELETE", ap(f, "/teamnet/virtual_networks/%s?force=true", defid), NULL), 200);
  assert_true(json_is_string(json_object_get(last.result, "deleted_at")));
  assert_list(f, "/teamnet/routes?is_deleted=false", 1);
  /* routes go with their tunnel */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id2), NULL), 200);
  assert_list(f, "/teamnet/routes?is_deleted=false", 0);
  snprintf(body, sizeof(body), "{\"network\":\"10.7.0.0/16\",\"tunnel_id\":\"%s\"}", id2);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), body), 400);
  assert_msg("deleted");

  /* Another account's virtual network and IP route read as missing. */
  wr_tunnel ot;
  wr_vnet ov;
  wr_ip_route orr;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->other_acct.id, "theirs", NULL, 0, &ot), WR_OK);
  assert_int_equal(wr_store_vnet_create(f->s, "test", f->other_acct.id, "theirs", "", 0, &ov), WR_OK);
  assert_int_equal(wr_store_ip_route_add(f->s, "test", f->other_acct.id, "10.8.0.0/16", ot.id, ov.id, "", &orr),
                   WR_OK);
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/virtual_networks/%s", ov.id), NULL), 404);
  assert_msg("no virtual network with ID");
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/%s", orr.id), NULL), 404);
  assert_msg("no IP route with ID");
  assert_int_equal(call(f, "GET", ap(f, "/teamnet/routes/ip/10.8.0.1?virtual_network_id=%s", ov.id), NULL), 404);
  assert_msg("no virtual network with ID");
}

/* ---- audit ------------------------------------------------------------------------------------ */

static void test_audit_log(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1];
  create_tunnel(f, "a1", id);
  create_tunnel(f, "a2", id);
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", id), NULL), 200);
  assert_int_equal(call(f, "GET", ap(f, "/audit_logs"), NULL), 200);
  json_t *first = json_array_get(last.result, 0);
  assert_string_equal(json_string_value(json_object_get(first, "action")), "tunnel.delete");
  assert_string_equal(json_string_value(json_object_get(first, "actor")), ACTOR);
  assert_string_equal(json_string_value(json_object_get(json_object_get(first, "resource"), "id")), id);
  assert_string_equal(json_string_value(json_object_get(json_object_get(first, "metadata"), "name")), "a2");
  assert_non_null(strstr(json_string_value(json_object_get(first, "when")), "Z"));
  size_t all = json_array_size(last.result);
  assert_true(all >= 4); /* account, zone, user, token, tunnels... of this account only */
  assert_list(f, "/audit_logs?action=tunnel.&per_page=2&page=1", 2);
  json_t *info = json_object_get(last.json, "result_info");
  assert_int_equal(json_integer_value(json_object_get(info, "total_count")), 3);
  assert_list(f, "/audit_logs?action=tunnel.create", 2);
  assert_list(f, "/audit_logs?since=2999-01-01T00:00:00Z", 0);
  assert_list(f, "/audit_logs?before=2999-01-01T00:00:00Z", all);
  assert_int_equal(call(f, "POST", ap(f, "/audit_logs"), "{}"), 405);
  /* Nothing of the other account leaks. */
  wr_audit *rows;
  size_t n;
  assert_int_equal(wr_store_audit_list(f->s, f->other_acct.id, 0, &rows, &n), WR_OK);
  assert_true(n > 0);
  wr_store_audit_free(rows, n);
  assert_list(f, "/audit_logs?action=zone.create", 1);
}

/* ---- token guessing ------------------------------------------------------------------------------ */

static uint64_t test_clock(void *user) { return ((fx *)user)->clock_ms; }


static int call_from(fx *f, const char *from, const char *auth) {
  f->from = from;
  int st = call_auth(f, "GET", ap(f, "/cfd_tunnel"), auth, NULL);
  f->from = NULL;
  return st;
}

static int audit_row(fx *f, const char *action, const char *target, const char *needle) {
  wr_audit *rows;
  size_t n;
  int found = 0;
  /* With a store thread the lockout rows are written there, after the
   * answer: wait until it has run every job. */
  uint64_t deadline = now_ms() + 5000;
  while (f->async && wr_store_async_pending(f->async) && now_ms() < deadline) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(wr_store_audit_list(f->s, NULL, 0, &rows, &n), WR_OK);
  for (size_t i = 0; i < n && !found; i++)
    found = !strcmp(rows[i].action, action) && !strcmp(rows[i].target_type, "source") &&
            !strcmp(rows[i].target_id, target) && !strcmp(rows[i].actor, "edge") &&
            rows[i].account_id[0] == '\0' && (!needle || strstr(rows[i].detail, needle));
  wr_store_audit_free(rows, n);
  return found;
}

/* Ten invalid tokens from one source: then 429 (code 971, Retry-After)
 * for everything from it, a valid token too, without a look at the token;
 * other sources are served; the delay ends, grows, and is forgotten. */
static void test_token_guessing(void **state) {
  fx *f = *state;
  char auth[128], bad[128], revoked_auth[128], tok[WR_STORE_TOKEN_LEN + 1];
  wr_api_token k;
  f->clock_ms = 1000000000;
  f->cfg.now_ms = test_clock;
  f->cfg.now_user = f;
  start_api(f);
  snprintf(auth, sizeof(auth), "Bearer %s", f->token);
  assert_int_equal(wr_store_token_create(f->s, "test", f->user.id, NULL, tok, &k), WR_OK);
  assert_int_equal(wr_store_token_revoke(f->s, "test", k.id), WR_OK);
  snprintf(revoked_auth, sizeof(revoked_auth), "Bearer %s", tok);

  /* Nine refusals with their reasons; a revoked token still says so. */
  for (int i = 0; i < 8; i++) {
    snprintf(bad, sizeof(bad), "Bearer guess%035d", i);
    assert_int_equal(call_from(f, NULL, bad), 403);
    assert_int_equal(last.code, 10000);
  }
  assert_int_equal(call_from(f, NULL, revoked_auth), 403);
  assert_msg("revoked");
  /* No header and malformed ones are not guesses: not counted. */
  for (int i = 0; i < 5; i++) assert_int_equal(call_from(f, NULL, NULL), 403);
  assert_int_equal(call_from(f, NULL, auth), 200);
  /* The tenth invalid token is refused as usual and starts the delay. */
  assert_int_equal(call_from(f, NULL, "Bearer guess-number-ten"), 403);
  assert_msg("not valid on this edge");
  assert_true(audit_row(f, "api.lock", "127.0.0.1", "\"failures\":10"));
  assert_true(audit_row(f, "api.lock", "127.0.0.1", "\"retry_after_s\":1"));

  /* Now everything from 127.0.0.1 waits, its valid token too. */
  assert_int_equal(call_from(f, NULL, auth), 429);
  assert_string_equal(last.ctype, "application/json");
  assert_int_equal(last.code, 971);
  assert_msg("try again in 1 second");
  assert_string_equal(last_retry_after, "1");
  assert_int_equal(call_from(f, NULL, revoked_auth), 429);
  assert_int_equal(call_from(f, NULL, NULL), 429);
  /* Another source with a valid token is served. */
  assert_int_equal(call_from(f, "127.0.0.2", auth), 200);
  assert_int_equal(call_from(f, "127.0.0.2", revoked_auth), 403);
  assert_msg("revoked");

  /* After the delay: served again; the next invalid token doubles it. */
  f->clock_ms += 1000;
  assert_int_equal(call_from(f, NULL, auth), 200);
  assert_int_equal(call_from(f, NULL, "Bearer guess-eleven"), 403);
  assert_int_equal(call_from(f, NULL, auth), 429);
  assert_msg("try again in 2 seconds");
  assert_string_equal(last_retry_after, "2");
  assert_false(audit_row(f, "api.unlock", "127.0.0.1", NULL));

  /* An hour after the delay the count is forgotten, and the end audited. */
  f->clock_ms += 2000 + 60 * 60 * 1000;
  assert_int_equal(call_from(f, "127.0.0.2", auth), 200);
  assert_true(audit_row(f, "api.unlock", "127.0.0.1", "\"reason\":\"expired\""));
  assert_int_equal(call_from(f, NULL, "Bearer guess-again"), 403);
  assert_int_equal(call_from(f, NULL, auth), 200);
}

/* ---- store additions used by the API ------------------------------------------------------------ */

static void test_store_cidr(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } ok[] = {
      {"10.0.0.0/8", "10.0.0.0/8"},       {"10.1.2.3/8", "10.0.0.0/8"},   {"192.168.1.1", "192.168.1.1/32"},
      {"0.0.0.0/0", "0.0.0.0/0"},         {"10.1.2.3/23", "10.1.2.0/23"}, {"2001:DB8::1/32", "2001:db8::/32"},
      {"::1", "::1/128"},                 {"fe80::/10", "fe80::/10"},
  };
  static const char *const bad[] = {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0/8", "x", "10.0.0.0/8/8",
                                     "::/129", "10.0.0.0/-1", "10.0.0.0/ 8"};
  wr_store_cidr c, d;
  char out[WR_STORE_CIDR_MAX + 1], err[256];
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    assert_int_equal(wr_store_cidr_parse(ok[i].in, &c, err, sizeof(err)), WR_OK);
    wr_store_cidr_format(&c, out);
    assert_string_equal(out, ok[i].out);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(wr_store_cidr_parse(bad[i], &c, err, sizeof(err)), WR_ERR_INVAL);
  assert_int_equal(wr_store_cidr_parse("10.0.0.0/8", &c, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_cidr_parse("10.255.0.0/16", &d, err, sizeof(err)), WR_OK);
  assert_true(wr_store_cidr_contains(&c, &d));
  assert_false(wr_store_cidr_contains(&d, &c));
  assert_true(wr_store_cidr_contains(&c, &c));
  assert_int_equal(wr_store_cidr_parse("11.0.0.0/16", &d, err, sizeof(err)), WR_OK);
  assert_false(wr_store_cidr_contains(&c, &d));
  assert_int_equal(wr_store_cidr_parse("::/0", &d, err, sizeof(err)), WR_OK);
  assert_false(wr_store_cidr_contains(&d, &c)); /* families never mix */
  assert_int_equal(wr_store_cidr_parse("0.0.0.0/0", &d, err, sizeof(err)), WR_OK);
  assert_true(wr_store_cidr_contains(&d, &c));
}

/* Management tokens (`tail`): signed with DATA_DIR/management.key, for the
 * tunnel and account asked for, the caller as actor, short-lived; both
 * the 2023.7.3 path and the later /management/{resource} one; POST only;
 * another account's tunnel is not found. */
static void test_management_token(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1], err[256];
  uint8_t key[WR_MGMT_KEY_LEN];
  wr_mgmt_claims cl;
  f->cfg.data_dir = f->dir;
  start_api(f);
  create_tunnel(f, "logs", id);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel/%s/management", id),
                        "{\"resources\":[\"logs\"]}"), 200);
  assert_true(json_is_string(last.result));
  const char *tok = json_string_value(last.result);
  assert_int_equal(wr_mgmt_key_load_or_create(f->dir, key, err, sizeof(err)), WR_OK);
  int64_t now = (int64_t)time(NULL);
  assert_int_equal(wr_mgmt_token_verify(tok, strlen(tok), key, sizeof(key), now, &cl), WR_OK);
  assert_string_equal(cl.tunnel_id, id);
  assert_non_null(strstr(cl.actor_id, "api"));
  assert_true(cl.exp > now && cl.exp <= now + WR_MGMT_TOKEN_TTL_S + 5);
  assert_int_equal(wr_mgmt_token_verify(tok, strlen(tok), key, sizeof(key),
                                        now + WR_MGMT_TOKEN_TTL_S + 10, &cl), WR_ERR_DENIED);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel/%s/management/logs", id), NULL), 200);
  assert_true(json_is_string(last.result));
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel/%s/management", id), NULL), 405);
  wr_tunnel other;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->other_acct.id, "theirs", NULL, 0, &other), WR_OK);
  assert_int_equal(call(f, "POST", ap(f, "/cfd_tunnel/%s/management", other.id), NULL), 404);
}

/* WireGuard devices: create (generated and brought keys), the config text,
 * list, get, policy, revoke; every change audited. */
static void test_devices(void **state) {
  fx *f = *state;
  char id[WR_STORE_UUID_LEN + 1], body[512], did[64], path[256];
  /* The API knows the data dir (for the edge's key) and an endpoint. */
  f->cfg.data_dir = f->dir;
  f->cfg.wg_endpoint = "192.0.2.1:51820";
  start_api(f);
  create_tunnel(f, "net", id);
  snprintf(body, sizeof(body), "{\"network\":\"10.1.0.0/16\",\"tunnel_id\":\"%s\"}", id);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), body), 200);
  snprintf(body, sizeof(body), "{\"network\":\"fd99::/64\",\"tunnel_id\":\"%s\"}", id);
  assert_int_equal(call(f, "POST", ap(f, "/teamnet/routes"), body), 200);

  /* Generated key: the private key is in the answer and the config. */
  assert_int_equal(call(f, "POST", ap(f, "/devices"), "{\"name\":\"laptop\"}"), 200);
  snprintf(did, sizeof(did), "%s", rstr("id"));
  assert_string_equal(rstr("ipv4"), "100.96.0.2");
  const char *priv = rstr("private_key"), *conf = rstr("config");
  assert_int_equal(strlen(priv), 44);
  unit_assert_contains(conf,
                       (const char *const[]){priv, "Endpoint = 192.0.2.1:51820\n",
                                             "AllowedIPs = 10.1.0.0/16, fd99::/64\n",
                                             "Address = 100.96.0.2/32, ", "PersistentKeepalive = 25\n",
                                             "\nMTU = 1280\n", NULL},
                       NULL);
  assert_true(audit_has(f, "device.create", did));

  /* Brought key with a policy: no private key, the policy filters AllowedIPs. */
  assert_int_equal(call(f, "POST", ap(f, "/devices"),
                        "{\"name\":\"phone\",\"public_key\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\","
                        "\"allowed\":[\"10.0.0.0/8\"],\"endpoint\":\"[2001:db8::1]:51820\"}"),
                   200);
  assert_null(json_object_get(last.result, "private_key"));
  conf = rstr("config");
  unit_assert_contains(conf,
                       (const char *const[]){"AllowedIPs = 10.1.0.0/16\n",
                                             "Endpoint = [2001:db8::1]:51820\n", NULL},
                       (const char *const[]){"PrivateKey = ", NULL});
  assert_string_equal(json_string_value(json_array_get(json_object_get(last.result, "allowed"), 0)), "10.0.0.0/8");

  /* Bad input. */
  assert_int_equal(call(f, "POST", ap(f, "/devices"), "{\"name\":\"laptop\"}"), 409);
  assert_int_equal(call(f, "POST", ap(f, "/devices"), "{\"name\":\"x\",\"public_key\":\"nope\"}"), 400);
  assert_int_equal(call(f, "POST", ap(f, "/devices"), "{\"name\":\"x\",\"allowed\":\"10.0.0.0/33\"}"), 400);
  assert_int_equal(call(f, "POST", ap(f, "/devices"), "{\"name\":\"x\",\"allowed\":[1]}"), 400);
  assert_int_equal(call(f, "POST", ap(f, "/devices"), "{\"name\":\"x\",\"endpoint\":\"no port\"}"), 400);
  assert_int_equal(call(f, "POST", ap(f, "/devices"), "{}"), 400);
  assert_int_equal(call(f, "PUT", ap(f, "/devices"), "{}"), 405);

  /* List and get. */
  assert_list(f, "/devices", 2);
  snprintf(path, sizeof(path), "/devices/%s?config=true", did);
  assert_int_equal(call(f, "GET", ap(f, "%s", path), NULL), 200);
  assert_string_equal(rstr("name"), "laptop");
  assert_null(strstr(rstr("config"), "PrivateKey = "));
  assert_int_equal(call(f, "GET", ap(f, "/devices/phone"), NULL), 200);
  assert_null(json_object_get(last.result, "config"));
  assert_int_equal(call(f, "GET", ap(f, "/devices/nope"), NULL), 404);
  /* One device takes GET, PATCH and DELETE only: not a method that is a
   * prefix of one of them either. */
  assert_int_equal(call(f, "PUT", ap(f, "/devices/phone"), "{}"), 405);
  assert_int_equal(call(f, "PATC", ap(f, "/devices/phone"), "{}"), 405);

  /* Policy, then revoke by PATCH and DELETE. */
  assert_int_equal(call(f, "PATCH", ap(f, "/devices/laptop"), "{\"allowed\":\"fd00::/8\"}"), 200);
  assert_string_equal(json_string_value(json_array_get(json_object_get(last.result, "allowed"), 0)), "fd00::/8");
  assert_true(audit_has(f, "device.policy", did));
  assert_int_equal(call(f, "PATCH", ap(f, "/devices/laptop"), "{}"), 400);
  assert_int_equal(call(f, "PATCH", ap(f, "/devices/laptop"), "{\"revoked\":true}"), 200);
  assert_true(json_is_string(json_object_get(last.result, "revoked_at")));
  assert_true(audit_has(f, "device.revoke", did));
  assert_int_equal(call(f, "DELETE", ap(f, "/devices/phone"), NULL), 200);
  assert_int_equal(call(f, "DELETE", ap(f, "/devices/phone"), NULL), 404); /* by name: active only */
  snprintf(path, sizeof(path), "/devices/%s", did);
  assert_int_equal(call(f, "DELETE", ap(f, "%s", path), NULL), 400);       /* already revoked */
  assert_list(f, "/devices?active=true", 0);
  assert_list(f, "/devices", 2);

  /* Another account's token sees none of them. */
  wr_user u2;
  char tok2[WR_STORE_TOKEN_LEN + 1], auth[128], other[200];
  wr_api_token t2;
  assert_int_equal(wr_store_user_create(f->s, "test", f->other_acct.id, "o@other.test", NULL, 0, &u2), WR_OK);
  assert_int_equal(wr_store_token_create(f->s, "test", u2.id, NULL, tok2, &t2), WR_OK);
  snprintf(auth, sizeof(auth), "Bearer %s", tok2);
  snprintf(other, sizeof(other), "/client/v4/accounts/%s/devices/%s", f->other_acct.id, did);
  assert_int_equal(call_auth(f, "GET", other, auth, NULL), 404);
}

static void test_store_schema_upgrade(void **state) {
  fx *f = *state;
  /* A version-1 store (as the first edge wrote it) upgrades in place. */
  char err[256];
  assert_int_equal(wr_store_schema_version(f->s), WR_STORE_SCHEMA_VERSION);
  wr_vnet v;
  assert_int_equal(wr_store_vnet_default(f->s, "test", f->acct.id, &v), WR_OK);
  assert_string_equal(v.name, "default");
  assert_true(v.is_default);
  wr_vnet again;
  assert_int_equal(wr_store_vnet_default(f->s, "test", f->acct.id, &again), WR_OK);
  assert_string_equal(again.id, v.id);
  wr_store_close(f->s);
  f->s = NULL;
  /* Drop what versions 2 to 6 added and mark the file version 1. */
  char cmd[768];
  snprintf(cmd, sizeof(cmd),
           "sqlite3 %s 'DROP INDEX connections_edge; ALTER TABLE connections DROP COLUMN edge_id; DROP TABLE edges;"
           " DROP TABLE zone_settings; DROP TABLE access_objects; DROP TABLE access_keys; DROP TABLE devices; DROP TABLE virtual_networks; DROP INDEX ip_routes_vnet; DROP INDEX routes_account;"
           " DROP INDEX tunnels_account; DROP INDEX tunnels_deleted; PRAGMA user_version = 1;' 2>/dev/null",
           f->path);
  if (system(cmd) != 0) {
    /* no sqlite3 CLI: skip the downgrade part */
    assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_OK);
  } else {
    assert_int_equal(wr_store_open(f->path, 0, &f->s, err, sizeof(err)), WR_OK);
    assert_int_equal(wr_store_schema_version(f->s), WR_STORE_SCHEMA_VERSION);
    assert_int_equal(wr_store_vnet_default(f->s, "test", f->acct.id, &v), WR_OK);
  }
  f->cfg.store = f->s;
  start_api(f);
}

/* ---- the tunnel server: limits, closing a deleted tunnel's connections ----------------------------- */

typedef struct cl {
  struct qfx *q;
  wr_quic_endpoint *ep;
  wr_quic_conn *conn;
  wr_registration *reg;
  wr_uuid connector;
  uint8_t index;
  int done, closed;
  wr_registration_result res;
} cl;

typedef struct qfx {
  uv_loop_t loop;
  uv_timer_t guard;
  int timed_out;
  char dir[64], ca[128], cert[128], key[128];
  wr_quic_tls *stls, *ctls;
  wr_quic_config scfg, ccfg;
  wr_quic_endpoint *sep;
  wr_tunnel_server *ts;
  struct sockaddr_storage addr;
  wr_credentials cred;
  cl clients[8];
  size_t n;
} qfx;

static void q_registered(wr_registration *r, void *user, const wr_registration_result *res) {
  cl *c = user;
  c->res = *res;
  c->done = 1;
}

static void q_hs(wr_quic_conn *qc, void *user) {
  cl *c = user;
  wr_registration_config rc;
  memset(&rc, 0, sizeof(rc));
  rc.cred = &c->q->cred;
  rc.connector_id = c->connector;
  rc.conn_index = c->index;
  rc.on_registered = q_registered;
  rc.user = c;
  assert_int_equal(wr_registration_start(qc, &rc, &c->reg), WR_OK);
}

static int q_data(wr_quic_conn *qc, int64_t sid, const uint8_t *d, size_t len, int fin, void *user,
                  void *suser) {
  cl *c = user;
  if (c->reg) wr_registration_stream_data(c->reg, sid, d, len, fin);
  return 0;
}

static void q_close(wr_quic_conn *qc, const wr_quic_close_info *info, void *user) {
  cl *c = user;
  c->closed = 1;
}

static void q_guard(uv_timer_t *t) {
  qfx *q = t->data;
  q->timed_out = 1;
  uv_stop(&q->loop);
}

/* Runs the loop until |pred| holds (checked every millisecond). */
static void q_run_until(qfx *q, int (*pred)(qfx *)) {
  uv_timer_start(&q->guard, q_guard, 5000, 0);
  while (!pred(q) && !q->timed_out) {
    uv_run(&q->loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 1);
  }
  uv_timer_stop(&q->guard);
  assert_false(q->timed_out);
}

static int all_done(qfx *q) {
  for (size_t i = 0; i < q->n; i++)
    if (!q->clients[i].done) return 0;
  return 1;
}

/* Starts a connector connection with (connector |k|, index). */
static cl *q_connect(qfx *q, unsigned k, uint8_t index) {
  static wr_quic_callbacks cbs = {.on_handshake_done = q_hs, .on_stream_data = q_data, .on_close = q_close};
  cl *c = &q->clients[q->n++];
  memset(c, 0, sizeof(*c));
  c->q = q;
  memset(c->connector.b, 0x10 + (int)k, sizeof(c->connector.b));
  c->connector.b[6] = 0x40 | (c->connector.b[6] & 0x0f);
  c->connector.b[8] = 0x80 | (c->connector.b[8] & 0x3f);
  c->index = index;
  assert_int_equal(wr_quic_endpoint_client(&q->loop, q->ctls, &q->ccfg, (struct sockaddr *)&q->addr, &cbs, c,
                                           &c->ep, &c->conn),
                   WR_OK);
  return c;
}

static void q_start(qfx *q, fx *f, const wr_tunnel *t, unsigned max_connectors, unsigned per_connector) {
  char err[256];
  wr_pem_pair ca = {0}, srv = {0};
  static const char *const dns[] = {"quic.cftunnel.com"};
  static const char *const ips[] = {"127.0.0.1"};
  struct sockaddr_in bind;
  memset(q, 0, sizeof(*q));
  snprintf(q->dir, sizeof(q->dir), "%s", f->dir);
  snprintf(q->ca, sizeof(q->ca), "%s/ca.pem", f->dir);
  snprintf(q->cert, sizeof(q->cert), "%s/srv.pem", f->dir);
  snprintf(q->key, sizeof(q->key), "%s/srv.key", f->dir);
  wr_pki_req creq = {.common_name = "Warren test CA", .is_ca = 1, .days = 1};
  assert_int_equal(wr_pki_issue(NULL, &creq, &ca, err, sizeof(err)), 0);
  wr_pki_req sreq = {.common_name = "quic.cftunnel.com", .dns = dns, .n_dns = 1, .ips = ips, .n_ips = 1, .days = 1};
  assert_int_equal(wr_pki_issue(&ca, &sreq, &srv, err, sizeof(err)), 0);
  unit_write_file(q->ca, ca.cert);
  unit_write_file(q->cert, srv.cert);
  unit_write_file(q->key, srv.key);
  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&srv);
  assert_int_equal(uv_loop_init(&q->loop), 0);
  uv_timer_init(&q->loop, &q->guard);
  q->guard.data = q;
  q->ccfg.ca_file = q->ca;
  q->scfg.cert_file = q->cert;
  q->scfg.key_file = q->key;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &q->ccfg, &q->ctls, NULL, 0), WR_OK);
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &q->scfg, &q->stls, NULL, 0), WR_OK);
  wr_tunnel_server_config tc = {.store = f->s, .max_connectors = max_connectors,
                                .max_conns_per_connector = per_connector};
  assert_int_equal(wr_tunnel_server_new(&tc, &q->ts), WR_OK);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(wr_tunnel_server_listen(q->ts, &q->loop, q->stls, &q->scfg, (struct sockaddr *)&bind, &q->sep),
                   WR_OK);
  assert_int_equal(wr_quic_endpoint_addr(q->sep, &q->addr), WR_OK);
  unit_tunnel_cred(t, &q->cred);
}

static void q_stop(qfx *q) {
  wr_tunnel_server_unwatch(q->ts);
  for (size_t i = 0; i < q->n; i++) wr_quic_endpoint_free(q->clients[i].ep);
  wr_quic_endpoint_free(q->sep);
  uv_close((uv_handle_t *)&q->guard, NULL);
  unit_loop_finish(&q->loop);
  wr_tunnel_server_free(q->ts);
  for (size_t i = 0; i < q->n; i++) wr_registration_free(q->clients[i].reg);
  wr_quic_tls_free(q->ctls);
  wr_quic_tls_free(q->stls);
}

static void test_connector_limits(void **state) {
  fx *f = *state;
  qfx *q = calloc(1, sizeof(*q));
  wr_tunnel t;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "limited", NULL, 0, &t), WR_OK);
  q_start(q, f, &t, 2, 2);
  /* connector 0: indexes 0 and 1; connector 1: index 0 */
  q_connect(q, 0, 0);
  q_connect(q, 0, 1);
  q_connect(q, 1, 0);
  q_run_until(q, all_done);
  for (size_t i = 0; i < 3; i++) assert_true(q->clients[i].res.ok);
  assert_int_equal(wr_tunnel_server_count(q->ts, t.id), 3);
  /* a third connector: refused, retryable, with the reason */
  cl *c = q_connect(q, 2, 0);
  q_run_until(q, all_done);
  assert_false(c->res.ok);
  assert_true(c->res.should_retry);
  assert_non_null(strstr(c->res.cause, "already has 2 connectors"));
  /* a third connection of connector 0: refused for good */
  c = q_connect(q, 0, 2);
  q_run_until(q, all_done);
  assert_false(c->res.ok);
  assert_false(c->res.should_retry);
  assert_non_null(strstr(c->res.cause, "already has 2 connections"));
  /* the same (connector, index) again replaces, as before */
  c = q_connect(q, 1, 0);
  q_run_until(q, all_done);
  assert_true(c->res.ok);
  assert_int_equal(wr_tunnel_server_count(q->ts, t.id), 3);
  q_stop(q);
  free(q);
}

static int all_closed(qfx *q) {
  for (size_t i = 0; i < q->n; i++)
    if (q->clients[i].res.ok && !q->clients[i].closed) return 0;
  return 1;
}

static void test_delete_closes_connections(void **state) {
  fx *f = *state;
  qfx *q = calloc(1, sizeof(*q));
  wr_tunnel t, t2;
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "doomed", NULL, 0, &t), WR_OK);
  q_start(q, f, &t, 0, 0);
  q_connect(q, 0, 0);
  q_connect(q, 1, 0);
  q_run_until(q, all_done);
  assert_int_equal(wr_tunnel_server_count(q->ts, t.id), 2);

  /* The API, wired to this tunnel server: delete without cascade is
   * refused while connected; cleanup of one connector closes its QUIC
   * connection; delete -f closes the rest at once. */
  f->cfg.ts = q->ts;
  start_api(f);
  /* (the API's httpd runs on f->loop; pump both) */
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s", t.id), NULL), 400);
  assert_msg("2 active connections");
  char client[WR_UUID_STR_LEN + 1];
  wr_uuid_format(&q->clients[1].connector, client);
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s/connections?client_id=%s", t.id, client), NULL), 200);
  assert_int_equal(wr_tunnel_server_count(q->ts, t.id), 1);
  assert_int_equal(call(f, "DELETE", ap(f, "/cfd_tunnel/%s?cascade=true", t.id), NULL), 200);
  assert_int_equal(wr_tunnel_server_count(q->ts, t.id), 0);
  q_run_until(q, all_closed);
  /* a reconnect is refused: the tunnel is deleted */
  cl *c = q_connect(q, 0, 0);
  q_run_until(q, all_done);
  assert_false(c->res.ok);
  assert_non_null(strstr(c->res.cause, "deleted"));
  f->cfg.ts = NULL;
  start_api(f);

  /* A deletion by another process (the store only): the sweeper closes the
   * connections within one interval. */
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "doomed2", NULL, 0, &t2), WR_OK);
  memcpy(q->cred.secret, t2.secret, t2.secret_len);
  assert_int_equal(wr_uuid_parse(t2.id, strlen(t2.id), &q->cred.tunnel_id), 0);
  size_t first = q->n;
  q_connect(q, 3, 0);
  q_run_until(q, all_done);
  assert_true(q->clients[first].res.ok);
  assert_int_equal(wr_tunnel_server_watch(q->ts, &q->loop, 20), WR_OK);
  assert_int_equal(wr_tunnel_server_watch(q->ts, &q->loop, 20), WR_ERR_INVAL);
  assert_int_equal(wr_tunnel_server_sweep(q->ts), 0); /* nothing deleted yet */
  assert_int_equal(wr_store_tunnel_delete(f->s, "cli", t2.id, NULL), WR_OK);
  q_run_until(q, all_closed);
  assert_int_equal(wr_tunnel_server_count(q->ts, t2.id), 0);
  q_stop(q);
  free(q);
}

/* A store thread whose queue is full: the API answers 503 at once (with
 * Retry-After) instead of queueing or hanging; once the queue drains, the
 * same call works. */
static uv_sem_t gate;

static void gate_fn(wr_store *s, void *arg) {
  (void)s;
  (void)arg;
  uv_sem_wait(&gate);
}
static void nop_fn(wr_store *s, void *arg) {
  (void)s;
  (void)arg;
}
static void count_done(void *arg, int status) {
  (void)status;
  (*(int *)arg)++;
}

static void test_full_store_queue_is_503(void **state) {
  fx *f = *state;
  int delivered = 0;
  assert_int_equal(uv_sem_init(&gate, 0), 0);
  assert_int_equal(wr_store_async_submit(f->async, gate_fn, count_done, &delivered), WR_OK);
  for (int i = 1; i < WR_STORE_ASYNC_QUEUE_MAX; i++)
    assert_int_equal(wr_store_async_submit(f->async, nop_fn, count_done, &delivered), WR_OK);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel"), NULL), 503);
  assert_int_equal(last.code, 1000);
  assert_msg("busy");
  assert_string_equal(last_retry_after, "1");
  uv_sem_post(&gate);
  uint64_t deadline = now_ms() + 10000;
  while (delivered < WR_STORE_ASYNC_QUEUE_MAX && now_ms() < deadline) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(delivered, WR_STORE_ASYNC_QUEUE_MAX);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel"), NULL), 200);
  uv_sem_destroy(&gate);
}

/* With WR_API_STORE_JOBS_MAX API requests waiting on a stalled store
 * thread, the next one is 503 at once while other jobs still fit in the
 * queue; the waiting ones are all answered once the thread goes on. */
static void test_api_store_jobs_are_capped(void **state) {
  fx *f = *state;
  int delivered = 0, fds[WR_API_STORE_JOBS_MAX];
  char raw[512];
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rl = snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\n"
                    "Connection: close\r\n\r\n", ap(f, "/cfd_tunnel"), f->token);
  assert_int_equal(uv_sem_init(&gate, 0), 0);
  assert_int_equal(wr_store_async_submit(f->async, gate_fn, count_done, &delivered), WR_OK);
  for (int i = 0; i < WR_API_STORE_JOBS_MAX; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(send(fds[i], raw, (size_t)rl, MSG_NOSIGNAL), rl);
  }
  /* Every one of them is queued behind the stalled job. */
  uint64_t deadline = now_ms() + 10000;
  while (wr_store_async_pending(f->async) < 1 + WR_API_STORE_JOBS_MAX && now_ms() < deadline)
    uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(wr_store_async_pending(f->async), 1 + WR_API_STORE_JOBS_MAX);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel"), NULL), 503);
  assert_msg("busy");
  assert_string_equal(last_retry_after, "1");
  /* Other work still has room in the queue. */
  assert_int_equal(wr_store_async_submit(f->async, nop_fn, count_done, &delivered), WR_OK);
  uv_sem_post(&gate);
  for (int i = 0; i < WR_API_STORE_JOBS_MAX; i++) {
    char buf[4096];
    size_t len = 0;
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
    for (;;) {
      uv_run(&f->loop, UV_RUN_NOWAIT);
      ssize_t k = recv(fds[i], buf + len, sizeof(buf) - 1 - len, 0);
      if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR) || len == sizeof(buf) - 1) break;
      if (k > 0) len += (size_t)k;
      if (now_ms() > deadline + 10000) fail_msg("request %d was not answered", i);
    }
    buf[len] = '\0';
    assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    close(fds[i]);
  }
  while (delivered < 2) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel"), NULL), 200);
  uv_sem_destroy(&gate);
}

/* Frees the API once its request waits behind the stalled job, then lets
 * the store thread go on. */
static void free_api_when_queued(uv_timer_t *t) {
  fx *f = t->data;
  if (wr_store_async_pending(f->async) < 2) return;
  wr_api_free(f->api);
  f->api = NULL;
  uv_timer_stop(t);
  uv_sem_post(&gate);
}

/* The API freed while a request of its is on the store thread: the
 * request is still answered, and the API is released only after its done
 * callback (ASan: no use after free, no leak). */
static void test_free_while_request_out(void **state) {
  fx *f = *state;
  int delivered = 0;
  uv_timer_t t;
  assert_int_equal(uv_sem_init(&gate, 0), 0);
  assert_int_equal(wr_store_async_submit(f->async, gate_fn, count_done, &delivered), WR_OK);
  uv_timer_init(&f->loop, &t);
  t.data = f;
  uv_timer_start(&t, free_api_when_queued, 1, 1);
  assert_int_equal(call(f, "GET", ap(f, "/cfd_tunnel"), NULL), 200);
  assert_null(f->api);
  assert_int_equal(delivered, 1);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  uv_sem_destroy(&gate);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_FIXTURE(setup, teardown, test_auth, test_token_guessing, test_bad_requests,
                               test_tunnel_lifecycle, test_connections_cleanup_and_cascade,
                               test_limits, test_route_dns, test_route_ip, test_audit_log,
                               test_devices, test_management_token),
                  UNIT_TESTS(test_store_cidr),
                  UNIT_FIXTURE(setup, teardown, test_store_schema_upgrade, test_connector_limits,
                               test_delete_closes_connections),
                  /* Again with the handlers on the store thread. */
                  UNIT_FIXTURE(setup_async, teardown, test_auth, test_token_guessing, test_bad_requests,
                               test_tunnel_lifecycle, test_connections_cleanup_and_cascade,
                               test_limits, test_route_dns, test_route_ip, test_audit_log,
                               test_devices, test_management_token, test_delete_closes_connections,
                               test_full_store_queue_is_503, test_api_store_jobs_are_capped,
                               test_free_while_request_out));
}
