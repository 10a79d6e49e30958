/* The login pages and the transfer endpoint; see login.h for the flow. */
#include "edge/login.h"
#include "edge/login_int.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/fairq.h"
#include "edge/password.h"
#include "edge/pki.h"
#include "edge/throttle.h"
#include "lib/buf.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define COOKIE_NAME WR__LOGIN_COOKIE_NAME
#define SID_BYTES 32
#define SID_LEN WR__LOGIN_SID_LEN
#define CALLBACK_MAX 1024
#define FORM_MAX (16u * 1024) /* larger POST bodies get 413 */
/* Pages are bounded by construction (escaped fields of bounded length, at
 * most MAX_ZONES zones), far below this. */
#define PAGE_MAX (2u * 1024 * 1024)
#define MAX_ZONES 200
#define FP_LEN 8 /* characters of the key shown as the request's name */
#define CLOUDFLARED_KEY_LEN 44 /* 32 bytes, URL-safe base64 with padding */
#define SOURCE_FREE_FAILURES 10 /* default of source_throttle.free_failures */
#define AUDIT_ACTOR "edge"      /* lockouts are the edge's decision */
/* "u:" + an email: the account throttle's key. */
#define AKEY_MAX (WR_STORE_EMAIL_MAX + 3)

/* A browser's session: anonymous until a sign-in succeeds. */
typedef struct session {
  struct session *next;
  char id[SID_LEN + 1];   /* the cookie value */
  char csrf[SID_LEN + 1]; /* hidden field of every form */
  uint64_t created;
  uint64_t expires;
  int signed_in;
  int busy;               /* a password check or certificate job is running */
  char src[WR_THROTTLE_SOURCE_MAX]; /* the source that made it */
  wr_user user;
  char *pem;              /* the last cert.pem made here, for the download link */
  char zone_name[WR_STORE_HOST_MAX + 1];
  int for_cli;            /* that cert.pem was also queued for a polling CLI */
  char key_fp[FP_LEN + 1];
} session;

/* A cert.pem waiting for the CLI that asked for it with |key|. */
typedef struct delivery {
  struct delivery *next;
  char key[WR_LOGIN_KEY_MAX + 1];
  char *pem;        /* NULL once delivered: kept as a tombstone until expiry, so
                     * the same key cannot be authorized twice */
  uint64_t expires;
} delivery;

/* A held poll. */
typedef struct waiter {
  uv_timer_t timer;
  struct waiter *next, *prev;
  wr_login *l;
  wr_httpd_req *req; /* NULL once answered */
  char key[WR_LOGIN_KEY_MAX + 1];
} waiter;

typedef enum job_kind { JOB_SIGNIN, JOB_ISSUE } job_kind;

/* Work for the thread pool. The worker touches only the fields it was given
 * (no store, no session): the loop thread looks the session up again by id
 * when the job comes back. */
typedef struct job {
  uv_work_t work;
  wr_fairq_item qi;   /* JOB_SIGNIN: its place in the queue of checks */
  int waiting;        /* in the queue, not yet handed to the pool */
  struct job *next, *prev;
  wr_login *l;
  wr_httpd_req *req;
  job_kind kind;
  char sid[SID_LEN + 1];
  char callback[CALLBACK_MAX + 1];
  /* JOB_SIGNIN */
  char *password;
  size_t pw_len;
  char hash[WR_PASSWORD_ENCODED_MAX + 1];
  int have_hash;
  int user_found;
  wr_user user;
  char email[WR_STORE_EMAIL_MAX + 1];
  char akey[AKEY_MAX + 1];            /* throttle keys of the attempt */
  char src[WR_THROTTLE_SOURCE_MAX];
  int verify_rv;
  /* JOB_ISSUE */
  char *data_dir;
  wr_zone zone;
  wr_pem_pair pair;
  int issue_rv;
  char err[256];
} job;

struct wr_login {
  uv_loop_t *loop;
  wr_store *store;
  char *data_dir;
  char *public_url;
  int secure; /* public_url is https: Secure cookies */
  uint64_t poll_hold_ms, ttl_ms;
  size_t max_sessions, max_pending, max_waiters, max_sessions_per_source;
  uint64_t (*now_ms)(void *user);
  void *now_user;

  session *sessions;
  size_t nsessions;
  delivery *deliveries;
  size_t ndeliveries;
  waiter *waiters;
  size_t nwaiters;
  job *jobs;
  size_t njobs;

  wr_throttle *accounts; /* failures per email */
  wr_throttle *sources;  /* failures per source */
  wr_fairq *checks;      /* admission of password checks */
  wr_ratelimit audit_rl; /* lockout audit rows */
  wr_login_stats stats;

  uv_timer_t sweep_timer;
  size_t open_handles; /* sweep timer + waiter timers not yet closed */
  int closing;
};

/* --- small helpers ---------------------------------------------------------- */

static uint64_t now_ms(wr_login *l) { return l->now_ms ? l->now_ms(l->now_user) : uv_now(l->loop); }

static void wipe_free(char *p) {
  if (!p) return;
  explicit_bzero(p, strlen(p));
  free(p);
}

static int ct_equal(const char *a, const char *b, size_t n) {
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++) d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

/* 32 random bytes as unpadded base64url. */
static int random_id(char out[SID_LEN + 1]) {
  uint8_t b[SID_BYTES];
  char tmp[WR_BASE64_ENCODED_SIZE(SID_BYTES)];
  if (wr_random_bytes(b, sizeof(b)) != WR_OK) return WR_ERR_CRYPTO;
  if (wr_base64_encode(b, sizeof(b), tmp, sizeof(tmp), 0) != SID_LEN) return WR_ERR_INTERNAL;
  explicit_bzero(b, sizeof(b));
  for (size_t i = 0; i < SID_LEN; i++) out[i] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
  out[SID_LEN] = '\0';
  explicit_bzero(tmp, sizeof(tmp));
  return WR_OK;
}

static int key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '=';
}

int wr_login_key_valid(const char *key, size_t len) {
  if (!key || len < WR_LOGIN_KEY_MIN || len > WR_LOGIN_KEY_MAX) return 0;
  for (size_t i = 0; i < len; i++)
    if (!key_char(key[i])) return 0;
  return 1;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes |len| bytes into |out| (NUL-terminated); with |plus|, '+'
 * is a space (form encoding). Returns the decoded length, or -1 for a bad
 * escape or when it does not fit in |outsz| - 1 bytes. */
int wr__login_pct_decode(const char *in, size_t len, int plus, char *out, size_t outsz) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c == '%') {
      int hi, lo;
      if (i + 2 >= len) return -1;
      hi = hexval(in[i + 1]);
      lo = hexval(in[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi << 4 | lo);
      i += 2;
    } else if (plus && c == '+') {
      c = ' ';
    }
    if (o + 1 >= outsz) return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return (int)o;
}

/* Finds |name| in application/x-www-form-urlencoded |data| (also a query
 * string) and decodes the first value. Returns its length, -1 if absent, -2
 * if malformed or too long for |out|. */
int wr__login_form_get(const char *data, size_t len, const char *name, char *out, size_t outsz) {
  size_t nlen = strlen(name), i = 0;
  if (!data) data = "", len = 0;
  while (i <= len) {
    size_t end = i;
    while (end < len && data[end] != '&') end++;
    const char *eq = memchr(data + i, '=', end - i);
    size_t klen = eq ? (size_t)(eq - (data + i)) : end - i;
    if (klen == nlen && memcmp(data + i, name, nlen) == 0) {
      const char *v = eq ? eq + 1 : data + end;
      int n = wr__login_pct_decode(v, (size_t)(data + end - v), 1, out, outsz);
      return n < 0 ? -2 : n;
    }
    i = end + 1;
  }
  return -1;
}

/* Appends |s| percent-encoded for a query component. */
static void url_encode(wr_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      wr_buf_append(b, s, 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      wr_buf_append(b, e, 3);
    }
  }
}

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

/* A copy of |in| safe for one log line: bounded, control bytes as '?'. */
static const char *logsafe(const char *in, char *buf, size_t size) {
  size_t i = 0;
  for (; in[i] && i + 4 < size; i++)
    buf[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? '?' : in[i];
  if (in[i]) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

static const char *peer_ip(const wr_httpd_req *req, char *buf, size_t size) {
  const struct sockaddr_storage *ss = &req->peer;
  buf[0] = '\0';
  if (ss->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)size);
  else if (ss->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)size);
  return buf[0] ? buf : "?";
}

/* The key at the end of a callback URL: after the last '/', without any
 * query or fragment, percent-decoded (cloudflared's '=' arrives as-is, a
 * browser may send %3D). Returns WR_OK or WR_ERR_INVAL. */
int wr__login_callback_key(const char *cb, char key[WR_LOGIN_KEY_MAX + 1]) {
  size_t len = strcspn(cb, "?#");
  const char *slash = NULL;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)cb[i];
    if (c <= 0x20 || c >= 0x7f) return WR_ERR_INVAL;
    if (c == '/') slash = cb + i;
  }
  if (!slash) return WR_ERR_INVAL;
  int n = wr__login_pct_decode(slash + 1, (size_t)(cb + len - slash - 1), 0, key, WR_LOGIN_KEY_MAX + 1);
  if (n < 0 || !wr_login_key_valid(key, (size_t)n)) return WR_ERR_INVAL;
  return WR_OK;
}

static void key_fingerprint(const char *key, char fp[FP_LEN + 1]) {
  size_t n = strnlen(key, FP_LEN);
  memcpy(fp, key, n);
  fp[n] = '\0';
}

/* "login:<email>", cut at a character boundary to fit the audit actor. */
static void login_actor(const char *email, char out[128]) {
  size_t n = strlen(email), max = 127 - 6;
  if (n > max) {
    n = max;
    while (n > 0 && ((unsigned char)email[n] & 0xc0) == 0x80) n--;
  }
  snprintf(out, 128, "login:%.*s", (int)n, email);
}

/* --- throttling ------------------------------------------------------------------ */

/* The account throttle's key of |email|: "u:" and the email with ASCII
 * letters in lower case, as the store compares emails (COLLATE NOCASE), so
 * "Alice@" and "alice@" share one count. */
static void account_key(const char *email, char out[AKEY_MAX + 1]) {
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
static void audit_text(const char *in, char out[AKEY_MAX + 1]) {
  json_t *probe = json_string(in);
  int utf8 = probe != NULL;
  size_t i = 0;
  json_decref(probe);
  for (; in[i] && i < AKEY_MAX; i++) {
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
  uint64_t now = now_ms(l);
  wr_user u;
  const char *account = NULL, *ttype = on_email ? "email" : "source", *target;
  char tid[WR_STORE_HOST_MAX + 1], safe_email[AKEY_MAX + 1];
  if (!wr_ratelimit_take(&l->audit_rl, now)) return;
  uint64_t dropped = wr_ratelimit_take_dropped(&l->audit_rl);
  if (dropped)
    wr_warn("login: %llu lockout audit rows were not written (more than the audit budget of %u at once)",
            (unsigned long long)dropped, l->audit_rl.burst);
  if (email) audit_text(email, safe_email);
  target = on_email ? (email ? safe_email : NULL) : source;
  if (!target) target = "?";
  if (on_email && wr_store_user_get_by_email(l->store, email, &u) == WR_OK) account = u.account_id;
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
  if (wr_store_audit_append(l->store, AUDIT_ACTOR, account, action, ttype, tid[0] ? tid : "?", text) != WR_OK)
    wr_warn("login: writing the %s audit row failed: %s", action, wr_store_errmsg(l->store));
  free(text);
}

/* A lockout ended by time (throttle sweep). */
static void on_unlocked(void *user, const char *key, const wr_throttle_info *info) {
  wr_login *l = user;
  char ebuf[96];
  int is_email = strncmp(key, "u:", 2) == 0;
  wr_info("login: the lockout of %s %s ended", is_email ? "sign-ins for" : "sign-ins from",
          logsafe(is_email ? key + 2 : key, ebuf, sizeof(ebuf)));
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

/* --- sessions, deliveries, waiters ---------------------------------------------- */

static void session_destroy(wr_login *l, session *s) {
  for (session **pp = &l->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      l->nsessions--;
      break;
    }
  wipe_free(s->pem);
  explicit_bzero(s, sizeof(*s));
  free(s);
}

/* The session with |id|, or NULL; expired ones only if |expired_too|. */
static session *session_lookup(wr_login *l, const char *id, int expired_too) {
  session *found = NULL;
  uint64_t now = now_ms(l);
  if (strlen(id) != SID_LEN) return NULL;
  /* Compare against every session, in constant time each. */
  for (session *s = l->sessions; s; s = s->next)
    if (ct_equal(s->id, id, SID_LEN) && (expired_too || s->expires > now)) found = s;
  return found;
}

static session *session_find_id(wr_login *l, const char *id) { return session_lookup(l, id, 0); }

/* A job of |sid| came back: the session may run another (and, if it
 * expired meanwhile, may be swept now). */
static void session_job_done(wr_login *l, const char *sid) {
  session *s = session_lookup(l, sid, 1);
  if (s) s->busy = 0;
}

int wr__login_cookie_next(const char **pp, const char *end, char id[WR__LOGIN_SID_LEN + 1]) {
  static const char name[] = COOKIE_NAME "=";
  const char *p = *pp;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ';')) p++;
    const char *e = p;
    while (e < end && *e != ';') e++;
    if ((size_t)(e - p) == sizeof(name) - 1 + SID_LEN && memcmp(p, name, sizeof(name) - 1) == 0) {
      memcpy(id, p + sizeof(name) - 1, SID_LEN);
      id[SID_LEN] = '\0';
      *pp = e;
      return 1;
    }
    p = e;
  }
  *pp = p;
  return 0;
}

static session *session_from_cookie(wr_login *l, const wr_httpd_req *req) {
  for (size_t i = 0; i < req->nheaders; i++) {
    const wr_http_header *h = &req->headers[i];
    if (h->name_len != 6 || strncasecmp(h->name, "cookie", 6) != 0) continue;
    const char *p = h->value, *end = h->value + h->value_len;
    char id[SID_LEN + 1];
    while (wr__login_cookie_next(&p, end, id)) {
      session *s = session_find_id(l, id);
      if (s) return s;
    }
  }
  return NULL;
}

static void delivery_free(wr_login *l, delivery *d) {
  for (delivery **pp = &l->deliveries; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      l->ndeliveries--;
      break;
    }
  wipe_free(d->pem);
  free(d);
}

static delivery *delivery_find(wr_login *l, const char *key) {
  for (delivery *d = l->deliveries; d; d = d->next)
    if (strcmp(d->key, key) == 0) return d;
  return NULL;
}

/* Drops expired sessions and deliveries (wiping what they hold). */
static void sweep(wr_login *l) {
  uint64_t now = now_ms(l);
  for (session *s = l->sessions, *next; s; s = next) {
    next = s->next;
    if (s->expires <= now && !s->busy) session_destroy(l, s);
  }
  for (delivery *d = l->deliveries, *next; d; d = next) {
    next = d->next;
    if (d->expires <= now) {
      if (d->pem) wr_info("login: cert.pem for request %.8s expired without being collected", d->key);
      delivery_free(l, d);
    }
  }
}

static void on_sweep(uv_timer_t *t) {
  wr_login *l = t->data;
  uint64_t now = now_ms(l);
  sweep(l);
  /* Whole-table walks: here, every few seconds, not per request. */
  wr_throttle_sweep(l->accounts, now, on_unlocked, l);
  wr_throttle_sweep(l->sources, now, on_unlocked, l);
}

static void maybe_free(wr_login *l) {
  if (!l->closing || l->open_handles || l->njobs) return;
  wr_throttle_free(l->accounts);
  wr_throttle_free(l->sources);
  wr_fairq_free(l->checks);
  free(l->data_dir);
  free(l->public_url);
  free(l);
}

static void on_handle_closed(uv_handle_t *h) {
  wr_login *l = h->data;
  if ((void *)h != (void *)&l->sweep_timer) {
    /* A waiter's timer is the first member of the waiter. */
    free(h);
  }
  l->open_handles--;
  maybe_free(l);
}

static void waiter_unlink(wr_login *l, waiter *w) {
  if (w->prev) w->prev->next = w->next;
  else l->waiters = w->next;
  if (w->next) w->next->prev = w->prev;
  l->nwaiters--;
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, on_handle_closed);
}

static waiter *waiter_find(wr_login *l, const char *key) {
  for (waiter *w = l->waiters; w; w = w->next)
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
static int deliver(wr_login *l, delivery *d, wr_httpd_req *req) {
  static const wr_http_header hs[] = {
      {"Content-Type", 12, "application/x-pem-file", 22},
      {"Cache-Control", 13, "no-store", 8},
  };
  int rv = wr_httpd_respond(req, 200, hs, 2, d->pem, strlen(d->pem));
  if (rv == WR_OK) {
    wipe_free(d->pem);
    d->pem = NULL;
    wr_info("login: cert.pem for request %.8s handed to the polling client", d->key);
  }
  (void)l;
  return rv;
}

static void on_waiter_timeout(uv_timer_t *t) {
  waiter *w = (waiter *)t;
  wr_login *l = w->l;
  if (w->req) answer_waiting(w->req, "waiting for login\n");
  w->req = NULL;
  waiter_unlink(l, w);
}

/* Queues |pem| (taken) for |key| and hands it to a poll already waiting. */
static void delivery_add(wr_login *l, const char *key, char *pem) {
  delivery *d = wr_xcalloc(1, sizeof(*d));
  snprintf(d->key, sizeof(d->key), "%s", key);
  d->pem = pem;
  d->expires = now_ms(l) + l->ttl_ms;
  d->next = l->deliveries;
  l->deliveries = d;
  l->ndeliveries++;
  waiter *w = waiter_find(l, key);
  if (w && w->req) {
    deliver(l, d, w->req);
    w->req = NULL;
    waiter_unlink(l, w);
  }
}

/* Room for one more delivery: drop the oldest tombstone if full. 0 or -1. */
static int delivery_room(wr_login *l) {
  delivery *oldest = NULL;
  if (l->ndeliveries < l->max_pending) return 0;
  for (delivery *d = l->deliveries; d; d = d->next)
    if (!d->pem && (!oldest || d->expires < oldest->expires)) oldest = d;
  if (!oldest) return -1;
  delivery_free(l, oldest);
  return 0;
}

/* --- responses --------------------------------------------------------------------- */

typedef struct reply {
  int status;
  uint64_t retry_after; /* seconds for Retry-After, 0 for none */
  char cookie[256];   /* Set-Cookie value, "" for none */
  char location[CALLBACK_MAX * 3 + 64];
} reply;

static void set_cookie(wr_login *l, reply *r, const char *sid) {
  if (sid)
    snprintf(r->cookie, sizeof(r->cookie), COOKIE_NAME "=%s; Path=" WR_LOGIN_PATH
             "; Max-Age=%llu; HttpOnly; SameSite=Lax%s",
             sid, (unsigned long long)(l->ttl_ms / 1000), l->secure ? "; Secure" : "");
  else
    snprintf(r->cookie, sizeof(r->cookie), COOKIE_NAME "=; Path=" WR_LOGIN_PATH
             "; Max-Age=0; HttpOnly; SameSite=Lax%s", l->secure ? "; Secure" : "");
}

static void send_reply(wr_httpd_req *req, const reply *r, const char *ctype, wr_buf *body) {
  static const char csp[] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                            "frame-ancestors 'none'; base-uri 'none'";
  wr_http_header hs[10];
  char retry[24];
  size_t n = 0;
#define HDR(nm, v) (hs[n++] = (wr_http_header){(nm), strlen(nm), (v), strlen(v)})
  HDR("Content-Type", ctype);
  HDR("Cache-Control", "no-store");
  HDR("Content-Security-Policy", csp);
  HDR("X-Frame-Options", "DENY");
  HDR("X-Content-Type-Options", "nosniff");
  HDR("Referrer-Policy", "no-referrer");
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
static void send_message(wr_login *l, wr_httpd_req *req, reply *r, const char *title, const char *cls,
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

static void simple_page(wr_login *l, wr_httpd_req *req, int status, const char *title,
                        const char *msg, int restart_link) {
  reply r = {.status = status};
  send_message(l, req, &r, title, status < 400 ? "ok" : "error", msg, restart_link);
}

static void redirect(wr_httpd_req *req, reply *r, const char *location) {
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
static void login_location(const char *callback, char *out, size_t size) {
  wr_buf b;
  wr_buf_init(&b, size - 1, NULL);
  wr_buf_append_str(&b, WR_LOGIN_PATH);
  if (callback[0]) {
    wr_buf_append_str(&b, "?aud=&callback=");
    url_encode(&b, callback);
  }
  snprintf(out, size, "%s", b.len < b.max ? wr_buf_cstr(&b) : WR_LOGIN_PATH);
  wr_buf_free(&b);
}

static void request_intro(wr_buf *b, const char *key) {
  char fp[FP_LEN + 1];
  if (!key[0]) {
    wr_buf_append_str(b, "<p>Sign in to get a <code>cert.pem</code> for <code>cloudflared</code> "
                         "or <code>warren</code>: it lets them create, route and delete tunnels "
                         "in your account.</p>\n");
    return;
  }
  key_fingerprint(key, fp);
  wr_buf_append_str(b, "<p>A <code>tunnel login</code> asked for a certificate (request <code id=\"request\">");
  h_esc(b, fp);
  wr_buf_append_str(b, "</code>). Continue only if you started it yourself: whoever started it "
                       "receives a certificate for your account.</p>\n");
}

static void send_signin_form(wr_login *l, wr_httpd_req *req, reply *r, session *s,
                             const char *callback, const char *key, const char *email,
                             const char *error) {
  wr_buf b;
  wr_buf_init(&b, PAGE_MAX, NULL);
  page_begin(&b, "Sign in to the Warren edge");
  request_intro(&b, key);
  if (error) {
    wr_buf_append_str(&b, "<p id=\"error\" class=\"error\">");
    h_esc(&b, error);
    wr_buf_append_str(&b, "</p>\n");
  }
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

static void signout_form(wr_buf *b, session *s) {
  wr_buf_append_str(b, "<form id=\"signout\" method=\"post\" action=\"" WR_LOGIN_PATH "/signout\">");
  hidden(b, "csrf", s->csrf);
  wr_buf_append_str(b, "<p class=\"note\">Signed in as <span id=\"user\">");
  h_esc(b, s->user.email);
  wr_buf_append_str(b, "</span>. <button type=\"submit\">Sign out</button></p></form>\n");
}

static void send_zone_picker(wr_login *l, wr_httpd_req *req, reply *r, session *s,
                             const char *callback, const char *key, const char *error) {
  wr_zone *zones = NULL;
  size_t n = 0;
  wr_buf b;
  if (wr_store_zone_list(l->store, s->user.account_id, &zones, &n) != WR_OK) {
    wr_error("login: listing zones failed: %s", wr_store_errmsg(l->store));
    r->status = 500;
    send_message(l, req, r, "Internal error", "error", "The edge could not read its store; try again.", 0);
    return;
  }
  wr_buf_init(&b, PAGE_MAX, NULL);
  page_begin(&b, "Choose a zone");
  request_intro(&b, key);
  if (error) {
    wr_buf_append_str(&b, "<p id=\"error\" class=\"error\">");
    h_esc(&b, error);
    wr_buf_append_str(&b, "</p>\n");
  }
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
  free(zones);
}

/* --- the pages ---------------------------------------------------------------------- */

/* Reads the callback parameter from query or form |data|. Returns 0 with
 * |callback| and |key| ("" for none), or -1 after answering 400. */
static int read_callback(wr_login *l, wr_httpd_req *req, const char *data, size_t len,
                         char callback[CALLBACK_MAX + 1], char key[WR_LOGIN_KEY_MAX + 1]) {
  int n = wr__login_form_get(data, len, "callback", callback, CALLBACK_MAX + 1);
  key[0] = '\0';
  if (n == -1 || n == 0) {
    callback[0] = '\0';
    return 0;
  }
  if (n < 0 || wr__login_callback_key(callback, key) != WR_OK) {
    callback[0] = '\0';
    simple_page(l, req, 400, "Bad login link",
                "This login link is malformed. Run the login command again and open the link it "
                "prints.",
                0);
    return -1;
  }
  return 0;
}

static session *session_new(wr_login *l, const wr_httpd_req *req) {
  session *s, *victim = NULL;
  char src[WR_THROTTLE_SOURCE_MAX];
  size_t mine = 0;
  sweep(l);
  wr_throttle_source_key(&req->peer, src);
  /* A source at its share of anonymous sessions replaces its own oldest:
   * however fast it asks for new forms, it cannot push out the forms that
   * users elsewhere are filling in. */
  for (session *it = l->sessions; it; it = it->next)
    if (!it->signed_in && strcmp(it->src, src) == 0) {
      mine++;
      if (!it->busy && (!victim || it->created < victim->created)) victim = it;
    }
  if (mine >= l->max_sessions_per_source && victim) session_destroy(l, victim);
  victim = NULL;
  if (l->nsessions >= l->max_sessions) {
    /* Evict the oldest anonymous session; signed-in ones are kept. */
    for (session *it = l->sessions; it; it = it->next)
      if (!it->signed_in && !it->busy && (!victim || it->created < victim->created)) victim = it;
    if (!victim) return NULL;
    session_destroy(l, victim);
  }
  s = wr_xcalloc(1, sizeof(*s));
  if (random_id(s->id) != WR_OK || random_id(s->csrf) != WR_OK) {
    free(s);
    return NULL;
  }
  memcpy(s->src, src, sizeof(src));
  s->created = now_ms(l);
  s->expires = s->created + l->ttl_ms;
  s->next = l->sessions;
  l->sessions = s;
  l->nsessions++;
  return s;
}

/* GET /argotunnel */
static void page_main(wr_login *l, wr_httpd_req *req) {
  char callback[CALLBACK_MAX + 1], key[WR_LOGIN_KEY_MAX + 1], aud[256];
  reply r = {.status = 200};
  int n;
  if (read_callback(l, req, req->query, strlen(req->query), callback, key) != 0) return;
  n = wr__login_form_get(req->query, strlen(req->query), "aud", aud, sizeof(aud));
  if (n > 0 || n == -2) {
    simple_page(l, req, 400, "Not supported",
                "This edge serves tunnel login only; Access application logins (aud=...) are not "
                "supported here.",
                0);
    return;
  }
  session *s = session_from_cookie(l, req);
  if (!s) {
    if (!(s = session_new(l, req))) {
      simple_page(l, req, 503, "Busy", "Too many sign-ins are in progress; try again in a minute.", 0);
      return;
    }
    set_cookie(l, &r, s->id);
  }
  if (s->signed_in) send_zone_picker(l, req, &r, s, callback, key, NULL);
  else send_signin_form(l, req, &r, s, callback, key, NULL, NULL);
}

/* Common checks of every POST: size, session, CSRF. Returns the session or
 * NULL after answering. */
static session *post_session(wr_login *l, wr_httpd_req *req, const char *callback) {
  char csrf[SID_LEN + 2];
  session *s;
  if (req->body_len > FORM_MAX) {
    simple_page(l, req, 413, "Too large", "The form data is too large.", 0);
    return NULL;
  }
  if (!(s = session_from_cookie(l, req))) {
    reply r = {.status = 403};
    /* No cookie, or it expired: a fresh session with a fresh form. */
    if (!(s = session_new(l, req))) {
      simple_page(l, req, 503, "Busy", "Too many sign-ins are in progress; try again in a minute.", 0);
      return NULL;
    }
    set_cookie(l, &r, s->id);
    char key[WR_LOGIN_KEY_MAX + 1] = "";
    if (callback[0] && wr__login_callback_key(callback, key) != WR_OK) key[0] = '\0';
    send_signin_form(l, req, &r, s, key[0] ? callback : "", key, NULL,
                     "Your sign-in session expired (or cookies are blocked). Please sign in again.");
    return NULL;
  }
  int n = wr__login_form_get((const char *)req->body, req->body_len, "csrf", csrf, sizeof(csrf));
  if (n != SID_LEN || !ct_equal(csrf, s->csrf, SID_LEN)) {
    char ip[64];
    wr_warn("login: a form without the right CSRF token from %s was refused", peer_ip(req, ip, sizeof(ip)));
    simple_page(l, req, 403, "Refused",
                "This form is out of date or did not come from this page. Reload the page and try "
                "again.",
                1);
    return NULL;
  }
  if (s->busy) {
    simple_page(l, req, 409, "Busy", "A request of this session is still running; wait a moment and reload.", 0);
    return NULL;
  }
  return s;
}

static void job_link(wr_login *l, job *j) {
  j->next = l->jobs;
  if (l->jobs) l->jobs->prev = j;
  l->jobs = j;
  l->njobs++;
}

static void job_unlink(wr_login *l, job *j) {
  if (j->prev) j->prev->next = j->next;
  else l->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  l->njobs--;
}

static void job_free(job *j) {
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
  job *j = w->data;
  if (j->kind == JOB_SIGNIN) {
    if (j->have_hash) j->verify_rv = wr_password_verify(j->password, j->pw_len, j->hash);
    else j->verify_rv = wr_password_verify_dummy(j->password, j->pw_len);
  } else {
    j->issue_rv = wr_pki_issue_origin_cert(j->data_dir, j->zone.name, &j->pair, j->err, sizeof(j->err));
  }
}

static void signin_done(wr_login *l, job *j) {
  char ebuf[96], ip[64];
  reply r = {.status = 403};
  char key[WR_LOGIN_KEY_MAX + 1] = "";
  session *s = session_find_id(l, j->sid);
  if (j->callback[0] && wr__login_callback_key(j->callback, key) != WR_OK) key[0] = '\0';
  if (!s) {
    simple_page(l, j->req, 403, "Session expired", "Your sign-in session expired; please start again.", 1);
    return;
  }
  logsafe(j->email, ebuf, sizeof(ebuf));
  peer_ip(j->req, ip, sizeof(ip));
  if (j->verify_rv == WR_ERR_INVAL)
    wr_error("login: the stored password hash of %s cannot be read; reset it with `warren-edge user passwd`", ebuf);
  if (j->verify_rv != WR_OK || !j->user_found) {
    l->stats.signins_failed++;
    wr_info("login: failed sign-in for %s from %s", ebuf, ip);
    send_signin_form(l, j->req, &r, s, j->callback, key, j->email, "Wrong email or password.");
    return;
  }
  if (j->user.is_service) {
    l->stats.signins_failed++;
    wr_info("login: service user %s tried to sign in from %s; refused", ebuf, ip);
    send_signin_form(l, j->req, &r, s, j->callback, key, j->email,
                     "This is a service account for automation: it uses API tokens and cannot sign "
                     "in here.");
    return;
  }
  /* A new session id at sign-in: an id planted before it is worth nothing. */
  char newid[SID_LEN + 1], newcsrf[SID_LEN + 1];
  if (random_id(newid) != WR_OK || random_id(newcsrf) != WR_OK) {
    simple_page(l, j->req, 500, "Internal error", "The edge has no randomness; try again.", 0);
    return;
  }
  memcpy(s->id, newid, sizeof(newid));
  memcpy(s->csrf, newcsrf, sizeof(newcsrf));
  s->signed_in = 1;
  l->stats.signins_ok++;
  s->user = j->user;
  s->expires = now_ms(l) + l->ttl_ms;
  wr_info("login: %s signed in from %s", logsafe(s->user.email, ebuf, sizeof(ebuf)), ip);
  set_cookie(l, &r, s->id);
  login_location(j->callback, r.location, sizeof(r.location));
  char loc[sizeof(r.location)];
  memcpy(loc, r.location, sizeof(loc));
  redirect(j->req, &r, loc);
}

static void issue_done(wr_login *l, job *j) {
  char key[WR_LOGIN_KEY_MAX + 1] = "", token[WR_STORE_TOKEN_LEN + 1], actor[128], ebuf[96];
  wr_api_token k;
  wr_origin_cert oc;
  char *pem = NULL;
  session *s = session_find_id(l, j->sid);
  reply r = {.status = 303};
  if (j->callback[0] && wr__login_callback_key(j->callback, key) != WR_OK) key[0] = '\0';
  if (!s || !s->signed_in) {
    simple_page(l, j->req, 403, "Session expired", "Your sign-in session expired; please start again.", 1);
    return;
  }
  if (j->issue_rv != WR_OK) {
    wr_error("login: issuing an origin certificate for %s failed: %s", j->zone.name, j->err);
    simple_page(l, j->req, 500, "Internal error", "The edge could not issue the certificate; try again.", 0);
    return;
  }
  if (key[0] && (delivery_find(l, key) || delivery_room(l) != 0)) {
    simple_page(l, j->req, 409, "Already done",
                "This login request was completed already (or the edge is too busy). Run the login "
                "command again.",
                0);
    return;
  }
  login_actor(s->user.email, actor);
  if (wr_store_token_create(l->store, actor, s->user.id, j->zone.id, token, &k) != WR_OK) {
    wr_error("login: creating an API token for %s failed: %s", logsafe(s->user.email, ebuf, sizeof(ebuf)),
             wr_store_errmsg(l->store));
    simple_page(l, j->req, 500, "Internal error", "The edge could not create an API token; try again.", 0);
    return;
  }
  memset(&oc, 0, sizeof(oc));
  snprintf(oc.zone_id, sizeof(oc.zone_id), "%s", j->zone.id);
  snprintf(oc.account_id, sizeof(oc.account_id), "%s", j->zone.account_id);
  snprintf(oc.api_token, sizeof(oc.api_token), "%s", token);
  pem = wr_origin_cert_encode(&oc, j->pair.cert, j->pair.key);
  explicit_bzero(token, sizeof(token));
  explicit_bzero(&oc, sizeof(oc));
  if (!pem) {
    /* Nobody will ever hold this token. */
    wr_store_token_revoke(l->store, actor, k.id);
    simple_page(l, j->req, 500, "Internal error", "The edge could not encode cert.pem; try again.", 0);
    return;
  }
  wipe_free(s->pem);
  s->pem = pem;
  snprintf(s->zone_name, sizeof(s->zone_name), "%s", j->zone.name);
  s->for_cli = key[0] != '\0';
  key_fingerprint(key, s->key_fp);
  if (key[0]) delivery_add(l, key, wr_xstrdup(pem));

  json_t *detail = json_pack("{s:s,s:s,s:s,s:s}", "email", s->user.email, "zone", j->zone.name,
                             "token_id", k.id, "via", key[0] ? "cli" : "download");
  char *dtext = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
  json_decref(detail);
  if (wr_store_audit_append(l->store, actor, s->user.account_id, "user.login", "user", s->user.id, dtext) != WR_OK)
    wr_warn("login: writing the audit row failed: %s", wr_store_errmsg(l->store));
  free(dtext);
  wr_info("login: %s got cert.pem for zone %s (API token %s)%s", logsafe(s->user.email, ebuf, sizeof(ebuf)),
          j->zone.name, k.id, key[0] ? ", queued for the polling client" : "");
  redirect(j->req, &r, WR_LOGIN_PATH "/done");
}

/* A password check ended (or was cancelled): frees its turn and records
 * its outcome with the throttles, auditing lockouts that began or ended. */
static void check_done(wr_login *l, job *j, int status) {
  uint64_t now = now_ms(l);
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
  logsafe(email, ebuf, sizeof(ebuf));
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

static void job_submit(wr_login *l, job *j);

/* Starts the waiting checks whose turn has come. */
static void run_waiting(wr_login *l) {
  wr_fairq_item *it;
  while (!l->closing && (it = wr_fairq_next(l->checks)))
    job_submit(l, (job *)((char *)it - offsetof(job, qi)));
}

static void work_done(uv_work_t *w, int status) {
  job *j = w->data;
  wr_login *l = j->l;
  job_unlink(l, j);
  if (!l->closing) session_job_done(l, j->sid);
  if (j->kind == JOB_SIGNIN) check_done(l, j, status);
  if (l->closing || status == UV_ECANCELED) {
    wr_httpd_respond_simple(j->req, 503, "text/plain", "the edge is shutting down\n", 26);
  } else if (j->kind == JOB_SIGNIN) {
    signin_done(l, j);
  } else {
    issue_done(l, j);
  }
  job_free(j);
  run_waiting(l);
  maybe_free(l);
}

/* Hands a linked job to the worker pool. */
static void job_submit(wr_login *l, job *j) {
  j->waiting = 0;
  if (j->kind == JOB_SIGNIN) l->stats.checks++;
  if (uv_queue_work(l->loop, &j->work, work_run, work_done) != 0) {
    /* Cannot happen with a valid loop; answer rather than hang. */
    work_done(&j->work, UV_ECANCELED);
  }
}

static void job_start(wr_login *l, job *j) {
  j->l = l;
  j->work.data = j;
  job_link(l, j);
  job_submit(l, j);
}

/* Answers a sign-in that the queue of checks turned away: 429 when its
 * source has its share of checks already (or lost its place to a source
 * with fewer failures), 503 when the queue is full of other sources'
 * single checks. */
static void answer_no_turn(wr_login *l, wr_httpd_req *req, const char *sid, const char *callback,
                           const char *email, int own_share) {
  char key[WR_LOGIN_KEY_MAX + 1] = "";
  reply r = {.status = own_share ? 429 : 503, .retry_after = 5};
  session *s = session_find_id(l, sid);
  l->stats.refused++;
  if (callback[0] && wr__login_callback_key(callback, key) != WR_OK) key[0] = '\0';
  const char *msg = own_share ? "Too many sign-ins from your network; try again in a few seconds."
                              : "The edge is busy with other sign-ins; try again in a few seconds.";
  if (s) send_signin_form(l, req, &r, s, callback, key, email, msg);
  else send_message(l, req, &r, "Busy", "error", msg, 0);
}

/* A waiting check lost its place to a newcomer's (its source had more work
 * waiting, or more failures): its sign-in is refused with 429. */
static void drop_waiting(wr_login *l, job *j) {
  uint64_t now = now_ms(l);
  job_unlink(l, j);
  session_job_done(l, j->sid);
  wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
  wr_throttle_end(l->sources, j->src, now, WR_THROTTLE_NEUTRAL, NULL);
  answer_no_turn(l, j->req, j->sid, j->callback, j->email, 1);
  job_free(j);
}

/* POST /argotunnel/signin */
static void page_signin(wr_login *l, wr_httpd_req *req) {
  char callback[CALLBACK_MAX + 1], key[WR_LOGIN_KEY_MAX + 1], email[WR_STORE_EMAIL_MAX + 2];
  const char *body = (const char *)req->body;
  session *s;
  job *j;
  int n;
  if (req->body_len > FORM_MAX) {
    simple_page(l, req, 413, "Too large", "The form data is too large.", 0);
    return;
  }
  if (read_callback(l, req, body, req->body_len, callback, key) != 0) return;
  if (!(s = post_session(l, req, callback))) return;
  if (s->signed_in) {
    reply r = {0};
    char loc[sizeof(r.location)];
    login_location(callback, loc, sizeof(loc));
    redirect(req, &r, loc);
    return;
  }
  n = wr__login_form_get(body, req->body_len, "email", email, sizeof(email));
  reply r = {.status = 403};
  if (n <= 0 || n > WR_STORE_EMAIL_MAX) {
    send_signin_form(l, req, &r, s, callback, key, NULL, "Enter your email address and password.");
    return;
  }
  /* Leading and trailing blanks are typing accidents. */
  char *e = email;
  while (*e == ' ') e++;
  for (size_t len = strlen(e); len && e[len - 1] == ' '; len--) e[len - 1] = '\0';
  j = wr_xcalloc(1, sizeof(*j));
  j->kind = JOB_SIGNIN;
  j->req = req;
  memcpy(j->sid, s->id, sizeof(j->sid));
  snprintf(j->callback, sizeof(j->callback), "%s", callback);
  memcpy(j->email, e, strnlen(e, WR_STORE_EMAIL_MAX)); /* n <= WR_STORE_EMAIL_MAX; zeroed */
  j->password = wr_xmalloc(WR_PASSWORD_MAX_LEN + 2);
  n = wr__login_form_get(body, req->body_len, "password", j->password, WR_PASSWORD_MAX_LEN + 2);
  if (n <= 0) {
    job_free(j);
    send_signin_form(l, req, &r, s, callback, key, e, "Enter your email address and password.");
    return;
  }
  j->pw_len = (size_t)n;

  /* A guesser in a delay is answered now, before the costly check, and the
   * same way whether the email has a user or not. */
  uint64_t now = now_ms(l), wait, w2;
  account_key(e, j->akey);
  wr_throttle_source_key(&req->peer, j->src);
  wait = wr_throttle_check(l->accounts, j->akey, now);
  w2 = wr_throttle_check(l->sources, j->src, now);
  if (w2 > wait) wait = w2;
  if (wait) {
    char t[32], msg[96], ebuf[96];
    wait_text(wait, t, sizeof(t));
    snprintf(msg, sizeof(msg), "Too many failed sign-ins; try again in %s.", t);
    /* Debug only: a guesser can send these far faster than checks run, and
     * the lockout itself was logged (and audited) when it began. */
    wr_debug("login: sign-in for %s from %s refused without a check: too many failed sign-ins (%s to wait)",
             logsafe(j->akey + 2, ebuf, sizeof(ebuf)), j->src, t);
    l->stats.throttled++;
    r.status = 429;
    r.retry_after = (wait + 999) / 1000;
    job_free(j);
    send_signin_form(l, req, &r, s, callback, key, e, msg);
    return;
  }
  if (wr_throttle_begin(l->accounts, j->akey, now) != WR_OK) {
    job_free(j);
    simple_page(l, req, 503, "Busy", "The edge is busy with other sign-ins; try again in a few seconds.", 0);
    return;
  }
  if (wr_throttle_begin(l->sources, j->src, now) != WR_OK) {
    wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
    job_free(j);
    simple_page(l, req, 503, "Busy", "The edge is busy with other sign-ins; try again in a few seconds.", 0);
    return;
  }

  if (wr_store_user_get_by_email(l->store, e, &j->user) == WR_OK) {
    j->user_found = 1;
    int rv = wr_store_user_password_hash(l->store, j->user.id, j->hash, sizeof(j->hash));
    j->have_hash = rv == WR_OK;
    if (rv != WR_OK && rv != WR_ERR_NOTFOUND)
      wr_error("login: reading a password hash failed: %s", wr_store_errmsg(l->store));
  }
  /* Without a hash (unknown user, no password, service user) the worker
   * still spends the time of a check, then says no. */
  if (!j->have_hash) j->user_found = 0;

  /* A turn for the check: now, after the checks of other sources, or
   * none when this source has its share. Sources with recent failures wait
   * behind (and, in a full queue, make room for) sources without. */
  wr_fairq_item *dropped = NULL;
  unsigned score = wr_throttle_failures(l->sources, j->src, now);
  int rv = wr_fairq_push(l->checks, j->src, score, &j->qi, &dropped);
  if (dropped) drop_waiting(l, (job *)((char *)dropped - offsetof(job, qi)));
  if (rv == WR_ERR_LIMIT) {
    int own = wr_fairq_source_work(l->checks, j->src) > 0;
    char ebuf[96];
    wr_debug("login: sign-in for %s from %s refused: %s", logsafe(j->akey + 2, ebuf, sizeof(ebuf)), j->src,
             own ? "its source has its share of password checks running and waiting"
                 : "the queue of password checks is full");
    wr_throttle_end(l->accounts, j->akey, now, WR_THROTTLE_NEUTRAL, NULL);
    wr_throttle_end(l->sources, j->src, now, WR_THROTTLE_NEUTRAL, NULL);
    answer_no_turn(l, req, s->id, callback, e, own);
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

/* POST /argotunnel/authorize */
static void page_authorize(wr_login *l, wr_httpd_req *req) {
  char callback[CALLBACK_MAX + 1], key[WR_LOGIN_KEY_MAX + 1], zone_id[WR_STORE_ID_LEN + 2];
  const char *body = (const char *)req->body;
  session *s;
  wr_zone z;
  wr_user u;
  job *j;
  reply r = {.status = 400};
  if (req->body_len > FORM_MAX) {
    simple_page(l, req, 413, "Too large", "The form data is too large.", 0);
    return;
  }
  if (read_callback(l, req, body, req->body_len, callback, key) != 0) return;
  if (!(s = post_session(l, req, callback))) return;
  if (!s->signed_in) {
    r.status = 403;
    send_signin_form(l, req, &r, s, callback, key, NULL, "Please sign in first.");
    return;
  }
  /* The user may have been removed or made a service user since. */
  if (wr_store_user_get(l->store, s->user.id, &u) != WR_OK || u.is_service) {
    session_destroy(l, s);
    simple_page(l, req, 403, "Signed out", "Your user no longer exists or cannot sign in; you were signed out.", 1);
    return;
  }
  int n = wr__login_form_get(body, req->body_len, "zone", zone_id, sizeof(zone_id));
  if (n != WR_STORE_ID_LEN || wr_store_zone_get(l->store, zone_id, &z) != WR_OK ||
      strcmp(z.account_id, s->user.account_id) != 0) {
    send_zone_picker(l, req, &r, s, callback, key, "Choose one of the zones below.");
    return;
  }
  if (key[0] && delivery_find(l, key)) {
    simple_page(l, req, 409, "Already done",
                "This login request was completed already. Run the login command again for a new "
                "certificate.",
                0);
    return;
  }
  if (key[0] && l->ndeliveries >= l->max_pending && delivery_room(l) != 0) {
    simple_page(l, req, 503, "Busy", "Too many logins are waiting to be collected; try again later.", 0);
    return;
  }
  j = wr_xcalloc(1, sizeof(*j));
  j->kind = JOB_ISSUE;
  j->req = req;
  memcpy(j->sid, s->id, sizeof(j->sid));
  snprintf(j->callback, sizeof(j->callback), "%s", callback);
  j->data_dir = wr_xstrdup(l->data_dir);
  j->zone = z;
  s->busy = 1;
  job_start(l, j);
}

/* GET /argotunnel/done */
static void page_done(wr_login *l, wr_httpd_req *req) {
  session *s = session_from_cookie(l, req);
  reply r = {.status = 200};
  wr_buf b;
  if (!s || !s->signed_in || !s->pem) {
    simple_page(l, req, 404, "Nothing here", "There is no certificate in this session; sign in first.", 1);
    return;
  }
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

/* GET /argotunnel/cert.pem */
static void page_download(wr_login *l, wr_httpd_req *req) {
  session *s = session_from_cookie(l, req);
  if (!s || !s->signed_in || !s->pem) {
    simple_page(l, req, 404, "Nothing here", "There is no certificate in this session; sign in first.", 1);
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

/* POST /argotunnel/signout */
static void page_signout(wr_login *l, wr_httpd_req *req) {
  session *s = post_session(l, req, "");
  reply r = {0};
  if (!s) return;
  session_destroy(l, s);
  set_cookie(l, &r, NULL);
  redirect(req, &r, WR_LOGIN_PATH);
}

/* GET /argotunnel/transfer/KEY and GET /KEY */
static void page_poll(wr_login *l, wr_httpd_req *req, const char *enc_key) {
  char key[WR_LOGIN_KEY_MAX + 1];
  int n = wr__login_pct_decode(enc_key, strlen(enc_key), 0, key, sizeof(key));
  delivery *d;
  waiter *w;
  if (n < 0 || !wr_login_key_valid(key, (size_t)n)) {
    wr_httpd_respond_simple(req, 400, "text/plain", "invalid login key\n", 18);
    return;
  }
  sweep(l);
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
  uv_timer_init(l->loop, &w->timer);
  w->timer.data = l;
  l->open_handles++;
  w->next = l->waiters;
  if (l->waiters) l->waiters->prev = w;
  l->waiters = w;
  l->nwaiters++;
  uv_timer_start(&w->timer, on_waiter_timeout, l->poll_hold_ms, 0);
}

/* The key of a root-level poll (/KEY), cloudflared's shape exactly. */
int wr__login_root_key(const char *path) {
  char key[WR_LOGIN_KEY_MAX + 1];
  if (path[0] != '/') return 0;
  int n = wr__login_pct_decode(path + 1, strlen(path + 1), 0, key, sizeof(key));
  if (n != CLOUDFLARED_KEY_LEN || key[CLOUDFLARED_KEY_LEN - 1] != '=') return 0;
  for (int i = 0; i < CLOUDFLARED_KEY_LEN - 1; i++)
    if (!key_char(key[i]) || key[i] == '=') return 0;
  return 1;
}

static void method_not_allowed(wr_httpd_req *req, const char *allow) {
  const wr_http_header hs[] = {
      {"Allow", 5, allow, strlen(allow)},
      {"Content-Type", 12, "text/plain", 10},
  };
  wr_httpd_respond(req, 405, hs, 2, "method not allowed\n", 19);
}

int wr_login_handle(wr_login *l, wr_httpd_req *req) {
  const char *p = req->path;
  int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
  int post = strcmp(req->method, "POST") == 0;
  if (!l || l->closing) return 0;
  if (strncmp(p, WR_LOGIN_TRANSFER_PREFIX, strlen(WR_LOGIN_TRANSFER_PREFIX)) == 0 || wr__login_root_key(p)) {
    /* HEAD must not consume the certificate: GET only. */
    if (strcmp(req->method, "GET") != 0) method_not_allowed(req, "GET");
    else page_poll(l, req, p[1] == 'a' ? p + strlen(WR_LOGIN_TRANSFER_PREFIX) : p + 1);
    return 1;
  }
  if (strcmp(p, WR_LOGIN_PATH) != 0 && strncmp(p, WR_LOGIN_PATH "/", strlen(WR_LOGIN_PATH) + 1) != 0)
    return 0;
  sweep(l);
  if (strcmp(p, WR_LOGIN_PATH) == 0 || strcmp(p, WR_LOGIN_PATH "/") == 0) {
    if (get) page_main(l, req);
    else method_not_allowed(req, "GET, HEAD");
  } else if (strcmp(p, WR_LOGIN_PATH "/signin") == 0) {
    if (post) page_signin(l, req);
    else method_not_allowed(req, "POST");
  } else if (strcmp(p, WR_LOGIN_PATH "/authorize") == 0) {
    if (post) page_authorize(l, req);
    else method_not_allowed(req, "POST");
  } else if (strcmp(p, WR_LOGIN_PATH "/signout") == 0) {
    if (post) page_signout(l, req);
    else method_not_allowed(req, "POST");
  } else if (strcmp(p, WR_LOGIN_PATH "/done") == 0) {
    if (get) page_done(l, req);
    else method_not_allowed(req, "GET, HEAD");
  } else if (strcmp(p, WR_LOGIN_PATH "/cert.pem") == 0) {
    if (get) page_download(l, req);
    else method_not_allowed(req, "GET, HEAD");
  } else {
    simple_page(l, req, 404, "Not found", "There is no such page.", 1);
  }
  return 1;
}

/* --- lifetime ------------------------------------------------------------------------- */

int wr_login_new(const wr_login_config *cfg, wr_login **out) {
  wr_login *l;
  const char *url;
  int rv;
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->store || !cfg->data_dir || !*cfg->data_dir) return WR_ERR_INVAL;
  l = wr_xcalloc(1, sizeof(*l));
  l->loop = cfg->loop;
  l->store = cfg->store;
  l->data_dir = wr_xstrdup(cfg->data_dir);
  url = cfg->public_url && *cfg->public_url ? cfg->public_url : "http://127.0.0.1:8081";
  l->public_url = wr_xstrdup(url);
  for (size_t n = strlen(l->public_url); n > 0 && l->public_url[n - 1] == '/'; n--) l->public_url[n - 1] = '\0';
  l->secure = strncasecmp(url, "https://", 8) == 0;
  l->poll_hold_ms = cfg->poll_hold_ms ? cfg->poll_hold_ms : 50000;
  l->ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : 600000;
  l->max_sessions = cfg->max_sessions ? cfg->max_sessions : 1024;
  l->max_pending = cfg->max_pending ? cfg->max_pending : 1024;
  l->max_waiters = cfg->max_waiters ? cfg->max_waiters : 256;
  l->max_sessions_per_source = cfg->max_sessions_per_source ? cfg->max_sessions_per_source : 16;
  l->now_ms = cfg->now_ms;
  l->now_user = cfg->now_user;
  wr_throttle_config scfg = cfg->source_throttle;
  if (!scfg.free_failures) scfg.free_failures = SOURCE_FREE_FAILURES;
  wr_fairq_config qcfg = {.max_running = cfg->max_hashing, .max_queued = cfg->max_queued,
                          .per_source_running = cfg->source_running,
                          .per_source_queued = cfg->source_queued};
  if ((rv = wr_throttle_new(&cfg->account_throttle, &l->accounts)) != WR_OK ||
      (rv = wr_throttle_new(&scfg, &l->sources)) != WR_OK || (rv = wr_fairq_new(&qcfg, &l->checks)) != WR_OK) {
    wr_throttle_free(l->accounts);
    wr_throttle_free(l->sources);
    free(l->data_dir);
    free(l->public_url);
    free(l);
    return rv;
  }
  /* Enough rows for a burst of real lockouts; a flood past that is a
   * count in the log, not a full disk. */
  l->audit_rl.burst = 100;
  l->audit_rl.every_ms = 1000;
  uv_timer_init(l->loop, &l->sweep_timer);
  l->sweep_timer.data = l;
  l->open_handles = 1;
  /* Expired secrets leave memory even when no request comes. */
  uint64_t every = l->ttl_ms / 4 < 30000 ? (l->ttl_ms / 4 ? l->ttl_ms / 4 : 1) : 30000;
  uv_timer_start(&l->sweep_timer, on_sweep, every, every);
  uv_unref((uv_handle_t *)&l->sweep_timer);
  *out = l;
  return WR_OK;
}

void wr_login_free(wr_login *l) {
  if (!l || l->closing) return;
  l->closing = 1;
  while (l->waiters) {
    waiter *w = l->waiters;
    if (w->req) answer_waiting(w->req, "the edge is shutting down\n");
    w->req = NULL;
    waiter_unlink(l, w);
  }
  while (l->sessions) session_destroy(l, l->sessions);
  while (l->deliveries) delivery_free(l, l->deliveries);
  /* Checks waiting for a turn never reached the pool: answered here. Jobs
   * not started yet come back with UV_ECANCELED; running ones finish and
   * answer 503 (work_done checks |closing|). */
  for (job *j = l->jobs, *next; j; j = next) {
    next = j->next;
    if (j->waiting) {
      wr_fairq_remove(l->checks, &j->qi);
      job_unlink(l, j);
      wr_httpd_respond_simple(j->req, 503, "text/plain", "the edge is shutting down\n", 26);
      job_free(j);
    } else {
      uv_cancel((uv_req_t *)&j->work);
    }
  }
  l->store = NULL;
  uv_close((uv_handle_t *)&l->sweep_timer, on_handle_closed);
}

void wr_login_get_stats(const wr_login *l, wr_login_stats *st) {
  *st = l->stats;
  wr_fairq_counts(l->checks, &st->running, &st->waiting);
}

/* --- URLs for the CLI ---------------------------------------------------------------- */

static char *base_trim(const char *base) {
  char *b = wr_xstrdup(base ? base : "");
  for (size_t n = strlen(b); n > 0 && b[n - 1] == '/'; n--) b[n - 1] = '\0';
  return b;
}

char *wr_login_poll_url(const char *base, const char *key) {
  if (!key || !wr_login_key_valid(key, strlen(key))) return NULL;
  char *b = base_trim(base);
  size_t n = strlen(b) + strlen(WR_LOGIN_TRANSFER_PREFIX) + strlen(key) + 1;
  char *out = wr_xmalloc(n);
  snprintf(out, n, "%s%s%s", b, WR_LOGIN_TRANSFER_PREFIX, key);
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
  url_encode(&buf, poll);
  out = wr_xstrdup(wr_buf_cstr(&buf));
  wr_buf_free(&buf);
  free(b);
  free(poll);
  return out;
}
