/* The load generator of `make bench-scale` (bench/scale.py drives it).
 *
 *   scale_load connectors --edge HOST:PORT --ca FILE --creds-list FILE
 *                         [--ha N] [--per-tick N]
 *     Starts one connector per credentials file listed (one path a line),
 *     all in this one process and loop: libwarren's own wr_connector, so
 *     every connection is a real QUIC connection with the real registration
 *     RPC, exactly what `warren tunnel run` opens. Each serves the catch-all
 *     `http_status:200`, so the origin costs nothing and the figures are the
 *     edge's and the tunnels'. Connectors start |per-tick| at a time every
 *     10 ms (the edge caps half-open handshakes: a thousand at once would
 *     only measure its Retry path). Prints "started N" when all were
 *     started and runs until SIGINT/SIGTERM, then unregisters them all.
 *
 *   scale_load visitors --target HOST:PORT --hosts-file FILE --conns N
 *                       [--seconds S] [--warmup S] [--path P]
 *     Opens N keep-alive HTTP/1.1 connections (paced, 250 every 10 ms), each
 *     with one GET in flight at a time, cycling through the hostnames of
 *     the file (connection i starts at host i mod H). Counts every answer
 *     that is not a 200, and every connection error or close, as a failure.
 *     After the warm-up it measures for S seconds and prints one JSON line:
 *     {"conns":…, "connected":…, "requests":…, "failures":…, "rps":…,
 *      "p50_ms":…, "p99_ms":…, "max_ms":…}.
 *
 * Both raise RLIMIT_NOFILE to its hard limit first. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "connector/connector.h"
#include "connector/ingress.h"
#include "lib/config.h"
#include "lib/credentials.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "proto/http1.h"

static void die(const char *what) {
  fprintf(stderr, "scale_load: %s\n", what);
  exit(2);
}

static void raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

/* Lines of |path|, without their newlines and without empty lines. */
static char **read_lines(const char *path, size_t *n) {
  FILE *f = fopen(path, "r");
  if (!f) die(path);
  char **v = NULL, line[4096];
  size_t cap = 0;
  *n = 0;
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 64;
      v = realloc(v, cap * sizeof(*v));
      if (!v) die("out of memory");
    }
    v[(*n)++] = strdup(line);
  }
  fclose(f);
  if (*n == 0) die("empty list");
  return v;
}

static void parse_addr(const char *s, struct sockaddr_storage *out) {
  char err[256];
  if (wr_addr_resolve("address", s, SOCK_DGRAM, 1, out, 1, err, sizeof(err)) <= 0) die(err);
}

/* ---- connectors ------------------------------------------------------------ */

typedef struct fleet {
  uv_loop_t *loop;
  char **creds_paths;
  size_t n, started, stopped;
  unsigned per_tick, ha;
  wr_credentials *creds;
  wr_connector **conns;
  wr_ingress *ingress;
  struct sockaddr_storage edge;
  const char *ca;
  uv_timer_t tick;
  uv_signal_t sigint, sigterm;
  int stopping;
} fleet;

static void on_connector_stopped(void *user) {
  fleet *f = user;
  if (++f->stopped == f->started) uv_stop(f->loop);
}

static void start_some(uv_timer_t *t) {
  fleet *f = t->data;
  for (unsigned k = 0; k < f->per_tick && f->started < f->n && !f->stopping; k++) {
    size_t i = f->started;
    char err[512];
    if (wr_credentials_load(f->creds_paths[i], &f->creds[i], err, sizeof(err)) != WR_OK) die(err);
    wr_connector_options o = {
        .edge = {.cred = &f->creds[i], .edges = &f->edge, .nedges = 1, .ha_connections = f->ha,
                 .ca_file = f->ca},
        .ingress = f->ingress, .grace_ms = 1000,
        .on_stopped = on_connector_stopped, .user = f,
    };
    if (wr_connector_new(f->loop, &o, &f->conns[i], err, sizeof(err)) != WR_OK) die(err);
    f->started++;
  }
  if (f->started == f->n || f->stopping) {
    uv_timer_stop(&f->tick);
    printf("started %zu\n", f->started);
    fflush(stdout);
  }
}

static void on_fleet_signal(uv_signal_t *s, int signum) {
  fleet *f = s->data;
  if (f->stopping) return;
  f->stopping = 1;
  uv_timer_stop(&f->tick);
  uv_close((uv_handle_t *)&f->sigint, NULL);
  uv_close((uv_handle_t *)&f->sigterm, NULL);
  if (f->started == 0) uv_stop(f->loop);
  for (size_t i = 0; i < f->started; i++) wr_connector_shutdown(f->conns[i]);
}

static int run_connectors(int argc, char **argv) {
  fleet f = {.per_tick = 20, .ha = 1};
  const char *edge = NULL, *list = NULL;
  static const struct option longopts[] = {
      {"edge", required_argument, 0, 'e'},     {"ca", required_argument, 0, 'c'},
      {"creds-list", required_argument, 0, 'l'}, {"ha", required_argument, 0, 'h'},
      {"per-tick", required_argument, 0, 't'}, {0, 0, 0, 0}};
  for (int ch; (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
    switch (ch) {
    case 'e': edge = optarg; break;
    case 'c': f.ca = optarg; break;
    case 'l': list = optarg; break;
    case 'h': f.ha = (unsigned)atoi(optarg); break;
    case 't': f.per_tick = (unsigned)atoi(optarg); break;
    default: die("usage: connectors --edge HOST:PORT --ca FILE --creds-list FILE");
    }
  }
  if (!edge || !list || !f.ca || f.per_tick == 0 || f.ha == 0) die("connectors: missing option");
  wr_log_set_level(WR_LOG_WARN);
  parse_addr(edge, &f.edge);
  f.creds_paths = read_lines(list, &f.n);
  f.creds = calloc(f.n, sizeof(*f.creds));
  f.conns = calloc(f.n, sizeof(*f.conns));
  if (!f.creds || !f.conns) die("out of memory");

  static const char rules[] = "ingress:\n  - service: http_status:200\n";
  wr_config *cfg = NULL;
  char err[512];
  if (wr_config_parse(rules, sizeof(rules) - 1, "scale", &cfg, err, sizeof(err)) != WR_OK ||
      wr_ingress_parse(cfg, &f.ingress, err, sizeof(err)) != WR_OK)
    die(err);

  f.loop = uv_default_loop();
  uv_timer_init(f.loop, &f.tick);
  f.tick.data = &f;
  uv_timer_start(&f.tick, start_some, 0, 10);
  uv_signal_init(f.loop, &f.sigint);
  uv_signal_init(f.loop, &f.sigterm);
  f.sigint.data = f.sigterm.data = &f;
  uv_signal_start(&f.sigint, on_fleet_signal, SIGINT);
  uv_signal_start(&f.sigterm, on_fleet_signal, SIGTERM);
  uv_run(f.loop, UV_RUN_DEFAULT);
  for (size_t i = 0; i < f.started; i++) wr_connector_free(f.conns[i]);
  uv_close((uv_handle_t *)&f.tick, NULL);
  uv_run(f.loop, UV_RUN_DEFAULT);
  wr_ingress_free(f.ingress);
  wr_config_free(cfg);
  printf("stopped %zu\n", f.stopped);
  return 0;
}

/* ---- visitors -------------------------------------------------------------- */

#define RBUF 8192

typedef struct crowd crowd;

typedef struct visitor {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  /* |write| is still libuv's: its callback has not run. A response can
   * be read before that (libuv polls again within one loop iteration when
   * more than 1,024 sockets are ready), and reusing the request then
   * corrupts libuv's queue: the next request waits for the callback. */
  int writing, send_waiting;
  crowd *cr;
  size_t host; /* index of the next host */
  uint64_t sent_ns;
  uint8_t rbuf[RBUF];
  size_t rlen;
  int head_done, chunked;
  wr_http1_chunked chunks;
  uint64_t body_left;
  int open;
} visitor;

struct crowd {
  uv_loop_t *loop;
  struct sockaddr_storage target;
  char **hosts;
  size_t nhosts;
  char **reqs; /* the request for each host */
  size_t *req_lens;
  visitor *v;
  size_t n, opened, connected;
  uv_timer_t pace, phase;
  int measuring, done;
  uint64_t requests, failures;
  uint32_t *lat_us;
  size_t nlat, latcap;
  uint64_t t_measure_ns;
};

static void visitor_send(visitor *v);

static void record(crowd *cr, uint64_t ns) {
  if (!cr->measuring) return;
  cr->requests++;
  if (cr->nlat == cr->latcap) {
    cr->latcap = cr->latcap ? cr->latcap * 2 : 1 << 16;
    cr->lat_us = realloc(cr->lat_us, cr->latcap * sizeof(*cr->lat_us));
    if (!cr->lat_us) die("out of memory");
  }
  cr->lat_us[cr->nlat++] = (uint32_t)(ns / 1000);
}

static void fail(visitor *v, const char *why) {
  crowd *cr = v->cr;
  /* Failures count in every phase: a connection lost in the warm-up is not
   * there to be measured. */
  if (++cr->failures <= 5) fprintf(stderr, "scale_load: failure: %s\n", why);
  if (v->open) {
    v->open = 0;
    uv_close((uv_handle_t *)&v->tcp, NULL);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  visitor *v = h->data;
  b->base = (char *)v->rbuf + v->rlen;
  b->len = RBUF - v->rlen;
}

/* Drops the first |n| bytes of rbuf. */
static void consume(visitor *v, size_t n) {
  memmove(v->rbuf, v->rbuf + n, v->rlen - n);
  v->rlen -= n;
}

/* Consumes what rbuf holds of the current response's body; 1 when it is
 * complete, 0 for more, -1 on a framing error. */
static int take_body(visitor *v) {
  if (!v->chunked) {
    size_t take = v->rlen < v->body_left ? v->rlen : (size_t)v->body_left;
    v->body_left -= take;
    consume(v, take);
    return v->body_left == 0;
  }
  while (v->rlen && !v->chunks.done) {
    size_t used = 0, off, len;
    if (wr_http1_chunked_decode(&v->chunks, v->rbuf, v->rlen, &used, &off, &len) != WR_OK) return -1;
    if (used == 0) break;
    consume(v, used);
  }
  return v->chunks.done;
}

/* Consumes what rbuf holds of the current response; 1 when it is complete. */
static int take_response(visitor *v, const char **why) {
  if (!v->head_done) {
    wr_http_header hdrs[64];
    wr_http1_head head;
    size_t used = 0;
    int rv = wr_http1_parse_response(v->rbuf, v->rlen, "GET", NULL, hdrs, 64, &head, &used);
    if (rv == WR_AGAIN) return 0;
    if (rv != WR_OK) return *why = "malformed response", -1;
    if (head.status != 200) {
      static char msg[64];
      snprintf(msg, sizeof(msg), "status %d", head.status);
      return *why = msg, -1;
    }
    if (head.body == WR_HTTP1_BODY_EOF || !head.keep_alive) return *why = "connection: close", -1;
    v->head_done = 1;
    v->chunked = head.body == WR_HTTP1_BODY_CHUNKED;
    if (v->chunked) wr_http1_chunked_init(&v->chunks);
    v->body_left = head.body == WR_HTTP1_BODY_LENGTH ? head.content_length : 0;
    consume(v, used);
  }
  int rv = take_body(v);
  if (rv < 0) return *why = "bad chunked body", -1;
  if (rv == 0) return 0;
  if (v->rlen) return *why = "bytes after the response", -1;
  return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  visitor *v = s->data;
  if (nread < 0) {
    fail(v, nread == UV_EOF ? "closed by the edge" : uv_strerror((int)nread));
    return;
  }
  v->rlen += (size_t)nread;
  const char *why = NULL;
  int rv = take_response(v, &why);
  if (rv < 0) {
    fail(v, why);
    return;
  }
  if (rv == 0) {
    if (v->rlen == RBUF) fail(v, "response head too large");
    return;
  }
  record(v->cr, uv_hrtime() - v->sent_ns);
  if (!v->cr->done) visitor_send(v);
}

static void on_written(uv_write_t *w, int status) {
  visitor *v = w->data;
  v->writing = 0;
  if (status < 0) {
    fail(v, uv_strerror(status));
    return;
  }
  if (v->send_waiting && v->open && !v->cr->done) {
    v->send_waiting = 0;
    visitor_send(v);
  }
}

static void visitor_send(visitor *v) {
  crowd *cr = v->cr;
  if (v->writing) {
    v->send_waiting = 1;
    return;
  }
  size_t h = v->host;
  v->host = (v->host + 1) % cr->nhosts;
  v->head_done = 0;
  v->sent_ns = uv_hrtime();
  uv_buf_t b = uv_buf_init(cr->reqs[h], (unsigned)cr->req_lens[h]);
  v->write.data = v;
  v->writing = 1;
  if (uv_write(&v->write, (uv_stream_t *)&v->tcp, &b, 1, on_written) != 0) {
    v->writing = 0;
    fail(v, "write");
  }
}

static void on_connected(uv_connect_t *c, int status) {
  visitor *v = c->data;
  if (status < 0) {
    fail(v, uv_strerror(status));
    return;
  }
  v->cr->connected++;
  uv_read_start((uv_stream_t *)&v->tcp, on_alloc, on_read);
  visitor_send(v);
}

static void open_some(uv_timer_t *t) {
  crowd *cr = t->data;
  for (int k = 0; k < 250 && cr->opened < cr->n; k++) {
    visitor *v = &cr->v[cr->opened];
    v->cr = cr;
    v->host = cr->opened % cr->nhosts;
    uv_tcp_init(cr->loop, &v->tcp);
    uv_tcp_nodelay(&v->tcp, 1);
    v->tcp.data = v->connect.data = v;
    v->open = 1;
    cr->opened++;
    if (uv_tcp_connect(&v->connect, &v->tcp, (struct sockaddr *)&cr->target, on_connected) != 0)
      fail(v, "connect");
  }
  if (cr->opened == cr->n) uv_timer_stop(t);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_ms(const crowd *cr, double p) {
  if (!cr->nlat) return 0;
  size_t i = (size_t)(p * (double)(cr->nlat - 1));
  return cr->lat_us[i] / 1000.0;
}

static void on_phase(uv_timer_t *t) {
  crowd *cr = t->data;
  if (!cr->measuring) {
    cr->measuring = 1;
    cr->t_measure_ns = uv_hrtime();
    return;
  }
  cr->done = 1;
  cr->measuring = 0;
  double secs = (double)(uv_hrtime() - cr->t_measure_ns) / 1e9;
  uv_timer_stop(t);
  qsort(cr->lat_us, cr->nlat, sizeof(*cr->lat_us), cmp_u32);
  size_t open = 0;
  for (size_t i = 0; i < cr->n; i++) open += cr->v[i].open;
  printf("{\"conns\": %zu, \"connected\": %zu, \"open_at_end\": %zu, \"requests\": %" PRIu64
         ", \"failures\": %" PRIu64 ", \"seconds\": %.2f, \"rps\": %.0f, \"p50_ms\": %.2f, "
         "\"p99_ms\": %.2f, \"max_ms\": %.2f}\n",
         cr->n, cr->connected, open, cr->requests, cr->failures, secs,
         (double)cr->requests / secs, pct_ms(cr, 0.50), pct_ms(cr, 0.99),
         cr->nlat ? cr->lat_us[cr->nlat - 1] / 1000.0 : 0.0);
  fflush(stdout);
  for (size_t i = 0; i < cr->n; i++)
    if (cr->v[i].open) {
      cr->v[i].open = 0;
      uv_close((uv_handle_t *)&cr->v[i].tcp, NULL);
    }
  uv_close((uv_handle_t *)&cr->pace, NULL);
  uv_close((uv_handle_t *)&cr->phase, NULL);
}

static int run_visitors(int argc, char **argv) {
  crowd cr = {0};
  const char *target = NULL, *hosts = NULL, *path = "/";
  double seconds = 10, warmup = 3;
  static const struct option longopts[] = {
      {"target", required_argument, 0, 't'}, {"hosts-file", required_argument, 0, 'f'},
      {"conns", required_argument, 0, 'n'},  {"seconds", required_argument, 0, 's'},
      {"warmup", required_argument, 0, 'w'}, {"path", required_argument, 0, 'p'},
      {0, 0, 0, 0}};
  for (int ch; (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
    switch (ch) {
    case 't': target = optarg; break;
    case 'f': hosts = optarg; break;
    case 'n': cr.n = (size_t)strtoul(optarg, NULL, 10); break;
    case 's': seconds = atof(optarg); break;
    case 'w': warmup = atof(optarg); break;
    case 'p': path = optarg; break;
    default: die("usage: visitors --target HOST:PORT --hosts-file FILE --conns N");
    }
  }
  if (!target || !hosts || cr.n == 0 || seconds <= 0) die("visitors: missing option");
  parse_addr(target, &cr.target);
  cr.hosts = read_lines(hosts, &cr.nhosts);
  cr.reqs = calloc(cr.nhosts, sizeof(*cr.reqs));
  cr.req_lens = calloc(cr.nhosts, sizeof(*cr.req_lens));
  cr.v = calloc(cr.n, sizeof(*cr.v));
  if (!cr.reqs || !cr.req_lens || !cr.v) die("out of memory");
  for (size_t i = 0; i < cr.nhosts; i++) {
    int len = asprintf(&cr.reqs[i], "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: scale_load\r\n\r\n",
                       path, cr.hosts[i]);
    if (len < 0) die("out of memory");
    cr.req_lens[i] = (size_t)len;
  }
  cr.loop = uv_default_loop();
  uv_timer_init(cr.loop, &cr.pace);
  uv_timer_init(cr.loop, &cr.phase);
  cr.pace.data = cr.phase.data = &cr;
  uv_timer_start(&cr.pace, open_some, 0, 10);
  uv_timer_start(&cr.phase, on_phase, (uint64_t)(warmup * 1000), (uint64_t)(seconds * 1000));
  uv_run(cr.loop, UV_RUN_DEFAULT);
  return cr.failures ? 1 : 0;
}

int main(int argc, char **argv) {
  wr_malloc_tune(); /* as warren and warren-edge do */
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  if (argc >= 2 && strcmp(argv[1], "connectors") == 0) return run_connectors(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "visitors") == 0) return run_visitors(argc - 1, argv + 1);
  fprintf(stderr, "usage: scale_load connectors|visitors OPTIONS (see bench/scale_load.c)\n");
  return 2;
}
