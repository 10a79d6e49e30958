/* The Prometheus text writer (src/lib/prom.c) and the edge's /metrics page
 * built with it (src/edge/edge_metrics.c): exact lines, escaping of label
 * values and help text, special float values, a full buffer, and a page
 * where every line is a well-formed comment or sample. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "edge/edge_metrics.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/prom.h"
#include "unit.h"

static void test_family_and_samples(void **state) {
  wr_buf *b = *state;
  wr_prom_family(b, "x_requests_total", "counter", "Requests answered");
  wr_prom_u64(b, "x_requests_total", NULL, 0);
  wr_prom_u64(b, "x_requests_total", (const char *const[]){"code_class", "2xx", NULL}, 18446744073709551615ull);
  wr_prom_u64(b, "x_requests_total", (const char *const[]){"a", "1", "b", "2", NULL}, 7);
  /* An empty label list is no braces at all. */
  wr_prom_u64(b, "x_up", (const char *const[]){NULL}, 1);
  assert_string_equal(wr_buf_cstr(b),
                      "# HELP x_requests_total Requests answered\n"
                      "# TYPE x_requests_total counter\n"
                      "x_requests_total 0\n"
                      "x_requests_total{code_class=\"2xx\"} 18446744073709551615\n"
                      "x_requests_total{a=\"1\",b=\"2\"} 7\n"
                      "x_up 1\n");
}

/* The whole-family helpers write exactly what family + sample calls would:
 * one unlabelled sample, or one sample per series in the given order, zeros
 * included, with label values escaped. */
static void test_family_helpers(void **state) {
  wr_buf *b = *state;
  wr_prom_counter(b, "c_total", "Counted", 3);
  wr_prom_gauge(b, "g", "Gauged", 0);
  const wr_prom_series s[] = {{"b", 2}, {"a", 0}, {"q\"", 1}};
  wr_prom_by_label(b, "r_total", "counter", "By reason", "reason", s, WR_PROM_NSERIES(s));
  wr_prom_by_label(b, "none", "gauge", "No series", "k", NULL, 0);
  assert_string_equal(wr_buf_cstr(b),
                      "# HELP c_total Counted\n# TYPE c_total counter\nc_total 3\n"
                      "# HELP g Gauged\n# TYPE g gauge\ng 0\n"
                      "# HELP r_total By reason\n# TYPE r_total counter\n"
                      "r_total{reason=\"b\"} 2\n"
                      "r_total{reason=\"a\"} 0\n"
                      "r_total{reason=\"q\\\"\"} 1\n"
                      "# HELP none No series\n# TYPE none gauge\n");
}

static void test_escaping(void **state) {
  wr_buf *b = *state;
  /* Label values: backslash, double quote and newline are escaped; other
   * bytes (UTF-8, tabs) pass as they are. */
  wr_prom_u64(b, "m", (const char *const[]){"v", "a\\b\"c\nd\te\xc3\xa9", NULL}, 1);
  /* Help text: backslash and newline only; a quote stays. */
  wr_prom_family(b, "h", "gauge", "say \"hi\"\\now\nthen");
  assert_string_equal(wr_buf_cstr(b),
                      "m{v=\"a\\\\b\\\"c\\nd\te\xc3\xa9\"} 1\n"
                      "# HELP h say \"hi\"\\\\now\\nthen\n"
                      "# TYPE h gauge\n");
}

static void test_floats(void **state) {
  wr_buf *b = *state;
  wr_prom_f64(b, "f", NULL, 0.5);
  wr_prom_f64(b, "f", NULL, 1700000000.0);
  wr_prom_f64(b, "f", NULL, NAN);
  wr_prom_f64(b, "f", NULL, INFINITY);
  wr_prom_f64(b, "f", NULL, -INFINITY);
  assert_string_equal(wr_buf_cstr(b), "f 0.5\nf 1700000000\nf NaN\nf +Inf\nf -Inf\n");
}

static void test_full_buffer_cuts(void **state) {
  (void)state;
  wr_buf b;
  wr_buf_init(&b, 40, NULL);
  for (int i = 0; i < 100; i++)
    wr_prom_u64(&b, "long_metric_name", (const char *const[]){"k", "a value with \"quotes\"", NULL}, 1);
  assert_true(b.len <= 40);
  wr_buf_free(&b);
}

/* One line of the text format: "# HELP name text", "# TYPE name
 * counter|gauge", or "name[{k="v",...}] value" with a valid name, label
 * names, escapes inside values and a number (or NaN, +Inf, -Inf). */
static int valid_line(const char *l) {
  const char *p = l;
  if (strncmp(l, "# HELP ", 7) == 0) return strchr(l + 7, ' ') != NULL && !strchr(l, '\n');
  if (strncmp(l, "# TYPE ", 7) == 0) {
    const char *t = strchr(l + 7, ' ');
    return t && (strcmp(t + 1, "counter") == 0 || strcmp(t + 1, "gauge") == 0);
  }
  if (!isalpha((unsigned char)*p) && *p != '_' && *p != ':') return 0;
  while (isalnum((unsigned char)*p) || *p == '_' || *p == ':') p++;
  if (*p == '{') {
    p++;
    while (*p != '}') {
      if (!isalpha((unsigned char)*p) && *p != '_') return 0;
      while (isalnum((unsigned char)*p) || *p == '_') p++;
      if (*p++ != '=' || *p++ != '"') return 0;
      while (*p != '"') {
        if (!*p || *p == '\n') return 0;
        if (*p == '\\') {
          p++;
          if (*p != '\\' && *p != '"' && *p != 'n') return 0;
        }
        p++;
      }
      p++;
      if (*p == ',') p++;
      else if (*p != '}') return 0;
    }
    p++;
  }
  if (*p++ != ' ') return 0;
  if (strcmp(p, "NaN") == 0 || strcmp(p, "+Inf") == 0 || strcmp(p, "-Inf") == 0) return 1;
  char *end;
  strtod(p, &end);
  return end != p && *end == '\0';
}

/* Checks every line of |text| and that each sample's family was declared
 * with # TYPE before it. */
static void assert_well_formed(const char *text) {
  char *copy = strdup(text), *save = NULL;
  char typed[64][96];
  size_t ntyped = 0;
  assert_true(text[0] && text[strlen(text) - 1] == '\n');
  for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    if (!valid_line(l)) fail_msg("malformed line: %s", l);
    if (strncmp(l, "# TYPE ", 7) == 0) {
      assert_true(ntyped < 64);
      snprintf(typed[ntyped], sizeof(typed[0]), "%.*s", (int)strcspn(l + 7, " "), l + 7);
      ntyped++;
    } else if (l[0] != '#') {
      size_t n = strcspn(l, "{ ");
      int found = 0;
      for (size_t i = 0; i < ntyped && !found; i++) found = strlen(typed[i]) == n && strncmp(typed[i], l, n) == 0;
      if (!found) fail_msg("sample without # TYPE: %s", l);
    }
  }
  free(copy);
}

static void test_process_collector(void **state) {
  (void)state;
  wr_buf b;
  wr_buf_init(&b, 1 << 16, NULL);
  wr_prom_process(&b, 1700000000.0);
  const char *t = wr_buf_cstr(&b);
  assert_well_formed(t);
  assert_non_null(strstr(t, "\nprocess_start_time_seconds 1700000000\n"));
  assert_non_null(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
  assert_null(strstr(t, "process_resident_memory_bytes 0\n")); /* /proc was read */
  wr_buf_free(&b);
}

/* The edge's page with a tunnel server and no other subsystem: the
 * always-present families, none of the optional ones, and a page that a
 * Prometheus parser accepts line by line. */
static void test_edge_page(void **state) {
  (void)state;
  char path[] = "/tmp/wr-test-prom-XXXXXX", db[64], err[512];
  wr_store *s = NULL;
  wr_tunnel_server *ts = NULL;
  wr_edge_metrics *m = NULL;
  uv_loop_t loop;
  assert_non_null(mkdtemp(path));
  snprintf(db, sizeof(db), "%s/warren.db", path);
  assert_int_equal(wr_store_open(db, WR_STORE_CREATE, &s, err, sizeof(err)), WR_OK);
  assert_int_equal(wr_store_ping(s), WR_OK);
  wr_tunnel_server_config tcfg = {.store = s};
  assert_int_equal(wr_tunnel_server_new(&tcfg, &ts), WR_OK);
  assert_int_equal(uv_loop_init(&loop), 0);

  wr_edge_metrics_config bad = {.store = s};
  assert_int_equal(wr_edge_metrics_start(&loop, "127.0.0.1:0", &bad, &m, err, sizeof(err)), WR_ERR_INVAL);
  wr_edge_metrics_config mcfg = {.store = s, .ts = ts};
  assert_int_equal(wr_edge_metrics_start(&loop, "not an address", &mcfg, &m, err, sizeof(err)),
                   WR_ERR_CONFIG);
  assert_null(m);
  assert_int_equal(wr_edge_metrics_start(&loop, "127.0.0.1:0", &mcfg, &m, err, sizeof(err)), WR_OK);
  assert_int_equal(strncmp(wr_edge_metrics_addr(m), "127.0.0.1:", 10), 0);

  wr_buf b;
  wr_buf_init(&b, 1 << 20, NULL);
  wr_edge_metrics_render(m, &b);
  const char *t = wr_buf_cstr(&b);
  assert_well_formed(t);
  /* Subsystems that do not run have no families. */
  unit_assert_contains(t,
                       (const char *const[]){"\nwarren_edge_connector_connections 0\n",
                                             "\nwarren_edge_registrations_total 0\n",
                                             "# TYPE warren_edge_registrations_refused_total counter\n",
                                             "warren_edge_build_info{revision=\"", NULL},
                       (const char *const[]){"warren_edge_visitor_", "warren_edge_dns_",
                                             "warren_edge_api_", "warren_edge_login_", NULL});
  /* Every family is the edge's or the standard process collector's. */
  for (const char *p = strstr(t, "# TYPE "); p; p = strstr(p + 1, "# TYPE "))
    assert_true(strncmp(p + 7, "warren_edge_", 12) == 0 || strncmp(p + 7, "process_", 8) == 0);
  wr_buf_free(&b);

  /* /ready: "starting" until the edge says it serves, then 200 while the
   * store answers, 503 with the reason when it stops or the store fails. */
  wr_buf_init(&b, 4096, NULL);
  assert_int_equal(wr_edge_metrics_ready(m, &b), 503);
  assert_string_equal(wr_buf_cstr(&b), "{\"status\":503,\"registeredConnections\":0,\"reason\":\"starting\"}\n");
  wr_buf_reset(&b);
  wr_edge_metrics_set_ready(m, 1, NULL);
  assert_int_equal(wr_edge_metrics_ready(m, &b), 200);
  assert_string_equal(wr_buf_cstr(&b), "{\"status\":200,\"registeredConnections\":0}\n");
  wr_buf_reset(&b);
  wr_edge_metrics_set_ready(m, 0, "say \"bye\"\\\n");
  assert_int_equal(wr_edge_metrics_ready(m, &b), 503);
  assert_string_equal(wr_buf_cstr(&b),
                      "{\"status\":503,\"registeredConnections\":0,\"reason\":\"say \\\"bye\\\"\\\\\\u000a\"}\n");
  wr_buf_reset(&b);
  /* Another process broke the database: the store no longer answers. */
  wr_edge_metrics_set_ready(m, 1, NULL);
  sqlite3 *other;
  assert_int_equal(sqlite3_open(db, &other), SQLITE_OK);
  assert_int_equal(sqlite3_exec(other, "ALTER TABLE accounts RENAME TO gone", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  assert_int_equal(wr_edge_metrics_ready(m, &b), 503);
  assert_non_null(strstr(wr_buf_cstr(&b), "\"reason\":\"store unreachable: "));
  wr_buf_free(&b);

  wr_edge_metrics_free(m);
  unit_loop_finish(&loop);
  wr_tunnel_server_free(ts);
  wr_store_close(s);
  assert_int_equal(unit_rm_rf(path), 0);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_FIXTURE(unit_buf_setup, unit_buf_teardown, test_family_and_samples,
                               test_family_helpers, test_escaping, test_floats),
                  UNIT_TESTS(test_full_buffer_cuts, test_process_collector, test_edge_page));
}
