/* The fixture shared by the proxy suites (test_proxy.c: HTTP requests and
 * origins; test_proxy_stream.c: WebSocket, large transfers, backpressure;
 * test_proxy_tcp.c: TCP pipes): in-test HTTP/1.1 origins on TCP, a unix
 * socket and TLS, raw TCP origins (echo, banner, record), a QUIC server
 * playing the edge and the connector's wr_proxy on the client side, all in
 * one libuv loop (unit_qpair). Linked into every unit test, like unit.c. */
#ifndef WR_UNIT_PROXY_FIXTURE_H
#define WR_UNIT_PROXY_FIXTURE_H
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "connector/ingress.h"
#include "connector/proxy.h"
#include "edge/pki.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/quic.h"
#include "net/tls.h"
#include "proto/connect.h"
#include "proto/http1.h"
#include "proto/httpmeta.h"
#include "proto/preamble.h"
#include "quic_pair.h"
#include "unit.h"

/* ---- test origins ------------------------------------------------------------ */

enum origin_mode {
  M_INFO = 0,  /* 200, a few headers (one repeated), "hello from <name>" */
  M_CHUNKED,   /* chunked response with a trailer */
  M_DIE,       /* Content-Length 100, 10 bytes, then EOF */
  M_WS,        /* 101 for websocket requests, then echo */
  M_BIG,       /* Content-Length big_len of a pattern, written with backpressure */
  M_SINK,      /* counts and checks the request body; answers "<count> <ok>" */
  M_HANG,      /* never answers */
  M_EOF_BODY,  /* Connection: close, body until EOF */
  M_STALL,     /* stops reading after the request head (a slow origin) */
  M_ONCE,      /* like M_INFO, but drops the connection at its 2nd request */
  /* Raw TCP origins (no HTTP); each records what it reads in |raw|. */
  M_ECHO,      /* echoes; its EOF follows ours */
  M_BANNER,    /* sends "banner", shuts down its side, keeps reading */
  M_RECORD     /* only records */
};

typedef struct ctx ctx;
typedef struct torigin torigin;

typedef struct tconn {
  torigin *o;
  wr_conn *conn;
  wr_buf in;
  int state; /* 0 head, 1 body, 2 websocket */
  wr_http_header hdrs[64];
  wr_http1_head head;
  int body_mode;
  uint64_t body_left;
  wr_http1_chunked ch;
  int head_req;
  uint64_t big_sent;
  int pumping;
  int served;
  struct tconn *next;
} tconn;

struct torigin {
  ctx *c;
  const char *name;
  int mode;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  int is_unix;
  wr_tls_creds *tls;
  uint16_t port;
  int accepts, eofs, closes, requests;
  wr_buf last_head; /* the last request head as received */
  wr_buf last_body; /* its body (first MiB) */
  wr_buf raw;       /* every byte received (first MiB) */
  uint64_t body_count;
  int body_ok;
  uint64_t big_len;
  tconn *conns;
};

#define NORIGINS 6
enum { O_APP = 0, O_SECOND, O_UNIX, O_TLS, O_ALT, O_ALT2 };

typedef struct estream {
  ctx *c;
  int64_t sid;
  wr_buf resp;
  int got_fin, got_reset, closed;
  /* generated body: |gen_total| bytes of the pattern, then FIN if gen_fin */
  uint64_t gen_total, gen_sent;
  int gen_fin, generating;
} estream;

struct ctx {
  unit_qpair q;
  int (*done)(ctx *c);
  estream *watch;
  wr_quic_conn *sconn;
  int s_ready;
  int edge_hold; /* the edge does not return stream credit (a slow visitor) */
  size_t want_len; /* for the suites' own run_until conditions */
  int norigins;    /* origins started (ctx_stop stops these) */
  wr_proxy *proxy;
  wr_ingress *ing;
  torigin origins[NORIGINS];
};

/* A decoded ConnectResponse and the body after it. */
typedef struct resp {
  wr_connect_response r;
  const uint8_t *body;
  size_t body_len;
} resp;

/* Group setup: the edge's PKI (unit_pki) and, in its directory, an origin CA
 * and a leaf for "localhost" only (https://127.0.0.1 fails verification).
 * The teardown removes the directory. */
int proxy_group_setup(void **state);
int proxy_group_teardown(void **state);

/* The byte pattern of generated bodies: byte |i|. */
uint8_t pattern(uint64_t i);
/* Starts origins (by mode), the QUIC pair and the proxy with ingress rules
 * pointing at them; ctx_stop frees it all and asserts no origin connection
 * is left. */
void ctx_start(ctx *c, int app_mode);
void ctx_stop(ctx *c);
/* Per-test fixture (UNIT_FIXTURE): the setup callocs a ctx, ctx_starts it
 * with the named app mode and makes it *state; ctx_teardown ctx_stops and
 * frees it. Each fails the test (cmocka assert) as ctx_start/ctx_stop do. */
int ctx_setup_info(void **state);     /* M_INFO */
int ctx_setup_sink(void **state);     /* M_SINK */
int ctx_setup_chunked(void **state);  /* M_CHUNKED */
int ctx_setup_eof_body(void **state); /* M_EOF_BODY */
int ctx_setup_die(void **state);      /* M_DIE */
int ctx_setup_once(void **state);     /* M_ONCE */
int ctx_teardown(void **state);
/* An origin to start: its name (X-Origin), mode (M_*), whether it listens
 * on sock_path (unix) and whether it speaks TLS. */
typedef struct origin_spec {
  const char *name;
  int mode, is_unix, tls;
} origin_spec;
/* ctx_start in steps, for other origins and ingress: ctx_begin with the
 * origins to start (|origins[i]| is c->origins[i]), then ctx_proxy_start with
 * the config (ingress rules) and the connector ID (NULL: none). */
void ctx_begin(ctx *c, const origin_spec *origins, size_t n);
void ctx_proxy_start(ctx *c, const char *yaml, const wr_uuid *connector_id);
/* Opens a data stream and writes preamble + ConnectRequest (+ |body|).
 * |kv| is NULL-terminated "Name", "value" pairs of request headers. */
estream *edge_send(ctx *c, int type, const char *dest, const char *method, const char *host,
                   const char *const *kv, const void *body, size_t body_len, int fin);
/* Opens a data stream, writing nothing yet. */
estream *edge_open(ctx *c);
/* Opens a data stream and writes |d| as is. */
estream *edge_raw(ctx *c, const uint8_t *d, size_t n, int fin);
/* Opens a data stream, writes the captured vector |name| (unit_read_vector)
 * as the whole stream and waits until it closed (wait_closed). */
estream *edge_vector(ctx *c, const char *name);
/* Writes all of |d| (asserts flow control took it all). */
void edge_write(estream *e, const void *d, size_t n, int fin);
/* Writes more of |e|'s generated body, as far as flow control allows. */
void gen_more(estream *e);
void es_free(estream *e);
/* Conditions for run_until. */
int proxy_idle(ctx *c);
int watch_reset(ctx *c);
/* Runs the loop until |e| closed and the proxy is idle. */
void wait_closed(ctx *c, estream *e);
/* Runs the loop until |e| is reset, then until it closed. */
void wait_reset(ctx *c, estream *e);
void decode_resp(const estream *e, resp *out);
/* A GET of |dest| for |host| (no headers or body) through edge_send,
 * wait_closed, then decode_resp into |r|: the stream, for es_free. */
estream *get_resp(ctx *c, const char *dest, const char *host, resp *r);
/* decode_resp over |n| bytes a stream would have received (a vector). */
void decode_bytes(const uint8_t *d, size_t n, resp *out);
/* HttpStatus (the first entry) is |status| and the body is |body|. */
void assert_resp(const resp *r, const char *status, const char *body);
/* decode_resp of |e|: its HttpStatus (the first entry) is |status|; the
 * decoded response is freed again. */
void assert_stream_status(const estream *e, const char *status);
/* decode_resp of |e| is assert_resp(|status|, |body|); freed again. */
void assert_stream_resp(const estream *e, const char *status, const char *body);
const char *meta_get(const resp *r, const char *key);
int meta_count(const resp *r, const char *key);
void resp_free(resp *r);
/* 1 if the last request head |o| received contains |line|. */
int head_has(const torigin *o, const char *line);
/* The last request head |o| received contains each of |lines| (NULL-ended)
 * when |want| is 1, none of them when it is 0. */
void assert_head(const torigin *o, int want, const char *const *lines);
#define ASSERT_HEAD_HAS(o, ...) assert_head((o), 1, (const char *const[]){__VA_ARGS__, NULL})
#define ASSERT_HEAD_LACKS(o, ...) assert_head((o), 0, (const char *const[]){__VA_ARGS__, NULL})
#endif
