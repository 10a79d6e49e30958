/* LISTEN/NOTIFY on the loop; see db_notify.h. */
#include "edge/db_notify.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/owner.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 30000

struct wr_db_notify {
  uv_loop_t *loop;
  char *conninfo;
  char *channel;
  wr_db_notify_fn fn;
  void *user;
  PGconn *conn;        /* listening; NULL while down */
  uv_poll_t poll;
  int polling;         /* |poll| initialised and not yet closed */
  uv_timer_t retry;
  uint64_t backoff_ms;
  uv_work_t work;
  int working;         /* a connection attempt runs on the pool */
  PGconn *made;        /* its result */
  char err[256];
  int stopping;
  wr_owner owner;      /* holds the retry timer, the poll and a connection attempt */
  int ever_up;
  wr_db_notify_stats st;
};

static void release(wr_owner *o) {
  wr_db_notify *n = WR_OWNER_OBJ(o, wr_db_notify, owner);
  if (n->made) PQfinish(n->made);
  free(n->conninfo);
  free(n->channel);
  free(n);
}

/* ---- connecting, on the pool ------------------------------------------------------ */

static void connect_work(uv_work_t *w) {
  wr_db_notify *n = w->data;
  char sql[128];
  PGconn *c = PQconnectdb(n->conninfo);
  n->made = NULL;
  if (!c || PQstatus(c) != CONNECTION_OK) {
    snprintf(n->err, sizeof(n->err), "%s", c ? PQerrorMessage(c) : "out of memory");
    PQfinish(c);
    return;
  }
  snprintf(sql, sizeof(sql), "LISTEN %s", n->channel);
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) snprintf(n->err, sizeof(n->err), "%s", PQerrorMessage(c));
  PQclear(r);
  if (!ok || PQsetnonblocking(c, 1) != 0) {
    if (ok) snprintf(n->err, sizeof(n->err), "cannot make the connection non-blocking");
    PQfinish(c);
    return;
  }
  n->made = c;
}

static void start_connect(wr_db_notify *n);
static void on_readable(uv_poll_t *p, int status, int events);

static void on_retry(uv_timer_t *t) { start_connect(t->data); }

static void schedule_retry(wr_db_notify *n) {
  n->st.failures++;
  uv_timer_start(&n->retry, on_retry, n->backoff_ms, 0);
  n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
}

static void connect_done(uv_work_t *w, int status) {
  wr_db_notify *n = w->data;
  int stopped = n->stopping;
  n->working = 0;
  wr_owner_drop(&n->owner); /* the attempt; frees |n| when it was stopped meanwhile */
  if (stopped) return;
  if (status != 0 || !n->made) {
    size_t l = strcspn(n->err, "\n");
    n->err[l] = '\0';
    wr_warn("store notifications: cannot listen (%s); retrying in %llu ms", n->err,
            (unsigned long long)n->backoff_ms);
    schedule_retry(n);
    return;
  }
  /* The attempt's hold is dropped above and the retry timer holds one:
   * another hold is the previous connection's poll, still closing. */
  if (n->owner.pending > 1) {
    PQfinish(n->made);
    n->made = NULL;
    schedule_retry(n);
    return;
  }
  n->conn = n->made;
  n->made = NULL;
  if (uv_poll_init_socket(n->loop, &n->poll, PQsocket(n->conn)) != 0) {
    PQfinish(n->conn);
    n->conn = NULL;
    schedule_retry(n);
    return;
  }
  n->poll.data = n;
  n->polling = 1;
  wr_owner_hold(&n->owner);
  uv_poll_start(&n->poll, UV_READABLE, on_readable);
  n->backoff_ms = BACKOFF_FIRST_MS;
  n->st.connects++;
  n->st.up = 1;
  wr_info("store notifications: listening on channel %s", n->channel);
  /* Whatever changed while nobody listened is unknown: reload all. */
  if (n->ever_up) n->fn(n->user, NULL);
  n->ever_up = 1;
}

static void start_connect(wr_db_notify *n) {
  if (n->stopping || n->working) return;
  n->working = 1;
  wr_owner_hold(&n->owner);
  n->work.data = n;
  n->err[0] = '\0';
  if (uv_queue_work(n->loop, &n->work, connect_work, connect_done) != 0) {
    n->working = 0;
    wr_owner_drop(&n->owner);
    schedule_retry(n);
  }
}

/* ---- listening, on the loop ----------------------------------------------------------- */

static void lost(wr_db_notify *n) {
  wr_warn("store notifications: the connection was lost; reconnecting");
  uv_poll_stop(&n->poll);
  wr_owner_close_handle(&n->owner, (uv_handle_t *)&n->poll);
  n->polling = 0;
  PQfinish(n->conn);
  n->conn = NULL;
  n->st.up = 0;
  schedule_retry(n);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  wr_db_notify *n = p->data;
  (void)events;
  if (n->stopping || !n->conn) return;
  if (status < 0 || !PQconsumeInput(n->conn) || PQstatus(n->conn) != CONNECTION_OK) {
    lost(n);
    return;
  }
  PGnotify *m;
  while ((m = PQnotifies(n->conn)) != NULL) {
    n->st.received++;
    n->fn(n->user, m->extra ? m->extra : "");
    PQfreemem(m);
    if (n->stopping) return; /* the callback stopped us */
  }
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static int is_ident(const char *s) {
  if (!s || !*s || strlen(s) > 63 || isdigit((unsigned char)*s)) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

int wr_db_notify_start(uv_loop_t *loop, const char *conninfo, const char *channel,
                       wr_db_notify_fn fn, void *user, wr_db_notify **out) {
  *out = NULL;
  if (!loop || !conninfo || !fn || !is_ident(channel)) return WR_ERR_INVAL;
  wr_db_notify *n = wr_xcalloc(1, sizeof(*n));
  n->loop = loop;
  n->conninfo = wr_xstrdup(conninfo);
  n->channel = wr_xstrdup(channel);
  n->fn = fn;
  n->user = user;
  n->backoff_ms = BACKOFF_FIRST_MS;
  wr_owner_init(&n->owner, release);
  wr_owner_timer_init(&n->owner, loop, &n->retry, n);
  start_connect(n);
  *out = n;
  return WR_OK;
}

const wr_db_notify_stats *wr_db_notify_get_stats(const wr_db_notify *n) { return &n->st; }

void wr_db_notify_free(wr_db_notify *n) {
  if (!n || n->stopping) return;
  n->stopping = 1;
  if (n->polling) {
    uv_poll_stop(&n->poll);
    wr_owner_close_handle(&n->owner, (uv_handle_t *)&n->poll);
    n->polling = 0;
  }
  if (n->conn) PQfinish(n->conn);
  n->conn = NULL;
  wr_owner_close_handle(&n->owner, (uv_handle_t *)&n->retry);
  wr_owner_close(&n->owner); /* frees |n| once the handles closed and the attempt ended */
}
