/* REST API: router, authentication, envelope and request parsing; see api.h. */
#include "edge/api.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/api_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strpack.h"

/* ---- answers ----------------------------------------------------------------- */

void wr__api_send(wr_api *a, wr_httpd_req *req, int status, json_t *env, const char *retry_after) {
  /* Exactly "application/json": cloudflared reads errors[] only then. */
  wr_http_header hdrs[3] = {
      {"Content-Type", 12, "application/json", 16},
      {"Cache-Control", 13, "no-store", 8},
  };
  size_t nh = 2;
  if (retry_after) hdrs[nh++] = (wr_http_header){"Retry-After", 11, retry_after, strlen(retry_after)};
  char *text = json_dumps(env, JSON_COMPACT);
  json_decref(env);
  if (!req) {
    free(text);
    return;
  }
  /* Every API answer passes here: the one place to count them. */
  a->stats.responses_by_class[(text ? status : 500) / 100 % 6]++;
  if (!text) {
    static const char fallback[] =
        "{\"success\":false,\"errors\":[{\"code\":1000,\"message\":\"cannot encode the answer\"}],"
        "\"messages\":[],\"result\":null}";
    wr_httpd_respond(req, 500, hdrs, 2, fallback, sizeof(fallback) - 1);
  } else {
    wr_httpd_respond(req, status, hdrs, nh, text, strlen(text));
  }
  free(text);
}

static void send_json(wr__api_ctx *c, int status, json_t *env) {
  if (c->capture) {
    json_decref(c->captured);
    c->captured = env;
    c->captured_status = status;
    c->req = NULL;
    return;
  }
  wr_httpd_req *req = c->req;
  c->req = NULL;
  wr__api_send(c->api, req, status, env, c->retry_after);
}

void wr__api_ok(wr__api_ctx *c, json_t *result, json_t *info) {
  json_t *env = json_pack("{s:b,s:[],s:[],s:o}", "success", 1, "errors", "messages", "result",
                          result ? result : json_null());
  if (info) json_object_set_new(env, "result_info", info);
  send_json(c, 200, env);
}

static void err_v(wr__api_ctx *c, int status, int code, const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  /* Messages quote user input; keep the JSON valid whatever the bytes. */
  json_t *m = json_string(msg);
  if (!m) m = json_string("invalid request (the message is not UTF-8)");
  json_t *env = json_pack("{s:b,s:[{s:i,s:o}],s:[],s:n}", "success", 0, "errors", "code", code,
                          "message", m, "messages", "result");
  wr_debug("api: %s %s -> %d %d %s", c->method, c->req ? c->req->path : "-", status, code, msg);
  send_json(c, status, env);
}

void wr__api_err(wr__api_ctx *c, int status, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err_v(c, status, code, fmt, ap);
  va_end(ap);
}

void wr__api_store_err(wr__api_ctx *c, int rv, const char *what) {
  const char *msg = wr_store_errmsg(c->store);
  int status, code;
  switch (rv) {
  case WR_ERR_INVAL:
    status = 400;
    code = WR_API_CODE_INVALID;
    break;
  case WR_ERR_LIMIT:
    status = 400;
    code = WR_API_CODE_LIMIT;
    break;
  case WR_ERR_NOTFOUND:
    status = 404;
    code = WR_API_CODE_NOTFOUND;
    break;
  case WR_ERR_EXISTS:
    status = 409;
    code = WR_API_CODE_CONFLICT;
    break;
  case WR_ERR_DENIED:
    status = 403;
    code = WR_API_CODE_AUTH;
    break;
  default:
    wr_error("api: %s %s: store: %s", c->method, c->req ? c->req->path : "-", msg);
    /* The database is down: nothing was written, and a retry may work. */
    status = rv == WR_ERR_STORE && wr_store_unavailable(c->store) ? 503 : 500;
    code = WR_API_CODE_INTERNAL;
    break;
  }
  if (what) wr__api_err(c, status, code, "%s: %s", what, msg[0] ? msg : wr_strerror(rv));
  else wr__api_err(c, status, code, "%s", msg[0] ? msg : wr_strerror(rv));
}

int wr__api_owned(wr__api_ctx *c, int rv, const char *account_id, const char *fmt, ...) {
  if (rv == WR_OK && strcasecmp(account_id, c->token.account_id) == 0) return 0;
  if (rv == WR_OK) {
    va_list ap;
    va_start(ap, fmt);
    err_v(c, 404, WR_API_CODE_NOTFOUND, fmt, ap);
    va_end(ap);
  } else {
    wr__api_store_err(c, rv, NULL);
  }
  return -1;
}

void wr__api_no_route(wr__api_ctx *c) {
  wr__api_err(c, 404, WR_API_CODE_NO_ROUTE, "no such endpoint: %s %.200s", c->method, c->req->path);
}

void wr__api_method(wr__api_ctx *c, const char *allowed) {
  wr__api_err(c, 405, WR_API_CODE_METHOD, "method %s is not allowed here (allowed: %s)", c->method,
              allowed);
}

/* 1 when the request's method is one of |allowed| ("GET, PATCH, DELETE");
 * otherwise answers 405 with |allowed| (wr__api_method) and returns 0. */
static int api_allow(wr__api_ctx *c, const char *allowed) {
  size_t n = strlen(c->method);
  for (const char *p = allowed; *p; p += strspn(p, ", ")) {
    size_t len = strcspn(p, ", ");
    if (len == n && memcmp(p, c->method, n) == 0) return 1;
    p += len;
  }
  wr__api_method(c, allowed);
  return 0;
}

void wr__api_collection(wr__api_ctx *c, void (*list)(wr__api_ctx *c), void (*create)(wr__api_ctx *c)) {
  if (strcmp(c->method, "GET") == 0) list(c);
  else if (strcmp(c->method, "POST") == 0) create(c);
  else wr__api_method(c, "GET, POST");
}

int wr__api_resource(wr__api_ctx *c, size_t nsegs, void (*list)(wr__api_ctx *c),
                     void (*create)(wr__api_ctx *c), const char *item_methods) {
  if (c->nsegs == nsegs) {
    wr__api_collection(c, list, create);
    return 0;
  }
  if (c->nsegs != nsegs + 1) {
    wr__api_no_route(c);
    return 0;
  }
  return api_allow(c, item_methods);
}

/* ---- request parts ------------------------------------------------------------- */

int wr__api_unescape(char *in) {
  size_t n = strlen(in);
  return wr_pct_decode(in, n, 0, in, n + 1) < 0 ? -1 : 0; /* in place: never longer */
}

const char *wr__api_param(const wr__api_ctx *c, const char *name) {
  for (size_t i = 0; i < c->nparams; i++)
    if (strcmp(c->params[i].name, name) == 0) return c->params[i].value;
  return NULL;
}

int wr__api_param_bool(wr__api_ctx *c, const char *name) {
  const char *v = wr__api_param(c, name);
  if (!v) return -1;
  if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0) return 1;
  if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0) return 0;
  if (!*v) return -1;
  wr__api_err(c, 400, WR_API_CODE_INVALID, "query parameter %s must be true or false", name);
  return -2;
}

int wr__api_param_time(wr__api_ctx *c, const char *name, int64_t *out) {
  const char *v = wr__api_param(c, name);
  *out = 0;
  if (!v || !*v) return 0;
  if (wr__api_parse_time(v, out) != 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID,
                "query parameter %s must be an RFC 3339 time such as 2024-01-01T00:00:00Z", name);
    return -1;
  }
  return 0;
}

static int parse_size(const char *v, size_t min, size_t max, size_t *out) {
  char *end;
  if (!v || !isdigit((unsigned char)v[0])) return -1;
  unsigned long long n = strtoull(v, &end, 10);
  if (*end || n < min || n > max) return -1;
  *out = (size_t)n;
  return 0;
}

int wr__api_paging(wr__api_ctx *c, size_t def_per_page, size_t *page, size_t *per_page, int *paged) {
  const char *p = wr__api_param(c, "page"), *pp = wr__api_param(c, "per_page");
  *page = 1;
  *per_page = def_per_page;
  *paged = (p && *p) || (pp && *pp);
  if (p && *p && parse_size(p, 1, 1000000, page) != 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "query parameter page must be a number from 1");
    return -1;
  }
  if (pp && *pp && parse_size(pp, 1, WR_API_PER_PAGE_MAX, per_page) != 0) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "query parameter per_page must be a number from 1 to %d",
                WR_API_PER_PAGE_MAX);
    return -1;
  }
  return 0;
}

json_t *wr__api_result_info(size_t page, size_t per_page, size_t count, size_t total) {
  size_t pages = per_page ? (total + per_page - 1) / per_page : 1;
  return json_pack("{s:I,s:I,s:I,s:I,s:I}", "page", (json_int_t)page, "per_page", (json_int_t)per_page,
                   "count", (json_int_t)count, "total_count", (json_int_t)total, "total_pages",
                   (json_int_t)pages);
}

json_t *wr__api_body(wr__api_ctx *c) {
  json_error_t jerr;
  if (c->body) return c->body;
  if (!c->req->body_len) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "this request needs a JSON body");
    return NULL;
  }
  c->body = json_loadb((const char *)c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!c->body) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "the body is not valid JSON: %s (line %d)", jerr.text,
                jerr.line);
    return NULL;
  }
  if (!json_is_object(c->body)) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "the body must be a JSON object");
    return NULL;
  }
  return c->body;
}

const char *wr__api_json_str(wr__api_ctx *c, json_t *obj, const char *key, int *bad) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return NULL;
  if (!json_is_string(v)) {
    if (!*bad) wr__api_err(c, 400, WR_API_CODE_INVALID, "field %s must be a string", key);
    *bad = 1;
    return NULL;
  }
  return json_string_value(v);
}

/* ---- time ------------------------------------------------------------------------- */

json_t *wr__api_time(int64_t t) {
  char buf[32];
  struct tm tm;
  time_t tt = (time_t)t;
  if (!t || !gmtime_r(&tt, &tm)) return json_null();
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_string(buf);
}

/* "+hh:mm", "-hh:mm", "Z" or "z" at |*s|: the offset in seconds east of
 * UTC; advances |*s|. Returns 0 or -1. */
static int parse_offset(const char **s, long *off) {
  const char *p = *s;
  int oh, om, n = 0;
  *off = 0;
  if (*p == 'Z' || *p == 'z') {
    *s = p + 1;
    return 0;
  }
  if (*p != '+' && *p != '-') return -1;
  if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59) return -1;
  *off = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
  *s = p + 1 + n;
  return 0;
}

/* "YYYY-MM-DD" then T, t or a space, then "hh:mm:ss" and an optional
 * fraction (digits, ignored) into |tm|; advances |*s|. Returns 0 or -1. */
static int parse_date_time(const char **s, struct tm *tm) {
  const char *p = *s;
  int y, mo, d, h, mi, sec, n = 0;
  if (sscanf(p, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return -1;
  p += n;
  if (*p != 'T' && *p != 't' && *p != ' ') return -1;
  p++;
  if (sscanf(p, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8) return -1;
  p += n;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p)) return -1;
    while (isdigit((unsigned char)*p)) p++;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
  memset(tm, 0, sizeof(*tm));
  tm->tm_year = y - 1900;
  tm->tm_mon = mo - 1;
  tm->tm_mday = d;
  tm->tm_hour = h;
  tm->tm_min = mi;
  tm->tm_sec = sec;
  *s = p;
  return 0;
}

int wr__api_parse_time(const char *s, int64_t *out) {
  struct tm tm;
  long off;
  if (parse_date_time(&s, &tm) != 0 || parse_offset(&s, &off) != 0 || *s) return -1;
  *out = (int64_t)timegm(&tm) - off;
  return 0;
}

/* ---- routing ----------------------------------------------------------------------- */

/* Splits the path after the prefix into decoded segments and the query
 * into parameters. Returns 0, or -1 after answering 400/404. */
int wr__api_parse_target(wr__api_ctx *c, const char *rest) {
  const char *p = rest;
  while (*p == '/') p++;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (c->nsegs == WR_API_MAX_SEGS) {
      wr__api_err(c, 404, WR_API_CODE_NO_ROUTE, "no such endpoint: %s", c->req->path);
      return -1;
    }
    char *seg = wr_xstrndup(p, len);
    c->segs[c->nsegs++] = seg;
    if (wr__api_unescape(seg) != 0) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "the path has a bad %%-escape");
      return -1;
    }
    p += len;
    while (*p == '/') p++;
  }
  for (p = c->req->query; *p;) {
    const char *e = strchr(p, '&');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len) {
      if (c->nparams == WR_API_MAX_PARAMS) {
        wr__api_err(c, 400, WR_API_CODE_INVALID, "too many query parameters (at most %d)",
                    WR_API_MAX_PARAMS);
        return -1;
      }
      char *kv = wr_xstrndup(p, len), *eq = strchr(kv, '=');
      wr__api_kv *pr = &c->params[c->nparams++];
      if (eq) *eq = '\0';
      for (char *q = kv; *q; q++)
        if (*q == '+') *q = ' ';
      pr->name = kv;
      pr->value = wr_xstrdup(eq ? eq + 1 : "");
      for (char *q = pr->value; *q; q++)
        if (*q == '+') *q = ' ';
      if (wr__api_unescape(pr->name) != 0 || wr__api_unescape(pr->value) != 0) {
        wr__api_err(c, 400, WR_API_CODE_INVALID, "the query has a bad %%-escape");
        return -1;
      }
    }
    p += len;
    if (*p == '&') p++;
  }
  return 0;
}

static const wr_http_header *find_header(const wr_httpd_req *req, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->nheaders; i++)
    if (req->headers[i].name_len == n && strncasecmp(req->headers[i].name, name, n) == 0)
      return &req->headers[i];
  return NULL;
}

/* ---- token guessing ------------------------------------------------------------ */

#define API_SOURCE_FREE_FAILURES 10 /* default of token_throttle.free_failures */
#define API_SWEEP_EVERY_MS 10000

static uint64_t api_now(const wr_api *a) {
  return a->now_ms ? a->now_ms(a->now_user) : uv_hrtime() / 1000000;
}

/* An api.lock or api.unlock row for |source|, within the audit budget. */
static void lock_audit(wr_api *a, const char *action, const char *source, const wr_throttle_info *info,
                       uint64_t now) {
  char detail[256];
  if (!wr_ratelimit_take(&a->audit_rl, now)) return;
  uint64_t dropped = wr_ratelimit_take_dropped(&a->audit_rl);
  if (dropped)
    wr_warn("api: %llu token lockout audit rows were not written (more than the audit budget of %u at once)",
            (unsigned long long)dropped, a->audit_rl.burst);
  /* Source keys are addresses: nothing to escape. */
  if (!strcmp(action, "api.lock"))
    snprintf(detail, sizeof(detail), "{\"source\":\"%s\",\"failures\":%u,\"retry_after_s\":%llu}", source,
             info->failures, (unsigned long long)((info->wait_ms + 999) / 1000));
  else
    snprintf(detail, sizeof(detail), "{\"source\":\"%s\",\"failures\":%u,\"reason\":\"expired\"}", source,
             info->failures);
  /* With a store thread the row is written there; nobody waits for it. */
  wr_store_async_audit(a->async, a->store, "api", "edge", NULL, NULL, action, "source", source, detail);
}

typedef struct sweep_ctx {
  wr_api *a;
  uint64_t now;
} sweep_ctx;

static void on_unlocked(void *user, const char *key, const wr_throttle_info *info) {
  sweep_ctx *sc = user;
  wr_info("api: the lockout of API requests from %s ended", key);
  lock_audit(sc->a, "api.unlock", key, info, sc->now);
}

/* Lockouts ending by time are found here, at most every few seconds: the
 * API has no timer of its own. */
static void maybe_sweep(wr_api *a, uint64_t now) {
  if (now < a->next_sweep) return;
  sweep_ctx sc = {a, now};
  a->next_sweep = now + API_SWEEP_EVERY_MS;
  wr_throttle_sweep(a->tokens, now, on_unlocked, &sc);
}

/* A token that is not valid came from |source|. */
static void token_failed(wr_api *a, const char *source, uint64_t now) {
  wr_throttle_info info;
  wr_throttle_record(a->tokens, source, now, WR_THROTTLE_FAILURE, &info);
  if (info.events & WR_THROTTLE_UNLOCKED) {
    wr_info("api: the lockout of API requests from %s ended", source);
    lock_audit(a, "api.unlock", source, &info, now);
  }
  if (info.events & WR_THROTTLE_LOCKED) {
    wr_warn("api: %u requests with an invalid API token from %s: its API requests wait %llu s, doubling with "
            "each further invalid token", info.failures, source, (unsigned long long)((info.wait_ms + 999) / 1000));
    lock_audit(a, "api.lock", source, &info, now);
  }
}

static const char login_again[] =
    "run `warren tunnel login` (or `cloudflared tunnel login`) to get a new cert.pem, or ask the "
    "edge's administrator for one";

int wr__api_auth_pre(wr__api_ctx *c, char *token) {
  const wr_http_header *h = find_header(c->req, "Authorization");
  size_t len;
  uint64_t wait;
  c->now = api_now(c->api);
  maybe_sweep(c->api, c->now);
  wr_throttle_source_key(&c->req->peer, c->source);
  if ((wait = wr_throttle_check(c->api->tokens, c->source, c->now)) != 0) {
    /* Answered before the token is looked at: a guesser learns nothing,
     * whatever it sent. */
    char ra[24];
    uint64_t sec = (wait + 999) / 1000;
    snprintf(ra, sizeof(ra), "%llu", (unsigned long long)sec);
    c->retry_after = ra;
    c->api->stats.tokens_throttled++;
    wr__api_err(c, 429, WR_API_CODE_RATE_LIMIT,
                "Too many requests with an invalid API token from your address; try again in %llu "
                "second%s",
                (unsigned long long)sec, sec == 1 ? "" : "s");
    c->retry_after = NULL;
    return -1;
  }
  if (!h) {
    wr__api_err(c, 403, WR_API_CODE_AUTH,
                "Authentication error: the request has no \"Authorization: Bearer <token>\" field; "
                "cloudflared and warren send the apiToken of cert.pem (--origincert)");
    return -1;
  }
  const char *v = h->value;
  len = h->value_len;
  if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0) {
    wr__api_err(c, 403, WR_API_CODE_AUTH,
                "Authentication error: only \"Authorization: Bearer <token>\" is accepted");
    return -1;
  }
  v += 7;
  len -= 7;
  while (len && *v == ' ') {
    v++;
    len--;
  }
  while (len && v[len - 1] == ' ') len--;
  if (!len || len > WR_API_BEARER_MAX || memchr(v, '\0', len)) {
    wr__api_err(c, 403, WR_API_CODE_AUTH, "Authentication error: the API token is empty or malformed; %s",
                login_again);
    return -1;
  }
  memcpy(token, v, len);
  token[len] = '\0';
  return 0;
}

int wr__api_auth_token(wr__api_ctx *c, char *token) {
  int rv = wr_store_token_verify(c->store, token, &c->token);
  explicit_bzero(token, WR_API_BEARER_MAX + 1);
  if (rv == WR_ERR_DENIED) {
    c->token_denied = 1;
    /* Unknown and revoked look the same from here, on purpose. */
    wr__api_err(c, 403, WR_API_CODE_AUTH,
                "Authentication error: the API token in your cert.pem is not valid on this edge "
                "(it was revoked or replaced, for example by a token roll or a newer login); %s",
                login_again);
    return -1;
  }
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, "checking the API token");
    return -1;
  }
  wr_user u;
  if (wr_store_user_get(c->store, c->token.user_id, &u) == WR_OK)
    snprintf(c->actor, sizeof(c->actor), "api:%s", u.email);
  else
    snprintf(c->actor, sizeof(c->actor), "api:token:%s", c->token.id);
  return 0;
}

void wr__api_token_failed(wr__api_ctx *c) { token_failed(c->api, c->source, c->now); }

/* GET /user/tokens/verify: whether the token works, as Cloudflare's. */
static void token_verify(wr__api_ctx *c) {
  if (strcmp(c->method, "GET") != 0) {
    wr__api_method(c, "GET");
    return;
  }
  wr__api_ok(c,
             json_pack("{s:s,s:s,s:s,s:s?,s:o}", "id", c->token.id, "status", "active", "account_id",
                       c->token.account_id, "zone_id", c->token.zone_id[0] ? c->token.zone_id : NULL,
                       "not_before", wr__api_time(c->token.created_at)),
             NULL);
}

void wr__api_route(wr__api_ctx *c) {
  char **s = c->segs;
  if (c->nsegs == 3 && strcmp(s[0], "user") == 0 && strcmp(s[1], "tokens") == 0 &&
      strcmp(s[2], "verify") == 0) {
    token_verify(c);
  } else if (c->nsegs >= 3 && strcmp(s[0], "accounts") == 0 &&
             strcasecmp(s[1], c->token.account_id) != 0) {
    wr__api_err(c, 403, WR_API_CODE_AUTH,
                "Authentication error: this API token is not valid for account %.64s; the "
                "accountID of cert.pem must be the account the token belongs to",
                s[1]);
  } else if (c->nsegs >= 3 && strcmp(s[0], "accounts") == 0 && strcmp(s[2], "cfd_tunnel") == 0) {
    wr__api_tunnels(c);
  } else if (c->nsegs >= 3 && strcmp(s[0], "accounts") == 0 && strcmp(s[2], "teamnet") == 0) {
    wr__api_teamnet(c);
  } else if (c->nsegs >= 3 && strcmp(s[0], "accounts") == 0 && strcmp(s[2], "devices") == 0) {
    wr__api_devices(c);
  } else if (c->nsegs >= 4 && strcmp(s[0], "accounts") == 0 && strcmp(s[2], "access") == 0) {
    wr__api_access(c);
  } else if (c->nsegs >= 3 && strcmp(s[0], "accounts") == 0 && strcmp(s[2], "audit_logs") == 0) {
    wr__api_audit(c);
  } else if (c->nsegs >= 3 && strcmp(s[0], "zones") == 0) {
    wr__api_zones(c);
  } else {
    wr__api_no_route(c);
  }
}

void wr__api_ctx_free(wr__api_ctx *c) {
  for (size_t i = 0; i < c->nsegs; i++) free(c->segs[i]);
  for (size_t i = 0; i < c->nparams; i++) {
    free(c->params[i].name);
    free(c->params[i].value);
  }
  json_decref(c->body);
  json_decref(c->captured);
  free(c->route_evs);
  explicit_bzero(&c->token, sizeof(c->token));
}

int wr_api_handle(wr_api *a, wr_httpd_req *req) {
  const size_t plen = sizeof(WR_API_PREFIX) - 1;
  char token[WR_API_BEARER_MAX + 1];
  int quick = strcmp(req->path, "/tunnel") == 0;
  if (!quick && (strncmp(req->path, WR_API_PREFIX, plen) != 0 || (req->path[plen] && req->path[plen] != '/')))
    return 0;
  wr__api_ctx *c = wr_xcalloc(1, sizeof(*c));
  c->api = a;
  c->store = a->store;
  c->req = req;
  c->method = req->method;
  if (quick) {
    if (wr__api_quick_pre(c) == 0) {
      if (a->async) {
        wr__api_submit(c, NULL); /* owns |c| now */
        return 1;
      }
      wr__api_quick(c);
    }
  } else if (wr__api_parse_target(c, req->path + plen) == 0 && wr__api_auth_pre(c, token) == 0) {
    if (a->async) {
      wr__api_submit(c, token); /* owns |c| now */
      return 1;
    }
    if (wr__api_auth_token(c, token) == 0) wr__api_route(c);
    else if (c->token_denied) wr__api_token_failed(c);
  }
  if (c->req) wr__api_err(c, 500, WR_API_CODE_INTERNAL, "internal error: the request was not answered");
  wr__api_ctx_free(c);
  free(c);
  return 1;
}

static int call_as(wr_api *a, wr_store *s, const wr_user *user, const char *method, const char *path,
                   const char *query, const char *body, json_t **env) {
  const size_t plen = sizeof(WR_API_PREFIX) - 1;
  char full[1024];
  *env = NULL;
  if (!a || !user || !method || !path || path[0] != '/' || strlen(path) + plen >= sizeof(full)) return 400;
  snprintf(full, sizeof(full), WR_API_PREFIX "%s", path);
  /* The request as the handlers read it: path, query, body; no peer (no
   * token is checked, so no source is throttled). */
  wr_httpd_req req;
  memset(&req, 0, sizeof(req));
  req.method = method;
  req.target = full;
  req.path = full;
  req.query = query ? query : "";
  req.body = (const uint8_t *)body;
  req.body_len = body ? strlen(body) : 0;
  wr__api_ctx c;
  memset(&c, 0, sizeof(c));
  c.api = a;
  c.store = s;
  c.on_worker = s != a->store;
  c.req = &req;
  c.method = method;
  c.capture = 1;
  /* The user's authority, as a token of theirs not limited to a zone has. */
  snprintf(c.token.id, sizeof(c.token.id), "%s", "session");
  snprintf(c.token.user_id, sizeof(c.token.user_id), "%s", user->id);
  snprintf(c.token.account_id, sizeof(c.token.account_id), "%s", user->account_id);
  snprintf(c.actor, sizeof(c.actor), "dash:%s", user->email);
  if (wr__api_parse_target(&c, path) == 0) wr__api_route(&c);
  if (c.req) wr__api_err(&c, 500, WR_API_CODE_INTERNAL, "internal error: the request was not answered");
  /* The hooks, on the loop (the caller's answer waits for them, as an
   * API client's does). */
  if (c.on_worker && (c.nroute_evs || c.access_changed) &&
      wr_store_async_on_loop(a->async, wr__api_deliver, &c) != WR_OK)
    wr_warn("api: %s %s: the edge is stopping; its route and Access hooks were not told", method, path);
  int status = c.captured_status;
  *env = c.captured;
  c.captured = NULL;
  wr__api_ctx_free(&c);
  return status;
}

int wr_api_call(wr_api *a, const wr_user *user, const char *method, const char *path,
                const char *query, const char *body, json_t **env) {
  return call_as(a, a->store, user, method, path, query, body, env);
}

int wr_api_call_store(wr_api *a, wr_store *s, const wr_user *user, const char *method,
                      const char *path, const char *query, const char *body, json_t **env) {
  *env = NULL;
  if (!a || !s || (s != a->store && !a->async)) return 400;
  return call_as(a, s, user, method, path, query, body, env);
}

void wr_api_httpd_handler(wr_httpd *h, wr_httpd_req *req, void *user) {
  (void)h;
  if (wr_api_handle(user, req)) return;
  static const char body[] =
      "{\"success\":false,\"errors\":[{\"code\":7003,\"message\":\"no such endpoint; the API is under "
      "/client/v4\"}],\"messages\":[],\"result\":null}";
  wr_httpd_respond_simple(req, 404, "application/json", body, sizeof(body) - 1);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

/* wr_api_free ran and the last job on the store thread is back. */
static void api_release(wr_owner *o) {
  wr_api *a = WR_OWNER_OBJ(o, wr_api, jobs);
  wr_throttle_free(a->tokens);
  wr_throttle_free(a->quick_rl);
  free(a->strs);
  free(a);
}

/* An optional string option: NULL when not given or "". */
static const char *or_null(const char *s) { return s && *s ? s : NULL; }

int wr_api_new(const wr_api_config *cfg, wr_api **out) {
  *out = NULL;
  if (!cfg || !cfg->store) return WR_ERR_INVAL;
  wr_api *a = wr_xcalloc(1, sizeof(*a));
  wr_owner_init(&a->jobs, api_release);
  a->store = cfg->store;
  a->async = cfg->async;
  a->ts = cfg->ts;
  a->max_tunnels = cfg->max_tunnels ? cfg->max_tunnels : WR_API_MAX_TUNNELS_DEFAULT;
  a->max_routes = cfg->max_routes ? cfg->max_routes : WR_API_MAX_ROUTES_DEFAULT;
  const char *quick = or_null(cfg->quick_account);
  const wr_strcopy strs[] = {{or_null(cfg->cname_domain), &a->cname_domain},
                             {or_null(cfg->location), &a->location},
                             {or_null(cfg->data_dir), &a->data_dir},
                             {or_null(cfg->wg_endpoint), &a->wg_endpoint},
                             {quick, &a->quick_account},
                             {quick ? or_null(cfg->quick_zone) : NULL, &a->quick_zone}};
  a->strs = wr_strpack(strs, sizeof(strs) / sizeof(strs[0]));
  if (a->cname_domain) {
    size_t n = strlen(a->cname_domain);
    if (n && a->cname_domain[n - 1] == '.') a->cname_domain[n - 1] = '\0';
  }
  a->on_route = cfg->on_route;
  a->route_user = cfg->route_user;
  a->on_access_change = cfg->on_access_change;
  a->access_user = cfg->access_user;
  a->now_ms = cfg->now_ms;
  a->now_user = cfg->now_user;
  if (quick) {
    a->quick_max = cfg->quick_max ? cfg->quick_max : 100;
    a->quick_idle_s = cfg->quick_idle_s > 0 ? cfg->quick_idle_s : 300;
    a->quick_url_port = cfg->quick_url_port;
    /* Every creation counts; after quick_per_source the source waits a
     * minute, doubling up to an hour, and is forgotten after an hour. */
    wr_throttle_config qcfg = {.free_failures = cfg->quick_per_source ? cfg->quick_per_source : 5,
                               .base_delay_ms = 60000, .max_delay_ms = 3600000,
                               .forget_ms = 3600000};
    if (wr_throttle_new(&qcfg, &a->quick_rl) != WR_OK) {
      wr_api_free(a);
      return WR_ERR_NOMEM;
    }
  }
  wr_throttle_config tcfg = cfg->token_throttle;
  if (!tcfg.free_failures) tcfg.free_failures = API_SOURCE_FREE_FAILURES;
  int rv = wr_throttle_new(&tcfg, &a->tokens);
  if (rv != WR_OK) {
    wr_api_free(a);
    return rv;
  }
  /* As the login's: real lockouts are few, a flood is a count in the log. */
  a->audit_rl.burst = 100;
  a->audit_rl.every_ms = 1000;
  *out = a;
  return WR_OK;
}

const wr_api_stats *wr_api_get_stats(const wr_api *a) { return &a->stats; }

void wr_api_stop(wr_api *a) {
  if (a) a->stopping = 1;
}

void wr_api_free(wr_api *a) {
  if (!a) return;
  a->stopping = 1;
  wr_owner_close(&a->jobs); /* frees |a| now or after its last job */
}
