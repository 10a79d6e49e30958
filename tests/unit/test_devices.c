/* WireGuard devices: the store (address pools, names and keys, revocation,
 * policies, statistics), device policies, and the edge's key pair. */
#include "unit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge/device_policy.h"
#include "edge/store.h"
#include "edge/wg_key.h"
#include "lib/err.h"
#include "lib/file.h"

typedef struct fixture {
  char dir[64];
  char path[128];
  wr_store *s;
  wr_account acct;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (unit_store_new("wr-dev", f->dir, sizeof(f->dir), f->path, sizeof(f->path), &f->s) != 0)
    return -1;
  if (wr_store_account_create(f->s, "test", "example.test", &f->acct) != WR_OK) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  wr_store_close(f->s);
  unit_rm_rf(f->dir);
  free(f);
  return 0;
}

/* A distinct valid key per |i| (any 32 bytes are a valid public key text). */
static void key_n(int i, char out[WR_WG_KEY_B64_LEN + 1]) {
  uint8_t k[32];
  memset(k, 0, sizeof(k));
  k[0] = (uint8_t)i;
  k[1] = (uint8_t)(i >> 8);
  k[31] = 0x42;
  wr_wg_key_to_b64(k, out);
}

static void assert_last_audit(wr_store *s, const char *action, const char *target_id) {
  wr_audit *rows;
  size_t n;
  assert_int_equal(wr_store_audit_list(s, NULL, 1, &rows, &n), WR_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].action, action);
  if (target_id) assert_string_equal(rows[0].target_id, target_id);
  wr_store_audit_free(rows, n);
}

/* --- store ---------------------------------------------------------------- */

static void test_pool_allocation(void **state) {
  fixture *f = *state;
  char k[WR_WG_KEY_B64_LEN + 1];
  wr_device a, b, c, got;
  key_n(1, k);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "laptop", k, NULL, NULL, &a), WR_OK);
  assert_last_audit(f->s, "device.create", a.id);
  assert_string_equal(a.ipv4, "100.96.0.2");
  /* fd + the account id's first 10 hex digits (40 bits), subnet 0, host 2. */
  uint8_t a6[16], want6[16] = {0xfd};
  size_t idlen;
  uint8_t *idb = unit_hex(f->acct.id, &idlen);
  memcpy(want6 + 1, idb, 5);
  free(idb);
  want6[15] = 2;
  assert_int_equal(inet_pton(AF_INET6, a.ipv6, a6), 1);
  assert_memory_equal(a6, want6, 16);
  assert_string_equal(a.vnet_id, "");
  assert_string_equal(a.allowed, "");
  assert_int_equal(a.revoked_at, 0);
  key_n(2, k);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "phone", k, NULL, NULL, &b), WR_OK);
  assert_string_equal(b.ipv4, "100.96.0.3");
  assert_string_not_equal(a.ipv6, b.ipv6);
  /* Stable: read back, the addresses are the same. */
  assert_int_equal(wr_store_device_get(f->s, f->acct.id, "laptop", &got), WR_OK);
  assert_string_equal(got.ipv4, a.ipv4);
  assert_string_equal(got.ipv6, a.ipv6);
  assert_string_equal(got.public_key, a.public_key);
  assert_int_equal(wr_store_device_get(f->s, f->acct.id, a.id, &got), WR_OK);
  assert_string_equal(got.name, "laptop");
  /* Revoked addresses are not handed out again. */
  assert_int_equal(wr_store_device_revoke(f->s, "test", f->acct.id, "phone"), WR_OK);
  key_n(3, k);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "tablet", k, NULL, NULL, &c), WR_OK);
  assert_string_equal(c.ipv4, "100.96.0.4");
  /* Another account gets its own pool: the same IPv4, a different /64. */
  wr_account other;
  wr_device o;
  assert_int_equal(wr_store_account_create(f->s, "test", "other", &other), WR_OK);
  key_n(4, k);
  assert_int_equal(wr_store_device_create(f->s, "test", other.id, "laptop", k, NULL, NULL, &o), WR_OK);
  assert_string_equal(o.ipv4, "100.96.0.2");
  if (strncmp(other.id, f->acct.id, 10) != 0) assert_string_not_equal(o.ipv6, a.ipv6);
}

static void test_names_and_keys(void **state) {
  fixture *f = *state;
  char k[WR_WG_KEY_B64_LEN + 1], k2[WR_WG_KEY_B64_LEN + 1];
  wr_device d;
  key_n(1, k);
  key_n(2, k2);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "laptop", k, NULL, NULL, &d), WR_OK);
  /* Same name, same key: refused. */
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "laptop", k2, NULL, NULL, NULL), WR_ERR_EXISTS);
  assert_non_null(strstr(wr_store_errmsg(f->s), "already exists"));
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "other", k, NULL, NULL, NULL), WR_ERR_EXISTS);
  assert_non_null(strstr(wr_store_errmsg(f->s), "public key"));
  /* Bad keys and names. */
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "x", "abc", NULL, NULL, NULL), WR_ERR_INVAL);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "x", NULL, NULL, NULL, NULL), WR_ERR_INVAL);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "x",
                                          "!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL, NULL, NULL),
                   WR_ERR_INVAL);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "", k2, NULL, NULL, NULL), WR_ERR_INVAL);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "a/b", k2, NULL, NULL, NULL), WR_ERR_INVAL);
  assert_int_equal(wr_store_device_create(f->s, "test", "00000000000000000000000000000000", "x", k2,
                                          NULL, NULL, NULL),
                   WR_ERR_NOTFOUND);
  /* After revocation, name and key are free again. */
  assert_int_equal(wr_store_device_revoke(f->s, "test", f->acct.id, "laptop"), WR_OK);
  assert_last_audit(f->s, "device.revoke", d.id);
  assert_int_equal(wr_store_device_revoke(f->s, "test", f->acct.id, d.id), WR_ERR_INVAL);
  assert_int_equal(wr_store_device_revoke(f->s, "test", f->acct.id, "laptop"), WR_ERR_NOTFOUND);
  wr_device again;
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "laptop", k, NULL, NULL, &again), WR_OK);
  assert_string_not_equal(again.id, d.id);
}

static void test_list_revoke_lookup(void **state) {
  fixture *f = *state;
  char k[WR_WG_KEY_B64_LEN + 1];
  wr_device d, *rows;
  size_t n;
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof(name), "dev%d", i);
    key_n(10 + i, k);
    assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, name, k, NULL, NULL, &d), WR_OK);
  }
  assert_int_equal(wr_store_device_revoke(f->s, "test", f->acct.id, "dev1"), WR_OK);
  assert_int_equal(wr_store_device_list(f->s, f->acct.id, 0, &rows, &n), WR_OK);
  assert_int_equal(n, 2);
  assert_string_equal(rows[0].name, "dev0");
  assert_string_equal(rows[1].name, "dev2");
  free(rows);
  assert_int_equal(wr_store_device_list(f->s, NULL, 1, &rows, &n), WR_OK);
  assert_int_equal(n, 3);
  assert_true(rows[1].revoked_at > 0);
  free(rows);
  /* By key: active devices only. */
  key_n(12, k);
  assert_int_equal(wr_store_device_by_key(f->s, k, &d), WR_OK);
  assert_string_equal(d.name, "dev2");
  key_n(11, k);
  assert_int_equal(wr_store_device_by_key(f->s, k, &d), WR_ERR_NOTFOUND);
  /* Another account's device is not found through this one. */
  wr_account other;
  assert_int_equal(wr_store_account_create(f->s, "test", "other", &other), WR_OK);
  assert_int_equal(wr_store_device_get(f->s, other.id, "dev0", &d), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_device_revoke(f->s, "test", other.id, "dev0"), WR_ERR_NOTFOUND);
  /* Statistics. */
  assert_int_equal(wr_store_device_get(f->s, f->acct.id, "dev0", &d), WR_OK);
  assert_int_equal(wr_store_device_seen(f->s, d.id, 1700000000, 123, 5000000000ull), WR_OK);
  assert_int_equal(wr_store_device_seen(f->s, d.id, 0, 124, 5000000001ull), WR_OK);
  assert_int_equal(wr_store_device_get(f->s, f->acct.id, d.id, &d), WR_OK);
  assert_int_equal(d.last_handshake, 1700000000);
  assert_int_equal(d.rx_bytes, 124);
  assert_true(d.tx_bytes == 5000000001ull);
  assert_int_equal(wr_store_device_seen(f->s, "00000000-0000-4000-8000-000000000000", 1, 1, 1),
                   WR_ERR_NOTFOUND);
}

static void test_vnet_and_policy(void **state) {
  fixture *f = *state;
  char k[WR_WG_KEY_B64_LEN + 1];
  wr_vnet v;
  wr_device d;
  assert_int_equal(wr_store_vnet_create(f->s, "test", f->acct.id, "lab", "", 0, &v), WR_OK);
  key_n(1, k);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "a", k, "lab",
                                          " 10.1.2.3/16, 10.1.0.0/16,fd00::1/8 ", &d),
                   WR_OK);
  assert_string_equal(d.vnet_id, v.id);
  assert_string_equal(d.allowed, "10.1.0.0/16,fd00::/8");
  key_n(2, k);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "b", k, v.id, NULL, &d), WR_OK);
  assert_string_equal(d.vnet_id, v.id);
  key_n(3, k);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "c", k, "nope", NULL, NULL), WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "c", k, NULL, "10.0.0.0/8,,", NULL), WR_ERR_INVAL);
  assert_int_equal(wr_store_device_create(f->s, "test", f->acct.id, "c", k, NULL, "bogus", NULL), WR_ERR_INVAL);
  /* Policy changes are audited; "" restores "everything". */
  assert_int_equal(wr_store_device_set_allowed(f->s, "test", f->acct.id, "b", "192.168.1.0/24"), WR_OK);
  assert_last_audit(f->s, "device.policy", d.id);
  assert_int_equal(wr_store_device_get(f->s, f->acct.id, "b", &d), WR_OK);
  assert_string_equal(d.allowed, "192.168.1.0/24");
  assert_int_equal(wr_store_device_set_allowed(f->s, "test", f->acct.id, "b", "300.0.0.0/8"), WR_ERR_INVAL);
  assert_int_equal(wr_store_device_set_allowed(f->s, "test", f->acct.id, "b", ""), WR_OK);
  assert_int_equal(wr_store_device_get(f->s, f->acct.id, "b", &d), WR_OK);
  assert_string_equal(d.allowed, "");
  assert_int_equal(wr_store_device_revoke(f->s, "test", f->acct.id, "b"), WR_OK);
  assert_int_equal(wr_store_device_set_allowed(f->s, "test", f->acct.id, d.id, "10.0.0.0/8"), WR_ERR_INVAL);
  /* Too long a policy. */
  char big[2048] = "";
  for (int i = 0; i < 120; i++) {
    char e[24];
    snprintf(e, sizeof(e), "%s10.%d.0.0/16", i ? "," : "", i);
    strcat(big, e);
  }
  assert_int_equal(wr_store_device_set_allowed(f->s, "test", f->acct.id, "a", big), WR_ERR_INVAL);
}

/* --- policies -------------------------------------------------------------- */

static void test_policy_allows(void **state) {
  (void)state;
  wr_device d;
  memset(&d, 0, sizeof(d));
  /* Empty: everything. */
  assert_true(wr_device_allows(&d, "10.0.0.0/8"));
  assert_true(wr_device_allows(&d, "::/0"));
  snprintf(d.allowed, sizeof(d.allowed), "10.0.0.0/8,2001:db8::/32");
  assert_true(wr_device_allows(&d, "10.0.0.0/8"));
  assert_true(wr_device_allows(&d, "10.1.2.0/24"));
  assert_true(wr_device_allows(&d, "10.1.2.3/32"));
  assert_false(wr_device_allows(&d, "0.0.0.0/0"));   /* wider than allowed */
  assert_false(wr_device_allows(&d, "11.0.0.0/8"));
  assert_true(wr_device_allows(&d, "2001:db8:1::/48"));
  assert_false(wr_device_allows(&d, "2001:db9::/32"));
  assert_false(wr_device_allows(&d, "::ffff:10.0.0.0/104")); /* families never mix */
  assert_false(wr_device_allows(&d, "garbage"));
  assert_false(wr_device_allows(&d, NULL));
  assert_false(wr_device_allows(NULL, "10.0.0.0/8"));
  /* A malformed entry anywhere allows nothing. */
  snprintf(d.allowed, sizeof(d.allowed), "10.0.0.0/8,bogus");
  assert_false(wr_device_allows(&d, "10.0.0.0/8"));
  snprintf(d.allowed, sizeof(d.allowed), "10.0.0.0/8,");
  assert_false(wr_device_allows(&d, "10.0.0.0/8"));
  snprintf(d.allowed, sizeof(d.allowed), "10.0.0.0/33");
  assert_false(wr_device_allows(&d, "10.0.0.0/8"));
  snprintf(d.allowed, sizeof(d.allowed), "%s", ",");
  assert_false(wr_device_allows(&d, "10.0.0.0/8"));
  snprintf(d.allowed, sizeof(d.allowed), "10.0.0.0/8,  192.168.0.0/16 ");
  assert_true(wr_device_allows(&d, "192.168.3.0/24"));
  /* Parsed form. */
  wr_device_policy p;
  wr_store_cidr c;
  char err[64];
  wr_device_policy_parse("0.0.0.0/0", &p);
  assert_int_equal(p.n, 1);
  assert_int_equal(wr_store_cidr_parse("172.16.0.0/12", &c, err, sizeof(err)), WR_OK);
  assert_true(wr_device_policy_allows(&p, &c));
  wr_device_policy_parse(NULL, &p);
  assert_true(p.all);
  assert_true(wr_device_policy_allows(&p, &c));
  wr_device_policy_parse("1.2.3.4/32,x", &p);
  assert_true(p.invalid);
  assert_false(wr_device_policy_allows(&p, &c));
}

/* --- keys ------------------------------------------------------------------------ */

static void test_wg_key_vectors(void **state) {
  (void)state;
  /* RFC 7748 section 6.1: Alice's key pair. */
  size_t len;
  uint8_t *priv = unit_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", &len);
  uint8_t *want = unit_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", &len);
  uint8_t pub[32], back[32];
  char b64[WR_WG_KEY_B64_LEN + 1];
  assert_int_equal(wr_wg_key_public(priv, pub), WR_OK);
  assert_memory_equal(pub, want, 32);
  wr_wg_key_to_b64(pub, b64);
  assert_int_equal(strlen(b64), 44);
  assert_int_equal(wr_wg_key_from_b64(b64, back), WR_OK);
  assert_memory_equal(back, pub, 32);
  assert_int_equal(wr_wg_key_from_b64("short", back), WR_ERR_PROTO);
  assert_int_equal(wr_wg_key_from_b64(NULL, back), WR_ERR_PROTO);
  b64[10] = '*';
  assert_int_equal(wr_wg_key_from_b64(b64, back), WR_ERR_PROTO);
  free(priv);
  free(want);
  /* Generated keys are clamped. */
  uint8_t k[32];
  assert_int_equal(wr_wg_key_generate(k, pub), WR_OK);
  assert_int_equal(k[0] & 7, 0);
  assert_int_equal(k[31] & 0xc0, 0x40);
}

static void test_wg_key_file(void **state) {
  fixture *f = *state;
  uint8_t priv[32], pub[32], priv2[32], pub2[32];
  char err[256], path[192];
  struct stat st;
  snprintf(path, sizeof(path), "%s/%s", f->dir, WR_WG_KEY_FILE);
  assert_int_equal(wr_wg_key_load_or_create(f->dir, priv, pub, err, sizeof(err)), WR_OK);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* Loading again gives the same pair. */
  assert_int_equal(wr_wg_key_load_or_create(f->dir, priv2, pub2, err, sizeof(err)), WR_OK);
  assert_memory_equal(priv, priv2, 32);
  assert_memory_equal(pub, pub2, 32);
  /* The file is `wg genkey` format: base64 and a newline. */
  char *text;
  size_t len;
  assert_int_equal(wr_file_read(path, 256, &text, &len), WR_OK);
  assert_int_equal(len, 45);
  assert_int_equal(text[44], '\n');
  free(text);
  /* A broken file is an error and stays as it was. */
  unit_write_file(path, "not a key\n");
  assert_int_equal(wr_wg_key_load_or_create(f->dir, priv2, pub2, err, sizeof(err)), WR_ERR_PROTO);
  assert_non_null(strstr(err, "wireguard.key"));
  assert_int_equal(wr_file_read(path, 256, &text, &len), WR_OK);
  assert_string_equal(text, "not a key\n");
  free(text);
  unlink(path);
  /* A missing directory is an I/O error. */
  assert_int_equal(wr_wg_key_load_or_create("/nonexistent/dir", priv2, pub2, err, sizeof(err)),
                   WR_ERR_IO);
}

int main(void) {
  return UNIT_RUN_NAME("devices", NULL, NULL,
                       UNIT_FIXTURE(setup, teardown, test_pool_allocation, test_names_and_keys,
                                    test_list_revoke_lookup, test_vnet_and_policy),
                       UNIT_TESTS(test_policy_allows, test_wg_key_vectors),
                       UNIT_FIXTURE(setup, teardown, test_wg_key_file));
}
