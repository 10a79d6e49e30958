/* Store: DNS routes (hostname -> tunnel), CIDR helpers, virtual networks
 * and IP routes. */

#include "edge/store_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"

/* --- routes ------------------------------------------------------------------------- */

const char *wr_route_change_name(wr_route_change c) {
  switch (c) {
  case WR_ROUTE_NEW:
    return "new";
  case WR_ROUTE_UPDATED:
    return "updated";
  case WR_ROUTE_UNCHANGED:
    return "unchanged";
  }
  return "unknown";
}

#define ROUTE_SELECT                                                                               \
  "SELECT r.id, r.account_id, r.zone_id, z.name, r.hostname, r.tunnel_id, t.name, r.created_at"   \
  " FROM routes r JOIN zones z ON z.id = r.zone_id JOIN tunnels t ON t.id = r.tunnel_id "

static const wr__store_col route_cols[] = {
    WR__COL(WR__COL_TEXT, wr_route, id),
    WR__COL(WR__COL_TEXT, wr_route, account_id),
    WR__COL(WR__COL_TEXT, wr_route, zone_id),
    WR__COL(WR__COL_TEXT, wr_route, zone_name),
    WR__COL(WR__COL_TEXT, wr_route, hostname),
    WR__COL(WR__COL_TEXT, wr_route, tunnel_id),
    WR__COL(WR__COL_TEXT, wr_route, tunnel_name),
    WR__COL(WR__COL_INT64, wr_route, created_at),
};

WR__STORE_ROW_READER_CLEARED(wr__store_read_route, wr_route, route_cols)

int wr_store_route_get(wr_store *s, const char *hostname, wr_route *out) {
  return wr__store_one(
      s, "read route", wr__store_read_route, out, "no route for %s", hostname,
      ROUTE_SELECT "WHERE r.hostname = ?", "s", hostname);
}

/* The zone the caller named for a DNS route: it must belong to the tunnel's
 * account and contain |host| as a proper subdomain. */
static int route_given_zone(wr_store *s, const char *zone_id, const wr_tunnel *t, const char *host,
                            wr_zone *given) {
  int rv;
  if ((rv = wr_store_zone_get(s, zone_id, given)) != WR_OK) return rv;
  if (strcmp(given->account_id, t->account_id) != 0)
    return wr__store_serr(s, WR_ERR_INVAL, "zone %s and tunnel %s belong to different accounts",
                          given->name, t->id);
  if (strcmp(host, given->name) == 0)
    return wr__store_serr(s, WR_ERR_INVAL,
                          "%s is the zone apex of %s: route a name inside the zone, e.g. app.%s",
                          host, given->name, given->name);
  if (!wr__store_host_in_zone(host, given->name))
    return wr__store_serr(s, WR_ERR_INVAL, "%s is not inside zone %s", host, given->name);
  return WR_OK;
}

/* The zone a DNS route for |host| goes in: the most specific zone of the
 * edge, which must not have |host| as its apex, must be the tunnel's
 * account's and, when the caller named a zone (|given| not NULL), be that. */
static int route_zone(wr_store *s, const char *host, const wr_tunnel *t, const wr_zone *given,
                      wr_zone *z) {
  int apex = 0;
  int rv = wr__store_zone_for_host(s, host, z, &apex);
  if (rv == WR_ERR_NOTFOUND) {
    char names[256];
    wr__store_account_zone_names(s, t->account_id, names, sizeof(names));
    return wr__store_serr(s, WR_ERR_INVAL, "%s is not inside %s%s", host,
                          strchr(names, ',') ? "any zone of this account: " : "zone ",
                          names[0] ? names : "(the account has no zones)");
  }
  if (rv != WR_OK) return rv;
  if (apex)
    return wr__store_serr(s, WR_ERR_INVAL,
                          "%s is the zone apex of %s: route a name inside the zone, e.g. app.%s",
                          host, z->name, z->name);
  if (strcmp(z->account_id, t->account_id) != 0)
    return wr__store_serr(s, WR_ERR_INVAL, "%s is in zone %s, which belongs to another account",
                          host, z->name);
  if (given && strcmp(z->id, given->id) != 0)
    return wr__store_serr(s, WR_ERR_INVAL, "%s belongs to the more specific zone %s, not %s", host,
                          z->name, given->name);
  return WR_OK;
}

/* Points the existing route |old| for |host| at |t| in |z|, inside the
 * caller's transaction; a route that already goes there is left alone. */
static int route_repoint(wr_store *s, const char *actor, const char *host, int overwrite,
                         const wr_tunnel *t, const wr_zone *z, const wr_route *old,
                         wr_route_change *ch) {
  int rv;
  if (strcmp(old->tunnel_id, t->id) == 0 && strcmp(old->zone_id, z->id) == 0) {
    *ch = WR_ROUTE_UNCHANGED; /* nothing changes, so nothing to audit */
    return WR_OK;
  }
  if (strcmp(old->account_id, t->account_id) != 0)
    return wr__store_serr(s, WR_ERR_EXISTS, "%s is routed by another account", host);
  if (!overwrite)
    return wr__store_serr(s, WR_ERR_EXISTS, "%s is already routed to tunnel %s (%s)", host,
                          old->tunnel_name, old->tunnel_id);
  *ch = WR_ROUTE_UPDATED;
  rv = wr__store_execf(s, NULL, "update route",
                       "UPDATE routes SET tunnel_id = ?, zone_id = ? WHERE id = ?", "sss", t->id,
                       z->id, old->id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, t->account_id, "route.update", "route", host,
                                json_pack("{s:s,s:s,s:s,s:s}", "type", "dns", "tunnel_id", t->id,
                                          "previous_tunnel_id", old->tunnel_id, "zone", z->name));
  return rv;
}

/* Creates the DNS route |host| -> |t| in |z|, or re-points the one there,
 * inside the caller's transaction. *ch says which. */
static int route_write(wr_store *s, const char *actor, const char *host, int overwrite,
                       size_t max, const wr_tunnel *t, const wr_zone *z, wr_route_change *ch) {
  char route_id[WR_STORE_UUID_LEN + 1];
  wr_route old;
  int rv = wr_store_route_get(s, host, &old);
  if (rv == WR_OK) return route_repoint(s, actor, host, overwrite, t, z, &old, ch);
  if (rv != WR_ERR_NOTFOUND) return rv;
  *ch = WR_ROUTE_NEW;
  rv = wr__store_account_cap(s, t->account_id, max, "SELECT count(*) FROM routes WHERE account_id = ?",
                             "hostname routes");
  if (rv != WR_OK) return rv;
  if ((rv = wr__store_new_uuid(s, route_id)) != WR_OK) return rv;
  rv = wr__store_execf(s, NULL, "create route",
             "INSERT INTO routes(id, account_id, zone_id, hostname, tunnel_id, type, created_at)"
             " VALUES (?, ?, ?, ?, ?, 'dns', ?)",
             "sssssi", route_id, t->account_id, z->id, host, t->id, wr__store_now(s));
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, t->account_id, "route.create", "route", host,
                                json_pack("{s:s,s:s,s:s}", "type", "dns", "tunnel_id", t->id,
                                          "zone", z->name));
  return rv;
}

/* A route's hostname (wildcards allowed), canonical into |host|. */
static int check_host(wr_store *s, const char *hostname, char host[WR_STORE_HOST_MAX + 1]) {
  char msg[WR_STORE_ERRMSG_MAX];
  if (wr_store_check_dns_name(hostname ? hostname : "", 1, host, msg, sizeof(msg)) != WR_OK)
    return wr__store_serr(s, WR_ERR_INVAL, "hostname: %s", msg);
  return WR_OK;
}

int wr_store_route_dns_add(wr_store *s, const char *actor, const char *zone_id,
                           const char *tunnel_id, const char *hostname, int overwrite,
                           wr_route *out, wr_route_change *change) {
  return wr_store_route_dns_add_max(s, actor, zone_id, tunnel_id, hostname, overwrite, 0, out,
                                    change);
}

int wr_store_route_dns_add_max(wr_store *s, const char *actor, const char *zone_id,
                               const char *tunnel_id, const char *hostname, int overwrite,
                               size_t max_routes, wr_route *out, wr_route_change *change) {
  char host[WR_STORE_HOST_MAX + 1];
  wr_tunnel t;
  wr_zone z, given = {0};
  int rv;
  wr_route_change ch = WR_ROUTE_NEW;
  if ((rv = check_host(s, hostname, host)) != WR_OK) return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr__store_tunnel_live(s, NULL, tunnel_id, &t)) != WR_OK) goto out;
  if (zone_id && (rv = route_given_zone(s, zone_id, &t, host, &given)) != WR_OK) goto out;
  if ((rv = route_zone(s, host, &t, zone_id ? &given : NULL, &z)) != WR_OK) goto out;
  rv = route_write(s, actor, host, overwrite, max_routes, &t, &z, &ch);
out:
  memset(&t, 0, sizeof(t));
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK) {
    if (change) *change = ch;
    if (out) rv = wr_store_route_get(s, host, out);
  }
  return rv;
}

int wr_store_route_delete(wr_store *s, const char *actor, const char *hostname) {
  char host[WR_STORE_HOST_MAX + 1];
  wr_route r;
  int rv;
  if ((rv = check_host(s, hostname, host)) != WR_OK) return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_route_get(s, host, &r)) != WR_OK) goto out;
  rv = wr__store_execf(s, NULL, "delete route", "DELETE FROM routes WHERE id = ?", "s", r.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, r.account_id, "route.delete", "route", r.hostname,
                                json_pack("{s:s,s:s}", "type", "dns", "tunnel_id", r.tunnel_id));
out:
  return wr__store_tx_end(s, rv);
}

int wr_store_route_list(wr_store *s, const char *account_id, const char *tunnel_id, wr_route **out,
                        size_t *n) {
  char canon[WR_STORE_UUID_LEN + 1];
  int rv;
  *out = NULL;
  *n = 0;
  if (tunnel_id && (rv = wr__store_canon_uuid(s, tunnel_id, canon, "tunnel ID")) != WR_OK)
    return rv;
  *out = wr__store_list(
      s, &rv, n, "read routes", sizeof(**out), wr__store_read_route,
      ROUTE_SELECT
      "WHERE (?1 IS NULL OR r.account_id = lower(?1)) AND (?2 IS NULL OR r.tunnel_id = ?2)"
      " ORDER BY r.hostname",
      "ss", account_id, tunnel_id ? canon : NULL);
  return rv;
}

int wr_store_route_count(wr_store *s, const char *account_id, size_t *n) {
  int64_t count = 0;
  int rv = wr__store_agg(s, "count routes", NULL, wr__store_read_int64, &count,
                         "SELECT count(*) FROM routes WHERE account_id = lower(?)", "s",
                         account_id ? account_id : "");
  *n = (size_t)count;
  return rv;
}

/* --- CIDR ---------------------------------------------------------------------- */

int wr_store_cidr_parse(const char *in, wr_store_cidr *out, char *err, size_t errlen) {
  char addr[INET6_ADDRSTRLEN + 1], b[80];
  const char *slash;
  size_t alen;
  long bits = -1;
  memset(out, 0, sizeof(*out));
  if (!in || !*in) return snprintf(err, errlen, "the network is empty"), WR_ERR_INVAL;
  slash = strchr(in, '/');
  alen = slash ? (size_t)(slash - in) : strlen(in);
  if (alen == 0 || alen >= sizeof(addr))
    return snprintf(err, errlen, "\"%s\" is not a network in CIDR notation (e.g. 10.0.0.0/8)",
                    wr__store_quote(in, b, sizeof(b))),
           WR_ERR_INVAL;
  memcpy(addr, in, alen);
  addr[alen] = '\0';
  if (inet_pton(AF_INET, addr, out->addr) == 1) {
    out->v6 = 0;
  } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
    out->v6 = 1;
  } else {
    return snprintf(err, errlen, "\"%s\" is not a network in CIDR notation (e.g. 10.0.0.0/8)",
                    wr__store_quote(in, b, sizeof(b))),
           WR_ERR_INVAL;
  }
  unsigned max = out->v6 ? 128 : 32;
  if (slash) {
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3) bits = -1;
    else {
      bits = 0;
      for (; *p; p++) {
        if (*p < '0' || *p > '9') {
          bits = -1;
          break;
        }
        bits = bits * 10 + (*p - '0');
      }
    }
    if (bits < 0 || bits > (long)max)
      return snprintf(err, errlen, "\"%s\" has an invalid prefix length (0 to %u)",
                      wr__store_quote(in, b, sizeof(b)), max),
             WR_ERR_INVAL;
  } else {
    bits = (long)max;
  }
  out->bits = (unsigned)bits;
  /* Clear the host bits. */
  for (unsigned i = 0; i < max / 8; i++) {
    unsigned keep = out->bits > i * 8 ? out->bits - i * 8 : 0;
    if (keep >= 8) continue;
    out->addr[i] &= (uint8_t)(0xff00u >> keep);
  }
  return WR_OK;
}

void wr_store_cidr_format(const wr_store_cidr *c, char out[WR_STORE_CIDR_MAX + 1]) {
  char a[INET6_ADDRSTRLEN] = "";
  size_t len;
  inet_ntop(c->v6 ? AF_INET6 : AF_INET, c->addr, a, sizeof(a));
  len = strnlen(a, WR_STORE_CIDR_MAX - 4);
  memcpy(out, a, len);
  snprintf(out + len, 5, "/%u", c->bits > 128 ? 128 : c->bits);
}

int wr_store_cidr_contains(const wr_store_cidr *outer, const wr_store_cidr *inner) {
  if (outer->v6 != inner->v6 || outer->bits > inner->bits) return 0;
  for (unsigned i = 0; i * 8 < outer->bits; i++) {
    unsigned keep = outer->bits - i * 8;
    uint8_t mask = keep >= 8 ? 0xff : (uint8_t)(0xff00u >> keep);
    if ((outer->addr[i] & mask) != (inner->addr[i] & mask)) return 0;
  }
  return 1;
}

/* --- virtual networks -------------------------------------------------------------- */

#define VNET_SELECT                                                                                \
  "SELECT id, account_id, name, comment, is_default, created_at, coalesce(deleted_at, 0)"            \
  " FROM virtual_networks "

static const wr__store_col vnet_cols[] = {
    WR__COL(WR__COL_TEXT, wr_vnet, id),
    WR__COL(WR__COL_TEXT, wr_vnet, account_id),
    WR__COL(WR__COL_TEXT, wr_vnet, name),
    WR__COL(WR__COL_TEXT, wr_vnet, comment),
    WR__COL(WR__COL_INT, wr_vnet, is_default),
    WR__COL(WR__COL_INT64, wr_vnet, created_at),
    WR__COL(WR__COL_INT64, wr_vnet, deleted_at),
};
static WR__STORE_ROW_READER_CLEARED(read_vnet, wr_vnet, vnet_cols)

int wr__store_vnet_live(wr_store *s, const char *account_id, const char *id, wr_vnet *out) {
  int rv;
  if ((rv = wr_store_vnet_get(s, id, out)) != WR_OK) return rv;
  if (account_id && strcasecmp(out->account_id, account_id) != 0)
    return wr__store_serr(s, WR_ERR_NOTFOUND, "no virtual network with ID %s in this account",
                          out->id);
  if (out->deleted_at)
    return wr__store_serr(s, WR_ERR_INVAL, "virtual network %s (%s) is deleted", out->name,
                          out->id);
  return WR_OK;
}

/* Comments: 0..256 bytes of UTF-8 without control characters. */
static int check_comment(wr_store *s, const char *what, const char *c) {
  if (!c || !*c) return WR_OK;
  return wr__store_check_text(s, what, c, WR_STORE_COMMENT_MAX);
}

int wr_store_vnet_get(wr_store *s, const char *id, wr_vnet *out) {
  return wr__store_get_uuid(s, id, "virtual network ID", "read virtual network", read_vnet, out,
                            "no virtual network with ID %s", VNET_SELECT "WHERE id = ?");
}

/* The live virtual network |name| of an account: WR_OK, WR_ERR_NOTFOUND
 * (no message), or an error. */
static int vnet_find(wr_store *s, const char *account_id, const char *name, wr_vnet *out) {
  return wr__store_one(
      s, "read virtual network", read_vnet, out, NULL, NULL,
      VNET_SELECT "WHERE account_id = lower(?) AND name = ? AND deleted_at IS NULL", "ss",
      account_id, name);
}

static int vnet_find_default(wr_store *s, const char *account_id, wr_vnet *out) {
  return wr__store_one(
      s, "read virtual network", read_vnet, out, NULL, NULL,
      VNET_SELECT "WHERE account_id = lower(?) AND is_default = 1 AND deleted_at IS NULL",
      "s", account_id);
}

/* WR_OK when the account has no live virtual network |name|, else
 * WR_ERR_EXISTS or the error of looking. */
static int vnet_name_free(wr_store *s, const char *account_id, const char *name) {
  wr_vnet old;
  int rv = vnet_find(s, account_id, name, &old);
  if (rv == WR_OK)
    return wr__store_serr(s, WR_ERR_EXISTS, "a virtual network named \"%s\" already exists (ID %s)",
                          old.name, old.id);
  return rv == WR_ERR_NOTFOUND ? WR_OK : rv;
}

/* Inserts a virtual network inside the caller's transaction. */
static int vnet_insert(wr_store *s, const char *actor, const char *account_id, const char *name,
                       const char *comment, int is_default, int automatic, wr_vnet *out) {
  wr_vnet v, old;
  wr_account a;
  int rv;
  memset(&v, 0, sizeof(v));
  if ((rv = wr__store_check_name(s, "virtual network name", name)) != WR_OK) return rv;
  if ((rv = check_comment(s, "virtual network comment", comment)) != WR_OK) return rv;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) return rv;
  if ((rv = vnet_name_free(s, a.id, name)) != WR_OK) return rv;
  rv = vnet_find_default(s, a.id, &old);
  if (rv == WR_ERR_NOTFOUND) is_default = 1; /* an account always has a default */
  else if (rv != WR_OK) return rv;
  if ((rv = wr__store_new_uuid(s, v.id)) != WR_OK) return rv;
  wr__store_copy_str(v.account_id, sizeof(v.account_id), a.id);
  wr__store_copy_str(v.name, sizeof(v.name), name);
  wr__store_copy_str(v.comment, sizeof(v.comment), comment);
  v.is_default = is_default != 0;
  v.created_at = wr__store_now(s);
  if (v.is_default &&
      (rv = wr__store_execf(
           s, NULL, "change default virtual network",
           "UPDATE virtual_networks SET is_default = 0 WHERE account_id = ? AND is_default = 1",
           "s", a.id)) != WR_OK)
    return rv;
  rv = wr__store_execf(
      s, NULL, "create virtual network",
      "INSERT INTO virtual_networks(id, account_id, name, comment, is_default, created_at)"
      " VALUES (?, ?, ?, ?, ?, ?)",
      "ssssii", v.id, v.account_id, v.name, v.comment, (int64_t)v.is_default, v.created_at);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, a.id, "vnet.create", "vnet", v.id,
                                json_pack("{s:s,s:b,s:b}", "name", v.name, "is_default",
                                          v.is_default, "automatic", automatic));
  if (rv == WR_OK && out) *out = v;
  return rv;
}

int wr_store_vnet_create(wr_store *s, const char *actor, const char *account_id, const char *name,
                         const char *comment, int is_default, wr_vnet *out) {
  int rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  rv = vnet_insert(s, actor, account_id, name, comment, is_default, 0, out);
  return wr__store_tx_end(s, rv);
}

/* The default network inside the caller's transaction, made if missing. */
static int vnet_default_tx(wr_store *s, const char *actor, const char *account_id, wr_vnet *out) {
  int rv = vnet_find_default(s, account_id, out);
  if (rv != WR_ERR_NOTFOUND) return rv;
  rv = vnet_insert(s, actor, account_id, "default", "", 1, 1, out);
  if (rv == WR_ERR_EXISTS) {
    /* A network named "default" exists but is not the default: use a free name. */
    char name[32];
    for (int i = 2; i < 100 && rv == WR_ERR_EXISTS; i++) {
      snprintf(name, sizeof(name), "default-%d", i);
      rv = vnet_insert(s, actor, account_id, name, "", 1, 1, out);
    }
  }
  return rv;
}

int wr_store_vnet_default(wr_store *s, const char *actor, const char *account_id, wr_vnet *out) {
  int rv = vnet_find_default(s, account_id ? account_id : "", out);
  if (rv != WR_ERR_NOTFOUND) return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  rv = vnet_default_tx(s, actor, account_id ? account_id : "", out);
  return wr__store_tx_end(s, rv);
}

int wr_store_vnet_list(wr_store *s, const wr_vnet_filter *f, wr_vnet **out, size_t *n) {
  char id[WR_STORE_UUID_LEN + 1] = "";
  int rv;
  *out = NULL;
  *n = 0;
  if (!f || !f->account_id)
    return wr__store_serr(s, WR_ERR_INVAL, "listing virtual networks needs an account");
  if (f->id && (rv = wr__store_canon_uuid(s, f->id, id, "virtual network ID")) != WR_OK) return rv;
  *out = wr__store_list(
      s, &rv, n, "read virtual networks", sizeof(**out), read_vnet,
      VNET_SELECT "WHERE account_id = lower(?1) AND (?2 <> 0 OR deleted_at IS NULL)"
      " AND (?3 = 0 OR deleted_at IS NOT NULL) AND (?4 IS NULL OR id = ?4)"
      " AND (?5 IS NULL OR name = ?5) AND (?6 < 0 OR is_default = ?6)"
      " ORDER BY created_at, rowid",
      "siissi", f->account_id, (int64_t)(f->include_deleted || f->only_deleted),
      (int64_t)(f->only_deleted != 0), id[0] ? id : NULL, f->name,
      (int64_t)(f->is_default < 0 ? -1 : f->is_default != 0));
  return rv;
}

int wr_store_vnet_update(wr_store *s, const char *actor, const char *id, const char *name,
                         const char *comment, int make_default, wr_vnet *out) {
  wr_vnet v;
  json_t *detail;
  int rv;
  if (name && (rv = wr__store_check_name(s, "virtual network name", name)) != WR_OK) return rv;
  if (comment && (rv = check_comment(s, "virtual network comment", comment)) != WR_OK) return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr__store_vnet_live(s, NULL, id, &v)) != WR_OK) goto out;
  if (name && strcmp(name, v.name) != 0 && (rv = vnet_name_free(s, v.account_id, name)) != WR_OK)
    goto out;
  detail = json_object();
  if (name) json_object_set_new(detail, "name", json_string(name));
  if (comment) json_object_set_new(detail, "comment", json_string(comment));
  if (make_default && !v.is_default) {
    json_object_set_new(detail, "is_default", json_true());
    rv = wr__store_execf(
        s, NULL, "change default virtual network",
        "UPDATE virtual_networks SET is_default = 0 WHERE account_id = ? AND is_default = 1", "s",
        v.account_id);
    if (rv == WR_OK)
      rv = wr__store_execf(s, NULL, "change default virtual network",
                           "UPDATE virtual_networks SET is_default = 1 WHERE id = ?", "s", v.id);
    if (rv != WR_OK) {
      json_decref(detail);
      goto out;
    }
  }
  rv = wr__store_execf(
      s, NULL, "update virtual network",
      "UPDATE virtual_networks SET name = coalesce(?, name), comment = coalesce(?, comment) WHERE id = ?",
      "sss", name, comment, v.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, v.account_id, "vnet.update", "vnet", v.id, detail);
  else json_decref(detail);
  if (rv == WR_OK) rv = wr_store_vnet_get(s, v.id, &v);
out:
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK && out) *out = v;
  return rv;
}

int wr_store_vnet_delete(wr_store *s, const char *actor, const char *id, int force,
                         size_t *routes_removed) {
  wr_vnet v;
  int rv, removed = 0;
  int64_t nroutes = 0, now = wr__store_now(s);
  if (routes_removed) *routes_removed = 0;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_vnet_get(s, id, &v)) != WR_OK) goto out;
  if (v.deleted_at) {
    rv =
        wr__store_serr(s, WR_ERR_INVAL, "virtual network %s (%s) is already deleted", v.name, v.id);
    goto out;
  }
  if (v.is_default) {
    rv = wr__store_serr(
        s, WR_ERR_INVAL,
        "virtual network %s is the account's default; make another one the default first "
        "(cloudflared tunnel vnet update --default OTHER)",
        v.name);
    goto out;
  }
  if ((rv = wr__store_one(
           s, "count IP routes", wr__store_read_int64, &nroutes, NULL, NULL,
           "SELECT count(*) FROM ip_routes WHERE virtual_network_id = ? AND deleted_at IS NULL",
           "s", v.id)) != WR_OK)
    goto out;
  if (nroutes && !force) {
    rv = wr__store_serr(
        s, WR_ERR_INVAL,
        "virtual network %s still has %lld IP route%s; delete them first or force the deletion "
        "(cloudflared tunnel vnet delete --force), which deletes them too",
        v.name, (long long)nroutes, nroutes == 1 ? "" : "s");
    goto out;
  }
  if ((rv = wr__store_execf(
           s, &removed, "delete IP routes",
           "UPDATE ip_routes SET deleted_at = ? WHERE virtual_network_id = ? AND deleted_at IS NULL",
           "is", now, v.id)) != WR_OK)
    goto out;
  if ((rv = wr__store_execf(s, NULL, "delete virtual network",
                            "UPDATE virtual_networks SET deleted_at = ? WHERE id = ?", "is", now,
                            v.id)) != WR_OK)
    goto out;
  rv = wr__store_audit_insert(s, actor, v.account_id, "vnet.delete", "vnet", v.id,
                              json_pack("{s:s,s:i,s:b}", "name", v.name, "ip_routes_removed",
                                        removed, "force", force != 0));
  if (rv == WR_OK && routes_removed) *routes_removed = (size_t)removed;
out:
  return wr__store_tx_end(s, rv);
}

/* --- IP routes -------------------------------------------------------------------------- */

#define IP_ROUTE_SELECT                                                                            \
  "SELECT r.id, r.account_id, r.network, r.tunnel_id, t.name, coalesce(r.virtual_network_id, ''),"   \
  " coalesce(v.name, ''), r.comment, r.created_at, coalesce(r.deleted_at, 0)"                          \
  " FROM ip_routes r JOIN tunnels t ON t.id = r.tunnel_id"                                         \
  " LEFT JOIN virtual_networks v ON v.id = r.virtual_network_id "

static const wr__store_col ip_route_cols[] = {
    WR__COL(WR__COL_TEXT, wr_ip_route, id),
    WR__COL(WR__COL_TEXT, wr_ip_route, account_id),
    WR__COL(WR__COL_TEXT, wr_ip_route, network),
    WR__COL(WR__COL_TEXT, wr_ip_route, tunnel_id),
    WR__COL(WR__COL_TEXT, wr_ip_route, tunnel_name),
    WR__COL(WR__COL_TEXT, wr_ip_route, vnet_id),
    WR__COL(WR__COL_TEXT, wr_ip_route, vnet_name),
    WR__COL(WR__COL_TEXT, wr_ip_route, comment),
    WR__COL(WR__COL_INT64, wr_ip_route, created_at),
    WR__COL(WR__COL_INT64, wr_ip_route, deleted_at),
};
static WR__STORE_ROW_READER_CLEARED(read_ip_route, wr_ip_route, ip_route_cols)

int wr_store_ip_route_get(wr_store *s, const char *id, wr_ip_route *out) {
  return wr__store_get_uuid(s, id, "route ID", "read IP route", read_ip_route, out,
                            "no IP route with ID %s", IP_ROUTE_SELECT "WHERE r.id = ?");
}

int wr_store_ip_route_add(wr_store *s, const char *actor, const char *account_id,
                          const char *network, const char *tunnel_id, const char *vnet_id,
                          const char *comment, wr_ip_route *out) {
  return wr_store_ip_route_add_max(s, actor, account_id, network, tunnel_id, vnet_id, comment, 0,
                                   out);
}

int wr_store_ip_route_add_max(wr_store *s, const char *actor, const char *account_id,
                              const char *network, const char *tunnel_id, const char *vnet_id,
                              const char *comment, size_t max_routes, wr_ip_route *out) {
  char net[WR_STORE_CIDR_MAX + 1], msg[WR_STORE_ERRMSG_MAX], id[WR_STORE_UUID_LEN + 1];
  wr_store_cidr c;
  wr_tunnel t;
  wr_vnet v;
  wr_ip_route old;
  int rv;
  if (wr_store_cidr_parse(network, &c, msg, sizeof(msg)) != WR_OK)
    return wr__store_serr(s, WR_ERR_INVAL, "network: %s", msg);
  wr_store_cidr_format(&c, net);
  if ((rv = check_comment(s, "route comment", comment)) != WR_OK) return rv;
  if ((rv = wr__store_new_uuid(s, id)) != WR_OK) return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr__store_tunnel_live(s, account_id ? account_id : "", tunnel_id, &t)) != WR_OK)
    goto out;
  if (vnet_id) {
    if ((rv = wr__store_vnet_live(s, t.account_id, vnet_id, &v)) != WR_OK) goto out;
  } else if ((rv = vnet_default_tx(s, actor, t.account_id, &v)) != WR_OK) {
    goto out;
  }
  rv = wr__store_one(s, "read IP routes", read_ip_route, &old, NULL, NULL,
                     IP_ROUTE_SELECT
                     "WHERE r.account_id = ? AND r.network = ? AND r.virtual_network_id = ?"
                     " AND r.deleted_at IS NULL",
                     "sss", t.account_id, net, v.id);
  if (rv == WR_OK) {
    rv = wr__store_serr(
        s, WR_ERR_EXISTS,
        "%s in virtual network %s is already routed to tunnel %s (%s); delete that route first",
        net, v.name, old.tunnel_name, old.tunnel_id);
    goto out;
  }
  if (rv != WR_ERR_NOTFOUND) goto out;
  rv = wr__store_account_cap(
      s, t.account_id, max_routes,
      "SELECT count(*) FROM ip_routes WHERE account_id = ? AND deleted_at IS NULL", "IP routes");
  if (rv != WR_OK) goto out;
  rv = wr__store_execf(
      s, NULL, "create IP route",
      "INSERT INTO ip_routes(id, account_id, network, tunnel_id, virtual_network_id, comment, created_at)"
      " VALUES (?, ?, ?, ?, ?, ?, ?)",
      "ssssssi", id, t.account_id, net, t.id, v.id, comment ? comment : "", wr__store_now(s));
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, t.account_id, "route.create", "ip_route", id,
                                json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "ip", "network", net,
                                          "tunnel_id", t.id, "virtual_network_id", v.id, "comment",
                                          comment ? comment : ""));
out:
  memset(&t, 0, sizeof(t));
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK && out) rv = wr_store_ip_route_get(s, id, out);
  return rv;
}

int wr_store_ip_route_list(wr_store *s, const wr_ip_route_filter *f, wr_ip_route **out, size_t *n) {
  char tid[WR_STORE_UUID_LEN + 1] = "", vid[WR_STORE_UUID_LEN + 1] = "",
                               rid[WR_STORE_UUID_LEN + 1] = "";
  int rv;
  *out = NULL;
  *n = 0;
  if (!f || !f->account_id)
    return wr__store_serr(s, WR_ERR_INVAL, "listing IP routes needs an account");
  if (f->tunnel_id && (rv = wr__store_canon_uuid(s, f->tunnel_id, tid, "tunnel ID")) != WR_OK)
    return rv;
  if (f->vnet_id && (rv = wr__store_canon_uuid(s, f->vnet_id, vid, "virtual network ID")) != WR_OK)
    return rv;
  if (f->id && (rv = wr__store_canon_uuid(s, f->id, rid, "route ID")) != WR_OK) return rv;
  *out = wr__store_list(
      s, &rv, n, "read IP routes", sizeof(**out), read_ip_route,
      IP_ROUTE_SELECT
      "WHERE r.account_id = lower(?1) AND (?2 <> 0 OR r.deleted_at IS NULL)"
      " AND (?3 = 0 OR r.deleted_at IS NOT NULL) AND (?4 IS NULL OR r.tunnel_id = ?4)"
      " AND (?5 IS NULL OR r.virtual_network_id = ?5) AND (?6 IS NULL OR r.comment = ?6)"
      " AND (?7 IS NULL OR r.id = ?7)"
      " ORDER BY r.created_at, r.rowid",
      "siissss", f->account_id, (int64_t)(f->include_deleted || f->only_deleted),
      (int64_t)(f->only_deleted != 0), tid[0] ? tid : NULL, vid[0] ? vid : NULL, f->comment,
      rid[0] ? rid : NULL);
  return rv;
}

int wr_store_ip_route_delete(wr_store *s, const char *actor, const char *account_id,
                             const char *id, wr_ip_route *out) {
  wr_ip_route r;
  int rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_ip_route_get(s, id, &r)) != WR_OK) goto out;
  if (strcasecmp(r.account_id, account_id ? account_id : "") != 0) {
    rv = wr__store_serr(s, WR_ERR_NOTFOUND, "no IP route with ID %s in this account", r.id);
    goto out;
  }
  if (r.deleted_at) {
    rv = wr__store_serr(s, WR_ERR_INVAL, "IP route %s (%s) is already deleted", r.id, r.network);
    goto out;
  }
  rv = wr__store_execf(s, NULL, "delete IP route",
                       "UPDATE ip_routes SET deleted_at = ? WHERE id = ?", "is", wr__store_now(s),
                       r.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, r.account_id, "route.delete", "ip_route", r.id,
                                json_pack("{s:s,s:s,s:s,s:s}", "type", "ip", "network", r.network,
                                          "tunnel_id", r.tunnel_id, "virtual_network_id",
                                          r.vnet_id));
out:
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK && out) *out = r;
  return rv;
}

int wr_store_ip_route_count(wr_store *s, const char *account_id, size_t *n) {
  int64_t count = 0;
  int rv = wr__store_agg(
      s, "count IP routes", NULL, wr__store_read_int64, &count,
      "SELECT count(*) FROM ip_routes WHERE account_id = lower(?) AND deleted_at IS NULL", "s",
      account_id ? account_id : "");
  *n = (size_t)count;
  return rv;
}
