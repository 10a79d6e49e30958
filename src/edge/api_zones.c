/* REST API: zone-level endpoints. PUT /zones/{z}/tunnels/{t}/routes is what
 * `cloudflared tunnel route dns` calls (cloudflare-api.md §2.6.2); the
 * dns_records endpoints show and remove the CNAMEs it made, in Cloudflare's
 * DNS record shape, so a user whose zone is hosted elsewhere (a partial
 * setup) can see which records to create there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/api_int.h"
#include "lib/err.h"
#include "lib/log.h"

#define RECORDS_PER_PAGE_DEFAULT 100

/* <tunnel-uuid>.<cname domain> into |out|. */
static void cname_target(const wr_api *a, const char *tunnel_id, const char *zone, char *out,
                         size_t len) {
  if (a->cname_domain) snprintf(out, len, "%s.%s", tunnel_id, a->cname_domain);
  else snprintf(out, len, "%s.cfargotunnel.%s", tunnel_id, zone);
}

/* Loads zone segs[1] and checks the token may use it. Returns 0, or -1
 * after answering 403. */
int wr__api_load_zone(wr__api_ctx *c, wr_zone *z) {
  int rv = wr_store_zone_get(c->store, c->segs[1], z);
  if (rv == WR_ERR_NOTFOUND || (rv == WR_OK && strcmp(z->account_id, c->token.account_id) != 0) ||
      (rv == WR_OK && c->token.zone_id[0] && strcmp(z->id, c->token.zone_id) != 0)) {
    wr__api_err(c, 403, WR_API_CODE_AUTH,
                "Authentication error: this API token is not valid for zone %.64s; the zoneID of "
                "cert.pem must be a zone of the token's account%s",
                c->segs[1], c->token.zone_id[0] ? " (and this token is limited to one zone)" : "");
    return -1;
  }
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return -1;
  }
  return 0;
}

/* ---- route dns ------------------------------------------------------------------------ */

static void route_dns(wr__api_ctx *c, const wr_zone *z) {
  wr_api *a = c->api;
  json_t *body = wr__api_body(c);
  char host[WR_STORE_HOST_MAX + 1], msg[WR_STORE_ERRMSG_MAX], full[2 * WR_STORE_HOST_MAX + 2];
  char target[WR_STORE_UUID_LEN + WR_STORE_HOST_MAX + 32];
  wr_tunnel t;
  wr_route r;
  wr_route_change ch;
  int bad = 0, rv;
  if (!body) return;
  const char *type = wr__api_json_str(c, body, "type", &bad);
  const char *hn = wr__api_json_str(c, body, "user_hostname", &bad);
  json_t *ow = json_object_get(body, "overwrite_existing");
  if (bad) return;
  if (!type || strcmp(type, "dns") != 0) {
    if (type && strcmp(type, "lb") == 0)
      wr__api_err(c, 400, WR_API_CODE_INVALID,
                  "load balancer routes (route lb) are not supported by this edge; use route dns");
    else
      wr__api_err(c, 400, WR_API_CODE_INVALID, "field type must be \"dns\"");
    return;
  }
  if (ow && !json_is_boolean(ow) && !json_is_null(ow)) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "field overwrite_existing must be true or false");
    return;
  }
  if (!hn || !*hn) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "field user_hostname is required");
    return;
  }
  /* A single label is a name in the zone, as Cloudflare's DNS does. */
  if (!strchr(hn, '.') && strlen(hn) < WR_STORE_HOST_MAX) {
    snprintf(full, sizeof(full), "%s.%s", hn, z->name);
    hn = full;
  }
  if (wr_store_check_dns_name(hn, 1, host, msg, sizeof(msg)) != WR_OK) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "user_hostname: %s", msg);
    return;
  }
  rv = wr_store_tunnel_get(c->store, c->segs[3], &t);
  if (wr__api_owned(c, rv, t.account_id, "no tunnel with ID %s in this account", t.id) != 0) goto out;
  rv = wr_store_route_dns_add_max(c->store, c->actor, z->id, t.id, host, json_is_true(ow),
                                  a->max_routes, &r, &ch);
  if (rv == WR_ERR_LIMIT) {
    wr__api_err(c, 400, WR_API_CODE_LIMIT, "%s; remove unused ones first", wr_store_errmsg(c->store));
    goto out;
  }
  if (rv == WR_ERR_EXISTS) {
    wr__api_err(c, 409, WR_API_CODE_CONFLICT,
                "%s; pass --overwrite-dns (cloudflared tunnel route dns -f) to point it at this tunnel",
                wr_store_errmsg(c->store));
    goto out;
  }
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    goto out;
  }
  cname_target(a, t.id, r.zone_name, target, sizeof(target));
  wr_info("api: %s routed %s to tunnel %s (%s)", c->actor, r.hostname, t.id, wr_route_change_name(ch));
  wr__api_route_event(c, WR_API_ROUTE_SET, r.hostname, t.id);
  wr__api_ok(c,
             json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "cname", wr_route_change_name(ch), "name",
                       r.hostname, "content", target, "type", "CNAME", "zone_id", r.zone_id,
                       "zone_name", r.zone_name),
             NULL);
out:
  explicit_bzero(&t, sizeof(t));
}

/* ---- dns_records ------------------------------------------------------------------------- */

static json_t *record_json(const wr_api *a, const wr_route *r) {
  char target[WR_STORE_UUID_LEN + WR_STORE_HOST_MAX + 32];
  cname_target(a, r->tunnel_id, r->zone_name, target, sizeof(target));
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:i,s:b,s:o,s:o,s:{s:s,s:s,s:b,s:s}}", "id",
                   r->id, "zone_id", r->zone_id, "zone_name", r->zone_name, "name", r->hostname, "type",
                   "CNAME", "content", target, "proxiable", 1, "proxied", 1, "ttl", 1, "locked", 0,
                   "created_on", wr__api_time(r->created_at), "modified_on", wr__api_time(r->created_at),
                   "meta", "tunnel_id", r->tunnel_id, "tunnel_name", r->tunnel_name, "auto_added", 0,
                   "source", "warren");
}

static void dns_records(wr__api_ctx *c, const wr_zone *z) {
  wr_api *a = c->api;
  wr_route *rows = NULL;
  size_t n = 0, page, per_page, total = 0, count = 0;
  int paged, rv;
  const char *name = wr__api_param(c, "name"), *type = wr__api_param(c, "type");
  char host[WR_STORE_HOST_MAX + 1] = "", msg[WR_STORE_ERRMSG_MAX];
  if (wr__api_paging(c, RECORDS_PER_PAGE_DEFAULT, &page, &per_page, &paged) != 0) return;
  if (name && *name && wr_store_check_dns_name(name, 1, host, msg, sizeof(msg)) != WR_OK) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "name: %s", msg);
    return;
  }
  if ((rv = wr_store_route_list(c->store, z->account_id, NULL, &rows, &n)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  json_t *arr = json_array();
  int want_type = !type || !*type || strcasecmp(type, "CNAME") == 0;
  for (size_t i = 0; i < n && want_type; i++) {
    if (strcmp(rows[i].zone_id, z->id) != 0 || (host[0] && strcmp(rows[i].hostname, host) != 0)) continue;
    total++;
    if (total <= (page - 1) * per_page || count >= per_page) continue;
    json_array_append_new(arr, record_json(a, &rows[i]));
    count++;
  }
  free(rows);
  wr__api_ok(c, arr, wr__api_result_info(page, paged ? per_page : total, count, total));
}

/* Finds route |id| of zone |z|. Returns 0, or -1 after answering. */
static int find_record(wr__api_ctx *c, const wr_zone *z, const char *id, wr_route *out) {
  wr_route *rows = NULL;
  size_t n = 0;
  int rv = wr_store_route_list(c->store, z->account_id, NULL, &rows, &n), found = 0;
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return -1;
  }
  for (size_t i = 0; i < n && !found; i++)
    if (strcmp(rows[i].zone_id, z->id) == 0 && strcasecmp(rows[i].id, id) == 0) {
      *out = rows[i];
      found = 1;
    }
  free(rows);
  if (!found) {
    wr__api_err(c, 404, WR_API_CODE_NOTFOUND, "no DNS record %.64s in zone %s", id, z->name);
    return -1;
  }
  return 0;
}

void wr__api_zones(wr__api_ctx *c) {
  const char *m = c->method;
  wr_zone z;
  wr_route r;
  int is_route = c->nsegs == 5 && strcmp(c->segs[2], "tunnels") == 0 && strcmp(c->segs[4], "routes") == 0;
  int is_records = (c->nsegs == 3 || c->nsegs == 4) && strcmp(c->segs[2], "dns_records") == 0;
  if ((c->nsegs == 3 || c->nsegs == 4) &&
      (strcmp(c->segs[2], "settings") == 0 || strcmp(c->segs[2], "custom_certificates") == 0)) {
    wr__api_https(c);
    return;
  }
  if (!is_route && !is_records) {
    wr__api_no_route(c);
    return;
  }
  if (wr__api_load_zone(c, &z) != 0) return;
  if (is_route) {
    if (strcmp(m, "PUT") == 0) route_dns(c, &z);
    else wr__api_method(c, "PUT");
  } else if (c->nsegs == 3) {
    if (strcmp(m, "GET") == 0) dns_records(c, &z);
    else wr__api_method(c, "GET");
  } else if (strcmp(m, "GET") == 0) {
    if (find_record(c, &z, c->segs[3], &r) == 0) wr__api_ok(c, record_json(c->api, &r), NULL);
  } else if (strcmp(m, "DELETE") == 0) {
    if (find_record(c, &z, c->segs[3], &r) != 0) return;
    int rv = wr_store_route_delete(c->store, c->actor, r.hostname);
    if (rv != WR_OK) {
      wr__api_store_err(c, rv, NULL);
      return;
    }
    wr_info("api: %s removed the route of %s", c->actor, r.hostname);
    wr__api_route_event(c, WR_API_ROUTE_REMOVED, r.hostname, r.tunnel_id);
    wr__api_ok(c, json_pack("{s:s}", "id", r.id), NULL);
  } else {
    wr__api_method(c, "GET, DELETE");
  }
}
