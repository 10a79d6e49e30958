/* The connector process's owner (src/connector/connector.c): the proxy,
 * the metrics server and the supervisor start, shut down and free, and a
 * start that fails half-way gives back what it took. The proof is that the
 * loop closes (uv_loop_close returns 0: no handle left) and ASan finds no
 * leak. No edge answers: the tests never depend on a connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "connector/connector.h"
#include "lib/config.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "quic_pair.h"
#include "unit.h"

static wr_ingress *hello_ingress(void) {
  static const char yaml[] = "ingress:\n  - service: hello_world\n";
  return unit_ingress_of(yaml);
}

static void stopped(void *user) {
  int *n = user;
  (*n)++;
}

typedef struct conn_fixture {
  uv_loop_t loop;
  wr_credentials cred;
  struct sockaddr_storage edge;
  wr_ingress *ing;
  int stops;
  wr_connector_options o;
} conn_fixture;

static void conn_fixture_init(conn_fixture *f) {
  memset(f, 0, sizeof(*f));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  wr_uuid_random(&f->cred.tunnel_id);
  f->cred.has_tunnel_id = 1;
  /* Nobody answers on the discard port: connection 0 keeps dialling. */
  assert_int_equal(uv_ip4_addr("127.0.0.1", 9, (struct sockaddr_in *)&f->edge), 0);
  f->ing = hello_ingress();
  f->o.edge.cred = &f->cred;
  f->o.edge.edges = &f->edge;
  f->o.edge.nedges = 1;
  f->o.ingress = f->ing;
  f->o.grace_ms = 0;
  f->o.on_stopped = stopped;
  f->o.user = &f->stops;
}

static void conn_fixture_done(conn_fixture *f) {
  assert_int_equal(uv_loop_close(&f->loop), 0);
  wr_ingress_free(f->ing);
}

/* Start, shut down (on_stopped ends the run), free: nothing left. */
static void test_connector_lifecycle(void **state) {
  conn_fixture f;
  wr_connector *c = NULL;
  char err[512];
  (void)state;
  conn_fixture_init(&f);
  f.o.metrics = "127.0.0.1:0";
  assert_int_equal(wr_connector_new(&f.loop, &f.o, &c, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_connector_failed(c), 0);
  wr_connector_shutdown(c);
  while (f.stops == 0) uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(f.stops, 1);
  assert_int_equal(wr_connector_failed(c), 0);
  wr_connector_free(c);
  conn_fixture_done(&f);
}

/* The supervisor refuses a CA file that does not exist: the proxy and the
 * metrics server started before it are given back. */
static void test_connector_rollback(void **state) {
  conn_fixture f;
  wr_connector *c = (wr_connector *)&f;
  char err[512];
  (void)state;
  conn_fixture_init(&f);
  f.o.metrics = "127.0.0.1:0";
  f.o.edge.ca_file = "/nonexistent/ca.pem";
  assert_int_not_equal(wr_connector_new(&f.loop, &f.o, &c, err, sizeof(err)), WR_OK);
  assert_null(c);
  assert_true(err[0] != '\0');
  f.o.on_stopped = NULL;
  assert_int_equal(wr_connector_new(&f.loop, &f.o, &c, err, sizeof(err)), WR_ERR_INVAL);
  wr_connector_free(NULL);
  conn_fixture_done(&f);
}

static int group_setup(void **state) {
  (void)state;
  wr_log_set_level(getenv("WR_TEST_DEBUG") ? WR_LOG_DEBUG : WR_LOG_FATAL);
  return 0;
}

int main(void) {
  return UNIT_RUN(group_setup, NULL, UNIT_TESTS(test_connector_lifecycle, test_connector_rollback));
}
