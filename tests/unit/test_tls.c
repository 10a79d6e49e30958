/* TLS over memory buffers: two sessions wired together in memory, with a
 * private CA made by edge/pki. */
#include "unit.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "net/tls.h"

static unit_pki pki;

static int group_setup(void **state) {
  static const char *const dns[] = {"localhost", "example.test"};
  (void)state;
  return unit_pki_make(&pki, "wr-tls", "example.test", dns, sizeof(dns) / sizeof(dns[0]));
}

static int group_teardown(void **state) {
  (void)state;
  unit_pki_remove(&pki);
  return 0;
}

/* --- harness ------------------------------------------------------------- */

typedef struct pair {
  wr_tls_creds *cc, *sc;
  wr_tls *cli, *srv;
  int crv, srv_rv;
} pair;

static wr_tls_creds *client_creds(const char *ca, int no_verify) {
  wr_tls_client_config cfg = {.ca_file = ca, .no_verify = no_verify};
  wr_tls_creds *c = NULL;
  char err[256] = "";
  assert_int_equal(wr_tls_creds_client(&cfg, &c, err, sizeof(err)), WR_OK);
  return c;
}

static wr_tls_creds *server_creds(void) {
  wr_tls_server_config cfg = {pki.cert, pki.key};
  wr_tls_creds *c = NULL;
  char err[256] = "";
  assert_int_equal(wr_tls_creds_server(&cfg, &c, err, sizeof(err)), WR_OK);
  return c;
}

/* Moves every pending ciphertext byte of |from| into |to|; returns how many. */
static size_t pump(wr_tls *from, wr_tls *to) {
  const uint8_t *p;
  size_t n = wr_tls_pending(from, &p);
  if (n) {
    assert_int_equal(wr_tls_feed(to, p, n), WR_OK);
    wr_tls_sent(from, n);
  }
  return n;
}

static void pair_open(pair *pp, const char *ca, int no_verify, const char *sni,
                      const char *verify) {
  memset(pp, 0, sizeof(*pp));
  pp->cc = client_creds(ca, no_verify);
  pp->sc = server_creds();
  assert_int_equal(wr_tls_client_new(pp->cc, sni, verify, NULL, &pp->cli), WR_OK);
  assert_int_equal(wr_tls_server_new(pp->sc, &pp->srv), WR_OK);
}

/* Runs both handshakes until both finish or one fails (and the alert it
 * sends has reached the other side). */
static void pair_handshake(pair *pp) {
  pp->crv = pp->srv_rv = WR_AGAIN;
  for (int i = 0; i < 20; i++) {
    if (pp->crv == WR_AGAIN) pp->crv = wr_tls_handshake(pp->cli);
    size_t moved = pump(pp->cli, pp->srv);
    if (pp->srv_rv == WR_AGAIN) pp->srv_rv = wr_tls_handshake(pp->srv);
    moved += pump(pp->srv, pp->cli);
    if (pp->crv != WR_AGAIN && pp->srv_rv != WR_AGAIN) return;
    if (!moved && (pp->crv != WR_AGAIN || pp->srv_rv != WR_AGAIN)) {
      /* One side failed and has nothing more to say; let the other see the
       * alert it already got. */
      if (pp->crv == WR_AGAIN) pp->crv = wr_tls_handshake(pp->cli);
      if (pp->srv_rv == WR_AGAIN) pp->srv_rv = wr_tls_handshake(pp->srv);
      return;
    }
  }
}

#define ANY INT_MIN /* pair_shake: the server's result is not checked */

/* pair_open and pair_handshake: the client's handshake must end with |crv|
 * and the server's with |srv_rv| (unless ANY). */
static void pair_shake(pair *pp, const char *ca, int no_verify, const char *sni,
                       const char *verify, int crv, int srv_rv) {
  pair_open(pp, ca, no_verify, sni, verify);
  pair_handshake(pp);
  assert_int_equal(pp->crv, crv);
  if (srv_rv != ANY) assert_int_equal(pp->srv_rv, srv_rv);
}

static void pair_close(pair *pp) {
  wr_tls_free(pp->cli);
  wr_tls_free(pp->srv);
  wr_tls_creds_free(pp->cc);
  wr_tls_creds_free(pp->sc);
}

/* Reads all available plaintext from |t| into |buf| (at |*len|). */
static int drain(wr_tls *t, uint8_t *buf, size_t cap, size_t *len, int *eof) {
  for (;;) {
    size_t n;
    int rv = wr_tls_read(t, buf + *len, cap - *len, &n, eof);
    if (rv != WR_OK) return rv;
    if (*eof) return WR_OK;
    *len += n;
  }
}

/* --- tests ------------------------------------------------------------------ */

static void test_handshake_private_ca(void **state) {
  pair pp;
  (void)state;
  pair_shake(&pp, pki.ca, 0, "example.test", NULL, WR_OK, WR_OK);
  assert_string_equal(wr_tls_alpn(pp.cli), "");
  pair_close(&pp);

  /* An IP literal as the name: no SNI, matched against the IP SANs. */
  pair_shake(&pp, pki.ca, 0, "127.0.0.1", NULL, WR_OK, WR_OK);
  pair_close(&pp);

  /* verify_name overrides the SNI name for the check. */
  pair_shake(&pp, pki.ca, 0, "unrelated.test", "localhost", WR_OK, ANY);
  pair_close(&pp);
}

static int contains(const uint8_t *p, size_t n, const char *s) {
  return memmem(p, n, s, strlen(s)) != NULL;
}

static void test_sni_only_for_dns_names(void **state) {
  wr_tls_creds *cc = client_creds(pki.ca, 0);
  wr_tls *t;
  const uint8_t *p;
  size_t n;
  (void)state;
  /* The ClientHello is plaintext: the SNI name is visible in it. */
  assert_int_equal(wr_tls_client_new(cc, "example.test", NULL, "http/1.1", &t), WR_OK);
  assert_int_equal(wr_tls_handshake(t), WR_AGAIN);
  n = wr_tls_pending(t, &p);
  assert_true(n > 0);
  assert_true(contains(p, n, "example.test"));
  assert_true(contains(p, n, "http/1.1"));
  wr_tls_free(t);
  assert_int_equal(wr_tls_client_new(cc, "127.0.0.1", NULL, NULL, &t), WR_OK);
  assert_int_equal(wr_tls_handshake(t), WR_AGAIN);
  n = wr_tls_pending(t, &p);
  assert_false(contains(p, n, "127.0.0.1"));
  wr_tls_free(t);
  wr_tls_creds_free(cc);
}

static void test_unknown_authority(void **state) {
  pair pp;
  (void)state;
  /* The server hears about it through the client's alert. */
  pair_shake(&pp, pki.other_ca, 0, "example.test", NULL, WR_ERR_CRYPTO, WR_ERR_CRYPTO);
  assert_string_equal(wr_tls_errmsg(pp.cli),
                      "tls: failed to verify certificate: x509: certificate signed by unknown "
                      "authority");
  assert_string_equal(wr_tls_errmsg(pp.srv), "remote error: tls: bad certificate");
  pair_close(&pp);
}

static void test_wrong_name(void **state) {
  static const struct {
    const char *name, *err;
  } cases[] = {
      {"other.test", "tls: failed to verify certificate: x509: certificate is valid for "
                     "localhost, example.test, not other.test"},
      {"127.0.0.2", "tls: failed to verify certificate: x509: certificate is valid for "
                    "127.0.0.1, not 127.0.0.2"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    pair pp;
    pair_shake(&pp, pki.ca, 0, cases[i].name, NULL, WR_ERR_CRYPTO, ANY);
    assert_string_equal(wr_tls_errmsg(pp.cli), cases[i].err);
    pair_close(&pp);
  }
}

static void test_no_verify(void **state) {
  pair pp;
  (void)state;
  /* Wrong CA and wrong name, yet accepted. */
  pair_shake(&pp, pki.other_ca, 1, "other.test", NULL, WR_OK, WR_OK);
  pair_close(&pp);
  /* Also without any trust store loaded at all. */
  pair_shake(&pp, NULL, 1, NULL, NULL, WR_OK, ANY);
  pair_close(&pp);
}

/* Sends |len| bytes from |a| to |b| in 100 KiB writes, pumping as it goes
 * (the receiver's 1 MiB unread-ciphertext limit must never trip). */
static void transfer(wr_tls *a, wr_tls *b, size_t len) {
  uint8_t *src = malloc(len), *dst = malloc(len + 1);
  size_t got = 0, off = 0;
  int eof = 0;
  for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 7 + i / 251);
  while (off < len) {
    size_t n = len - off < 100000 ? len - off : 100000;
    assert_int_equal(wr_tls_write(a, src + off, n), WR_OK);
    off += n;
    pump(a, b);
    assert_int_equal(drain(b, dst, len + 1, &got, &eof), WR_AGAIN);
  }
  assert_int_equal(eof, 0);
  assert_int_equal(got, len);
  assert_memory_equal(src, dst, len);
  free(src);
  free(dst);
}

static void test_data_both_ways(void **state) {
  pair pp;
  uint8_t buf[64];
  size_t n;
  int eof;
  (void)state;
  pair_shake(&pp, pki.ca, 0, "localhost", NULL, WR_OK, WR_OK);
  /* Nothing to read yet (TLS 1.3 tickets are off, so nothing at all). */
  assert_int_equal(wr_tls_read(pp.cli, buf, sizeof(buf), &n, &eof), WR_AGAIN);
  assert_int_equal(wr_tls_read(pp.srv, buf, sizeof(buf), &n, &eof), WR_AGAIN);
  transfer(pp.cli, pp.srv, 5);
  transfer(pp.srv, pp.cli, 5);
  transfer(pp.cli, pp.srv, 1 << 20);
  transfer(pp.srv, pp.cli, (1 << 20) + 12345);
  pair_close(&pp);
}

static void test_close_notify_and_truncation(void **state) {
  pair pp;
  uint8_t buf[64];
  size_t n;
  int eof;
  (void)state;
  pair_shake(&pp, pki.ca, 0, "localhost", NULL, WR_OK, ANY);
  /* Data then close_notify in one flight: the data first, then eof. */
  assert_int_equal(wr_tls_write(pp.srv, (const uint8_t *)"bye", 3), WR_OK);
  assert_int_equal(wr_tls_bye(pp.srv), WR_OK);
  pump(pp.srv, pp.cli);
  assert_int_equal(wr_tls_read(pp.cli, buf, sizeof(buf), &n, &eof), WR_OK);
  assert_int_equal(n, 3);
  assert_int_equal(eof, 0);
  assert_int_equal(wr_tls_read(pp.cli, buf, sizeof(buf), &n, &eof), WR_OK);
  assert_int_equal(n, 0);
  assert_int_equal(eof, 1);
  /* The other direction still works after a half close. */
  assert_int_equal(wr_tls_write(pp.cli, (const uint8_t *)"ok", 2), WR_OK);
  pump(pp.cli, pp.srv);
  assert_int_equal(wr_tls_read(pp.srv, buf, sizeof(buf), &n, &eof), WR_OK);
  assert_int_equal(n, 2);
  /* The transport ends without close_notify: truncation. */
  wr_tls_feed_eof(pp.srv);
  assert_int_equal(wr_tls_read(pp.srv, buf, sizeof(buf), &n, &eof), WR_ERR_TRUNC);
  assert_int_equal(eof, 0);
  assert_non_null(strstr(wr_tls_errmsg(pp.srv), "EOF"));
  pair_close(&pp);

  /* Truncated in the middle of a record. */
  pair_open(&pp, pki.ca, 0, "localhost", NULL);
  pair_handshake(&pp);
  const uint8_t *p;
  assert_int_equal(wr_tls_write(pp.cli, (const uint8_t *)"hello", 5), WR_OK);
  size_t len = wr_tls_pending(pp.cli, &p);
  assert_int_equal(wr_tls_feed(pp.srv, p, len - 3), WR_OK);
  assert_int_equal(wr_tls_read(pp.srv, buf, sizeof(buf), &n, &eof), WR_AGAIN);
  wr_tls_feed_eof(pp.srv);
  assert_int_equal(wr_tls_read(pp.srv, buf, sizeof(buf), &n, &eof), WR_ERR_TRUNC);
  pair_close(&pp);
}

static void test_eof_during_handshake(void **state) {
  pair pp;
  (void)state;
  pair_open(&pp, pki.ca, 0, "localhost", NULL);
  assert_int_equal(wr_tls_handshake(pp.cli), WR_AGAIN);
  wr_tls_feed_eof(pp.cli);
  assert_int_equal(wr_tls_handshake(pp.cli), WR_ERR_CRYPTO);
  assert_non_null(strstr(wr_tls_errmsg(pp.cli), "EOF"));
  /* Garbage instead of a ServerHello. */
  assert_int_equal(wr_tls_handshake(pp.srv), WR_AGAIN);
  assert_int_equal(wr_tls_feed(pp.srv, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), WR_OK);
  assert_int_equal(wr_tls_handshake(pp.srv), WR_ERR_CRYPTO);
  assert_non_null(strstr(wr_tls_errmsg(pp.srv), "tls: "));
  pair_close(&pp);
}

static void test_limits_and_misuse(void **state) {
  pair pp;
  uint8_t *big = calloc(1, (1 << 20) + 1), buf[16];
  size_t n;
  int eof;
  (void)state;
  pair_open(&pp, pki.ca, 0, "localhost", NULL);
  /* Not yet: no handshake. */
  assert_int_equal(wr_tls_write(pp.cli, buf, 1), WR_ERR_INVAL);
  assert_int_equal(wr_tls_read(pp.cli, buf, sizeof(buf), &n, &eof), WR_ERR_INVAL);
  assert_int_equal(wr_tls_bye(pp.cli), WR_ERR_INVAL);
  /* At most 1 MiB of unread ciphertext. */
  assert_int_equal(wr_tls_feed(pp.srv, big, (1 << 20) + 1), WR_ERR_LIMIT);
  assert_int_equal(wr_tls_feed(pp.srv, big, 1 << 19), WR_OK);
  assert_int_equal(wr_tls_feed(pp.srv, big, 1 << 19), WR_OK);
  assert_int_equal(wr_tls_feed(pp.srv, big, 1), WR_ERR_LIMIT);
  /* Creds of the wrong role. */
  wr_tls *t = NULL;
  assert_int_equal(wr_tls_client_new(pp.sc, "x", NULL, NULL, &t), WR_ERR_INVAL);
  assert_int_equal(wr_tls_server_new(pp.cc, &t), WR_ERR_INVAL);
  assert_null(t);
  pair_close(&pp);
  free(big);
}

static void test_creds_errors(void **state) {
  wr_tls_creds *c = NULL;
  char err[256] = "";
  char missing[160];
  (void)state;
  snprintf(missing, sizeof(missing), "%s/missing.pem", pki.dir);
  wr_tls_client_config cc = {.ca_file = missing};
  assert_int_equal(wr_tls_creds_client(&cc, &c, err, sizeof(err)), WR_ERR_CRYPTO);
  assert_non_null(strstr(err, "missing.pem"));
  /* A file without certificates (a key). */
  cc.ca_file = pki.key;
  assert_int_equal(wr_tls_creds_client(&cc, &c, err, sizeof(err)), WR_ERR_CRYPTO);
  assert_non_null(strstr(err, "no certificates found"));
  /* Key that does not belong to the certificate (the CA cert). */
  wr_tls_server_config sc = {pki.ca, pki.key};
  assert_int_equal(wr_tls_creds_server(&sc, &c, err, sizeof(err)), WR_ERR_CRYPTO);
  assert_non_null(strstr(err, "ca.pem"));
  assert_null(c);
  /* The system store loads (possibly empty) without error. */
  cc.ca_file = NULL;
  assert_int_equal(wr_tls_creds_client(&cc, &c, err, sizeof(err)), WR_OK);
  wr_tls_creds_free(c);
}

/* A server made with raw GnuTLS and its own priority string: TLS 1.2-only
 * origins must still work, and TLS 1.3 post-handshake messages (KeyUpdate)
 * must not stall reading. */
typedef struct rawbuf {
  uint8_t data[65536];
  size_t len;
} rawbuf;
static rawbuf raw_in, raw_out;
static gnutls_session_t raw_session;

static ssize_t raw_push(gnutls_transport_ptr_t p, const void *d, size_t n) {
  (void)p;
  assert_true(raw_out.len + n <= sizeof(raw_out.data));
  memcpy(raw_out.data + raw_out.len, d, n);
  raw_out.len += n;
  return (ssize_t)n;
}
static ssize_t raw_pull(gnutls_transport_ptr_t p, void *d, size_t n) {
  (void)p;
  if (!raw_in.len) {
    gnutls_transport_set_errno(raw_session, EAGAIN);
    return -1;
  }
  if (n > raw_in.len) n = raw_in.len;
  memcpy(d, raw_in.data, n);
  memmove(raw_in.data, raw_in.data + n, raw_in.len - n);
  raw_in.len -= n;
  return (ssize_t)n;
}

/* Client ciphertext to the raw server. */
static void to_raw(wr_tls *cli) {
  const uint8_t *p;
  size_t n = wr_tls_pending(cli, &p);
  assert_true(raw_in.len + n <= sizeof(raw_in.data));
  memcpy(raw_in.data + raw_in.len, p, n);
  raw_in.len += n;
  wr_tls_sent(cli, n);
}

static void raw_server(const char *prio, gnutls_protocol_t want) {
  gnutls_certificate_credentials_t cred;
  wr_tls_creds *cc = client_creds(pki.ca, 0);
  wr_tls *cli;
  int crv = WR_AGAIN, srv = GNUTLS_E_AGAIN;
  assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
  assert_int_equal(gnutls_certificate_set_x509_key_file(cred, pki.cert, pki.key,
                                                        GNUTLS_X509_FMT_PEM),
                   0);
  assert_int_equal(gnutls_init(&raw_session, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
  assert_int_equal(gnutls_priority_set_direct(raw_session, prio, NULL), 0);
  assert_int_equal(gnutls_credentials_set(raw_session, GNUTLS_CRD_CERTIFICATE, cred), 0);
  gnutls_transport_set_push_function(raw_session, raw_push);
  gnutls_transport_set_pull_function(raw_session, raw_pull);
  raw_in.len = raw_out.len = 0;
  assert_int_equal(wr_tls_client_new(cc, "example.test", NULL, NULL, &cli), WR_OK);
  for (int i = 0; i < 10 && (crv == WR_AGAIN || srv == GNUTLS_E_AGAIN); i++) {
    if (crv == WR_AGAIN) crv = wr_tls_handshake(cli);
    to_raw(cli);
    if (srv == GNUTLS_E_AGAIN) srv = gnutls_handshake(raw_session);
    assert_int_equal(wr_tls_feed(cli, raw_out.data, raw_out.len), WR_OK);
    raw_out.len = 0;
  }
  assert_int_equal(crv, WR_OK);
  assert_int_equal(srv, 0);
  assert_int_equal(gnutls_protocol_get_version(raw_session), want);
  /* TLS 1.3: a KeyUpdate asking for ours, then data, in one flight. */
  if (want == GNUTLS_TLS1_3) assert_int_equal(gnutls_session_key_update(raw_session, GNUTLS_KU_PEER), 0);
  uint8_t buf[16];
  size_t n;
  int eof;
  assert_int_equal(gnutls_record_send(raw_session, "data", 4), 4);
  assert_int_equal(wr_tls_feed(cli, raw_out.data, raw_out.len), WR_OK);
  raw_out.len = 0;
  assert_int_equal(wr_tls_read(cli, buf, sizeof(buf), &n, &eof), WR_OK);
  assert_int_equal(n, 4);
  assert_memory_equal(buf, "data", 4);
  assert_int_equal(wr_tls_read(cli, buf, sizeof(buf), &n, &eof), WR_AGAIN);
  /* Our answer (our own KeyUpdate on 1.3) and data reach the server. */
  assert_int_equal(wr_tls_write(cli, (const uint8_t *)"back", 4), WR_OK);
  to_raw(cli);
  char got[8];
  ssize_t r;
  do r = gnutls_record_recv(raw_session, got, sizeof(got));
  while (r == GNUTLS_E_AGAIN && raw_in.len);
  assert_int_equal(r, 4);
  assert_memory_equal(got, "back", 4);
  wr_tls_free(cli);
  wr_tls_creds_free(cc);
  gnutls_deinit(raw_session);
  gnutls_certificate_free_credentials(cred);
}

static void test_tls12_server(void **state) {
  (void)state;
  raw_server("NORMAL:-VERS-ALL:+VERS-TLS1.2", GNUTLS_TLS1_2);
}

static void test_tls13_key_update(void **state) {
  (void)state;
  raw_server("NORMAL:-VERS-ALL:+VERS-TLS1.3", GNUTLS_TLS1_3);
}

int main(void) {
  return UNIT_RUN(group_setup, group_teardown,
                  UNIT_TESTS(test_handshake_private_ca, test_sni_only_for_dns_names,
                             test_unknown_authority, test_wrong_name, test_no_verify,
                             test_data_both_ways, test_close_notify_and_truncation,
                             test_eof_during_handshake, test_limits_and_misuse, test_creds_errors,
                             test_tls12_server, test_tls13_key_update));
}
