/* The edge's side of `tunnel login`: the pages a user signs in on,
 * picks a zone and gets cert.pem from, and the transfer endpoint the waiting
 * CLI polls. Served by the same wr_httpd as the REST API (--api-listen).
 *
 * The flow, after cloudflared's (../shared/cloudflare-api.md §1):
 *
 *   1. The CLI makes a key (cloudflared: a Curve25519 public key, 44 chars
 *      of URL-safe base64 ending in '=') and opens
 *        BASE/argotunnel?aud=&callback=<url-encoded BASE/argotunnel/transfer/KEY>
 *      The page takes KEY from the last path segment of |callback|; the
 *      callback's host is never contacted, so cloudflared's default
 *      https://login.cloudflareaccess.org/KEY works as well.
 *   2. The CLI polls GET BASE/argotunnel/transfer/KEY (the callback URL
 *      itself, as at Cloudflare, where callback and store are one URL). The
 *      edge holds each poll up to |poll_hold_ms| (default 50 s, under
 *      cloudflared's 60 s client timeout) and then answers 404 "waiting";
 *      cloudflared re-polls at once on any non-200 below 500.
 *      GET BASE/KEY (a key of exactly cloudflared's shape at the root) is the
 *      same endpoint, for setups that point login.cloudflareaccess.org here.
 *   3. The user signs in (email + password of a `warren-edge user add` user;
 *      service users are refused), picks a zone of their account, and the
 *      edge makes cert.pem: a new origin certificate for ZONE and *.ZONE (10
 *      years, pki.h), its private key, and the ARGO TUNNEL TOKEN block with
 *      zoneID, accountID and a NEW API token of that user for that zone.
 *   4. The waiting poll (or the next one) gets 200 with cert.pem as the body,
 *      exactly once; the edge then forgets it. The page also offers cert.pem
 *      as a download (BASE/argotunnel/cert.pem, tied to the browser session)
 *      for users of the real cloudflared, whose poll cannot reach the edge.
 *      Opening BASE/argotunnel without a callback is that download-only
 *      flow.
 *
 * Paths served (wr_login_handle answers 1 for each, 0 for anything else):
 *   GET  /argotunnel                 sign-in form, or the zone picker
 *   POST /argotunnel/signin          form: csrf, callback, email, password
 *   POST /argotunnel/authorize       form: csrf, callback, zone (an id)
 *   GET  /argotunnel/done            success page with the download link
 *   GET  /argotunnel/cert.pem        the session's cert.pem (attachment)
 *   POST /argotunnel/signout         form: csrf
 *   GET  /argotunnel/transfer/KEY    the long poll (also GET /KEY, see 2.)
 *   anything else under /argotunnel/ gets a 404 page.
 *
 * Security: sessions are a random cookie (HttpOnly, SameSite=Lax, Path
 * /argotunnel, Secure when |public_url| is https) renewed on sign-in; every
 * POST carries the session's CSRF token; all text in pages is HTML-escaped;
 * pages forbid framing and scripts (CSP); nothing secret (passwords, tokens,
 * session ids, cert.pem) is logged. Password checks (PBKDF2, password.h)
 * and certificate issuing run on libuv's worker pool, never on the loop
 * thread. An unknown email costs the same time as a wrong password.
 *
 * Guessing (see edge/throttle.h for the backoff):
 *   - Failed sign-ins are counted per email (any email, existing or not,
 *     compared without regard to ASCII case) and per source (the IPv4
 *     address, or the IPv6 /64). After |account_throttle.free_failures|
 *     failures for an email (default 5), or |source_throttle.free_failures|
 *     from a source over any emails (default 10: password spraying), each
 *     further failure doubles a delay from 1 s up to 15 min. While an email
 *     or a source is in its delay, sign-ins for it are answered at once,
 *     without a password check, even with the right password: 429 with
 *     Retry-After and the form saying "Too many failed sign-ins; try again
 *     in N minutes." The answer is the same for an email that has no user,
 *     so it tells nothing about which emails exist. A successful sign-in
 *     clears its email's count (not its source's: a guesser would sign in
 *     to an account of their own to clear it). Counts are forgotten an hour
 *     after the last failure and its delay.
 *   - The first failure that starts the delays of an email or a source
 *     writes a "login.lock" audit row (actor "edge"; target "email:<email>"
 *     with the account of that user, if one exists, or "source:<prefix>";
 *     detail: email, source, failures, retry_after_s); its end writes
 *     "login.unlock" (reason "signed in" or "expired"). Lockout rows are
 *     rate-limited (a burst of 100, then one a second) so that many sources
 *     cannot flood the audit log; the rest are logged as a count.
 *   - Password checks are admitted fairly (edge/fairq.h): |max_hashing|
 *     run at once (default 4); each source may have |source_running| running
 *     (default 1) and |source_queued| waiting (default 2); all sources
 *     together may have |max_queued| waiting (default 64), served
 *     round-robin by source, sources with recent failed sign-ins after
 *     those without. A source over its share gets 429 ("Too many sign-ins
 *     from your network"); when the queue is full, a new source takes the
 *     place of the newest waiting check of the source with the most work,
 *     or else of a waiting check from a source with more failures than its
 *     own; that check gets 429. Only a queue full of single checks from
 *     distinct sources with no more failures than the newcomer's answers
 *     it 503. One source flooding wrong passwords thus never turns away
 *     users elsewhere, and many sources spraying wrong passwords queue
 *     behind them.
 *   - Each source holds at most |max_sessions_per_source| anonymous
 *     sessions (default 16); a new one replaces that source's oldest, so one
 *     source cannot push everyone else's half-filled forms out of the
 *     session table.
 * Counters live in memory (bounded tables, see throttle.h): a restart
 * clears them. A source is the TCP peer: behind a reverse proxy every
 * sign-in shares the proxy's address (forwarded-for fields are not
 * trusted), so serve the login pages directly.
 *
 * State is in memory, bounded and expiring: sessions (|max_sessions|, each
 * |ttl_ms| after its creation or sign-in), certificates waiting for their
 * poll (|max_pending|, |ttl_ms|), held polls (|max_waiters|; one per key, a
 * newer poll for a key answers the older one).
 *
 * With a store thread (cfg->async) every store call of the pages runs
 * there: the sign-in's user, the zone picker's zones, an authorization's
 * user and zone, the API token and audit row written once a certificate
 * is issued (the cert.pem holding the token goes to the session and a
 * polling CLI only once the token exists), and the lockout audit rows;
 * the answer is sent from the loop when they are back. Successful logins
 * are audited (user.login, and the store's token.create row, actor
 * "login:<email>"). */
#ifndef WR_EDGE_LOGIN_H
#define WR_EDGE_LOGIN_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/store.h"
#include "edge/throttle.h"
#include "net/httpd.h"

#define WR_LOGIN_PATH "/argotunnel"
#define WR_LOGIN_TRANSFER_PREFIX "/argotunnel/transfer/"
#define WR_LOGIN_KEY_MIN 16
#define WR_LOGIN_KEY_MAX 128

typedef struct wr_login wr_login;

typedef struct wr_login_config {
  uv_loop_t *loop;       /* required: timers and the worker pool */
  wr_store *store;       /* required; used on the loop thread only */
  /* Optional: the pages read the store on this store thread (see
   * above), so a slow store does not stall the loop; NULL: on the loop.
   * It must outlive the login pages' last job (wr_login_free waits for
   * the store calls in flight, as for the pool's jobs). */
  struct wr_store_async *async;
  const char *data_dir;  /* required: the origin CA (pki.h) signs the certificates */
  const char *public_url; /* how browsers reach the edge, e.g. "http://127.0.0.1:8081";
                           * shown in the instructions, https makes cookies Secure.
                           * NULL: "http://127.0.0.1:8081" */
  uint64_t poll_hold_ms; /* default 50000 */
  uint64_t ttl_ms;       /* default 600000 (10 min): sessions, undelivered cert.pem */
  size_t max_sessions;   /* default 1024 */
  size_t max_pending;    /* default 1024: cert.pem waiting for a poll */
  size_t max_waiters;    /* default 256: polls held at once */
  unsigned max_hashing;  /* default 4: password checks running at once */
  unsigned max_queued;   /* default 64: password checks waiting for a turn */
  unsigned source_running; /* default 1: running checks per source */
  unsigned source_queued;  /* default 2: waiting checks per source */
  size_t max_sessions_per_source; /* default 16: anonymous sessions per source */
  /* Failure throttles; zero fields take throttle.h's defaults, except
   * source_throttle.free_failures, whose default here is 10. */
  wr_throttle_config account_throttle; /* per email */
  wr_throttle_config source_throttle;  /* per source, over all emails */
  /* Clock in milliseconds for tests; NULL: uv_now(loop). */
  uint64_t (*now_ms)(void *user);
  void *now_user;
} wr_login_config;

/* Returns WR_OK, WR_ERR_INVAL for a missing loop, store or data_dir (or a
 * throttle configuration throttle.h refuses), WR_ERR_NOMEM, or
 * WR_ERR_CRYPTO (no randomness for the throttle tables). */
int wr_login_new(const wr_login_config *cfg, wr_login **out);

/* Counters since wr_login_new, and the state of the queue now (also for
 * the edge's --metrics, edge/edge_metrics.h). */
typedef struct wr_login_stats {
  uint64_t signins_ok;     /* sign-ins with a right email and password */
  uint64_t signins_failed; /* wrong email or password, or a service user */
  uint64_t checks;     /* password checks run (each one a PBKDF2) */
  uint64_t waited;     /* of those, checks that waited for a turn first */
  uint64_t throttled;  /* sign-ins refused by the throttle, without a check */
  uint64_t refused;    /* sign-ins refused by the queue (429 or 503) */
  uint64_t locks;      /* lockouts begun, of emails and of sources */
  unsigned running;    /* checks running now */
  unsigned waiting;    /* checks waiting now */
} wr_login_stats;

/* Fills |st|. Loop thread only, as every call here. */
void wr_login_get_stats(const wr_login *l, wr_login_stats *st);

/* Serves |req| if its path is one of the login paths above: returns 1 and
 * has answered it (now, or later from a loop callback: a held poll, a
 * password check). Returns 0, without touching |req|, for any other path. */
int wr_login_handle(wr_login *l, wr_httpd_req *req);

/* ---- for other pages on the same listener (the dashboard, edge/dash.h) ----
 * Sessions are the login's: the cookie has Path=/, and
 *   GET /argotunnel?next=/PATH
 * shows the sign-in form (or, for a signed-in session, redirects at once)
 * and returns the browser to /PATH after the sign-in. |next| must be a
 * local path (a leading "/", not "//", printable ASCII without a
 * backslash, at most 512 bytes); any other value is ignored. */

#define WR_LOGIN_CSRF_LEN 43

/* The user of |req|'s signed-in session: copies it into |user| and the
 * session's CSRF token into |csrf| and returns 1; returns 0 when the
 * request carries no live signed-in session. */
int wr_login_session_user(wr_login *l, const wr_httpd_req *req, wr_user *user,
                          char csrf[WR_LOGIN_CSRF_LEN + 1]);
/* 1 when |token| is the CSRF token of |req|'s signed-in session (compared
 * in constant time), else 0. */
int wr_login_csrf_ok(wr_login *l, const wr_httpd_req *req, const char *token);

/* Answers every held poll (404) and pending request (503, also checks
 * waiting for a turn), wipes the certificates in memory and frees the
 * object once libuv released its handles and worker jobs: keep running the
 * loop afterwards, as after wr_httpd_free. The store is not used after this
 * call. NULL is a no-op. */
void wr_login_free(wr_login *l);

/* For the CLI side: 1 if |key| (|len| bytes) is acceptable as a login key:
 * WR_LOGIN_KEY_MIN..MAX characters of [A-Za-z0-9_=-]. */
int wr_login_key_valid(const char *key, size_t len);
/* The URL to open in the browser for |key| on an edge reachable at |base|
 * ("http://host:port", no trailing slash needed), and the URL to poll.
 * Both malloc'd; NULL if |key| is not valid. */
char *wr_login_browser_url(const char *base, const char *key);
char *wr_login_poll_url(const char *base, const char *key);

#endif
