/* The login pages' browser sessions (login_int.h): a random id in an
 * HttpOnly cookie, renewed on sign-in, and a CSRF token that every form
 * carries; in memory, bounded (|max_sessions|, and a share per source for
 * anonymous ones) and expiring. Also the pages that only open or close a
 * session: the entry page (sign-in form or zone picker) and sign-out. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "edge/login_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define SID_BYTES 32

static int ct_equal(const char *a, const char *b, size_t n) {
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++) d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

/* 32 random bytes as unpadded base64url. */
int wr__login_random_id(char out[WR__LOGIN_SID_LEN + 1]) {
  uint8_t b[SID_BYTES];
  if (wr_random_bytes(b, sizeof(b)) != WR_OK) return WR_ERR_CRYPTO;
  int n = wr_base64_encode(b, sizeof(b), out, WR__LOGIN_SID_LEN + 1, WR_BASE64_URL);
  explicit_bzero(b, sizeof(b));
  if (n != WR__LOGIN_SID_LEN) return WR_ERR_INTERNAL;
  return WR_OK;
}

/* ---- the session table ---------------------------------------------------------- */

void wr__login_session_destroy(wr_login *l, login_session *s) {
  for (login_session **pp = &l->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      l->nsessions--;
      break;
    }
  wr__login_wipe_free(s->pem);
  explicit_bzero(s, sizeof(*s));
  free(s);
}

/* The session with |id|, or NULL; expired ones only if |expired_too|. */
static login_session *session_lookup(wr_login *l, const char *id, int expired_too) {
  login_session *found = NULL;
  uint64_t now = wr__login_now(l);
  if (strlen(id) != WR__LOGIN_SID_LEN) return NULL;
  /* Compare against every session, in constant time each. */
  for (login_session *s = l->sessions; s; s = s->next)
    if (ct_equal(s->id, id, WR__LOGIN_SID_LEN) && (expired_too || s->expires > now)) found = s;
  return found;
}

login_session *wr__login_session_find(wr_login *l, const char *id) { return session_lookup(l, id, 0); }

/* A job of |sid| came back: the session may run another (and, if it
 * expired meanwhile, may be swept now). */
void wr__login_session_job_done(wr_login *l, const char *sid) {
  login_session *s = session_lookup(l, sid, 1);
  if (s) s->busy = 0;
}

login_session *wr__login_session_from_cookie(wr_login *l, const wr_httpd_req *req) {
  for (size_t i = 0; i < req->nheaders; i++) {
    const wr_http_header *h = &req->headers[i];
    if (h->name_len != 6 || strncasecmp(h->name, "cookie", 6) != 0) continue;
    const char *p = h->value, *end = h->value + h->value_len;
    char id[WR__LOGIN_SID_LEN + 1];
    while (wr__login_cookie_next(&p, end, id)) {
      login_session *s = wr__login_session_find(l, id);
      if (s) return s;
    }
  }
  return NULL;
}

void wr__login_sessions_sweep(wr_login *l, uint64_t now) {
  for (login_session *s = l->sessions, *next; s; s = next) {
    next = s->next;
    if (s->expires <= now && !s->busy) wr__login_session_destroy(l, s);
  }
}

static login_session *session_new(wr_login *l, const wr_httpd_req *req) {
  login_session *s, *victim = NULL;
  char src[WR_THROTTLE_SOURCE_MAX];
  size_t mine = 0;
  wr__login_sweep(l);
  wr_throttle_source_key(&req->peer, src);
  /* A source at its share of anonymous sessions replaces its own oldest:
   * however fast it asks for new forms, it cannot push out the forms that
   * users elsewhere are filling in. */
  for (login_session *it = l->sessions; it; it = it->next)
    if (!it->signed_in && strcmp(it->src, src) == 0) {
      mine++;
      if (!it->busy && (!victim || it->created < victim->created)) victim = it;
    }
  if (mine >= l->max_sessions_per_source && victim) wr__login_session_destroy(l, victim);
  victim = NULL;
  if (l->nsessions >= l->max_sessions) {
    /* Evict the oldest anonymous session; signed-in ones are kept. */
    for (login_session *it = l->sessions; it; it = it->next)
      if (!it->signed_in && !it->busy && (!victim || it->created < victim->created)) victim = it;
    if (!victim) return NULL;
    wr__login_session_destroy(l, victim);
  }
  s = wr_xcalloc(1, sizeof(*s));
  if (wr__login_random_id(s->id) != WR_OK || wr__login_random_id(s->csrf) != WR_OK) {
    free(s);
    return NULL;
  }
  memcpy(s->src, src, sizeof(src));
  s->created = wr__login_now(l);
  s->expires = s->created + l->ttl_ms;
  s->next = l->sessions;
  l->sessions = s;
  l->nsessions++;
  return s;
}

/* ---- what every page starts with ----------------------------------------------------- */

/* Reads the callback parameter from query or form |data|. Returns 0 with
 * |callback| and |key| ("" for none), or -1 after answering 400. */
int wr__login_read_callback(wr_login *l, wr_httpd_req *req, const char *data, size_t len,
                         char callback[WR__LOGIN_CALLBACK_MAX + 1], char key[WR_LOGIN_KEY_MAX + 1]) {
  int n = wr__login_form_get(data, len, "callback", 0, callback, WR__LOGIN_CALLBACK_MAX + 1);
  key[0] = '\0';
  if (n == -1 || n == 0) {
    callback[0] = '\0';
    return 0;
  }
  if (n < 0 || wr__login_callback_key(callback, key) != WR_OK) {
    callback[0] = '\0';
    wr__login_simple_page(l, req, 400, "Bad login link",
                "This login link is malformed. Run the login command again and open the link it "
                "prints.",
                0);
    return -1;
  }
  return 0;
}

/* Common checks of every POST: size, session, CSRF. Returns the session or
 * NULL after answering. */
login_session *wr__login_post_session(wr_login *l, wr_httpd_req *req, const char *callback) {
  char csrf[WR__LOGIN_SID_LEN + 2];
  login_session *s;
  if (req->body_len > WR__LOGIN_FORM_MAX) {
    wr__login_simple_page(l, req, 413, "Too large", "The form data is too large.", 0);
    return NULL;
  }
  if (!(s = wr__login_session_from_cookie(l, req))) {
    login_reply r = {.status = 403};
    /* No cookie, or it expired: a fresh session with a fresh form. */
    if (!(s = session_new(l, req))) {
      wr__login_simple_page(l, req, 503, "Busy", "Too many sign-ins are in progress; try again in a minute.", 0);
      return NULL;
    }
    wr__login_set_cookie(l, &r, s->id);
    char key[WR_LOGIN_KEY_MAX + 1] = "";
    if (callback[0] && wr__login_callback_key(callback, key) != WR_OK) key[0] = '\0';
    wr__login_signin_form(l, req, &r, s, key[0] ? callback : "", key, NULL,
                     "Your sign-in session expired (or cookies are blocked). Please sign in again.");
    return NULL;
  }
  int n = wr__login_form_get((const char *)req->body, req->body_len, "csrf", 0, csrf, sizeof(csrf));
  if (n != WR__LOGIN_SID_LEN || !ct_equal(csrf, s->csrf, WR__LOGIN_SID_LEN)) {
    char ip[64];
    wr_warn("login: a form without the right CSRF token from %s was refused", wr__login_peer_ip(req, ip, sizeof(ip)));
    wr__login_simple_page(l, req, 403, "Refused",
                "This form is out of date or did not come from this page. Reload the page and try "
                "again.",
                1);
    return NULL;
  }
  if (s->busy) {
    wr__login_simple_page(l, req, 409, "Busy", "A request of this session is still running; wait a moment and reload.", 0);
    return NULL;
  }
  return s;
}

/* ---- for the dashboard (login.h) -------------------------------------------------- */

_Static_assert(WR_LOGIN_CSRF_LEN == WR__LOGIN_SID_LEN, "the CSRF token is a session id's size");

int wr_login_session_user(wr_login *l, const wr_httpd_req *req, wr_user *user,
                          char csrf[WR_LOGIN_CSRF_LEN + 1]) {
  login_session *s = l && !l->closing ? wr__login_session_from_cookie(l, req) : NULL;
  if (!s || !s->signed_in) return 0;
  if (user) *user = s->user;
  if (csrf) memcpy(csrf, s->csrf, WR__LOGIN_SID_LEN + 1);
  return 1;
}

int wr_login_csrf_ok(wr_login *l, const wr_httpd_req *req, const char *token) {
  login_session *s = l && !l->closing ? wr__login_session_from_cookie(l, req) : NULL;
  if (!s || !s->signed_in || !token || strlen(token) != WR__LOGIN_SID_LEN) return 0;
  return ct_equal(token, s->csrf, WR__LOGIN_SID_LEN);
}

/* ---- pages ---------------------------------------------------------------------------- */

/* GET /argotunnel */
void wr__login_page_main(wr_login *l, wr_httpd_req *req) {
  char callback[WR__LOGIN_CALLBACK_MAX + 1], key[WR_LOGIN_KEY_MAX + 1], aud[256];
  login_reply r = {.status = 200};
  int n;
  if (wr__login_read_callback(l, req, req->query, strlen(req->query), callback, key) != 0) return;
  n = wr__login_form_get(req->query, strlen(req->query), "aud", 0, aud, sizeof(aud));
  if (n > 0 || n == -2) {
    wr__login_simple_page(l, req, 400, "Not supported",
                "This edge serves tunnel login only; Access application logins (aud=...) are not "
                "supported here.",
                0);
    return;
  }
  login_session *s = wr__login_session_from_cookie(l, req);
  if (!s) {
    if (!(s = session_new(l, req))) {
      wr__login_simple_page(l, req, 503, "Busy", "Too many sign-ins are in progress; try again in a minute.", 0);
      return;
    }
    wr__login_set_cookie(l, &r, s->id);
  }
  char next[WR__LOGIN_NEXT_MAX + 2];
  n = wr__login_form_get(req->query, strlen(req->query), "next", 0, next, sizeof(next));
  /* A login link of the CLI wins; a bad next is dropped, not followed. */
  if (n <= 0 || callback[0] || !wr__login_next_ok(next)) next[0] = '\0';
  memcpy(s->next_path, next, strlen(next) + 1); /* checked: at most WR__LOGIN_NEXT_MAX */
  if (s->signed_in && next[0]) wr__login_redirect(req, &r, next);
  else if (s->signed_in) wr__login_zone_picker(l, req, &r, s, callback, key, NULL);
  else wr__login_signin_form(l, req, &r, s, callback, key, NULL, NULL);
}

/* POST /argotunnel/signout */
void wr__login_page_signout(wr_login *l, wr_httpd_req *req) {
  login_session *s = wr__login_post_session(l, req, "");
  login_reply r = {0};
  if (!s) return;
  wr__login_session_destroy(l, s);
  wr__login_set_cookie(l, &r, NULL);
  wr__login_redirect(req, &r, WR_LOGIN_PATH);
}
