/* The cert.pem hand-off of the login pages (login_int.h, login.h steps 2-4):
 * authorizing a zone and issuing the certificate (the worker-pool job is
 * started through login_signin.c's job machinery, and comes back here),
 * the API token inside the new cert.pem (made on the store thread, which
 * has the loop hand the cert.pem out once the token exists), the
 * deliveries (a cert.pem per CLI key, handed out once, then kept as a
 * tombstone until it expires), the held polls of the transfer endpoint,
 * the success page and the download, and the URLs the CLI opens and
 * polls. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "edge/login_int.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"

/* "login:<email>", cut at a character boundary to fit the audit actor. */
static void login_actor(const char *email, char out[128]) {
  size_t n = strlen(email), max = 127 - 6;
  if (n > max) {
    n = max;
    while (n > 0 && ((unsigned char)email[n] & 0xc0) == 0x80) n--;
  }
  snprintf(out, 128, "login:%.*s", (int)n, email);
}

/* ---- deliveries and held polls --------------------------------------------------------- */

static void delivery_free(wr_login *l, login_delivery *d) {
  for (login_delivery **pp = &l->deliveries; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      l->ndeliveries--;
      break;
    }
  wr__login_wipe_free(d->pem);
  free(d);
}

static login_delivery *delivery_find(wr_login *l, const char *key) {
  for (login_delivery *d = l->deliveries; d; d = d->next)
    if (strcmp(d->key, key) == 0) return d;
  return NULL;
}

void wr__login_deliveries_sweep(wr_login *l, uint64_t now) {
  for (login_delivery *d = l->deliveries, *next; d; d = next) {
    next = d->next;
    if (d->expires <= now) {
      if (d->pem) wr_info("login: cert.pem for request %.8s expired without being collected", d->key);
      delivery_free(l, d);
    }
  }
}

static void waiter_unlink(wr_login *l, login_waiter *w) {
  if (w->prev) w->prev->next = w->next;
  else l->waiters = w->next;
  if (w->next) w->next->prev = w->prev;
  l->nwaiters--;
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, wr__login_handle_closed);
}

static login_waiter *waiter_find(wr_login *l, const char *key) {
  for (login_waiter *w = l->waiters; w; w = w->next)
    if (strcmp(w->key, key) == 0) return w;
  return NULL;
}

static const wr_http_header no_store_hdrs[] = {
    {"Content-Type", 12, "text/plain; charset=utf-8", 25},
    {"Cache-Control", 13, "no-store", 8},
};

/* "Not yet": cloudflared logs "Waiting for login..." and polls again. */
static void answer_waiting(wr_httpd_req *req, const char *why) {
  wr_httpd_respond(req, 404, no_store_hdrs, 2, why, strlen(why));
}

/* Sends |d|'s cert.pem to a poll. On success the edge forgets it (the
 * delivery stays as a tombstone); if the client left, it stays for the
 * next poll. |req| is answered (freed) either way. */
static int deliver(wr_login *l, login_delivery *d, wr_httpd_req *req) {
  static const wr_http_header hs[] = {
      {"Content-Type", 12, "application/x-pem-file", 22},
      {"Cache-Control", 13, "no-store", 8},
  };
  int rv = wr_httpd_respond(req, 200, hs, 2, d->pem, strlen(d->pem));
  if (rv == WR_OK) {
    wr__login_wipe_free(d->pem);
    d->pem = NULL;
    wr_info("login: cert.pem for request %.8s handed to the polling client", d->key);
  }
  (void)l;
  return rv;
}

static void on_waiter_timeout(uv_timer_t *t) {
  login_waiter *w = (login_waiter *)t;
  wr_login *l = w->l;
  if (w->req) answer_waiting(w->req, "waiting for login\n");
  w->req = NULL;
  waiter_unlink(l, w);
}

/* Queues |pem| (taken) for |key| and hands it to a poll already waiting. */
static void delivery_add(wr_login *l, const char *key, char *pem) {
  login_delivery *d = wr_xcalloc(1, sizeof(*d));
  snprintf(d->key, sizeof(d->key), "%s", key);
  d->pem = pem;
  d->expires = wr__login_now(l) + l->ttl_ms;
  d->next = l->deliveries;
  l->deliveries = d;
  l->ndeliveries++;
  login_waiter *w = waiter_find(l, key);
  if (w && w->req) {
    deliver(l, d, w->req);
    w->req = NULL;
    waiter_unlink(l, w);
  }
}

/* Room for one more delivery: drop the oldest tombstone if full. 0 or -1. */
static int delivery_room(wr_login *l) {
  login_delivery *oldest = NULL;
  if (l->ndeliveries < l->max_pending) return 0;
  for (login_delivery *d = l->deliveries; d; d = d->next)
    if (!d->pem && (!oldest || d->expires < oldest->expires)) oldest = d;
  if (!oldest) return -1;
  delivery_free(l, oldest);
  return 0;
}

void wr__login_transfer_close(wr_login *l) {
  while (l->waiters) {
    login_waiter *w = l->waiters;
    if (w->req) answer_waiting(w->req, "the edge is shutting down\n");
    w->req = NULL;
    waiter_unlink(l, w);
  }
  while (l->deliveries) delivery_free(l, l->deliveries);
}

/* ---- pages ------------------------------------------------------------------------------ */

/* POST /argotunnel/authorize */
/* An authorization waiting for its reads: the session's user (it may have
 * been removed or made a service user since) and the chosen zone. */
typedef struct authorize_job {
  wr_httpd_req *req;
  char sid[WR__LOGIN_SID_LEN + 1];
  char callback[WR__LOGIN_CALLBACK_MAX + 1];
  char key[WR_LOGIN_KEY_MAX + 1];
  char user_id[WR_STORE_ID_LEN + 1];
  char zone_id[WR_STORE_ID_LEN + 2];
  int zone_len; /* wr__login_form_get's answer for the zone field */
  int user_rv, zone_rv;
  wr_user u;
  wr_zone z;
} authorize_job;

static void authorize_run(wr_store *st, void *arg) {
  authorize_job *a = arg;
  a->zone_rv = WR_ERR_NOTFOUND;
  a->user_rv = wr_store_user_get(st, a->user_id, &a->u);
  if (a->user_rv == WR_OK && !a->u.is_service && a->zone_len == WR_STORE_ID_LEN)
    a->zone_rv = wr_store_zone_get(st, a->zone_id, &a->z);
}

/* The reads are back: the checks that need them, then the issuing job. */
static void authorize_checked(wr_login *l, authorize_job *a, login_session *s) {
  login_reply r = {.status = 400};
  wr_httpd_req *req = a->req;
  const char *key = a->key;
  login_job *j;
  if (a->user_rv != WR_OK || a->u.is_service) {
    wr__login_session_destroy(l, s);
    wr__login_simple_page(l, req, 403, "Signed out", "Your user no longer exists or cannot sign in; you were signed out.", 1);
    return;
  }
  if (a->zone_rv != WR_OK || strcmp(a->z.account_id, s->user.account_id) != 0) {
    wr__login_zone_picker(l, req, &r, s, a->callback, key, "Choose one of the zones below.");
    return;
  }
  if (key[0] && delivery_find(l, key)) {
    wr__login_simple_page(l, req, 409, "Already done",
                "This login request was completed already. Run the login command again for a new "
                "certificate.",
                0);
    return;
  }
  if (key[0] && l->ndeliveries >= l->max_pending && delivery_room(l) != 0) {
    wr__login_simple_page(l, req, 503, "Busy", "Too many logins are waiting to be collected; try again later.", 0);
    return;
  }
  j = wr_xcalloc(1, sizeof(*j));
  j->kind = JOB_ISSUE;
  j->req = req;
  memcpy(j->sid, s->id, sizeof(j->sid));
  snprintf(j->callback, sizeof(j->callback), "%s", a->callback);
  j->data_dir = wr_xstrdup(l->data_dir);
  j->zone = a->z;
  s->busy = 1;
  wr__login_job_start(l, j);
}

static void authorize_done(wr_login *l, void *arg, int status) {
  authorize_job *a = arg;
  login_session *s = wr__login_store_session(l, a->req, a->sid, status, 1, 1);
  if (s) authorize_checked(l, a, s);
  explicit_bzero(a, sizeof(*a));
  free(a);
}

/* POST /argotunnel/authorize. The user and the zone are read with
 * wr__login_store_call; the session is busy meanwhile. */
void wr__login_page_authorize(wr_login *l, wr_httpd_req *req) {
  char callback[WR__LOGIN_CALLBACK_MAX + 1], key[WR_LOGIN_KEY_MAX + 1];
  const char *body = (const char *)req->body;
  login_session *s;
  login_reply r = {.status = 403};
  if (req->body_len > WR__LOGIN_FORM_MAX) {
    wr__login_simple_page(l, req, 413, "Too large", "The form data is too large.", 0);
    return;
  }
  if (wr__login_read_callback(l, req, body, req->body_len, callback, key) != 0) return;
  if (!(s = wr__login_post_session(l, req, callback))) return;
  if (!s->signed_in) {
    wr__login_signin_form(l, req, &r, s, callback, key, NULL, "Please sign in first.");
    return;
  }
  authorize_job *a = wr_xcalloc(1, sizeof(*a));
  a->req = req;
  memcpy(a->sid, s->id, sizeof(a->sid));
  memcpy(a->callback, callback, sizeof(a->callback));
  memcpy(a->key, key, sizeof(a->key));
  memcpy(a->user_id, s->user.id, sizeof(a->user_id));
  a->zone_len = wr__login_form_get(body, req->body_len, "zone", 0, a->zone_id, sizeof(a->zone_id));
  s->busy = 1;
  if (wr__login_store_call(l, authorize_run, authorize_done, a) != WR_OK) {
    s->busy = 0;
    free(a);
    wr__login_simple_page(l, req, 503, "Busy", "The edge's store is busy; try again in a few seconds.", 0);
  }
}

/* ---- the API token of a new cert.pem ------------------------------------------------------ */

/* Where a token job ended; the loop answers by it. */
typedef enum token_outcome {
  TOKEN_STOPPED,       /* the store thread stopped before the job (or its hand-over) ran */
  TOKEN_CREATE_FAILED, /* no token: errmsg says why */
  TOKEN_ENCODE_FAILED, /* no cert.pem: the token was revoked */
  TOKEN_NO_SESSION,    /* the session ended meanwhile: the token was revoked */
  TOKEN_TAKEN,         /* the key got its cert.pem meanwhile (or has no room): revoked */
  TOKEN_HANDED,        /* the cert.pem is the session's (and queued for the key) */
} token_outcome;

/* An issued certificate waiting for its API token. The store thread makes
 * the token and the cert.pem around it, has the loop hand the cert.pem out
 * (handover: the token exists before anyone can hold it), then writes the
 * user.login audit row, or revokes the token nobody got. The session is
 * busy meanwhile. Fields after |handover| are written by the job. */
typedef struct token_job {
  wr_login *l;           /* touched on the loop only (handover, done) */
  wr_store_async *async; /* the hand-over's way to the loop; NULL: on it */
  wr_httpd_req *req;
  char sid[WR__LOGIN_SID_LEN + 1];
  char key[WR_LOGIN_KEY_MAX + 1]; /* "" for a download only */
  char actor[128];
  wr_user user;          /* the session's user at issuing */
  wr_zone zone;
  wr_pem_pair pair;      /* the certificate, taken from the issuing job */
  token_outcome outcome;
  wr_api_token k;
  char *pem;             /* until the hand-over takes it */
  int audit_rv;
  char errmsg[WR_STORE_ERRMSG_MAX]; /* of the token's creation or of the audit row */
} token_job;

static void token_job_free(token_job *t) {
  wr__login_wipe_free(t->pem);
  wr_pem_pair_free(&t->pair);
  explicit_bzero(t, sizeof(*t));
  free(t);
}

/* Whether |key| can take no new cert.pem: it has one already, or no room
 * is left for one more delivery (after dropping the oldest tombstone). */
static int key_taken(wr_login *l, const char *key) { return delivery_find(l, key) || delivery_room(l) != 0; }

/* The answer when key_taken. */
static void answer_taken(wr_login *l, wr_httpd_req *req) {
  wr__login_simple_page(l, req, 409, "Already done",
                        "This login request was completed already (or the edge is too busy). Run the login "
                        "command again.",
                        0);
}

/* On the loop, in the middle of token_run: the cert.pem goes to the
 * session (for the success page and the download) and to a polling CLI. */
static void token_handover(void *arg) {
  token_job *t = arg;
  wr_login *l = t->l;
  login_session *s = l->closing ? NULL : wr__login_session_find(l, t->sid);
  if (!s || !s->signed_in) {
    t->outcome = TOKEN_NO_SESSION;
    return;
  }
  if (t->key[0] && key_taken(l, t->key)) {
    t->outcome = TOKEN_TAKEN;
    return;
  }
  wr__login_wipe_free(s->pem);
  s->pem = t->pem;
  t->pem = NULL;
  snprintf(s->zone_name, sizeof(s->zone_name), "%s", t->zone.name);
  s->for_cli = t->key[0] != '\0';
  wr__login_key_fingerprint(t->key, s->key_fp);
  if (t->key[0]) delivery_add(l, t->key, wr_xstrdup(s->pem));
  t->outcome = TOKEN_HANDED;
}

static void token_audit(wr_store *st, token_job *t) {
  json_t *detail = json_pack("{s:s,s:s,s:s,s:s}", "email", t->user.email, "zone", t->zone.name,
                             "token_id", t->k.id, "via", t->key[0] ? "cli" : "download");
  char *dtext = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
  json_decref(detail);
  t->audit_rv = wr_store_audit_append(st, t->actor, t->user.account_id, "user.login", "user", t->user.id, dtext);
  if (t->audit_rv != WR_OK) snprintf(t->errmsg, sizeof(t->errmsg), "%s", wr_store_errmsg(st));
  free(dtext);
}

/* The store thread's part (wr__login_store_call's fn). */
static void token_run(wr_store *st, void *arg) {
  token_job *t = arg;
  char token[WR_STORE_TOKEN_LEN + 1];
  wr_origin_cert oc;
  if (wr_store_token_create(st, t->actor, t->user.id, t->zone.id, token, &t->k) != WR_OK) {
    t->outcome = TOKEN_CREATE_FAILED;
    snprintf(t->errmsg, sizeof(t->errmsg), "%s", wr_store_errmsg(st));
    return;
  }
  memset(&oc, 0, sizeof(oc));
  snprintf(oc.zone_id, sizeof(oc.zone_id), "%s", t->zone.id);
  snprintf(oc.account_id, sizeof(oc.account_id), "%s", t->zone.account_id);
  snprintf(oc.api_token, sizeof(oc.api_token), "%s", token);
  t->pem = wr_origin_cert_encode(&oc, t->pair.cert, t->pair.key);
  explicit_bzero(token, sizeof(token));
  explicit_bzero(&oc, sizeof(oc));
  if (!t->pem) t->outcome = TOKEN_ENCODE_FAILED;
  else if (wr_store_async_on_loop(t->async, token_handover, t) != WR_OK) t->outcome = TOKEN_STOPPED;
  if (t->outcome == TOKEN_HANDED) {
    token_audit(st, t);
    return;
  }
  /* Nobody will ever hold this token. */
  wr_store_token_revoke(st, t->actor, t->k.id);
}

/* The loop's answer (wr__login_store_call's done). */
static void token_done(wr_login *l, void *arg, int status) {
  token_job *t = arg;
  char ebuf[96];
  login_reply r = {.status = 303};
  if (!l->closing) wr__login_session_job_done(l, t->sid);
  switch (l->closing || status != WR_OK ? TOKEN_STOPPED : t->outcome) {
  case TOKEN_STOPPED:
    wr_httpd_respond_simple(t->req, 503, "text/plain", "the edge is shutting down\n", 26);
    break;
  case TOKEN_CREATE_FAILED:
    wr_error("login: creating an API token for %s failed: %s", wr__login_logsafe(t->user.email, ebuf, sizeof(ebuf)),
             t->errmsg);
    wr__login_simple_page(l, t->req, 500, "Internal error", "The edge could not create an API token; try again.", 0);
    break;
  case TOKEN_ENCODE_FAILED:
    wr__login_simple_page(l, t->req, 500, "Internal error", "The edge could not encode cert.pem; try again.", 0);
    break;
  case TOKEN_NO_SESSION:
    wr__login_simple_page(l, t->req, 403, "Session expired", "Your sign-in session expired; please start again.", 1);
    break;
  case TOKEN_TAKEN:
    answer_taken(l, t->req);
    break;
  case TOKEN_HANDED:
    if (t->audit_rv != WR_OK) wr_warn("login: writing the audit row failed: %s", t->errmsg);
    wr_info("login: %s got cert.pem for zone %s (API token %s)%s", wr__login_logsafe(t->user.email, ebuf, sizeof(ebuf)),
            t->zone.name, t->k.id, t->key[0] ? ", queued for the polling client" : "");
    wr__login_redirect(t->req, &r, WR_LOGIN_PATH "/done");
    break;
  }
  token_job_free(t);
}

void wr__login_issue_done(wr_login *l, login_job *j) {
  char key[WR_LOGIN_KEY_MAX + 1] = "";
  login_session *s = wr__login_session_find(l, j->sid);
  if (j->callback[0] && wr__login_callback_key(j->callback, key) != WR_OK) key[0] = '\0';
  if (!s || !s->signed_in) {
    wr__login_simple_page(l, j->req, 403, "Session expired", "Your sign-in session expired; please start again.", 1);
    return;
  }
  if (j->issue_rv != WR_OK) {
    wr_error("login: issuing an origin certificate for %s failed: %s", j->zone.name, j->err);
    wr__login_simple_page(l, j->req, 500, "Internal error", "The edge could not issue the certificate; try again.", 0);
    return;
  }
  if (key[0] && key_taken(l, key)) {
    answer_taken(l, j->req);
    return;
  }
  token_job *t = wr_xcalloc(1, sizeof(*t));
  t->l = l;
  t->async = l->async;
  t->req = j->req;
  memcpy(t->sid, j->sid, sizeof(t->sid));
  memcpy(t->key, key, sizeof(t->key));
  login_actor(s->user.email, t->actor);
  t->user = s->user;
  t->zone = j->zone;
  t->pair = j->pair; /* taken: the issuing job is freed on return */
  j->pair = (wr_pem_pair){0};
  s->busy = 1;
  if (wr__login_store_call(l, token_run, token_done, t) != WR_OK) {
    s->busy = 0;
    token_job_free(t);
    wr__login_simple_page(l, j->req, 503, "Busy", "The edge's store is busy; try again in a few seconds.", 0);
  }
}

/* GET /argotunnel/done */
void wr__login_page_done(wr_login *l, wr_httpd_req *req) {
  login_session *s = wr__login_session_from_cookie(l, req);
  if (!s || !s->signed_in || !s->pem) {
    wr__login_simple_page(l, req, 404, "Nothing here", "There is no certificate in this session; sign in first.", 1);
    return;
  }
  wr__login_done_page(l, req, s);
}

/* GET /argotunnel/cert.pem */
void wr__login_page_download(wr_login *l, wr_httpd_req *req) {
  login_session *s = wr__login_session_from_cookie(l, req);
  if (!s || !s->signed_in || !s->pem) {
    wr__login_simple_page(l, req, 404, "Nothing here", "There is no certificate in this session; sign in first.", 1);
    return;
  }
  static const wr_http_header hs[] = {
      {"Content-Type", 12, "application/x-pem-file", 22},
      {"Content-Disposition", 19, "attachment; filename=\"cert.pem\"", 31},
      {"Cache-Control", 13, "no-store", 8},
      {"X-Content-Type-Options", 22, "nosniff", 7},
  };
  wr_httpd_respond(req, 200, hs, 4, s->pem, strlen(s->pem));
}

/* GET /argotunnel/transfer/KEY and GET /KEY */
void wr__login_page_poll(wr_login *l, wr_httpd_req *req, const char *enc_key) {
  char key[WR_LOGIN_KEY_MAX + 1];
  int n = wr_pct_decode(enc_key, strlen(enc_key), 0, key, sizeof(key));
  login_delivery *d;
  login_waiter *w;
  if (n < 0 || !wr_login_key_valid(key, (size_t)n)) {
    wr_httpd_respond_simple(req, 400, "text/plain", "invalid login key\n", 18);
    return;
  }
  wr__login_sweep(l);
  if ((d = delivery_find(l, key)) && d->pem) {
    deliver(l, d, req);
    return;
  }
  /* A newer poll for the same key replaces the older (a CLI that gave up
   * on its connection and polled again). */
  if ((w = waiter_find(l, key))) {
    if (w->req) answer_waiting(w->req, "replaced by a newer poll\n");
    w->req = NULL;
    waiter_unlink(l, w);
  }
  if (l->nwaiters >= l->max_waiters) {
    wr_httpd_respond_simple(req, 429, "text/plain", "too many logins are waiting; poll again\n", 40);
    return;
  }
  w = wr_xcalloc(1, sizeof(*w));
  w->l = l;
  w->req = req;
  memcpy(w->key, key, (size_t)n + 1);
  wr_owner_timer_init(&l->owner, l->loop, &w->timer, l); /* held until its close callback */
  w->next = l->waiters;
  if (l->waiters) l->waiters->prev = w;
  l->waiters = w;
  l->nwaiters++;
  uv_timer_start(&w->timer, on_waiter_timeout, l->poll_hold_ms, 0);
}

/* ---- URLs for the CLI ---------------------------------------------------------------- */

static char *base_trim(const char *base) {
  char *b = wr_xstrdup(base ? base : "");
  for (size_t n = strlen(b); n > 0 && b[n - 1] == '/'; n--) b[n - 1] = '\0';
  return b;
}

char *wr_login_poll_url(const char *base, const char *key) {
  if (!key || !wr_login_key_valid(key, strlen(key))) return NULL;
  char *b = base_trim(base);
  char *out = wr_xasprintf("%s%s%s", b, WR_LOGIN_TRANSFER_PREFIX, key);
  free(b);
  return out;
}

char *wr_login_browser_url(const char *base, const char *key) {
  char *poll = wr_login_poll_url(base, key), *b, *out;
  wr_buf buf;
  if (!poll) return NULL;
  b = base_trim(base);
  wr_buf_init(&buf, 64 * 1024, NULL);
  wr_buf_append_str(&buf, b);
  /* Parameters sorted by name, as cloudflared builds them. */
  wr_buf_append_str(&buf, WR_LOGIN_PATH "?aud=&callback=");
  wr_pct_encode(&buf, poll);
  out = wr_xstrdup(wr_buf_cstr(&buf));
  wr_buf_free(&buf);
  free(b);
  free(poll);
  return out;
}
