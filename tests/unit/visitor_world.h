/* The world shared by the visitor suites (test_visitor.c: requests through
 * the visitor front; test_visitor_limits.c: connection and rate limits), in
 * one process over loopback: a temp store (account, zone example.test,
 * tunnels t1 and t2, routes), the tunnel server on a QUIC endpoint, three
 * visitor fronts on TCP (|v| unlimited, |lv| and |rv| with small limits),
 * and a fake connector: a QUIC client that registers for t1
 * (connector/registration.h) and answers the edge's data streams itself,
 * choosing its behaviour by the request path. The libuv loop runs on a
 * second thread; the tests are visitors with blocking sockets on the main
 * thread. Linked into every unit test, like unit.c. */
#ifndef WR_UNIT_VISITOR_WORLD_H
#define WR_UNIT_VISITOR_WORLD_H
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "connector/registration.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "edge/visitor.h"
#include "edge/visitor_int.h"
#include "lib/buf.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/quic.h"
#include "proto/connect.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"
#include "unit.h"

#define BIG_SIZE (8u * 1024u * 1024u)
#define EARLY_BODY (300u * 1024u)

/* ---- what the fake connector saw (shared with the test thread) ----------------- */

#define SEEN_MAX_META 64
typedef struct seen {
  int count;             /* requests decoded */
  char dest[512];
  int type;
  size_t nmeta;
  char keys[SEEN_MAX_META][128];
  char vals[SEEN_MAX_META][512];
  uint8_t *raw;          /* preamble + ConnectRequest as received */
  size_t raw_len;
  uint8_t *body;         /* /echo: the body, once FIN arrived */
  size_t body_len;
  int body_done;
  uint64_t sunk;         /* /sink */
} seen;


/* One QUIC connection of the fake connector. Fields after |ep| are shared
 * with the test thread (under |mu|). */
#define MAX_FCONNS 3
typedef struct fconn {
  wr_quic_endpoint *ep;
  wr_quic_conn *conn;
  wr_registration *reg;
  uint8_t conn_index;
  int registered; /* 1 ok, -1 refused */
  int closed;     /* the edge closed the connection */
  int served;     /* data streams answered */
} fconn;

/* ---- the world ------------------------------------------------------------------ */

typedef struct fstream {
  struct fstream *next;
  int64_t sid;
  wr_buf in;
  int decoded;
  size_t body_off;
  char path[64];
  int got_fin;
  int responded;
  fconn *fc;
  uint64_t big_left;
  uint64_t big_off;
} fstream;

typedef struct world {
  uv_loop_t loop;
  pthread_t thread;
  uv_async_t stop, call;
  void (*call_fn)(void); /* run on the loop thread by |call| */
  int call_done;
  uv_timer_t reset_timer;
  wr_quic_conn *reset_conn;
  int64_t reset_sid;
  wr_tunnel_server *ts;
  wr_quic_endpoint *sep;
  struct sockaddr_storage edge_addr;
  wr_quic_tls *stls, *ctls;
  wr_credentials cred;
  wr_uuid connector_id;
  fconn fc[MAX_FCONNS];
  fconn *hang_fc; /* got a /hang request (under mu) */
  wr_visitor *v;
  int port;
  wr_visitor *lv, *rv; /* small limits: connections; request rate */
  int lport, rport;
  fstream *streams;
  wr_visitor_stats final_stats;
} world;

/* cmocka cannot fail a test from the loop thread: remember instead
 * (conn_failures, under mu). */
#define CHECK(x)                                                            \
  do {                                                                      \
    if (!(x)) {                                                             \
      fprintf(stderr, "%s:%d: fake connector check failed: %s\n", __FILE__, \
              __LINE__, #x);                                                \
      pthread_mutex_lock(&mu);                                              \
      conn_failures++;                                                      \
      pthread_mutex_unlock(&mu);                                            \
    }                                                                       \
  } while (0)
#define CHECK_EQ(a, b) CHECK((a) == (b))

/* ---- the visitor: blocking sockets --------------------------------------------- */

typedef struct client {
  int fd;
  uint8_t *buf;
  size_t len, cap;
  int eof;
} client;

typedef struct resp {
  int status;
  char head[8192];
  uint8_t *body;
  size_t body_len;
  int chunked, has_cl, conn_close;
  int complete; /* body framing ended properly (close-delimited: at EOF) */
} resp;

extern wr_store *store;
extern wr_tunnel t1, t2;
/* Shared between the loop thread and the test thread, under |mu|; |cv| is
 * broadcast on every change. */
extern pthread_mutex_t mu;
extern pthread_cond_t cv;
extern seen obs;
extern world w;
extern int conn_failures;

/* Group setup: the world, with fake connector connection 0 registered.
 * The teardown stops the loop, frees everything and fails if a stream was
 * left behind or a fake connector check failed (final_stats is then the
 * stats of |w.v|). */
int vis_group_setup(void **state);
int vis_group_teardown(void **state);
/* Dials the edge as fake connector connection |i| (loop thread). */
int fconn_start(int i, uint8_t conn_index);
/* Runs |fn| on the loop thread and waits for it. */
void on_loop(void (*fn)(void));
/* Waits (up to 5 s) until *flag (under mu) is non-zero; returns it. */
int wait_flag(const int *flag);

void client_open(client *cl);
void client_close(client *cl);
void client_send(client *cl, const void *d, size_t n);
void client_sends(client *cl, const char *s);
/* Reads more; returns bytes read, 0 at EOF (or reset), -1 on timeout. */
ssize_t client_fill(client *cl);
const char *find_header(const char *head, const char *name, char *val, size_t vlen);
/* Reads one response (skipping 100 Continue unless |want_interim|). */
int read_resp(client *cl, resp *r, int head_req, int want_interim);
void vis_resp_free(resp *r);
/* 1 once the server closed the connection (EOF within the timeout). */
int server_closed(client *cl);
int body_is(const resp *r, const char *s);
/* What the fake connector saw of the last request. */
const char *seen_meta(const char *key);
int seen_meta_count(const char *key);
/* One request on a fresh connection. */
void exchange(const char *req, resp *r, int head_req);
/* Reads the next response on |cl| into |r|, which must have status
 * |status|. */
void read_expect(client *cl, resp *r, int status);
/* Sends |req| on |cl|, then read_expect. */
void send_expect(client *cl, resp *r, const char *req, int status);
#endif
