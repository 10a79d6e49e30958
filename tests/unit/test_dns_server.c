/* DNS on the edge, with I/O: the UDP/TCP server of edge/dns.c over
 * loopback against a real store (cache, TCP framing and backpressure, the
 * store thread), record expiry (wr_store_route_expire and wr_dns_cleanup),
 * RFC 2136 UPDATE messages with TSIG (edge/dns_update.c), and, when Knot DNS
 * is installed (package knot), updates pushed to a real knotd started on
 * loopback and read back from it. The answering rules themselves are in
 * test_dns.c. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "edge/dns.h"
#include "edge/dns_update.h"
#include "edge/store.h"
#include "edge/store_async.h"
#include "lib/err.h"
#include "proto/dnsmsg.h"
#include "dns_support.h"

/* --- the server over loopback, with a real store ------------------------------------------ */

typedef struct srv_fixture {
  char dir[64];
  char path[128];
  wr_store *s;
  wr_account acct;
  wr_zone zone;
  wr_tunnel t1, t2;
  uv_loop_t loop;
  wr_dns *dns;
  int port;
  int64_t now;
} srv_fixture;

static int srv_setup(void **state) {
  srv_fixture *f = calloc(1, sizeof(*f));
  wr_route r;
  wr_route_change ch;
  if (unit_store_new("wr-dns", f->dir, sizeof(f->dir), f->path, sizeof(f->path), &f->s) != 0) return -1;
  f->now = 1700000000;
  wr_store_set_clock(f->s, unit_fixed_clock, &f->now);
  if (wr_store_account_create(f->s, "test", "acct", &f->acct) != WR_OK ||
      wr_store_zone_create(f->s, "test", f->acct.id, ZONE, &f->zone) != WR_OK ||
      wr_store_tunnel_create(f->s, "test", f->acct.id, "t1", NULL, 0, &f->t1) != WR_OK ||
      wr_store_tunnel_create(f->s, "test", f->acct.id, "t2", NULL, 0, &f->t2) != WR_OK ||
      wr_store_route_dns_add(f->s, "test", NULL, f->t1.id, "app." ZONE, 0, &r, &ch) != WR_OK)
    return -1;
  uv_loop_init(&f->loop);
  *state = f;
  return 0;
}

static void srv_start(srv_fixture *f, const wr_dns_config *extra) {
  static const char *const addrs[] = {"192.0.2.1", "2001:db8::1"};
  wr_dns_config cfg = {.store = f->s, .addrs = addrs, .naddrs = 2, .cache_ttl_ms = 60000};
  if (extra) {
    if (extra->naddrs) {
      cfg.addrs = extra->addrs;
      cfg.naddrs = extra->naddrs;
    }
    cfg.max_tcp_conns = extra->max_tcp_conns;
    cfg.tcp_idle_ms = extra->tcp_idle_ms;
    cfg.async = extra->async;
  }
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  char err[256];
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(wr_dns_listen(&f->loop, &cfg, (const struct sockaddr *)&sa, &f->dns, err, sizeof(err)),
                   WR_OK);
  assert_int_equal(wr_dns_addr(f->dns, &ss), WR_OK);
  f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  assert_true(f->port > 0);
}

static int srv_teardown(void **state) {
  srv_fixture *f = *state;
  if (f->dns) wr_dns_free(f->dns);
  unit_loop_finish(&f->loop);
  return unit_store_drop(f->s, f->dir, f);
}

/* Sends |q| over UDP to 127.0.0.1:|port| and waits up to 3 s for the answer,
 * running |loop| (NULL: an external server) meanwhile. Returns its length. */
static ssize_t udp_exchange(uv_loop_t *loop, int port, const uint8_t *q, size_t qlen, uint8_t *resp,
                            size_t cap) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_true(fd >= 0);
  assert_int_equal(sendto(fd, q, qlen, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)qlen);
  for (int i = 0; i < 3000; i++) {
    if (loop) uv_run(loop, UV_RUN_NOWAIT);
    ssize_t n = recv(fd, resp, cap, 0);
    if (n >= 0) {
      close(fd);
      return n;
    }
    usleep(1000);
  }
  close(fd);
  return -1;
}

static ldns_pkt *udp_ask(uv_loop_t *loop, int port, const char *name, uint16_t type) {
  static uint8_t resp[65536];
  size_t qlen;
  ldns_pkt *r = NULL;
  uint8_t *q = unit_dns_query(name, type, LDNS_RR_CLASS_IN, 1232, &qlen);
  ssize_t n = udp_exchange(loop, port, q, qlen, resp, sizeof(resp));
  free(q);
  if (n < 0) return NULL;
  assert_int_equal(ldns_wire2pkt(&r, resp, (size_t)n), LDNS_STATUS_OK);
  return r;
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

/* Reads from |fd| while running the loop until |want| bytes arrived, EOF
 * or 3 s. Returns the bytes read, -1 on EOF/reset before any byte. */
static ssize_t tcp_read_some(uv_loop_t *loop, int fd, uint8_t *buf, size_t want, int *eof) {
  size_t got = 0;
  *eof = 0;
  for (int i = 0; i < 3000 && got < want; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      *eof = 1;
      break;
    }
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    usleep(1000);
  }
  return (ssize_t)got;
}

static void test_server_udp(void **state) {
  srv_fixture *f = *state;
  srv_start(f, NULL);
  char target[128];
  snprintf(target, sizeof(target), "%s.cfargotunnel." ZONE ".", f->t1.id);
  ldns_pkt *r = udp_ask(&f->loop, f->port, "app." ZONE, LDNS_RR_TYPE_A);
  assert_non_null(r);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
  assert_true(ldns_pkt_aa(r));
  ldns_rr_list *an = ldns_pkt_answer(r);
  assert_int_equal(ldns_rr_list_rr_count(an), 2);
  unit_dns_expect_rr(an, 0, "app." ZONE ".", LDNS_RR_TYPE_CNAME, target);
  unit_dns_expect_rr(an, 1, target, LDNS_RR_TYPE_A, "192.0.2.1");
  ldns_pkt_free(r);
  /* AAAA of the second tunnel's target; SOA serial is a Unix time */
  char t2[128];
  snprintf(t2, sizeof(t2), "%s.cfargotunnel." ZONE, f->t2.id);
  r = udp_ask(&f->loop, f->port, t2, LDNS_RR_TYPE_AAAA);
  assert_non_null(r);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, NULL, LDNS_RR_TYPE_AAAA, "2001:db8::1");
  ldns_pkt_free(r);
  r = udp_ask(&f->loop, f->port, "nope." ZONE, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(r);
  r = udp_ask(&f->loop, f->port, "example.org", LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
  ldns_pkt_free(r);
  /* a response sent to the server is dropped, not answered */
  static uint8_t resp[512];
  size_t qlen;
  uint8_t *q = unit_dns_query("app." ZONE, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, -1, &qlen);
  q[2] |= 0x80;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, q, qlen, 0, (struct sockaddr *)&sa, sizeof(sa));
  for (int i = 0; i < 50; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_true(recv(fd, resp, sizeof(resp), 0) < 0);
  close(fd);
  free(q);
  const wr_dns_stats *st = wr_dns_get_stats(f->dns);
  assert_int_equal(st->queries_udp, 5);
  assert_int_equal(st->rcodes[WR_DNS_RCODE_NOERROR], 2);
  assert_int_equal(st->rcodes[WR_DNS_RCODE_NXDOMAIN], 1);
  assert_int_equal(st->rcodes[WR_DNS_RCODE_REFUSED], 1);
  assert_int_equal(st->dropped, 1);
  assert_int_equal(st->snapshots, 1); /* one snapshot served every query */
}

/* The cache: a new route shows after invalidation (or cache_ttl_ms); a
 * deleted tunnel's target disappears. */
static void test_server_cache(void **state) {
  srv_fixture *f = *state;
  wr_route r;
  wr_route_change ch;
  srv_start(f, NULL);
  ldns_pkt *p = udp_ask(&f->loop, f->port, "new." ZONE, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(p);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, f->t2.id, "new." ZONE, 0, &r, &ch), WR_OK);
  p = udp_ask(&f->loop, f->port, "new." ZONE, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN); /* cached (60 s) */
  ldns_pkt_free(p);
  wr_dns_invalidate(f->dns);
  p = udp_ask(&f->loop, f->port, "new." ZONE, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(p)), 2);
  ldns_pkt_free(p);
  /* delete t2: its route goes with it, and its target no longer resolves */
  assert_int_equal(wr_store_tunnel_delete(f->s, "test", f->t2.id, NULL), WR_OK);
  wr_dns_invalidate(f->dns);
  char t2[128];
  snprintf(t2, sizeof(t2), "%s.cfargotunnel." ZONE, f->t2.id);
  p = udp_ask(&f->loop, f->port, t2, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(p);
  p = udp_ask(&f->loop, f->port, "new." ZONE, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(p);
  /* a zone added later is found once the cache is dropped */
  wr_zone z2;
  assert_int_equal(wr_store_zone_create(f->s, "test", f->acct.id, "second.test", &z2), WR_OK);
  p = udp_ask(&f->loop, f->port, "second.test", LDNS_RR_TYPE_SOA);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
  ldns_pkt_free(p);
  wr_dns_invalidate(f->dns);
  p = udp_ask(&f->loop, f->port, "second.test", LDNS_RR_TYPE_SOA);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
  unit_dns_expect_rr(ldns_pkt_answer(p), 0, "second.test.", LDNS_RR_TYPE_SOA, "ns1.second.test.");
  ldns_pkt_free(p);
}

static void tcp_send_query(int fd, const char *name, uint16_t type, uint16_t id) {
  size_t qlen;
  uint8_t *q = unit_dns_query(name, type, LDNS_RR_CLASS_IN, -1, &qlen);
  uint8_t *m = malloc(qlen + 2);
  q[0] = (uint8_t)(id >> 8);
  q[1] = (uint8_t)id;
  m[0] = (uint8_t)(qlen >> 8);
  m[1] = (uint8_t)qlen;
  memcpy(m + 2, q, qlen);
  assert_int_equal(send(fd, m, qlen + 2, 0), (ssize_t)(qlen + 2));
  free(m);
  free(q);
}

/* Reads one framed response. */
static ldns_pkt *tcp_read_resp(uv_loop_t *loop, int fd) {
  static uint8_t buf[2 + 65535];
  int eof;
  ldns_pkt *r = NULL;
  if (tcp_read_some(loop, fd, buf, 2, &eof) != 2) return NULL;
  size_t len = (size_t)(buf[0] << 8 | buf[1]);
  if (tcp_read_some(loop, fd, buf + 2, len, &eof) != (ssize_t)len) return NULL;
  assert_int_equal(ldns_wire2pkt(&r, buf + 2, len), LDNS_STATUS_OK);
  return r;
}

static void test_server_tcp(void **state) {
  srv_fixture *f = *state;
  wr_dns_config extra = {.max_tcp_conns = 2, .tcp_idle_ms = 300};
  srv_start(f, &extra);
  int fd = tcp_connect(f->port);
  /* two pipelined queries in one go, answered in order */
  tcp_send_query(fd, "app." ZONE, LDNS_RR_TYPE_A, 1);
  tcp_send_query(fd, ZONE, LDNS_RR_TYPE_NS, 2);
  ldns_pkt *r = tcp_read_resp(&f->loop, fd);
  assert_non_null(r);
  assert_int_equal(ldns_pkt_id(r), 1);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 2);
  ldns_pkt_free(r);
  r = tcp_read_resp(&f->loop, fd);
  assert_non_null(r);
  assert_int_equal(ldns_pkt_id(r), 2);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, ZONE ".", LDNS_RR_TYPE_NS, "ns1." ZONE ".");
  ldns_pkt_free(r);
  /* a query split in two writes */
  size_t qlen;
  uint8_t *q = unit_dns_query("app." ZONE, LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_IN, -1, &qlen);
  uint8_t hdr[2] = {(uint8_t)(qlen >> 8), (uint8_t)qlen};
  send(fd, hdr, 1, 0);
  for (int i = 0; i < 20; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  send(fd, hdr + 1, 1, 0);
  send(fd, q, 5, 0);
  for (int i = 0; i < 20; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  send(fd, q + 5, qlen - 5, 0);
  free(q);
  r = tcp_read_resp(&f->loop, fd);
  assert_non_null(r);
  unit_dns_expect_rr(ldns_pkt_answer(r), 1, NULL, LDNS_RR_TYPE_AAAA, "2001:db8::1");
  ldns_pkt_free(r);
  assert_int_equal(wr_dns_get_stats(f->dns)->queries_tcp, 3);

  /* the third connection is over the limit of 2: closed at once */
  int fd2 = tcp_connect(f->port), fd3 = tcp_connect(f->port), eof;
  uint8_t b[4];
  for (int i = 0; i < 50; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(tcp_read_some(&f->loop, fd3, b, 1, &eof), 0);
  assert_true(eof);
  assert_int_equal(wr_dns_get_stats(f->dns)->tcp_refused, 1);
  close(fd3);
  /* framing that cannot be a DNS message (length 5): closed */
  static const uint8_t bad[] = {0, 5, 1, 2, 3, 4, 5};
  send(fd2, bad, sizeof(bad), 0);
  assert_int_equal(tcp_read_some(&f->loop, fd2, b, 1, &eof), 0);
  assert_true(eof);
  close(fd2);
  /* idle: closed after 300 ms without a query */
  assert_int_equal(tcp_read_some(&f->loop, fd, b, 1, &eof), 0);
  assert_true(eof);
  close(fd);
  for (int i = 0; i < 20; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(wr_dns_get_stats(f->dns)->tcp_conns, 0);
}

/* Many queries written at once without reading the answers: the server
 * stops reading at its write watermark instead of buffering without end,
 * and answers everything once the client reads. */
static void test_server_tcp_backpressure(void **state) {
  srv_fixture *f = *state;
  /* 64 addresses: each answer is about 1.4 KB */
  static char text[64][48];
  static const char *addrs[64];
  for (int i = 0; i < 64; i++) {
    snprintf(text[i], sizeof(text[i]), i % 2 ? "2001:db8::%x" : "192.0.2.%d", i + 1);
    addrs[i] = text[i];
  }
  wr_dns_config extra = {.addrs = addrs, .naddrs = 64};
  srv_start(f, &extra);
  char target[128];
  snprintf(target, sizeof(target), "%s.cfargotunnel." ZONE, f->t1.id);
  /* 11 MB of answers: more than the kernel buffers of both ends hold while
   * the client does not read (tcp_wmem's 4 MB + the receive window). */
  int fd = tcp_connect(f->port);
  size_t qlen;
  uint8_t *q = unit_dns_query(target, LDNS_RR_TYPE_ANY, LDNS_RR_CLASS_IN, -1, &qlen);
  enum { N = 8000 };
  uint8_t *all = malloc(N * (qlen + 2));
  for (int i = 0; i < N; i++) {
    all[i * (qlen + 2)] = (uint8_t)(qlen >> 8);
    all[i * (qlen + 2) + 1] = (uint8_t)qlen;
    memcpy(all + i * (qlen + 2) + 2, q, qlen);
  }
  size_t sent = 0, total = N * (qlen + 2), have = 0;
  static uint8_t buf[1 << 17];
  int answered = 0;
  uint64_t seen_paused = 0;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int it = 0; answered < N; it++) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > 30) break;
    if (sent < total) {
      ssize_t n = send(fd, all + sent, total - sent, MSG_DONTWAIT);
      if (n > 0) sent += (size_t)n;
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    const wr_dns_stats *st = wr_dns_get_stats(f->dns);
    if (!seen_paused) {
      /* not reading yet: wait until the server has paused */
      if (st->tcp_paused) {
        seen_paused = st->queries_tcp;
      } else {
        usleep(100);
        continue;
      }
    }
    ssize_t n = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
    if (n > 0) have += (size_t)n;
    while (have >= 2 && have >= 2 + (size_t)(buf[0] << 8 | buf[1])) {
      size_t l = 2 + (size_t)(buf[0] << 8 | buf[1]);
      memmove(buf, buf + l, have - l);
      have -= l;
      answered++;
    }
  }
  if (answered != N)
    print_error("answered %d sent %zu/%zu queries seen %llu\n", answered, sent, total,
                (unsigned long long)wr_dns_get_stats(f->dns)->queries_tcp);
  assert_int_equal(answered, N);
  /* it paused before it had read every query */
  assert_true(seen_paused > 0 && seen_paused < N);
  free(all);
  free(q);
  close(fd);
}

static void test_config_check(void **state) {
  srv_fixture *f = *state;
  char err[256];
  static const char *const any[] = {"0.0.0.0"};
  static const char *const bad[] = {"example.test"};
  static const char *const badns[] = {"ns 1"};
  wr_dns_config cfg = {.store = f->s, .addrs = any, .naddrs = 1};
  assert_int_equal(wr_dns_config_check(&cfg, err, sizeof(err)), WR_ERR_CONFIG);
  assert_non_null(strstr(err, "unspecified"));
  cfg.addrs = bad;
  assert_int_equal(wr_dns_config_check(&cfg, err, sizeof(err)), WR_ERR_CONFIG);
  cfg.naddrs = 0;
  cfg.ns = badns;
  cfg.nns = 1;
  assert_int_equal(wr_dns_config_check(&cfg, err, sizeof(err)), WR_ERR_CONFIG);
  static const char *const ns[] = {"ns1", "NS.Example.NET."};
  cfg.ns = ns;
  cfg.nns = 2;
  assert_int_equal(wr_dns_config_check(&cfg, err, sizeof(err)), WR_OK);
  /* absolute NS names are used as they are */
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(wr_dns_listen(&f->loop, &cfg, (const struct sockaddr *)&sa, &f->dns, err, sizeof(err)), WR_OK);
  struct sockaddr_storage ss;
  wr_dns_addr(f->dns, &ss);
  ldns_pkt *r = udp_ask(&f->loop, ntohs(((struct sockaddr_in *)&ss)->sin_port), ZONE, LDNS_RR_TYPE_NS);
  unit_dns_expect_rr(ldns_pkt_answer(r), 1, ZONE ".", LDNS_RR_TYPE_NS, "ns.example.net.");
  /* no addresses configured: in-zone NS host has no glue */
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_additional(r)), 0);
  ldns_pkt_free(r);
  /* a port already taken */
  wr_dns *d2 = NULL;
  sa.sin_port = ((struct sockaddr_in *)&ss)->sin_port;
  assert_int_equal(wr_dns_listen(&f->loop, &cfg, (const struct sockaddr *)&sa, &d2, err, sizeof(err)), WR_ERR_IO);
  assert_null(d2);
}

/* --- record expiry ---------------------------------------------------------------------- */

static void conn_rec(wr_conn_rec *c, const char *id, const char *tunnel) {
  memset(c, 0, sizeof(*c));
  snprintf(c->id, sizeof(c->id), "%s", id);
  snprintf(c->tunnel_id, sizeof(c->tunnel_id), "%s", tunnel);
  snprintf(c->client_id, sizeof(c->client_id), "%s", UUID2);
}

static void test_expire(void **state) {
  srv_fixture *f = *state;
  wr_tunnel t3;
  wr_route r;
  wr_route_change ch;
  wr_conn_rec c;
  wr_route *rows;
  size_t n;
  /* t1: app (connected once, closed at now); t2: api (never connected);
   * t3: live (connection still open) */
  assert_int_equal(wr_store_tunnel_create(f->s, "test", f->acct.id, "t3", NULL, 0, &t3), WR_OK);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, f->t2.id, "api." ZONE, 0, &r, &ch), WR_OK);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, t3.id, "live." ZONE, 0, &r, &ch), WR_OK);
  conn_rec(&c, "11111111-1111-4111-8111-111111111111", f->t1.id);
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_OK);
  assert_int_equal(wr_store_conn_close(f->s, c.id), WR_OK);
  conn_rec(&c, "22222222-2222-4222-8222-222222222222", t3.id);
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_OK);

  assert_int_equal(wr_store_route_expire(f->s, "test", -1, 0, &rows, &n), WR_ERR_INVAL);
  /* not yet: unregistered for 24 h - 1 s */
  f->now += 86399;
  assert_int_equal(wr_store_route_expire(f->s, "test", 86400, 0, &rows, &n), WR_OK);
  assert_int_equal(n, 0);
  assert_null(rows);
  f->now += 1;
  assert_int_equal(wr_store_route_expire(f->s, "test", 86400, 0, &rows, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].hostname, "app." ZONE);
  assert_string_equal(rows[0].tunnel_id, f->t1.id);
  free(rows);
  assert_int_equal(wr_store_route_get(f->s, "app." ZONE, &r), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_route_get(f->s, "api." ZONE, &r), WR_OK);  /* never connected */
  assert_int_equal(wr_store_route_get(f->s, "live." ZONE, &r), WR_OK); /* connected */
  wr_audit *a;
  assert_int_equal(wr_store_audit_list(f->s, NULL, 1, &a, &n), WR_OK);
  assert_string_equal(a[0].action, "route.expire");
  assert_string_equal(a[0].target_id, "app." ZONE);
  assert_string_equal(a[0].actor, "test");
  assert_non_null(strstr(a[0].detail, "\"reason\":\"tunnel unregistered\""));
  wr_store_audit_free(a, n);

  /* a route added after the last close gets the whole grace period */
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, f->t1.id, "late." ZONE, 0, &r, &ch), WR_OK);
  f->now += 3600;
  wr_dns_cleanup_config cc = {.store = f->s, .actor = "test"};
  assert_int_equal(wr_dns_cleanup(&cc, &n), WR_OK);
  assert_int_equal(n, 0);
  f->now += 86400;
  cc.unregistered_s = 3600; /* a shorter configured time */
  assert_int_equal(wr_dns_cleanup(&cc, &n), WR_OK);
  assert_int_equal(n, 1);

  /* a deleted tunnel's routes go at once (a store from before deletion
   * removed routes, or a race: set deleted_at underneath) */
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 2000);
  char sql[256];
  snprintf(sql, sizeof(sql), "UPDATE tunnels SET deleted_at = 1 WHERE id = '%s'", f->t2.id);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  cc.unregistered_s = 0; /* default 24 h */
  assert_int_equal(wr_dns_cleanup(&cc, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_int_equal(wr_store_route_get(f->s, "api." ZONE, &r), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_audit_list(f->s, NULL, 1, &a, &n), WR_OK);
  assert_non_null(strstr(a[0].detail, "\"reason\":\"tunnel deleted\""));
  wr_store_audit_free(a, n);
  assert_int_equal(wr_store_route_get(f->s, "live." ZONE, &r), WR_OK);
}

/* The janitor runs the cleanup from the loop and invalidates the server. */
static void test_janitor(void **state) {
  srv_fixture *f = *state;
  wr_conn_rec c;
  srv_start(f, NULL);
  conn_rec(&c, "11111111-1111-4111-8111-111111111111", f->t1.id);
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_OK);
  assert_int_equal(wr_store_conn_close(f->s, c.id), WR_OK);
  ldns_pkt *p = udp_ask(&f->loop, f->port, "app." ZONE, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
  ldns_pkt_free(p);
  f->now += 2 * 86400;
  wr_dns_janitor *j;
  wr_dns_cleanup_config cc = {.store = f->s, .interval_ms = 20, .dns = f->dns};
  assert_int_equal(wr_dns_janitor_start(&f->loop, &cc, &j), WR_OK);
  for (int i = 0; i < 100; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  wr_route r;
  assert_int_equal(wr_store_route_get(f->s, "app." ZONE, &r), WR_ERR_NOTFOUND);
  p = udp_ask(&f->loop, f->port, "app." ZONE, LDNS_RR_TYPE_A);
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(p);
  wr_audit *a;
  size_t n;
  assert_int_equal(wr_store_audit_list(f->s, NULL, 1, &a, &n), WR_OK);
  assert_string_equal(a[0].actor, "edge:dns-cleanup");
  wr_store_audit_free(a, n);
  wr_dns_janitor_free(j);
}

/* With a store thread the zones are read there: a change shows once the
 * read is back (no answer meanwhile is a failure), and the server and the
 * janitor may go while a read is out. */
static void test_server_store_thread(void **state) {
  srv_fixture *f = *state;
  wr_store_async *a;
  wr_route r;
  wr_route_change ch;
  wr_conn_rec c;
  char err[256];
  assert_int_equal(wr_store_async_new(&f->loop, f->path, &a, err, sizeof(err)), WR_OK);
  wr_dns_config extra = {.async = a};
  srv_start(f, &extra);
  ldns_pkt *p = udp_ask(&f->loop, f->port, "app." ZONE, LDNS_RR_TYPE_A); /* read before serving */
  assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
  ldns_pkt_free(p);
  assert_int_equal(wr_store_route_dns_add(f->s, "test", NULL, f->t2.id, "new." ZONE, 0, &r, &ch), WR_OK);
  wr_dns_invalidate(f->dns);
  wr_dns_invalidate(f->dns); /* once more while the read is out: one more read */
  int rcode = -1;
  for (int i = 0; i < 200 && rcode != LDNS_RCODE_NOERROR; i++) {
    p = udp_ask(&f->loop, f->port, "new." ZONE, LDNS_RR_TYPE_A);
    rcode = ldns_pkt_get_rcode(p);
    assert_true(rcode == LDNS_RCODE_NOERROR || rcode == LDNS_RCODE_NXDOMAIN);
    ldns_pkt_free(p);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  assert_int_equal(rcode, LDNS_RCODE_NOERROR);
  /* The janitor's pass runs there too: t1's route goes (its only
   * connection closed long before the store thread's clock). */
  conn_rec(&c, "11111111-1111-4111-8111-111111111111", f->t1.id);
  assert_int_equal(wr_store_conn_open(f->s, &c), WR_OK);
  assert_int_equal(wr_store_conn_close(f->s, c.id), WR_OK);
  wr_dns_janitor *j;
  wr_dns_cleanup_config cc = {.store = f->s, .interval_ms = 10, .dns = f->dns, .async = a};
  assert_int_equal(wr_dns_janitor_start(&f->loop, &cc, &j), WR_OK);
  for (int i = 0; i < 400 && wr_store_route_get(f->s, "app." ZONE, &r) == WR_OK; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  assert_int_equal(wr_store_route_get(f->s, "app." ZONE, &r), WR_ERR_NOTFOUND);
  /* Gone with reads in flight: their answers are dropped. */
  wr_dns_invalidate(f->dns);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  wr_dns_janitor_free(j);
  wr_dns_free(f->dns);
  f->dns = NULL;
  wr_store_async_free(a);
}

/* --- RFC 2136 UPDATE + TSIG -------------------------------------------------------------- */

#define KEY_NAME "warren-key"
#define KEY_SECRET "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==" /* 32 bytes */

static const char *const up_addrs[] = {"192.0.2.10", "2001:db8::10"};

static wr_dns_update_config up_config(const char *server) {
  wr_dns_update_config c = {.server = server, .zone = "example.org", .key_name = KEY_NAME,
                            .algorithm = "hmac-sha256", .secret = KEY_SECRET, .addrs = up_addrs,
                            .naddrs = 2, .timeout_ms = 3000};
  return c;
}

static void test_update_config(void **state) {
  (void)state;
  /* Numeric addresses only: there is no resolver on the loop. */
  static const char *const good[] = {"127.0.0.1:5353", "[::1]:53", "::1"};
  static const char *const bad[] = {"ns.example.org:53", "127.0.0.1:99999"};
  char err[256];
  wr_dns_update_config c;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    c = up_config(good[i]);
    assert_int_equal(wr_dns_update_config_check(&c, err, sizeof(err)), WR_OK);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    c = up_config(bad[i]);
    assert_int_equal(wr_dns_update_config_check(&c, err, sizeof(err)), WR_ERR_CONFIG);
  }
  c = up_config("127.0.0.1");
  c.algorithm = "hmac-md5";
  assert_int_equal(wr_dns_update_config_check(&c, err, sizeof(err)), WR_ERR_CONFIG);
  assert_non_null(strstr(err, "hmac-sha256"));
  c = up_config("127.0.0.1");
  c.secret = "c2hvcnQ="; /* "short" */
  assert_int_equal(wr_dns_update_config_check(&c, err, sizeof(err)), WR_ERR_CONFIG);
  c.secret = "not base64!";
  assert_int_equal(wr_dns_update_config_check(&c, err, sizeof(err)), WR_ERR_CONFIG);
  c = up_config("127.0.0.1");
  c.zone = "bad zone";
  assert_int_equal(wr_dns_update_config_check(&c, err, sizeof(err)), WR_ERR_CONFIG);
  c = up_config("127.0.0.1");
  static const char *const anyaddr[] = {"localhost"};
  c.addrs = anyaddr;
  c.naddrs = 1;
  assert_int_equal(wr_dns_update_config_check(&c, err, sizeof(err)), WR_ERR_CONFIG);

  char line[256];
  assert_true(wr_dns_partial_record("App.Example.org.", UUID1, "example.org", 0, line, sizeof(line)) > 0);
  assert_string_equal(line, "app.example.org. 300 IN CNAME " UUID1 ".cfargotunnel.example.org.");
  assert_int_equal(wr_dns_partial_record("app.other.org", UUID1, "example.org", 0, line, sizeof(line)),
                   WR_ERR_INVAL);
  assert_int_equal(wr_dns_partial_record("app.example.org", "nope", "example.org", 0, line, sizeof(line)),
                   WR_ERR_INVAL);
}

static void test_update_build(void **state) {
  (void)state;
  char err[256];
  wr_dns_update_config c = up_config("127.0.0.1");
  static const char *const target[] = {TARGET1};
  static const char *const v4[] = {"192.0.2.10", "192.0.2.11"};
  wr_dns_change ch[3] = {
      {WR_DNS_CHANGE_SET, WR_DNS_TYPE_CNAME, "app.example.org", target, 1},
      {WR_DNS_CHANGE_SET, WR_DNS_TYPE_A, "t.example.org", v4, 2},
      {WR_DNS_CHANGE_DELETE, WR_DNS_TYPE_AAAA, "t.example.org", NULL, 0},
  };
  wr_dns_update_msg m;
  assert_int_equal(wr_dns_update_build(&c, ch, 3, 0xbeef, &m, err, sizeof(err)), WR_OK);
  assert_non_null(m.mac);
  ldns_pkt *p = NULL;
  assert_int_equal(ldns_wire2pkt(&p, m.wire, m.len), LDNS_STATUS_OK);
  assert_int_equal(ldns_pkt_id(p), 0xbeef);
  assert_int_equal(ldns_pkt_get_opcode(p), LDNS_PACKET_UPDATE);
  assert_false(ldns_pkt_rd(p));
  /* zone section (question): example.org SOA IN */
  unit_dns_expect_rr(ldns_pkt_question(p), 0, "example.org.", LDNS_RR_TYPE_SOA, NULL);
  /* update section (authority): delete CNAME set, add CNAME, delete A set,
   * add 2 A, delete AAAA set */
  ldns_rr_list *up = ldns_pkt_authority(p);
  assert_int_equal(ldns_rr_list_rr_count(up), 6);
  ldns_rr *rr = ldns_rr_list_rr(up, 0);
  assert_int_equal(ldns_rr_get_class(rr), LDNS_RR_CLASS_ANY);
  assert_int_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_CNAME);
  assert_int_equal(ldns_rr_ttl(rr), 0);
  assert_int_equal(ldns_rr_rd_count(rr), 0);
  rr = ldns_rr_list_rr(up, 1);
  assert_int_equal(ldns_rr_get_class(rr), LDNS_RR_CLASS_IN);
  assert_int_equal(ldns_rr_ttl(rr), 300);
  unit_dns_expect_rr(up, 1, "app.example.org.", LDNS_RR_TYPE_CNAME, TARGET1 ".");
  unit_dns_expect_rr(up, 4, "t.example.org.", LDNS_RR_TYPE_A, "192.0.2.11");
  assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(up, 5)), LDNS_RR_CLASS_ANY);
  /* signed: the TSIG verifies with the key, not with another one */
  assert_non_null(ldns_pkt_tsig(p));
  assert_true(ldns_pkt_tsig_verify(p, m.wire, m.len, KEY_NAME, KEY_SECRET, NULL));
  assert_false(ldns_pkt_tsig_verify(p, m.wire, m.len, KEY_NAME, "b3RoZXItb3RoZXItb3RoZXItb3RoZXI=", NULL));
  ldns_pkt_free(p);

  /* the server's answer: signed with our MAC -> OK; tampered, unsigned,
   * wrong id, refused -> errors */
  ldns_pkt *resp = ldns_pkt_new();
  ldns_pkt_set_id(resp, 0xbeef);
  ldns_pkt_set_qr(resp, true);
  ldns_pkt_set_opcode(resp, LDNS_PACKET_UPDATE);
  assert_int_equal(ldns_pkt_tsig_sign(resp, KEY_NAME, KEY_SECRET, 300, "hmac-sha256.", m.mac), LDNS_STATUS_OK);
  uint8_t *rw = NULL;
  size_t rl;
  int rcode;
  assert_int_equal(ldns_pkt2wire(&rw, resp, &rl), LDNS_STATUS_OK);
  assert_int_equal(wr_dns_update_check(&c, &m, rw, rl, &rcode, err, sizeof(err)), WR_OK);
  assert_int_equal(rcode, 0);
  rw[3] ^= 0x05; /* rcode 5 (REFUSED), MAC now wrong */
  assert_int_equal(wr_dns_update_check(&c, &m, rw, rl, &rcode, err, sizeof(err)), WR_ERR_PROTO);
  assert_non_null(strstr(err, "does not verify"));
  free(rw);
  ldns_pkt_free(resp);

  resp = ldns_pkt_new();
  ldns_pkt_set_id(resp, 0xbeef);
  ldns_pkt_set_qr(resp, true);
  ldns_pkt_set_opcode(resp, LDNS_PACKET_UPDATE);
  assert_int_equal(ldns_pkt2wire(&rw, resp, &rl), LDNS_STATUS_OK);
  assert_int_equal(wr_dns_update_check(&c, &m, rw, rl, &rcode, err, sizeof(err)), WR_ERR_PROTO);
  assert_non_null(strstr(err, "not signed"));
  free(rw);
  ldns_pkt_set_rcode(resp, LDNS_RCODE_REFUSED);
  assert_int_equal(ldns_pkt2wire(&rw, resp, &rl), LDNS_STATUS_OK);
  assert_int_equal(wr_dns_update_check(&c, &m, rw, rl, &rcode, err, sizeof(err)), WR_ERR_DENIED);
  assert_int_equal(rcode, LDNS_RCODE_REFUSED);
  free(rw);
  ldns_pkt_set_id(resp, 0xbeee);
  assert_int_equal(ldns_pkt2wire(&rw, resp, &rl), LDNS_STATUS_OK);
  assert_int_equal(wr_dns_update_check(&c, &m, rw, rl, &rcode, err, sizeof(err)), WR_ERR_PROTO);
  free(rw);
  ldns_pkt_free(resp);
  assert_int_equal(wr_dns_update_check(&c, &m, (const uint8_t *)"junk", 4, &rcode, err, sizeof(err)),
                   WR_ERR_PROTO);
  wr_dns_update_msg_clear(&m);

  /* names outside the zone, bad rdata, unsupported types */
  wr_dns_change bad = {WR_DNS_CHANGE_SET, WR_DNS_TYPE_CNAME, "app.example.net", target, 1};
  assert_int_equal(wr_dns_update_build(&c, &bad, 1, 1, &m, err, sizeof(err)), WR_ERR_INVAL);
  assert_non_null(strstr(err, "not a name in zone example.org"));
  static const char *const notip[] = {"300.1.1.1"};
  bad = (wr_dns_change){WR_DNS_CHANGE_SET, WR_DNS_TYPE_A, "t.example.org", notip, 1};
  assert_int_equal(wr_dns_update_build(&c, &bad, 1, 1, &m, err, sizeof(err)), WR_ERR_INVAL);
  bad = (wr_dns_change){WR_DNS_CHANGE_SET, WR_DNS_TYPE_NS, "t.example.org", NULL, 0};
  assert_int_equal(wr_dns_update_build(&c, &bad, 1, 1, &m, err, sizeof(err)), WR_ERR_INVAL);
  assert_int_equal(wr_dns_update_build(&c, &bad, 0, 1, &m, err, sizeof(err)), WR_ERR_INVAL);
  /* unsigned (no key): no MAC */
  c.key_name = NULL;
  assert_int_equal(wr_dns_update_build(&c, ch, 1, 7, &m, err, sizeof(err)), WR_OK);
  assert_null(m.mac);
  wr_dns_update_msg_clear(&m);
}

/* Nothing listens: the update fails with WR_ERR_IO, and freeing the
 * updater with updates queued cancels them. */
static void test_update_unreachable(void **state) {
  (void)state;
  char msg[256];
  int rcode, port;
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    port = ntohs(sa.sin_port);
    close(fd); /* a port with (almost certainly) nobody behind it */
  }
  char server[64];
  snprintf(server, sizeof(server), "127.0.0.1:%d", port);
  wr_dns_update_config c = up_config(server);
  static const char *const target[] = {TARGET1};
  wr_dns_change ch = {WR_DNS_CHANGE_SET, WR_DNS_TYPE_CNAME, "app.example.org", target, 1};
  assert_int_equal(wr_dns_update_run(&c, &ch, 1, &rcode, msg, sizeof(msg)), WR_ERR_IO);
  assert_non_null(strstr(msg, "cannot connect"));
  assert_int_equal(rcode, -1);

  uv_loop_t loop;
  uv_loop_init(&loop);
  wr_dns_updater *u;
  assert_int_equal(wr_dns_updater_new(&loop, &c, &u, msg, sizeof(msg)), WR_OK);
  assert_int_equal(wr_dns_update_publish(u, "app.example.org", UUID1, NULL, NULL), WR_OK);
  assert_int_equal(wr_dns_update_unpublish(u, "app.example.org", UUID1, NULL, NULL), WR_OK);
  assert_int_equal(wr_dns_update_publish(u, "example.org", UUID1, NULL, NULL), WR_ERR_INVAL); /* apex */
  assert_int_equal(wr_dns_update_publish(u, "app.example.org", "x", NULL, NULL), WR_ERR_INVAL);
  assert_int_equal(wr_dns_updater_pending(u), 2);
  uv_run(&loop, UV_RUN_NOWAIT); /* the first one starts */
  wr_dns_updater_free(u);
  unit_loop_finish(&loop);
}

/* --- against a real Knot DNS -------------------------------------------------------------- */

#define KNOTD "/usr/sbin/knotd"

typedef struct knot {
  char dir[64];
  pid_t pid;
  int port;
} knot;

static int free_port(void) {
  /* UDP and TCP both free on the same port */
  for (int i = 0; i < 50; i++) {
    int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(u, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(u, (struct sockaddr *)&sa, &sl);
    int ok = bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(u);
    close(t);
    if (ok) return ntohs(sa.sin_port);
  }
  return -1;
}

/* Starts knotd on 127.0.0.1 serving example.org, updatable with the key. */
static int knot_start(knot *k) {
  char path[160], conf[2048];
  if (!unit_tmpdir(k->dir, sizeof(k->dir), "wr-knot")) return -1;
  chmod(k->dir, 0755);
  k->port = free_port();
  snprintf(path, sizeof(path), "%s/example.org.zone", k->dir);
  unit_write_file(path, "$ORIGIN example.org.\n$TTL 300\n"
                   "@ SOA ns1.example.org. hostmaster.example.org. 1 3600 600 604800 60\n"
                   "@ NS ns1.example.org.\nns1 A 127.0.0.1\n");
  snprintf(conf, sizeof(conf),
           "server:\n  listen: 127.0.0.1@%d\n  rundir: %s\n"
           "database:\n  storage: %s\n"
           "log:\n  - target: %s/knot.log\n    any: info\n"
           "key:\n  - id: " KEY_NAME "\n    algorithm: hmac-sha256\n    secret: " KEY_SECRET "\n"
           "acl:\n  - id: up\n    key: " KEY_NAME "\n    action: update\n"
           "template:\n  - id: default\n    storage: %s\n    zonefile-sync: -1\n"
           "zone:\n  - domain: example.org\n    file: example.org.zone\n    acl: up\n",
           k->port, k->dir, k->dir, k->dir, k->dir);
  snprintf(path, sizeof(path), "%s/knot.conf", k->dir);
  unit_write_file(path, conf);
  k->pid = fork();
  if (k->pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execl(KNOTD, "knotd", "-c", path, (char *)NULL);
    _exit(127);
  }
  /* ready when it answers the zone's SOA */
  for (int i = 0; i < 100; i++) {
    ldns_pkt *r = udp_ask(NULL, k->port, "example.org", LDNS_RR_TYPE_SOA);
    if (r) {
      int ok = ldns_pkt_get_rcode(r) == LDNS_RCODE_NOERROR && ldns_rr_list_rr_count(ldns_pkt_answer(r)) == 1;
      ldns_pkt_free(r);
      if (ok) return 0;
    }
    usleep(50000);
  }
  return -1;
}

static void knot_stop(knot *k) {
  if (k->pid > 0) {
    kill(k->pid, SIGTERM);
    waitpid(k->pid, NULL, 0);
  }
  if (unit_rm_rf(k->dir) != 0) fprintf(stderr, "could not remove %s\n", k->dir);
}

typedef struct cb_result {
  int calls, rv, rcode;
} cb_result;

static void count_cb(void *user, int rv, int rcode, const char *msg) {
  cb_result *r = user;
  (void)msg;
  r->calls++;
  r->rv = rv;
  r->rcode = rcode;
}

/* knotd is stopped by the teardown, also when an assertion fails. */
static int knot_setup(void **state) {
  knot *k = calloc(1, sizeof(*k));
  *state = k;
  if (access(KNOTD, X_OK) != 0) return 0; /* the test skips */
  if (knot_start(k) != 0) {
    fprintf(stderr, "knotd did not come up (log in %s/knot.log)\n", k->dir);
    return -1;
  }
  return 0;
}

static int knot_teardown(void **state) {
  knot *k = *state;
  if (k->dir[0]) knot_stop(k);
  free(k);
  return 0;
}

static void test_update_knot(void **state) {
  knot *kp = *state, k = *kp;
  if (k.pid <= 0) {
    print_message("knotd not installed (apt-get install knot): skipped\n");
    skip();
  }
  char server[64], msg[256];
  int rcode;
  snprintf(server, sizeof(server), "127.0.0.1:%d", k.port);
  wr_dns_update_config c = up_config(server);
  const char *target = UUID1 ".cfargotunnel.example.org";

  /* publish through the async updater on a loop */
  uv_loop_t loop;
  uv_loop_init(&loop);
  wr_dns_updater *u;
  cb_result res = {0};
  assert_int_equal(wr_dns_updater_new(&loop, &c, &u, msg, sizeof(msg)), WR_OK);
  assert_int_equal(wr_dns_update_publish(u, "app.example.org", UUID1, count_cb, &res), WR_OK);
  assert_int_equal(wr_dns_update_publish(u, "www.example.org", UUID1, count_cb, &res), WR_OK);
  while (res.calls < 2 && uv_run(&loop, UV_RUN_ONCE)) {
  }
  assert_int_equal(res.calls, 2);
  assert_int_equal(res.rv, WR_OK);
  assert_int_equal(res.rcode, 0);

  ldns_pkt *r = udp_ask(NULL, k.port, "app.example.org", LDNS_RR_TYPE_CNAME);
  assert_non_null(r);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 1);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, "app.example.org.", LDNS_RR_TYPE_CNAME, UUID1 ".cfargotunnel.example.org.");
  ldns_pkt_free(r);
  r = udp_ask(NULL, k.port, target, LDNS_RR_TYPE_A);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, UUID1 ".cfargotunnel.example.org.", LDNS_RR_TYPE_A, "192.0.2.10");
  ldns_pkt_free(r);
  r = udp_ask(NULL, k.port, target, LDNS_RR_TYPE_AAAA);
  unit_dns_expect_rr(ldns_pkt_answer(r), 0, UUID1 ".cfargotunnel.example.org.", LDNS_RR_TYPE_AAAA, "2001:db8::10");
  ldns_pkt_free(r);

  /* unpublish app: its CNAME goes, www's stays */
  res.calls = 0;
  assert_int_equal(wr_dns_update_unpublish(u, "app.example.org", UUID1, count_cb, &res), WR_OK);
  while (res.calls < 1 && uv_run(&loop, UV_RUN_ONCE)) {
  }
  assert_int_equal(res.rv, WR_OK);
  wr_dns_updater_free(u);
  unit_loop_finish(&loop);
  r = udp_ask(NULL, k.port, "app.example.org", LDNS_RR_TYPE_CNAME);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(r);
  r = udp_ask(NULL, k.port, "www.example.org", LDNS_RR_TYPE_CNAME);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 1);
  ldns_pkt_free(r);

  /* unpublish with another tunnel's id: the record differs, nothing goes */
  static const char *const t2[] = {UUID2 ".cfargotunnel.example.org"};
  wr_dns_change del = {WR_DNS_CHANGE_DELETE, WR_DNS_TYPE_CNAME, "www.example.org", t2, 1};
  assert_int_equal(wr_dns_update_run(&c, &del, 1, &rcode, msg, sizeof(msg)), WR_OK);
  r = udp_ask(NULL, k.port, "www.example.org", LDNS_RR_TYPE_CNAME);
  assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r)), 1);
  ldns_pkt_free(r);

  /* the wrong secret, an unknown key, no key: refused, nothing changes */
  static const char *const tg[] = {UUID2 ".cfargotunnel.example.org"};
  wr_dns_change set = {WR_DNS_CHANGE_SET, WR_DNS_TYPE_CNAME, "evil.example.org", tg, 1};
  wr_dns_update_config bad = c;
  bad.secret = "b3RoZXItb3RoZXItb3RoZXItb3RoZXI=";
  assert_int_equal(wr_dns_update_run(&bad, &set, 1, &rcode, msg, sizeof(msg)), WR_ERR_DENIED);
  assert_non_null(strstr(msg, "BADSIG"));
  bad = c;
  bad.key_name = "unknown-key";
  assert_int_equal(wr_dns_update_run(&bad, &set, 1, &rcode, msg, sizeof(msg)), WR_ERR_DENIED);
  assert_non_null(strstr(msg, "BADKEY"));
  bad = c;
  bad.key_name = NULL;
  assert_int_equal(wr_dns_update_run(&bad, &set, 1, &rcode, msg, sizeof(msg)), WR_ERR_DENIED);
  assert_int_equal(rcode, LDNS_RCODE_NOTAUTH); /* knot's answer to an unsigned update */
  /* a zone the server does not have */
  bad = c;
  bad.zone = "example.net";
  wr_dns_change other = {WR_DNS_CHANGE_SET, WR_DNS_TYPE_CNAME, "x.example.net", tg, 1};
  assert_int_equal(wr_dns_update_run(&bad, &other, 1, &rcode, msg, sizeof(msg)), WR_ERR_DENIED);
  r = udp_ask(NULL, k.port, "evil.example.org", LDNS_RR_TYPE_CNAME);
  assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
  ldns_pkt_free(r);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_FIXTURE(srv_setup, srv_teardown, test_server_udp, test_server_cache, test_server_tcp,
                   test_server_tcp_backpressure, test_config_check, test_expire, test_janitor,
                   test_server_store_thread),
      UNIT_TESTS(test_update_config, test_update_build, test_update_unreachable),
      UNIT_FIXTURE(knot_setup, knot_teardown, test_update_knot));
}
