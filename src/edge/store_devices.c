/* WireGuard devices: creation with address assignment from the account's
 * pools, lookup, revocation, policies and the running edge's statistics. */
#include "edge/store.h"
#include "edge/store_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "lib/encoding.h"
#include "lib/err.h"

/* Host numbers: .0.0 is the network, .0.1 the edge's; the last address of
 * the /12 is left out as a broadcast address would be. */
#define HOST_FIRST 2
#define HOST_LAST ((1 << 20) - 2)

#define DEVICE_SELECT                                                                              \
  "SELECT id, account_id, vnet_id, name, public_key, host, allowed, created_at,"                   \
  " coalesce(revoked_at, 0), last_handshake, rx_bytes, tx_bytes FROM devices "

/* --- addresses ------------------------------------------------------------ */

static void format_ipv4(int64_t host, char out[16]) {
  uint8_t a[4];
  char tmp[INET_ADDRSTRLEN];
  uint32_t v = (100u << 24 | 96u << 16) + (uint32_t)host;
  a[0] = (uint8_t)(v >> 24), a[1] = (uint8_t)(v >> 16), a[2] = (uint8_t)(v >> 8), a[3] = (uint8_t)v;
  inet_ntop(AF_INET, a, tmp, sizeof(tmp));
  snprintf(out, 16, "%s", tmp);
}

/* fd00::/8 + the account id's first 40 bits (10 hex digits) + subnet 0 +
 * the host number as the interface id. An id that is not hex (never written
 * by this store) maps its bad digits to 0. */
static void format_ipv6(const char *account_id, int64_t host, char out[46]) {
  uint8_t a[16] = {0xfd};
  char tmp[INET6_ADDRSTRLEN];
  for (int i = 0; i < 5; i++) {
    int hi = account_id[2 * i] ? wr_hex_digit(account_id[2 * i]) : -1;
    int lo = hi >= 0 && account_id[2 * i + 1] ? wr_hex_digit(account_id[2 * i + 1]) : -1;
    a[1 + i] = hi >= 0 && lo >= 0 ? (uint8_t)(hi << 4 | lo) : 0;
  }
  for (int i = 0; i < 8; i++) a[15 - i] = (uint8_t)((uint64_t)host >> (8 * i));
  inet_ntop(AF_INET6, a, tmp, sizeof(tmp));
  snprintf(out, 46, "%s", tmp);
}

static void read_device(wr_db_stmt *st, void *row) {
  static const wr__store_col cols[] = {
      WR__COL(WR__COL_TEXT, wr_device, id),
      WR__COL(WR__COL_TEXT, wr_device, account_id),
      WR__COL(WR__COL_TEXT, wr_device, vnet_id),
      WR__COL(WR__COL_TEXT, wr_device, name),
      WR__COL(WR__COL_TEXT, wr_device, public_key),
      {WR__COL_SKIP, 0, 0}, /* the host number, formatted below */
      WR__COL(WR__COL_TEXT, wr_device, allowed),
      WR__COL(WR__COL_INT64, wr_device, created_at),
      WR__COL(WR__COL_INT64, wr_device, revoked_at),
      WR__COL(WR__COL_INT64, wr_device, last_handshake),
      WR__COL(WR__COL_INT64, wr_device, rx_bytes),
      WR__COL(WR__COL_INT64, wr_device, tx_bytes),
  };
  wr_device *d = row;
  int64_t host = wr_db_col_int64(st, 5);
  memset(d, 0, sizeof(*d));
  wr__store_read_cols(st, cols, sizeof(cols) / sizeof(cols[0]), d);
  format_ipv4(host, d->ipv4);
  format_ipv6(d->account_id, host, d->ipv6);
}

/* --- checks ----------------------------------------------------------------- */

static int check_key(wr_store *s, const char *key) {
  uint8_t raw[WR_STORE_WG_KEY_B64];
  char b[80];
  if (!key || strlen(key) != WR_STORE_WG_KEY_B64 ||
      wr_base64_decode(key, WR_STORE_WG_KEY_B64, raw, sizeof(raw), WR_BASE64_PAD) != 32)
    return wr__store_serr(s, WR_ERR_INVAL,
                          "public key \"%s\" is not a WireGuard key (44 characters of base64, as "
                          "`wg pubkey` prints it)",
                          wr__store_quote(key ? key : "", b, sizeof(b)));
  return WR_OK;
}

/* Appends |c|'s canonical text to |out| unless already listed. */
static int policy_append(const wr_store_cidr *c, char *out, size_t size, size_t *len) {
  char net[WR_STORE_CIDR_MAX + 1];
  size_t nlen;
  wr_store_cidr_format(c, net);
  nlen = strlen(net);
  for (const char *p = out; *p;) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == nlen && memcmp(p, net, l) == 0) return WR_OK;
    p += l + (e != NULL);
  }
  if (*len + (*len > 0) + nlen >= size) return WR_ERR_LIMIT;
  if (*len > 0) out[(*len)++] = ',';
  memcpy(out + *len, net, nlen + 1);
  *len += nlen;
  return WR_OK;
}

int wr_store_device_policy_canon(const char *allowed, char *out, size_t size, char *err,
                                 size_t errlen) {
  const char *p = allowed ? allowed : "";
  size_t len = 0;
  if (size == 0) return WR_ERR_LIMIT;
  out[0] = '\0';
  while (*p == ' ') p++;
  if (!*p) return WR_OK;
  for (;;) {
    const char *e = strchr(p, ','), *end = e ? e : p + strlen(p), *b = p;
    char entry[WR_STORE_CIDR_MAX + 1];
    wr_store_cidr c;
    while (b < end && *b == ' ') b++;
    while (end > b && end[-1] == ' ') end--;
    if (end == b) return snprintf(err, errlen, "the policy has an empty entry"), WR_ERR_INVAL;
    if ((size_t)(end - b) > WR_STORE_CIDR_MAX)
      return snprintf(err, errlen, "\"%.*s...\" is not a network in CIDR notation (e.g. 10.0.0.0/8)",
                      20, b),
             WR_ERR_INVAL;
    memcpy(entry, b, (size_t)(end - b));
    entry[end - b] = '\0';
    if (wr_store_cidr_parse(entry, &c, err, errlen) != WR_OK) return WR_ERR_INVAL;
    if (policy_append(&c, out, size, &len) != WR_OK) {
      out[0] = '\0';
      return snprintf(err, errlen, "the policy is longer than %zu bytes", size - 1), WR_ERR_LIMIT;
    }
    if (!e) return WR_OK;
    p = e + 1;
  }
}

static int check_policy(wr_store *s, const char *allowed, char out[WR_STORE_DEVICE_ALLOWED_MAX]) {
  char err[256];
  int rv = wr_store_device_policy_canon(allowed, out, WR_STORE_DEVICE_ALLOWED_MAX, err, sizeof(err));
  if (rv != WR_OK) return wr__store_serr(s, WR_ERR_INVAL, "device policy: %s", err);
  return WR_OK;
}

/* The live virtual network |ref| (UUID or name) of account |a|. */
static int resolve_vnet(wr_store *s, const char *account_id, const char *ref, wr_vnet *out) {
  wr_vnet *rows = NULL;
  wr_vnet_filter f = {.account_id = account_id, .is_default = -1};
  wr_uuid u;
  size_t n = 0;
  char b[80];
  int rv;
  if (wr_uuid_parse(ref, strlen(ref), &u) == WR_OK)
    return wr__store_vnet_live(s, account_id, ref, out);
  f.name = ref;
  if ((rv = wr_store_vnet_list(s, &f, &rows, &n)) != WR_OK) return rv;
  if (n == 1) *out = rows[0];
  free(rows);
  if (n != 1)
    return wr__store_serr(s, WR_ERR_NOTFOUND, "no virtual network named \"%s\" in this account",
                          wr__store_quote(ref, b, sizeof(b)));
  return WR_OK;
}

/* An active device named |name| or with key |key| in the way of a new one. */
static int check_unique(wr_store *s, const char *account_id, const char *name, const char *key) {
  wr_device d;
  int rv = wr__store_one(s, "read devices", read_device, &d, NULL, NULL,
                         DEVICE_SELECT "WHERE revoked_at IS NULL AND"
                                       " ((account_id = ?1 AND name = ?2) OR public_key = ?3)",
                         "sss", account_id, name, key);
  if (rv == WR_ERR_NOTFOUND) return WR_OK;
  if (rv != WR_OK) return rv;
  if (strcmp(d.public_key, key) == 0)
    return wr__store_serr(s, WR_ERR_EXISTS,
                          "public key %s already belongs to an active device%s%s; each device "
                          "needs its own key pair",
                          key, strcmp(d.account_id, account_id) == 0 ? " named " : "",
                          strcmp(d.account_id, account_id) == 0 ? d.name : "");
  return wr__store_serr(s, WR_ERR_EXISTS, "a device named \"%s\" already exists (ID %s)", d.name,
                        d.id);
}

/* The highest host number in use, or the one before the first. */
static void read_max_host(wr_db_stmt *st, void *row) {
  *(int64_t *)row = wr_db_col_is_null(st, 0) ? HOST_FIRST - 1 : wr_db_col_int64(st, 0);
}

static int next_host(wr_store *s, const char *account_id, int64_t *host) {
  int64_t m;
  int rv = wr__store_agg(s, "read device addresses", NULL, read_max_host, &m,
                         "SELECT max(host) FROM devices WHERE account_id = ?", "s", account_id);
  if (rv != WR_OK) return rv;
  *host = m + 1;
  if (*host > HOST_LAST)
    return wr__store_serr(s, WR_ERR_LIMIT, "the account's device address pool (%s) is used up",
                          WR_STORE_DEVICE_POOL4);
  return WR_OK;
}

/* --- create ------------------------------------------------------------------ */

/* The checks and the insert, inside the caller's transaction. */
static int device_insert(wr_store *s, const char *actor, const wr_account *a, wr_device *d) {
  int64_t host = 0;
  int rv;
  if ((rv = check_unique(s, a->id, d->name, d->public_key)) != WR_OK) return rv;
  if ((rv = next_host(s, a->id, &host)) != WR_OK) return rv;
  if ((rv = wr__store_new_uuid(s, d->id)) != WR_OK) return rv;
  wr__store_copy_str(d->account_id, sizeof(d->account_id), a->id);
  d->created_at = wr__store_now(s);
  format_ipv4(host, d->ipv4);
  format_ipv6(a->id, host, d->ipv6);
  rv = wr__store_execf(s, NULL, "create device",
                       "INSERT INTO devices(id, account_id, vnet_id, name, public_key, host,"
                       " allowed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       "sssssisi", d->id, d->account_id, d->vnet_id, d->name, d->public_key, host,
                       d->allowed, d->created_at);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(
        s, actor, a->id, "device.create", "device", d->id,
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", d->name, "public_key", d->public_key,
                  "ipv4", d->ipv4, "ipv6", d->ipv6, "virtual_network_id", d->vnet_id, "allowed",
                  d->allowed));
  return rv;
}

int wr_store_device_create(wr_store *s, const char *actor, const char *account_id,
                           const char *name, const char *public_key_b64,
                           const char *vnet_id_or_null, const char *allowed_or_null,
                           wr_device *out) {
  wr_device d;
  wr_account a;
  wr_vnet v;
  int rv;
  memset(&d, 0, sizeof(d));
  if ((rv = wr__store_check_name(s, "device name", name)) != WR_OK) return rv;
  if ((rv = check_key(s, public_key_b64)) != WR_OK) return rv;
  if ((rv = check_policy(s, allowed_or_null, d.allowed)) != WR_OK) return rv;
  wr__store_copy_str(d.name, sizeof(d.name), name);
  wr__store_copy_str(d.public_key, sizeof(d.public_key), public_key_b64);
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_account_get(s, account_id ? account_id : "", &a)) != WR_OK) goto out;
  if (vnet_id_or_null && *vnet_id_or_null) {
    if ((rv = resolve_vnet(s, a.id, vnet_id_or_null, &v)) != WR_OK) goto out;
    wr__store_copy_str(d.vnet_id, sizeof(d.vnet_id), v.id);
  }
  rv = device_insert(s, actor, &a, &d);
out:
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK && out) *out = d;
  return rv;
}

/* --- queries ------------------------------------------------------------------- */

int wr_store_device_list(wr_store *s, const char *account_id, int include_revoked,
                         wr_device **out, size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "read devices", sizeof(**out), read_device,
      DEVICE_SELECT "WHERE (?1 IS NULL OR account_id = lower(?1))"
      " AND (?2 <> 0 OR revoked_at IS NULL) ORDER BY created_at, rowid",
      "si", account_id, (int64_t)(include_revoked != 0));
  return rv;
}

int wr_store_device_get(wr_store *s, const char *account_id, const char *id_or_name,
                        wr_device *out) {
  char canon[WR_STORE_UUID_LEN + 1];
  wr_uuid u;
  int by_id;
  if (!id_or_name || !*id_or_name)
    return wr__store_serr(s, WR_ERR_INVAL, "name the device (its name or ID)");
  by_id = wr_uuid_parse(id_or_name, strlen(id_or_name), &u) == WR_OK;
  if (by_id) wr_uuid_format(&u, canon);
  return wr__store_one(
      s, "read device", read_device, out,
      by_id ? "no device with ID %s" : "no active device named \"%s\"", by_id ? canon : id_or_name,
      by_id ? DEVICE_SELECT "WHERE (?1 IS NULL OR account_id = lower(?1)) AND id = ?2"
            : DEVICE_SELECT "WHERE (?1 IS NULL OR account_id = lower(?1))"
                            " AND name = ?2 AND revoked_at IS NULL ORDER BY created_at LIMIT 1",
      "ss", account_id, by_id ? canon : id_or_name);
}

int wr_store_device_by_key(wr_store *s, const char *public_key_b64, wr_device *out) {
  return wr__store_one(
      s, "read device", read_device, out, "no active device has this public key", NULL,
      DEVICE_SELECT "WHERE public_key = ? AND revoked_at IS NULL",
      "s", public_key_b64 ? public_key_b64 : "");
}

/* --- changes -------------------------------------------------------------------- */

/* The device to change, inside the caller's transaction: as
 * wr_store_device_get, and WR_ERR_INVAL ("device NAME (ID) |revoked|") when
 * it is revoked. */
static int device_live(wr_store *s, const char *account_id, const char *id_or_name,
                       const char *revoked, wr_device *d) {
  int rv = wr_store_device_get(s, account_id, id_or_name, d);
  if (rv == WR_OK && d->revoked_at)
    rv = wr__store_serr(s, WR_ERR_INVAL, "device %s (%s) %s", d->name, d->id, revoked);
  return rv;
}

int wr_store_device_revoke(wr_store *s, const char *actor, const char *account_id,
                           const char *id_or_name) {
  wr_device d;
  int rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = device_live(s, account_id, id_or_name, "is already revoked", &d)) != WR_OK) goto out;
  rv = wr__store_execf(s, NULL, "revoke device", "UPDATE devices SET revoked_at = ? WHERE id = ?",
                       "is", wr__store_now(s), d.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, d.account_id, "device.revoke", "device", d.id,
                                json_pack("{s:s,s:s}", "name", d.name, "public_key", d.public_key));
out:
  return wr__store_tx_end(s, rv);
}

int wr_store_device_set_allowed(wr_store *s, const char *actor, const char *account_id,
                                const char *id_or_name, const char *allowed) {
  char canon[WR_STORE_DEVICE_ALLOWED_MAX];
  wr_device d;
  int rv;
  if ((rv = check_policy(s, allowed, canon)) != WR_OK) return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = device_live(s, account_id, id_or_name, "is revoked", &d)) != WR_OK) goto out;
  rv = wr__store_execf(s, NULL, "set device policy", "UPDATE devices SET allowed = ? WHERE id = ?",
                       "ss", canon, d.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, d.account_id, "device.policy", "device", d.id,
                                json_pack("{s:s,s:s,s:s}", "name", d.name, "allowed", canon,
                                          "previous", d.allowed));
out:
  return wr__store_tx_end(s, rv);
}

int wr_store_device_seen(wr_store *s, const char *id, int64_t last_handshake, uint64_t rx,
                         uint64_t tx) {
  char canon[WR_STORE_UUID_LEN + 1];
  int changes = 0, rv;
  if ((rv = wr__store_canon_uuid(s, id, canon, "device ID")) != WR_OK) return rv;
  rv = wr__store_execf(s, &changes, "record device statistics",
                       "UPDATE devices SET last_handshake = CASE WHEN ?1 > 0 THEN ?1"
                       " ELSE last_handshake END, rx_bytes = ?2, tx_bytes = ?3 WHERE id = ?4",
                       "iiis", last_handshake, (int64_t)rx, (int64_t)tx, canon);
  if (rv == WR_OK && changes == 0) rv = wr__store_serr(s, WR_ERR_NOTFOUND, "no device with ID %s", canon);
  return rv;
}
