/* The edge process's owner (src/edge/edge.c): every subsystem starts,
 * drains and frees, and a start that fails half-way gives back everything
 * it took. The proof is that the loop closes (uv_loop_close returns 0: no
 * handle left) and ASan finds no leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "edge/edge.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "lib/err.h"
#include "lib/log.h"
#include "unit.h"

static char dir[64]; /* an initialised data directory */

static int group_setup(void **state) {
  char err[512], path[128];
  wr_store *s = NULL;
  (void)state;
  wr_log_set_level(getenv("WR_TEST_DEBUG") ? WR_LOG_DEBUG : WR_LOG_FATAL);
  snprintf(dir, sizeof(dir), "/tmp/wr-edge-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  if (wr_pki_init_dir(dir, "example.test", err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "pki: %s\n", err);
    return -1;
  }
  snprintf(path, sizeof(path), "%s/warren.db", dir);
  if (wr_store_open(path, WR_STORE_CREATE, &s, err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "store: %s\n", err);
    return -1;
  }
  wr_store_close(s);
  return 0;
}

static int group_teardown(void **state) {
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void set_listen(wr_edge_listen *l, const char *text) {
  l->text = text;
  assert_int_equal(uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&l->addr), 0);
}

/* Every subsystem on an ephemeral port. */
static wr_edge_options all_on(void) {
  wr_edge_options o;
  memset(&o, 0, sizeof(o));
  o.data_dir = dir;
  set_listen(&o.tunnel, "127.0.0.1:0");
  set_listen(&o.http, "127.0.0.1:0");
  set_listen(&o.dns, "127.0.0.1:0");
  set_listen(&o.api, "127.0.0.1:0");
  o.metrics = "127.0.0.1:0";
  o.max_half_open = 20;
  o.max_visitor_conns = 100;
  o.dns_update.server = "127.0.0.1:9";
  o.dns_update.zone = "example.test";
  o.dns_update.key_algorithm = "hmac-sha256";
  o.dns_update.key_name = "k";
  o.dns_update.key_secret = "c2VjcmV0c2VjcmV0c2VjcmV0";
  return o;
}

/* A TCP port something else holds. */
static int busy_tcp(wr_edge_listen *l, const char *text) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in *a = (struct sockaddr_in *)&l->addr;
  socklen_t len = sizeof(*a);
  assert_true(fd >= 0);
  set_listen(l, text);
  assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof(*a)), 0);
  assert_int_equal(listen(fd, 1), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)a, &len), 0);
  return fd;
}

/* Each case's world: a fresh loop, every subsystem on in |o|, the edge
 * (if made) and its error text. Teardown is each case's proof: the loop
 * closes, nothing being left on it. */
typedef struct world {
  uv_loop_t loop;
  wr_edge_options o;
  wr_edge *e;
  char err[512];
} world;

static void world_init(world *w) { w->o = all_on(); }

UNIT_LOOP_FIXTURE(world, world_init)

/* wr_edge_new of w->o on w's loop, into w->e and w->err. */
static int edge_new(world *w) {
  return wr_edge_new(&w->loop, &w->o, &w->e, w->err, sizeof(w->err));
}

/* Start everything, shut down as `warren-edge run` does, and nothing is
 * left on the loop. */
static void test_edge_lifecycle(void **state) {
  world *w = *state;
  assert_int_equal(edge_new(w), WR_OK);
  assert_non_null(w->e);
  /* The loop runs a little, as it would serve. */
  assert_int_equal(uv_run(&w->loop, UV_RUN_NOWAIT) >= 0, 1);
  wr_edge_begin_shutdown(w->e);
  wr_edge_begin_shutdown(w->e); /* idempotent */
  wr_edge_drain(w->e);
  wr_edge_free(w->e);
}

/* Free without a drain (a command that never served) is as clean. */
static void test_edge_free_without_drain(void **state) {
  world *w = *state;
  w->o.dns.text = NULL; /* optional ones off */
  w->o.api.text = "";
  w->o.metrics = NULL;
  w->o.dns_update.server = NULL;
  assert_int_equal(edge_new(w), WR_OK);
  wr_edge_free(w->e);
  wr_edge_free(NULL);
}

static void test_edge_bad_options(void **state) {
  world *w = *state;
  w->e = (wr_edge *)&w->loop; /* a failure sets it to NULL */
  w->o.data_dir = NULL;
  assert_int_equal(edge_new(w), WR_ERR_INVAL);
  assert_null(w->e);
  w->o = all_on();
  w->o.http.text = "";
  assert_int_equal(edge_new(w), WR_ERR_INVAL);
}

/* The store is the first row: only its failure is WR_ERR_STORE. */
static void test_edge_no_store(void **state) {
  world *w = *state;
  char nodir[128];
  snprintf(nodir, sizeof(nodir), "%s/missing", dir);
  w->o.data_dir = nodir;
  assert_int_equal(edge_new(w), WR_ERR_STORE);
  assert_null(w->e);
  assert_non_null(strstr(w->err, "missing"));
}

/* A row that fails late takes down every row before it. */
static void test_edge_rollback(void **state) {
  world *w = *state;
  /* The API's port is taken: tunnels, visitors and DNS were up. */
  int fd = busy_tcp(&w->o.api, "api-port");
  assert_int_not_equal(edge_new(w), WR_OK);
  assert_null(w->e);
  assert_string_equal(w->err, "cannot listen on api-port (TCP)");
  close(fd);

  /* The visitors' port is taken. */
  w->o = all_on();
  fd = busy_tcp(&w->o.http, "http-port");
  assert_int_not_equal(edge_new(w), WR_OK);
  assert_string_equal(w->err, "cannot listen on http-port (TCP)");
  close(fd);

  /* The DNS update key is refused: everything but the metrics was up. */
  w->o = all_on();
  w->o.dns_update.key_secret = "!!!";
  assert_int_equal(edge_new(w), WR_ERR_CONFIG);
  assert_true(w->err[0] != '\0');

  /* The metrics address does not resolve: the last row. */
  w->o = all_on();
  w->o.metrics = "no-such-host.invalid:1";
  assert_int_not_equal(edge_new(w), WR_OK);
  assert_null(w->e);
}

int main(void) {
  return UNIT_RUN(group_setup, group_teardown,
                  UNIT_FIXTURE(world_setup, world_teardown, test_edge_lifecycle,
                               test_edge_free_without_drain, test_edge_bad_options,
                               test_edge_no_store, test_edge_rollback));
}
