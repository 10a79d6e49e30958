/* Sign-in for the login pages (login_int.h, login.h "Guessing"): the
 * password checks and what guards them. A sign-in passes the failure
 * throttles (per email and per source; a lockout answers 429 without a
 * check and is audited when it begins and ends), then waits for a turn in
 * the fair queue of checks (edge/fairq.h), then runs PBKDF2 on libuv's
 * worker pool; the outcome goes back to the throttles. The pool jobs of
 * certificate issuing (login_cert.c) use the same job machinery. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "edge/login_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define AUDIT_ACTOR "edge"      /* lockouts are the edge's decision */

/* ---- throttles and lockout audit -------------------------------------------------------- */

/* The account throttle's key of |email|: "u:" and the email with ASCII
 * letters in lower case, as the store compares emails (COLLATE NOCASE), so
 * "Alice@" and "alice@" share one count. */
static void account_key(const char *email, char out[WR__LOGIN_AKEY_MAX + 1]) {
  size_t n = strnlen(email, WR_STORE_EMAIL_MAX);
  out[0] = 'u';
  out[1] = ':';
  for (size_t i = 0; i < n; i++) {
    char c = email[i];
    out[2 + i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
  }
  out[2 + n] = '\0';
}

/* A copy of |in| (an email as typed into the form: any bytes) fit for an
 * audit row, whose readers print it and put it in JSON: control bytes
 * become '?', and so does every byte outside ASCII unless |in| is UTF-8. */
static void audit_text(const char *in, char out[WR__LOGIN_AKEY_MAX + 1]) {
  json_t *probe = json_string(in);
  int utf8 = probe != NULL;
  size_t i = 0;
  json_decref(probe);
  for (; in[i] && i < WR__LOGIN_AKEY_MAX; i++) {
    unsigned char c = (unsigned char)in[i];
    out[i] = c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8) ? '?' : (char)c;
  }
  out[i] = '\0';
}

/* Writes a lockout row (|action| login.lock or login.unlock) whose target
 * is |email| (with |on_email|) or |source|; the other one, when known, is
 * in the detail (the email an attempt from a locked source was for, the
 * source an email's attempt came from). The row of an email goes to the
 * account of the user with that email, if there is one, so that account's
 * administrators see it too. Rows beyond the audit budget are counted and
 * logged instead. */
static void lock_audit(wr_login *l, const char *action, int on_email, const char *email, const char *source,
                       const wr_throttle_info *info, const char *reason) {
  uint64_t now = wr__login_now(l);
  const char *ttype = on_email ? "email" : "source", *target;
  char tid[WR_STORE_HOST_MAX + 1], safe_email[WR__LOGIN_AKEY_MAX + 1];
  if (!wr_ratelimit_take(&l->audit_rl, now)) return;
  uint64_t dropped = wr_ratelimit_take_dropped(&l->audit_rl);
  if (dropped)
    wr_warn("login: %llu lockout audit rows were not written (more than the audit budget of %u at once)",
            (unsigned long long)dropped, l->audit_rl.burst);
  if (email) audit_text(email, safe_email);
  target = on_email ? (email ? safe_email : NULL) : source;
  if (!target) target = "?";
  /* The target id column is shorter than the longest email: cut at a
   * character boundary (the detail keeps all of it). */
  size_t n = strlen(target);
  if (n > WR_STORE_HOST_MAX) {
    n = WR_STORE_HOST_MAX;
    while (n > 0 && ((unsigned char)target[n] & 0xc0) == 0x80) n--;
  }
  snprintf(tid, sizeof(tid), "%.*s", (int)n, target);
  json_t *d = json_object();
  if (email) json_object_set_new(d, "email", json_string(safe_email));
  if (source) json_object_set_new(d, "source", json_string(source));
  json_object_set_new(d, "failures", json_integer((json_int_t)info->failures));
  if (!strcmp(action, "login.lock")) {
    json_object_set_new(d, "retry_after_s", json_integer((json_int_t)((info->wait_ms + 999) / 1000)));
  } else {
    json_object_set_new(d, "reason", json_string(reason));
    if (info->locked_since && now >= info->locked_since)
      json_object_set_new(d, "locked_s", json_integer((json_int_t)((now - info->locked_since) / 1000)));
  }
  char *text = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  /* With a store thread the row (and the user's account) is written
   * there; nobody waits for it. */
  wr_store_async_audit(l->async, l->store, "login", AUDIT_ACTOR, NULL, on_email ? email : NULL, action, ttype,
                       tid[0] ? tid : "?", text);
  free(text);
}

/* A lockout ended by time (throttle sweep). */
void wr__login_on_unlocked(void *user, const char *key, const wr_throttle_info *info) {
  wr_login *l = user;
  char ebuf[96];
  int is_email = strncmp(key, "u:", 2) == 0;
  wr_info("login: the lockout of %s %s ended", is_email ? "sign-ins for" : "sign-ins from",
          wr__login_logsafe(is_email ? key + 2 : key, ebuf, sizeof(ebuf)));
  lock_audit(l, "login.unlock", is_email, is_email ? key + 2 : NULL, is_email ? NULL : key, info, "expired");
}

/* "2 minutes", "1 second": how long a refused user waits, rounded up. */
static void wait_text(uint64_t ms, char *out, size_t size) {
  uint64_t sec = (ms + 999) / 1000;
  if (sec == 0) sec = 1;
  if (sec < 60) {
    snprintf(out, size, "%llu second%s", (unsigned long long)sec, sec == 1 ? "" : "s");
  } else {
    uint64_t min = (sec + 59) / 60;
    snprintf(out, size, "%llu minute%s", (unsigned long long)min, min == 1 ? "" : "s");
  }
}

/* ---- pool jobs -------------------------------------------------------------------------- */

/* A linked job holds |l| (its owner) until job_unlink. */
static void job_link(wr_login *l, login_job *j) {
  j->next = l->jobs;
  if (l->jobs) l->jobs->prev = j;
  l->jobs = j;
  wr_owner_hold(&l->owner);
}

/* Last use of |l| by the job's code: frees |l| when it was the last thing
 * a closing |l| waited for. */
static void job_unlink(wr_login *l, login_job *j) {
  if (j->prev) j->prev->next = j->next;
  else l->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  wr_owner_drop(&l->owner);
}

static void job_free(login_job *j) {
  if (j->password) {
    explicit_bzero(j->password, j->pw_len);
    free(j->password);
  }
  free(j->data_dir);
  wr_pem_pair_free(&j->pair);
  explicit_bzero(j, sizeof(*j));
  free(j);
}

static void work_run(uv_work_t *w) {
  login_job *j = w->data;
  if (j->kind == JOB_SIGNIN) {
    if (j->have_hash) j->verify_rv = wr_password_verify(j->password, j->pw_len, j->hash);
    else j->verify_rv = wr_password_verify_dummy(j->password, j->pw_len);
  } else {
    j->issue_rv = wr_pki_issue_origin_cert(j->data_dir, j->zone.name, &j->pair, j->err, sizeof(j->err));
  }
}

static void signin_done(wr_login *l, login_job *j) {
  char ebuf[96], ip[64];
  login_reply r = {.status = 403};
  char key[WR_LOGIN_KEY_MAX + 1] = "";
  login_session *s = wr__login_session_find(l, j->sid);
  if (j->callback[0] && wr__login_callback_key(j->callback, key) != WR_OK) key[0] = '\0';
  if (!s) {
    wr__login_simple_page(l, j->req, 403, "Session expired", "Your sign-in session expired; please start again.", 1);
    return;
  }
  wr__login_logsafe(j->email, ebuf, sizeof(ebuf));
  wr__login_peer_ip(j->req, ip, sizeof(ip));
  if (j->verify_rv == WR_ERR_INVAL)
    wr_error("login: the stored password hash of %s cannot be read; reset it with `warren-edge user passwd`", ebuf);
  if (j->verify_rv != WR_OK || !j->user_found) {
    l->stats.signins_failed++;
    wr_info("login: failed sign-in for %s from %s", ebuf, ip);
    wr__login_signin_form(l, j->req, &r, s, j->callback, key, j->email, "Wrong email or password.");
    return;
  }
  if (j->user.is_service) {
    l->stats.signins_failed++;
    wr_info("login: service user %s tried to sign in from %s; refused", ebuf, ip);
    wr__login_signin_form(l, j->req, &r, s, j->callback, key, j->email,
                     "This is a service account for automation: it uses API tokens and cannot sign "
                     "in here.");
    return;
  }
  /* A new session id at sign-in: an id planted before it is worth nothing. */
  char newid[WR__LOGIN_SID_LEN + 1], newcsrf[WR__LOGIN_SID_LEN + 1];
  if (wr__login_random_id(newid) != WR_OK || wr__login_random_id(newcsrf) != WR_OK) {
    wr__login_simple_page(l, j->req, 500, "Internal error", "The edge has no randomness; try again.", 0);
    return;
  }
  memcpy(s->id, newid, sizeof(newid));
  memcpy(s->csrf, newcsrf, sizeof(newcsrf));
  s->signed_in = 1;
  l->stats.signins_ok++;
  s->user = j->user;
  s->expires = wr__login_now(l) + l->ttl_ms;
  wr_info("login: %s signed in from %s", wr__login_logsafe(s->user.email, ebuf, sizeof(ebuf)), ip);
  wr__login_set_cookie(l, &r, s->id);
  if (s->next_path[0] && !j->callback[0]) snprintf(r.location, sizeof(r.location), "%s", s->next_path);
  else wr__login_location(j->callback, r.location, sizeof(r.location));
  s->next_path[0] = '\0';
  char loc[sizeof(r.location)];
  memcpy(loc, r.location, sizeof(loc));
  wr__login_redirect(j->req, &r, loc);
}

/* A password check ended (or was cancelled): frees its turn and records
 * its outcome with the throttles, auditing lockouts that began or ended. */
static void check_done(wr_login *l, login_job *j, int status) {
  uint64_t now = wr__login_now(l);
  wr_throttle_info ai, si;
  wr_throttle_outcome ao = WR_THROTTLE_NEUTRAL, so = WR_THROTTLE_NEUTRAL;
  int counted = !l->closing && status == 0;
  char ebuf[96], tbuf[32];
  wr_fairq_done(l->checks, &j->qi);
  if (counted && j->verify_rv == WR_OK && j->user_found) {
    /* The right password (a service user's too: that is no guess), but
     * the source keeps its count: a guesser could sign in to an account of
     * their own between guesses. */
    ao = WR_THROTTLE_SUCCESS;
  } else if (counted) {
    ao = so = WR_THROTTLE_FAILURE;
  }
  wr_throttle_end(l->accounts, j->akey, now, ao, &ai);
  wr_throttle_end(l->sources, j->src, now, so, &si);
  if (!counted) return;
  const char *email = j->akey + 2;
  wr__login_logsafe(email, ebuf, sizeof(ebuf));
  if (ai.events & WR_THROTTLE_UNLOCKED) {
    wr_info("login: the lockout of sign-ins for %s ended (%s)", ebuf, ao == WR_THROTTLE_SUCCESS ? "signed in" : "expired");
    lock_audit(l, "login.unlock", 1, email, j->src, &ai, ao == WR_THROTTLE_SUCCESS ? "signed in" : "expired");
  }
  if (si.events & WR_THROTTLE_UNLOCKED) {
    wr_info("login: the lockout of sign-ins from %s ended", j->src);
    lock_audit(l, "login.unlock", 0, NULL, j->src, &si, "expired");
  }
  if (ai.events & WR_THROTTLE_LOCKED) {
    l->stats.locks++;
    wait_text(ai.wait_ms, tbuf, sizeof(tbuf));
    wr_warn("login: %u failed sign-ins for %s (the last from %s): its sign-ins wait %s, doubling with each "
            "further failure", ai.failures, ebuf, j->src, tbuf);
    lock_audit(l, "login.lock", 1, email, j->src, &ai, NULL);
  }
  if (si.events & WR_THROTTLE_LOCKED) {
    l->stats.locks++;
    wait_text(si.wait_ms, tbuf, sizeof(tbuf));
    wr_warn("login: %u failed sign-ins from %s (the last for %s): its sign-ins wait %s, doubling with each "
            "further failure", si.failures, j->src, ebuf, tbuf);
    lock_audit(l, "login.lock", 0, email, j->src, &si, NULL);
  }
}

static void job_submit(wr_login *l, login_job *j);

/* Starts the waiting checks whose turn has come. */
static void run_waiting(wr_login *l) {
  wr_fairq_item *it;
  while (!l->closing && (it = wr_fairq_next(l->checks)))
    job_submit(l, (login_job *)((char *)it - offsetof(login_job, qi)));
}

static void work_done(uv_work_t *w, int status) {
  login_job *j = w->data;
  wr_login *l = j->l;
  if (!l->closing) wr__login_session_job_done(l, j->sid);
  if (j->kind == JOB_SIGNIN) check_done(l, j, status);
  if (l->closing || status == UV_ECANCELED) {
    wr_httpd_respond_simple(j->req, 503, "text/plain", "the edge is shutting down\n", 26);
  } else if (j->kind == JOB_SIGNIN) {
    signin_done(l, j);
  } else {
    wr__login_issue_done(l, j);
  }
  run_waiting(l);
  job_unlink(l, j); /* may free |l| */
  job_free(j);
}

/* Hands a linked job to the worker pool. */
static void job_submit(wr_login *l, login_job *j) {
  j->waiting = 0;
  if (j->kind == JOB_SIGNIN) l->stats.checks++;
  if (uv_queue_work(l->loop, &j->work, work_run, work_done) != 0) {
    /* Cannot happen with a valid loop; answer rather than hang. */
    work_done(&j->work, UV_ECANCELED);
  }
}

void wr__login_job_start(wr_login *l, login_job *j) {
  j->l = l;
  j->work.data = j;
  job_link(l, j);
  job_submit(l, j);
}

void wr__login_jobs_cancel(wr_login *l) {
  /* Checks waiting for a turn never reached the pool: answered here. Jobs
   * not started yet come back with UV_ECANCELED; running ones finish and
   * answer 503 (work_done checks |closing|). */
  for (login_job *j = l->jobs, *next; j; j = next) {
    next = j->next;
    if (j->waiting) {
      wr_fairq_remove(l->checks, &j->qi);
      wr_httpd_respond_simple(j->req, 503, "text/plain", "the edge is shutting down\n", 26);
      job_unlink(l, j);
      job_free(j);
    } else {
      uv_cancel((uv_req_t *)&j->work);
    }
  }
}

/* ---- the sign-in page ---------------------------------------------------------------------- */

/* Answers a sign-in that the queue of checks turned away: 429 when its
 * source has its share of checks already (or lost its place to a source
 * with fewer failures), 503 when the queue is full of other sources'
 * single checks. */
static void answer_no_turn(wr_login *l, wr_httpd_req *req, const char *sid, const char *callback,
                           const char *email, int own_share) {
  char key[WR_LOGIN_KEY_MAX + 1] = "";
  login_reply r = {.status = own_share ? 429 : 503, .retry_after = 5};
  login_session *s = wr__login_session_find(l, sid);
  l->stats.refused++;
  if (callback[0] && wr__login_callback_key(callback, key) != WR_OK) key[0] = '\0';
  const char *msg = own_share ? "Too many sign-ins from your network; try again in a few seconds."
                              : "The edge is busy with other sign-ins; try again in a few seconds.";
  if (s) wr__login_signin_form(l, req, &r, s, callback, key, email, msg);
  else wr__login_send_message(l, req, &r, "Busy", "error", msg, 0);
}

/* A waiting check lost its place to a newcomer's (its source had more work
 * waiting, or more failures): its sign-in is refused with 429. */
static void drop_waiting(wr_login *l, login_job *j) {
  uint64_t now = wr__login_now(l);
  wr__login_session_job_done(l, j->sid);
  wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
  wr_throttle_end(l->sources, j->src, now, WR_THROTTLE_NEUTRAL, NULL);
  answer_no_turn(l, j->req, j->sid, j->callback, j->email, 1);
  job_unlink(l, j);
  job_free(j);
}

/* Reads email and password of the sign-in form into a new check. NULL
 * after answering with the form again when either is missing. */
static login_job *signin_job(wr_login *l, wr_httpd_req *req, login_session *s,
                             const char *callback, const char *key) {
  char email[WR_STORE_EMAIL_MAX + 2];
  const char *body = (const char *)req->body;
  login_reply r = {.status = 403};
  int n = wr__login_form_get(body, req->body_len, "email", 0, email, sizeof(email));
  if (n <= 0 || n > WR_STORE_EMAIL_MAX) {
    wr__login_signin_form(l, req, &r, s, callback, key, NULL, "Enter your email address and password.");
    return NULL;
  }
  /* Leading and trailing blanks are typing accidents. */
  char *e = email;
  while (*e == ' ') e++;
  for (size_t len = strlen(e); len && e[len - 1] == ' '; len--) e[len - 1] = '\0';
  login_job *j = wr_xcalloc(1, sizeof(*j));
  j->kind = JOB_SIGNIN;
  j->req = req;
  memcpy(j->sid, s->id, sizeof(j->sid));
  snprintf(j->callback, sizeof(j->callback), "%s", callback);
  memcpy(j->email, e, strnlen(e, WR_STORE_EMAIL_MAX)); /* n <= WR_STORE_EMAIL_MAX; zeroed */
  j->password = wr_xmalloc(WR_PASSWORD_MAX_LEN + 2);
  n = wr__login_form_get(body, req->body_len, "password", WR_PCT_BINARY, j->password,
                         WR_PASSWORD_MAX_LEN + 2);
  if (n <= 0) {
    job_free(j);
    wr__login_signin_form(l, req, &r, s, callback, key, e, "Enter your email address and password.");
    return NULL;
  }
  j->pw_len = (size_t)n;
  return j;
}

/* The throttles' gate: a guesser in a delay is answered now (429), before
 * the costly check, and the same way whether the email has a user or not;
 * otherwise the attempt is begun with both throttles. Returns 0, or -1
 * after answering (|j| is the caller's to free). */
static int signin_gate(wr_login *l, wr_httpd_req *req, login_session *s, login_job *j,
                       const char *callback, const char *key, uint64_t now) {
  uint64_t wait, w2;
  account_key(j->email, j->akey);
  wr_throttle_source_key(&req->peer, j->src);
  wait = wr_throttle_check(l->accounts, j->akey, now);
  w2 = wr_throttle_check(l->sources, j->src, now);
  if (w2 > wait) wait = w2;
  if (wait) {
    char t[32], msg[96], ebuf[96];
    login_reply r = {.status = 429, .retry_after = (wait + 999) / 1000};
    wait_text(wait, t, sizeof(t));
    snprintf(msg, sizeof(msg), "Too many failed sign-ins; try again in %s.", t);
    /* Debug only: a guesser can send these far faster than checks run, and
     * the lockout itself was logged (and audited) when it began. */
    wr_debug("login: sign-in for %s from %s refused without a check: too many failed sign-ins (%s to wait)",
             wr__login_logsafe(j->akey + 2, ebuf, sizeof(ebuf)), j->src, t);
    l->stats.throttled++;
    wr__login_signin_form(l, req, &r, s, callback, key, j->email, msg);
    return -1;
  }
  if (wr_throttle_begin(l->accounts, j->akey, now) != WR_OK) {
    wr__login_simple_page(l, req, 503, "Busy", "The edge is busy with other sign-ins; try again in a few seconds.", 0);
    return -1;
  }
  if (wr_throttle_begin(l->sources, j->src, now) != WR_OK) {
    wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
    wr__login_simple_page(l, req, 503, "Busy", "The edge is busy with other sign-ins; try again in a few seconds.", 0);
    return -1;
  }
  return 0;
}

/* The stored hash of the email's user, if any, read from |st| (the
 * store thread's, or the loop's without one). A store error's message
 * goes to j->err, for the loop to log. */
static void signin_find_user(wr_store *st, login_job *j) {
  if (wr_store_user_get_by_email(st, j->email, &j->user) == WR_OK) {
    j->user_found = 1;
    int rv = wr_store_user_password_hash(st, j->user.id, j->hash, sizeof(j->hash));
    j->have_hash = rv == WR_OK;
    if (rv != WR_OK && rv != WR_ERR_NOTFOUND) snprintf(j->err, sizeof(j->err), "%s", wr_store_errmsg(st));
  }
  /* Without a hash (unknown user, no password, service user) the worker
   * still spends the time of a check, then says no. */
  if (!j->have_hash) j->user_found = 0;
}

/* A turn for the check: now, after the checks of other sources, or none
 * when this source has its share. Sources with recent failures wait behind
 * (and, in a full queue, make room for) sources without. Takes |j|. */
static void signin_enqueue(wr_login *l, wr_httpd_req *req, login_session *s, login_job *j,
                           const char *callback, uint64_t now) {
  wr_fairq_item *dropped = NULL;
  unsigned score = wr_throttle_failures(l->sources, j->src, now);
  int rv = wr_fairq_push(l->checks, j->src, score, &j->qi, &dropped);
  if (dropped) drop_waiting(l, (login_job *)((char *)dropped - offsetof(login_job, qi)));
  if (rv == WR_ERR_LIMIT) {
    int own = wr_fairq_source_work(l->checks, j->src) > 0;
    char ebuf[96];
    wr_debug("login: sign-in for %s from %s refused: %s", wr__login_logsafe(j->akey + 2, ebuf, sizeof(ebuf)), j->src,
             own ? "its source has its share of password checks running and waiting"
                 : "the queue of password checks is full");
    wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
    wr_throttle_end(l->sources, j->src, now, WR_THROTTLE_NEUTRAL, NULL);
    answer_no_turn(l, req, s->id, callback, j->email, own);
    job_free(j);
    return;
  }
  j->l = l;
  j->work.data = j;
  job_link(l, j);
  s->busy = 1;
  if (rv == WR_OK) {
    job_submit(l, j);
  } else {
    j->waiting = 1;
    l->stats.waited++;
  }
}

/* After the user's read: logs a store error, then queues the check. */
static void signin_found(wr_login *l, login_session *s, login_job *j, uint64_t now) {
  if (j->err[0]) {
    wr_error("login: reading a password hash failed: %s", j->err);
    j->err[0] = '\0';
  }
  signin_enqueue(l, j->req, s, j, j->callback, now);
}

static void read_user_run(wr_store *st, void *arg) { signin_find_user(st, arg); }

/* The user's read came back (loop thread). The session was busy meanwhile,
 * so it is still there unless the login pages are closing. */
static void read_user_done(wr_login *l, void *arg, int status) {
  login_job *j = arg;
  uint64_t now = wr__login_now(l);
  /* Not busy any more: signin_enqueue makes it busy again while the check runs. */
  login_session *s = wr__login_store_session(l, j->req, j->sid, status, 1, 0);
  if (s) {
    signin_found(l, s, j, now);
    return;
  }
  wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
  wr_throttle_end(l->sources, j->src, now, WR_THROTTLE_NEUTRAL, NULL);
  job_free(j);
}

/* Reads the user (wr__login_store_call); the session is busy until it is
 * back. Answers 503 at once when the store thread takes no more work. */
static void signin_read_user(wr_login *l, login_session *s, login_job *j) {
  s->busy = 1;
  if (wr__login_store_call(l, read_user_run, read_user_done, j) == WR_OK) return;
  uint64_t now = wr__login_now(l);
  s->busy = 0;
  wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
  wr_throttle_end(l->sources, j->src, now, WR_THROTTLE_NEUTRAL, NULL);
  wr__login_simple_page(l, j->req, 503, "Busy", "The edge is busy with other sign-ins; try again in a few seconds.", 0);
  job_free(j);
}

/* POST /argotunnel/signin */
void wr__login_page_signin(wr_login *l, wr_httpd_req *req) {
  char callback[WR__LOGIN_CALLBACK_MAX + 1], key[WR_LOGIN_KEY_MAX + 1];
  login_session *s;
  login_job *j;
  if (req->body_len > WR__LOGIN_FORM_MAX) {
    wr__login_simple_page(l, req, 413, "Too large", "The form data is too large.", 0);
    return;
  }
  if (wr__login_read_callback(l, req, (const char *)req->body, req->body_len, callback, key) != 0) return;
  if (!(s = wr__login_post_session(l, req, callback))) return;
  if (s->signed_in) {
    login_reply r = {0};
    char loc[sizeof(r.location)];
    wr__login_location(callback, loc, sizeof(loc));
    wr__login_redirect(req, &r, loc);
    return;
  }
  if (!(j = signin_job(l, req, s, callback, key))) return;
  uint64_t now = wr__login_now(l);
  if (signin_gate(l, req, s, j, callback, key, now) != 0) {
    job_free(j);
    return;
  }
  signin_read_user(l, s, j);
}
