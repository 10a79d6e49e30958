/* Store: DNS names, zones, the zone a hostname belongs to, and the expiry
 * of DNS routes whose tunnel is gone (edge/dns.h). */

#include "edge/store_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"

/* --- names ------------------------------------------------------------------- */

#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), WR_ERR_INVAL)

/* The checks on the name as given, before it is folded to lower case. */
static int dns_name_raw_check(const char *name, size_t len, char *err, size_t errlen) {
  char b[80];
  if (len == 0) return BAD("the name is empty");
  if (strstr(name, "://"))
    return BAD("\"%s\" is a URL; give only the hostname, e.g. app.example.com",
               wr__store_quote(name, b, sizeof(b)));
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)name[i] >= 0x80)
      return BAD("\"%s\" is not ASCII; use its punycode (xn--) form",
                 wr__store_quote(name, b, sizeof(b)));
  if (strchr(name, ':'))
    return BAD("\"%s\" must be a hostname without a port", wr__store_quote(name, b, sizeof(b)));
  if (strchr(name, '/'))
    return BAD("\"%s\" must be a hostname without a path", wr__store_quote(name, b, sizeof(b)));
  return WR_OK;
}

/* One label other than a wildcard: letters, digits, '-' and '_', with no
 * '-' at either end. *all_digits says whether it is digits only. |name| is
 * the whole name as given, for messages. */
static int dns_label_check(const char *name, const char *label, size_t llen, int *all_digits,
                           char *err, size_t errlen) {
  char b[80];
  *all_digits = 1;
  for (size_t k = 0; k < llen; k++) {
    unsigned char c = (unsigned char)label[k];
    if (!(islower(c) || isdigit(c) || c == '-' || c == '_')) {
      if (isprint(c))
        return BAD("\"%s\" contains '%c', which is not allowed in a DNS name",
                   wr__store_quote(name, b, sizeof(b)), c);
      return BAD("\"%s\" contains the byte 0x%02x, which is not allowed in a DNS name",
                 wr__store_quote(name, b, sizeof(b)), c);
    }
    *all_digits &= isdigit(c) != 0;
  }
  if (label[0] == '-' || label[llen - 1] == '-')
    return BAD("\"%s\" has a label that starts or ends with '-'",
               wr__store_quote(name, b, sizeof(b)));
  return WR_OK;
}

/* The labels of |canon| (lower case, |len| bytes, no trailing dot), first to
 * last; |name| is the name as given, for messages. */
static int dns_labels_check(const char *name, const char *canon, size_t len, int allow_wildcard,
                            char *err, size_t errlen) {
  char b[80];
  size_t start = 0;
  int all_digits = 1, rv;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && canon[i] != '.') continue;
    size_t llen = i - start;
    const char *label = canon + start;
    if (llen == 0) return BAD("\"%s\" has an empty label", wr__store_quote(name, b, sizeof(b)));
    if (llen > 63)
      return BAD("\"%s\" has a label longer than 63 bytes", wr__store_quote(name, b, sizeof(b)));
    if (llen == 1 && label[0] == '*') {
      if (!allow_wildcard)
        return BAD("\"%s\" must not be a wildcard", wr__store_quote(name, b, sizeof(b)));
      if (start != 0)
        return BAD("\"%s\": '*' is only allowed as the whole first label",
                   wr__store_quote(name, b, sizeof(b)));
      if (i == len)
        return BAD("\"%s\": a wildcard needs a domain after it",
                   wr__store_quote(name, b, sizeof(b)));
    } else if ((rv = dns_label_check(name, label, llen, &all_digits, err, errlen)) != WR_OK) {
      return rv;
    }
    start = i + 1;
  }
  /* The last label was checked last: a numeric top label means an address. */
  if (all_digits)
    return BAD("\"%s\" is an IP address, not a DNS name", wr__store_quote(name, b, sizeof(b)));
  return WR_OK;
}

int wr_store_check_dns_name(const char *name, int allow_wildcard, char out[WR_STORE_HOST_MAX + 1],
                            char *err, size_t errlen) {
  char b[80], canon[WR_STORE_HOST_MAX + 2];
  size_t len = strlen(name);
  int rv;
  if ((rv = dns_name_raw_check(name, len, err, errlen)) != WR_OK) return rv;
  if (name[len - 1] == '.') len--; /* the root label is implied */
  if (len == 0) return BAD("the name is empty");
  if (len > WR_STORE_HOST_MAX)
    return BAD("\"%s\" is %zu bytes long; DNS names have at most %d",
               wr__store_quote(name, b, sizeof(b)), len, WR_STORE_HOST_MAX);
  for (size_t i = 0; i < len; i++) canon[i] = (char)tolower((unsigned char)name[i]);
  canon[len] = '\0';
  if ((rv = dns_labels_check(name, canon, len, allow_wildcard, err, errlen)) != WR_OK) return rv;
  memcpy(out, canon, len + 1);
  return WR_OK;
}
#undef BAD

/* "inside" means a proper subdomain: |host| ends in "." |zone|. */
int wr__store_host_in_zone(const char *host, const char *zone) {
  size_t hl = strlen(host), zl = strlen(zone);
  return hl > zl + 1 && host[hl - zl - 1] == '.' && strcmp(host + hl - zl, zone) == 0;
}
/* --- zones ---------------------------------------------------------------------- */

static const wr__store_col zone_cols[] = {
    WR__COL(WR__COL_TEXT, wr_zone, id),
    WR__COL(WR__COL_TEXT, wr_zone, account_id),
    WR__COL(WR__COL_TEXT, wr_zone, name),
    WR__COL(WR__COL_INT64, wr_zone, created_at),
};
WR__STORE_ROW_READER(read_zone, zone_cols)

/* Whose zone a name already is. */
static const wr__store_col zone_owner_cols[] = {WR__COL(WR__COL_TEXT, wr_zone, account_id)};
WR__STORE_ROW_READER(read_zone_owner, zone_owner_cols)

int wr_store_zone_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                         wr_zone *out) {
  wr_zone z = {0}, other;
  wr_account a;
  char msg[WR_STORE_ERRMSG_MAX];
  int rv;
  if (wr_store_check_dns_name(name ? name : "", 0, z.name, msg, sizeof(msg)) != WR_OK)
    return wr__store_serr(s, WR_ERR_INVAL, "zone: %s", msg);
  if ((rv = wr__store_new_hex_id(s, z.id)) != WR_OK) return rv;
  z.created_at = wr__store_now(s);
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) goto out;
  wr__store_copy_str(z.account_id, sizeof(z.account_id), a.id);
  rv = wr__store_one(s, "read zones", read_zone_owner, &other, NULL, NULL,
                     "SELECT account_id FROM zones WHERE name = ?", "s", z.name);
  if (rv == WR_OK) {
    rv = wr__store_serr(s, WR_ERR_EXISTS, "zone %s already exists (account %s)", z.name,
                        other.account_id);
    goto out;
  }
  if (rv != WR_ERR_NOTFOUND) goto out;
  rv = wr__store_execf(s, NULL, "create zone",
                       "INSERT INTO zones(id, account_id, name, created_at) VALUES (?, ?, ?, ?)",
                       "sssi", z.id, z.account_id, z.name, z.created_at);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, z.account_id, "zone.create", "zone", z.id,
                                json_pack("{s:s}", "name", z.name));
out:
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK && out) *out = z;
  return rv;
}

int wr_store_zone_get(wr_store *s, const char *id, wr_zone *out) {
  return wr__store_one(
      s, "read zone", read_zone, out, "no zone with id %s", id,
      "SELECT id, account_id, name, created_at FROM zones WHERE id = lower(?)", "s", id);
}

int wr_store_zone_list(wr_store *s, const char *account_id, wr_zone **out, size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "read zones", sizeof(**out), read_zone,
      "SELECT id, account_id, name, created_at FROM zones"
      " WHERE (?1 IS NULL OR account_id = ?1) ORDER BY name",
      "s", account_id);
  return rv;
}

/* Finds the zone a hostname belongs to: the most specific zone of the whole
 * edge that contains it, so a delegated sub-zone of another account wins
 * over its parent. |apex| is set when the hostname equals a zone name. */
int wr__store_zone_for_host(wr_store *s, const char *host, wr_zone *out, int *apex) {
  wr_zone *zones = NULL;
  size_t n = 0, best_len = 0;
  int rv = wr_store_zone_list(s, NULL, &zones, &n), found = 0;
  *apex = 0;
  if (rv != WR_OK) return rv;
  for (size_t i = 0; i < n; i++) {
    size_t zl = strlen(zones[i].name);
    int eq = strcmp(host, zones[i].name) == 0;
    if ((eq || wr__store_host_in_zone(host, zones[i].name)) && zl >= best_len) {
      *out = zones[i];
      best_len = zl;
      found = 1;
      *apex = eq;
    }
  }
  free(zones);
  return found ? WR_OK : WR_ERR_NOTFOUND;
}

/* The account's zone names, for "not inside any zone" messages. */
void wr__store_account_zone_names(wr_store *s, const char *account_id, char *buf, size_t size) {
  wr_zone *zones = NULL;
  size_t n = 0, used = 0;
  buf[0] = '\0';
  if (wr_store_zone_list(s, account_id, &zones, &n) != WR_OK) return;
  for (size_t i = 0; i < n && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", zones[i].name);
  free(zones);
}

/* --- DNS record expiry (called through edge/dns.h) ---------------------------------- */

int wr_store_route_expire(wr_store *s, const char *actor, int64_t unregistered_s, size_t limit,
                          wr_route **removed, size_t *n) {
  wr_db_stmt *st = NULL;
  wr_route *rows = NULL;
  struct why { int64_t at; int deleted; } *why = NULL;
  size_t cnt = 0, cap = 0, scap = 0;
  int rv, rc;
  *removed = NULL;
  *n = 0;
  if (unregistered_s < 0)
    return wr__store_serr(s, WR_ERR_INVAL, "the expiry age must not be negative");
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  /* Columns 0..7 as ROUTE_SELECT (read_route), then why the route goes:
   * the tunnel's deletion time, or when its last connection closed. A
   * tunnel that never connected keeps its routes (create, route, run later
   * is the usual order), and a route added after the last close gets the
   * whole grace period from its creation. */
  rv = wr__store_prepf(
      s, &st,
      "SELECT r.id, r.account_id, r.zone_id, z.name, r.hostname, r.tunnel_id, t.name,"
      " r.created_at, coalesce(t.deleted_at, 0),"
      " coalesce((SELECT max(c.closed_at) FROM connections c WHERE c.tunnel_id = r.tunnel_id), 0)"
      " FROM routes r JOIN zones z ON z.id = r.zone_id JOIN tunnels t ON t.id = r.tunnel_id"
      " WHERE t.deleted_at IS NOT NULL"
      "  OR (r.created_at <= ?1"
      "      AND (SELECT max(c.closed_at) FROM connections c WHERE c.tunnel_id = r.tunnel_id) <= ?1"
      "      AND NOT EXISTS (SELECT 1 FROM connections c"
      "                      WHERE c.tunnel_id = r.tunnel_id AND c.closed_at IS NULL))"
      " ORDER BY r.hostname LIMIT ?2",
      "ii", wr__store_now(s) - unregistered_s, limit ? (int64_t)limit : (int64_t)INT64_MAX);
  if (rv != WR_OK) goto out;
  while ((rc = wr_db_step(st)) == WR_DB_ROW) {
    wr__store_read_route(st, PUSH(rows, cnt, cap));
    why = wr__store_grow(why, cnt - 1, &scap, sizeof(*why));
    why[cnt - 1].at = wr_db_col_int64(st, 8);
    why[cnt - 1].deleted = why[cnt - 1].at != 0;
    if (!why[cnt - 1].deleted) why[cnt - 1].at = wr_db_col_int64(st, 9);
  }
  if (rc != WR_DB_DONE) {
    rv = wr__store_dberr(s, "read expired routes");
    goto out;
  }
  wr_db_finalize(st);
  st = NULL;
  for (size_t i = 0; i < cnt && rv == WR_OK; i++) {
    wr_route *r = &rows[i];
    rv = wr__store_execf(s, NULL, "delete route", "DELETE FROM routes WHERE id = ?", "s", r->id);
    if (rv == WR_OK)
      rv = wr__store_audit_insert(
          s, actor, r->account_id, "route.expire", "route", r->hostname,
          json_pack("{s:s,s:s,s:s,s:I}", "type", "dns", "tunnel_id", r->tunnel_id, "reason",
                    why[i].deleted ? "tunnel deleted" : "tunnel unregistered", "since",
                    (json_int_t)why[i].at));
  }
out:
  wr_db_finalize(st);
  free(why);
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK) {
    *removed = rows;
    *n = cnt;
  } else {
    free(rows);
  }
  return rv;
}
