/* The management commands' client for the Cloudflare API v4 subset that
 * cloudflared 2023.7.3 calls (its cfapi package), with cloudflared's
 * request headers, response checks and error texts, plus the steps the
 * commands share (cert.pem, name -> ID, credentials files). See mgmt_int.h and
 * ../shared/cloudflare-api.md §2. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/http_client.h"
#include "proto/http1.h"

#define API_TIMEOUT_MS 15000u          /* cfapi's defaultTimeout */
#define API_MAX_BODY (16u << 20)

/* ---- errors ---------------------------------------------------------------------- */

void wr__mg_errf(wr__mg_err *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
  va_end(ap);
}

void wr__mg_wrap(wr__mg_err *e, const char *fmt, ...) {
  char ctx[WR__MG_ERRLEN], old[WR__MG_ERRLEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof(ctx), fmt, ap);
  va_end(ap);
  memcpy(old, e->msg, sizeof(old));
  wr_buf b;
  wr_buf_init(&b, 2 * WR__MG_ERRLEN, NULL);
  wr_buf_printf(&b, "%s: %s", ctx, old);
  snprintf(e->msg, sizeof(e->msg), "%s", wr_buf_cstr(&b));
  wr_buf_free(&b);
}

int wr__mg_fail(const wr__mg_err *e) {
  fflush(stdout);
  fprintf(stderr, "%s\n", e->msg);
  return WR_EXIT_FAIL;
}

int wr__mg_usage(const wr__mg_ctx *c, const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nSee '%s %s --help'.\n", c->opts->prog, c->path);
  return WR_EXIT_USAGE;
}

/* ---- context ------------------------------------------------------------------------ */

int wr__mg_begin(wr__mg_ctx *c, wr_opts *o, const char *path) {
  char err[1024];
  wr_log_level level;
  memset(c, 0, sizeof(*c));
  c->opts = o;
  c->path = path;
  int rv = wr_config_load_opts(o, &c->cfg, err, sizeof(err));
  if (rv != WR_OK && rv != WR_ERR_NOTFOUND) {
    fprintf(stderr, "%s\n", err);
    return WR_EXIT_FAIL;
  }
  const char *lvl = wr_opts_get(o, "loglevel");
  if (lvl && *lvl) {
    if (wr_log_parse_level(lvl, &level) != WR_OK) {
      fprintf(stderr, "unknown --loglevel \"%s\" (debug, info, warn, error, fatal)\n", lvl);
      wr_config_free(c->cfg);
      c->cfg = NULL;
      return WR_EXIT_FAIL;
    }
    wr_log_set_level(level);
  }
  return WR_OK;
}

void wr__mg_end(wr__mg_ctx *c) {
  wr_config_free(c->cfg);
  free(c->cert_path);
  explicit_bzero(&c->cert, sizeof(c->cert));
  memset(c, 0, sizeof(*c));
}

/* cloudflared's fileExists: stat succeeds and it is not a directory. */
static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

int wr__mg_client(wr__mg_ctx *c, wr__mg_err *e) {
  char reason[1024];
  char *data = NULL;
  size_t len = 0;
  if (c->have_client) return WR_OK;
  const char *oc = wr_opts_get(c->opts, "origincert");
  char *path = oc && *oc ? wr_path_expand(oc) : wr_find_default_file("cert.pem");
  if (!path) {
    wr_error("Cannot determine default origin certificate path. No file cert.pem in [~/.cloudflared "
             "~/.cloudflare-warp ~/cloudflare-warp /etc/cloudflared /usr/local/etc/cloudflared]. You "
             "need to specify the origin certificate path by specifying the origincert option in the "
             "configuration file, or set TUNNEL_ORIGIN_CERT environment variable originCertPath=");
    wr__mg_errf(e, "Error locating origin cert: client didn't specify origincert path");
    return WR_ERR_NOTFOUND;
  }
  if (!file_exists(path)) {
    wr_error("Cannot find a valid certificate for your origin at the path:\n\n    %s\n\n"
             "If the path above is wrong, specify the path with the -origincert option.\n"
             "If you don't have a certificate, run the command:\n\n\t%s tunnel login\n originCertPath=%s",
             path, c->opts->prog, path);
    wr__mg_errf(e, "Error locating origin cert: cannot find a valid certificate at the path %s", path);
    free(path);
    return WR_ERR_NOTFOUND;
  }
  int rv = wr_file_read(path, WR_CRED_MAX_FILE, &data, &len);
  if (rv != WR_OK) {
    wr__mg_errf(e, "Can't read origin cert from %s: cannot read %s to load origin certificate", path, path);
    free(path);
    return WR_ERR_IO;
  }
  rv = wr_origin_cert_parse(data, len, &c->cert, reason, sizeof(reason));
  explicit_bzero(data, len);
  free(data);
  if (rv != WR_OK) {
    if (strncmp(reason, "Origin certificate needs to be refreshed", 40) == 0)
      wr__mg_errf(e, "Origin certificate needs to be refreshed before creating new tunnels.\n"
                 "Delete %s and run \"%s tunnel login\" to obtain a new cert.", path, c->opts->prog);
    else
      wr__mg_errf(e, "Error decoding origin cert: %s", reason);
    free(path);
    return WR_ERR_PROTO;
  }
  const char *api = wr_opts_get(c->opts, "api-url");
  if (!api) api = WR__MG_DEFAULT_API_URL;
  if (!*api) {
    wr__mg_errf(e, "An api-url was not provided for the Cloudflare API client");
    free(path);
    return WR_ERR_CONFIG;
  }
  snprintf(c->base, sizeof(c->base), "%s", api);
  size_t bl = strlen(c->base);
  if (bl && c->base[bl - 1] == '/') c->base[bl - 1] = '\0'; /* one trailing slash, as cloudflared */
  c->cert_path = path;
  c->have_client = 1;
  return WR_OK;
}

/* ---- queries ---------------------------------------------------------------------------- */

void wr__mg_query_set(wr__mg_query *q, const char *key, const char *val) {
  for (size_t i = 0; i < q->n; i++) {
    if (strcmp(q->keys[i], key) == 0) {
      free(q->vals[i]);
      q->vals[i] = wr_xstrdup(val);
      return;
    }
  }
  if (q->n == sizeof(q->keys) / sizeof(q->keys[0])) return; /* more filters than any command has */
  q->keys[q->n] = wr_xstrdup(key);
  q->vals[q->n++] = wr_xstrdup(val);
}

const char *wr__mg_query_str(wr__mg_query *q) {
  size_t order[16], cap = 1;
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
  free(q->str);
  q->str = wr_xcalloc(cap, 1);
  size_t o = 0;
  for (size_t i = 0; i < q->n; i++) {
    if (i) q->str[o++] = '&';
    o += (size_t)wr_url_escape(q->keys[order[i]], WR_URL_QUERY, q->str + o, cap - o);
    q->str[o++] = '=';
    o += (size_t)wr_url_escape(q->vals[order[i]], WR_URL_QUERY, q->str + o, cap - o);
  }
  q->str[o] = '\0';
  return q->str;
}

void wr__mg_query_free(wr__mg_query *q) {
  for (size_t i = 0; i < q->n; i++) {
    free(q->keys[i]);
    free(q->vals[i]);
  }
  free(q->str);
  memset(q, 0, sizeof(*q));
}

/* ---- calls ----------------------------------------------------------------------------------- */

static const json_t *jget_ci(const json_t *o, const char *key) {
  const char *k;
  json_t *v;
  if (!json_is_object(o)) return NULL;
  if ((v = json_object_get(o, key))) return v;
  json_object_foreach((json_t *)o, k, v) {
    if (strcasecmp(k, key) == 0) return v;
  }
  return NULL;
}

/* Decodes cloudflared's `response` struct. Returns WR_OK or WR_ERR_PROTO
 * with the decode error in |why|. */
static int decode_envelope(const uint8_t *body, size_t len, json_t **root, char *why, size_t whylen) {
  json_error_t je;
  *root = NULL;
  if (len == 0) {
    snprintf(why, whylen, "EOF");
    return WR_ERR_PROTO;
  }
  json_t *j = json_loadb((const char *)body, len, JSON_DISABLE_EOF_CHECK, &je);
  if (!j) {
    snprintf(why, whylen, "%s", je.text);
    return WR_ERR_PROTO;
  }
  if (!json_is_object(j) && !json_is_null(j)) {
    snprintf(why, whylen, "json: cannot unmarshal %s into Go value of type cfapi.response",
             json_is_array(j) ? "array" : json_is_string(j) ? "string" : json_is_boolean(j) ? "bool" : "number");
    json_decref(j);
    return WR_ERR_PROTO;
  }
  const json_t *s = jget_ci(j, "success"), *errs = jget_ci(j, "errors"), *msgs = jget_ci(j, "messages");
  if (s && !json_is_boolean(s) && !json_is_null(s)) {
    snprintf(why, whylen, "json: cannot unmarshal into Go struct field response.success of type bool");
    goto bad;
  }
  if (errs && !json_is_array(errs) && !json_is_null(errs)) {
    snprintf(why, whylen, "json: cannot unmarshal into Go struct field response.errors of type []cfapi.apiErr");
    goto bad;
  }
  for (size_t i = 0; errs && i < json_array_size(errs); i++) {
    const json_t *e = json_array_get(errs, i), *code = jget_ci(e, "code"), *msg = jget_ci(e, "message");
    if ((!json_is_object(e) && !json_is_null(e)) || (msg && !json_is_string(msg) && !json_is_null(msg)) ||
        (code && !json_is_number(code) && !json_is_string(code) && !json_is_null(code))) {
      snprintf(why, whylen, "json: cannot unmarshal into Go struct field response.errors of type cfapi.apiErr");
      goto bad;
    }
  }
  /* messages must be strings: Cloudflare's newer objects break cloudflared. */
  if (msgs && !json_is_array(msgs) && !json_is_null(msgs)) {
    snprintf(why, whylen, "json: cannot unmarshal into Go struct field response.messages of type []string");
    goto bad;
  }
  for (size_t i = 0; msgs && i < json_array_size(msgs); i++) {
    const json_t *m = json_array_get(msgs, i);
    if (!json_is_string(m) && !json_is_null(m)) {
      snprintf(why, whylen, "json: cannot unmarshal object into Go struct field response.messages of type string");
      goto bad;
    }
  }
  *root = j;
  return WR_OK;
bad:
  json_decref(j);
  return WR_ERR_PROTO;
}

/* checkErrors: "code: N, reason: msg" for one, "API errors: a; b; " for
 * several. Returns 1 if there were errors. */
static int check_errors(const json_t *root, wr__mg_err *e) {
  const json_t *errs = jget_ci(root, "errors");
  size_t n = json_is_array(errs) ? json_array_size(errs) : 0;
  if (n == 0) return 0;
  wr_buf b;
  wr_buf_init(&b, WR__MG_ERRLEN, NULL);
  if (n > 1) wr_buf_append_str(&b, "API errors: ");
  for (size_t i = 0; i < n; i++) {
    const json_t *it = json_array_get(errs, i), *code = jget_ci(it, "code"), *msg = jget_ci(it, "message");
    char cs[64] = "";
    if (json_is_integer(code)) snprintf(cs, sizeof(cs), "%" JSON_INTEGER_FORMAT, json_integer_value(code));
    else if (json_is_real(code)) snprintf(cs, sizeof(cs), "%g", json_real_value(code));
    else if (json_is_string(code)) snprintf(cs, sizeof(cs), "%s", json_string_value(code));
    wr_buf_printf(&b, "code: %s, reason: %s%s", cs, json_is_string(msg) ? json_string_value(msg) : "",
                  n > 1 ? "; " : "");
  }
  snprintf(e->msg, sizeof(e->msg), "%s", wr_buf_cstr(&b));
  wr_buf_free(&b);
  return 1;
}

/* statusCodeToError. Returns WR_OK for a 200 without errors[]. */
static int status_error(const wr_http_response *r, const char *op, wr__mg_err *e) {
  const char *ct = wr_http_response_header(r, "Content-Type");
  if (ct && strcmp(ct, "application/json") == 0) {
    json_t *root = NULL;
    char why[256];
    if (decode_envelope(r->body, r->body_len, &root, why, sizeof(why)) == WR_OK) {
      int bad = check_errors(root, e);
      json_decref(root);
      if (bad) {
        wr__mg_wrap(e, "Failed to %s", op);
        return WR_ERR_DENIED;
      }
    }
  }
  switch (r->status) {
  case 200: return WR_OK;
  case 400: wr__mg_errf(e, "incorrect request parameters"); break;
  case 401:
  case 403: wr__mg_errf(e, "unauthorized"); break;
  case 404: wr__mg_errf(e, "not found"); break;
  default:
    wr__mg_errf(e, "API call to %s failed with status %d: %s", op, r->status,
            strcmp(wr_http1_reason(r->status), "Unknown") == 0 ? "" : wr_http1_reason(r->status));
  }
  return WR_ERR_DENIED;
}

int wr__mg_call(wr__mg_ctx *c, const char *method, const char *path, const char *query, json_t *body,
            const char *op, int want_result, json_t **result, int *status, wr__mg_err *e) {
  char auth[WR_CRED_MAX_FIELD + 16], ua[64], err[1024];
  char *json = NULL;
  wr_http_response r;
  int rv;

  if (result) *result = NULL;
  if (status) *status = 0;
  if ((rv = wr__mg_client(c, e)) != WR_OK) return rv;
  wr_buf url;
  wr_buf_init(&url, 16384, NULL);
  wr_buf_printf(&url, "%s%s%s%s", c->base, path, query && *query ? "?" : "", query ? query : "");
  snprintf(auth, sizeof(auth), "Bearer %s", c->cert.api_token);
  snprintf(ua, sizeof(ua), "warren/%s", WR_VERSION);
  wr_http_header hdrs[4] = {{"User-Agent", 10, ua, strlen(ua)},
                            {"Authorization", 13, auth, strlen(auth)},
                            {"Accept", 6, "application/json;version=1", 26},
                            {"Content-Type", 12, "application/json", 16}};
  if (body) json = json_dumps(body, JSON_COMPACT);
  wr_http_request req = {.method = method, .url = wr_buf_cstr(&url), .headers = hdrs,
                         .nheaders = json ? 4 : 3, .body = (const uint8_t *)json,
                         .body_len = json ? strlen(json) : 0, .timeout_ms = API_TIMEOUT_MS,
                         .max_body = API_MAX_BODY};
  wr_debug("%s %s", method, req.url);
  rv = wr_http_do(&req, &r, err, sizeof(err));
  explicit_bzero(auth, sizeof(auth));
  free(json);
  wr_buf_free(&url);
  if (rv != WR_OK) {
    wr__mg_errf(e, "REST request failed: %s", err);
    wr_http_response_free(&r);
    return WR_ERR_IO;
  }
  if (status) *status = r.status;
  if (r.status != 200 || !want_result) {
    rv = status_error(&r, op, e);
    wr_http_response_free(&r);
    return rv;
  }
  json_t *root = NULL;
  char why[512];
  if (decode_envelope(r.body, r.body_len, &root, why, sizeof(why)) != WR_OK) {
    wr__mg_errf(e, "failed to decode response: %s", why);
    wr_http_response_free(&r);
    return WR_ERR_PROTO;
  }
  wr_http_response_free(&r);
  if (check_errors(root, e)) {
    json_decref(root);
    return WR_ERR_DENIED;
  }
  if (!json_is_true(jget_ci(root, "success"))) {
    json_decref(root);
    wr__mg_errf(e, "API call failed");
    return WR_ERR_DENIED;
  }
  const json_t *res = jget_ci(root, "result");
  if (!res) {
    json_decref(root);
    wr__mg_errf(e, "the Cloudflare API response was an unexpected type: unexpected end of JSON input");
    return WR_ERR_PROTO;
  }
  if (result) *result = json_incref((json_t *)res);
  json_decref(root);
  return WR_OK;
}

const char *wr__mg_cred_file(const wr__mg_ctx *c) {
  if (c->cred_file_cli_only && wr_opts_source(c->opts, "credentials-file") < WR_SRC_ENV) return NULL;
  return wr_opts_get(c->opts, "credentials-file");
}

/* ---- shared steps ------------------------------------------------------------------------------ */

int wr__mg_list_tunnels(wr__mg_ctx *c, wr__mg_query *filter, wr__mg_tunnel **out, size_t *n, int *is_null,
                    wr__mg_err *e) {
  char path[WR_CRED_MAX_FIELD * 3 + 64], acct[WR_CRED_MAX_FIELD * 3];
  json_t *res = NULL;
  *out = NULL;
  *n = 0;
  if (is_null) *is_null = 0;
  int rv = wr__mg_client(c, e);
  if (rv != WR_OK) return rv;
  wr_url_escape(c->cert.account_id, WR_URL_PATH, acct, sizeof(acct));
  snprintf(path, sizeof(path), "/accounts/%s/cfd_tunnel", acct);
  rv = wr__mg_call(c, "GET", path, wr__mg_query_str(filter), NULL, "list tunnels", 1, &res, NULL, e);
  if (rv != WR_OK) return rv;
  int null_ = 0;
  rv = wr__mg_decode_tunnels(res, out, n, &null_, e);
  if (is_null) *is_null = null_;
  json_decref(res);
  return rv;
}

int wr__mg_find_id(wr__mg_ctx *c, const char *ref, wr_uuid *out, wr__mg_err *e) {
  char why[128];
  if (wr__mg_uuid_parse(ref, out, why, sizeof(why)) == WR_OK) return WR_OK;
  /* A credentials file given with --credentials-file (or in config.yml)
   * names the tunnel, whatever the argument says: cloudflared's rule. */
  const char *cf = wr__mg_cred_file(c);
  if (cf && *cf) {
    char *p = wr_path_expand(cf);
    wr_credentials cred;
    char err[512];
    static const wr_uuid nil;
    if (p && file_exists(p) && wr_credentials_load(p, &cred, err, sizeof(err)) == WR_OK &&
        cred.has_tunnel_id && memcmp(&cred.tunnel_id, &nil, sizeof(nil)) != 0) {
      *out = cred.tunnel_id;
      explicit_bzero(&cred, sizeof(cred));
      free(p);
      return WR_OK;
    }
    explicit_bzero(&cred, sizeof(cred));
    free(p);
  }
  wr__mg_query q = {0};
  wr__mg_query_set(&q, "is_deleted", "false");
  wr__mg_query_set(&q, "name", ref);
  wr__mg_tunnel *list = NULL;
  size_t n = 0;
  int rv = wr__mg_list_tunnels(c, &q, &list, &n, NULL, e);
  wr__mg_query_free(&q);
  if (rv != WR_OK) return rv;
  if (n > 0) *out = list[0].id;
  wr__mg_tunnels_free(list, n);
  if (n == 0) {
    wr__mg_errf(e, "%s is neither the ID nor the name of any of your tunnels", ref);
    return WR_ERR_NOTFOUND;
  }
  return WR_OK;
}

int wr__mg_find_ids(wr__mg_ctx *c, char **refs, int nrefs, wr_uuid **out, size_t *n, wr__mg_err *e) {
  char why[128];
  *out = wr_xcalloc((size_t)nrefs + 1, sizeof(wr_uuid));
  *n = 0;
  for (int i = 0; i < nrefs; i++)
    if (wr__mg_uuid_parse(refs[i], &(*out)[*n], why, sizeof(why)) == WR_OK) (*n)++;
  for (int i = 0; i < nrefs; i++) {
    wr_uuid u;
    if (wr__mg_uuid_parse(refs[i], &u, why, sizeof(why)) == WR_OK) continue;
    wr__mg_query q = {0};
    wr__mg_query_set(&q, "is_deleted", "false");
    wr__mg_query_set(&q, "name", refs[i]);
    wr__mg_tunnel *list = NULL;
    size_t cnt = 0;
    int rv = wr__mg_list_tunnels(c, &q, &list, &cnt, NULL, e);
    wr__mg_query_free(&q);
    if (rv == WR_OK && cnt != 1) {
      wr__mg_errf(e, "there should only be 1 non-deleted Tunnel named %s", refs[i]);
      rv = WR_ERR_NOTFOUND;
    }
    if (rv == WR_OK) (*out)[(*n)++] = list[0].id;
    wr__mg_tunnels_free(list, cnt);
    if (rv != WR_OK) {
      free(*out);
      *out = NULL;
      *n = 0;
      return rv;
    }
  }
  return WR_OK;
}

int wr__mg_write_credentials(const char *path, const wr_credentials *cred, wr__mg_err *e) {
  struct stat st;
  if (stat(path, &st) == 0) {
    wr__mg_errf(e, "%s already exists", path);
    return WR_ERR_EXISTS;
  }
  if (errno != ENOENT) {
    wr__mg_errf(e, "stat %s: %s", path, strerror(errno));
    goto lower;
  }
  char *json = wr_credentials_to_json(cred);
  int rv = wr_file_write(path, json, strlen(json), 0400, 1);
  int saved = errno;
  explicit_bzero(json, strlen(json));
  free(json);
  if (rv == WR_OK) return WR_OK;
  if (rv == WR_ERR_EXISTS) {
    wr__mg_errf(e, "%s already exists", path);
    return rv;
  }
  wr__mg_errf(e, "open %s: %s", path, strerror(saved));
lower: {
  /* Go's syscall messages are lower-case ("no such file or directory"). */
  char *last = NULL;
  for (char *p = strstr(e->msg, ": "); p; p = strstr(p + 1, ": ")) last = p;
  if (last && last[2] >= 'A' && last[2] <= 'Z') last[2] = (char)(last[2] - 'A' + 'a');
  return WR_ERR_IO;
}
}

int wr__mg_resolve_tunnel(wr_opts *o, const char *ref, wr_uuid *out, char *err, size_t errlen) {
  wr__mg_ctx c;
  wr__mg_err e;
  memset(&c, 0, sizeof(c));
  c.opts = o;
  c.path = "tunnel run";
  int rv = wr__mg_find_id(&c, ref, out, &e);
  if (rv != WR_OK) snprintf(err, errlen, "error parsing tunnel ID: %s", e.msg);
  wr__mg_end(&c);
  return rv;
}
