#include "unit.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "edge/pki.h"
#include "edge/store.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/credentials.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "net/httpd.h"
#include "proto/capnp.h"

uint8_t *unit_read_vector(const char *name, size_t *len) {
  char path[512];
  char *data = NULL;
  snprintf(path, sizeof(path), "tests/vectors/%s", name);
  if (wr_file_read(path, 64 << 20, &data, len) != 0) {
    print_error("cannot read vector %s (run from the repository root)\n", path);
    fail();
  }
  return (uint8_t *)data;
}

uint8_t *unit_hex(const char *hex, size_t *len) {
  size_t n = strlen(hex), o = 0;
  uint8_t *out = malloc(n / 2 + 1);
  int hi = -1;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)hex[i], v = 0;
    if (isspace(c)) continue;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else fail_msg("bad hex digit '%c'", c);
    if (hi < 0) hi = v;
    else out[o++] = (uint8_t)(hi << 4 | v), hi = -1;
  }
  *len = o;
  return out;
}

void unit_assert_contains(const char *text, const char *const *has, const char *const *lacks) {
  for (; has && *has; has++)
    if (!strstr(text, *has)) fail_msg("missing \"%s\" in:\n%s", *has, text);
  for (; lacks && *lacks; lacks++)
    if (strstr(text, *lacks)) fail_msg("unexpected \"%s\" in:\n%s", *lacks, text);
}

static void *fm_malloc(size_t size, void *user) {
  unit_failmem *fm = user;
  if (fm->calls++ == fm->fail_at) return NULL;
  void *p = malloc(size);
  if (p) fm->live++;
  return p;
}
static void fm_free(void *ptr, void *user) {
  unit_failmem *fm = user;
  if (ptr) fm->live--;
  free(ptr);
}
static void *fm_calloc(size_t n, size_t size, void *user) {
  unit_failmem *fm = user;
  if (fm->calls++ == fm->fail_at) return NULL;
  void *p = calloc(n, size);
  if (p) fm->live++;
  return p;
}
static void *fm_realloc(void *ptr, size_t size, void *user) {
  unit_failmem *fm = user;
  if (fm->calls++ == fm->fail_at) return NULL;
  void *p = realloc(ptr, size);
  if (p && !ptr) fm->live++;
  return p;
}

void unit_failmem_init(unit_failmem *fm, long fail_at) {
  fm->mem = (wr_mem){fm_malloc, fm_free, fm_calloc, fm_realloc, fm};
  fm->fail_at = fail_at;
  fm->calls = 0;
  fm->live = 0;
}

static int pki_write(const char *path, const char *text) {
  return wr_file_write(path, text, strlen(text), 0600, 0) == WR_OK ? 0 : -1;
}

void unit_capnp_failmem(int (*build)(wr_capnp_builder *b, void *arg), void *arg,
                        const uint8_t *want, size_t want_len, long tries) {
  int ok = 0;
  for (long n = 0; n < tries && !ok; n++) {
    unit_failmem fm;
    wr_capnp_builder b;
    const uint8_t *out;
    size_t len;
    unit_failmem_init(&fm, n);
    wr_capnp_builder_init(&b, &fm.mem, 0);
    int rv = build(&b, arg);
    if (rv == 0) {
      ok = 1;
      assert_int_equal(wr_capnp_builder_finish(&b, &out, &len), 0);
      assert_int_equal(len, want_len);
      assert_memory_equal(out, want, len);
    } else {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_int_equal(wr_capnp_builder_finish(&b, &out, &len), WR_ERR_NOMEM);
    }
    wr_capnp_builder_free(&b);
    assert_int_equal(fm.live, 0);
  }
  assert_true(ok);
}

int unit_pki_make(unit_pki *p, const char *prefix, const char *cn, const char *const *dns,
                  size_t ndns) {
  static const char *const ips[] = {"127.0.0.1"};
  wr_pem_pair ca, other, leaf;
  wr_pki_req careq = {.common_name = "Warren Test CA", .days = 30, .is_ca = 1};
  wr_pki_req leafreq = {.common_name = cn, .dns = dns, .n_dns = ndns, .ips = ips,
                        .n_ips = 1, .days = 30};
  char err[256];
  int rv = 0;
  snprintf(p->dir, sizeof(p->dir), "/tmp/%s-XXXXXX", prefix);
  if (!mkdtemp(p->dir)) return -1;
  snprintf(p->ca, sizeof(p->ca), "%s/ca.pem", p->dir);
  snprintf(p->other_ca, sizeof(p->other_ca), "%s/other-ca.pem", p->dir);
  snprintf(p->cert, sizeof(p->cert), "%s/cert.pem", p->dir);
  snprintf(p->key, sizeof(p->key), "%s/key.pem", p->dir);
  if (wr_pki_issue(NULL, &careq, &ca, err, sizeof(err)) != WR_OK) goto fail;
  if (wr_pki_issue(NULL, &careq, &other, err, sizeof(err)) != WR_OK) {
    wr_pem_pair_free(&ca);
    goto fail;
  }
  if (wr_pki_issue(&ca, &leafreq, &leaf, err, sizeof(err)) != WR_OK) {
    wr_pem_pair_free(&ca);
    wr_pem_pair_free(&other);
    goto fail;
  }
  rv |= pki_write(p->ca, ca.cert);
  rv |= pki_write(p->other_ca, other.cert);
  rv |= pki_write(p->cert, leaf.cert);
  rv |= pki_write(p->key, leaf.key);
  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&other);
  wr_pem_pair_free(&leaf);
  if (rv) fprintf(stderr, "pki: cannot write files in %s\n", p->dir);
  return rv;
fail:
  fprintf(stderr, "pki: %s\n", err);
  return -1;
}

void unit_pki_remove(unit_pki *p) {
  unlink(p->ca);
  unlink(p->other_ca);
  unlink(p->cert);
  unlink(p->key);
  rmdir(p->dir);
}

int unit_pki_teardown(void **state) {
  unit_pki_remove(*state);
  return 0;
}

int unit_edge_store(unit_pki *pki, const char *prefix, char *db_path, size_t db_size,
                    wr_store **store, wr_account *account) {
  char err[256];
  static const char *const dns[] = {"quic.cftunnel.com", "localhost"};
  if (unit_pki_make(pki, prefix, "quic.cftunnel.com", dns, 2) != 0) return -1;
  snprintf(db_path, db_size, "%s/edge.db", pki->dir);
  if (wr_store_open(db_path, WR_STORE_CREATE, store, err, sizeof(err)) != 0) return -1;
  return wr_store_account_create(*store, "test", "acme", account) != 0 ? -1 : 0;
}

void unit_tunnel_cred(const wr_tunnel *t, wr_credentials *cred) {
  memset(cred, 0, sizeof(*cred));
  snprintf(cred->account_tag, sizeof(cred->account_tag), "%s", t->account_id);
  memcpy(cred->secret, t->secret, t->secret_len);
  cred->secret_len = t->secret_len;
  assert_int_equal(wr_uuid_parse(t->id, strlen(t->id), &cred->tunnel_id), 0);
  cred->has_tunnel_id = 1;
}

int unit_buf_setup(void **state) {
  wr_buf *b = malloc(sizeof(*b));
  assert_non_null(b);
  wr_buf_init(b, 4096, NULL);
  *state = b;
  return 0;
}

int unit_buf_teardown(void **state) {
  wr_buf_free(*state);
  free(*state);
  return 0;
}

char *unit_tmpdir(char *dir, size_t size, const char *prefix) {
  snprintf(dir, size, "/tmp/%s-XXXXXX", prefix);
  return mkdtemp(dir);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

int unit_rm_rf(const char *path) {
  return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

wr_config *unit_config_of(const char *yaml) {
  char err[512] = "";
  wr_config *cfg = NULL;
  int rv = wr_config_parse(yaml, strlen(yaml), "config.yml", &cfg, err, sizeof(err));
  if (rv != 0) fail_msg("config parse failed (%d): %s", rv, err);
  return cfg;
}

void unit_write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  assert_int_equal(fclose(fp), 0);
}

static const char *store_pg_dsn;

void unit_store_use_pg(const char *dsn) { store_pg_dsn = dsn; }

void unit_assert_last_audit(wr_store *s, const char *actor, const char *action,
                            const char *target_id) {
  wr_audit *rows;
  size_t n;
  assert_int_equal(wr_store_audit_list(s, NULL, 1, &rows, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].action, action);
  if (actor) assert_string_equal(rows[0].actor, actor);
  if (target_id) assert_string_equal(rows[0].target_id, target_id);
  wr_store_audit_free(rows, n);
}

void unit_conn_rec(wr_conn_rec *c, const char *id, const char *tunnel_id, const char *client_id,
                   unsigned idx, const char *location) {
  memset(c, 0, sizeof(*c));
  snprintf(c->id, sizeof(c->id), "%s", id);
  snprintf(c->tunnel_id, sizeof(c->tunnel_id), "%s", tunnel_id);
  snprintf(c->client_id, sizeof(c->client_id), "%s", client_id);
  c->conn_index = idx;
  snprintf(c->client_version, sizeof(c->client_version), "2023.7.3");
  snprintf(c->arch, sizeof(c->arch), "linux_amd64");
  snprintf(c->features, sizeof(c->features), "[\"serialized_headers\"]");
  snprintf(c->origin_ip, sizeof(c->origin_ip), "127.0.0.1");
  snprintf(c->edge_location, sizeof(c->edge_location), "%s", location);
}

int64_t unit_fixed_clock(void *user) { return *(int64_t *)user; }

int unit_store_drop(wr_store *s, const char *dir, void *fixture) {
  wr_store_close(s);
  int rv = unit_rm_rf(dir);
  free(fixture);
  return rv;
}

int unit_pg_exec(const char *conninfo, const char *sql) {
  PGconn *c = PQconnectdb(conninfo);
  PGresult *r = NULL;
  int rv = -1;
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "postgres: %s", PQerrorMessage(c));
    goto out;
  }
  r = PQexec(c, sql);
  if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) rv = 0;
  else fprintf(stderr, "postgres: %s: %s", sql, PQerrorMessage(c));
out:
  PQclear(r);
  PQfinish(c);
  return rv;
}

/* libpq takes the last of repeated keywords, so appending dbname= to the
 * server's connection string names the new database. */
int unit_pg_new_db(char *out, size_t size) {
  static unsigned seq;
  char name[64], sql[128];
  if (!store_pg_dsn) return -1;
  snprintf(name, sizeof(name), "wr_u_%ld_%u", (long)getpid(), ++seq);
  snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
  if (unit_pg_exec(store_pg_dsn, sql) != 0) return -1;
  if ((size_t)snprintf(out, size, "%s dbname=%s", store_pg_dsn, name) >= size) return -1;
  return 0;
}

int unit_store_new(const char *prefix, char *dir, size_t dirsize, char *path, size_t pathsize,
                   struct wr_store **s) {
  char db[256], err[WR_STORE_ERRMSG_MAX];
  if (!unit_tmpdir(dir, dirsize, prefix)) {
    perror("mkdtemp");
    return -1;
  }
  /* WARREN_TEST_PG_ALL: every suite's stores on PostgreSQL. */
  if (!store_pg_dsn && getenv("WARREN_TEST_PG_ALL") && *getenv("WARREN_TEST_PG_ALL"))
    store_pg_dsn = getenv("WARREN_TEST_PG_ALL");
  if (store_pg_dsn) {
    if (unit_pg_new_db(db, sizeof(db)) != 0) return -1;
  } else
    snprintf(db, sizeof(db), "%s/warren.db", dir);
  if (path) snprintf(path, pathsize, "%s", db);
  if (wr_store_open(db, WR_STORE_CREATE, s, err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "store: %s\n", err);
    return -1;
  }
  return 0;
}

int unit_run(const char *group, CMFixtureFunction group_setup, CMFixtureFunction group_teardown,
             const unit_tests *runs, size_t nruns) {
  size_t total = 0, k = 0;
  for (size_t i = 0; i < nruns; i++) total += runs[i].n;
  struct CMUnitTest *tests = calloc(total ? total : 1, sizeof(*tests));
  char **names = calloc(total ? total : 1, sizeof(*names));
  assert_non_null(tests);
  assert_non_null(names);
  for (size_t i = 0; i < nruns; i++) {
    const char *p = runs[i].names;
    for (size_t j = 0; j < runs[i].n; j++, k++) {
      while (*p == ',' || isspace((unsigned char)*p)) p++;
      size_t len = strcspn(p, ", \t\n");
      names[k] = strndup(p, len);
      assert_non_null(names[k]);
      p += len;
      tests[k] = (struct CMUnitTest){names[k], runs[i].fns[j], runs[i].setup, runs[i].teardown,
                                     NULL};
    }
  }
  const char *filter = getenv("WR_TEST_FILTER");
  if (filter) cmocka_set_test_filter(filter);
  int rv = _cmocka_run_group_tests(group, tests, total, group_setup, group_teardown);
  for (k = 0; k < total; k++) free(names[k]);
  free(names);
  free(tests);
  return rv;
}

void unit_loop_with_client(uv_loop_t *loop, void *(*client_main)(void *), void *arg,
                           const char *fail) {
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, client_main, arg), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  pthread_join(th, NULL);
  assert_int_equal(uv_loop_close(loop), 0);
  if (fail[0]) fail_msg("%s", fail);
}

void unit_loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

uint16_t unit_httpd_listen(uv_loop_t *loop, const wr_httpd_config *cfg, wr_httpd_handler handler,
                           void *user, wr_httpd **out) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(wr_httpd_listen(loop, (struct sockaddr *)&a, cfg, handler, user, out), WR_OK);
  assert_int_equal(wr_httpd_addr(*out, &ss), WR_OK);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

uint16_t unit_tcp_listen(uv_loop_t *loop, uv_tcp_t *tcp, void *data, uv_connection_cb on_conn) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_init(loop, tcp), 0);
  tcp->data = data;
  assert_int_equal(uv_tcp_bind(tcp, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len), 0);
  assert_int_equal(uv_listen((uv_stream_t *)tcp, 64, on_conn), 0);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int unit_run_store_backends(const char *group, const unit_tests *runs, size_t nruns,
                            const unit_tests *pg_runs, size_t npg_runs) {
  int rv = unit_run(group, NULL, NULL, runs, nruns);
  const char *dsn = getenv("WARREN_TEST_PG");
  if (dsn && *dsn) {
    char name[128];
    snprintf(name, sizeof(name), "%s-postgres", group);
    unit_store_use_pg(dsn);
    rv |= unit_run(name, NULL, NULL, pg_runs, npg_runs);
    unit_store_use_pg(NULL);
  }
  return rv;
}

int unit_loop_drop(uv_loop_t *loop, void *fixture) {
  int rv = uv_loop_close(loop);
  free(fixture);
  assert_int_equal(rv, 0);
  return 0;
}
