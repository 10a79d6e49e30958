/* Internals of the login pages (edge/login.h), shared by their files and
 * with login.c's fuzz target (tests/fuzz/fuzz_login.c). Not an interface
 * for other modules.
 *
 * The login pages are split by concept; each file owns one part:
 *   login.c          the object's lifetime, the periodic sweep, and the
 *                    dispatch of a request to its page
 *   login_codec.c    text in and out: the parsers of request input (fuzzed)
 *                    and the encoders for URLs and logs
 *   login_pages.c    the HTML pages and the headers every answer carries
 *   login_session.c  browser sessions, their cookie and CSRF token, and the
 *                    pages that open or close one (the entry page, sign-out)
 *   login_signin.c   sign-in: the password checks on libuv's worker pool,
 *                    admitted by the fair queue and guarded by the failure
 *                    throttles (with their lockout audit rows); also the
 *                    pool jobs of certificate issuing
 *   login_cert.c     the cert.pem hand-off: zone authorization and issuing,
 *                    the deliveries and held polls of the transfer
 *                    endpoint, the success page and download, and the CLI's
 *                    URLs */
#ifndef WR_EDGE_LOGIN_INT_H
#define WR_EDGE_LOGIN_INT_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "edge/fairq.h"
#include "edge/login.h"
#include "edge/password.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "edge/throttle.h"
#include "lib/buf.h"
#include "net/httpd.h"

#define WR__LOGIN_COOKIE_NAME "warren_login"
#define WR__LOGIN_SID_LEN 43 /* base64url of 32 bytes, unpadded */
#define WR__LOGIN_CALLBACK_MAX 1024
#define WR__LOGIN_FORM_MAX (16u * 1024) /* larger POST bodies get 413 */
#define WR__LOGIN_FP_LEN 8 /* characters of the key shown as the request's name */
#define WR__LOGIN_NEXT_MAX 512 /* bytes of a ?next= path */
/* "u:" + an email: the account throttle's key. */
#define WR__LOGIN_AKEY_MAX (WR_STORE_EMAIL_MAX + 3)

/* ---- login_codec.c: parsers of request input (fuzzed) and encoders ------------------ */

/* Finds |name| in application/x-www-form-urlencoded |data| (also a query
 * string; NULL is empty) and decodes the first value with wr_pct_decode's
 * WR_PCT_PLUS and |flags| (WR_PCT_BINARY for a password). Returns its
 * length, -1 if absent, -2 if malformed or too long for |out|. */
int wr__login_form_get(const char *data, size_t len, const char *name, int flags, char *out,
                       size_t outsz);
/* The key at the end of a callback URL: after the last '/', without any
 * query or fragment, percent-decoded. Returns WR_OK or WR_ERR_INVAL. */
int wr__login_callback_key(const char *cb, char key[WR_LOGIN_KEY_MAX + 1]);
/* Whether |path| is a root-level poll "/KEY" with a key of cloudflared's
 * shape exactly (44 characters, the last one '='). */
int wr__login_root_key(const char *path);
/* Scans a Cookie field value from *pp to |end| for the next
 * "warren_login=<session id>" pair: copies the id into |id| (NUL-terminated),
 * moves *pp past the pair and returns 1; returns 0 when there is none. */
int wr__login_cookie_next(const char **pp, const char *end, char id[WR__LOGIN_SID_LEN + 1]);
/* Whether |next| is a local path a sign-in may return to: "/" then
 * printable ASCII, not "//" or "/\\" at the start (another host to a
 * browser), no backslash at all, at most WR__LOGIN_NEXT_MAX bytes. */
int wr__login_next_ok(const char *next);
/* A copy of |in| safe for one log line: bounded, control bytes as '?'. */
const char *wr__login_logsafe(const char *in, char *buf, size_t size);
/* The peer address of |req| for logs ("?" if unknown). */
const char *wr__login_peer_ip(const wr_httpd_req *req, char *buf, size_t size);
/* The first WR__LOGIN_FP_LEN characters of |key|: the request's name on
 * pages and in logs (never the whole key). */
void wr__login_key_fingerprint(const char *key, char fp[WR__LOGIN_FP_LEN + 1]);

/* ---- layout ------------------------------------------------------------------------ */

/* A browser's session: anonymous until a sign-in succeeds. */
typedef struct login_session {
  struct login_session *next;
  char id[WR__LOGIN_SID_LEN + 1];   /* the cookie value */
  char csrf[WR__LOGIN_SID_LEN + 1]; /* hidden field of every form */
  uint64_t created;
  uint64_t expires;
  int signed_in;
  int busy;               /* a password check or certificate job is running */
  char src[WR_THROTTLE_SOURCE_MAX]; /* the source that made it */
  wr_user user;
  char *pem;              /* the last cert.pem made here, for the download link */
  char zone_name[WR_STORE_HOST_MAX + 1];
  int for_cli;            /* that cert.pem was also queued for a polling CLI */
  char key_fp[WR__LOGIN_FP_LEN + 1];
  char next_path[WR__LOGIN_NEXT_MAX + 1]; /* where a sign-in returns to (?next=), "" for the zone picker */
} login_session;

/* A cert.pem waiting for the CLI that asked for it with |key|. */
typedef struct login_delivery {
  struct login_delivery *next;
  char key[WR_LOGIN_KEY_MAX + 1];
  char *pem;        /* NULL once delivered: kept as a tombstone until expiry, so
                     * the same key cannot be authorized twice */
  uint64_t expires;
} login_delivery;

/* A held poll. */
typedef struct login_waiter {
  uv_timer_t timer;
  struct login_waiter *next, *prev;
  wr_login *l;
  wr_httpd_req *req; /* NULL once answered */
  char key[WR_LOGIN_KEY_MAX + 1];
} login_waiter;

typedef enum login_job_kind { JOB_SIGNIN, JOB_ISSUE } login_job_kind;

/* Work for the thread pool. The worker touches only the fields it was given
 * (no store, no session): the loop thread looks the session up again by id
 * when the job comes back. */
typedef struct login_job {
  uv_work_t work;
  wr_fairq_item qi;   /* JOB_SIGNIN: its place in the queue of checks */
  int waiting;        /* in the queue, not yet handed to the pool */
  struct login_job *next, *prev;
  wr_login *l;
  wr_httpd_req *req;
  login_job_kind kind;
  char sid[WR__LOGIN_SID_LEN + 1];
  char callback[WR__LOGIN_CALLBACK_MAX + 1];
  /* JOB_SIGNIN */
  char *password;
  size_t pw_len;
  char hash[WR_PASSWORD_ENCODED_MAX + 1];
  int have_hash;
  int user_found;
  wr_user user;
  char email[WR_STORE_EMAIL_MAX + 1];
  char akey[WR__LOGIN_AKEY_MAX + 1];            /* throttle keys of the attempt */
  char src[WR_THROTTLE_SOURCE_MAX];
  int verify_rv;
  /* JOB_ISSUE */
  char *data_dir;
  wr_zone zone;
  wr_pem_pair pair;
  int issue_rv;
  char err[256];      /* JOB_ISSUE; JOB_SIGNIN: a store error of the user's read */
} login_job;

struct wr_login {
  uv_loop_t *loop;
  wr_store *store;
  wr_store_async *async; /* the pages' reads (wr__login_store_call); NULL: on the loop */
  char *data_dir;
  char *public_url;
  char *strs; /* the one block holding data_dir and public_url: free only it (lib/strpack.h) */
  int secure; /* public_url is https: Secure cookies */
  uint64_t poll_hold_ms, ttl_ms;
  size_t max_sessions, max_pending, max_waiters, max_sessions_per_source;
  uint64_t (*now_ms)(void *user);
  void *now_user;

  login_session *sessions;
  size_t nsessions;
  login_delivery *deliveries;
  size_t ndeliveries;
  login_waiter *waiters;
  size_t nwaiters;
  login_job *jobs; /* pool jobs: running, or checks waiting for a turn */
  /* Everything |l| waits for before it is freed: wr__login_store_call
   * jobs on the store thread, pool jobs (|jobs|) and handles not yet
   * closed (the sweep timer, the waiters' timers). wr_login_free closes
   * it; its release frees |l|. */
  wr_owner owner;

  wr_throttle *accounts; /* failures per email */
  wr_throttle *sources;  /* failures per source */
  wr_fairq *checks;      /* admission of password checks */
  wr_ratelimit audit_rl; /* lockout audit rows */
  wr_login_stats stats;

  uv_timer_t sweep_timer;
  int closing;
};

/* What an answer carries besides its body (login_pages.c). */
typedef struct login_reply {
  int status;
  uint64_t retry_after; /* seconds for Retry-After, 0 for none */
  char cookie[256];   /* Set-Cookie value, "" for none */
  char location[WR__LOGIN_CALLBACK_MAX * 3 + 64];
} login_reply;

static inline uint64_t wr__login_now(wr_login *l) {
  return l->now_ms ? l->now_ms(l->now_user) : uv_now(l->loop);
}

/* Frees a secret string, wiping it first. */
static inline void wr__login_wipe_free(char *p) {
  if (!p) return;
  explicit_bzero(p, strlen(p));
  free(p);
}

/* ---- login.c: lifetime ------------------------------------------------------------- */

/* A store call of a page: fn(store, arg) on the store thread (with a
 * store thread; fn must not touch loop objects), then done(l, arg,
 * status) on the loop, where |status| is WR_OK when fn ran, or
 * WR_ERR_INTERNAL when the store thread stopped first (also while |l| is
 * closing: done answers then). Without a store thread both run at once,
 * on the loop. |l| waits for done before it is freed. Returns WR_OK, or
 * WR_ERR_LIMIT / WR_ERR_INVAL when the store thread takes no more work
 * (then neither runs: the caller answers). |arg| is the caller's. */
typedef void (*wr__login_store_fn)(wr_store *st, void *arg);
typedef void (*wr__login_store_done)(wr_login *l, void *arg, int status);
int wr__login_store_call(wr_login *l, wr__login_store_fn fn, wr__login_store_done done, void *arg);
/* In a store call's done: the session |sid| the page goes on with, or
 * NULL after answering |req| (503 when closing or |status| is not WR_OK,
 * "Session expired" when the session is gone, or not signed in while
 * |signed_in| asks for it). |busy|: the caller made the session busy for
 * the call; it is not any more. */
login_session *wr__login_store_session(wr_login *l, wr_httpd_req *req, const char *sid, int status, int busy,
                                       int signed_in);

/* Drops expired sessions and deliveries (wiping what they hold). */
void wr__login_sweep(wr_login *l);
/* Close callback of the sweep timer and of the waiters' timers (each
 * held |l|'s owner from its uv_timer_init on): may free |l|. */
void wr__login_handle_closed(uv_handle_t *h);

/* ---- login_pages.c: pages ---------------------------------------------------------- */

/* Sets the session cookie of |sid| in |r| (NULL: a cookie that clears it). */
void wr__login_set_cookie(wr_login *l, login_reply *r, const char *sid);
/* A page with one message; |cls| "error" or "ok"; |restart_link| adds a
 * link to start again. */
void wr__login_send_message(wr_login *l, wr_httpd_req *req, login_reply *r, const char *title,
                            const char *cls, const char *msg, int restart_link);
/* The same with |status| alone ("ok" below 400). */
void wr__login_simple_page(wr_login *l, wr_httpd_req *req, int status, const char *title,
                           const char *msg, int restart_link);
/* 303 to |location| (with |r|'s cookie, if any). */
void wr__login_redirect(wr_httpd_req *req, login_reply *r, const char *location);
/* /argotunnel?aud=&callback=<callback>, or /argotunnel without one. */
void wr__login_location(const char *callback, char *out, size_t size);
/* The sign-in form, with |email| filled in and |error| shown (both may be
 * NULL). */
void wr__login_signin_form(wr_login *l, wr_httpd_req *req, login_reply *r, login_session *s,
                           const char *callback, const char *key, const char *email,
                           const char *error);
/* The zone picker of the signed-in session |s| (500 if the store fails).
 * The zones are read with wr__login_store_call: the answer may come from
 * a later loop callback, with the session looked up again by its id
 * ("Session expired" if it is gone by then); |r|, |callback|, |key| are
 * copied and |error| must be a literal. */
void wr__login_zone_picker(wr_login *l, wr_httpd_req *req, login_reply *r, login_session *s,
                           const char *callback, const char *key, const char *error);
/* The success page of |s|, which holds a cert.pem. */
void wr__login_done_page(wr_login *l, wr_httpd_req *req, login_session *s);

/* ---- login_session.c: sessions and CSRF -------------------------------------------- */

/* 32 random bytes as unpadded base64url. WR_OK, WR_ERR_CRYPTO or
 * WR_ERR_INTERNAL. */
int wr__login_random_id(char out[WR__LOGIN_SID_LEN + 1]);
void wr__login_session_destroy(wr_login *l, login_session *s);
/* The live session with |id|, or NULL. */
login_session *wr__login_session_find(wr_login *l, const char *id);
/* The live session named by |req|'s cookie, or NULL. */
login_session *wr__login_session_from_cookie(wr_login *l, const wr_httpd_req *req);
/* A job of |sid| came back: the session may run another (and, if it
 * expired meanwhile, may be swept now). */
void wr__login_session_job_done(wr_login *l, const char *sid);
/* Drops the expired sessions that run no job. */
void wr__login_sessions_sweep(wr_login *l, uint64_t now);
/* Reads the callback parameter from query or form |data|. Returns 0 with
 * |callback| and |key| ("" for none), or -1 after answering 400. */
int wr__login_read_callback(wr_login *l, wr_httpd_req *req, const char *data, size_t len,
                            char callback[WR__LOGIN_CALLBACK_MAX + 1],
                            char key[WR_LOGIN_KEY_MAX + 1]);
/* Common checks of every POST: size, session, CSRF, no job running.
 * Returns the session or NULL after answering. */
login_session *wr__login_post_session(wr_login *l, wr_httpd_req *req, const char *callback);
void wr__login_page_main(wr_login *l, wr_httpd_req *req);    /* GET /argotunnel */
void wr__login_page_signout(wr_login *l, wr_httpd_req *req); /* POST /argotunnel/signout */

/* ---- login_signin.c: password checks and pool jobs ----------------------------------- */

void wr__login_page_signin(wr_login *l, wr_httpd_req *req); /* POST /argotunnel/signin */
/* Links |j| and hands it to the worker pool. */
void wr__login_job_start(wr_login *l, login_job *j);
/* At wr_login_free: answers the checks still waiting for a turn (503) and
 * cancels the jobs not started; running ones answer when they return. */
void wr__login_jobs_cancel(wr_login *l);
/* A lockout ended by time (the throttle sweep's callback). */
void wr__login_on_unlocked(void *user, const char *key, const wr_throttle_info *info);

/* ---- login_cert.c: the cert.pem hand-off ------------------------------------------- */

void wr__login_page_authorize(wr_login *l, wr_httpd_req *req); /* POST /argotunnel/authorize */
void wr__login_page_done(wr_login *l, wr_httpd_req *req);      /* GET /argotunnel/done */
void wr__login_page_download(wr_login *l, wr_httpd_req *req);  /* GET /argotunnel/cert.pem */
/* GET /argotunnel/transfer/KEY and GET /KEY, with |enc_key| as sent. */
void wr__login_page_poll(wr_login *l, wr_httpd_req *req, const char *enc_key);
/* An issuing job came back (loop thread): the API token, cert.pem and
 * delivery follow through wr__login_store_call (the session is busy until
 * the answer). */
void wr__login_issue_done(wr_login *l, login_job *j);
/* Drops the expired deliveries. */
void wr__login_deliveries_sweep(wr_login *l, uint64_t now);
/* At wr_login_free: answers every held poll and wipes the deliveries. */
void wr__login_transfer_close(wr_login *l);

#endif
