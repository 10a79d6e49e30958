/* The team domain's pages (access.h), on the API listener's HTTP server:
 *   GET  /cdn-cgi/access/certs                 the JWK set
 *   GET  /cdn-cgi/access/login/<host>?kid=<aud>&redirect_url=<url>
 *                                              the sign-in form
 *   POST /cdn-cgi/access/login/<host>          email, password, kid, redirect_url
 * A sign-in checks an edge user of the app's account (not a service user)
 * with the password hash on libuv's worker pool; failures are counted per
 * email (edge/throttle.h: after 5, doubling delays). Success sends the
 * browser to <redirect_url's origin>/cdn-cgi/access/authorized?token=...,
 * where the visitor front sets the cookie. redirect_url must be on the
 * app's host, so the token never goes elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/crypto.h>

#include "edge/access_int.h"
#include "edge/password.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"
#include "proto/cookie.h"

#define LOGIN_PREFIX "/cdn-cgi/access/login/"
#define PRESESSION_COOKIE "CF_Access_Presession"
#define FIELD_MAX 2048

typedef struct form {
  char email[WR_STORE_EMAIL_MAX + 1];
  char password[WR_PASSWORD_MAX_LEN + 1];
  size_t password_len;
  char kid[80];
  char redirect[FIELD_MAX];
} form;

typedef struct signin_job {
  uv_work_t work;
  wr_access *a;
  wr_httpd_req *req;
  form f;
  json_t *app; /* a reference */
  char host[WR_STORE_HOST_MAX + 1];
  char hash[WR_PASSWORD_ENCODED_MAX];
  wr_user user;
  int known; /* the user exists, may sign in and has a password */
  int rv;
} signin_job;

/* ---- small helpers ---------------------------------------------------------------- */

void wr__access_html_escape(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '"' ? "&quot;"
                      : *s == '\'' ? "&#39;" : NULL;
    if (rep) {
      memcpy(out + o, rep, strlen(rep));
      o += strlen(rep);
    } else if ((unsigned char)*s >= 0x20) {
      out[o++] = *s;
    }
  }
  out[o] = '\0';
}

/* Percent-encodes |in| for a query value. */
void wr__access_url_escape(const char *in, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (; *in && o + 4 < cap; in++) {
    unsigned char ch = (unsigned char)*in;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
      out[o++] = (char)ch;
    } else {
      out[o++] = '%';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  out[o] = '\0';
}

/* The value of |name| in "a=b&c=d" (form or query encoding) into |out|.
 * Returns its length, or -1 when absent or malformed. */
int wr__access_field(const char *s, size_t len, const char *name, char *out, size_t cap, int binary) {
  size_t nl = strlen(name), i = 0;
  while (i < len) {
    const char *amp = memchr(s + i, '&', len - i);
    size_t end = amp ? (size_t)(amp - s) : len;
    if (end - i > nl && memcmp(s + i, name, nl) == 0 && s[i + nl] == '=') {
      size_t vl = end - i - nl - 1;
      if (vl + 1 > cap) return -1;
      int r = wr_pct_decode(s + i + nl + 1, vl, WR_PCT_PLUS | (binary ? WR_PCT_BINARY : 0), out, cap);
      return r < 0 ? -1 : r;
    }
    i = end + 1;
  }
  return -1;
}

void wr__access_respond_html_cookie(wr_httpd_req *req, int status, const char *body, const char *location,
                                    const char *set_cookie) {
  static const char csp[] = "default-src 'none'; style-src 'unsafe-inline'; form-action *; frame-ancestors 'none'";
  wr_http_header h[6] = {
      {"Content-Type", 12, "text/html; charset=utf-8", 24},
      {"Cache-Control", 13, "no-store", 8},
      {"Content-Security-Policy", 23, csp, sizeof(csp) - 1},
      {"X-Frame-Options", 15, "DENY", 4},
  };
  size_t n = 4;
  if (location) h[n++] = (wr_http_header){"Location", 8, location, strlen(location)};
  if (set_cookie) h[n++] = (wr_http_header){"Set-Cookie", 10, set_cookie, strlen(set_cookie)};
  wr_httpd_respond(req, status, h, n, body, strlen(body));
}

void wr__access_respond_html(wr_httpd_req *req, int status, const char *body, const char *location) {
  wr__access_respond_html_cookie(req, status, body, location, NULL);
}

/* The sign-in form for |host|, with |msg| (or none). */
/* ---- CSRF: the form is tied to a pre-session ---------------------------------------- */

/* The form's CSRF token for pre-session |pre|: base64url(HMAC-SHA-256(the
 * edge's CSRF key, |pre|)). Edges sharing a store derive the same key (from
 * the current signing key), so the POST may reach another edge. */
static void csrf_of(const wr_access *a, const char *pre, char out[WR_OIDC_SECRET_LEN + 1]) {
  uint8_t mac[32];
  out[0] = '\0';
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, a->csrf_key, sizeof(a->csrf_key), pre, strlen(pre), mac) == 0)
    wr_b64url_encode(mac, sizeof(mac), out, WR_OIDC_SECRET_LEN + 1);
}

/* The browser's pre-session (its cookie), or a new one with the
 * Set-Cookie that gives it (|set| "" when the browser has one). */
static void presession(wr_access *a, wr_httpd_req *req, char pre[WR_OIDC_SECRET_LEN + 1], char *set, size_t cap) {
  uint8_t raw[32];
  set[0] = '\0';
  if (wr__access_req_cookie(req, PRESESSION_COOKIE, pre, WR_OIDC_SECRET_LEN + 1) == WR_OIDC_SECRET_LEN) return;
  if (wr_random_bytes(raw, sizeof(raw)) != 0 || wr_b64url_encode(raw, sizeof(raw), pre, WR_OIDC_SECRET_LEN + 1) < 0) {
    pre[0] = '\0';
    return;
  }
  snprintf(set, cap, PRESESSION_COOKIE "=%s; Path=" LOGIN_PREFIX "; HttpOnly; SameSite=Lax%s", pre,
           strncmp(a->team, "https://", 8) ? "" : "; Secure");
}

/* 1 when the POST's csrf field belongs to the browser's pre-session. */
static int csrf_ok(wr_access *a, wr_httpd_req *req) {
  char pre[WR_OIDC_SECRET_LEN + 1], want[WR_OIDC_SECRET_LEN + 1], got[WR_OIDC_SECRET_LEN + 8];
  if (wr__access_req_cookie(req, PRESESSION_COOKIE, pre, sizeof(pre)) != WR_OIDC_SECRET_LEN ||
      wr__access_field((const char *)req->body, req->body_len, "csrf", got, sizeof(got), 0) != WR_OIDC_SECRET_LEN)
    return 0;
  csrf_of(a, pre, want);
  unsigned char d = 0;
  for (size_t i = 0; i < WR_OIDC_SECRET_LEN; i++) d |= (unsigned char)(want[i] ^ got[i]);
  return want[0] && d == 0;
}

int wr__access_req_cookie(wr_httpd_req *req, const char *name, char *out, size_t cap) {
  int len = -1;
  out[0] = '\0';
  for (size_t i = 0; i < req->nheaders; i++) {
    const wr_http_header *h = &req->headers[i];
    const char *v;
    size_t vl;
    if (h->name_len == 6 && !strncasecmp(h->name, "Cookie", 6) && wr_cookie_find(h->value, h->value_len, name, &v, &vl) &&
        vl < cap && !memchr(v, '\0', vl)) {
      memcpy(out, v, vl);
      out[vl] = '\0';
      len = (int)vl;
    }
  }
  return len;
}

/* The sign-in form for |host|, with |msg| (or none). */
static void form_page_with(wr_access *a, wr_httpd_req *req, int status, const char *host, const char *kid,
                           const char *redirect, const char *msg, const char *extra) {
  char eh[WR_STORE_HOST_MAX * 6], ek[512], er[FIELD_MAX * 6], em[512], action[WR_STORE_HOST_MAX * 3 + 32];
  char pre[WR_OIDC_SECRET_LEN + 1], csrf[WR_OIDC_SECRET_LEN + 1], set[160];
  presession(a, req, pre, set, sizeof(set));
  csrf_of(a, pre, csrf);
  wr__access_html_escape(host, eh, sizeof(eh));
  wr__access_html_escape(kid, ek, sizeof(ek));
  wr__access_html_escape(redirect, er, sizeof(er));
  wr__access_html_escape(msg ? msg : "", em, sizeof(em));
  wr__access_url_escape(host, action, sizeof(action));
  char *body = wr_xasprintf(
           "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Sign in to %s</title></head>\n"
           "<body><h1>Sign in to %s</h1>\n%s%s%s"
           "<form method=\"post\" action=\"" LOGIN_PREFIX "%s\">\n"
           "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n"
           "<input type=\"hidden\" name=\"kid\" value=\"%s\">\n"
           "<input type=\"hidden\" name=\"redirect_url\" value=\"%s\">\n"
           "<label>Email <input type=\"email\" name=\"email\" autocomplete=\"username\" required></label><br>\n"
           "<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label><br>\n"
           "<button type=\"submit\">Sign in</button>\n</form>\n%s<hr><p>warren-edge Access</p></body></html>\n",
           eh, eh, msg ? "<p role=\"alert\">" : "", em, msg ? "</p>\n" : "", action, csrf, ek, er, extra);
  wr__access_respond_html_cookie(req, status, body, NULL, set[0] ? set : NULL);
  free(body);
}

static void form_page(wr_access *a, wr_httpd_req *req, int status, const char *host, const char *kid,
                      const char *redirect, const char *msg) {
  form_page_with(a, req, status, host, kid, redirect, msg, "");
}

/* The app of |host| with tag |kid|, or NULL. Borrowed. */
json_t *wr__access_app_by_kid(wr_access *a, const char *host, const char *kid) {
  json_t *doc = wr__access_host_doc(a, host), *app;
  size_t i;
  if (!doc) return NULL;
  json_array_foreach(json_object_get(doc, "apps"), i, app) {
    const char *aud = json_string_value(json_object_get(app, "aud"));
    if (aud && strcmp(aud, kid) == 0) return app;
  }
  return NULL;
}

/* redirect_url must be http(s)://<host>[:port][/...]; |origin| gets
 * "scheme://authority". Returns 0 or -1. */
int wr__access_redirect_ok(const char *url, const char *host, char *origin, size_t cap) {
  const char *p = !strncmp(url, "https://", 8) ? url + 8 : !strncmp(url, "http://", 7) ? url + 7 : NULL;
  size_t hl = strlen(host);
  if (!p || strncasecmp(p, host, hl) != 0) return -1;
  const char *q = p + hl;
  if (*q == ':') {
    q++;
    if (*q < '0' || *q > '9') return -1;
    while (*q >= '0' && *q <= '9') q++;
  }
  if (*q && *q != '/') return -1;
  for (const char *c = url; *c; c++)
    if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f) return -1;
  snprintf(origin, cap, "%.*s", (int)(q - url), url);
  return 0;
}

/* ---- the sign-in ----------------------------------------------------------------------- */

static void signin_job_free(signin_job *j) {
  json_decref(j->app);
  explicit_bzero(j, sizeof(*j)); /* the password and its hash */
  free(j);
}

static void signin_work(uv_work_t *w) {
  signin_job *j = w->data;
  /* Unknown users cost the same time as a wrong password. */
  j->rv = j->known ? wr_password_verify(j->f.password, j->f.password_len, j->hash)
                   : wr_password_verify_dummy(j->f.password, j->f.password_len);
}

int wr__access_finish(wr_access *a, wr_httpd_req *req, const char *host, json_t *app, const char *redirect,
                      const char *account, const char *email, const char *sub, const char *via,
                      const char *set_cookie) {
  char origin[FIELD_MAX], et[FIELD_MAX * 3], er[FIELD_MAX * 3];
  json_t *ident = json_pack("{s:s,s:s}", "email", email, "sub", sub);
  char *tok = wr__access_sign(a, app, ident);
  if (!tok || wr__access_redirect_ok(redirect, host, origin, sizeof(origin)) != 0) {
    free(tok);
    return -1;
  }
  wr__access_url_escape(tok, et, sizeof(et));
  wr__access_url_escape(redirect, er, sizeof(er));
  char *loc = wr_xasprintf("%s/cdn-cgi/access/authorized?token=%s&redirect_url=%s", origin, et, er);
  a->stats.signins_ok++;
  wr__access_audit(a, account, "access.login", json_string_value(json_object_get(app, "id")),
                   json_pack("{s:s,s:s,s:s}", "email", email, "app", json_string_value(json_object_get(app, "name")),
                             "via", via));
  wr_info("access: %s signed in to %s (%s)", email, host, via);
  wr__access_respond_html_cookie(req, 302, "<!DOCTYPE html>\n<p>Signed in.</p>\n", loc, set_cookie);
  explicit_bzero(loc, strlen(loc));
  free(loc);
  free(tok);
  return 0;
}

static void signin_success(signin_job *j, json_t *app) {
  wr_throttle_record(j->a->signin_rl, j->f.email, wr__access_now_ms(j->a), WR_THROTTLE_SUCCESS, NULL);
  if (wr__access_finish(j->a, j->req, j->host, app, j->f.redirect, j->user.account_id, j->user.email, j->user.id,
                        "password", NULL) != 0)
    form_page(j->a, j->req, 500, j->host, j->f.kid, j->f.redirect, "The sign-in could not be completed.");
}

static void signin_done(uv_work_t *w, int status) {
  signin_job *j = w->data;
  wr_access *a = j->a;
  if (a->freeing || status != 0) {
    wr_httpd_respond_simple(j->req, 503, "text/plain", "shutting down\n", 14);
  } else if (j->rv != WR_OK) {
    wr_throttle_info info;
    a->stats.signins_failed++;
    wr_throttle_record(a->signin_rl, j->f.email, wr__access_now_ms(a), WR_THROTTLE_FAILURE, &info);
    wr_info("access: failed sign-in for %s to %s", j->f.email, j->host);
    form_page(a, j->req, 403, j->host, j->f.kid, j->f.redirect, "Wrong email or password.");
  } else {
    signin_success(j, j->app);
  }
  signin_job_free(j);
  wr_owner_drop(&a->jobs); /* may free |a| */
}

/* Reads the form; answers and returns -1 when it is not usable. */
static int read_form(wr_access *a, wr_httpd_req *req, const char *host, form *f) {
  const char *b = (const char *)req->body;
  size_t n = req->body_len;
  int pl;
  if (wr__access_field(b, n, "kid", f->kid, sizeof(f->kid), 0) < 0 ||
      wr__access_field(b, n, "redirect_url", f->redirect, sizeof(f->redirect), 0) < 0) {
    form_page(a, req, 400, host, "", "", "The form is incomplete.");
    return -1;
  }
  if (wr__access_field(b, n, "email", f->email, sizeof(f->email), 0) <= 0 ||
      (pl = wr__access_field(b, n, "password", f->password, sizeof(f->password), 1)) <= 0) {
    form_page(a, req, 400, host, f->kid, f->redirect, "Enter an email and a password.");
    return -1;
  }
  if (!csrf_ok(a, req)) {
    /* Not this browser's form (or one from before a key rotation): a fresh
     * one, nothing checked. */
    form_page(a, req, 403, host, f->kid, f->redirect, "This form has expired; sign in again.");
    return -1;
  }
  f->password_len = (size_t)pl;
  return 0;
}

/* Whether |j|'s email is a user of the app's account (not a service user)
 * with a password; the hash into j->hash. On either thread. */
static int user_known(wr_store *s, signin_job *j) {
  const char *acct = json_string_value(json_object_get(j->app, "account_id"));
  return wr_store_user_get_by_email(s, j->f.email, &j->user) == WR_OK && !j->user.is_service && acct &&
         strcmp(j->user.account_id, acct) == 0 &&
         wr_store_user_password_hash(s, j->user.id, j->hash, sizeof(j->hash)) == WR_OK;
}

/* The password check on the worker pool. */
static void signin_verify(signin_job *j) {
  wr_access *a = j->a;
  j->work.data = j;
  if (uv_queue_work(a->loop, &j->work, signin_work, signin_done) != 0) {
    form_page(a, j->req, 503, j->host, j->f.kid, j->f.redirect, "The edge is busy; try again.");
    signin_job_free(j);
    return;
  }
  wr_owner_hold(&a->jobs);
}

static void user_run(wr_store *s, void *arg) {
  signin_job *j = arg;
  j->known = user_known(s, j);
}

static void user_done(void *arg, int status) {
  signin_job *j = arg;
  wr_access *a = j->a;
  if (a->freeing || status != WR_OK) {
    wr_httpd_respond_simple(j->req, 503, "text/plain", "shutting down\n", 14);
    signin_job_free(j);
    return;
  }
  signin_verify(j);
}

static void signin(wr_access *a, wr_httpd_req *req, const char *host) {
  signin_job *j = wr_xcalloc(1, sizeof(*j));
  char origin[FIELD_MAX];
  snprintf(j->host, sizeof(j->host), "%s", host);
  if (read_form(a, req, host, &j->f) != 0) goto done;
  json_t *app = wr__access_app_by_kid(a, host, j->f.kid);
  if (!app || wr__access_redirect_ok(j->f.redirect, host, origin, sizeof(origin)) != 0) {
    form_page(a, req, 400, host, j->f.kid, "", "This sign-in link is not valid for this application.");
    goto done;
  }
  uint64_t wait = wr_throttle_check(a->signin_rl, j->f.email, wr__access_now_ms(a));
  if (wait) {
    char msg[128];
    snprintf(msg, sizeof(msg), "Too many failed sign-ins; try again in %llu seconds.", (unsigned long long)((wait + 999) / 1000));
    form_page(a, req, 429, host, j->f.kid, j->f.redirect, msg);
    goto done;
  }
  j->app = json_incref(app);
  j->a = a;
  j->req = req;
  if (!a->async) { /* no store thread: the user is read here */
    j->known = user_known(a->store, j);
    signin_verify(j);
    return;
  }
  if (wr_store_async_owner_submit(a->async, &a->jobs, user_run, user_done, j) != WR_OK) {
    form_page(a, req, 503, host, j->f.kid, j->f.redirect, "The edge is busy; try again.");
    goto done;
  }
  return;
done:
  signin_job_free(j);
}

/* ---- waiting for a host's applications ----------------------------------------------- */

struct wr__access_parked {
  struct wr__access_parked *next;
  wr_httpd_req *req;
};

int wr__access_page_wait(wr_access *a, wr_httpd_req *req, const char *host) {
  if (!a->async) return 0; /* wr__access_host_doc reads the store itself */
  /* A request run again after a read came back takes what the cache has. */
  int rv = wr_access_prefetch(a, host, a->resuming);
  if (rv == WR_OK) return 0;
  if (rv == WR_AGAIN) {
    struct wr__access_parked *p = wr_xcalloc(1, sizeof(*p));
    p->req = req;
    p->next = a->parked;
    a->parked = p;
    return 1;
  }
  wr_httpd_respond_simple(req, 503, "text/plain", "the edge is busy; try again\n", 28);
  return 1;
}

void wr__access_pages_resume(wr_access *a) {
  struct wr__access_parked *list = a->parked;
  a->parked = NULL;
  a->resuming = 1;
  while (list) {
    struct wr__access_parked *next = list->next;
    wr_access_handle_httpd(a, list->req); /* answers, or parks it again */
    free(list);
    list = next;
  }
  a->resuming = 0;
}

void wr__access_pages_drop(wr_access *a) {
  while (a->parked) {
    struct wr__access_parked *p = a->parked;
    a->parked = p->next;
    wr_httpd_respond_simple(p->req, 503, "text/plain", "shutting down\n", 14);
    free(p);
  }
}

/* ---- routing ----------------------------------------------------------------------------- */

int wr_access_handle_httpd(wr_access *a, wr_httpd_req *req) {
  if (strcmp(req->path, "/cdn-cgi/access/certs") == 0) {
    const char *certs = wr_access_certs(a);
    wr_http_header h[2] = {{"Content-Type", 12, "application/json", 16}, {"Cache-Control", 13, "max-age=60", 10}};
    wr_httpd_respond(req, 200, h, 2, certs, strlen(certs));
    return 1;
  }
  if (wr__access_oidc_handle(a, req)) return 1;
  if (strncmp(req->path, LOGIN_PREFIX, sizeof(LOGIN_PREFIX) - 1) != 0) return 0;
  char host[WR_STORE_HOST_MAX + 1], err[128], kid[80] = "", redirect[FIELD_MAX] = "";
  if (wr_store_check_dns_name(req->path + sizeof(LOGIN_PREFIX) - 1, 0, host, err, sizeof(err)) != WR_OK) {
    wr_httpd_respond_simple(req, 404, "text/plain", "no such application\n", 20);
    return 1;
  }
  int post = !strcmp(req->method, "POST");
  if (!post && strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    wr_httpd_respond_simple(req, 405, "text/plain", "method not allowed\n", 19);
    return 1;
  }
  /* The pages read the host's applications from the cache, filled on the
   * store thread: the request waits (parked) until they are there. */
  if (wr__access_page_wait(a, req, host)) return 1;
  if (post) {
    signin(a, req, host);
    return 1;
  }
  wr__access_field(req->query, strlen(req->query), "kid", kid, sizeof(kid), 0);
  wr__access_field(req->query, strlen(req->query), "redirect_url", redirect, sizeof(redirect), 0);
  char origin[FIELD_MAX];
  if (!wr__access_app_by_kid(a, host, kid)) {
    form_page(a, req, 404, host, kid, "", "There is no such application on this edge.");
    return 1;
  }
  if (!redirect[0]) snprintf(redirect, sizeof(redirect), "https://%s/", host);
  if (wr__access_redirect_ok(redirect, host, origin, sizeof(origin)) != 0) {
    form_page(a, req, 400, host, kid, "", "The redirect_url is not on the application's host.");
    return 1;
  }
  char *auto_url = NULL, *links = wr__access_oidc_links(a, wr__access_app_by_kid(a, host, kid), host, kid, redirect,
                                                         &auto_url);
  if (auto_url) wr__access_respond_html(req, 302, "<!DOCTYPE html>\n<p>Sign in with your identity provider.</p>\n", auto_url);
  else form_page_with(a, req, 200, host, kid, redirect, NULL, links);
  free(links);
  free(auto_url);
  return 1;
}
