/* The API client: errors, queries, the handle and one call. See client.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/client.h"
#include "cfapi/envelope.h"
#include "lib/buf.h"
#include "lib/credentials.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"

#define API_TIMEOUT_MS 15000u /* cfapi's defaultTimeout */
#define API_MAX_BODY (16u << 20)
#define URL_MAX 16384

/* ---- errors ----------------------------------------------------------------------- */

void wr_cfapi_errorf(wr_cfapi_error *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
  va_end(ap);
  e->status = 0;
  e->code = 0;
}

void wr_cfapi_wrap(wr_cfapi_error *e, const char *fmt, ...) {
  char ctx[WR_CFAPI_ERRLEN], old[WR_CFAPI_ERRLEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof(ctx), fmt, ap);
  va_end(ap);
  memcpy(old, e->msg, sizeof(old));
  wr_buf b;
  wr_buf_init(&b, 2 * WR_CFAPI_ERRLEN, NULL);
  wr_buf_printf(&b, "%s: %s", ctx, old);
  snprintf(e->msg, sizeof(e->msg), "%s", wr_buf_cstr(&b));
  wr_buf_free(&b);
}

/* ---- queries ------------------------------------------------------------------------ */

void wr_cfapi_query_set(wr_cfapi_query *q, const char *key, const char *val) {
  for (size_t i = 0; i < q->n; i++) {
    if (strcmp(q->keys[i], key) == 0) {
      free(q->vals[i]);
      q->vals[i] = wr_xstrdup(val);
      return;
    }
  }
  if (q->n == WR_CFAPI_QUERY_MAX) return;
  q->keys[q->n] = wr_xstrdup(key);
  q->vals[q->n++] = wr_xstrdup(val);
}

char *wr_cfapi_query_encode(const wr_cfapi_query *q) {
  size_t order[WR_CFAPI_QUERY_MAX], cap = 1;
  for (size_t i = 0; i < q->n; i++) {
    order[i] = i;
    cap += 3 * (strlen(q->keys[i]) + strlen(q->vals[i])) + 2;
  }
  /* url.Values.Encode sorts by key. */
  for (size_t i = 1; i < q->n; i++)
    for (size_t j = i; j > 0 && strcmp(q->keys[order[j - 1]], q->keys[order[j]]) > 0; j--) {
      size_t t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  char *s = wr_xcalloc(cap, 1);
  size_t o = 0;
  for (size_t i = 0; i < q->n; i++) {
    if (i) s[o++] = '&';
    o += (size_t)wr_url_escape(q->keys[order[i]], WR_URL_QUERY, s + o, cap - o);
    s[o++] = '=';
    o += (size_t)wr_url_escape(q->vals[order[i]], WR_URL_QUERY, s + o, cap - o);
  }
  s[o] = '\0';
  return s;
}

void wr_cfapi_query_free(wr_cfapi_query *q) {
  for (size_t i = 0; i < q->n; i++) {
    free(q->keys[i]);
    free(q->vals[i]);
  }
  memset(q, 0, sizeof(*q));
}

/* ---- the client ------------------------------------------------------------------------ */

struct wr_cfapi_client {
  char base[1024]; /* without a trailing '/' */
  char *account, *zone;
  char auth[WR_CRED_MAX_FIELD + 16]; /* "Bearer <token>" */
  char ua[64];
  void (*trace)(void *ud, const char *method, const char *url);
  void *trace_ud;
  wr_cfapi_transport transport;
};

int wr_cfapi_client_new(const wr_cfapi_config *cfg, wr_cfapi_client **out, wr_cfapi_error *e) {
  *out = NULL;
  if (!cfg->base_url || !*cfg->base_url) {
    wr_cfapi_errorf(e, "An api-url was not provided for the Cloudflare API client");
    return WR_ERR_CONFIG;
  }
  wr_cfapi_client *c = wr_xcalloc(1, sizeof(*c));
  snprintf(c->base, sizeof(c->base), "%s", cfg->base_url);
  size_t bl = strlen(c->base);
  if (bl && c->base[bl - 1] == '/') c->base[bl - 1] = '\0'; /* one trailing slash, as cfapi */
  c->account = wr_xstrdup(cfg->account_tag ? cfg->account_tag : "");
  c->zone = wr_xstrdup(cfg->zone_tag ? cfg->zone_tag : "");
  snprintf(c->auth, sizeof(c->auth), "Bearer %s", cfg->api_token ? cfg->api_token : "");
  if (cfg->user_agent) snprintf(c->ua, sizeof(c->ua), "%s", cfg->user_agent);
  else snprintf(c->ua, sizeof(c->ua), "warren/%s", WR_VERSION);
  c->trace = cfg->trace;
  c->trace_ud = cfg->trace_ud;
  c->transport = cfg->transport;
  *out = c;
  return WR_OK;
}

void wr_cfapi_client_free(wr_cfapi_client *c) {
  if (!c) return;
  explicit_bzero(c->auth, sizeof(c->auth));
  free(c->account);
  free(c->zone);
  free(c);
}

static char *tag_path(const char *kind, const char *tag, const char *tail) {
  size_t cap = 3 * strlen(tag) + 1;
  char *esc = wr_xmalloc(cap);
  wr_url_escape(tag, WR_URL_PATH, esc, cap);
  char *p = wr_xasprintf("/%s/%s%s", kind, esc, tail);
  free(esc);
  return p;
}

char *wr_cfapi_account_path(const wr_cfapi_client *c, const char *tail) {
  return tag_path("accounts", c->account, tail);
}

char *wr_cfapi_zone_path(const wr_cfapi_client *c, const char *tail) { return tag_path("zones", c->zone, tail); }

/* ---- calls ------------------------------------------------------------------------------- */

static int exchange(const wr_cfapi_client *c, const wr_http_request *req, wr_http_response *r, char *err,
                    size_t errlen) {
  if (c->transport.exchange) return c->transport.exchange(c->transport.ud, req, r, err, errlen);
  return wr_http_do(req, r, err, errlen);
}

int wr_cfapi_call(wr_cfapi_client *c, const wr_cfapi_request *rq, json_t **result, wr_cfapi_error *e) {
  char err[1024];
  wr_http_response r;
  const char *q = rq->query ? rq->query : "";
  if (result) *result = NULL;
  e->status = 0;
  e->code = 0;
  wr_buf url;
  wr_buf_init(&url, URL_MAX, NULL);
  wr_buf_printf(&url, "%s%s%s%s", c->base, rq->path, *q ? "?" : "", q);
  wr_http_header hdrs[4] = {{"User-Agent", 10, c->ua, strlen(c->ua)},
                            {"Authorization", 13, c->auth, strlen(c->auth)},
                            {"Accept", 6, "application/json;version=1", 26},
                            {"Content-Type", 12, "application/json", 16}};
  char *json = rq->body ? json_dumps(rq->body, JSON_COMPACT) : NULL;
  wr_http_request req = {.method = rq->method, .url = wr_buf_cstr(&url), .headers = hdrs,
                         .nheaders = json ? 4 : 3, .body = (const uint8_t *)json,
                         .body_len = json ? strlen(json) : 0, .timeout_ms = API_TIMEOUT_MS,
                         .max_body = API_MAX_BODY};
  if (c->trace) c->trace(c->trace_ud, rq->method, req.url);
  memset(&r, 0, sizeof(r));
  int rv = exchange(c, &req, &r, err, sizeof(err));
  free(json);
  wr_buf_free(&url);
  if (rv != WR_OK) {
    wr_cfapi_errorf(e, "REST request failed: %s", err);
    wr_http_response_free(&r);
    return WR_ERR_IO;
  }
  wr_cfapi_response resp = {r.status, wr_http_response_header(&r, "Content-Type"), r.body, r.body_len};
  rv = wr_cfapi_response_result(&resp, rq->op, rq->want_result, result, e);
  wr_http_response_free(&r);
  return rv;
}
