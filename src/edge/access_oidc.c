/* Sign-in through an OpenID Connect identity provider (access.h), on the
 * team domain:
 *
 *   GET /cdn-cgi/access/oidc/<idp id>?host=&kid=&redirect_url=
 *       starts a flow (proto/oidc.h: state, nonce, PKCE S256) for the app
 *       of |host| with tag |kid|, sets the flow's browser-binding cookie
 *       and sends the browser to the provider's authorization endpoint
 *       (read from its discovery document first when it has one);
 *   GET /cdn-cgi/access/callback?code=&state=
 *       the provider's answer: the flow is taken once (state known, the
 *       binding cookie of the browser that started it, not expired), the
 *       code is exchanged for an id_token, which is verified (RS256 against
 *       the provider's JWKS, aud = client_id, iss when known, exp, nonce);
 *       its email claim signs in like an edge user (access_login.c).
 *
 * Every call to the provider runs on libuv's worker pool with the blocking
 * one-shot client (net/http_client.h); the jobs carry plain strings only
 * and post their result back to the loop (uv_queue_work's done callback),
 * where the store is read and the browser answered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/access_int.h"
#include "edge/store_access.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/http_client.h"

#define START_PREFIX "/cdn-cgi/access/oidc/"
#define CALLBACK_PATH "/cdn-cgi/access/callback"
#define BIND_COOKIE "CF_Access_OIDC_"
#define FIELD_MAX 2048
#define FETCH_TIMEOUT_MS 10000
#define FETCH_MAX_BODY (1u << 20)

enum job_kind { JOB_START, JOB_CALLBACK };

/* A provider call on the worker pool: inputs copied from the loop, outputs
 * read back in job_done. */
typedef struct oidc_job {
  uv_work_t work;
  wr_access *a;
  wr_httpd_req *req;
  int kind; /* enum job_kind */
  /* inputs */
  char *discovery_url, *auth_url, *token_url, *certs_url, *issuer;
  char *client_id, *client_secret, *scopes, *email_claim, *redirect_uri, *code;
  wr_oidc_flow flow;
  json_t *app;        /* JOB_CALLBACK: the app signed in to (a reference) */
  /* outputs */
  char *location;     /* JOB_START: the provider's authorize URL */
  char email[WR_STORE_EMAIL_MAX + 1];
  char sub[256];
  char err[320];
  int rv;
} oidc_job;

static void job_free(oidc_job *j) {
  char **strs[] = {&j->discovery_url, &j->auth_url, &j->token_url, &j->certs_url, &j->issuer, &j->client_id,
                   &j->scopes, &j->email_claim, &j->redirect_uri, &j->location};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) free(*strs[i]);
  if (j->client_secret) explicit_bzero(j->client_secret, strlen(j->client_secret));
  if (j->code) explicit_bzero(j->code, strlen(j->code));
  free(j->client_secret);
  free(j->code);
  free(j->flow.ctx);
  json_decref(j->app);
  explicit_bzero(j, sizeof(*j));
  free(j);
}

static char *dup_or_null(const char *s) { return s ? wr_xstrdup(s) : NULL; }

static void error_page(wr_httpd_req *req, int status, const char *msg) {
  char em[640], body[1024];
  wr__access_html_escape(msg, em, sizeof(em));
  snprintf(body, sizeof(body),
           "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\n"
           "<body><h1>Sign-in failed</h1>\n<p role=\"alert\">%s</p>\n<hr><p>warren-edge Access</p></body></html>\n",
           em);
  wr__access_respond_html(req, status, body, NULL);
}

/* ---- provider calls (worker pool) ------------------------------------------------------ */

/* One GET or POST; the body (NUL-terminated) into *out on a 200. */
static int call(oidc_job *j, const char *method, const char *url, const char *form, char **out, size_t *len) {
  wr_http_header h[2] = {{"Accept", 6, "application/json", 16},
                         {"Content-Type", 12, "application/x-www-form-urlencoded", 33}};
  wr_http_request rq = {.method = method, .url = url, .headers = h, .nheaders = form ? 2 : 1,
                        .body = (const uint8_t *)form, .body_len = form ? strlen(form) : 0,
                        .timeout_ms = FETCH_TIMEOUT_MS, .max_body = FETCH_MAX_BODY};
  wr_http_response rs;
  memset(&rs, 0, sizeof(rs));
  int rv = wr_http_do(&rq, &rs, j->err, sizeof(j->err));
  /* A token endpoint answers errors as 400 with a JSON body; keep those. */
  if (rv == WR_OK && rs.status != 200 && !(form && rs.status == 400)) {
    snprintf(j->err, sizeof(j->err), "%.200s answered %d", url, rs.status);
    rv = WR_ERR_PROTO;
  }
  if (rv == WR_OK) {
    *out = (char *)rs.body;
    *len = rs.body_len;
    rs.body = NULL;
  }
  wr_http_response_free(&rs);
  return rv;
}

/* Fills the endpoints from the discovery document when there is one. */
static int discover(oidc_job *j) {
  char *doc = NULL;
  size_t len = 0;
  wr_oidc_endpoints e;
  if (!j->discovery_url) return WR_OK;
  int rv = call(j, "GET", j->discovery_url, NULL, &doc, &len);
  if (rv == WR_OK) rv = wr_oidc_discovery_parse(doc, len, &e, j->err, sizeof(j->err));
  free(doc);
  if (rv != WR_OK) return rv;
  free(j->auth_url);
  free(j->token_url);
  free(j->certs_url);
  j->auth_url = e.authorization_endpoint;
  j->token_url = e.token_endpoint;
  j->certs_url = e.jwks_uri;
  if (!j->issuer) j->issuer = e.issuer;
  else free(e.issuer);
  return WR_OK;
}

/* The code exchange and the id_token's checks. */
static int exchange(oidc_job *j) {
  char *body = NULL, *id_token = NULL, *keys = NULL;
  size_t len = 0, klen = 0;
  wr_jwks *jwks = NULL;
  json_t *claims = NULL;
  char *form = wr_oidc_token_body(j->code, j->redirect_uri, j->client_id, j->client_secret, j->flow.verifier);
  int rv = call(j, "POST", j->token_url, form, &body, &len);
  explicit_bzero(form, strlen(form));
  free(form);
  if (rv == WR_OK) rv = wr_oidc_token_parse(body, len, &id_token, j->err, sizeof(j->err));
  if (rv == WR_OK) rv = call(j, "GET", j->certs_url, NULL, &keys, &klen);
  if (rv == WR_OK && (rv = wr_jwks_parse(keys, klen, &jwks)) != WR_OK)
    snprintf(j->err, sizeof(j->err), "%.200s is not a JWK set", j->certs_url);
  if (rv == WR_OK) {
    const char *aud = j->client_id;
    wr_jwt_expect w = {.now = (int64_t)time(NULL), .auds = &aud, .naud = 1, .iss = j->issuer};
    char e[200];
    if ((rv = wr_jwt_verify(jwks, id_token, strlen(id_token), &w, &claims, e, sizeof(e))) != WR_OK)
      snprintf(j->err, sizeof(j->err), "the id_token is refused: %s", e);
  }
  if (rv == WR_OK)
    rv = wr_oidc_claims_check(claims, j->flow.nonce, j->email_claim, j->email, sizeof(j->email), j->err,
                              sizeof(j->err));
  if (rv == WR_OK) {
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    snprintf(j->sub, sizeof(j->sub), "%s", sub ? sub : "");
  }
  json_decref(claims);
  wr_jwks_free(jwks);
  free(keys);
  free(id_token);
  free(body);
  return rv;
}

static void job_work(uv_work_t *w) {
  oidc_job *j = w->data;
  j->rv = discover(j);
  if (j->rv != WR_OK) return;
  if (j->kind == JOB_START)
    j->location = wr_oidc_authorize_url(j->auth_url, j->client_id, j->redirect_uri, j->scopes, j->flow.state,
                                        j->flow.nonce, j->flow.challenge);
  else
    j->rv = exchange(j);
}

/* ---- back on the loop ----------------------------------------------------------------- */

/* The binding cookie of a flow (Set-Cookie value). */
static void bind_cookie(wr_access *a, const wr_oidc_flow *f, int clear, char *out, size_t cap) {
  snprintf(out, cap, BIND_COOKIE "%.16s=%s; Path=" CALLBACK_PATH "; Max-Age=%u; HttpOnly; SameSite=Lax%s", f->state,
           clear ? "" : f->binding, clear ? 0u : WR_OIDC_FLOW_TTL_MS / 1000u,
           strncmp(a->team, "https://", 8) ? "" : "; Secure");
}

static void start_done(oidc_job *j) {
  char cookie[256];
  if (j->rv != WR_OK || !j->location) {
    wr_warn("access: the identity provider's discovery failed: %s", j->err);
    error_page(j->req, 502, "The identity provider could not be reached.");
    return;
  }
  bind_cookie(j->a, &j->flow, 0, cookie, sizeof(cookie));
  wr__access_respond_html_cookie(j->req, 302, "<!DOCTYPE html>\n<p>To the identity provider.</p>\n", j->location,
                                 cookie);
}

static void callback_done(oidc_job *j) {
  wr_access *a = j->a;
  json_t *ctx = json_loads(j->flow.ctx, 0, NULL);
  const char *host = json_string_value(json_object_get(ctx, "host")),
             *kid = json_string_value(json_object_get(ctx, "kid")),
             *redirect = json_string_value(json_object_get(ctx, "redirect")),
             *account = json_string_value(json_object_get(ctx, "account"));
  json_t *app = j->app;
  char clear[256];
  (void)kid;
  bind_cookie(a, &j->flow, 1, clear, sizeof(clear));
  if (j->rv != WR_OK) {
    a->stats.signins_failed++;
    wr_warn("access: OpenID Connect sign-in to %s failed: %s", host ? host : "?", j->err);
    error_page(j->req, 403, "The identity provider's answer could not be verified.");
  } else if (!app || !redirect || !account) {
    error_page(j->req, 404, "This application does not exist any more.");
  } else if (wr__access_finish(a, j->req, host, app, redirect, account, j->email, j->sub, "oidc", clear) != 0) {
    error_page(j->req, 500, "The sign-in could not be completed.");
  }
  json_decref(ctx);
}

static void job_done(uv_work_t *w, int status) {
  oidc_job *j = w->data;
  wr_access *a = j->a;
  if (a->freeing || status != 0) wr_httpd_respond_simple(j->req, 503, "text/plain", "shutting down\n", 14);
  else if (j->kind == JOB_START) start_done(j);
  else callback_done(j);
  job_free(j);
  wr_owner_drop(&a->jobs); /* may free |a| */
}

/* ---- the routes ---------------------------------------------------------------------- */

static int is_oidc(json_t *idp) {
  const char *t = json_string_value(json_object_get(idp, "type"));
  return t && !strcmp(t, "oidc");
}

/* 1 when |app| allows provider |id| (an empty allowed_idps allows all). */
static int idp_allowed(json_t *app, const char *id) {
  json_t *list = json_object_get(app, "allowed_idps"), *v;
  size_t i;
  if (!json_array_size(list)) return 1;
  json_array_foreach(list, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), id)) return 1;
  return 0;
}

/* A job for provider |idp| (its stored document). */
static oidc_job *job_new(wr_access *a, wr_httpd_req *req, int kind, json_t *idp) {
  json_t *cfg = json_object_get(idp, "config"), *sc = json_object_get(cfg, "scopes"), *v;
  oidc_job *j = wr_xcalloc(1, sizeof(*j));
  char uri[FIELD_MAX + 64];
  size_t i, n = 0;
  j->a = a;
  j->req = req;
  j->kind = kind;
  j->work.data = j;
  j->discovery_url = dup_or_null(json_string_value(json_object_get(cfg, "discovery_url")));
  j->auth_url = dup_or_null(json_string_value(json_object_get(cfg, "auth_url")));
  j->token_url = dup_or_null(json_string_value(json_object_get(cfg, "token_url")));
  j->certs_url = dup_or_null(json_string_value(json_object_get(cfg, "certs_url")));
  j->issuer = dup_or_null(json_string_value(json_object_get(cfg, "issuer")));
  j->client_id = dup_or_null(json_string_value(json_object_get(cfg, "client_id")));
  j->client_secret = dup_or_null(json_string_value(json_object_get(cfg, "client_secret")));
  j->email_claim = dup_or_null(json_string_value(json_object_get(cfg, "email_claim_name")));
  char scopes[1024] = "";
  json_array_foreach(sc, i, v) if (json_is_string(v) && n + json_string_length(v) + 2 < sizeof(scopes))
    n += (size_t)snprintf(scopes + n, sizeof(scopes) - n, "%s%s", n ? " " : "", json_string_value(v));
  j->scopes = wr_xstrdup(scopes);
  snprintf(uri, sizeof(uri), "%s" CALLBACK_PATH, a->team);
  j->redirect_uri = wr_xstrdup(uri);
  return j;
}

static void queue(wr_access *a, oidc_job *j) {
  if (uv_queue_work(a->loop, &j->work, job_work, job_done) != 0) {
    error_page(j->req, 503, "The edge is busy; try again.");
    job_free(j);
    return;
  }
  wr_owner_hold(&a->jobs);
}

/* The provider |id| of |app|'s account (read with |host|'s apps) when it
 * is an OpenID Connect one the app allows (a new reference), or NULL. */
static json_t *usable_idp(wr_access *a, const char *host, json_t *app, const char *id) {
  const char *acct = json_string_value(json_object_get(app, "account_id"));
  json_t *idp;
  size_t i;
  if (!acct || !id || !idp_allowed(app, id)) return NULL;
  json_array_foreach(wr__access_idps(a, host, acct), i, idp) {
    const char *pid = json_string_value(json_object_get(idp, "id"));
    if (pid && !strcmp(pid, id)) return is_oidc(idp) ? json_incref(idp) : NULL;
  }
  return NULL;
}

static void start(wr_access *a, wr_httpd_req *req, const char *id) {
  char host[WR_STORE_HOST_MAX + 1] = "", kid[80] = "", redirect[FIELD_MAX] = "", origin[FIELD_MAX];
  const char *q = req->query;
  wr__access_field(q, strlen(q), "host", host, sizeof(host), 0);
  wr__access_field(q, strlen(q), "kid", kid, sizeof(kid), 0);
  wr__access_field(q, strlen(q), "redirect_url", redirect, sizeof(redirect), 0);
  char canon[WR_STORE_HOST_MAX + 1], err[128];
  if (wr_store_check_dns_name(host, 0, canon, err, sizeof(err)) == WR_OK && wr__access_page_wait(a, req, host))
    return; /* back when the host's apps are read */
  json_t *app = wr__access_app_by_kid(a, host, kid), *idp = app ? usable_idp(a, host, app, id) : NULL;
  if (!idp || wr__access_redirect_ok(redirect, host, origin, sizeof(origin)) != 0) {
    json_decref(idp);
    error_page(req, 400, "This sign-in link is not valid for this application.");
    return;
  }
  json_t *ctx = json_pack("{s:s,s:s,s:s,s:s,s:s}", "idp", id, "host", host, "kid", kid, "redirect", redirect,
                          "account", json_string_value(json_object_get(app, "account_id")));
  char *ctext = json_dumps(ctx, JSON_COMPACT);
  json_decref(ctx);
  oidc_job *j = job_new(a, req, JOB_START, idp);
  json_decref(idp);
  int rv = wr_oidc_states_begin(a->oidc, wr__access_now_ms(a), ctext, &j->flow);
  free(ctext);
  if (rv != WR_OK) {
    error_page(req, 500, "The sign-in could not be started.");
    job_free(j);
    return;
  }
  if (j->discovery_url) {
    queue(a, j); /* the endpoints come from the provider */
    return;
  }
  j->location = wr_oidc_authorize_url(j->auth_url, j->client_id, j->redirect_uri, j->scopes, j->flow.state,
                                      j->flow.nonce, j->flow.challenge);
  start_done(j);
  job_free(j);
}

/* The binding cookie the browser sent for |state|, into |out|. */
static void binding_of(wr_httpd_req *req, const char *state, char *out, size_t cap) {
  char name[64];
  snprintf(name, sizeof(name), BIND_COOKIE "%.16s", state);
  wr__access_req_cookie(req, name, out, cap);
}

/* 1 when the request waits for the apps of the host its state names (the
 * state stays pending meanwhile). */
static int callback_wait(wr_access *a, wr_httpd_req *req, const char *state) {
  const char *text = wr_oidc_states_ctx(a->oidc, state);
  json_t *ctx = text ? json_loads(text, 0, NULL) : NULL;
  const char *host = json_string_value(json_object_get(ctx, "host"));
  int parked = host && wr__access_page_wait(a, req, host);
  json_decref(ctx);
  return parked;
}

static void callback(wr_access *a, wr_httpd_req *req) {
  char state[WR_OIDC_SECRET_LEN + 8] = "", binding[WR_OIDC_SECRET_LEN + 8], err[160] = "";
  const char *q = req->query;
  wr_oidc_flow f;
  wr__access_field(q, strlen(q), "state", state, sizeof(state), 0);
  if (callback_wait(a, req, state)) return;
  char *code = wr_xmalloc(FIELD_MAX);
  binding_of(req, state, binding, sizeof(binding));
  int rv = wr_oidc_states_take(a->oidc, state, binding, wr__access_now_ms(a), &f);
  json_t *ctx = rv == WR_OK ? json_loads(f.ctx, 0, NULL) : NULL, *app = NULL, *idp = NULL;
  const char *host = json_string_value(json_object_get(ctx, "host"));
  if (rv == WR_OK && wr__access_field(q, strlen(q), "error", err, sizeof(err), 0) >= 0) rv = WR_ERR_DENIED;
  else if (rv == WR_OK && wr__access_field(q, strlen(q), "code", code, FIELD_MAX, 0) <= 0) rv = WR_ERR_PROTO;
  if (rv == WR_OK && host && (app = wr__access_app_by_kid(a, host, json_string_value(json_object_get(ctx, "kid")))))
    idp = usable_idp(a, host, app, json_string_value(json_object_get(ctx, "idp")));
  if (rv != WR_OK || !idp) {
    a->stats.signins_failed++;
    wr_info("access: OpenID Connect callback refused (%s%s)", rv == WR_ERR_NOTFOUND ? "unknown or used state"
            : rv == WR_ERR_DENIED && !err[0] ? "another browser's or an expired sign-in" : rv == WR_OK ? "provider gone"
            : "the provider answered an error: ", err);
    error_page(req, rv == WR_ERR_NOTFOUND || rv == WR_ERR_DENIED ? 403 : 400,
               err[0] ? "The identity provider refused the sign-in." : "This sign-in is not valid; start again.");
    free(f.ctx);
  } else {
    oidc_job *j = job_new(a, req, JOB_CALLBACK, idp);
    j->flow = f; /* ctx moves to the job */
    j->code = wr_xstrdup(code);
    j->app = json_incref(app);
    queue(a, j);
  }
  json_decref(idp);
  json_decref(ctx);
  explicit_bzero(code, FIELD_MAX);
  free(code);
}

int wr__access_oidc_handle(wr_access *a, wr_httpd_req *req) {
  int is_start = !strncmp(req->path, START_PREFIX, sizeof(START_PREFIX) - 1);
  if (!is_start && strcmp(req->path, CALLBACK_PATH) != 0) return 0;
  if (strcmp(req->method, "GET") != 0) {
    wr_httpd_respond_simple(req, 405, "text/plain", "method not allowed\n", 19);
    return 1;
  }
  if (is_start) start(a, req, req->path + sizeof(START_PREFIX) - 1);
  else callback(a, req);
  return 1;
}

char *wr__access_oidc_links(wr_access *a, json_t *app, const char *host, const char *kid, const char *redirect,
                            char **auto_url) {
  const char *acct = json_string_value(json_object_get(app, "account_id"));
  json_t *idps, *idp;
  size_t i, n = 0, cap = 64;
  char *html = wr_xcalloc(1, cap), eh[WR_STORE_HOST_MAX * 3], ek[256], er[FIELD_MAX * 3];
  *auto_url = NULL;
  if (!app || !acct || !(idps = wr__access_idps(a, host, acct))) return html;
  wr__access_url_escape(host, eh, sizeof(eh));
  wr__access_url_escape(kid, ek, sizeof(ek));
  wr__access_url_escape(redirect, er, sizeof(er));
  json_array_foreach(idps, i, idp) {
    const char *id = json_string_value(json_object_get(idp, "id")), *name = json_string_value(json_object_get(idp, "name"));
    if (!id || !idp_allowed(app, id) || !is_oidc(idp))
      continue;
    char url[FIELD_MAX * 8], en[1024], eu[FIELD_MAX * 9];
    snprintf(url, sizeof(url), START_PREFIX "%s?host=%s&kid=%s&redirect_url=%s", id, eh, ek, er);
    wr__access_html_escape(name ? name : id, en, sizeof(en));
    wr__access_html_escape(url, eu, sizeof(eu));
    size_t need = strlen(html) + strlen(eu) + strlen(en) + 96;
    if (need > cap) html = wr_xrealloc(html, cap = need * 2);
    snprintf(html + strlen(html), cap - strlen(html), "<p><a class=\"idp\" href=\"%s\">Sign in with %s</a></p>\n", eu, en);
    if (!n++) *auto_url = wr_xstrdup(url);
  }
  /* Straight to the provider only when the app asks for it and there is
   * exactly one. */
  if (n != 1 || !json_is_true(json_object_get(app, "auto_redirect_to_identity"))) {
    free(*auto_url);
    *auto_url = NULL;
  }
  return html;
}
