/* latency: open-loop, fixed-rate HTTP/1.1 latency for `make bench`.
 *
 *   latency -p PORT [-H HOST] [-u PATH] [-c CONNS] [-r RATE] [-d SECONDS] [-w WARMUP]
 *
 * Why open loop: wrk is a closed loop (each connection sends its next request
 * when the previous answer arrives). At saturation its latency is then only
 * connections / throughput (Little's law), so "p99 over direct" restates the
 * throughput gap; and a stalled server also stalls the senders, so the
 * requests that would have waited during the stall are never sent and never
 * counted ("coordinated omission"). Here request i is due at t0 + i / RATE
 * whatever happened to the others: it goes out on the next idle connection
 * (keep-alive, one request in flight each), waits in a FIFO queue when all are
 * busy, and its latency runs from its *due* time to the last byte of its
 * response (as wrk2 does). At a rate both paths sustain, p99(path) - p99(direct)
 * is the latency the path adds; above a path's capacity latencies grow without
 * bound.
 *
 * One thread, epoll, nonblocking sockets, 127.0.0.1 only. A timerfd armed at
 * absolute CLOCK_MONOTONIC times wakes the loop at each due time with
 * sub-millisecond precision (epoll_wait's own timeout has 1 ms steps).
 * Responses need a Content-Length (nginx always sends one); chunked or missing
 * length, a bad status line, a close or a socket error count as an error, drop
 * the request in flight and reconnect the connection.
 *
 * Prints one JSON line. sent, completed, non2xx and the latencies are those of
 * the requests due after the warm-up; errors counts every failure of the run;
 * achieved_rps is responses completed inside the measured window / its length.
 * After the last due time it waits up to 5 s for answers; requests still
 * unanswered then ("unfinished") enter the distribution with the time they
 * had waited so far (a lower bound), so an overload does not hide them.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o latency latency.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000ull
#define HEAD_MAX 8192
#define DRAIN_NS (5 * NS)        /* wait for answers after the last due time */
#define RETRY_NS (NS / 10)       /* delay before retrying a failed connect */
#define MAX_REQUESTS 50000000ull /* measured requests (8 bytes each) */

enum { DOWN, CONNECTING, IDLE, BUSY };

struct conn {
  int fd, state, want_out, close_after, status;
  uint64_t req, retry_at; /* request in flight (BUSY); reconnect time (DOWN) */
  size_t woff, hlen;      /* request bytes written; head bytes read */
  long long body_left;    /* -1 while the head is read */
  char head[HEAD_MAX];
};

static struct sockaddr_in addr;
static char request[4096];
static size_t request_len;
static int ep, nconns;
static struct conn *conns;
static double rate;
/* Requests [next_send, sched) are due and queued; [0, n_warm) are warm-up. */
static uint64_t t0, n_warm, n_total, sched, next_send, n_busy, win_start, win_end;
static uint64_t sent, completed, errors, non2xx, unfinished, in_window, n_lat;
static uint64_t *lat; /* latencies (ns) of measured requests */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}
/* Computed from i (not accumulated), so the schedule does not drift. */
static uint64_t due(uint64_t i) { return t0 + (uint64_t)((double)i * 1e9 / rate); }
static uint64_t ceil_u64(double x) { return (uint64_t)x + ((double)(uint64_t)x < x); }

static void die(const char *what) {
  fprintf(stderr, "latency: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void watch(struct conn *c, int op, uint32_t events) {
  struct epoll_event e = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, op, c->fd, &e) < 0) die("epoll_ctl");
}

static void conn_open(struct conn *c, uint64_t now) {
  int one = 1;
  c->want_out = 0;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r = connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
  c->state = r == 0 ? IDLE : CONNECTING;
  if (r == 0 || errno == EINPROGRESS) {
    watch(c, EPOLL_CTL_ADD, r == 0 ? EPOLLIN : EPOLLOUT);
  } else {
    close(c->fd);
    c->fd = -1;
    c->state = DOWN;
    c->retry_at = now + RETRY_NS;
    errors++;
  }
}

/* Closes (dropping any request in flight); the main loop reconnects it at
 * once, or after RETRY_NS when the connect itself failed. */
static void conn_close(struct conn *c, uint64_t now, int error) {
  if (c->state == BUSY) n_busy--;
  close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  c->retry_at = c->state == CONNECTING ? now + RETRY_NS : now;
  c->state = DOWN;
  errors += (uint64_t)error;
}

static void conn_write(struct conn *c, uint64_t now) {
  ssize_t n = send(c->fd, request + c->woff, request_len - c->woff, MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN && errno != EINTR) { conn_close(c, now, 1); return; }
  if (n > 0) c->woff += (size_t)n;
  int want = c->woff < request_len; /* partial write: wait for EPOLLOUT */
  if (want != c->want_out) watch(c, EPOLL_CTL_MOD, want ? EPOLLIN | EPOLLOUT : EPOLLIN);
  c->want_out = want;
}

static void send_request(struct conn *c, uint64_t i, uint64_t now) {
  c->req = i;
  c->woff = c->hlen = 0;
  c->body_left = -1;
  c->status = c->close_after = 0;
  c->state = BUSY;
  n_busy++;
  if (i >= n_warm) sent++;
  conn_write(c, now);
}

/* Status line and headers (NUL-terminated at the blank line); sets
 * body_left from Content-Length. -1: not a response we accept. */
static int parse_head(struct conn *c) {
  char *p = c->head, *eol;
  if (strncmp(p, "HTTP/1.", 7) || p[8] != ' ' || sscanf(p + 9, "%3d", &c->status) != 1) return -1;
  c->body_left = -1;
  while ((eol = strstr(p, "\r\n")) != NULL) {
    p = eol + 2;
    if (!strncasecmp(p, "content-length:", 15)) {
      char *end;
      long long v = strtoll(p + 15, &end, 10);
      if (end == p + 15 || v < 0) return -1;
      c->body_left = v;
    } else if (!strncasecmp(p, "transfer-encoding:", 18)) {
      return -1; /* chunked: nginx sends Content-Length for static files */
    } else if (!strncasecmp(p, "connection:", 11)) {
      char *e = strstr(p, "\r\n");
      if (e) *e = 0;
      c->close_after = strcasestr(p, "close") != NULL;
      if (e) *e = '\r';
    }
  }
  return c->body_left < 0 ? -1 : 0;
}

static void complete(struct conn *c, uint64_t now) {
  if (c->req >= n_warm) {
    lat[n_lat++] = now - due(c->req);
    completed++;
    if (c->status < 200 || c->status > 299) non2xx++;
  }
  if (now >= win_start && now < win_end) in_window++;
  n_busy--;
  c->state = IDLE;
  if (c->close_after) conn_close(c, now, 0);
}

static void conn_read(struct conn *c, uint64_t now) {
  static char buf[65536];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0 || c->state != BUSY) { /* error, EOF, or bytes nobody asked for */
    conn_close(c, now, 1);
    return;
  }
  size_t got = (size_t)n;
  if (c->body_left < 0) { /* still in the head: collect it, look for \r\n\r\n */
    size_t old = c->hlen, take = got < HEAD_MAX - 1 - old ? got : HEAD_MAX - 1 - old;
    memcpy(c->head + old, buf, take);
    c->hlen += take;
    size_t from = old > 3 ? old - 3 : 0;
    char *end = memmem(c->head + from, c->hlen - from, "\r\n\r\n", 4);
    if (!end) { /* incomplete head: wait for more, unless it is too long */
      if (c->hlen >= HEAD_MAX - 1) conn_close(c, now, 1);
      return;
    }
    size_t hend = (size_t)(end - c->head) + 4;
    end[2] = 0; /* headers end with the last header's \r\n */
    if (parse_head(c) < 0) { conn_close(c, now, 1); return; }
    c->body_left -= (long long)(c->hlen - hend + (got - take));
  } else {
    c->body_left -= (long long)got;
  }
  if (c->body_left == 0)
    complete(c, now);
  else if (c->body_left < 0) /* more than Content-Length: out of step */
    conn_close(c, now, 1);
}

static void on_event(struct conn *c, uint32_t ev) {
  uint64_t now = now_ns();
  if (c->fd < 0) return;
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (ev & (EPOLLERR | EPOLLHUP))) {
      conn_close(c, now, 1);
    } else if (ev & EPOLLOUT) {
      c->state = IDLE;
      watch(c, EPOLL_CTL_MOD, EPOLLIN);
    }
    return;
  }
  if ((ev & EPOLLOUT) && c->state == BUSY && c->woff < request_len) conn_write(c, now);
  if (c->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) conn_read(c, now);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q of the sorted latencies (q < 0: the mean), in
 * ms; JSON null when there are none. */
static void put_ms(const char *key, double q) {
  double v = 0;
  if (!n_lat) {
    printf(", \"%s\": null", key);
    return;
  }
  if (q < 0) {
    for (uint64_t i = 0; i < n_lat; i++) v += (double)lat[i] / (double)n_lat;
  } else {
    uint64_t k = ceil_u64(q * (double)n_lat);
    v = (double)lat[k ? k - 1 : 0];
  }
  printf(", \"%s\": %.3f", key, v / 1e6);
}

static void usage(const char *msg) {
  fprintf(stderr, "latency: %s\nusage: latency -p PORT [-H HOST] [-u PATH] [-c CONNS] "
          "[-r REQ_PER_S] [-d SECONDS] [-w WARMUP_SECONDS]\n", msg);
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "localhost", *path = "/";
  double dur = 10, warm = 2;
  long port = 0, nc = 50;
  int o;
  rate = 2000;
  while ((o = getopt(argc, argv, "p:H:u:c:r:d:w:")) != -1) {
    char *end = NULL;
    switch (o) {
    case 'p': port = strtol(optarg, &end, 10); break;
    case 'H': host = optarg; break;
    case 'u': path = optarg; break;
    case 'c': nc = strtol(optarg, &end, 10); break;
    case 'r': rate = strtod(optarg, &end); break;
    case 'd': dur = strtod(optarg, &end); break;
    case 'w': warm = strtod(optarg, &end); break;
    default: usage("unknown option");
    }
    if (end && (end == optarg || *end)) usage("not a number");
  }
  if (optind != argc) usage("unexpected argument");
  if (port < 1 || port > 65535) usage("-p PORT (1-65535) is required");
  if (nc < 1 || nc > 10000) usage("-c must be 1-10000");
  if (!(rate > 0 && rate <= 1e7) || !(dur > 0) || !(warm >= 0) || warm > 3600)
    usage("-r, -d must be > 0, -w >= 0");
  if (path[0] != '/' || !*host || strpbrk(host, "\r\n") || strpbrk(path, " \r\n"))
    usage("bad -u PATH or -H HOST");
  int len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
  if (len < 0 || (size_t)len >= sizeof request) usage("request too long");
  request_len = (size_t)len;
  uint64_t n_meas = (uint64_t)(dur * rate + 0.5);
  if (n_meas < 1 || n_meas > MAX_REQUESTS) usage("-r x -d must give 1 to 50M requests");
  n_warm = ceil_u64(warm * rate);
  n_total = n_warm + n_meas;
  if (!(lat = malloc(n_meas * sizeof *lat)) || !(conns = calloc((size_t)nc, sizeof *conns)))
    die("malloc");
  nconns = (int)nc;
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  ep = epoll_create1(EPOLL_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (ep < 0 || tfd < 0) die("epoll/timerfd");
  struct epoll_event te = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &te) < 0) die("epoll_ctl");
  struct epoll_event evs[64];

  /* Open every connection before the clock starts (up to 5 s). */
  uint64_t now = now_ns(), limit = now + 5 * NS;
  int pending = 1, up = 0;
  for (int i = 0; i < nconns; i++) conn_open(&conns[i], now);
  while (pending && now_ns() < limit) {
    int n = epoll_wait(ep, evs, 64, 100);
    for (int k = 0; k < n; k++)
      if (evs[k].data.ptr) on_event(evs[k].data.ptr, evs[k].events);
    pending = 0;
    for (int i = 0; i < nconns; i++) pending |= conns[i].state == CONNECTING;
  }
  for (int i = 0; i < nconns; i++) up += conns[i].state == IDLE;
  if (!up) {
    fprintf(stderr, "latency: cannot connect to 127.0.0.1:%ld\n", port);
    return 1;
  }

  t0 = now_ns();
  win_start = due(n_warm);
  win_end = due(n_total);
  uint64_t stop = win_end + DRAIN_NS, armed = 0;
  int rr = 0;
  for (;;) {
    now = now_ns();
    while (sched < n_total && due(sched) <= now) sched++;
    uint64_t wake = sched < n_total ? due(sched) : stop;
    for (int i = 0; i < nconns; i++) { /* reconnect */
      struct conn *c = &conns[i];
      if (c->state == DOWN && c->retry_at <= now) conn_open(c, now);
      if (c->state == DOWN && c->retry_at < wake) wake = c->retry_at;
    }
    /* Due requests, oldest first, each on the next idle connection. */
    while (next_send < sched) {
      int k = 0;
      while (k < nconns && conns[(rr + k) % nconns].state != IDLE) k++;
      if (k == nconns) break;
      rr = (rr + k) % nconns;
      send_request(&conns[rr], next_send++, now);
      rr = (rr + 1) % nconns;
    }
    if ((sched == n_total && next_send == sched && n_busy == 0) || now >= stop) break;
    if (wake != armed) {
      struct itimerspec its = {.it_value = {.tv_sec = (time_t)(wake / NS), .tv_nsec = (long)(wake % NS)}};
      if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
      armed = wake;
    }
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int k = 0; k < n; k++) {
      if (evs[k].data.ptr) {
        on_event(evs[k].data.ptr, evs[k].events);
      } else { /* timer: consume the expiry; it is re-armed above */
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0 && errno != EAGAIN) die("timerfd read");
        armed = 0;
      }
    }
  }

  /* Unanswered measured requests count with the time waited so far. */
  now = now_ns();
  for (uint64_t i = next_send > n_warm ? next_send : n_warm; i < sched; i++, unfinished++)
    lat[n_lat++] = now - due(i);
  for (int i = 0; i < nconns; i++)
    if (conns[i].state == BUSY && conns[i].req >= n_warm) {
      lat[n_lat++] = now - due(conns[i].req);
      unfinished++;
    }
  qsort(lat, n_lat, sizeof *lat, cmp_u64);
  double window_s = (double)(win_end - win_start) / 1e9;
  printf("{\"rate\": %g, \"duration_s\": %g, \"warmup_s\": %g, \"connections\": %d, "
         "\"sent\": %llu, \"completed\": %llu, \"errors\": %llu, \"non2xx\": %llu, "
         "\"unfinished\": %llu, \"achieved_rps\": %.1f",
         rate, dur, warm, nconns, (unsigned long long)sent, (unsigned long long)completed,
         (unsigned long long)errors, (unsigned long long)non2xx, (unsigned long long)unfinished,
         window_s > 0 ? (double)in_window / window_s : 0.0);
  put_ms("p50_ms", 0.50);
  put_ms("p90_ms", 0.90);
  put_ms("p99_ms", 0.99);
  put_ms("p999_ms", 0.999);
  put_ms("max_ms", 1.0);
  put_ms("mean_ms", -1);
  printf("}\n");
  return 0;
}
