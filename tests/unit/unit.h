/* Shared helpers for the cmocka unit suites. Each tests/unit/test_*.c is its
 * own binary; run them from the repository root (scripts/run-unit.sh does). */
#ifndef WR_UNIT_H
#define WR_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "lib/mem.h"

/* Reads tests/vectors/<name> (e.g. "quic/http-get.from-edge.bin"); fails the
 * test if it cannot. The caller frees the result. */
uint8_t *unit_read_vector(const char *name, size_t *len);
/* Decodes a hex string (whitespace ignored); caller frees. */
uint8_t *unit_hex(const char *hex, size_t *len);

/* Fails the test unless |text| contains every string of |has| and none of
 * |lacks| (each a NULL-terminated list; NULL: empty), naming the first
 * string that is missing or present. Borrows everything; a cmocka assert,
 * so only on the test's own thread. */
void unit_assert_contains(const char *text, const char *const *has, const char *const *lacks);

/* An allocator that fails the Nth allocation (0-based) and counts calls, for
 * "fail every allocation in turn" loops (STYLE.md 1.6). */
typedef struct unit_failmem {
  wr_mem mem;
  long fail_at;   /* -1: never fail */
  long calls;
  long live;      /* allocations not yet freed */
} unit_failmem;
void unit_failmem_init(unit_failmem *fm, long fail_at);
/* Runs |build(b, arg)| on a Cap'n Proto builder whose allocator fails
 * allocation 0, then 1, … (at most |tries| attempts) until |build| returns 0.
 * Asserts that each failed attempt returned WR_ERR_NOMEM, left the builder
 * failed (finish gives WR_ERR_NOMEM) and leaked nothing, and that the
 * message of the first success is |want| (|want_len| bytes). */
struct wr_capnp_builder;
void unit_capnp_failmem(int (*build)(struct wr_capnp_builder *b, void *arg), void *arg,
                        const uint8_t *want, size_t want_len, long tries);

/* A temporary directory holding a test PKI: ca.pem, other-ca.pem (an
 * unrelated CA, for "unknown authority" cases), and cert.pem + key.pem, a
 * leaf signed by ca.pem with common name |cn|, the DNS names |dns| and the
 * address 127.0.0.1. Paths are absolute. Returns 0, or -1 after printing
 * why. */
typedef struct unit_pki {
  char dir[64], ca[128], other_ca[128], cert[128], key[128];
} unit_pki;
int unit_pki_make(unit_pki *p, const char *prefix, const char *cn, const char *const *dns,
                  size_t ndns);
/* Removes the four files; the directory goes too if nothing else is left. */
void unit_pki_remove(unit_pki *p);
/* A group teardown for suites whose group setup made a unit_pki and left its
 * address in *state (which each test then receives): unit_pki_remove. */
int unit_pki_teardown(void **state);

/* An edge's test world on disk: unit_pki_make(|pki|, |prefix|) for
 * quic.cftunnel.com (and localhost), a new SQLite store <pki->dir>/edge.db
 * (its path in |db_path|) in *store, and the account "acme" (by actor
 * "test") in *account. Returns 0, or -1 (what was made stays for the
 * caller's teardown: wr_store_close(*store) if set, unit_rm_rf(pki->dir)). */
struct wr_store;
struct wr_account;
int unit_edge_store(unit_pki *pki, const char *prefix, char *db_path, size_t db_size,
                    struct wr_store **store, struct wr_account *account);
/* Fills *cred (zeroed first) with what a connector's credentials file holds
 * for the store tunnel |t|: its account tag, secret and tunnel ID. A t->id
 * that is not a UUID fails the test. */
struct wr_tunnel;
struct wr_credentials;
void unit_tunnel_cred(const struct wr_tunnel *t, struct wr_credentials *cred);

/* A test fixture (UNIT_FIXTURE): setup puts a new, empty wr_buf of at most
 * 4096 bytes (default allocator) in *state, failing the test if it cannot
 * allocate it; teardown frees the buffer and its data. */
int unit_buf_setup(void **state);
int unit_buf_teardown(void **state);

/* "/tmp/<prefix>-XXXXXX" made with mkdtemp into |dir| (|size| bytes).
 * Returns |dir|, or NULL (errno set) if it cannot. */
char *unit_tmpdir(char *dir, size_t size, const char *prefix);
/* Removes |path| and, if it is a directory, everything below it (without
 * following links), like `rm -rf`. Returns 0, or -1 if something is left. */
int unit_rm_rf(const char *path);
/* Writes |text| to |path| (fopen "w": created with the umask's mode, or
 * truncated); fails the test if it cannot. */
void unit_write_file(const char *path, const char *text);

/* The config file text |yaml| parsed (as "config.yml"); fails the test if
 * it does not parse. The caller frees it (wr_config_free). */
struct wr_config;
struct wr_config *unit_config_of(const char *yaml);

/* A new store for a test: a temporary directory (unit_tmpdir) in |dir| and
 * its warren.db, created, in |path| (NULL: not wanted). Returns 0 with *s
 * open, or -1 after printing why. unit_rm_rf(dir) removes it all after
 * wr_store_close. */
struct wr_store;
int unit_store_new(const char *prefix, char *dir, size_t dirsize, char *path, size_t pathsize,
                   struct wr_store **s);
/* Makes unit_store_new create each store as a fresh database on the
 * PostgreSQL server of |dsn| (a "key=value" connection string, as
 * tests/tools/pg_tmp.sh prints) instead of a SQLite file; |path| is then
 * that database's connection string. NULL goes back to SQLite. Without a
 * call, the environment's WARREN_TEST_PG_ALL (a connection string) does the
 * same for every suite. */
void unit_store_use_pg(const char *dsn);
/* A store fixture's teardown: closes |s| (may be NULL), removes |dir| with
 * everything in it, then frees |fixture|. Returns 0, or -1 if something of
 * |dir| is left. */
int unit_store_drop(struct wr_store *s, const char *dir, void *fixture);
/* The newest audit row of |s| must be |action| by |actor| on |target_id|
 * (either NULL: not checked). */
void unit_assert_last_audit(struct wr_store *s, const char *actor, const char *action,
                            const char *target_id);
/* |c| zeroed, then a connection row as cloudflared 2023.7.3 (linux_amd64,
 * serialized_headers, from 127.0.0.1) registers it: |id|, of |tunnel_id|,
 * from connector |client_id| with index |idx|, at edge location |location|.
 * The strings are copied (cut to the row's fields); nothing can fail. */
struct wr_conn_rec;
void unit_conn_rec(struct wr_conn_rec *c, const char *id, const char *tunnel_id,
                   const char *client_id, unsigned idx, const char *location);
/* A wr_store clock (wr_store_set_clock) that reads the int64_t at |user|. */
int64_t unit_fixed_clock(void *user);
/* A fresh, empty database on that server: its connection string in |out|.
 * Returns 0, or -1 after printing why. */
int unit_pg_new_db(char *out, size_t size);
/* Runs |sql| (no parameters) on the database of |conninfo|; 0 on success. */
int unit_pg_exec(const char *conninfo, const char *sql);

/* ---- a loop and a client thread ----------------------------------------------
 * Tests of servers run the server on the test's libuv loop and a blocking
 * client on a second thread, where cmocka's asserts must not run. */

/* In a client thread: when |cond| is false, records "file:line: cond" in
 * |fail| (a char array) unless it already holds a failure, and returns from
 * the calling (void) function. */
#define UNIT_CHK(fail, cond)                                                          \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      if (!(fail)[0]) snprintf((fail), sizeof(fail), "%s:%d: %s", __FILE__, __LINE__, #cond); \
      return;                                                                         \
    }                                                                                 \
  } while (0)
/* Starts |client_main(arg)| on a new thread, runs |loop| until nothing is
 * left in it (the client's end must see to that, e.g. by uv_async_send to a
 * handle that closes the rest), joins the thread, closes the loop, and fails
 * the test with |fail| if the client recorded a failure there. */
struct uv_loop_s; /* not uv.h here: it brings MIN and MAX (sys/param.h) */
struct wr_httpd;
struct wr_httpd_req;
struct wr_httpd_config;
void unit_loop_with_client(struct uv_loop_s *loop, void *(*client_main)(void *), void *arg,
                           const char *fail);
/* Runs |loop| until nothing is left in it, then asserts that it closes. */
void unit_loop_finish(struct uv_loop_s *loop);
/* wr_httpd_listen on 127.0.0.1 with a port the system picks; asserts that it
 * listens and returns that port. */
uint16_t unit_httpd_listen(struct uv_loop_s *loop, const struct wr_httpd_config *cfg,
                           void (*handler)(struct wr_httpd *, struct wr_httpd_req *, void *),
                           void *user, struct wr_httpd **out);
/* Initialises |tcp| on |loop| with |data| as its data, binds it to
 * 127.0.0.1 on a port the system picks and listens with |on_conn|; asserts
 * each step and returns the port. The caller closes |tcp|. */
struct uv_tcp_s;
struct uv_stream_s;
uint16_t unit_tcp_listen(struct uv_loop_s *loop, struct uv_tcp_s *tcp, void *data,
                         void (*on_conn)(struct uv_stream_s *server, int status));

/* ---- a suite's main ----------------------------------------------------------
 * Each suite's main runs its tests by name, in the order given:
 *   int main(void) { return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_a, test_b)); }
 * UNIT_FIXTURE(setup, teardown, test_c, ...) is a run of tests that each get
 * |setup| before and |teardown| after (cmocka_unit_test_setup_teardown);
 * UNIT_TESTS(...) is a run without. UNIT_RUN(group_setup, group_teardown,
 * run, ...) runs the runs one after another as the cmocka group "tests"
 * (UNIT_RUN_NAME: another name) and returns what cmocka_run_group_tests
 * returns. A test's name is its function's name, as with cmocka_unit_test.
 * When the environment has WR_TEST_FILTER, only the tests it matches run
 * (cmocka_set_test_filter). */
typedef void (*unit_test_fn)(void **state);
typedef struct unit_tests {
  const char *names; /* the test functions' names, "test_a, test_b" */
  const unit_test_fn *fns;
  size_t n;
  CMFixtureFunction setup, teardown;
} unit_tests;
#define UNIT_FIXTURE(setup, teardown, ...)                                              \
  ((unit_tests){#__VA_ARGS__, (const unit_test_fn[]){__VA_ARGS__},                      \
                sizeof((const unit_test_fn[]){__VA_ARGS__}) / sizeof(unit_test_fn), setup, \
                teardown})
#define UNIT_TESTS(...) UNIT_FIXTURE(NULL, NULL, __VA_ARGS__)
/* Defines the fixture pair |name|_setup and |name|_teardown (static) of a
 * run whose tests each get one new object in *state: setup evaluates |make|
 * and stores it there (a NULL result fails the test); teardown passes it to
 * |destroy|, which owns it from then on. Usage at file scope:
 *   UNIT_STATE_FIXTURE(unbounded, make(0), wr_throttle_free)
 *   ... UNIT_FIXTURE(unbounded_setup, unbounded_teardown, test_a, ...) */
#define UNIT_STATE_FIXTURE(name, make, destroy) \
  static int name##_setup(void **state) {       \
    *state = (make);                            \
    return *state ? 0 : -1;                     \
  }                                             \
  static int name##_teardown(void **state) {    \
    destroy(*state);                            \
    return 0;                                   \
  }
#define UNIT_RUN_NAME(group, group_setup, group_teardown, ...)                   \
  unit_run(group, group_setup, group_teardown, (const unit_tests[]){__VA_ARGS__}, \
           sizeof((const unit_tests[]){__VA_ARGS__}) / sizeof(unit_tests))
#define UNIT_RUN(group_setup, group_teardown, ...) \
  UNIT_RUN_NAME("tests", group_setup, group_teardown, __VA_ARGS__)
int unit_run(const char *group, CMFixtureFunction group_setup, CMFixtureFunction group_teardown,
             const unit_tests *runs, size_t nruns);
/* For the store's suites: runs |runs| as the group |group| on SQLite, then,
 * when the environment's WARREN_TEST_PG is a PostgreSQL connection string
 * (tests/tools/pg_tmp.sh), |pg_runs| as "<group>-postgres" with each store a
 * fresh database there (unit_store_use_pg). Non-zero if any test failed. */
int unit_run_store_backends(const char *group, const unit_tests *runs, size_t nruns,
                            const unit_tests *pg_runs, size_t npg_runs);

/* A loop fixture's teardown (cf. unit_store_drop): closes |loop|, frees
 * |fixture| (which may hold the loop), then fails the test unless the loop
 * closed, i.e. nothing was left on it. Returns 0. */
int unit_loop_drop(struct uv_loop_s *loop, void *fixture);
/* Defines the fixture pair |type|_setup and |type|_teardown (static) of a
 * run whose tests each get a new |type| in *state: a struct with a member
 * `uv_loop_t loop`, zeroed, its loop initialised, then passed to
 * |init(type *)| for the rest. Teardown is unit_loop_drop: the test fails
 * unless nothing was left on the loop. The file includes uv.h and stdlib.h.
 * Usage at file scope:
 *   UNIT_LOOP_FIXTURE(world, world_init)
 *   ... UNIT_FIXTURE(world_setup, world_teardown, test_a, ...) */
#define UNIT_LOOP_FIXTURE(type, init)                 \
  static int type##_setup(void **state) {             \
    type *fx_ = calloc(1, sizeof(type));              \
    assert_non_null(fx_);                             \
    assert_int_equal(uv_loop_init(&fx_->loop), 0);    \
    init(fx_);                                        \
    *state = fx_;                                     \
    return 0;                                         \
  }                                                   \
  static int type##_teardown(void **state) {          \
    type *fx_ = *state;                               \
    return unit_loop_drop(&fx_->loop, fx_);           \
  }

#endif
