/* warren-edge device add | list | revoke | allow | config: WireGuard devices
 * (laptops, phones) that reach the account's private networks through the
 * edge (edge/store.h devices, edge/device_config.h).
 *
 * Like the other local administration commands these work on the data
 * directory directly, next to a running edge, and write audit rows with the
 * actor "cli:<local user>". `device add` prints the device's wg-quick
 * configuration on stdout (nothing else, so `> laptop.conf` keeps it) and a
 * summary on stderr; a private key generated here exists only in that
 * output: the store keeps the public key. */
#include <errno.h>
#include <jansson.h>
#include <qrencode.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd/commands.h"
#include "cmd/edge_int.h"
#include "edge/device_config.h"
#include "edge/store.h"
#include "edge/wg_key.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"


/* A time, or "-" for never. */
static void fmt_time(int64_t t, char out[32]) {
  if (!t)
    snprintf(out, 32, "-");
  else
    wr__edge_fmt_time(t, out);
}

/* --- QR code ----------------------------------------------------------------- */

/* Prints |text| as a QR code of UTF-8 half blocks, two modules per line,
 * light modules drawn (for light text on a dark terminal, as `qrencode -t
 * utf8` does), with a quiet zone of 2 modules. */
static int print_qr(const char *text) {
  QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
  const int quiet = 2;
  if (!qr) return wr__edge_fail("cannot make a QR code of the configuration: %s", strerror(errno));
  int w = qr->width, size = w + 2 * quiet;
  for (int y = 0; y < size; y += 2) {
    for (int x = 0; x < size; x++) {
      int mx = x - quiet, my = y - quiet;
      int top = mx >= 0 && mx < w && my >= 0 && my < w && (qr->data[my * w + mx] & 1);
      int bot = mx >= 0 && mx < w && my + 1 >= 0 && my + 1 < w && (qr->data[(my + 1) * w + mx] & 1);
      if (y + 1 >= size) bot = 1; /* past the bottom edge: dark, nothing drawn */
      fputs(!top && !bot ? "\xe2\x96\x88" : !top ? "\xe2\x96\x80" : !bot ? "\xe2\x96\x84" : " ", stdout);
    }
    fputc('\n', stdout);
  }
  QRcode_free(qr);
  return WR_EXIT_OK;
}

/* --- add ------------------------------------------------------------------------- */

/* The endpoint for the configuration: --endpoint or DATA_DIR/wireguard-endpoint. */
static int pick_endpoint(wr_opts *o, const wr__edge_ctx *c, char ep[WR_DEVICE_ENDPOINT_MAX + 1]) {
  const char *v = wr_opts_get(o, "endpoint");
  char err[256];
  int rv;
  if (v && *v) {
    if (wr_device_check_endpoint(v, err, sizeof(err)) != WR_OK) return wr__edge_fail("--endpoint: %s", err);
    snprintf(ep, WR_DEVICE_ENDPOINT_MAX + 1, "%s", v);
    return WR_EXIT_OK;
  }
  rv = wr_device_endpoint_default(c->dir, ep, err, sizeof(err));
  if (rv == WR_OK) return WR_EXIT_OK;
  if (rv == WR_ERR_INVAL) return wr__edge_fail("%s", err);
  return wr__edge_fail("the configuration needs the address devices dial: pass --endpoint HOST:PORT (the "
                       "public address of the edge's WireGuard port), or write it once to %s/%s",
                       c->dir, WR_DEVICE_ENDPOINT_FILE);
}

/* Prints the configuration (or its QR code). */
static int emit_config(wr_opts *o, wr__edge_ctx *c, const wr_device *d, const char *priv_b64) {
  uint8_t epriv[WR_WG_KEY_LEN], epub[WR_WG_KEY_LEN];
  char ep[WR_DEVICE_ENDPOINT_MAX + 1], epub_b64[WR_WG_KEY_B64_LEN + 1], err[512], *text = NULL;
  int rv;
  if (pick_endpoint(o, c, ep) != WR_EXIT_OK) return WR_EXIT_FAIL;
  if (wr_wg_key_load_or_create(c->dir, epriv, epub, err, sizeof(err)) != WR_OK)
    return wr__edge_fail("the edge's WireGuard key: %s", err);
  sodium_memzero(epriv, sizeof(epriv));
  wr_wg_key_to_b64(epub, epub_b64);
  if (wr_device_config(c->s, d, priv_b64, epub_b64, ep, &text, err, sizeof(err)) != WR_OK)
    return wr__edge_fail("%s", err);
  if (wr_opts_bool(o, "qr")) rv = print_qr(text);
  else {
    fputs(text, stdout);
    rv = WR_EXIT_OK;
  }
  sodium_memzero(text, strlen(text));
  free(text);
  return rv;
}

int wr_cmd_edge_device_add(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  const char *key = wr_opts_get(o, "public-key");
  uint8_t priv[WR_WG_KEY_LEN], pub[WR_WG_KEY_LEN];
  char priv_b64[WR_WG_KEY_B64_LEN + 1] = "", pub_b64[WR_WG_KEY_B64_LEN + 1], ep[WR_DEVICE_ENDPOINT_MAX + 1];
  int generated = !(key && *key), rv = WR_EXIT_FAIL;
  wr_device d;
  wr__edge_ctx c;
  (void)cmd;
  if (argc != 1) return wr__edge_fail("device add takes one argument, the device's name (e.g. laptop)");
  if (!generated && wr_wg_key_from_b64(key, pub) != WR_OK)
    return wr__edge_fail("--public-key \"%.60s\" is not a WireGuard public key (44 characters of base64, as "
                         "`wg pubkey` prints it)",
                         key);
  if (wr__edge_ctx_open(o, "device add", WR__EDGE_ACCOUNT_ONE, &c) != WR_EXIT_OK) return WR_EXIT_FAIL;
  /* Check the endpoint before creating anything, so a missing one costs no device. */
  if (pick_endpoint(o, &c, ep) != WR_EXIT_OK) goto out;
  if (generated) {
    if (wr_wg_key_generate(priv, pub) != WR_OK) {
      wr__edge_fail("cannot generate a key pair (libsodium failed)");
      goto out;
    }
    wr_wg_key_to_b64(priv, priv_b64);
    sodium_memzero(priv, sizeof(priv));
    wr_wg_key_to_b64(pub, pub_b64);
  } else {
    snprintf(pub_b64, sizeof(pub_b64), "%s", key);
  }
  if (wr_store_device_create(c.s, c.actor, c.acct.id, argv[0], pub_b64, wr_opts_get(o, "vnet"),
                             wr_opts_get(o, "allow"), &d) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(c.s));
    goto out;
  }
  rv = emit_config(o, &c, &d, generated ? priv_b64 : NULL);
  fprintf(stderr, "Created device %s (ID %s) with addresses %s and %s%s\n", d.name, d.id, d.ipv4, d.ipv6,
          rv != WR_EXIT_OK ? "; print its configuration with `warren-edge device config`" : "");
out:
  sodium_memzero(priv_b64, sizeof(priv_b64));
  wr__edge_ctx_close(&c);
  return rv;
}

/* --- config, list, revoke, allow ------------------------------------------------- */

/* What `device config`, `revoke` and `allow` do to the device argv[0] names
 * (its name or ID) in the account |c| has open. Returns WR_EXIT_OK, or
 * WR_EXIT_FAIL after saying why. */
typedef int (*device_act)(wr_opts *o, wr__edge_ctx *c, char **argv);

/* Runs |act| for command |cmd| with the store and the account open, and
 * closes them after. Returns |act|'s result, or WR_EXIT_FAIL after saying
 * why the store or the account would not open. */
static int on_device(wr_opts *o, const char *cmd, char **argv, device_act act) {
  wr__edge_ctx c;
  int rv;
  if (wr__edge_ctx_open(o, cmd, WR__EDGE_ACCOUNT_ONE, &c) != WR_EXIT_OK) return WR_EXIT_FAIL;
  rv = act(o, &c, argv);
  wr__edge_ctx_close(&c);
  return rv;
}

/* `device config` and `device revoke`: the one argument is a device's name
 * or ID in one account. */
static int on_one_device(wr_opts *o, const char *cmd, int argc, char **argv, device_act act) {
  if (argc != 1) return wr__edge_fail("%s takes one argument, the device's name or ID", cmd);
  return on_device(o, cmd, argv, act);
}

static int config_device(wr_opts *o, wr__edge_ctx *c, char **argv) {
  wr_device d;
  if (wr_store_device_get(c->s, c->acct.id, argv[0], &d) != WR_OK)
    return wr__edge_fail("%s (see `warren-edge device list`)", wr_store_errmsg(c->s));
  if (d.revoked_at) return wr__edge_fail("device %s (%s) is revoked", d.name, d.id);
  return emit_config(o, c, &d, NULL);
}

int wr_cmd_edge_device_config(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return on_one_device(o, "device config", argc, argv, config_device);
}

static void print_table(const wr_device *rows, size_t n) {
  printf("%-20s  %-36s  %-15s  %-28s  %-20s  %-20s  %-20s  %12s  %12s  %s\n", "NAME", "ID", "IPV4", "IPV6",
         "CREATED", "REVOKED", "HANDSHAKE", "RX", "TX", "ALLOWED");
  for (size_t i = 0; i < n; i++) {
    char cr[32], rv[32], hs[32];
    fmt_time(rows[i].created_at, cr);
    fmt_time(rows[i].revoked_at, rv);
    fmt_time(rows[i].last_handshake, hs);
    printf("%-20s  %-36s  %-15s  %-28s  %-20s  %-20s  %-20s  %12llu  %12llu  %s\n", rows[i].name, rows[i].id,
           rows[i].ipv4, rows[i].ipv6, cr, rv, hs, (unsigned long long)rows[i].rx_bytes,
           (unsigned long long)rows[i].tx_bytes, rows[i].allowed[0] ? rows[i].allowed : "all routes");
  }
}

int wr_cmd_edge_device_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr_device *rows = NULL;
  size_t n = 0;
  wr__edge_ctx c;
  int rv = WR_EXIT_FAIL, json;
  (void)cmd;
  if (argc > 0) return wr__edge_fail("device list takes no arguments (got \"%s\")", argv[0]);
  if (wr__edge_want_json(o, &json) != 0) return WR_EXIT_FAIL;
  if (wr__edge_ctx_open(o, "device list", WR__EDGE_ACCOUNT_FILTER, &c) != WR_EXIT_OK) return WR_EXIT_FAIL;
  if (wr_store_device_list(c.s, c.have_acct ? c.acct.id : NULL, !wr_opts_bool(o, "active"), &rows, &n) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(c.s));
    goto done;
  }
  if (json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
      json_t *j = wr_device_json(&rows[i]);
      json_object_set_new(j, "account_id", json_string(rows[i].account_id));
      json_array_append_new(arr, j);
    }
    rv = wr__edge_print_json(arr);
  } else {
    print_table(rows, n);
    rv = WR_EXIT_OK;
  }
done:
  free(rows);
  wr__edge_ctx_close(&c);
  return rv;
}

static int revoke_device(wr_opts *o, wr__edge_ctx *c, char **argv) {
  wr_device d;
  (void)o;
  if (wr_store_device_get(c->s, c->acct.id, argv[0], &d) != WR_OK ||
      wr_store_device_revoke(c->s, c->actor, c->acct.id, d.id) != WR_OK)
    return wr__edge_fail("%s", wr_store_errmsg(c->s));
  printf("Revoked device %s (ID %s)\n", d.name, d.id);
  return WR_EXIT_OK;
}

int wr_cmd_edge_device_revoke(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return on_one_device(o, "device revoke", argc, argv, revoke_device);
}

/* argv[1] is CIDR[,CIDR...], or "all" for every IP route of the device's
 * virtual network. */
static int allow_device(wr_opts *o, wr__edge_ctx *c, char **argv) {
  const char *policy = strcmp(argv[1], "all") == 0 ? "" : argv[1];
  wr_device d;
  (void)o;
  if (wr_store_device_set_allowed(c->s, c->actor, c->acct.id, argv[0], policy) != WR_OK ||
      wr_store_device_get(c->s, c->acct.id, argv[0], &d) != WR_OK)
    return wr__edge_fail("%s", wr_store_errmsg(c->s));
  printf("Device %s may reach %s\n", d.name,
         d.allowed[0] ? d.allowed : "every IP route of its virtual network");
  return WR_EXIT_OK;
}

int wr_cmd_edge_device_allow(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  if (argc != 2)
    return wr__edge_fail("device allow takes two arguments: the device and CIDR[,CIDR...] (or \"all\")");
  return on_device(o, "device allow", argv, allow_device);
}
