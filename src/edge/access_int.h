/* Internals of edge/access.h shared by access.c (keys, the gate) and
 * access_login.c (the sign-in pages). */
#ifndef WR_EDGE_ACCESS_INT_H
#define WR_EDGE_ACCESS_INT_H
#include <jansson.h>

#include "edge/access.h"
#include "edge/throttle.h"
#include "lib/watchers.h"
#include "net/owner.h"
#include "proto/jwt.h"
#include "proto/oidc.h"

/* The gate's cache of each host's applications: an open-addressed table
 * (a host lives in one of WR__ACCESS_CACHE_PROBE slots from its hash), sized
 * for an edge with a few thousand hostnames in use at once; a host whose
 * slots all wait for the store waits too. */
#define WR__ACCESS_CACHE_SLOTS 2048
#define WR__ACCESS_CACHE_PROBE 16

typedef struct wr__access_transfer {
  char key[96];
  char *body;        /* NULL: a free slot */
  uint64_t expires;
} wr__access_transfer;

typedef struct wr__access_host {
  char host[WR_STORE_HOST_MAX + 1]; /* "": a free slot */
  json_t *doc;      /* wr_store_access_for_host's answer; NULL: the read failed */
  uint64_t expires;
  int pending;      /* a read is on the store thread */
  uint64_t gen;     /* the read's number: an older read's answer is dropped */
} wr__access_host;

/* Service-token checks (CF-Access-Client-Id/-Secret) read on the store
 * thread, kept WR_ACCESS_CACHE_MS by a SHA-256 of id and secret (the
 * secret itself is not kept). */
#define WR__ACCESS_TOKEN_SLOTS 512
#define WR__ACCESS_TOKEN_PROBE 8

typedef struct wr__access_token {
  uint8_t key[32];  /* SHA-256(client id NUL secret); all zero: a free slot */
  int used;
  int rv;           /* wr_store_access_token_check's answer */
  char id[WR_STORE_UUID_LEN + 1];
  char account[WR_STORE_ID_LEN + 1];
  uint64_t expires;
  int pending, answered;
  uint64_t gen;
} wr__access_token;

#define WR__ACCESS_WATCHERS 8

struct wr_access {
  uv_loop_t *loop;
  wr_store *store;
  char *team;
  wr_jwt_key *keys[WR_JWKS_MAX_KEYS]; /* [0] signs */
  size_t nkeys;
  wr_jwks *jwks;
  char *certs;
  uint64_t keys_at; /* ms: when the keys were read */
  wr__access_host cache[WR__ACCESS_CACHE_SLOTS];
  wr__access_token tokens[WR__ACCESS_TOKEN_SLOTS];
  wr_store_async *async;  /* NULL: the gate reads the store on the loop */
  uint64_t gen;           /* reads submitted */
  json_t *aside;
  uint8_t csrf_key[32];   /* the sign-in forms' CSRF tokens (access_login.c) */          /* a page's read of a host the store thread is reading */
  wr_watcher watchers[WR__ACCESS_WATCHERS];
  wr_access_stats stats;
  wr_ratelimit audit_rl;
  wr_throttle *signin_rl; /* failed sign-ins per email */
  wr_oidc_states *oidc;   /* pending OpenID Connect sign-ins */
  wr__access_transfer transfers[WR_ACCESS_TRANSFERS]; /* CLI hand-offs */
  wr_owner jobs;          /* holds the jobs on the worker pool and the store thread */
  int keys_reading;       /* a reload of the keys is on the store thread */
  struct wr__access_parked *parked; /* team-domain requests waiting for a host's read */
  int resuming;           /* wr__access_pages_resume is running them again */
  int freeing;            /* wr_access_free ran; |jobs|' release frees after the last job */
};

uint64_t wr__access_now_ms(const wr_access *a);
/* Queues the store-thread job |j| (|size| bytes, the caller's allocation)
 * for a->jobs (held until its done callback returned). Returns WR_OK (|j| is the job's now), or
 * WR_ERR_LIMIT when the store thread takes no more: |j| is then wiped
 * (it may hold a secret) and freed. Loop thread, callable from callbacks. */
int wr__access_submit(wr_access *a, wr_store_async_fn run, wr_store_async_done done, void *j, size_t size);
/* Re-reads the keys when WR_ACCESS_RELOAD_MS passed. */
void wr__access_keys_fresh(wr_access *a);
/* The apps of |host| (cached); NULL on a store error. Borrowed. With a
 * store thread only the cache is read: the caller prefetched |host|
 * (wr_access_prefetch, or wr__access_page_wait for the team domain). */
json_t *wr__access_host_doc(wr_access *a, const char *host);
/* The identity providers of |account| read with |host|'s apps (a JSON
 * array, borrowed), or NULL. */
json_t *wr__access_idps(wr_access *a, const char *host, const char *account);
/* Team-domain pages (access_login.c): 1 when |req| must wait for the
 * applications of |host| (it was parked, or answered 503 when the store
 * thread's queue is full), 0 when they are in the cache. */
int wr__access_page_wait(wr_access *a, wr_httpd_req *req, const char *host);
/* Runs the parked requests again (a host read is back). */
void wr__access_pages_resume(wr_access *a);
/* Answers every parked request 503 (wr_access_free). */
void wr__access_pages_drop(wr_access *a);
/* Signs an app token for |app| with identity claims |ident| (stolen). */
char *wr__access_sign(wr_access *a, json_t *app, json_t *ident);
/* An audit row within the budget. */
void wr__access_audit(wr_access *a, const char *account, const char *action, const char *target, json_t *detail);
/* Session length of an app in seconds (its session_duration; 24h default). */
int64_t wr__access_session_s(json_t *app);
/* The sign-in pages' helpers (access_login.c), shared with access_oidc.c. */
void wr__access_html_escape(const char *s, char *out, size_t cap);
void wr__access_url_escape(const char *in, char *out, size_t cap);
/* The value of |name| in "a=b&c=d" (form or query encoding), decoded into
 * |out|: its length, or -1 when absent or malformed. */
int wr__access_field(const char *s, size_t len, const char *name, char *out, size_t cap, int binary);
/* An HTML answer with the pages' security headers; |set_cookie| may be NULL. */
void wr__access_respond_html(wr_httpd_req *req, int status, const char *body, const char *location);
void wr__access_respond_html_cookie(wr_httpd_req *req, int status, const char *body, const char *location,
                                    const char *set_cookie);
/* The app of |host| with tag |kid|, or NULL (borrowed). */
json_t *wr__access_app_by_kid(wr_access *a, const char *host, const char *kid);
/* redirect_url must be http(s)://<host>[:port][/...]; |origin| gets
 * "scheme://authority". Returns 0 or -1. */
int wr__access_redirect_ok(const char *url, const char *host, char *origin, size_t cap);
/* A successful sign-in of |email| to |app| (via "password" or "oidc"):
 * signs the app token, audits, and answers 302 (with |set_cookie| unless
 * NULL) to the app host's
 * /cdn-cgi/access/authorized. Returns 0, or -1 without answering (no token
 * could be signed, or |redirect| is not on |host|). */
int wr__access_finish(wr_access *a, wr_httpd_req *req, const char *host, json_t *app, const char *redirect,
                      const char *account, const char *email, const char *sub, const char *via,
                      const char *set_cookie);

/* The value of cookie |name| of |req| into |out| (NUL-terminated): its
 * length, or -1 when absent, too long or holding a NUL. */
int wr__access_req_cookie(wr_httpd_req *req, const char *name, char *out, size_t cap);

/* OpenID Connect sign-in (access_oidc.c). */
/* The sign-in page's part for the identity providers |app| allows: links
 * to start each one's flow (malloc'd HTML, "" when none), and in
 * *auto_url the start URL when the app redirects to its only provider
 * (malloc'd, or NULL). */
char *wr__access_oidc_links(wr_access *a, json_t *app, const char *host, const char *kid, const char *redirect,
                            char **auto_url);
/* /cdn-cgi/access/oidc/<idp id> and /cdn-cgi/access/callback: returns 1
 * when it answered (now or later), 0 for another path. */
int wr__access_oidc_handle(wr_access *a, wr_httpd_req *req);

/* The service token check for the gate (access_tokens.c): WR_OK with its
 * id and account, WR_ERR_DENIED, or another error. With a store thread,
 * from the cache wr_access_prefetch_token filled. */
int wr__access_token_check(wr_access *a, const char *client_id, const char *secret, char *id, char *account);
/* A store read's answer was taken and its job freed (access.c): unless
 * the gate is being freed, the watchers and the parked pages hear of it.
 * From the reads' done callbacks on the loop thread. */
void wr__access_read_back(wr_access *a);

#endif
