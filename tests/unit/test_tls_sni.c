/* TLS by SNI: the ClientHello reader and name rules (proto/tls_hello.c), the
 * certificate store (edge/certs.c: files, modes, wildcard and exact
 * choice, issuance by the edge CA) and a handshake in memory with the
 * credentials it picks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "edge/certs.h"
#include "edge/pki.h"
#include "lib/err.h"
#include "lib/file.h"
#include "net/tls.h"
#include "proto/tls_hello.h"
#include "unit.h"

/* The first flight of a GnuTLS client for |sni| (NULL: none). */
static size_t client_hello(const char *sni, uint8_t *out, size_t cap) {
  wr_tls_client_config cc = {.no_verify = 1};
  wr_tls_creds *creds;
  wr_tls *t;
  char err[256];
  const uint8_t *p;
  assert_int_equal(wr_tls_creds_client(&cc, &creds, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_tls_client_new(creds, sni, NULL, "http/1.1", &t), WR_OK);
  assert_int_equal(wr_tls_handshake(t), WR_AGAIN);
  size_t n = wr_tls_pending(t, &p);
  assert_true(n > 0 && n <= cap);
  memcpy(out, p, n);
  wr_tls_free(t);
  wr_tls_creds_free(creds);
  return n;
}

static void test_hello_sni(void **state) {
  uint8_t h[4096];
  char sni[256];
  (void)state;
  size_t n = client_hello("App.Example.TEST", h, sizeof(h));
  assert_int_equal(wr_tls_hello_sni(h, n, sni, sizeof(sni)), WR_OK);
  assert_string_equal(sni, "app.example.test");
  /* Every shorter prefix asks for more. */
  for (size_t i = 0; i < n; i += 7) assert_int_equal(wr_tls_hello_sni(h, i, sni, sizeof(sni)), WR_AGAIN);
  /* No SNI (an IP literal is not sent). */
  n = client_hello("127.0.0.1", h, sizeof(h));
  assert_int_equal(wr_tls_hello_sni(h, n, sni, sizeof(sni)), WR_OK);
  assert_string_equal(sni, "");
  /* Plain HTTP is not a ClientHello. */
  const char *get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  assert_int_equal(wr_tls_hello_sni((const uint8_t *)get, strlen(get), sni, sizeof(sni)), WR_ERR_PROTO);
}

/* The same ClientHello split over two records parses the same. */
static void test_hello_split_records(void **state) {
  uint8_t h[4096], s[4200];
  char sni[256];
  (void)state;
  size_t n = client_hello("x.example.test", h, sizeof(h));
  size_t body = n - 5, first = 40;
  memcpy(s, h, 5);
  s[3] = (uint8_t)(first >> 8);
  s[4] = (uint8_t)first;
  memcpy(s + 5, h + 5, first);
  memcpy(s + 5 + first, h, 5);
  s[5 + first + 3] = (uint8_t)((body - first) >> 8);
  s[5 + first + 4] = (uint8_t)(body - first);
  memcpy(s + 10 + first, h + 5 + first, body - first);
  assert_int_equal(wr_tls_hello_sni(s, n + 5, sni, sizeof(sni)), WR_OK);
  assert_string_equal(sni, "x.example.test");
  assert_int_equal(wr_tls_hello_sni(s, 5 + first + 3, sni, sizeof(sni)), WR_AGAIN);
  /* A lying handshake length inside the record is malformed, not a hang. */
  h[5 + 1] = 0xff;
  assert_int_equal(wr_tls_hello_sni(h, n, sni, sizeof(sni)), WR_ERR_PROTO);
}

static void test_alert_record(void **state) {
  uint8_t r[7];
  (void)state;
  wr_tls_alert_record(r, WR_TLS_ALERT_UNRECOGNIZED_NAME);
  static const uint8_t want[7] = {21, 3, 3, 0, 2, 2, 112};
  assert_memory_equal(r, want, 7);
}

static void test_name_rules(void **state) {
  (void)state;
  assert_true(wr_tls_name_match("app.example.test", "app.example.test"));
  assert_true(wr_tls_name_match("APP.example.test.", "app.example.test"));
  assert_true(wr_tls_name_match("*.example.test", "app.example.test"));
  assert_false(wr_tls_name_match("*.example.test", "example.test"));
  assert_false(wr_tls_name_match("*.example.test", "a.b.example.test"));
  assert_false(wr_tls_name_match("*.example.test", ".example.test"));
  assert_false(wr_tls_name_match("*.example.test", "app.example.testx"));
  assert_false(wr_tls_name_match("a*.example.test", "ab.example.test"));
  assert_false(wr_tls_name_match("app.example.test", "other.example.test"));
  assert_true(wr_tls_name_valid("*.example.test", 1));
  assert_false(wr_tls_name_valid("*.example.test", 0));
  assert_false(wr_tls_name_valid("*.test", 1));
  assert_false(wr_tls_name_valid("a..b", 0));
  assert_false(wr_tls_name_valid("a.b.", 0));
  assert_false(wr_tls_name_valid("a b.c", 0));
  assert_false(wr_tls_name_valid("", 0));
}

/* ---- the store ----------------------------------------------------------------- */

typedef struct fx {
  char dir[256];
  wr_pem_pair ca;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  char err[256];
  unit_tmpdir(f->dir, sizeof(f->dir), "tls_sni");
  if (wr_pki_init_dir(f->dir, "example.test", err, sizeof(err)) != WR_OK) return -1;
  if (wr_pki_load_pair(f->dir, WR_PKI_CA_CERT, WR_PKI_CA_KEY, &f->ca, err, sizeof(err)) != WR_OK)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  wr_pem_pair_free(&f->ca);
  unit_rm_rf(f->dir);
  free(f);
  return 0;
}

/* A certificate for |names| from an issuer of its own (an "operator's" CA
 * the clients in this test do not need). */
static void make_leaf(const char *const *names, size_t n, wr_pem_pair *out) {
  wr_pem_pair ca;
  char err[256];
  wr_pki_req cr = {.common_name = "Operator CA", .days = 30, .is_ca = 1};
  wr_pki_req lr = {.common_name = names[0], .dns = names, .n_dns = n, .days = 30};
  assert_int_equal(wr_pki_issue(NULL, &cr, &ca, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_pki_issue(&ca, &lr, out, err, sizeof(err)), WR_OK);
  wr_pem_pair_free(&ca);
}

static void test_add_list_delete(void **state) {
  fx *f = *state;
  wr_pem_pair a, b;
  wr_cert_info info, *list;
  size_t n;
  char err[256], path[512];
  struct stat st;
  const char *an[] = {"*.example.test"}, *bn[] = {"www.example.test", "example.test"};
  make_leaf(an, 1, &a);
  make_leaf(bn, 2, &b);
  assert_int_equal(wr_certs_add(f->dir, a.cert, a.key, &info, err, sizeof(err)), WR_OK);
  assert_string_equal(info.names[0], "*.example.test");
  snprintf(path, sizeof(path), "%s/certs/%s.key", f->dir, info.id);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* A key of another certificate is refused and nothing is written. */
  assert_int_not_equal(wr_certs_add(f->dir, b.cert, a.key, NULL, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_certs_list(f->dir, &list, &n), WR_OK);
  assert_int_equal(n, 1);
  free(list);
  assert_int_equal(wr_certs_add(f->dir, b.cert, b.key, NULL, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_certs_list(f->dir, &list, &n), WR_OK);
  assert_int_equal(n, 2);
  assert_string_equal(list[0].names[0], "*.example.test");
  assert_string_equal(list[1].names[0], "www.example.test");
  assert_true(wr_cert_info_in_zone(&list[1], "example.test"));
  assert_false(wr_cert_info_in_zone(&list[1], "other.test"));
  free(list);
  assert_int_equal(wr_certs_delete(f->dir, info.id), WR_OK);
  assert_int_equal(wr_certs_delete(f->dir, info.id), WR_ERR_NOTFOUND);
  assert_int_equal(wr_certs_delete(f->dir, "../ca"), WR_ERR_INVAL);
  assert_int_equal(stat(path, &st), -1);
  assert_int_equal(wr_certs_list(f->dir, &list, &n), WR_OK);
  assert_int_equal(n, 1);
  free(list);
  /* Garbage is refused. */
  assert_int_not_equal(wr_certs_add(f->dir, "nope", "nope", NULL, err, sizeof(err)), WR_OK);
  wr_pem_pair_free(&a);
  wr_pem_pair_free(&b);
}

/* Runs a handshake between a client trusting the edge CA and a server with
 * |r|'s credentials; returns the client's result. */
static int handshake(fx *f, wr_cert *r, const char *name) {
  char ca[512], err[256];
  snprintf(ca, sizeof(ca), "%s/ca.pem", f->dir);
  wr_tls_client_config cc = {.ca_file = ca};
  wr_tls_creds *cl;
  wr_tls *c, *s;
  assert_int_equal(wr_tls_creds_client(&cc, &cl, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_tls_client_new(cl, name, NULL, "http/1.1", &c), WR_OK);
  assert_int_equal(wr_tls_server_new_opts(wr_cert_creds(r), 0, "http/1.1", &s), WR_OK);
  int rc = WR_AGAIN, rs = WR_AGAIN;
  for (int i = 0; i < 10 && (rc == WR_AGAIN || rs == WR_AGAIN); i++) {
    const uint8_t *p;
    size_t n;
    rc = wr_tls_handshake(c);
    if ((n = wr_tls_pending(c, &p))) {
      wr_tls_feed(s, p, n);
      wr_tls_sent(c, n);
    }
    rs = wr_tls_handshake(s);
    if ((n = wr_tls_pending(s, &p))) {
      wr_tls_feed(c, p, n);
      wr_tls_sent(s, n);
    }
    if (rc < 0 && rc != WR_AGAIN) break;
  }
  if (rc == WR_OK) assert_string_equal(wr_tls_alpn(s), "http/1.1");
  wr_tls_free(c);
  wr_tls_free(s);
  wr_tls_creds_free(cl);
  return rc;
}

static void test_pick(void **state) {
  fx *f = *state;
  wr_pem_pair w, e;
  wr_certs *cs;
  char err[256];
  const char *wn[] = {"*.example.test"}, *en[] = {"app.example.test"};
  make_leaf(wn, 1, &w);
  make_leaf(en, 1, &e);
  assert_int_equal(wr_certs_open(f->dir, &cs, err, sizeof(err)), WR_OK);
  assert_null(wr_certs_uploaded(cs, "app.example.test"));
  /* Issued by the edge CA: a client trusting ca.pem accepts it. */
  wr_cert *r = wr_certs_issued(cs, "app.example.test");
  assert_non_null(r);
  assert_false(wr_cert_uploaded(r));
  assert_int_equal(handshake(f, r, "app.example.test"), WR_OK);
  /* ... and it is not valid for another name. */
  assert_int_not_equal(handshake(f, r, "other.example.test"), WR_OK);
  wr_cert *again = wr_certs_issued(cs, "app.example.test");
  assert_ptr_equal(again, r); /* cached */
  wr_cert_release(again);
  wr_cert_release(r);
  assert_null(wr_certs_issued(cs, "bad name"));
  wr_certs_free(cs);

  /* Uploaded: the exact name wins over the wildcard; the wildcard covers
   * one label only. A fresh store sees the files at once. */
  assert_int_equal(wr_certs_add(f->dir, w.cert, w.key, NULL, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_certs_add(f->dir, e.cert, e.key, NULL, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_certs_open(f->dir, &cs, err, sizeof(err)), WR_OK);
  wr_cert *x = wr_certs_uploaded(cs, "app.example.test");
  wr_cert *y = wr_certs_uploaded(cs, "www.example.test");
  assert_non_null(x);
  assert_non_null(y);
  assert_true(wr_cert_uploaded(x));
  assert_ptr_not_equal(x, y);
  assert_null(wr_certs_uploaded(cs, "a.b.example.test"));
  assert_null(wr_certs_uploaded(cs, "example.test"));
  assert_null(wr_certs_uploaded(cs, "app.other.test"));
  /* References outlive the store. */
  wr_certs_free(cs);
  assert_non_null(wr_cert_creds(x));
  wr_cert_release(x);
  wr_cert_release(y);
  wr_pem_pair_free(&w);
  wr_pem_pair_free(&e);
}

/* ACME certificates: DIR/acme/certs/<host>.{pem,key}; a pair caught half
 * replaced (a renewal writes the key, then the chain) keeps the old
 * credentials for one more rescan, and goes if it is still broken. */
static void write_pair(const char *dir, const char *host, const wr_pem_pair *p, int key_only) {
  char path[512];
  /* As the ACME manager writes them: a temporary file renamed into place. */
  snprintf(path, sizeof(path), "%s/acme/certs/%s.key", dir, host);
  assert_int_equal(wr_file_write(path, p->key, strlen(p->key), 0600, 0), WR_OK);
  if (key_only) return;
  snprintf(path, sizeof(path), "%s/acme/certs/%s.pem", dir, host);
  assert_int_equal(wr_file_write(path, p->cert, strlen(p->cert), 0644, 0), WR_OK);
}

static void test_acme_files(void **state) {
  fx *f = *state;
  wr_pem_pair a, b;
  wr_certs *cs;
  char err[256], d[512];
  const char *an[] = {"app.example.test"};
  make_leaf(an, 1, &a);
  make_leaf(an, 1, &b);
  snprintf(d, sizeof(d), "%s/acme/certs", f->dir);
  assert_int_equal(wr_mkdirs(d, 0700), WR_OK);
  write_pair(f->dir, "app.example.test", &a, 0);
  assert_int_equal(wr_certs_open(f->dir, &cs, err, sizeof(err)), WR_OK);
  wr_cert *r = wr_certs_acme(cs, "app.example.test");
  assert_non_null(r);
  assert_string_equal(wr_cert_source(r), "ACME");
  assert_null(wr_certs_uploaded(cs, "app.example.test"));
  assert_null(wr_certs_acme(cs, "www.example.test"));
  assert_non_null(wr_cert_creds(r));
  /* Half replaced: b's key with a's chain. The old pair still answers. */
  write_pair(f->dir, "app.example.test", &b, 1);
  sleep(2);
  wr_cert *r2 = wr_certs_acme(cs, "app.example.test");
  assert_ptr_equal(r2, r);
  wr_cert_release(r2);
  /* Still broken a rescan later: gone. */
  sleep(2);
  assert_null(wr_certs_acme(cs, "app.example.test"));
  /* Complete: the new pair. */
  write_pair(f->dir, "app.example.test", &b, 0);
  sleep(2);
  r2 = wr_certs_acme(cs, "app.example.test");
  assert_non_null(r2);
  assert_ptr_not_equal(r2, r);
  wr_cert_release(r2);
  wr_cert_release(r);
  wr_certs_free(cs);
  wr_pem_pair_free(&a);
  wr_pem_pair_free(&b);
}

/* Signing on the worker pool: names are queued once however often they
 * are asked for, the lookup never signs, a "*.parent" certificate covers
 * one label, every finished job tells the watchers, and an object freed
 * while jobs run goes once they are back. */
static int watcher_calls;
static void watcher(void *user) {
  (void)user;
  watcher_calls++;
}

static void test_issue_on_workers(void **state) {
  fx *f = *state;
  wr_certs *cs;
  char err[256];
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(wr_certs_open(f->dir, &cs, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_certs_prepare(cs, "a.example.test", 0), WR_ERR_INVAL); /* no loop yet */
  wr_certs_start(cs, &loop);
  assert_int_equal(wr_certs_watch(cs, watcher, NULL), WR_OK);
  watcher_calls = 0;
  const char *names[] = {"a.example.test", "b.example.test", "c.example.test", "*.w.example.test"};
  for (size_t i = 0; i < 4; i++) assert_int_equal(wr_certs_prepare(cs, names[i], 0), WR_AGAIN);
  /* Asked again (once urgently, as a waiting handshake does): no second job. */
  assert_int_equal(wr_certs_prepare(cs, "c.example.test", 1), WR_AGAIN);
  assert_int_equal(wr_certs_prepare(cs, "a.example.test", 1), WR_AGAIN);
  assert_int_equal(wr_certs_prepare(cs, "bad name", 1), WR_ERR_INVAL);
  assert_int_equal(wr_certs_prepare(cs, "*.*.example.test", 0), WR_ERR_INVAL);
  /* Nothing is signed by a lookup. */
  assert_null(wr_certs_issued_cached(cs, "a.example.test"));
  assert_int_equal(wr_certs_get_stats(cs)->signed_ok, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(watcher_calls, 4);
  assert_int_equal(wr_certs_get_stats(cs)->signed_ok, 4);
  assert_int_equal(wr_certs_get_stats(cs)->urgent, 2);
  for (size_t i = 0; i < 3; i++) {
    wr_cert *r = wr_certs_issued_cached(cs, names[i]);
    assert_non_null(r);
    assert_int_equal(handshake(f, r, names[i]), WR_OK);
    wr_cert_release(r);
    assert_int_equal(wr_certs_prepare(cs, names[i], 0), WR_OK); /* ready: nothing queued */
  }
  /* The wildcard covers one label below it, not two, not itself. */
  wr_cert *r = wr_certs_issued_cached(cs, "x.w.example.test");
  assert_non_null(r);
  assert_int_equal(handshake(f, r, "x.w.example.test"), WR_OK);
  wr_cert_release(r);
  assert_null(wr_certs_issued_cached(cs, "y.x.w.example.test"));
  assert_null(wr_certs_issued_cached(cs, "w.example.test"));
  assert_null(wr_certs_issued_cached(cs, "d.example.test"));
  /* The synchronous path shares the table. */
  r = wr_certs_issued(cs, "a.example.test");
  wr_cert *c2 = wr_certs_issued_cached(cs, "a.example.test");
  assert_ptr_equal(r, c2);
  wr_cert_release(c2);
  wr_cert_release(r);
  /* Freed with jobs in flight: the object goes when they are back. */
  assert_int_equal(wr_certs_prepare(cs, "d.example.test", 0), WR_AGAIN);
  assert_int_equal(wr_certs_prepare(cs, "e.example.test", 0), WR_AGAIN);
  assert_int_equal(wr_certs_prepare(cs, "f.example.test", 0), WR_AGAIN); /* queued, dropped */
  watcher_calls = 0;
  wr_certs_free(cs);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(watcher_calls, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  return UNIT_RUN(
      NULL, NULL,
      UNIT_TESTS(test_hello_sni, test_hello_split_records, test_alert_record, test_name_rules),
      UNIT_FIXTURE(setup, teardown, test_add_list_delete, test_pick, test_acme_files,
                   test_issue_on_workers));
}
