/* Hostname routes and private-network routes. See routes.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/decode_int.h"
#include "cfapi/routes.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"

/* ---- hostname routes ---------------------------------------------------------------- */

/* The result object's |key| if it is a string, else "". */
static char *str_field(const json_t *j, const char *key) {
  const json_t *v = json_object_get(j, key);
  return wr_xstrdup(json_is_string(v) ? json_string_value(v) : "");
}

/* A route result: an object (or null, Go type cfapi.|type|) whose string
 * fields |k1| and |k2| land in *v1 and *v2 (any other value reads as ""). */
static int decode_route_result(const json_t *j, const char *type, const char *k1, char **v1, const char *k2,
                               char **v2, wr_cfapi_error *e) {
  if (!json_is_object(j) && !json_is_null(j)) {
    wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "json: cannot unmarshal %s into Go value of type cfapi.%s",
                    json_is_array(j) ? "array" : "value", type);
    return WR_ERR_PROTO;
  }
  *v1 = str_field(j, k1);
  *v2 = str_field(j, k2);
  return WR_OK;
}

int wr_cfapi_decode_dns_route(const json_t *j, wr_cfapi_dns_route *r, wr_cfapi_error *e) {
  memset(r, 0, sizeof(*r));
  return decode_route_result(j, "DNSRouteResult", "cname", &r->cname, "name", &r->name, e);
}

int wr_cfapi_decode_lb_route(const json_t *j, wr_cfapi_lb_route *r, wr_cfapi_error *e) {
  memset(r, 0, sizeof(*r));
  return decode_route_result(j, "LBRouteResult", "load_balancer", &r->load_balancer, "pool", &r->pool, e);
}

void wr_cfapi_dns_route_free(wr_cfapi_dns_route *r) {
  free(r->cname);
  free(r->name);
  memset(r, 0, sizeof(*r));
}

void wr_cfapi_lb_route_free(wr_cfapi_lb_route *r) {
  free(r->load_balancer);
  free(r->pool);
  memset(r, 0, sizeof(*r));
}

static int put_route(wr_cfapi_client *c, const wr_uuid *tunnel, json_t *body, void *out,
                     wr__cfapi_one_fn decode, wr_cfapi_error *e) {
  char id[WR_UUID_STR_LEN + 1], tail[WR_UUID_STR_LEN + 32];
  wr_uuid_format(tunnel, id);
  snprintf(tail, sizeof(tail), "/tunnels/%s/routes", id);
  char *path = wr_cfapi_zone_path(c, tail);
  wr_cfapi_request rq = {"PUT", path, NULL, body, "add route", 1};
  int rv = wr__cfapi_call_decode(c, &rq, decode, out, e);
  json_decref(body);
  free(path);
  return rv;
}

static int dec_dns(const json_t *j, void *out, wr_cfapi_error *e) { return wr_cfapi_decode_dns_route(j, out, e); }
static int dec_lb(const json_t *j, void *out, wr_cfapi_error *e) { return wr_cfapi_decode_lb_route(j, out, e); }

int wr_cfapi_route_dns(wr_cfapi_client *c, const wr_uuid *tunnel, const char *hostname, int overwrite,
                       wr_cfapi_dns_route *out, wr_cfapi_error *e) {
  memset(out, 0, sizeof(*out));
  json_t *body = json_pack("{s:s,s:s,s:b}", "type", "dns", "user_hostname", hostname, "overwrite_existing", overwrite);
  return put_route(c, tunnel, body, out, dec_dns, e);
}

int wr_cfapi_route_lb(wr_cfapi_client *c, const wr_uuid *tunnel, const char *lb, const char *pool,
                      wr_cfapi_lb_route *out, wr_cfapi_error *e) {
  memset(out, 0, sizeof(*out));
  json_t *body = json_pack("{s:s,s:s,s:s}", "type", "lb", "lb_name", lb, "lb_pool", pool);
  return put_route(c, tunnel, body, out, dec_lb, e);
}

char *wr_cfapi_dns_route_summary(const wr_cfapi_dns_route *r, const char *hostname) {
  static const struct {
    const char *cname, *fmt;
  } msgs[] = {
      {"new", "Added CNAME %s which will route to this tunnel"},
      {"updated", "%s updated to route to your tunnel"},
      {"unchanged", "%s is already configured to route to your tunnel"},
  };
  const char *name = r->name && *r->name ? r->name : hostname;
  const char *fmt = "%%!(EXTRA string=%s)"; /* Go's Sprintf with an empty format */
  for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
    if (strcmp(r->cname ? r->cname : "", msgs[i].cname) == 0) fmt = msgs[i].fmt;
  return wr_xasprintf(fmt, name, "");
}

char *wr_cfapi_lb_route_summary(const wr_cfapi_lb_route *r, const char *lb, const char *pool) {
  static const struct {
    const char *lb, *pool, *fmt;
    int pool_first;
  } msgs[] = {
      {"new", "new", "Created load balancer %s and added a new pool %s with this tunnel as an origin", 0},
      {"new", "updated", "Created load balancer %s with an existing pool %s which was updated to use this tunnel as an origin", 0},
      {"new", "unchanged", "Created load balancer %s with an existing pool %s which already has this tunnel as an origin", 0},
      {"updated", "new", "Added new pool %s with this tunnel as an origin to load balancer %s", 1},
      {"updated", "updated", "Updated pool %s to use this tunnel as an origin and added it to load balancer %s", 1},
      {"updated", "unchanged", "Added pool %s, which already has this tunnel as an origin, to load balancer %s", 1},
      {"unchanged", "updated", "Added this tunnel as an origin in pool %s which is already used by load balancer %s", 1},
      {"unchanged", "unchanged", "Load balancer %s already uses pool %s which has this tunnel as an origin", 0},
  };
  const char *fmt = "Something went wrong: failed to modify load balancer %s with pool %s; please check traffic "
                    "manager configuration in the dashboard";
  int pool_first = 0;
  for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
    if (strcmp(r->load_balancer, msgs[i].lb) == 0 && strcmp(r->pool, msgs[i].pool) == 0)
      fmt = msgs[i].fmt, pool_first = msgs[i].pool_first;
  return pool_first ? wr_xasprintf(fmt, pool, lb) : wr_xasprintf(fmt, lb, pool);
}

/* ---- IP routes: decoding ------------------------------------------------------------------ */

/* The network field, a CIDR with its own UnmarshalJSON. */
static int decode_network(const json_t *j, wr_cfapi_cidr *net, wr_cfapi_error *e) {
  const json_t *v = wr__cfapi_jfield(j, "network");
  if (!v) return WR_OK;
  if (!json_is_string(v) && !json_is_null(v)) {
    wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "error parsing cidr string: json: cannot unmarshal %s into Go value of "
                       "type string", wr__cfapi_jkind(v));
    return WR_ERR_PROTO;
  }
  const char *s = json_is_string(v) ? json_string_value(v) : "";
  if (wr_cfapi_cidr_parse(s, net) != WR_OK) {
    wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "error parsing invalid network from backend: invalid CIDR address: %s", s);
    return WR_ERR_PROTO;
  }
  return WR_OK;
}

static void route_fields(wr__cfapi_dec *d, void *o) {
  wr_cfapi_route *r = o;
  if ((d->rv = decode_network(d->obj, &r->network, d->e)) != WR_OK) return;
  wr__cfapi_d_uuid(d, "tunnel_id", &r->tunnel_id);
  if (wr__cfapi_dget(d, "virtual_network_id")) {
    wr__cfapi_d_uuid(d, "virtual_network_id", &r->vnet_id);
    r->has_vnet = 1;
  }
  wr__cfapi_d_str(d, "comment", &r->comment);
  wr__cfapi_d_time(d, "created_at", &r->created_at);
  wr__cfapi_d_time(d, "deleted_at", &r->deleted_at);
  wr__cfapi_d_str(d, "tunnel_name", &r->tunnel_name);
}

void wr_cfapi_route_free(wr_cfapi_route *r) {
  if (!r) return;
  free(r->comment);
  free(r->tunnel_name);
  memset(r, 0, sizeof(*r));
}

static void fr_route(void *o) { wr_cfapi_route_free(o); }
static const wr__cfapi_type route_type = {"DetailedRoute", sizeof(wr_cfapi_route), route_fields, fr_route};

int wr_cfapi_decode_route(const json_t *j, wr_cfapi_route *r, wr_cfapi_error *e) {
  return wr__cfapi_decode_one(j, &route_type, r, e);
}

static int dec_routes(const json_t *j, void *o, wr_cfapi_error *e) { return wr_cfapi_decode_routes(j, o, e); }

int wr_cfapi_decode_routes(const json_t *j, wr_cfapi_routes *out, wr_cfapi_error *e) {
  return wr__cfapi_decode_array(j, &route_type, (void **)&out->v, &out->n, &out->is_null, e);
}

void wr_cfapi_routes_free(wr_cfapi_routes *l) {
  wr__cfapi_free_array(&route_type, l->v, l->n);
  memset(l, 0, sizeof(*l));
}

/* ---- IP routes: shapes ----------------------------------------------------------------------- */

/* yaml.v3's view of net.IPNet: the IP (as a string) and the mask bytes. */
static wr_cfapi_node *ipnet_yaml(wr_arena *a, const wr_cfapi_cidr *net) {
  char s[WR_CFAPI_ADDR_STRLEN] = "";
  wr_cfapi_node *n = wr_cfapi_node_obj(a);
  if (net->ip.len) wr_cfapi_ip_str(&net->ip, s);
  wr_cfapi_node_put(n, "ip", wr_cfapi_node_str(a, s));
  wr_cfapi_node *m = wr_cfapi_node_put(n, "mask", wr_cfapi_node_arr(a));
  for (int i = 0; i < net->ip.len; i++) wr_cfapi_node_push(m, wr_cfapi_node_int(a, wr_cfapi_cidr_mask_byte(net, i)));
  return n;
}

static wr_cfapi_node *route_yaml(wr_arena *a, const wr_cfapi_route *r) {
  wr_cfapi_node *o = wr_cfapi_node_obj(a);
  wr_cfapi_node_put(o, "network", ipnet_yaml(a, &r->network));
  wr_cfapi_node_put(o, "tunnelid", wr_cfapi_node_uuid(a, &r->tunnel_id));
  wr_cfapi_node_put(o, "vnetid", r->has_vnet ? wr_cfapi_node_uuid(a, &r->vnet_id) : wr_cfapi_node_null(a));
  wr_cfapi_node_put(o, "comment", wr_cfapi_node_str(a, r->comment));
  wr_cfapi_node_put(o, "createdat", wr_cfapi_node_time(a, &r->created_at));
  wr_cfapi_node_put(o, "deletedat", wr_cfapi_node_time(a, &r->deleted_at));
  wr_cfapi_node_put(o, "tunnelname", wr_cfapi_node_str(a, r->tunnel_name));
  return o;
}

static wr_cfapi_node *route_json(wr_arena *a, const wr_cfapi_route *r) {
  char s[WR_CFAPI_ADDR_STRLEN];
  wr_cfapi_node *o = wr_cfapi_node_obj(a);
  wr_cfapi_cidr_str(&r->network, s);
  wr_cfapi_node_put(o, "network", wr_cfapi_node_str(a, s));
  wr_cfapi_node_put(o, "tunnel_id", wr_cfapi_node_uuid(a, &r->tunnel_id));
  if (r->has_vnet) wr_cfapi_node_put(o, "virtual_network_id", wr_cfapi_node_uuid(a, &r->vnet_id));
  wr_cfapi_node_put(o, "comment", wr_cfapi_node_str(a, r->comment));
  wr_cfapi_node_put(o, "created_at", wr_cfapi_node_time(a, &r->created_at));
  wr_cfapi_node_put(o, "deleted_at", wr_cfapi_node_time(a, &r->deleted_at));
  wr_cfapi_node_put(o, "tunnel_name", wr_cfapi_node_str(a, r->tunnel_name));
  return o;
}

wr_cfapi_node *wr_cfapi_route_node(wr_arena *a, const wr_cfapi_route *r, wr_cfapi_enc enc) {
  return enc == WR_CFAPI_JSON ? route_json(a, r) : route_yaml(a, r);
}

wr_cfapi_node *wr_cfapi_routes_node(wr_arena *a, const wr_cfapi_routes *l, wr_cfapi_enc enc) {
  wr_cfapi_node *arr = l->is_null ? wr_cfapi_node_null(a) : wr_cfapi_node_arr(a);
  for (size_t i = 0; i < l->n; i++) wr_cfapi_node_push(arr, wr_cfapi_route_node(a, &l->v[i], enc));
  return arr;
}

/* ---- IP routes: calls --------------------------------------------------------------------------- */

/* "…/teamnet/routes<kind><value escaped twice>": cloudflared escapes the
 * segment (url.PathEscape) and the URL escapes the '%' again. Caller frees. */
static char *routes_path(const wr_cfapi_client *c, const char *kind, const char *value) {
  char once[192], twice[576], tail[640];
  if (!kind) return wr_cfapi_account_path(c, "/teamnet/routes");
  wr_url_escape(value, WR_URL_SEGMENT, once, sizeof(once));
  wr_url_escape(once, WR_URL_PATH, twice, sizeof(twice));
  snprintf(tail, sizeof(tail), "/teamnet/routes%s%s", kind, twice);
  return wr_cfapi_account_path(c, tail);
}

/* ?virtual_network_id=… when |vnet| is set. Caller frees. */
static char *vnet_query(const wr_uuid *vnet) {
  wr_cfapi_query q = {0};
  char id[WR_UUID_STR_LEN + 1];
  if (vnet) {
    wr_uuid_format(vnet, id);
    wr_cfapi_query_set(&q, "virtual_network_id", id);
  }
  char *s = wr_cfapi_query_encode(&q);
  wr_cfapi_query_free(&q);
  return s;
}

/* One call on "…/teamnet/routes<kind><value>" (routes_path) with
 * ?virtual_network_id=… when |vnet| is set, answered with a route (|out|
 * NULL: checked and dropped). Sets |rq|'s path and query. */
static int route_call(wr_cfapi_client *c, wr_cfapi_request *rq, const char *kind, const char *value,
                      const wr_uuid *vnet, wr_cfapi_route *out, wr_cfapi_error *e) {
  char *path = routes_path(c, kind, value), *q = vnet_query(vnet);
  rq->path = path;
  rq->query = q;
  int rv = wr__cfapi_call_one(c, rq, &route_type, out, e);
  free(q);
  free(path);
  return rv;
}

/* route_call on the route of a network, "…/teamnet/routes/network/<net>"
 * (add and delete address a route by its network, as 2023.7.3 does). */
static int network_call(wr_cfapi_client *c, wr_cfapi_request *rq, const wr_cfapi_cidr *net, const wr_uuid *vnet,
                        wr_cfapi_route *out, wr_cfapi_error *e) {
  char ns[WR_CFAPI_ADDR_STRLEN];
  wr_cfapi_cidr_str(net, ns);
  return route_call(c, rq, "/network/", ns, vnet, out, e);
}

int wr_cfapi_add_route(wr_cfapi_client *c, const wr_cfapi_cidr *net, const wr_uuid *tunnel, const char *comment,
                       const wr_uuid *vnet, wr_cfapi_route *out, wr_cfapi_error *e) {
  char id[WR_UUID_STR_LEN + 1], vid[WR_UUID_STR_LEN + 1];
  wr_uuid_format(tunnel, id);
  json_t *body = json_pack("{s:s,s:s}", "tunnel_id", id, "comment", comment);
  if (vnet) {
    wr_uuid_format(vnet, vid);
    json_object_set_new(body, "virtual_network_id", json_string(vid));
  }
  wr_cfapi_request rq = {"POST", NULL, NULL, body, "add route", 1};
  int rv = network_call(c, &rq, net, NULL, out, e);
  json_decref(body);
  return rv;
}

int wr_cfapi_list_routes(wr_cfapi_client *c, const wr_cfapi_query *filter, wr_cfapi_routes *out,
                         wr_cfapi_error *e) {
  char *path = routes_path(c, NULL, NULL);
  memset(out, 0, sizeof(*out));
  int rv = wr__cfapi_list(c, path, filter, "list routes", dec_routes, out, e);
  free(path);
  return rv;
}

int wr_cfapi_delete_route(wr_cfapi_client *c, const wr_cfapi_cidr *net, const wr_uuid *vnet, wr_cfapi_route *out,
                          wr_cfapi_error *e) {
  wr_cfapi_request rq = {"DELETE", NULL, NULL, NULL, "delete route", 1};
  return network_call(c, &rq, net, vnet, out, e);
}

int wr_cfapi_get_route_by_ip(wr_cfapi_client *c, const wr_cfapi_ip *ip, const wr_uuid *vnet, wr_cfapi_route *out,
                             wr_cfapi_error *e) {
  char is[WR_CFAPI_ADDR_STRLEN];
  wr_cfapi_request rq = {"GET", NULL, NULL, NULL, "get route by IP", 1};
  wr_cfapi_ip_str(ip, is);
  return route_call(c, &rq, "/ip/", is, vnet, out, e);
}
