/* REST API: /accounts/{a}/teamnet/routes... (`cloudflared tunnel route ip`)
 * and /accounts/{a}/teamnet/virtual_networks... (`cloudflared tunnel vnet`),
 * cloudflare-api.md §2.6.3 and §2.6.4. Both the 2023.7.3 forms (the CIDR in
 * the path, escaped twice) and the newer ones (network in the body, delete
 * by route id) are served. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/api_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define ROUTES_PER_PAGE_DEFAULT 20

/* ---- shapes ----------------------------------------------------------------------------- */

/* A Route; |detailed| adds what DetailedRoute has (tunnel_name, ...). */
static json_t *route_json(const wr_ip_route *r, int detailed) {
  json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:s,s:o,s:o}", "id", r->id, "network", r->network,
                        "tunnel_id", r->tunnel_id, "virtual_network_id",
                        r->vnet_id[0] ? json_string(r->vnet_id) : json_null(), "comment", r->comment,
                        "created_at", wr__api_time(r->created_at), "deleted_at",
                        wr__api_time(r->deleted_at));
  if (j && detailed) {
    json_object_set_new(j, "tunnel_name", json_string(r->tunnel_name));
    json_object_set_new(j, "tun_type", json_string("cfd_tunnel"));
    if (r->vnet_name[0]) json_object_set_new(j, "virtual_network_name", json_string(r->vnet_name));
  }
  return j;
}

static json_t *vnet_json(const wr_vnet *v) {
  return json_pack("{s:s,s:s,s:s,s:b,s:b,s:o,s:o}", "id", v->id, "name", v->name, "comment",
                   v->comment, "is_default_network", v->is_default, "is_default", v->is_default,
                   "created_at", wr__api_time(v->created_at), "deleted_at", wr__api_time(v->deleted_at));
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* A UUID query parameter or body field: NULL if absent/empty; -1 after
 * answering 400 when it is not a UUID. */
static int uuid_arg(wr__api_ctx *c, const char *what, const char *v, const char **out) {
  wr_uuid u;
  *out = NULL;
  if (!v || !*v) return 0;
  if (wr_uuid_parse(v, strlen(v), &u) != WR_OK) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "%s \"%.64s\" is not a UUID", what, v);
    return -1;
  }
  *out = v;
  return 0;
}

/* The virtual network a lookup means: |vnet_id| if given (it must be one of
 * the account's), else the account's default. *found is 0 when the account
 * has no default yet (nothing is routed then). Returns 0 or -1 after
 * answering. */
static int lookup_vnet(wr__api_ctx *c, const char *vnet_id, wr_vnet *out, int *found) {
  int rv;
  *found = 0;
  if (vnet_id) {
    rv = wr_store_vnet_get(c->store, vnet_id, out);
    if (rv == WR_ERR_NOTFOUND) { /* answered as another account's is: the ID asked for */
      wr__api_err(c, 404, WR_API_CODE_NOTFOUND, "no virtual network with ID %s", vnet_id);
      return -1;
    }
    if (wr__api_owned(c, rv, out->account_id, "no virtual network with ID %s", vnet_id) != 0) return -1;
    *found = 1;
    return 0;
  }
  wr_vnet_filter f = {.account_id = c->token.account_id, .is_default = 1};
  wr_vnet *rows = NULL;
  size_t n = 0;
  if ((rv = wr_store_vnet_list(c->store, &f, &rows, &n)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return -1;
  }
  if (n) {
    *out = rows[0];
    *found = 1;
  }
  free(rows);
  return 0;
}

/* Parses a CIDR argument. Returns 0 or -1 after answering 400. */
static int cidr_arg(wr__api_ctx *c, const char *what, const char *v, wr_store_cidr *out) {
  char msg[WR_STORE_ERRMSG_MAX];
  if (wr_store_cidr_parse(v, out, msg, sizeof(msg)) != WR_OK) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "%s: %s", what, msg);
    return -1;
  }
  return 0;
}

/* ---- routes ------------------------------------------------------------------------------- */

static void route_add(wr__api_ctx *c, const char *path_network) {
  wr_api *a = c->api;
  json_t *body = wr__api_body(c);
  wr_ip_route r;
  int bad = 0, rv;
  const char *tunnel_id, *vnet_id;
  if (!body) return;
  const char *network = path_network ? path_network : wr__api_json_str(c, body, "network", &bad);
  const char *tid = wr__api_json_str(c, body, "tunnel_id", &bad);
  const char *comment = wr__api_json_str(c, body, "comment", &bad);
  const char *vid = wr__api_json_str(c, body, "virtual_network_id", &bad);
  if (bad) return;
  if (!network || !*network) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "field network is required (a CIDR such as 10.0.0.0/8)");
    return;
  }
  if (!tid) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "field tunnel_id is required");
    return;
  }
  if (uuid_arg(c, "tunnel_id", tid, &tunnel_id) != 0 ||
      uuid_arg(c, "virtual_network_id", vid, &vnet_id) != 0)
    return;
  rv = wr_store_ip_route_add_max(c->store, c->actor, c->token.account_id, network, tunnel_id,
                                 vnet_id, comment, a->max_routes, &r);
  if (rv == WR_ERR_LIMIT) {
    wr__api_err(c, 400, WR_API_CODE_LIMIT,
                "%s; delete unused ones (cloudflared tunnel route ip show / delete)",
                wr_store_errmsg(c->store));
    return;
  }
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  wr_info("api: %s routed %s (virtual network %s) to tunnel %s", c->actor, r.network, r.vnet_name,
          r.tunnel_id);
  wr__api_ok(c, route_json(&r, 0), NULL);
}

/* POST to the collection: the network is in the body. */
static void route_create(wr__api_ctx *c) { route_add(c, NULL); }

/* Splits "a,b,c" and says whether |want| is one of the items. */
static int list_has(const char *csv, const char *want) {
  size_t wl = strlen(want);
  for (const char *p = csv; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == wl && strncmp(p, want, wl) == 0) return 1;
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

/* What GET routes asks for beyond the store's filter: the network
 * relations, a point in time, the tunnel types, and the page. */
typedef struct route_query {
  wr_ip_route_filter f;
  int has_sub, has_super;
  wr_store_cidr sub, super;
  int64_t existed;
  const char *types;
  size_t page, per_page;
  int paged;
} route_query;

/* Reads the query parameters of GET routes. Returns 0, or -1 after
 * answering 400. */
static int route_query_parse(wr__api_ctx *c, route_query *q) {
  const char *v;
  int del = wr__api_param_bool(c, "is_deleted");
  q->f.account_id = c->token.account_id;
  if (del == -2) return -1;
  if (del == 1) q->f.only_deleted = 1;
  else if (del == -1) q->f.include_deleted = 1;
  if (uuid_arg(c, "tunnel_id", wr__api_param(c, "tunnel_id"), &q->f.tunnel_id) != 0 ||
      uuid_arg(c, "virtual_network_id", wr__api_param(c, "virtual_network_id"), &q->f.vnet_id) != 0 ||
      uuid_arg(c, "route_id", wr__api_param(c, "route_id"), &q->f.id) != 0)
    return -1;
  if ((v = wr__api_param(c, "comment")) && *v) q->f.comment = v;
  const char *subv = wr__api_param(c, "network_subset"), *superv = wr__api_param(c, "network_superset");
  q->has_sub = subv && *subv;
  q->has_super = superv && *superv;
  if (q->has_sub && cidr_arg(c, "network_subset", subv, &q->sub) != 0) return -1;
  if (q->has_super && cidr_arg(c, "network_superset", superv, &q->super) != 0) return -1;
  if (wr__api_param_time(c, "existed_at", &q->existed) != 0) return -1;
  if (wr__api_paging(c, ROUTES_PER_PAGE_DEFAULT, &q->page, &q->per_page, &q->paged) != 0) return -1;
  q->types = wr__api_param(c, "tun_types");
  return 0;
}

/* Whether route |r| passes the filters the store does not apply. */
static int route_matches(const route_query *q, const wr_ip_route *r) {
  wr_store_cidr net;
  char msg[WR_STORE_ERRMSG_MAX];
  if (wr_store_cidr_parse(r->network, &net, msg, sizeof(msg)) != WR_OK) return 0;
  /* network_subset=X: the route lies inside X; network_superset=X: the
   * route contains X. */
  if (q->has_sub && !wr_store_cidr_contains(&q->sub, &net)) return 0;
  if (q->has_super && !wr_store_cidr_contains(&net, &q->super)) return 0;
  if (q->existed && (r->created_at > q->existed || (r->deleted_at && r->deleted_at <= q->existed)))
    return 0;
  return 1;
}

static void route_list(wr__api_ctx *c) {
  route_query q;
  wr_ip_route *rows = NULL;
  size_t n = 0, total = 0, count = 0;
  int rv;
  memset(&q, 0, sizeof(q));
  if (route_query_parse(c, &q) != 0) return;
  if ((rv = wr_store_ip_route_list(c->store, &q.f, &rows, &n)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  /* Every route here is a cfd_tunnel route: another type matches none. */
  int types_ok = !q.types || !*q.types || list_has(q.types, "cfd_tunnel");
  json_t *arr = json_array();
  for (size_t i = 0; types_ok && i < n; i++) {
    if (!route_matches(&q, &rows[i])) continue;
    total++;
    if (q.paged && (total <= (q.page - 1) * q.per_page || count >= q.per_page)) continue;
    json_array_append_new(arr, route_json(&rows[i], 1));
    count++;
  }
  free(rows);
  wr__api_ok(c, arr, wr__api_result_info(q.page, q.paged ? q.per_page : total, count, total));
}

/* GET routes/ip/{ip}: the route the address would take (longest prefix in
 * the virtual network), or {} (cloudflared: "No route matches the IP"). */
static void route_get_ip(wr__api_ctx *c, const char *ip) {
  wr_store_cidr addr, net;
  wr_vnet v;
  const char *vnet_id;
  int found, rv;
  if (strchr(ip, '/')) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "\"%.64s\" must be an IP address, not a network", ip);
    return;
  }
  if (cidr_arg(c, "ip", ip, &addr) != 0) return;
  if (uuid_arg(c, "virtual_network_id", wr__api_param(c, "virtual_network_id"), &vnet_id) != 0) return;
  if (lookup_vnet(c, vnet_id, &v, &found) != 0) return;
  if (!found) {
    wr__api_ok(c, json_object(), NULL);
    return;
  }
  wr_ip_route_filter f = {.account_id = c->token.account_id, .vnet_id = v.id};
  wr_ip_route *rows = NULL;
  size_t n = 0, best = SIZE_MAX;
  unsigned best_bits = 0;
  if ((rv = wr_store_ip_route_list(c->store, &f, &rows, &n)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    char msg[WR_STORE_ERRMSG_MAX];
    if (wr_store_cidr_parse(rows[i].network, &net, msg, sizeof(msg)) != WR_OK) continue;
    if (!wr_store_cidr_contains(&net, &addr)) continue;
    if (best == SIZE_MAX || net.bits > best_bits) {
      best = i;
      best_bits = net.bits;
    }
  }
  wr__api_ok(c, best == SIZE_MAX ? json_object() : route_json(&rows[best], 1), NULL);
  free(rows);
}

/* Deletes route |id| and answers with it. */
static void route_delete_id(wr__api_ctx *c, const char *id) {
  wr_ip_route r;
  int rv = wr_store_ip_route_delete(c->store, c->actor, c->token.account_id, id, &r);
  if (rv == WR_OK) rv = wr_store_ip_route_get(c->store, r.id, &r);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  wr_info("api: %s deleted the route of %s (virtual network %s)", c->actor, r.network, r.vnet_name);
  wr__api_ok(c, route_json(&r, 0), NULL);
}

/* DELETE routes/network/{cidr}[?virtual_network_id=]: 2023.7.3's delete. */
static void route_delete_network(wr__api_ctx *c, const char *cidr) {
  wr_store_cidr want, net;
  wr_vnet v;
  char canon[WR_STORE_CIDR_MAX + 1], msg[WR_STORE_ERRMSG_MAX], id[WR_STORE_UUID_LEN + 1] = "";
  const char *vnet_id;
  int found, rv;
  if (cidr_arg(c, "network", cidr, &want) != 0) return;
  wr_store_cidr_format(&want, canon);
  if (uuid_arg(c, "virtual_network_id", wr__api_param(c, "virtual_network_id"), &vnet_id) != 0) return;
  if (lookup_vnet(c, vnet_id, &v, &found) != 0) return;
  if (found) {
    wr_ip_route_filter f = {.account_id = c->token.account_id, .vnet_id = v.id};
    wr_ip_route *rows = NULL;
    size_t n = 0;
    if ((rv = wr_store_ip_route_list(c->store, &f, &rows, &n)) != WR_OK) {
      wr__api_store_err(c, rv, NULL);
      return;
    }
    for (size_t i = 0; i < n && !id[0]; i++)
      if (wr_store_cidr_parse(rows[i].network, &net, msg, sizeof(msg)) == WR_OK && net.v6 == want.v6 &&
          net.bits == want.bits && memcmp(net.addr, want.addr, sizeof(net.addr)) == 0)
        memcpy(id, rows[i].id, sizeof(id));
    free(rows);
  }
  if (!id[0]) {
    wr__api_err(c, 404, WR_API_CODE_NOTFOUND, "no IP route for %s in virtual network %s", canon,
                found ? v.name : "default");
    return;
  }
  route_delete_id(c, id);
}

static void routes(wr__api_ctx *c) {
  const char *m = c->method;
  char *cidr = NULL;
  if (c->nsegs == 4) {
    wr__api_collection(c, route_list, route_create);
  } else if (c->nsegs == 5) {
    const char *id;
    if (uuid_arg(c, "route id", c->segs[4], &id) != 0) return;
    if (strcmp(m, "DELETE") == 0) {
      route_delete_id(c, id);
    } else if (strcmp(m, "GET") == 0) {
      wr_ip_route r;
      int rv = wr_store_ip_route_get(c->store, id, &r);
      if (wr__api_owned(c, rv, r.account_id, "no IP route with ID %s", r.id) == 0)
        wr__api_ok(c, route_json(&r, 1), NULL);
    } else {
      wr__api_method(c, "GET, DELETE");
    }
  } else if (c->nsegs == 6 && strcmp(c->segs[4], "network") == 0) {
    /* cloudflared 2023.7.3 escapes the CIDR twice: undo the second one. */
    cidr = wr_xstrdup(c->segs[5]);
    if (wr__api_unescape(cidr) != 0) {
      wr__api_err(c, 400, WR_API_CODE_INVALID, "the network in the path has a bad %%-escape");
    } else if (strcmp(m, "POST") == 0) {
      route_add(c, cidr);
    } else if (strcmp(m, "DELETE") == 0) {
      route_delete_network(c, cidr);
    } else {
      wr__api_method(c, "POST, DELETE");
    }
    free(cidr);
  } else if (c->nsegs == 6 && strcmp(c->segs[4], "ip") == 0) {
    if (strcmp(m, "GET") == 0) route_get_ip(c, c->segs[5]);
    else wr__api_method(c, "GET");
  } else {
    wr__api_no_route(c);
  }
}

/* ---- virtual networks ----------------------------------------------------------------------- */

/* Makes sure the account has its default virtual network, as Cloudflare
 * accounts always do. Returns 0 or -1 after answering. */
static int ensure_default(wr__api_ctx *c) {
  wr_vnet v;
  int rv = wr_store_vnet_default(c->store, c->actor, c->token.account_id, &v);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, "creating the default virtual network");
    return -1;
  }
  return 0;
}

/* A boolean body field: -1 absent/null, 0/1; -2 after answering 400. */
static int body_bool(wr__api_ctx *c, json_t *body, const char *key) {
  json_t *v = json_object_get(body, key);
  if (!v || json_is_null(v)) return -1;
  if (json_is_boolean(v)) return json_is_true(v);
  wr__api_err(c, 400, WR_API_CODE_INVALID, "field %s must be true or false", key);
  return -2;
}

static void vnet_list(wr__api_ctx *c) {
  wr_vnet_filter f = {.account_id = c->token.account_id, .is_default = -1};
  wr_vnet *rows = NULL;
  size_t n = 0;
  int rv, del = wr__api_param_bool(c, "is_deleted"), def;
  const char *v;
  if (del == -2) return;
  if (del == 1) f.only_deleted = 1;
  else if (del == -1) f.include_deleted = 1;
  if ((def = wr__api_param_bool(c, "is_default")) == -2) return;
  if (def == -1 && (def = wr__api_param_bool(c, "is_default_network")) == -2) return;
  f.is_default = def;
  if (uuid_arg(c, "id", wr__api_param(c, "id"), &f.id) != 0) return;
  if ((v = wr__api_param(c, "name")) && *v) f.name = v;
  if (ensure_default(c) != 0) return;
  if ((rv = wr_store_vnet_list(c->store, &f, &rows, &n)) != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, vnet_json(&rows[i]));
  free(rows);
  wr__api_ok(c, arr, NULL);
}

/* The fields of a virtual network create or update body (each NULL, or
 * def -1, when not given). */
typedef struct vnet_fields {
  const char *name, *comment;
  int def; /* 1, 0, or -1 */
} vnet_fields;

/* Reads the body of a create or update. Returns 0, or -1 after answering. */
static int vnet_body(wr__api_ctx *c, vnet_fields *f) {
  json_t *body = wr__api_body(c);
  int bad = 0;
  if (!body) return -1;
  f->name = wr__api_json_str(c, body, "name", &bad);
  f->comment = wr__api_json_str(c, body, "comment", &bad);
  if (bad) return -1;
  /* cloudflared up to 2025.5 sends is_default, later is_default_network. */
  if ((f->def = body_bool(c, body, "is_default_network")) == -2) return -1;
  if (f->def == -1 && (f->def = body_bool(c, body, "is_default")) == -2) return -1;
  return 0;
}

static void vnet_create(wr__api_ctx *c) {
  vnet_fields f;
  wr_vnet v;
  int rv;
  if (vnet_body(c, &f) != 0) return;
  if (!f.name) {
    wr__api_err(c, 400, WR_API_CODE_INVALID, "field name is required");
    return;
  }
  if (ensure_default(c) != 0) return;
  rv = wr_store_vnet_create(c->store, c->actor, c->token.account_id, f.name, f.comment, f.def == 1, &v);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  wr_info("api: %s created virtual network %s (%s)", c->actor, v.name, v.id);
  wr__api_ok(c, vnet_json(&v), NULL);
}

/* Loads virtual network segs[4] of the account. Returns 0 or -1 after answering. */
static int load_vnet(wr__api_ctx *c, wr_vnet *v) {
  const char *id;
  if (uuid_arg(c, "virtual network id", c->segs[4], &id) != 0) return -1;
  int rv = wr_store_vnet_get(c->store, id, v);
  return wr__api_owned(c, rv, v->account_id, "no virtual network with ID %s", v->id);
}

static void vnet_update(wr__api_ctx *c, const wr_vnet *old) {
  vnet_fields f;
  wr_vnet v;
  int rv;
  if (vnet_body(c, &f) != 0) return;
  if (f.def == 0 && old->is_default) {
    wr__api_err(c, 400, WR_API_CODE_INVALID,
                "virtual network %s is the default; it stays the default until another one is made "
                "the default",
                old->name);
    return;
  }
  rv = wr_store_vnet_update(c->store, c->actor, old->id, f.name, f.comment, f.def == 1, &v);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  wr__api_ok(c, vnet_json(&v), NULL);
}

static void vnet_delete(wr__api_ctx *c, const wr_vnet *old) {
  wr_vnet v;
  size_t removed = 0;
  int force = wr__api_param_bool(c, "force"), rv;
  if (force == -2) return;
  rv = wr_store_vnet_delete(c->store, c->actor, old->id, force == 1, &removed);
  if (rv == WR_OK) rv = wr_store_vnet_get(c->store, old->id, &v);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, NULL);
    return;
  }
  wr_info("api: %s deleted virtual network %s (%zu IP route%s removed)", c->actor, v.name, removed,
          removed == 1 ? "" : "s");
  wr__api_ok(c, vnet_json(&v), NULL);
}

static void vnets(wr__api_ctx *c) {
  const char *m = c->method;
  wr_vnet v;
  if (!wr__api_resource(c, 4, vnet_list, vnet_create, "GET, PATCH, DELETE")) return;
  if (load_vnet(c, &v) != 0) return;
  if (strcmp(m, "GET") == 0) wr__api_ok(c, vnet_json(&v), NULL);
  else if (strcmp(m, "PATCH") == 0) vnet_update(c, &v);
  else vnet_delete(c, &v);
}

void wr__api_teamnet(wr__api_ctx *c) {
  if (c->nsegs >= 4 && strcmp(c->segs[3], "routes") == 0) routes(c);
  else if (c->nsegs >= 4 && strcmp(c->segs[3], "virtual_networks") == 0) vnets(c);
  else wr__api_no_route(c);
}
