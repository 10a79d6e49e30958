/* The login pages' HTML (login_int.h): every page and form the browser
 * sees, and the headers every answer of them carries (no caching, a CSP
 * that forbids scripts and framing, no referrer, the session cookie).
 * All text from users, the store or the request is HTML-escaped here. */
#include <stdio.h>
#include <string.h>

#include "edge/login_int.h"
#include "lib/buf.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"

/* Pages are bounded by construction (escaped fields of bounded length, at
 * most MAX_ZONES zones), far below this. */
#define PAGE_MAX (2u * 1024 * 1024)
#define MAX_ZONES 200

/* Appends |s| with the five HTML-special characters escaped: safe in text
 * and in quoted attribute values. */
static void h_esc(wr_buf *b, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&': wr_buf_append_str(b, "&amp;"); break;
    case '<': wr_buf_append_str(b, "&lt;"); break;
    case '>': wr_buf_append_str(b, "&gt;"); break;
    case '"': wr_buf_append_str(b, "&quot;"); break;
    case '\'': wr_buf_append_str(b, "&#39;"); break;
    default: wr_buf_append(b, s, 1); break;
    }
  }
}

void wr__login_set_cookie(wr_login *l, login_reply *r, const char *sid) {
  if (sid)
    snprintf(r->cookie, sizeof(r->cookie), WR__LOGIN_COOKIE_NAME "=%s; Path=/; Max-Age=%llu; HttpOnly; SameSite=Lax%s",
             sid, (unsigned long long)(l->ttl_ms / 1000), l->secure ? "; Secure" : "");
  else
    snprintf(r->cookie, sizeof(r->cookie), WR__LOGIN_COOKIE_NAME "=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax%s", l->secure ? "; Secure" : "");
}

static void send_reply(wr_httpd_req *req, const login_reply *r, const char *ctype, wr_buf *body) {
  static const char csp[] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                            "frame-ancestors 'none'; base-uri 'none'";
  wr_http_header hs[10];
  char retry[24];
  size_t n = 0;
  wr_httpd_page_fields(hs, &n, ctype, csp, "no-referrer");
#define HDR(nm, v) (hs[n++] = (wr_http_header){(nm), strlen(nm), (v), strlen(v)})
  if (r->cookie[0]) HDR("Set-Cookie", r->cookie);
  if (r->location[0]) HDR("Location", r->location);
  if (r->retry_after) {
    snprintf(retry, sizeof(retry), "%llu", (unsigned long long)r->retry_after);
    HDR("Retry-After", retry);
  }
#undef HDR
  wr_httpd_respond(req, r->status, hs, n, body ? body->data : NULL, body ? body->len : 0);
}

static void page_begin(wr_buf *b, const char *title) {
  wr_buf_append_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                       "<title>");
  h_esc(b, title);
  wr_buf_append_str(
      b, " · Warren</title><style>"
         "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
         "color:#222;line-height:1.5}"
         "h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}"
         "input[type=email],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}"
         "button{margin-top:1rem;padding:.5rem 1.2rem}"
         ".error{color:#a00;background:#fee;padding:.5rem;border-radius:4px}"
         ".ok{color:#060;background:#efe;padding:.5rem;border-radius:4px}"
         ".note{color:#555;font-size:.9rem}code,pre{background:#f4f4f4;padding:.1rem .3rem}"
         "pre{padding:.6rem;white-space:pre-wrap;word-break:break-all}"
         "</style></head><body>\n<h1>");
  h_esc(b, title);
  wr_buf_append_str(b, "</h1>\n");
}

static void page_end(wr_buf *b) { wr_buf_append_str(b, "</body></html>\n"); }

static void hidden(wr_buf *b, const char *name, const char *value) {
  wr_buf_append_str(b, "<input type=\"hidden\" name=\"");
  h_esc(b, name);
  wr_buf_append_str(b, "\" value=\"");
  h_esc(b, value);
  wr_buf_append_str(b, "\">");
}

/* A page with one message; |cls| "error" or "ok". */
void wr__login_send_message(wr_login *l, wr_httpd_req *req, login_reply *r, const char *title, const char *cls,
                         const char *msg, int restart_link) {
  wr_buf b;
  wr_buf_init(&b, PAGE_MAX, NULL);
  page_begin(&b, title);
  wr_buf_printf(&b, "<p id=\"message\" class=\"%s\">", cls);
  h_esc(&b, msg);
  wr_buf_append_str(&b, "</p>\n");
  if (restart_link)
    wr_buf_append_str(&b, "<p><a href=\"" WR_LOGIN_PATH "\">Start again</a> (for a waiting "
                          "<code>tunnel login</code>, run it again and open the new link)</p>\n");
  page_end(&b);
  send_reply(req, r, "text/html; charset=utf-8", &b);
  wr_buf_free(&b);
  (void)l;
}

void wr__login_simple_page(wr_login *l, wr_httpd_req *req, int status, const char *title,
                        const char *msg, int restart_link) {
  login_reply r = {.status = status};
  wr__login_send_message(l, req, &r, title, status < 400 ? "ok" : "error", msg, restart_link);
}

void wr__login_redirect(wr_httpd_req *req, login_reply *r, const char *location) {
  wr_buf b;
  r->status = 303;
  snprintf(r->location, sizeof(r->location), "%s", location);
  wr_buf_init(&b, 4096, NULL);
  wr_buf_append_str(&b, "See other: ");
  h_esc(&b, location);
  wr_buf_append_str(&b, "\n");
  send_reply(req, r, "text/plain; charset=utf-8", &b);
  wr_buf_free(&b);
}

/* /argotunnel?aud=&callback=<callback>, or /argotunnel without one. */
void wr__login_location(const char *callback, char *out, size_t size) {
  wr_buf b;
  wr_buf_init(&b, size - 1, NULL);
  wr_buf_append_str(&b, WR_LOGIN_PATH);
  if (callback[0]) {
    wr_buf_append_str(&b, "?aud=&callback=");
    wr_pct_encode(&b, callback);
  }
  snprintf(out, size, "%s", b.len < b.max ? wr_buf_cstr(&b) : WR_LOGIN_PATH);
  wr_buf_free(&b);
}

/* Starts |b| (PAGE_MAX) as a page of a sign-in for |key| ("": a plain
 * sign-in) titled |title|: what the request is, then |error| if any. */
static void request_page_begin(wr_buf *b, const char *title, const char *key, const char *error) {
  char fp[WR__LOGIN_FP_LEN + 1];
  wr_buf_init(b, PAGE_MAX, NULL);
  page_begin(b, title);
  if (!key[0]) {
    wr_buf_append_str(b, "<p>Sign in to get a <code>cert.pem</code> for <code>cloudflared</code> "
                         "or <code>warren</code>: it lets them create, route and delete tunnels "
                         "in your account.</p>\n");
  } else {
    wr__login_key_fingerprint(key, fp);
    wr_buf_append_str(b, "<p>A <code>tunnel login</code> asked for a certificate (request <code id=\"request\">");
    h_esc(b, fp);
    wr_buf_append_str(b, "</code>). Continue only if you started it yourself: whoever started it "
                         "receives a certificate for your account.</p>\n");
  }
  if (error) {
    wr_buf_append_str(b, "<p id=\"error\" class=\"error\">");
    h_esc(b, error);
    wr_buf_append_str(b, "</p>\n");
  }
}

void wr__login_signin_form(wr_login *l, wr_httpd_req *req, login_reply *r, login_session *s,
                             const char *callback, const char *key, const char *email,
                             const char *error) {
  wr_buf b;
  request_page_begin(&b, "Sign in to the Warren edge", key, error);
  wr_buf_append_str(&b, "<form id=\"signin\" method=\"post\" action=\"" WR_LOGIN_PATH "/signin\">");
  hidden(&b, "csrf", s->csrf);
  hidden(&b, "callback", callback);
  wr_buf_append_str(&b, "<label for=\"email\">Email</label>"
                        "<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" "
                        "required autofocus value=\"");
  h_esc(&b, email ? email : "");
  wr_buf_append_str(&b, "\"><label for=\"password\">Password</label>"
                        "<input id=\"password\" name=\"password\" type=\"password\" "
                        "autocomplete=\"current-password\" required>"
                        "<button id=\"submit\" type=\"submit\">Sign in</button></form>\n");
  page_end(&b);
  send_reply(req, r, "text/html; charset=utf-8", &b);
  wr_buf_free(&b);
  (void)l;
}

static void signout_form(wr_buf *b, login_session *s) {
  wr_buf_append_str(b, "<form id=\"signout\" method=\"post\" action=\"" WR_LOGIN_PATH "/signout\">");
  hidden(b, "csrf", s->csrf);
  wr_buf_append_str(b, "<p class=\"note\">Signed in as <span id=\"user\">");
  h_esc(b, s->user.email);
  wr_buf_append_str(b, "</span>. <button type=\"submit\">Sign out</button></p></form>\n");
}

/* A zone picker waiting for its zones. */
typedef struct picker_job {
  wr_httpd_req *req;
  login_reply r;
  char sid[WR__LOGIN_SID_LEN + 1];
  char callback[WR__LOGIN_CALLBACK_MAX + 1];
  char key[WR_LOGIN_KEY_MAX + 1];
  const char *error;
  char account_id[WR_STORE_ID_LEN + 1];
  wr_zone *zones;
  size_t n;
  int rv;
  char errmsg[WR_STORE_ERRMSG_MAX];
} picker_job;

static void picker_page(wr_login *l, picker_job *j, login_session *s) {
  wr_httpd_req *req = j->req;
  login_reply *r = &j->r;
  const char *callback = j->callback, *key = j->key, *error = j->error;
  wr_zone *zones = j->zones;
  size_t n = j->n;
  wr_buf b;
  if (j->rv != WR_OK) {
    wr_error("login: listing zones failed: %s", j->errmsg);
    r->status = 500;
    wr__login_send_message(l, req, r, "Internal error", "error", "The edge could not read its store; try again.", 0);
    return;
  }
  request_page_begin(&b, "Choose a zone", key, error);
  if (n == 0) {
    wr_buf_append_str(&b, "<p id=\"error\" class=\"error\">Your account has no zones yet. Ask the "
                          "edge's operator to add one.</p>\n");
  } else {
    wr_buf_append_str(&b, "<p>The certificate will be valid for one zone of your account, and its "
                          "subdomains:</p>\n<form id=\"authorize\" method=\"post\" action=\"" WR_LOGIN_PATH
                          "/authorize\">");
    hidden(&b, "csrf", s->csrf);
    hidden(&b, "callback", callback);
    for (size_t i = 0; i < n && i < MAX_ZONES; i++) {
      wr_buf_append_str(&b, "<label><input type=\"radio\" name=\"zone\" id=\"zone-");
      h_esc(&b, zones[i].name);
      wr_buf_append_str(&b, "\" value=\"");
      h_esc(&b, zones[i].id);
      wr_buf_append_str(&b, i == 0 ? "\" checked> " : "\"> ");
      h_esc(&b, zones[i].name);
      wr_buf_append_str(&b, "</label>");
    }
    wr_buf_append_str(&b, "<button id=\"authorize-button\" type=\"submit\">Authorize</button></form>\n");
  }
  signout_form(&b, s);
  page_end(&b);
  send_reply(req, r, "text/html; charset=utf-8", &b);
  wr_buf_free(&b);
}

static void picker_run(wr_store *st, void *arg) {
  picker_job *j = arg;
  j->rv = wr_store_zone_list(st, j->account_id, &j->zones, &j->n);
  if (j->rv != WR_OK) snprintf(j->errmsg, sizeof(j->errmsg), "%s", wr_store_errmsg(st));
}

static void picker_done(wr_login *l, void *arg, int status) {
  picker_job *j = arg;
  login_session *s = wr__login_store_session(l, j->req, j->sid, status, 0, 1);
  if (s) picker_page(l, j, s);
  free(j->zones);
  free(j);
}

void wr__login_zone_picker(wr_login *l, wr_httpd_req *req, login_reply *r, login_session *s,
                             const char *callback, const char *key, const char *error) {
  picker_job *j = wr_xcalloc(1, sizeof(*j));
  j->req = req;
  j->r = *r;
  memcpy(j->sid, s->id, sizeof(j->sid));
  snprintf(j->callback, sizeof(j->callback), "%s", callback);
  snprintf(j->key, sizeof(j->key), "%s", key);
  j->error = error;
  snprintf(j->account_id, sizeof(j->account_id), "%s", s->user.account_id);
  if (wr__login_store_call(l, picker_run, picker_done, j) != WR_OK) {
    free(j);
    wr__login_simple_page(l, req, 503, "Busy", "The edge's store is busy; try again in a few seconds.", 0);
  }
}

/* GET /argotunnel/done, for a signed-in session holding a cert.pem. */
void wr__login_done_page(wr_login *l, wr_httpd_req *req, login_session *s) {
  login_reply r = {.status = 200};
  wr_buf b;
  wr_buf_init(&b, PAGE_MAX, NULL);
  page_begin(&b, "You are logged in");
  wr_buf_append_str(&b, "<p id=\"success\" class=\"ok\">A certificate for the zone <b id=\"zone\">");
  h_esc(&b, s->zone_name);
  wr_buf_append_str(&b, "</b> was issued to ");
  h_esc(&b, s->user.email);
  wr_buf_append_str(&b, ".</p>\n");
  if (s->for_cli) {
    wr_buf_append_str(&b, "<p id=\"cli\">The waiting <code>tunnel login</code> (request <code>");
    h_esc(&b, s->key_fp);
    wr_buf_append_str(&b, "</code>) receives <code>cert.pem</code> now and saves it; you can close this "
                          "page.</p>\n");
  }
  wr_buf_append_str(&b, "<p><a id=\"download\" href=\"" WR_LOGIN_PATH "/cert.pem\" download=\"cert.pem\">"
                        "Download cert.pem</a> (it holds a private key and an API token: keep it "
                        "secret)</p>\n<p class=\"note\">To use it with <code>cloudflared</code>, save "
                        "it as <code>~/.cloudflared/cert.pem</code> (mode 0600) and point the tunnel "
                        "commands at this edge:</p>\n<pre>TUNNEL_API_URL=");
  h_esc(&b, l->public_url);
  wr_buf_append_str(&b, "/client/v4 cloudflared tunnel create my-tunnel</pre>\n");
  signout_form(&b, s);
  page_end(&b);
  send_reply(req, &r, "text/html; charset=utf-8", &b);
  wr_buf_free(&b);
}
