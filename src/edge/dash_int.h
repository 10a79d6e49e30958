/* Internals of the dashboard (edge/dash.h), shared by its files:
 *   dash.c          lifetime, dispatch, sign-in gate, the page frame and
 *                   the compiled-in assets, stats.json
 *   dash_codec.c    parsers of request input (fuzzed: tests/fuzz/fuzz_dash.c)
 *   dash_pages.c    the read-only pages: tunnels, routes, devices, users, audit
 *   dash_actions.c  the POST actions (through wr_api_call)
 *   dash_traffic.c  charts page, inspector pages and replay */
#ifndef WR_EDGE_DASH_INT_H
#define WR_EDGE_DASH_INT_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "edge/dash.h"
#include "lib/buf.h"
#include "proto/httpmeta.h"

#define WR__DASH_PAGE_MAX (4u * 1024 * 1024)
#define WR__DASH_FORM_MAX (16u * 1024)
#define WR__DASH_REPLAY_MAX_HEADERS 100

struct wr_dash {
  uv_loop_t *loop;
  wr_store *store;
  wr_store_async *async; /* pages on the store thread; NULL: on the loop */
  wr_api *api;
  wr_login *login;
  wr_tunnel_server *ts;
  wr_inspect *inspect;
  wr_tunnel_stats *tunnel_stats;
  struct sockaddr_storage visitor_addr; /* ss_family 0: no replay */
  /* Pages on the store thread, and replays on the worker pool (held);
   * closing once wr_dash_free ran, and its release frees |d|. */
  wr_owner jobs;
};

/* One request of a signed-in user. A page built on the store thread uses
 * the copies below, never d's fields (wr_dash_free clears them on the
 * loop), and its answer is kept in out_* until the loop sends it. */
typedef struct dash_req {
  wr_dash *d;
  wr_httpd_req *req;
  wr_user user;
  char csrf[WR_LOGIN_CSRF_LEN + 1];
  wr_store *store;       /* this thread's */
  wr_api *api;
  wr_tunnel_server *ts;  /* reached on the loop only (wr__dash_on_loop) */
  wr_tunnel_stats *tunnel_stats; /* likewise */
  wr_store_async *async; /* set while on the store thread */
  int out_status;        /* 0: no answer kept */
  const char *out_ctype; /* a literal */
  char *out_location;
  char *out_body;
  size_t out_len;
} dash_req;

/* Runs fn(arg) on the loop thread (at once when on it). Returns 0, or -1
 * when the edge is stopping (fn did not run). */
int wr__dash_on_loop(dash_req *q, void (*fn)(void *arg), void *arg);

/* ---- dash_codec.c: parsers of outside input ------------------------------------------ */

/* The first value of |name| in urlencoded |data| ('+' is a space), decoded
 * into |out|. Returns its length, -1 when absent, -2 when malformed or too
 * long. */
int wr__dash_form_get(const char *data, size_t len, const char *name, char *out, size_t outsz);
/* Unix seconds of an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SSZ" (fractions
 * allowed). Returns 0 or -1. */
int wr__dash_parse_time(const char *s, int64_t *out);
/* Splits inspector header text ("Name: value\n" lines) into |out| (at most
 * |max|), leaving out redacted values and the fields the HTTP client sets
 * itself (Host, Content-Length, Connection, Transfer-Encoding) and other
 * hop-by-hop fields. Names and values point into |text|, which is modified
 * (NULs). Returns the count. */
size_t wr__dash_replay_headers(char *text, wr_http_header *out, size_t max);
/* Whether |s| is a canonical tunnel/route id (UUID) or account-style id:
 * [0-9a-fA-F-], 1..64 characters. */
int wr__dash_id_ok(const char *s);

/* ---- dash.c: the page frame -------------------------------------------------------- */

/* Starts a page: head (assets), navigation with |active| marked, the user
 * and a sign-out form, |title|, and the ?msg= / ?error= of a redirect. */
void wr__dash_begin(dash_req *q, wr_buf *b, const char *title, const char *active);
/* Ends and sends the page (200), freeing |b|. */
void wr__dash_send(dash_req *q, wr_buf *b);
/* A short page with one error message and |status|. */
void wr__dash_error(dash_req *q, int status, const char *msg);
/* 303 to |page| with ?msg= or ?error= (|text| escaped into the query). */
void wr__dash_redirect(dash_req *q, const char *page, const char *key, const char *text);
/* The hidden CSRF field of the session. */
void wr__dash_csrf(dash_req *q, wr_buf *b);
/* The API's answer to a call of the signed-in user: the "result" (borrowed
 * from *env, which the caller frees), or NULL with |err| (size |errlen|)
 * holding the API's message. */
json_t *wr__dash_api(dash_req *q, const char *method, const char *path, const char *query,
                     const char *body, json_t **env, char *err, size_t errlen);
/* Appends the string member |key| of |o| escaped ("" for a missing one). */
void wr__dash_jstr(wr_buf *b, json_t *o, const char *key);
/* Appends |tmpl| with each "{key}" replaced as wr__dash_jstr(b, o, key)
 * would, "{obj.key}" by the member |key| of the object member |obj|, and
 * "{@csrf}" by the form's CSRF field (wr__dash_csrf); the rest is copied
 * as it is (a '{' without a '}' after it too), in the same pieces as
 * appending each by hand. Keys are under 64 bytes. A failed append is
 * left to |b|, as with the other writers here (wr__dash_send warns of a
 * cut page). On the request's thread. */
void wr__dash_jfill(dash_req *q, wr_buf *b, json_t *o, const char *tmpl);
/* "3d 4h", "5m 2s": a duration in seconds. */
void wr__dash_duration(wr_buf *b, int64_t secs);

/* ---- the pages ------------------------------------------------------------------------ */

void wr__dash_tunnels(dash_req *q);
void wr__dash_routes(dash_req *q);
void wr__dash_devices(dash_req *q);
void wr__dash_access(dash_req *q);
void wr__dash_users(dash_req *q);
void wr__dash_audit(dash_req *q);
void wr__dash_traffic(dash_req *q);
void wr__dash_inspect(dash_req *q);
void wr__dash_stats_json(dash_req *q);

/* ---- dash_actions.c (POST, CSRF already checked) --------------------------------------- */

void wr__dash_tunnel_create(dash_req *q);
void wr__dash_tunnel_delete(dash_req *q);
void wr__dash_dns_create(dash_req *q);
void wr__dash_dns_delete(dash_req *q);
void wr__dash_ip_create(dash_req *q);
void wr__dash_ip_delete(dash_req *q);
void wr__dash_replay(dash_req *q);

#endif
