/* Browser login: session key, URL and the store's long poll. See login.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "cfapi/login.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"

#define POLL_ATTEMPTS 10
#define POLL_TIMEOUT_MS 60000u

int wr_cfapi_login_key(char out[64], wr_cfapi_error *e) {
  gnutls_privkey_t key = NULL;
  gnutls_datum_t x = {NULL, 0};
  gnutls_ecc_curve_t curve;
  int rv = WR_ERR_CRYPTO;
  if (gnutls_privkey_init(&key) < 0 || gnutls_privkey_generate2(key, GNUTLS_PK_ECDH_X25519, 0, 0, NULL, 0) < 0 ||
      gnutls_privkey_export_ecc_raw2(key, &curve, &x, NULL, NULL, 0) < 0 || x.size != 32) {
    wr_cfapi_errorf(e, "cannot generate a Curve25519 key pair");
    goto out;
  }
  wr_base64_encode(x.data, x.size, out, 64, WR_BASE64_PAD | WR_BASE64_URL);
  rv = WR_OK;
out:
  gnutls_free(x.data);
  if (key) gnutls_privkey_deinit(key);
  return rv;
}

/* url.QueryUnescape, leniently: bad escapes (and %00) stay as they are. */
static char *query_unescape(const char *s, size_t n) {
  char *out = wr_xmalloc(n + 1);
  wr_pct_decode(s, n, WR_PCT_PLUS | WR_PCT_LENIENT, out, n + 1); /* cannot fail: |out| holds |n| + 1 */
  return out;
}

/* Adds the pairs of the query string |p| ("a=1&b;c") to |q|. */
static void query_parse(wr_cfapi_query *q, const char *p) {
  while (*p) {
    size_t n = strcspn(p, "&;");
    if (n) {
      const char *eq = memchr(p, '=', n);
      char *k = query_unescape(p, eq ? (size_t)(eq - p) : n);
      char *v = eq ? query_unescape(eq + 1, n - (size_t)(eq + 1 - p)) : wr_xstrdup("");
      wr_cfapi_query_set(q, k, v);
      free(k);
      free(v);
    }
    p += n;
    if (*p) p++;
  }
}

char *wr_cfapi_login_url(const char *login, const char *callback) {
  const char *qm = strchr(login, '?');
  size_t base_len = qm ? (size_t)(qm - login) : strlen(login);
  wr_cfapi_query q = {0};
  if (qm) query_parse(&q, qm + 1);
  wr_cfapi_query_set(&q, "callback", callback);
  wr_cfapi_query_set(&q, "aud", "");
  char *qs = wr_cfapi_query_encode(&q);
  char *url = wr_xasprintf("%.*s?%s", (int)base_len, login, qs);
  free(qs);
  wr_cfapi_query_free(&q);
  return url;
}

int wr_cfapi_login_fetch(const wr_cfapi_login_poll *p, uint8_t **body, size_t *len, wr_cfapi_error *e) {
  char ua[64], err[1024];
  if (p->user_agent) snprintf(ua, sizeof(ua), "%s", p->user_agent);
  else snprintf(ua, sizeof(ua), "warren/%s", WR_VERSION);
  wr_http_header hdrs[] = {{"User-Agent", 10, ua, strlen(ua)}};
  *body = NULL;
  *len = 0;
  for (int i = 0; i < POLL_ATTEMPTS; i++) {
    wr_http_response r;
    wr_http_request req = {.method = "GET", .url = p->url, .headers = hdrs, .nheaders = 1,
                           .timeout_ms = POLL_TIMEOUT_MS, .max_body = WR_CRED_MAX_FILE};
    memset(&r, 0, sizeof(r));
    int rv = p->transport.exchange ? p->transport.exchange(p->transport.ud, &req, &r, err, sizeof(err))
                                   : wr_http_do(&req, &r, err, sizeof(err));
    if (rv != WR_OK || r.status >= 500) {
      if (rv != WR_OK) wr_cfapi_errorf(e, "%s", err);
      else wr_cfapi_errorf(e, "error on request %d", r.status);
      e->status = rv == WR_OK ? r.status : 0;
      wr_http_response_free(&r);
      return WR_ERR_IO;
    }
    if (r.status == 200 && r.body_len > 0) {
      *body = r.body;
      *len = r.body_len;
      r.body = NULL;
      wr_http_response_free(&r);
      return WR_OK;
    }
    if (r.status != 200 && p->waiting) p->waiting(p->waiting_ud);
    wr_http_response_free(&r);
  }
  wr_cfapi_errorf(e, "Failed to fetch resource");
  return WR_ERR_NOTFOUND;
}
