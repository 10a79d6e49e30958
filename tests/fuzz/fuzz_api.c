/* Fuzzes the edge REST API's request handling (src/edge/api*.c).
 *
 * Input: one control byte, then the request target ("/client/v4/...?query")
 * up to the first '\n', then the body. Anywhere in them, the bytes 0x01,
 * 0x02 and 0x03 stand for the account id, the zone id and a tunnel id of
 * the store the target runs against, so the fuzzer reaches the handlers behind
 * the account / zone / tunnel checks. Control bits 0-2 pick the method,
 * bits 3-4 the Authorization field (the valid token, none, a bad one).
 *
 * Each input is run through:
 *   - wr__api_parse_target (path segments, query string, %-decoding): on
 *     success no answer and every segment non-empty; on failure exactly one
 *     400/404 answer;
 *   - the body text as a CIDR (wr_store_cidr_parse: canonical text parses
 *     back to the same network, which contains itself) and as an RFC 3339
 *     time (wr__api_parse_time: formatted back, it parses to the same time);
 *   - wr_api_handle, the whole request, against a store in a temporary file
 *     (recreated every RESET_EVERY inputs so it does not grow without bound):
 *     the request is answered exactly once, with a status of the documented
 *     set and a JSON envelope whose "success" agrees with the status.
 *
 * The answer and the store come from api_harness.h; WR_FUZZ_TRACE=1 prints
 * each request and its answer. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge/api.h"
#include "edge/api_int.h"
#include "edge/store.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/httpd.h"
#include "api_harness.h"

#define RESET_EVERY 4096
#define FUZZ_MAX_INPUT 65536

static void reset_answer(const wr_httpd_req *req) {
  expect_req = req;
  answers = 0;
  status = 0;
}

/* The envelope: {"success":B,"errors":[...],"messages":[],"result":...}. */
static void check_envelope(void) {
  static const int ok_status[] = {200, 400, 403, 404, 405, 409, 429, 500};
  int known = 0;
  for (size_t i = 0; i < sizeof(ok_status) / sizeof(ok_status[0]); i++) known |= status == ok_status[i];
  CHECK(known);
  json_error_t jerr;
  json_t *env = json_loadb(answer, answer_len, 0, &jerr);
  CHECK(env && json_is_object(env));
  json_t *succ = json_object_get(env, "success");
  CHECK(json_is_boolean(succ));
  CHECK(json_is_true(succ) == (status == 200));
  CHECK(json_is_array(json_object_get(env, "errors")));
  CHECK(json_is_array(json_object_get(env, "messages")));
  CHECK(json_object_get(env, "result") != NULL);
  if (status != 200) {
    json_t *e0 = json_array_get(json_object_get(env, "errors"), 0);
    CHECK(json_is_integer(json_object_get(e0, "code")));
    CHECK(json_is_string(json_object_get(e0, "message")));
  }
  json_decref(env);
}

/* ---- the store ---- */

static const harness_opts opts = {"fuzz-api", 16, 16, 0, 1};
static unsigned long runs;
static int trace; /* WR_FUZZ_TRACE set: print each request's answer */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  wr_log_set_level(WR_LOG_OFF);
  trace = getenv("WR_FUZZ_TRACE") != NULL;
  harness_store_open(&opts);
  atexit(harness_at_exit);
  return 0;
}

/* ---- the parts ---- */

static void fuzz_parse_target(const char *path, const char *query) {
  const size_t plen = sizeof(WR_API_PREFIX) - 1;
  wr_httpd_req req;
  wr__api_ctx c;
  memset(&req, 0, sizeof(req));
  memset(&c, 0, sizeof(c));
  req.method = "GET";
  req.path = path;
  req.query = query;
  c.api = api;
  c.req = &req;
  c.method = req.method;
  reset_answer(&req);
  const char *rest = strncmp(path, WR_API_PREFIX, plen) == 0 ? path + plen : path;
  int rv = wr__api_parse_target(&c, rest);
  if (rv == 0) {
    CHECK(answers == 0 && c.req == &req);
    CHECK(c.nsegs <= WR_API_MAX_SEGS && c.nparams <= WR_API_MAX_PARAMS);
    for (size_t i = 0; i < c.nsegs; i++) CHECK(c.segs[i][0] != '\0');
    for (size_t i = 0; i < c.nparams; i++) {
      CHECK(c.params[i].name && c.params[i].value);
      CHECK(wr__api_param(&c, c.params[i].name) != NULL);
    }
  } else {
    CHECK(rv == -1 && answers == 1 && c.req == NULL);
    CHECK(status == 400 || status == 404);
    check_envelope();
  }
  wr__api_ctx_free(&c);
}

static void fuzz_cidr(const char *s) {
  wr_store_cidr a, b;
  char err[256], text[WR_STORE_CIDR_MAX + 1];
  if (wr_store_cidr_parse(s, &a, err, sizeof(err)) != WR_OK) return;
  CHECK(a.bits <= (a.v6 ? 128u : 32u));
  wr_store_cidr_format(&a, text);
  CHECK(strlen(text) <= WR_STORE_CIDR_MAX);
  CHECK(wr_store_cidr_parse(text, &b, err, sizeof(err)) == WR_OK);
  CHECK(a.v6 == b.v6 && a.bits == b.bits && memcmp(a.addr, b.addr, a.v6 ? 16 : 4) == 0);
  CHECK(wr_store_cidr_contains(&a, &b) && wr_store_cidr_contains(&b, &a));
}

static void fuzz_time(const char *s) {
  int64_t t, t2;
  if (wr__api_parse_time(s, &t) != 0) return;
  /* Years 1000..9999 print as four digits, which is what parses back. */
  if (t == 0 || t < -30610224000LL || t > 253402300799LL) return;
  json_t *j = wr__api_time(t);
  CHECK(json_is_string(j));
  CHECK(wr__api_parse_time(json_string_value(j), &t2) == 0 && t2 == t);
  json_decref(j);
}

static void fuzz_request(const char *method, const char *target, const char *path,
                         const char *query, const char *auth, const uint8_t *body, size_t body_len) {
  wr_http_header hdrs[2];
  size_t nh = 0;
  if (auth) hdrs[nh++] = (wr_http_header){"Authorization", 13, auth, strlen(auth)};
  hdrs[nh++] = (wr_http_header){"Content-Type", 12, "application/json", 16};
  wr_httpd_req req = {.method = method, .target = target, .path = path, .query = query,
                      .headers = hdrs, .nheaders = nh, .body = body, .body_len = body_len};
  reset_answer(&req);
  const size_t plen = sizeof(WR_API_PREFIX) - 1;
  /* The API's paths: /client/v4 and under it, and the quick-tunnel service's /tunnel. */
  int mine = (strncmp(path, WR_API_PREFIX, plen) == 0 && (!path[plen] || path[plen] == '/')) ||
             strcmp(path, "/tunnel") == 0;
  int rv = wr_api_handle(api, &req);
  CHECK(rv == mine);
  if (!rv) {
    CHECK(answers == 0);
    return;
  }
  CHECK(answers == 1);
  if (trace) fprintf(stderr, "%s %s -> %d %.300s\n", method, target, status, answer);
  check_envelope();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "GET", "OPTIONS"};
  static char target[FUZZ_MAX_INPUT * (WR_STORE_UUID_LEN + 1) + 1], path[sizeof(target)];
  char auth[WR_STORE_TOKEN_LEN + 16];
  if (size < 1) return 0;
  if (++runs % RESET_EVERY == 0) {
    harness_store_close();
    harness_store_open(&opts);
  }
  uint8_t ctl = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  /* Placeholders replaced everywhere (a body names tunnels too). */
  static uint8_t x[FUZZ_MAX_INPUT * (WR_STORE_UUID_LEN + 1) + 1];
  if (n > FUZZ_MAX_INPUT) return 0;
  size_t xn = 0;
  for (size_t i = 0; i < n; i++) {
    const char *sub = d[i] == 1 ? account.id : d[i] == 2 ? zone.id : d[i] == 3 ? tunnel.id : NULL;
    if (sub) {
      memcpy(x + xn, sub, strlen(sub));
      xn += strlen(sub);
    } else {
      x[xn++] = d[i];
    }
  }
  const uint8_t *nl = memchr(x, '\n', xn);
  size_t tlen = nl ? (size_t)(nl - x) : xn;
  /* The target ends at a NUL byte, as httpd's strings do. */
  const uint8_t *z = memchr(x, '\0', tlen);
  size_t o = z ? (size_t)(z - x) : tlen;
  memcpy(target, x, o);
  target[o] = '\0';
  memcpy(path, target, o + 1);
  char *q = strchr(path, '?');
  const char *query = "";
  if (q) {
    *q = '\0';
    query = q + 1;
  }
  /* The body, copied to its own allocation so overreads are caught. */
  const uint8_t *b = nl ? nl + 1 : x + xn;
  size_t blen = (size_t)(x + xn - b);
  uint8_t *body = malloc(blen + 1);
  CHECK(body);
  memcpy(body, b, blen);
  body[blen] = '\0';

  fuzz_parse_target(path, query);
  if (blen < 256 && !memchr(body, '\0', blen)) {
    fuzz_cidr((const char *)body);
    fuzz_time((const char *)body);
  }
  const char *a = NULL;
  switch ((ctl >> 3) & 3) {
  case 0:
  case 3:
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    a = auth;
    break;
  case 1: a = NULL; break;
  case 2: a = "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; break;
  }
  fuzz_request(methods[ctl & 7], target, path, query, a, body, blen);
  free(body);
  return 0;
}
