/* src/lib basics and the CLI option bag: encodings, buffers, durations,
 * flag precedence (command line > env > config file > default). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "lib/buf.h"
#include "lib/bytes.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/siphash.h"
#include "lib/file.h"
#include "lib/list.h"
#include "lib/minheap.h"
#include "unit.h"

static void test_base64_go_compatible(void **state) {
  (void)state;
  char out[128];
  uint8_t bin[64];
  /* The golden secret of protocol.md 8.1: bytes 0x00..0x1f. */
  for (int i = 0; i < 32; i++) bin[i] = (uint8_t)i;
  assert_int_equal(wr_base64_encode(bin, 32, out, sizeof(out), 1), 44);
  assert_string_equal(out, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
  /* RawStdEncoding (HTTP/2 serialized headers) drops the padding. */
  assert_int_equal(wr_base64_encode((const uint8_t *)"Content-Type", 12, out, sizeof(out), 0), 16);
  assert_string_equal(out, "Q29udGVudC1UeXBl");
  wr_base64_encode((const uint8_t *)"ab", 2, out, sizeof(out), 0);
  assert_string_equal(out, "YWI");
  wr_base64_encode((const uint8_t *)"ab", 2, out, sizeof(out), 1);
  assert_string_equal(out, "YWI=");
  assert_int_equal(wr_base64_encode(bin, 32, out, 44, 1), WR_ERR_LIMIT);

  assert_int_equal(wr_base64_decode("YWI=", 4, bin, sizeof(bin), 0), 2);
  assert_memory_equal(bin, "ab", 2);
  assert_int_equal(wr_base64_decode("YWI", 3, bin, sizeof(bin), 0), 2);
  assert_int_equal(wr_base64_decode("", 0, bin, sizeof(bin), 0), 0);
  /* Bad alphabet, impossible length, wrong padding, non-zero trailing bits. */
  assert_int_equal(wr_base64_decode("YW!=", 4, bin, sizeof(bin), 0), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("Y", 1, bin, sizeof(bin), 0), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("YW=", 3, bin, sizeof(bin), 0), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("YWJ=", 4, bin, sizeof(bin), 0), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("YWJj", 4, bin, 2, 0), WR_ERR_LIMIT);
}

static void test_uuid_and_hex(void **state) {
  (void)state;
  wr_uuid u, r;
  char s[37];
  assert_int_equal(wr_uuid_parse("0C9CD40E-166a-439f-8bd1-fcef1cfb28f1", 36, &u), 0);
  assert_int_equal(u.b[0], 0x0c);
  assert_int_equal(u.b[15], 0xf1);
  wr_uuid_format(&u, s);
  assert_string_equal(s, "0c9cd40e-166a-439f-8bd1-fcef1cfb28f1");
  assert_int_equal(wr_uuid_parse("0c9cd40e166a-439f-8bd1-fcef1cfb28f1x", 36, &u), WR_ERR_PROTO);
  assert_int_equal(wr_uuid_parse("0c9cd40e-166a-439f-8bd1-fcef1cfb28f", 35, &u), WR_ERR_PROTO);
  assert_int_equal(wr_uuid_parse("0c9cd40e-166a-439f-8bd1-fcef1cfb28fg", 36, &u), WR_ERR_PROTO);
  assert_int_equal(wr_uuid_random(&r), 0);
  assert_int_equal(r.b[6] >> 4, 4);        /* version 4 */
  assert_int_equal(r.b[8] & 0xc0, 0x80);   /* RFC 4122 variant */
  uint8_t bin[4];
  char hex[9];
  assert_int_equal(wr_hex_decode("deadBEEF", 8, bin, sizeof(bin)), 4);
  wr_hex_encode(bin, 4, hex);
  assert_string_equal(hex, "deadbeef");
  assert_int_equal(wr_hex_decode("abc", 3, bin, sizeof(bin)), WR_ERR_PROTO);
  assert_int_equal(wr_hex_decode("zz", 2, bin, sizeof(bin)), WR_ERR_PROTO);
}

static void test_hex_helpers(void **state) {
  (void)state;
  char d[2];
  assert_int_equal(wr_hex_digit('0'), 0);
  assert_int_equal(wr_hex_digit('f'), 15);
  assert_int_equal(wr_hex_digit('F'), 15);
  assert_int_equal(wr_hex_digit('g'), -1);
  assert_int_equal(wr_hex_digit(0xc1), -1);
  wr_hex_byte(0xab, 0, d);
  assert_memory_equal(d, "ab", 2);
  wr_hex_byte(0xab, 1, d);
  assert_memory_equal(d, "AB", 2);
}

static void test_base64_url(void **state) {
  (void)state;
  static const uint8_t in[] = {0xfb, 0xff, 0xbf};
  char out[16];
  assert_int_equal(wr_base64_encode(in, 3, out, sizeof(out), WR_BASE64_PAD), 4);
  assert_string_equal(out, "+/+/");
  assert_int_equal(wr_base64_encode(in, 3, out, sizeof(out), WR_BASE64_PAD | WR_BASE64_URL), 4);
  assert_string_equal(out, "-_-_");
  assert_int_equal(wr_base64_encode(in, 1, out, sizeof(out), WR_BASE64_PAD | WR_BASE64_URL), 4);
  assert_string_equal(out, "-w==");
  assert_int_equal(wr_base64_encode(in, 1, out, sizeof(out), WR_BASE64_URL), 2);
  assert_string_equal(out, "-w");
}

/* Go's variants as flags of the one decoder. */
static void test_base64_decode_flags(void **state) {
  (void)state;
  uint8_t b[8];
  const int std = WR_BASE64_PAD | WR_BASE64_GO, raw = WR_BASE64_NOPAD | WR_BASE64_GO;
  assert_int_equal(wr_base64_decode("YR==", 4, b, sizeof(b), 0), WR_ERR_PROTO); /* strict bits */
  assert_int_equal(wr_base64_decode("YR==", 4, b, sizeof(b), std), 1);
  assert_int_equal(b[0], 'a');
  assert_int_equal(wr_base64_decode("Y\r\nQ=\n=\n", 8, b, sizeof(b), std), 1);
  assert_int_equal(wr_base64_decode("YQ==\n", 5, b, sizeof(b), 0), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("YQ", 2, b, sizeof(b), std), WR_ERR_PROTO); /* padding required */
  assert_int_equal(wr_base64_decode("YQ", 2, b, sizeof(b), raw), 1);
  assert_int_equal(wr_base64_decode("YQ==", 4, b, sizeof(b), raw), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("Y=Q", 3, b, sizeof(b), raw), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("YW J\tj", 6, b, sizeof(b), std), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("YW J\tj", 6, b, sizeof(b), std | WR_BASE64_GO_PEM), 3);
  assert_memory_equal(b, "abc", 3);
  assert_int_equal(wr_base64_decode("YWJjZA", 6, NULL, 0, raw), 4); /* measure only */
  assert_int_equal(wr_base64_decode("YWJj!A", 6, NULL, 0, raw), WR_ERR_PROTO);
  assert_int_equal(wr_base64_decode("YWJjZA", 6, b, 3, raw), WR_ERR_LIMIT);
}

/* Unreserved characters stay; everything else, bytes above 0x7f too, is %XX. */
static void test_pct_encode(void **state) {
  (void)state;
  wr_buf b;
  char out[64];
  wr_buf_init(&b, 1024, NULL);
  wr_pct_encode(&b, "aZ09-._~ /?=&%\xc3\xa9");
  assert_string_equal(wr_buf_cstr(&b), "aZ09-._~%20%2F%3F%3D%26%25%C3%A9");
  assert_int_equal(wr_pct_decode((const char *)b.data, b.len, 0, out, sizeof(out)), 16);
  assert_string_equal(out, "aZ09-._~ /?=&%\xc3\xa9");
  wr_buf_free(&b);
}

/* One %00 policy: strict decoding refuses it, lenient copies it as is. */
static void test_pct_decode(void **state) {
  (void)state;
  char out[32];
  assert_int_equal(wr_pct_decode("a%2Fb%2f+c", 10, 0, out, sizeof(out)), 6);
  assert_string_equal(out, "a/b/+c");
  assert_int_equal(wr_pct_decode("a+b%20c", 7, WR_PCT_PLUS, out, sizeof(out)), 5);
  assert_string_equal(out, "a b c");
  assert_int_equal(wr_pct_decode("a%00b", 5, 0, out, sizeof(out)), WR_ERR_PROTO);
  assert_int_equal(wr_pct_decode("a%0", 3, 0, out, sizeof(out)), WR_ERR_PROTO);
  assert_int_equal(wr_pct_decode("a%zz", 4, 0, out, sizeof(out)), WR_ERR_PROTO);
  assert_int_equal(wr_pct_decode("%", 1, 0, out, sizeof(out)), WR_ERR_PROTO);
  assert_int_equal(wr_pct_decode("a%00b%zz%4", 10, WR_PCT_LENIENT, out, sizeof(out)), 10);
  assert_string_equal(out, "a%00b%zz%4");
  assert_int_equal(wr_pct_decode("a%00b", 5, WR_PCT_BINARY, out, sizeof(out)), 3);
  assert_memory_equal(out, "a\0b", 4);
  assert_int_equal(wr_pct_decode("%41%42", 6, WR_PCT_LENIENT, out, sizeof(out)), 2);
  assert_string_equal(out, "AB");
  /* |out| must hold the NUL too; the input is never overrun. */
  assert_int_equal(wr_pct_decode("abc", 3, 0, out, 3), WR_ERR_LIMIT);
  assert_int_equal(wr_pct_decode("abc", 3, 0, out, 4), 3);
  assert_int_equal(wr_pct_decode("", 0, 0, out, 0), WR_ERR_LIMIT);
  assert_int_equal(wr_pct_decode("", 0, 0, out, 1), 0);
  assert_int_equal(wr_pct_decode("%41", 2, WR_PCT_LENIENT, out, sizeof(out)), 2);
  assert_string_equal(out, "%4");
  /* In place, as wr__api_unescape uses it. */
  char buf[] = "x%2Fy";
  assert_int_equal(wr_pct_decode(buf, 5, 0, buf, sizeof(buf)), 3);
  assert_string_equal(buf, "x/y");
}

static void test_buf_limit(void **state) {
  (void)state;
  wr_buf b;
  wr_buf_init(&b, 10, NULL);
  assert_int_equal(wr_buf_append(&b, "hello", 5), 0);
  assert_int_equal(wr_buf_printf(&b, "%d", 12345), 0);
  assert_int_equal(b.len, 10);
  assert_string_equal(wr_buf_cstr(&b), "hello12345");
  assert_int_equal(wr_buf_append(&b, "x", 1), WR_ERR_LIMIT);
  assert_int_equal(b.len, 10); /* nothing half-appended */
  wr_buf_consume(&b, 5);
  assert_string_equal(wr_buf_cstr(&b), "12345");
  wr_buf_free(&b);

  unit_failmem fm;
  unit_failmem_init(&fm, 0);
  wr_buf_init(&b, 100, &fm.mem);
  assert_int_equal(wr_buf_append(&b, "x", 1), WR_ERR_NOMEM);
  wr_buf_free(&b);
  assert_int_equal(fm.live, 0);
}

static void test_durations(void **state) {
  (void)state;
  long long ns;
  assert_int_equal(wr_parse_duration("30s", &ns), 0);
  assert_true(ns == 30000000000LL);
  assert_int_equal(wr_parse_duration("1m30s", &ns), 0);
  assert_true(ns == 90000000000LL);
  assert_int_equal(wr_parse_duration("1.5h", &ns), 0);
  assert_true(ns == 5400000000000LL);
  assert_int_equal(wr_parse_duration("300ms", &ns), 0);
  assert_true(ns == 300000000LL);
  assert_int_equal(wr_parse_duration("0", &ns), 0);
  assert_true(ns == 0);
  assert_int_equal(wr_parse_duration("45", &ns), 0); /* bare seconds */
  assert_true(ns == 45000000000LL);
  assert_int_equal(wr_parse_duration("", &ns), WR_ERR_INVAL);
  assert_int_equal(wr_parse_duration("10x", &ns), WR_ERR_INVAL);
  assert_int_equal(wr_parse_duration("s", &ns), WR_ERR_INVAL);
  assert_int_equal(wr_parse_duration("99999999999h", &ns), WR_ERR_INVAL);
  int b;
  assert_int_equal(wr_parse_bool("True", &b), 0);
  assert_true(b);
  assert_int_equal(wr_parse_bool("0", &b), 0);
  assert_false(b);
  assert_int_equal(wr_parse_bool("yes", &b), WR_ERR_INVAL);
}

/* The option bag as a command handler sees it after wr_cli_main. */
static wr_opts seen;
static char *seen_url, *seen_metrics, *seen_grace, *seen_edges;
static int seen_argc;

static int capture(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  (void)argv;
  seen_argc = argc;
  /* config.yml values arrive at the lowest priority */
  wr_opts_set(o, "url", "http://from-config", WR_SRC_CONFIG);
  wr_opts_set(o, "metrics", "config:1", WR_SRC_CONFIG);
  wr_opts_set(o, "edge", "config-edge:7844", WR_SRC_CONFIG);
  assert_int_equal(wr_opts_set(o, "no-such-key", "x", WR_SRC_CONFIG), WR_ERR_NOTFOUND);
  seen_url = strdup(wr_opts_get(o, "url"));
  seen_metrics = strdup(wr_opts_get(o, "metrics"));
  seen_grace = strdup(wr_opts_get(o, "grace-period"));
  char *const *edges;
  size_t n = wr_opts_list(o, "edge", &edges);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) len += strlen(edges[i]) + 1;
  seen_edges = calloc(1, len + 1);
  for (size_t i = 0; i < n; i++) strcat(strcat(seen_edges, edges[i]), " ");
  seen.prog = o->prog;
  return 0;
}

static const wr_flag flags[] = {
    {"url", NULL, "TEST_WR_URL", WR_FLAG_STRING, NULL, "", NULL},
    {"metrics", NULL, "TEST_WR_METRICS", WR_FLAG_STRING, "localhost:0", "", NULL},
    {"grace-period", NULL, NULL, WR_FLAG_DURATION, "30s", "", NULL},
    {"edge", NULL, "TEST_WR_EDGE", WR_FLAG_LIST, NULL, "", NULL},
    {NULL},
};
static const wr_cmd subs[] = {{"run", "[T]", "run", NULL, NULL, NULL, capture}, {NULL}};
static const wr_cmd root = {"prog", NULL, "test", NULL, flags, subs, NULL};

static void reset_seen(void) {
  free(seen_url), free(seen_metrics), free(seen_grace), free(seen_edges);
  seen_url = seen_metrics = seen_grace = seen_edges = NULL;
}

static void test_flag_precedence(void **state) {
  (void)state;
  char *argv1[] = {"prog", "--url", "http://cli", "--edge", "a:1", "run", "--edge=b:2", "T", NULL};
  setenv("TEST_WR_URL", "http://env", 1);
  setenv("TEST_WR_METRICS", "env:9", 1);
  setenv("TEST_WR_EDGE", "e1:1,e2:2", 1);
  assert_int_equal(wr_cli_main(&root, "prog", 8, argv1), 0);
  assert_string_equal(seen_url, "http://cli");   /* CLI beats env and config */
  assert_string_equal(seen_metrics, "env:9");    /* env beats config */
  assert_string_equal(seen_grace, "30s");        /* default */
  assert_string_equal(seen_edges, "a:1 b:2 ");   /* repeatable, CLI only */
  assert_int_equal(seen_argc, 1);
  reset_seen();

  unsetenv("TEST_WR_URL");
  unsetenv("TEST_WR_METRICS");
  char *argv2[] = {"prog", "run", NULL};
  assert_int_equal(wr_cli_main(&root, "prog", 2, argv2), 0);
  assert_string_equal(seen_url, "http://from-config");
  assert_string_equal(seen_metrics, "config:1");
  assert_string_equal(seen_edges, "e1:1 e2:2 ");  /* env list split on commas */
  reset_seen();
  unsetenv("TEST_WR_EDGE");

  char *argv3[] = {"prog", "--grace-period", "never", "run", NULL};
  assert_int_equal(wr_cli_main(&root, "prog", 4, argv3), WR_EXIT_USAGE);
}

/* A subcommand's flag of the same name shadows the ancestor's definition
 * (its alias, env, default); aliases resolve to the newest flag; values
 * set before stay. wr_opts_copy_from keeps only the sources asked for. */
static void test_flag_shadowing_and_copy(void **state) {
  (void)state;
  static const wr_flag parent[] = {
      {"output", "o", "TEST_WR_OUT", WR_FLAG_STRING, "default", "log format", NULL},
      {"overwrite-dns", "f", NULL, WR_FLAG_BOOL, NULL, "parent -f", NULL},
      {"url", NULL, NULL, WR_FLAG_STRING, NULL, "url", NULL},
      {NULL}};
  static const wr_flag child[] = {
      {"output", "o", NULL, WR_FLAG_STRING, "yaml", "list format", NULL},
      {"force", "f", NULL, WR_FLAG_BOOL, NULL, "child -f", NULL},
      {NULL}};
  wr_opts o;
  wr_opts_init(&o, "prog", parent);
  assert_int_equal(wr_opts_set(&o, "url", "http://x", WR_SRC_CONFIG), 0);
  assert_int_equal(wr_opts_set(&o, "overwrite-dns", "true", WR_SRC_CLI), 0);
  wr_opts_add_flags(&o, child);
  assert_string_equal(wr_opts_get(&o, "output"), "yaml"); /* the child's default */
  assert_string_equal(wr_opts_find(&o, "f")->flag->name, "force");
  assert_true(wr_opts_bool(&o, "overwrite-dns"));
  wr_opts c;
  wr_opts_copy_from(&c, &o, WR_SRC_ENV);
  assert_false(wr_opts_isset(&c, "url")); /* config values dropped */
  assert_true(wr_opts_bool(&c, "overwrite-dns"));
  assert_int_equal(wr_opts_set(&c, "url", "http://y", WR_SRC_CONFIG), 0);
  assert_string_equal(wr_opts_get(&c, "url"), "http://y");
  assert_string_equal(wr_opts_get(&o, "url"), "http://x");
  wr_opts_free(&c);
  wr_opts_free(&o);
}

/* The reference vectors of the SipHash paper: key 00..0f, message
 * 00..n-1 (the paper's appendix example is n = 15). */
static void test_siphash_reference(void **state) {
  (void)state;
  uint8_t key[16], msg[16];
  uint64_t k0, k1;
  for (int i = 0; i < 16; i++) key[i] = msg[i] = (uint8_t)i;
  wr_siphash_key(key, &k0, &k1);
  assert_true(wr_siphash24(k0, k1, NULL, 0) == 0x726fdb47dd0e0e31ULL);
  assert_true(wr_siphash24(k0, k1, msg, 1) == 0x74f839c593dc67fdULL);
  assert_true(wr_siphash24(k0, k1, msg, 8) == 0x93f5f5799a932462ULL);
  assert_true(wr_siphash24(k0, k1, msg, 15) == 0xa129ca6149be45e5ULL);
}

/* Byte order: each width both ways, at an odd (unaligned) offset, touching
 * only its own bytes. */
static void test_byte_order(void **state) {
  (void)state;
  static const uint8_t in[9] = {0xee, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  assert_int_equal(wr_get_be16(in + 1), 0x0102);
  assert_int_equal(wr_get_be32(in + 1), 0x01020304u);
  assert_true(wr_get_be64(in + 1) == 0x0102030405060708ull);
  assert_int_equal(wr_get_le32(in + 1), 0x04030201u);
  assert_true(wr_get_le64(in + 1) == 0x0807060504030201ull);
  uint8_t out[10];
  memset(out, 0xaa, sizeof(out));
  wr_put_be16(out + 1, 0x0102);
  assert_memory_equal(out, "\xaa\x01\x02\xaa", 4);
  wr_put_be32(out + 1, 0x01020304u);
  assert_memory_equal(out, "\xaa\x01\x02\x03\x04\xaa", 6);
  wr_put_be64(out + 1, 0x0102030405060708ull);
  assert_memory_equal(out, "\xaa\x01\x02\x03\x04\x05\x06\x07\x08\xaa", 10);
  wr_put_le32(out + 1, 0x04030201u);
  assert_memory_equal(out, "\xaa\x01\x02\x03\x04\x05", 6);
  wr_put_le64(out + 1, 0x0807060504030201ull);
  assert_memory_equal(out, "\xaa\x01\x02\x03\x04\x05\x06\x07\x08\xaa", 10);
  wr_put_le64(out + 1, 0x1122334455667788ull);
  assert_memory_equal(out, "\xaa\x88\x77\x66\x55\x44\x33\x22\x11\xaa", 10);
}

static void test_file_helpers(void **state) {
  (void)state;
  char dir[] = "/tmp/wr-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256], *data;
  size_t len;
  snprintf(path, sizeof(path), "%s/a/b/c", dir);
  assert_int_equal(wr_mkdirs(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/a/f.txt", dir);
  assert_int_equal(wr_file_write(path, "abc", 3, 0600, 1), 0);
  assert_int_equal(wr_file_write(path, "xyz", 3, 0600, 1), WR_ERR_EXISTS);
  assert_int_equal(wr_file_read(path, 100, &data, &len), 0);
  assert_int_equal(len, 3);
  assert_string_equal(data, "abc");
  free(data);
  assert_int_equal(wr_file_read(path, 2, &data, &len), WR_ERR_LIMIT);
  snprintf(path, sizeof(path), "%s/missing", dir);
  assert_int_equal(wr_file_read(path, 100, &data, &len), WR_ERR_IO);
  setenv("HOME", "/home/x", 1);
  char *e = wr_path_expand("~/.cloudflared/cert.pem");
  assert_string_equal(e, "/home/x/.cloudflared/cert.pem");
  free(e);
  assert_int_equal(unit_rm_rf(dir), 0);
}

/* Random sets, moves and removals against a plain array: the top is
 * always the smallest key present, and every node knows its place. */
static void test_minheap(void **state) {
  (void)state;
  enum { N = 200 };
  wr_heap h = {0};
  wr_heap_node nodes[N] = {{0}};
  int in[N] = {0};
  uint64_t key[N] = {0};
  srand(7);
  assert_null(wr_heap_top(&h));
  for (int step = 0; step < 20000; step++) {
    int i = rand() % N;
    if (rand() % 4 == 0) {
      wr_heap_remove(&h, &nodes[i]);
      in[i] = 0;
    } else {
      key[i] = (uint64_t)(rand() % 1000);
      assert_int_equal(wr_heap_set(&h, &nodes[i], key[i]), 0);
      in[i] = 1;
    }
    uint64_t min = UINT64_MAX;
    size_t count = 0;
    for (int j = 0; j < N; j++) {
      assert_int_equal(nodes[j].pos != 0, in[j]);
      if (!in[j]) continue;
      count++;
      assert_ptr_equal(h.v[nodes[j].pos - 1], &nodes[j]);
      if (key[j] < min) min = key[j];
    }
    assert_int_equal(h.n, count);
    if (count) assert_true(wr_heap_top(&h)->key == min);
    else assert_null(wr_heap_top(&h));
  }
  /* Draining by the top gives the keys in order. */
  uint64_t last = 0;
  while (wr_heap_top(&h)) {
    wr_heap_node *t = wr_heap_top(&h);
    assert_true(t->key >= last);
    last = t->key;
    wr_heap_remove(&h, t);
    assert_int_equal(t->pos, 0);
  }
  assert_int_equal(wr_heap_reserve(&h, 1000), 0);
  assert_true(h.cap >= 1000);
  wr_heap_free(&h);
  assert_null(h.v);
}

/* lib/list.h: the head-and-tail lists keep insertion order, and removal
 * from the front, the middle and the back fixes both ends. */
typedef struct dl_node {
  int v;
  struct dl_node *p, *n;
} dl_node;

static void dl_expect(dl_node *head, dl_node *tail, const int *want, size_t nwant) {
  size_t i = 0;
  for (dl_node *x = head; x; x = x->n, i++) {
    assert_true(i < nwant);
    assert_int_equal(x->v, want[i]);
    if (!x->n) assert_ptr_equal(x, tail);
  }
  assert_int_equal(i, nwant);
  i = nwant;
  for (dl_node *x = tail; x; x = x->p) assert_int_equal(x->v, want[--i]);
  assert_int_equal(i, 0);
  if (!nwant) assert_null(tail);
}

static void test_dlist(void **state) {
  (void)state;
  dl_node e[4] = {{0, NULL, NULL}, {1, NULL, NULL}, {2, NULL, NULL}, {3, NULL, NULL}};
  dl_node *head = NULL, *tail = NULL;
  for (int i = 0; i < 4; i++) WR_DLIST_APPEND(head, tail, &e[i], p, n);
  dl_expect(head, tail, (const int[]){0, 1, 2, 3}, 4);
  WR_DLIST_REMOVE(head, tail, &e[1], p, n); /* middle */
  assert_null(e[1].p);
  assert_null(e[1].n);
  dl_expect(head, tail, (const int[]){0, 2, 3}, 3);
  WR_DLIST_REMOVE(head, tail, &e[0], p, n); /* front */
  dl_expect(head, tail, (const int[]){2, 3}, 2);
  WR_DLIST_REMOVE(head, tail, &e[3], p, n); /* back */
  dl_expect(head, tail, (const int[]){2}, 1);
  WR_DLIST_APPEND(head, tail, &e[1], p, n); /* reused after removal */
  dl_expect(head, tail, (const int[]){2, 1}, 2);
  WR_DLIST_REMOVE(head, tail, &e[2], p, n);
  WR_DLIST_REMOVE(head, tail, &e[1], p, n);
  assert_null(head);
  dl_expect(head, tail, NULL, 0);
}

/* lib/list.h: queues give their elements back in the order they came,
 * and an emptied queue takes new ones. */
static void test_fifo(void **state) {
  (void)state;
  dl_node e[3] = {{0, NULL, NULL}, {1, NULL, NULL}, {2, NULL, NULL}};
  dl_node *head = NULL, *tail = NULL;
  e[0].n = &e[2]; /* a stale link is cleared by the push */
  WR_FIFO_PUSH(head, tail, &e[0], n);
  assert_null(e[0].n);
  WR_FIFO_PUSH(head, tail, &e[1], n);
  assert_ptr_equal(head, &e[0]);
  assert_ptr_equal(tail, &e[1]);
  WR_FIFO_POP(head, tail, n);
  assert_ptr_equal(head, &e[1]);
  assert_ptr_equal(tail, &e[1]);
  WR_FIFO_POP(head, tail, n);
  assert_null(head);
  assert_null(tail);
  WR_FIFO_PUSH(head, tail, &e[2], n);
  WR_FIFO_PUSH(head, tail, &e[0], n);
  assert_ptr_equal(head, &e[2]);
  assert_ptr_equal(head->n, &e[0]);
  assert_ptr_equal(tail, &e[0]);
}

int main(void) {
  return UNIT_RUN_NAME(
      "lib", NULL, NULL,
      UNIT_TESTS(test_base64_go_compatible, test_uuid_and_hex, test_hex_helpers, test_base64_url,
                 test_pct_encode, test_pct_decode, test_base64_decode_flags, test_buf_limit, test_durations,
                 test_flag_precedence, test_file_helpers, test_flag_shadowing_and_copy,
                 test_siphash_reference, test_minheap, test_byte_order, test_dlist, test_fifo));
}
