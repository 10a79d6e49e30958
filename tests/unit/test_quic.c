/* QUIC transport: handshake, streams with flow control and backpressure,
 * datagrams, close codes, idle timeout, TLS failures (in memory, fake clock),
 * and one loopback libuv echo on 127.0.0.1 (also through a Retry). The
 * server endpoint's handshake-flood defences: caps on half-open connections
 * per source and in total, Retry above thresholds, invalid tokens, and
 * half-open connections timing out without their owner ever hearing of
 * them. Certificates are generated here with GnuTLS into a temporary
 * directory. */
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <uv.h>

#include "lib/err.h"
#include "net/quic.h"
#include "net/quic_int.h" /* the ngtcp2 connection under a wr_quic_conn */
#include "quic_initial.h"
#include "unit.h"

static char tmpdir[64];
static char ca_path[128], wrong_ca_path[128], cert_path[128], key_path[128];

/* --- certificates ---------------------------------------------------------- */

static gnutls_x509_privkey_t gen_key(void) {
  gnutls_x509_privkey_t k;
  assert_int_equal(gnutls_x509_privkey_init(&k), 0);
  assert_int_equal(gnutls_x509_privkey_generate(
                       k, GNUTLS_PK_ECDSA,
                       GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                   0);
  return k;
}

static gnutls_x509_crt_t gen_cert(gnutls_x509_privkey_t key, const char *dn,
                                  int ca, const char *san,
                                  gnutls_x509_crt_t issuer,
                                  gnutls_x509_privkey_t ikey,
                                  unsigned char serial) {
  gnutls_x509_crt_t c;
  const char *err = NULL;
  time_t now = time(NULL);
  assert_int_equal(gnutls_x509_crt_init(&c), 0);
  assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
  assert_int_equal(gnutls_x509_crt_set_serial(c, &serial, 1), 0);
  assert_int_equal(gnutls_x509_crt_set_activation_time(c, now - 3600), 0);
  assert_int_equal(gnutls_x509_crt_set_expiration_time(c, now + 86400), 0);
  assert_int_equal(gnutls_x509_crt_set_dn(c, dn, &err), 0);
  assert_int_equal(gnutls_x509_crt_set_key(c, key), 0);
  assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, ca, -1), 0);
  assert_int_equal(gnutls_x509_crt_set_key_usage(
                       c, ca ? GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
                             : GNUTLS_KEY_DIGITAL_SIGNATURE),
                   0);
  if (san) {
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(
                         c, GNUTLS_SAN_DNSNAME, san, strlen(san),
                         GNUTLS_FSAN_SET),
                     0);
    assert_int_equal(
        gnutls_x509_crt_set_key_purpose_oid(c, GNUTLS_KP_TLS_WWW_SERVER, 0), 0);
  }
  assert_int_equal(gnutls_x509_crt_sign2(c, issuer ? issuer : c,
                                         issuer ? ikey : key,
                                         GNUTLS_DIG_SHA256, 0),
                   0);
  return c;
}

static void write_datum(const char *path, gnutls_datum_t *d) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
  fclose(f);
  gnutls_free(d->data);
}

static void write_crt(const char *path, gnutls_x509_crt_t c) {
  gnutls_datum_t d;
  assert_int_equal(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &d), 0);
  write_datum(path, &d);
}

static int group_setup(void **state) {
  gnutls_x509_privkey_t cak, wk, sk;
  gnutls_x509_crt_t ca, wca, srv;
  gnutls_datum_t d;
  (void)state;
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/wr-quic-XXXXXX");
  if (!mkdtemp(tmpdir)) return -1;
  snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmpdir);
  snprintf(wrong_ca_path, sizeof(wrong_ca_path), "%s/wrong-ca.pem", tmpdir);
  snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tmpdir);
  snprintf(key_path, sizeof(key_path), "%s/key.pem", tmpdir);
  cak = gen_key();
  wk = gen_key();
  sk = gen_key();
  ca = gen_cert(cak, "CN=Warren Test CA", 1, NULL, NULL, NULL, 1);
  wca = gen_cert(wk, "CN=Some Other CA", 1, NULL, NULL, NULL, 2);
  srv = gen_cert(sk, "CN=quic.cftunnel.com", 0, "quic.cftunnel.com", ca, cak, 3);
  write_crt(ca_path, ca);
  write_crt(wrong_ca_path, wca);
  write_crt(cert_path, srv);
  assert_int_equal(gnutls_x509_privkey_export2(sk, GNUTLS_X509_FMT_PEM, &d), 0);
  write_datum(key_path, &d);
  gnutls_x509_crt_deinit(ca);
  gnutls_x509_crt_deinit(wca);
  gnutls_x509_crt_deinit(srv);
  gnutls_x509_privkey_deinit(cak);
  gnutls_x509_privkey_deinit(wk);
  gnutls_x509_privkey_deinit(sk);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  unlink(ca_path);
  unlink(wrong_ca_path);
  unlink(cert_path);
  unlink(key_path);
  rmdir(tmpdir);
  return 0;
}

/* --- in-memory harness -------------------------------------------------- */

typedef struct side {
  wr_quic_conn *c;
  int hs_done;
  int closed;
  wr_quic_close_info ci;
  char close_msg[320];
  int64_t opened[8];
  int nopened;
  /* received stream data per stream id (0..7) */
  uint8_t *rx[8];
  size_t rxlen[8], rxcap[8];
  int rxfin[8];
  int hold; /* do not return flow-control credit */
  size_t held[8];
  int writable[8];
  int ndgram;
  size_t last_dgram;
  int echo;
  int nreset, nclosed;
  uint64_t last_reset_code, last_close_code;
} side;

typedef struct pair {
  wr_quic_tls *ctls, *stls;
  wr_quic_config ccfg, scfg;
  side cl, sv;
  struct sockaddr_in caddr, saddr;
  wr_quic_path cpath, spath; /* caddr -> saddr and back */
  wr_quic_tstamp now;
  int drop;
  size_t max_pkt[2];  /* largest packet seen from the server [0] / client [1] */
} pair;

static void on_hs(wr_quic_conn *c, void *user) {
  (void)c;
  ((side *)user)->hs_done = 1;
}

static int on_open(wr_quic_conn *c, int64_t sid, void *user) {
  side *s = user;
  (void)c;
  if (s->nopened < 8) s->opened[s->nopened++] = sid;
  return 0;
}

static int on_data(wr_quic_conn *c, int64_t sid, const uint8_t *d, size_t len,
                   int fin, void *user, void *suser) {
  side *s = user;
  (void)suser;
  assert_true(sid >= 0 && sid < 8);
  if (s->rxlen[sid] + len > s->rxcap[sid]) {
    size_t n = (s->rxlen[sid] + len) * 2;
    s->rx[sid] = realloc(s->rx[sid], n);
    s->rxcap[sid] = n;
  }
  memcpy(s->rx[sid] + s->rxlen[sid], d, len);
  s->rxlen[sid] += len;
  if (fin) s->rxfin[sid] = 1;
  if (s->hold)
    s->held[sid] += len;
  else
    assert_int_equal(wr_quic_stream_consume(c, sid, len), WR_OK);
  if (s->echo) {
    size_t acc;
    assert_int_equal(wr_quic_stream_write(c, sid, d, len, fin, &acc), WR_OK);
  }
  return 0;
}

static int on_reset(wr_quic_conn *c, int64_t sid, uint64_t code, void *user,
                    void *suser) {
  side *s = user;
  (void)c;
  (void)sid;
  (void)suser;
  s->nreset++;
  s->last_reset_code = code;
  return 0;
}

static void on_sclose(wr_quic_conn *c, int64_t sid, int has_code, uint64_t code,
                      void *user, void *suser) {
  side *s = user;
  (void)c;
  (void)sid;
  (void)suser;
  s->nclosed++;
  s->last_close_code = has_code ? code : UINT64_MAX;
}

static void on_writable(wr_quic_conn *c, int64_t sid, void *user, void *su) {
  (void)c;
  (void)su;
  if (sid >= 0 && sid < 8) ((side *)user)->writable[sid]++;
}

static int on_dgram(wr_quic_conn *c, const uint8_t *d, size_t len, void *user) {
  side *s = user;
  size_t i;
  (void)c;
  for (i = 0; i < len; i++) assert_int_equal(d[i], (uint8_t)(i * 7));
  s->ndgram++;
  s->last_dgram = len;
  return 0;
}

static void on_close(wr_quic_conn *c, const wr_quic_close_info *ci,
                     void *user) {
  side *s = user;
  (void)c;
  assert_int_equal(s->closed, 0); /* exactly once */
  s->closed = 1;
  s->ci = *ci;
  snprintf(s->close_msg, sizeof(s->close_msg), "%s", ci->msg);
  s->ci.msg = s->close_msg;
}

static const wr_quic_callbacks test_cbs = {
    on_hs, on_open, on_data, on_reset, on_writable, on_sclose, on_dgram, on_close, NULL};

/* The in-memory pair never touches a socket; its addresses only decide the
 * packet size each side picks (quic_conn.c default_payload). */
#define PAIR_INTERNET 0xc0000201u /* 192.0.2.1, a documentation address */
#define PAIR_LOOPBACK 0x7f000001u

static void pair_init_at(pair *p, const char *ca, const char *alpn, uint32_t host,
                         size_t client_payload) {
  char err[256];
  memset(p, 0, sizeof(*p));
  p->now = 1000 * WR_QUIC_S;
  p->ccfg.ca_file = ca;
  p->ccfg.alpn = alpn;
  p->ccfg.stream_send_queue = 256 * 1024;
  p->scfg.cert_file = cert_path;
  p->scfg.key_file = key_path;
  p->scfg.stream_send_queue = 256 * 1024;
  p->ccfg.max_udp_payload = client_payload;
  assert_int_equal(
      wr_quic_tls_new(WR_QUIC_CLIENT, &p->ccfg, &p->ctls, err, sizeof(err)),
      WR_OK);
  assert_int_equal(
      wr_quic_tls_new(WR_QUIC_SERVER, &p->scfg, &p->stls, err, sizeof(err)),
      WR_OK);
  p->caddr.sin_family = AF_INET;
  p->caddr.sin_port = htons(40000);
  p->caddr.sin_addr.s_addr = htonl(host);
  p->saddr = p->caddr;
  p->saddr.sin_port = htons(7844);
  p->cpath = (wr_quic_path){(struct sockaddr *)&p->caddr, sizeof(p->caddr),
                            (struct sockaddr *)&p->saddr, sizeof(p->saddr)};
  p->spath = (wr_quic_path){p->cpath.remote, p->cpath.remotelen, p->cpath.local,
                            p->cpath.locallen};
  assert_int_equal(wr_quic_conn_client_new(p->ctls, &p->ccfg, &p->cpath, &test_cbs,
                                           &p->cl, p->now, &p->cl.c),
                   WR_OK);
}

static void pair_init(pair *p, const char *ca, const char *alpn) {
  pair_init_at(p, ca, alpn, PAIR_INTERNET, 0);
}

static void pair_free(pair *p) {
  int i;
  wr_quic_conn_free(p->cl.c);
  wr_quic_conn_free(p->sv.c);
  wr_quic_tls_free(p->ctls);
  wr_quic_tls_free(p->stls);
  for (i = 0; i < 8; i++) {
    free(p->cl.rx[i]);
    free(p->sv.rx[i]);
  }
}

/* Moves every packet |from| wants to send to the other side. Returns the
 * number of packets. */
static int transfer(pair *p, int from_client) {
  static uint8_t buf[65536];
  size_t n;
  int count = 0;
  wr_quic_conn *from = from_client ? p->cl.c : p->sv.c;
  if (!from) return 0;
  for (;;) {
    wr_quic_conn_write(from, buf, sizeof(buf), &n, p->now);
    if (n == 0) break;
    if (n > p->max_pkt[from_client]) p->max_pkt[from_client] = n;
    count++;
    if (p->drop) continue;
    if (from_client) {
      if (!p->sv.c) {
        if (wr_quic_conn_server_accept(p->stls, &p->scfg, &p->spath, buf, n,
                                       &test_cbs, &p->sv, p->now,
                                       &p->sv.c) != WR_OK)
          p->sv.c = NULL;
      } else {
        wr_quic_conn_read(p->sv.c, p->spath.remote, p->spath.remotelen, buf,
                          n, p->now);
      }
    } else {
      wr_quic_conn_read(p->cl.c, p->cpath.remote, p->cpath.remotelen, buf, n,
                        p->now);
    }
    if (count > 100000) fail_msg("packet storm");
  }
  return count;
}

static void run_timers(pair *p) {
  if (p->cl.c && wr_quic_conn_expiry(p->cl.c) <= p->now)
    wr_quic_conn_handle_expiry(p->cl.c, p->now);
  if (p->sv.c && wr_quic_conn_expiry(p->sv.c) <= p->now)
    wr_quic_conn_handle_expiry(p->sv.c, p->now);
}

/* One network "tick": 1 ms of fake time with instant delivery. */
static int step(pair *p) {
  int n = transfer(p, 1) + transfer(p, 0);
  p->now += WR_QUIC_MS;
  run_timers(p);
  return n;
}

/* Steps until nothing moves for a few ticks. */
static void settle(pair *p) {
  int quiet = 0, i;
  for (i = 0; i < 20000 && quiet < 3; i++) quiet = step(p) ? 0 : quiet + 1;
}

static void handshake(pair *p) {
  int i;
  for (i = 0; i < 100 && !(p->cl.hs_done && p->sv.hs_done); i++) step(p);
  assert_true(p->cl.hs_done);
  assert_true(p->sv.hs_done);
}

static uint32_t fnv(const uint8_t *d, size_t n) {
  uint32_t h = 2166136261u;
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ d[i]) * 16777619u;
  return h;
}

/* --- (a) in-memory tests ------------------------------------------------- */

static void test_handshake_streams_datagrams(void **state) {
  static const char hello[] = "bootstrap + registerConnection";
  const size_t total = 1 << 20;
  uint8_t *big = malloc(total), dg[1400];
  size_t off = 0, acc, i;
  int64_t sid;
  pair p;
  int rv, guard;
  (void)state;

  pair_init(&p, ca_path, NULL);
  handshake(&p);
  assert_string_equal(wr_quic_conn_alpn(p.cl.c), "argotunnel");
  assert_string_equal(wr_quic_conn_alpn(p.sv.c), "argotunnel");
  assert_string_equal(wr_quic_conn_group(p.sv.c), "SECP256R1");
  assert_int_equal(wr_quic_conn_state(p.cl.c), WR_QUIC_ESTABLISHED);

  /* Client stream 0 = the control stream. */
  assert_int_equal(wr_quic_stream_open(p.cl.c, NULL, &sid), WR_OK);
  assert_int_equal(sid, 0);
  assert_int_equal(wr_quic_stream_write(p.cl.c, 0, (const uint8_t *)hello,
                                        sizeof(hello) - 1, 0, &acc),
                   WR_OK);
  settle(&p);
  assert_int_equal(p.sv.nopened, 1);
  assert_int_equal(p.sv.opened[0], 0);
  assert_int_equal(p.sv.rxlen[0], sizeof(hello) - 1);
  assert_memory_equal(p.sv.rx[0], hello, sizeof(hello) - 1);
  assert_false(p.sv.rxfin[0]);
  assert_int_equal(wr_quic_stream_queued(p.cl.c, 0), 0); /* acked, released */

  /* Server stream 1: 1 MiB + FIN through a 256 KiB send queue while the
   * client holds its credit: exactly one 512 KiB stream window arrives. */
  for (i = 0; i < total; i++) big[i] = (uint8_t)(i * 31 + (i >> 12));
  assert_int_equal(wr_quic_stream_open(p.sv.c, NULL, &sid), WR_OK);
  assert_int_equal(sid, 1);
  p.cl.hold = 1;
  for (guard = 0; guard < 100 && off < total; guard++) {
    rv = wr_quic_stream_write(p.sv.c, 1, big + off, total - off, 1, &acc);
    off += acc;
    assert_true(rv == WR_OK || rv == WR_AGAIN);
    assert_true(wr_quic_stream_queued(p.sv.c, 1) <= 256 * 1024);
    settle(&p);
    if (p.cl.rxlen[1] == 512 * 1024) break;
  }
  assert_int_equal(p.cl.rxlen[1], 512 * 1024); /* flow control held */
  assert_true(p.sv.writable[1] > 0);           /* backpressure released */
  /* Give credit back and let the rest flow. */
  p.cl.hold = 0;
  assert_int_equal(wr_quic_stream_consume(p.cl.c, 1, p.cl.held[1]), WR_OK);
  for (guard = 0; guard < 100 && !p.cl.rxfin[1]; guard++) {
    if (off < total) {
      rv = wr_quic_stream_write(p.sv.c, 1, big + off, total - off, 1, &acc);
      off += acc;
    }
    settle(&p);
  }
  assert_int_equal(off, total);
  assert_true(p.cl.rxfin[1]);
  assert_int_equal(p.cl.rxlen[1], total);
  assert_int_equal(fnv(p.cl.rx[1], total), fnv(big, total));
  assert_int_equal(wr_quic_stream_queued(p.sv.c, 1), 0);
  assert_int_equal(wr_quic_stream_write(p.sv.c, 1, big, 1, 0, &acc),
                   WR_ERR_INVAL); /* after FIN */

  /* Datagrams: peer limit 1350 -> 1347-byte payload (type + 2-byte len). */
  for (i = 0; i < sizeof(dg); i++) dg[i] = (uint8_t)(i * 7);
  assert_int_equal(wr_quic_datagram_max(p.cl.c), 1347);
  assert_int_equal(wr_quic_datagram_send(p.cl.c, dg, 1200), WR_OK);
  assert_int_equal(wr_quic_datagram_send(p.sv.c, dg, 1200), WR_OK);
  assert_int_equal(wr_quic_datagram_send(p.cl.c, dg, 1347), WR_OK);
  assert_int_equal(wr_quic_datagram_send(p.cl.c, dg, 1348), WR_ERR_LIMIT);
  assert_int_equal(wr_quic_datagram_send(p.sv.c, dg, 1400), WR_ERR_LIMIT);
  settle(&p);
  assert_int_equal(p.sv.ndgram, 2);
  assert_int_equal(p.cl.ndgram, 1);
  assert_int_equal(p.cl.last_dgram, 1200);
  assert_int_equal(p.sv.last_dgram, 1347);

  /* Close with an application code: both sides see it. */
  assert_int_equal(wr_quic_conn_close(p.cl.c, 0x42, "bye"), WR_OK);
  settle(&p);
  assert_true(p.cl.closed);
  assert_true(p.cl.ci.local);
  assert_true(p.cl.ci.app);
  assert_int_equal(p.cl.ci.code, 0x42);
  assert_true(p.sv.closed);
  assert_false(p.sv.ci.local);
  assert_true(p.sv.ci.app);
  assert_int_equal(p.sv.ci.code, 0x42);
  assert_int_equal(p.sv.ci.err, WR_OK);
  assert_non_null(strstr(p.sv.ci.msg, "bye"));
  assert_int_equal(wr_quic_conn_state(p.sv.c), WR_QUIC_DRAINING);
  /* Both reach CLOSED after the 3*PTO closing/draining period. */
  for (guard = 0; guard < 10000; guard++) step(&p);
  assert_int_equal(wr_quic_conn_state(p.cl.c), WR_QUIC_CLOSED);
  assert_int_equal(wr_quic_conn_state(p.sv.c), WR_QUIC_CLOSED);
  free(big);
  pair_free(&p);
}

/* Sends 256 KiB each way and returns through |p| the largest packets. */
static void bulk_both_ways(pair *p) {
  static uint8_t big[256 * 1024];
  size_t off[2] = {0, 0}, acc;
  int64_t sid;
  int guard;
  handshake(p);
  assert_int_equal(wr_quic_stream_open(p->cl.c, NULL, &sid), WR_OK);
  for (guard = 0; guard < 200 && (off[0] < sizeof(big) || off[1] < sizeof(big)); guard++) {
    if (off[1] < sizeof(big)) {
      (void)wr_quic_stream_write(p->cl.c, sid, big + off[1], sizeof(big) - off[1], 0, &acc);
      off[1] += acc;
    }
    if (p->sv.nopened && off[0] < sizeof(big)) {
      (void)wr_quic_stream_write(p->sv.c, p->sv.opened[0], big + off[0], sizeof(big) - off[0],
                                 0, &acc);
      off[0] += acc;
    }
    settle(p);
  }
  assert_int_equal(p->sv.rxlen[sid], sizeof(big));
  assert_int_equal(p->cl.rxlen[sid], sizeof(big));
}

/* Internet peers get packets that fit a 1500-byte MTU; a loopback peer gets
 * large ones (fewer per-packet costs); an explicit max_udp_payload wins. */
static void test_packet_size_by_peer(void **state) {
  pair p;
  (void)state;
  pair_init_at(&p, ca_path, NULL, PAIR_INTERNET, 0);
  bulk_both_ways(&p);
  assert_int_equal(p.max_pkt[0], WR_QUIC_INTERNET_PAYLOAD);
  assert_int_equal(p.max_pkt[1], WR_QUIC_INTERNET_PAYLOAD);
  pair_free(&p);

  pair_init_at(&p, ca_path, NULL, PAIR_LOOPBACK, 0);
  bulk_both_ways(&p);
  assert_true(p.max_pkt[0] > 16384 && p.max_pkt[0] <= WR_QUIC_LOOPBACK_PAYLOAD);
  assert_true(p.max_pkt[1] > 16384 && p.max_pkt[1] <= WR_QUIC_LOOPBACK_PAYLOAD);
  pair_free(&p);

  pair_init_at(&p, ca_path, NULL, PAIR_LOOPBACK, 1300);
  bulk_both_ways(&p);
  assert_true(p.max_pkt[0] > 16384);
  assert_int_equal(p.max_pkt[1], 1300);
  pair_free(&p);
}

static void test_stream_reset_stop_sending(void **state) {
  pair p;
  int64_t a, b;
  size_t acc;
  (void)state;
  pair_init(&p, ca_path, NULL);
  handshake(&p);
  /* Client aborts its sending side of stream 0 with code 7. */
  assert_int_equal(wr_quic_stream_open(p.cl.c, NULL, &a), WR_OK);
  assert_int_equal(wr_quic_stream_write(p.cl.c, a, (const uint8_t *)"x", 1, 0, &acc),
                   WR_OK);
  settle(&p);
  assert_int_equal(wr_quic_stream_reset(p.cl.c, a, 7), WR_OK);
  assert_int_equal(wr_quic_stream_write(p.cl.c, a, (const uint8_t *)"y", 1, 0, &acc),
                   WR_ERR_INVAL);
  settle(&p);
  assert_int_equal(p.sv.nreset, 1);
  assert_int_equal(p.sv.last_reset_code, 7);
  /* Server stops reading client stream 4 (code 0, a normal signal in this
   * protocol); ngtcp2 answers with RESET_STREAM, both sides close it. */
  assert_int_equal(wr_quic_stream_open(p.cl.c, NULL, &b), WR_OK);
  assert_int_equal(b, 4);
  assert_int_equal(wr_quic_stream_write(p.cl.c, b, (const uint8_t *)"z", 1, 0, &acc),
                   WR_OK);
  settle(&p);
  assert_int_equal(wr_quic_stream_stop_sending(p.sv.c, b, 5), WR_OK);
  settle(&p);
  /* ngtcp2 answered STOP_SENDING with RESET_STREAM(5) on the client. */
  assert_int_equal(p.sv.nreset, 2);
  assert_int_equal(p.sv.last_reset_code, 5);
  assert_int_equal(p.cl.nreset, 0);
  assert_int_equal(wr_quic_stream_write(p.cl.c, b, (const uint8_t *)"w", 1, 0, &acc),
                   WR_OK);
  settle(&p); /* ngtcp2 refuses the queued byte: stream is shut for writing */
  assert_int_equal(wr_quic_stream_write(p.cl.c, b, (const uint8_t *)"w", 1, 0, &acc),
                   WR_ERR_INVAL);
  assert_int_equal(wr_quic_stream_reset(p.sv.c, b, 0), WR_OK);
  settle(&p);
  assert_int_equal(p.cl.nreset, 1);
  assert_int_equal(p.cl.last_reset_code, 0);
  assert_true(p.cl.nclosed >= 1); /* both directions ended: stream closed */
  assert_int_equal(wr_quic_stream_queued(p.cl.c, b), 0);
  assert_int_equal(wr_quic_stream_consume(p.cl.c, 99, 1), WR_ERR_NOTFOUND);
  pair_free(&p);
}

static void test_idle_timeout(void **state) {
  pair p;
  wr_quic_tstamp t0;
  int i;
  (void)state;
  pair_init(&p, ca_path, NULL);
  handshake(&p);
  settle(&p);
  /* Keepalive alone keeps a healthy connection up well past 5 s. */
  for (i = 0; i < 8000; i++) step(&p);
  assert_false(p.cl.closed);
  assert_false(p.sv.closed);
  /* Now the network goes silent. */
  p.drop = 1;
  t0 = p.now;
  for (i = 0; i < 10000 && !(p.cl.closed && p.sv.closed); i++) step(&p);
  assert_true(p.cl.closed && p.sv.closed);
  print_message("idle close after %.3f s: %s\n",
                (double)(p.now - t0) / WR_QUIC_S, p.sv.ci.msg);
  assert_true(p.sv.ci.idle);
  assert_true(p.cl.ci.idle);
  assert_int_equal(p.sv.ci.err, WR_ERR_IO);
  /* Server: 5 s after the last packet; client restarts its timer with its
   * first keepalive PING (RFC 9000 10.1), so at most ~1 s more. */
  assert_true(p.now - t0 >= 5 * WR_QUIC_S - 2 * WR_QUIC_MS);
  assert_true(p.now - t0 <= 6500 * WR_QUIC_MS);
  assert_int_equal(wr_quic_conn_state(p.cl.c), WR_QUIC_CLOSED);
  pair_free(&p);
}

/* A server frees its TLS session once the handshake is complete: key
 * updates in both directions and stream data still work without it, and
 * TLS data a client sends afterwards ends the connection with
 * unexpected_message instead of reaching a freed session. */
static void test_server_tls_session_dropped(void **state) {
  static const char msg[] = "after the key update";
  static const uint8_t finished_again[] = {0x14, 0x00, 0x00, 0x01, 0x00};
  int64_t sid;
  size_t acc;
  pair p;
  int i;
  (void)state;
  pair_init(&p, ca_path, NULL);
  handshake(&p);
  settle(&p); /* HANDSHAKE_DONE acknowledged: keys may be updated */
  assert_null(p.sv.c->session);
  assert_non_null(p.cl.c->session);
  for (i = 0; i < 2; i++) {
    wr_quic_conn *who = i ? p.sv.c : p.cl.c;
    assert_int_equal(ngtcp2_conn_initiate_key_update(who->conn, p.now), 0);
    assert_int_equal(wr_quic_stream_open(p.cl.c, NULL, &sid), WR_OK);
    assert_int_equal(wr_quic_stream_write(p.cl.c, sid, (const uint8_t *)msg, sizeof(msg) - 1, 1,
                                          &acc), WR_OK);
    settle(&p);
    assert_int_equal(p.sv.rxlen[sid], sizeof(msg) - 1);
    assert_memory_equal(p.sv.rx[sid], msg, sizeof(msg) - 1);
    for (int k = 0; k < 4000; k++) step(&p); /* past the 3 PTO before the next update */
  }
  assert_false(p.sv.closed);

  assert_int_equal(ngtcp2_conn_submit_crypto_data(p.cl.c->conn, NGTCP2_CRYPTO_LEVEL_APPLICATION,
                                                  finished_again, sizeof(finished_again)), 0);
  for (i = 0; i < 200 && !p.cl.closed; i++) step(&p);
  print_message("server: %s\nclient: %s\n", p.sv.ci.msg, p.cl.ci.msg);
  assert_true(p.sv.closed);
  assert_true(p.sv.ci.local);
  assert_int_equal(p.sv.ci.err, WR_ERR_CRYPTO);
  assert_non_null(strstr(p.sv.ci.msg, "5 bytes of TLS data after the handshake"));
  assert_true(p.cl.closed);
  assert_int_equal(p.cl.ci.code, 0x100 + 10); /* CRYPTO_ERROR + unexpected_message */
  pair_free(&p);
}

static void test_wrong_ca(void **state) {
  pair p;
  int i;
  (void)state;
  pair_init(&p, wrong_ca_path, NULL);
  for (i = 0; i < 200 && !p.cl.closed; i++) step(&p);
  settle(&p);
  assert_true(p.cl.closed);
  assert_false(p.cl.hs_done);
  assert_int_equal(p.cl.ci.err, WR_ERR_CRYPTO);
  assert_true(p.cl.ci.local);
  print_message("client: %s\nserver: %s\n", p.cl.ci.msg, p.sv.ci.msg);
  assert_non_null(strstr(p.cl.ci.msg, "certificate verification failed"));
  /* The server learns it from the TLS alert in CONNECTION_CLOSE. */
  assert_true(p.sv.closed);
  assert_false(p.sv.hs_done);
  assert_int_equal(p.sv.ci.err, WR_ERR_CRYPTO);
  pair_free(&p);
}

static void test_no_alpn_refused(void **state) {
  pair p;
  int i;
  (void)state;
  pair_init(&p, ca_path, "");
  for (i = 0; i < 200 && !p.cl.closed; i++) step(&p);
  assert_true(p.sv.closed);
  assert_false(p.sv.hs_done);
  assert_int_equal(p.sv.ci.err, WR_ERR_CRYPTO);
  print_message("server: %s\nclient: %s\n", p.sv.ci.msg, p.cl.ci.msg);
  assert_non_null(strstr(p.sv.ci.msg, "ALPN"));
  assert_true(p.cl.closed);
  assert_false(p.cl.hs_done);
  assert_false(p.cl.ci.local);
  /* CRYPTO_ERROR + TLS alert 120 no_application_protocol */
  assert_int_equal(p.cl.ci.code, 0x100 + 120);
  assert_int_equal(p.cl.ci.err, WR_ERR_CRYPTO);
  pair_free(&p);
}

static void test_tls_config_errors(void **state) {
  wr_quic_config cfg = {0};
  wr_quic_tls *t = NULL;
  char err[256] = "";
  (void)state;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &cfg, &t, err, sizeof(err)),
                   WR_ERR_CONFIG);
  cfg.ca_file = "/nonexistent/ca.pem";
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &cfg, &t, err, sizeof(err)),
                   WR_ERR_CRYPTO);
  assert_non_null(strstr(err, "/nonexistent/ca.pem"));
  cfg.ca_file = ca_path;
  cfg.priority = "NORMAL:+BOGUS-THING";
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &cfg, &t, err, sizeof(err)),
                   WR_ERR_CRYPTO);
}

/* --- (b) loopback libuv ---------------------------------------------------- */

typedef struct uvt {
  uv_loop_t loop;
  side cl, sv;
  wr_quic_conn *cconn;
  uv_timer_t guard;
  int timed_out;
} uvt;

/* What the client sends on stream 0 once connected (and gets echoed). */
static const uint8_t *uv_msg = (const uint8_t *)"ping over loopback";
static size_t uv_msglen = 18;

static void uv_cl_hs(wr_quic_conn *c, void *user) {
  side *s = user;
  int64_t sid;
  size_t acc;
  s->hs_done = 1;
  assert_int_equal(wr_quic_stream_open(c, NULL, &sid), WR_OK);
  assert_int_equal(sid, 0);
  assert_int_equal(wr_quic_stream_write(c, sid, uv_msg, uv_msglen, 1, &acc), WR_OK);
  assert_int_equal(acc, uv_msglen);
}

static int uv_cl_data(wr_quic_conn *c, int64_t sid, const uint8_t *d,
                      size_t len, int fin, void *user, void *suser) {
  side *s = user;
  on_data(c, sid, d, len, fin, user, suser);
  if (s->rxfin[0]) wr_quic_conn_close(c, 0, NULL);
  return 0;
}

static uvt *uv_test_ctx;

static void lb_close_cb(wr_quic_conn *c, const wr_quic_close_info *ci,
                        void *user) {
  on_close(c, ci, user);
  if (uv_test_ctx->cl.closed && uv_test_ctx->sv.closed)
    uv_stop(&uv_test_ctx->loop);
}

static void guard_cb(uv_timer_t *t) {
  uvt *u = t->data;
  u->timed_out = 1;
  uv_stop(&u->loop);
}

/* Echoes uv_msg over a real UDP socket pair on 127.0.0.1; |payload| is both
 * sides' max_udp_payload (0: the default). Returns the GSO sends of the
 * client and the server endpoints through |gso|, and the server endpoint's
 * counters through |st| (if not NULL). |retry|: the server demands a Retry
 * token from every new connection. */
/* Credentials by SNI (the HTTP/3 front's way, quic.h sni_pick): the test
 * certificate for its own name, nothing for any other. */
static int sni_picked, sni_released;
static char sni_seen[64];

static void *sni_pick(void *arg, const char *sni, void **cred, int *later) {
  gnutls_certificate_credentials_t c;
  (void)arg;
  (void)later;
  sni_picked++;
  snprintf(sni_seen, sizeof(sni_seen), "%s", sni);
  if (strcmp(sni, WR_QUIC_SNI_DEFAULT) != 0) return NULL;
  assert_int_equal(gnutls_certificate_allocate_credentials(&c), 0);
  assert_true(gnutls_certificate_set_x509_key_file(c, cert_path, key_path, GNUTLS_X509_FMT_PEM) >= 0);
  *cred = c;
  return c;
}

static void sni_release(void *arg, void *ref) {
  (void)arg;
  sni_released++;
  gnutls_certificate_free_credentials(ref);
}

static int uv_use_sni_pick; /* uv_echo_ex: the server has no files, only sni_pick */

static void uv_echo_ex(size_t payload, int retry, uint64_t gso[2], wr_quic_endpoint_stats *st) {
  wr_quic_config ccfg = {0}, scfg = {0};
  wr_quic_tls *ctls, *stls;
  wr_quic_endpoint *sep, *cep;
  wr_quic_callbacks scbs = test_cbs, ccbs = test_cbs;
  struct sockaddr_in bind;
  struct sockaddr_storage sa;
  uvt u;

  memset(&u, 0, sizeof(u));
  uv_test_ctx = &u;
  assert_int_equal(uv_loop_init(&u.loop), 0);
  ccfg.ca_file = ca_path;
  if (uv_use_sni_pick) {
    scfg.sni_pick = sni_pick;
    scfg.sni_release = sni_release;
  } else {
    scfg.cert_file = cert_path;
    scfg.key_file = key_path;
  }
  ccfg.max_udp_payload = scfg.max_udp_payload = payload;
  scfg.retry_always = retry;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &ctls, NULL, 0), WR_OK);
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &scfg, &stls, NULL, 0), WR_OK);
  scbs.on_close = lb_close_cb;
  ccbs.on_close = lb_close_cb;
  ccbs.on_handshake_done = uv_cl_hs;
  ccbs.on_stream_data = uv_cl_data;
  u.sv.echo = 1;

  uv_ip4_addr("127.0.0.1", 0, &bind); /* free port chosen by the kernel */
  assert_int_equal(wr_quic_endpoint_server(&u.loop, stls, &scfg,
                                           (struct sockaddr *)&bind, &scbs,
                                           NULL, &u.sv, &sep),
                   WR_OK);
  assert_int_equal(wr_quic_endpoint_addr(sep, &sa), WR_OK);
  assert_int_not_equal(((struct sockaddr_in *)&sa)->sin_port, 0);
  assert_int_equal(wr_quic_endpoint_client(&u.loop, ctls, &ccfg,
                                           (struct sockaddr *)&sa, &ccbs, &u.cl,
                                           &cep, &u.cconn),
                   WR_OK);
  uv_timer_init(&u.loop, &u.guard);
  u.guard.data = &u;
  uv_timer_start(&u.guard, guard_cb, 5000, 0);
  uv_run(&u.loop, UV_RUN_DEFAULT);

  assert_false(u.timed_out);
  assert_true(u.cl.hs_done);
  assert_true(u.sv.hs_done);
  assert_int_equal(u.sv.rxlen[0], uv_msglen);
  assert_int_equal(u.cl.rxlen[0], uv_msglen);
  assert_memory_equal(u.cl.rx[0], uv_msg, uv_msglen);
  assert_true(u.cl.rxfin[0]);
  assert_true(u.sv.closed);
  assert_int_equal(u.sv.ci.code, 0);
  assert_true(u.sv.ci.app);

  gso[0] = wr_quic_endpoint_gso_sends(cep);
  gso[1] = wr_quic_endpoint_gso_sends(sep);
  if (st) wr_quic_endpoint_get_stats(sep, st);
  wr_quic_endpoint_free(sep);
  wr_quic_endpoint_free(cep);
  uv_close((uv_handle_t *)&u.guard, NULL);
  unit_loop_finish(&u.loop);
  wr_quic_tls_free(ctls);
  wr_quic_tls_free(stls);
  free(u.cl.rx[0]);
  free(u.sv.rx[0]);
}

static void uv_echo(size_t payload, uint64_t gso[2]) { uv_echo_ex(payload, 0, gso, NULL); }


static void test_uv_loopback_echo(void **state) {
  uint64_t gso[2];
  (void)state;
  uv_echo(0, gso);
}

/* A server without certificate files takes its credentials from sni_pick
 * for the name the client sent, and hands them back once the connection
 * is freed. */
static void test_uv_echo_sni_pick(void **state) {
  uint64_t gso[2];
  (void)state;
  sni_picked = sni_released = 0;
  uv_use_sni_pick = 1;
  uv_echo(0, gso);
  uv_use_sni_pick = 0;
  assert_int_equal(sni_picked, 1);
  assert_string_equal(sni_seen, WR_QUIC_SNI_DEFAULT);
  assert_int_equal(sni_released, 1);
}

/* 512 KiB each way in Internet-sized packets: runs of equal packets leave
 * with UDP GSO (one send for many datagrams) and arrive intact. */
static void test_uv_gso_bulk(void **state) {
  static uint8_t big[512 * 1024];
  uint64_t gso[2];
  (void)state;
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i * 131 + (i >> 10));
  uv_msg = big;
  uv_msglen = sizeof(big);
  uv_echo(WR_QUIC_INTERNET_PAYLOAD, gso);
  uv_msg = (const uint8_t *)"ping over loopback";
  uv_msglen = 18;
  assert_true(gso[0] > 0);
  assert_true(gso[1] > 0);
}

/* A restarted server (same UDP port, same reset key) answers the client's
 * next packet with a Stateless Reset: the client learns at once, long
 * before its 5 s idle timeout. */
typedef struct restart_ctx {
  uv_loop_t loop;
  uv_timer_t guard, restart;
  wr_quic_tls *stls;
  wr_quic_config scfg;
  wr_quic_endpoint *sep;
  struct sockaddr_storage sa;
  side cl, sv;
  uint64_t t_restart, t_closed;
  int timed_out;
} restart_ctx;

static restart_ctx *rctx;

static void rs_restart_cb(uv_timer_t *t) {
  restart_ctx *r = t->data;
  wr_quic_callbacks cbs = test_cbs;
  /* The old server vanishes without a word, as a killed process would. */
  wr_quic_endpoint_free(r->sep);
  r->sep = NULL;
  assert_int_equal(wr_quic_endpoint_server(&r->loop, r->stls, &r->scfg, (struct sockaddr *)&r->sa,
                                           &cbs, NULL, &r->sv, &r->sep),
                   WR_OK);
  r->t_restart = uv_hrtime();
}

static void rs_cl_hs(wr_quic_conn *c, void *user) {
  side *s = user;
  s->hs_done = 1;
  uv_timer_start(&rctx->restart, rs_restart_cb, 100, 0);
}

static void rs_cl_close(wr_quic_conn *c, const wr_quic_close_info *ci, void *user) {
  on_close(c, ci, user);
  rctx->t_closed = uv_hrtime();
  uv_stop(&rctx->loop);
}

static void rs_guard_cb(uv_timer_t *t) {
  restart_ctx *r = t->data;
  r->timed_out = 1;
  uv_stop(&r->loop);
}

static void test_stateless_reset_after_restart(void **state) {
  static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
  wr_quic_config ccfg = {0};
  wr_quic_tls *ctls;
  wr_quic_endpoint *cep;
  wr_quic_conn *cconn;
  wr_quic_callbacks ccbs = test_cbs, scbs = test_cbs;
  struct sockaddr_in bind;
  restart_ctx r;
  (void)state;

  memset(&r, 0, sizeof(r));
  rctx = &r;
  assert_int_equal(uv_loop_init(&r.loop), 0);
  ccfg.ca_file = ca_path;
  r.scfg.cert_file = cert_path;
  r.scfg.key_file = key_path;
  r.scfg.reset_key = key;
  r.scfg.reset_key_len = sizeof(key);
  assert_int_equal(wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &ctls, NULL, 0), WR_OK);
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &r.scfg, &r.stls, NULL, 0), WR_OK);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(wr_quic_endpoint_server(&r.loop, r.stls, &r.scfg, (struct sockaddr *)&bind,
                                           &scbs, NULL, &r.sv, &r.sep),
                   WR_OK);
  assert_int_equal(wr_quic_endpoint_addr(r.sep, &r.sa), WR_OK);
  ccbs.on_handshake_done = rs_cl_hs;
  ccbs.on_close = rs_cl_close;
  assert_int_equal(wr_quic_endpoint_client(&r.loop, ctls, &ccfg, (struct sockaddr *)&r.sa, &ccbs,
                                           &r.cl, &cep, &cconn),
                   WR_OK);
  uv_timer_init(&r.loop, &r.guard);
  uv_timer_init(&r.loop, &r.restart);
  r.guard.data = r.restart.data = &r;
  uv_timer_start(&r.guard, rs_guard_cb, 4000, 0); /* below the 5 s idle timeout */
  uv_run(&r.loop, UV_RUN_DEFAULT);

  assert_false(r.timed_out);
  assert_true(r.cl.hs_done);
  assert_true(r.cl.closed);
  assert_true(r.cl.ci.reset);
  assert_false(r.cl.ci.idle);
  assert_non_null(strstr(r.cl.ci.msg, "stateless reset"));
  assert_true(r.t_closed > r.t_restart);

  wr_quic_endpoint_free(r.sep);
  wr_quic_endpoint_free(cep);
  uv_close((uv_handle_t *)&r.guard, NULL);
  uv_close((uv_handle_t *)&r.restart, NULL);
  unit_loop_finish(&r.loop);
  wr_quic_tls_free(ctls);
  wr_quic_tls_free(r.stls);
}

/* --- (c) handshake-flood defences of a server endpoint -------------------- */

/* Our client's first datagram: a real ClientHello in a padded Initial, as
 * an attacker replaying our own client code would send it. |alpn| NULL:
 * the default ("argotunnel"); "": none. */
static size_t client_initial(uint8_t *buf, size_t cap, const char *alpn) {
  size_t n;
  assert_int_equal(
      quic_client_initial(ca_path, alpn, PAIR_INTERNET, PAIR_INTERNET + 1, buf, cap, &n), WR_OK);
  assert_true(n >= 1200);
  return n;
}

/* A server endpoint whose owner counts what it hears. */
typedef struct flood {
  uv_loop_t loop;
  wr_quic_tls *stls;
  wr_quic_config scfg;
  wr_quic_endpoint *ep;
  side sv;
  int accepted;
  uv_timer_t guard;
  int timed_out;
} flood;

static void flood_on_accept(wr_quic_endpoint *ep, wr_quic_conn *c, void *user) {
  (void)ep;
  (void)c;
  ((flood *)user)->accepted++;
}

static void flood_on_close(wr_quic_conn *c, const wr_quic_close_info *ci, void *user) {
  (void)c;
  (void)ci;
  ((flood *)user)->sv.closed++;
}

static void flood_guard_cb(uv_timer_t *t) {
  flood *f = t->data;
  f->timed_out = 1;
  uv_stop(&f->loop);
}

static void flood_start(flood *f) {
  wr_quic_callbacks cbs = test_cbs;
  struct sockaddr_in bind;
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->scfg.cert_file = cert_path;
  f->scfg.key_file = key_path;
  assert_int_equal(wr_quic_tls_new(WR_QUIC_SERVER, &f->scfg, &f->stls, NULL, 0), WR_OK);
  cbs.on_close = flood_on_close;
  uv_ip4_addr("127.0.0.1", 0, &bind);
  assert_int_equal(wr_quic_endpoint_server(&f->loop, f->stls, &f->scfg, (struct sockaddr *)&bind,
                                           &cbs, flood_on_accept, f, &f->ep),
                   WR_OK);
  uv_timer_init(&f->loop, &f->guard);
  f->guard.data = f;
}

static void flood_stop(flood *f) {
  wr_quic_endpoint_free(f->ep);
  uv_close((uv_handle_t *)&f->guard, NULL);
  unit_loop_finish(&f->loop);
  wr_quic_tls_free(f->stls);
}

static struct sockaddr_storage v4_from(uint32_t host, uint16_t port) {
  struct sockaddr_storage ss;
  struct sockaddr_in *a = (struct sockaddr_in *)&ss;
  memset(&ss, 0, sizeof(ss));
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(host);
  a->sin_port = htons(port);
  return ss;
}

/* 2001:db8:0:|net|::|host| */
static struct sockaddr_storage v6_from(uint16_t net, uint16_t host, uint16_t port) {
  struct sockaddr_storage ss;
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
  memset(&ss, 0, sizeof(ss));
  a->sin6_family = AF_INET6;
  a->sin6_addr.s6_addr[0] = 0x20;
  a->sin6_addr.s6_addr[1] = 0x01;
  a->sin6_addr.s6_addr[2] = 0x0d;
  a->sin6_addr.s6_addr[3] = 0xb8;
  a->sin6_addr.s6_addr[6] = (uint8_t)(net >> 8);
  a->sin6_addr.s6_addr[7] = (uint8_t)net;
  a->sin6_addr.s6_addr[14] = (uint8_t)(host >> 8);
  a->sin6_addr.s6_addr[15] = (uint8_t)host;
  a->sin6_port = htons(port);
  return ss;
}

/* Injects the |n| initials |ini| (|len| bytes each) into f's endpoint, the
 * i-th from |from[i]|; the endpoint must take each (WR_OK). */
static void inject_burst(flood *f, const struct sockaddr_storage *from, int n,
                         uint8_t (*ini)[1500], const size_t *len) {
  for (int i = 0; i < n; i++)
    assert_int_equal(
        wr_quic_endpoint_inject(f->ep, (const struct sockaddr *)&from[i], ini[i], len[i]), WR_OK);
}

/* Real ClientHellos beyond the caps create no connection: per source (an
 * IPv4 address, an IPv6 /64) and in total. What the endpoint holds is
 * counted in objects: connections and tracked sources. */
static void test_half_open_caps(void **state) {
  static uint8_t ini[64][1500];
  size_t len[64];
  struct sockaddr_storage from[20];
  wr_quic_endpoint_stats st;
  flood f;
  (void)state;
  for (int i = 0; i < 64; i++) len[i] = client_initial(ini[i], sizeof(ini[i]), NULL);

  memset(&f, 0, sizeof(f));
  f.scfg.retry_half_open = f.scfg.retry_half_open_per_source = f.scfg.retry_rate = UINT_MAX;
  f.scfg.max_half_open = 12;
  f.scfg.max_half_open_per_source = 5;
  flood_start(&f);
  /* 20 from one IPv4 address (different ports): 5 get a connection. */
  for (int i = 0; i < 20; i++) from[i] = v4_from(PAIR_INTERNET, (uint16_t)(1000 + i));
  inject_burst(&f, from, 20, ini, len);
  wr_quic_endpoint_get_stats(f.ep, &st);
  assert_int_equal(st.conns, 5);
  assert_int_equal(st.half_open, 5);
  assert_int_equal(st.sources, 1);
  assert_int_equal(st.dropped, 15);
  /* 20 from one IPv6 /64 (different hosts in it): one source, 5 more. */
  for (int i = 0; i < 20; i++) from[i] = v6_from(1, (uint16_t)(1 + i), 443);
  inject_burst(&f, from, 20, ini + 20, len + 20);
  wr_quic_endpoint_get_stats(f.ep, &st);
  assert_int_equal(st.conns, 10);
  assert_int_equal(st.sources, 2);
  /* 20 from 20 other sources: the total cap (12) stops them after 2. */
  for (int i = 0; i < 20; i++) from[i] = v6_from((uint16_t)(100 + i), 1, 443);
  inject_burst(&f, from, 20, ini + 40, len + 40);
  wr_quic_endpoint_get_stats(f.ep, &st);
  assert_int_equal(st.conns, 12);
  assert_int_equal(st.half_open, 12);
  assert_int_equal(st.sources, 4);
  assert_int_equal(st.accepted, 12);
  assert_int_equal(st.dropped, 48);
  assert_int_equal(st.retries, 0);
  /* Nobody completed a handshake: the owner heard of none of them. */
  assert_int_equal(f.accepted, 0);
  assert_int_equal(f.sv.closed, 0);
  flood_stop(&f);

  /* With Retry on (threshold 3 per source), the rest of one source's
   * burst is answered statelessly. */
  memset(&f, 0, sizeof(f));
  f.scfg.retry_half_open_per_source = 3;
  flood_start(&f);
  for (int i = 0; i < 20; i++) from[i] = v4_from(PAIR_INTERNET, (uint16_t)(2000 + i));
  inject_burst(&f, from, 20, ini, len);
  wr_quic_endpoint_get_stats(f.ep, &st);
  assert_int_equal(st.conns, 3);
  assert_int_equal(st.retries, 17);
  assert_int_equal(st.dropped, 0);
  flood_stop(&f);
}

/* Half-open connections end at the handshake timeout (200 ms here), and
 * one refused by TLS (no ALPN) once its closing period is over; the
 * endpoint frees them all itself and the owner never hears of them. */
static void test_half_open_expire(void **state) {
  uint8_t ini[3][1500];
  size_t len[3];
  struct sockaddr_storage from[3];
  wr_quic_endpoint_stats st;
  flood f;
  (void)state;
  len[0] = client_initial(ini[0], sizeof(ini[0]), NULL);
  len[1] = client_initial(ini[1], sizeof(ini[1]), NULL);
  len[2] = client_initial(ini[2], sizeof(ini[2]), "");
  memset(&f, 0, sizeof(f));
  f.scfg.handshake_timeout_ms = 200;
  flood_start(&f);
  for (int i = 0; i < 3; i++) from[i] = v4_from(0x7f000001u, (uint16_t)(3000 + i));
  inject_burst(&f, from, 3, ini, len);
  wr_quic_endpoint_get_stats(f.ep, &st);
  assert_int_equal(st.conns, 3);
  assert_int_equal(st.half_open, 3);
  /* Only the endpoint's own timers run from here; the guard is a safety
   * net, far beyond the timeouts involved. */
  uv_timer_start(&f.guard, flood_guard_cb, 20000, 0);
  while (!f.timed_out && wr_quic_endpoint_nconns(f.ep) > 0) uv_run(&f.loop, UV_RUN_ONCE);
  assert_false(f.timed_out);
  wr_quic_endpoint_get_stats(f.ep, &st);
  assert_int_equal(st.conns, 0);
  assert_int_equal(st.half_open, 0);
  assert_int_equal(st.sources, 0);
  assert_int_equal(f.accepted, 0);
  assert_int_equal(f.sv.closed, 0);
  uv_timer_stop(&f.guard);
  flood_stop(&f);
}

/* A Retry token that does not verify (forged, or bound to another address)
 * gets a stateless INVALID_TOKEN close and no connection. */
static void test_retry_token_checked(void **state) {
  uint8_t ini[1500], pkt[1600];
  size_t len, o = 0;
  wr_quic_endpoint_stats st;
  flood f;
  (void)state;
  len = client_initial(ini, sizeof(ini), NULL);
  /* The same header with a 40-byte token that starts like a Retry token;
   * the (now misaligned) protected payload stays behind it. */
  size_t dcil = ini[5], scil = ini[6 + dcil], hdr = 7 + dcil + scil;
  assert_int_equal(ini[hdr], 0); /* no token */
  memcpy(pkt, ini, hdr);
  o = hdr;
  pkt[o++] = 40;
  pkt[o++] = 0xb6; /* NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY */
  for (int i = 1; i < 40; i++) pkt[o++] = (uint8_t)(i * 37);
  memcpy(pkt + o, ini + hdr + 1, len - hdr - 1);
  o += len - hdr - 1;
  memset(&f, 0, sizeof(f));
  flood_start(&f);
  struct sockaddr_storage a = v4_from(0x7f000001u, 4000);
  assert_int_equal(wr_quic_endpoint_inject(f.ep, (struct sockaddr *)&a, pkt, o), WR_OK);
  wr_quic_endpoint_get_stats(f.ep, &st);
  assert_int_equal(st.bad_tokens, 1);
  assert_int_equal(st.conns, 0);
  assert_int_equal(st.accepted, 0);
  flood_stop(&f);
}

/* Every connection must come back with a Retry token: our client follows
 * the Retry (ngtcp2 client side), checks the server's transport parameters
 * (original_destination_connection_id, retry_source_connection_id) and
 * the echo over a stream works as without it. */
static void test_uv_echo_through_retry(void **state) {
  uint64_t gso[2];
  wr_quic_endpoint_stats st;
  (void)state;
  uv_echo_ex(0, 1, gso, &st);
  assert_int_equal(st.retries, 1);
  assert_int_equal(st.accepted, 1);
  assert_int_equal(st.bad_tokens, 0);
}

int main(void) {
  return UNIT_RUN(
      group_setup, group_teardown,
      UNIT_TESTS(test_handshake_streams_datagrams, test_packet_size_by_peer,
                 test_stream_reset_stop_sending, test_idle_timeout, test_server_tls_session_dropped,
                 test_wrong_ca,
                 test_no_alpn_refused, test_tls_config_errors, test_uv_loopback_echo, test_uv_echo_sni_pick,
                 test_uv_gso_bulk, test_stateless_reset_after_restart, test_half_open_caps,
                 test_half_open_expire, test_retry_token_checked, test_uv_echo_through_retry));
}
