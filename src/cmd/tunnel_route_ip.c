/* `warren tunnel route ip add|show|list|delete|get` and `warren tunnel vnet
 * add|list|delete|update`: private-network routes and virtual networks,
 * as cloudflared 2023.7.3 (teamnet API, cloudflare-api.md §2.6.3-2.6.4).
 * As 2023.7.3 does, route add and delete address the route by its network,
 * escaped twice on the wire (…/teamnet/routes/network/10.0.0.0%252F8).
 * One difference on purpose: --filter-network-is-subset-of sends
 * network_subset (cloudflared sends network_superset for both filters). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "net/http_client.h"

static void teamnet_path(const wr__mg_ctx *c, char *out, size_t cap, const char *what, const char *tail) {
  char acct[WR_CRED_MAX_FIELD * 3];
  wr_url_escape(c->cert.account_id, WR_URL_PATH, acct, sizeof(acct));
  int n = snprintf(out, cap, "/accounts/%s/teamnet/%s%s", acct, what, tail ? tail : "");
  if (n < 0 || (size_t)n >= cap) out[0] = '\0'; /* cannot happen: the parts are bounded */
}

/* "/network/<cidr>" with cloudflared's two escapes (url.PathEscape, then
 * the URL's own path escaping of the '%'). */
static void network_tail(const wr__mg_cidr *n, char *out, size_t cap) {
  char s[64], once[192], twice[576];
  wr__mg_cidr_str(n, s);
  wr_url_escape(s, WR_URL_SEGMENT, once, sizeof(once));
  wr_url_escape(once, WR_URL_PATH, twice, sizeof(twice));
  snprintf(out, cap, "/network/%s", twice);
}

/* getVnetId: a UUID as is, else the one non-deleted vnet of that name. */
static int vnet_id(wr__mg_ctx *c, const char *ref, wr_uuid *out, wr__mg_err *e) {
  char why[128], path[WR_CRED_MAX_FIELD * 3 + 64];
  json_t *res = NULL;
  wr__mg_vnet *v = NULL;
  size_t n = 0;
  int is_null;
  if (wr__mg_uuid_parse(ref, out, why, sizeof(why)) == WR_OK) return WR_OK;
  int rv = wr__mg_client(c, e);
  if (rv != WR_OK) return rv;
  wr__mg_query q = {0};
  wr__mg_query_set(&q, "is_deleted", "false");
  wr__mg_query_set(&q, "name", ref);
  teamnet_path(c, path, sizeof(path), "virtual_networks", NULL);
  rv = wr__mg_call(c, "GET", path, wr__mg_query_str(&q), NULL, "list virtual networks", 1, &res, NULL, e);
  wr__mg_query_free(&q);
  if (rv == WR_OK) rv = wr__mg_decode_vnets(res, &v, &n, &is_null, e);
  json_decref(res);
  if (rv == WR_OK && n != 1) {
    wr__mg_errf(e, "there should only be 1 non-deleted virtual network named %s", ref);
    rv = WR_ERR_NOTFOUND;
  }
  if (rv == WR_OK) *out = v[0].id;
  wr__mg_vnets_free(v, n);
  return rv;
}

/* The --vnet flag, if given: *has = 1 and the ID in *out. */
static int vnet_flag(wr__mg_ctx *c, int *has, wr_uuid *out, wr__mg_err *e) {
  *has = wr_opts_isset(c->opts, "vnet");
  if (!*has) return WR_OK;
  return vnet_id(c, wr_opts_get(c->opts, "vnet"), out, e);
}

/* ---- route ip add ---------------------------------------------------------------------- */

int wr_cmd_route_ip_add(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr__mg_cidr net;
  wr_uuid tid, vnet;
  json_t *res = NULL, *body = NULL;
  char path[WR_CRED_MAX_FIELD * 3 + 700], tail[600], id[WR_UUID_STR_LEN + 1], vid[WR_UUID_STR_LEN + 1], ns[64];
  int has_vnet = 0, rv = WR_EXIT_FAIL;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel route ip add") != WR_OK) return WR_EXIT_FAIL;
  if (argc < 2) {
    wr__mg_errf(&e, "You must supply at least 2 arguments, first the network you wish to route (in CIDR form e.g. "
                "1.2.3.4/32) and then the tunnel ID to proxy with");
    goto fail;
  }
  if (wr__mg_cidr_parse(argv[0], &net) != WR_OK) {
    wr__mg_errf(&e, "Invalid network CIDR: invalid CIDR address: %s", argv[0]);
    goto fail;
  }
  if (wr__mg_find_id(&c, argv[1], &tid, &e) != WR_OK) {
    wr__mg_wrap(&e, "Invalid tunnel");
    goto fail;
  }
  const char *comment = argc >= 3 ? argv[2] : "";
  if (vnet_flag(&c, &has_vnet, &vnet, &e) != WR_OK) goto fail;
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "error while creating backend client");
    goto api_error;
  }
  wr_uuid_format(&tid, id);
  body = json_pack("{s:s,s:s}", "tunnel_id", id, "comment", comment);
  if (has_vnet) {
    wr_uuid_format(&vnet, vid);
    json_object_set_new(body, "virtual_network_id", json_string(vid));
  }
  network_tail(&net, tail, sizeof(tail));
  teamnet_path(&c, path, sizeof(path), "routes", tail);
  wr__mg_route r;
  if (wr__mg_call(&c, "POST", path, NULL, body, "add route", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_route(res, &r, &e) != WR_OK)
    goto api_error;
  wr__mg_route_free(&r);
  wr__mg_cidr_str(&net, ns);
  printf("Successfully added route for %s over tunnel %s\n", ns, id);
  rv = WR_EXIT_OK;
  goto out;
api_error:
  wr__mg_wrap(&e, "API error");
fail:
  rv = wr__mg_fail(&e);
out:
  json_decref(body);
  json_decref(res);
  wr__mg_end(&c);
  return rv;
}

/* ---- route ip show ------------------------------------------------------------------------ */

static wr__gv *route_gv(wr_arena *a, const wr__mg_route *r, int detailed, int yaml) {
  char s[64];
  wr__gv *o = wr__gv_obj(a);
  if (yaml) { /* yaml.v3 writes the net.IPNet struct: ip and the mask bytes */
    wr__gv *n = wr__gv_put(o, "network", wr__gv_obj(a));
    if (r->network.ip.len) wr__mg_ip_str(&r->network.ip, s);
    else s[0] = '\0';
    wr__gv_put(n, "ip", wr__gv_str(a, s));
    wr__gv *m = wr__gv_put(n, "mask", wr__gv_arr(a));
    for (int i = 0; i < r->network.ip.len; i++) {
      int keep = r->network.bits - 8 * i;
      wr__gv_push(m, wr__gv_int(a, keep >= 8 ? 255 : keep <= 0 ? 0 : (0xff << (8 - keep)) & 0xff));
    }
    wr__gv_put(o, "tunnelid", wr__gv_uuid(a, &r->tunnel_id));
    wr__gv_put(o, "vnetid", r->has_vnet ? wr__gv_uuid(a, &r->vnet_id) : wr__gv_null(a));
    wr__gv_put(o, "comment", wr__gv_str(a, r->comment));
    wr__gv_put(o, "createdat", wr__gv_time(a, &r->created_at));
    wr__gv_put(o, "deletedat", wr__gv_time(a, &r->deleted_at));
    if (detailed) wr__gv_put(o, "tunnelname", wr__gv_str(a, r->tunnel_name));
    return o;
  }
  wr__mg_cidr_str(&r->network, s);
  wr__gv_put(o, "network", wr__gv_str(a, s));
  wr__gv_put(o, "tunnel_id", wr__gv_uuid(a, &r->tunnel_id));
  if (r->has_vnet) wr__gv_put(o, "virtual_network_id", wr__gv_uuid(a, &r->vnet_id));
  wr__gv_put(o, "comment", wr__gv_str(a, r->comment));
  wr__gv_put(o, "created_at", wr__gv_time(a, &r->created_at));
  wr__gv_put(o, "deleted_at", wr__gv_time(a, &r->deleted_at));
  if (detailed) wr__gv_put(o, "tunnel_name", wr__gv_str(a, r->tunnel_name));
  return o;
}

static void print_routes(const wr__mg_route *r, size_t n) {
  wr__mg_table tb = {0};
  wr__mg_table_row(&tb, 7, "NETWORK", "VIRTUAL NET ID", "COMMENT", "TUNNEL ID", "TUNNEL NAME", "CREATED", "DELETED");
  for (size_t i = 0; i < n; i++) {
    char net[64], vnet[WR_UUID_STR_LEN + 1] = "default", tid[WR_UUID_STR_LEN + 1], created[64], deleted[64] = "-";
    wr__mg_cidr_str(&r[i].network, net);
    if (r[i].has_vnet) wr_uuid_format(&r[i].vnet_id, vnet);
    wr_uuid_format(&r[i].tunnel_id, tid);
    wr__mg_time_rfc3339(&r[i].created_at, created);
    if (!wr__mg_time_is_zero(&r[i].deleted_at)) wr__mg_time_rfc3339(&r[i].deleted_at, deleted);
    wr__mg_table_row(&tb, 7, net, vnet, r[i].comment, tid, r[i].tunnel_name, created, deleted);
  }
  wr__mg_table_print(&tb);
}

/* NewIpRouteFilterFromCLI. */
static int route_filter(wr__mg_ctx *c, wr__mg_query *q, wr__mg_err *e) {
  wr_opts *o = c->opts;
  const char *v;
  wr__mg_cidr n;
  char s[64], why[128];
  wr_uuid u;
  wr__mg_query_set(q, "is_deleted", wr_opts_isset(o, "filter-is-deleted") && wr_opts_bool(o, "filter-is-deleted")
                                    ? "true" : "false");
  static const struct { const char *flag, *param; } nets[] = {
      {"filter-network-is-subset-of", "network_subset"},
      {"filter-network-is-superset-of", "network_superset"}};
  for (size_t i = 0; i < 2; i++) {
    if (!wr_opts_isset(o, nets[i].flag)) continue;
    v = wr_opts_get(o, nets[i].flag);
    if (wr__mg_cidr_parse(v, &n) != WR_OK) {
      wr__mg_errf(e, "invalid CIDR address: %s", v);
      return WR_ERR_INVAL;
    }
    wr__mg_cidr_str(&n, s);
    wr__mg_query_set(q, nets[i].param, s);
  }
  if ((v = wr_opts_get(o, "filter-comment-is")) && *v) wr__mg_query_set(q, "comment", v);
  static const struct { const char *flag, *param; } ids[] = {{"filter-tunnel-id", "tunnel_id"},
                                                             {"filter-vnet-id", "virtual_network_id"}};
  for (size_t i = 0; i < 2; i++) {
    if (!(v = wr_opts_get(o, ids[i].flag)) || !*v) continue;
    if (wr__mg_uuid_parse(v, &u, why, sizeof(why)) != WR_OK) {
      wr__mg_errf(e, "Couldn't parse UUID from %s: %s", ids[i].flag, why);
      return WR_ERR_INVAL;
    }
    wr_uuid_format(&u, s);
    wr__mg_query_set(q, ids[i].param, s);
  }
  if ((v = wr_opts_get(o, "max-fetch-size")) && atoi(v) > 0) {
    snprintf(s, sizeof(s), "%d", atoi(v));
    wr__mg_query_set(q, "per_page", s);
  }
  return WR_OK;
}

int wr_cmd_route_ip_show(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr__mg_query q = {0};
  const char *fmt;
  json_t *res = NULL;
  wr__mg_route *r = NULL;
  size_t n = 0;
  int is_null = 0, rv = WR_EXIT_FAIL;
  char path[WR_CRED_MAX_FIELD * 3 + 64];
  (void)cmd;
  (void)argc;
  (void)argv;

  if (wr__mg_begin(&c, o, "tunnel route ip show") != WR_OK) return WR_EXIT_FAIL;
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK) goto fail;
  if (route_filter(&c, &q, &e) != WR_OK) {
    wr__mg_wrap(&e, "invalid config for routing filters");
    goto fail;
  }
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "error while creating backend client");
    goto fail;
  }
  teamnet_path(&c, path, sizeof(path), "routes", NULL);
  if (wr__mg_call(&c, "GET", path, wr__mg_query_str(&q), NULL, "list routes", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_routes(res, &r, &n, &is_null, &e) != WR_OK)
    goto fail;
  if (*fmt) {
    wr_arena a = {0};
    wr__gv *jt = is_null ? wr__gv_null(&a) : wr__gv_arr(&a), *yt = is_null ? wr__gv_null(&a) : wr__gv_arr(&a);
    for (size_t i = 0; i < n; i++) {
      wr__gv_push(jt, route_gv(&a, &r[i], 1, 0));
      wr__gv_push(yt, route_gv(&a, &r[i], 1, 1));
    }
    wr__mg_render(fmt, jt, yt);
    wr_arena_free(&a);
  } else if (n > 0) {
    print_routes(r, n);
  } else {
    printf("No routes were found for the given filter flags. You can use '%s tunnel route ip add' to add a route.\n",
           o->prog);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  json_decref(res);
  wr__mg_routes_free(r, n);
  wr__mg_query_free(&q);
  wr__mg_end(&c);
  return rv;
}

/* ---- route ip delete / get ------------------------------------------------------------------- */

int wr_cmd_route_ip_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr__mg_cidr net;
  wr_uuid vnet;
  wr__mg_query q = {0};
  json_t *res = NULL;
  char path[WR_CRED_MAX_FIELD * 3 + 700], tail[600], ns[64], vid[WR_UUID_STR_LEN + 1];
  int has_vnet = 0, rv = WR_EXIT_FAIL;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel route ip delete") != WR_OK) return WR_EXIT_FAIL;
  if (argc != 1) {
    wr__mg_errf(&e, "You must supply exactly one argument, the network whose route you want to delete (in CIDR form "
                "e.g. 1.2.3.4/32)");
    goto fail;
  }
  if (wr__mg_cidr_parse(argv[0], &net) != WR_OK) {
    wr__mg_errf(&e, "Invalid network CIDR: invalid CIDR address: %s", argv[0]);
    goto fail;
  }
  if (vnet_flag(&c, &has_vnet, &vnet, &e) != WR_OK) goto fail;
  if (has_vnet) {
    wr_uuid_format(&vnet, vid);
    wr__mg_query_set(&q, "virtual_network_id", vid);
  }
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "error while creating backend client");
    goto api_error;
  }
  network_tail(&net, tail, sizeof(tail));
  teamnet_path(&c, path, sizeof(path), "routes", tail);
  wr__mg_route r;
  if (wr__mg_call(&c, "DELETE", path, wr__mg_query_str(&q), NULL, "delete route", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_route(res, &r, &e) != WR_OK)
    goto api_error;
  wr__mg_route_free(&r);
  wr__mg_cidr_str(&net, ns);
  printf("Successfully deleted route for %s\n", ns);
  rv = WR_EXIT_OK;
  goto out;
api_error:
  wr__mg_wrap(&e, "API error");
fail:
  rv = wr__mg_fail(&e);
out:
  json_decref(res);
  wr__mg_query_free(&q);
  wr__mg_end(&c);
  return rv;
}

int wr_cmd_route_ip_get(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr__mg_ip ip;
  wr_uuid vnet;
  wr__mg_query q = {0};
  json_t *res = NULL;
  wr__mg_route r;
  char path[WR_CRED_MAX_FIELD * 3 + 600], tail[400], once[128], twice[384], is[64], vid[WR_UUID_STR_LEN + 1];
  int has_vnet = 0, rv = WR_EXIT_FAIL, have_route = 0;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel route ip get") != WR_OK) return WR_EXIT_FAIL;
  if (argc != 1) {
    wr__mg_errf(&e, "You must supply exactly one argument, an IP whose route will be queried (e.g. 1.2.3.4 or "
                "2001:0db8:::7334)");
    goto fail;
  }
  if (wr__mg_ip_parse(argv[0], &ip) != WR_OK) {
    wr__mg_errf(&e, "Invalid IP %s", argv[0]);
    goto fail;
  }
  if (vnet_flag(&c, &has_vnet, &vnet, &e) != WR_OK) goto fail;
  if (has_vnet) {
    wr_uuid_format(&vnet, vid);
    wr__mg_query_set(&q, "virtual_network_id", vid);
  }
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "error while creating backend client");
    goto api_error;
  }
  wr__mg_ip_str(&ip, is);
  wr_url_escape(is, WR_URL_SEGMENT, once, sizeof(once));
  wr_url_escape(once, WR_URL_PATH, twice, sizeof(twice));
  snprintf(tail, sizeof(tail), "/ip/%s", twice);
  teamnet_path(&c, path, sizeof(path), "routes", tail);
  if (wr__mg_call(&c, "GET", path, wr__mg_query_str(&q), NULL, "get route by IP", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_route(res, &r, &e) != WR_OK)
    goto api_error;
  have_route = 1;
  static const wr_uuid nil;
  if (memcmp(&r.tunnel_id, &nil, sizeof(nil)) == 0) printf("No route matches the IP %s\n", is);
  else print_routes(&r, 1);
  rv = WR_EXIT_OK;
  goto out;
api_error:
  wr__mg_wrap(&e, "API error");
fail:
  rv = wr__mg_fail(&e);
out:
  if (have_route) wr__mg_route_free(&r);
  json_decref(res);
  wr__mg_query_free(&q);
  wr__mg_end(&c);
  return rv;
}

/* ---- vnet ----------------------------------------------------------------------------------------- */

int wr_cmd_vnet_add(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  json_t *res = NULL, *body = NULL;
  wr__mg_vnet v;
  char path[WR_CRED_MAX_FIELD * 3 + 64], id[WR_UUID_STR_LEN + 1];
  int rv = WR_EXIT_FAIL, have = 0;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel vnet add") != WR_OK) return WR_EXIT_FAIL;
  if (argc < 1) {
    wr__mg_errf(&e, "You must supply at least 1 argument, the name of the virtual network you wish to add.");
    goto fail;
  }
  body = json_pack("{s:s,s:s,s:b}", "name", argv[0], "comment", argc >= 2 ? argv[1] : "", "is_default",
                   wr_opts_bool(o, "default"));
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "error while creating backend client");
    goto add_error;
  }
  teamnet_path(&c, path, sizeof(path), "virtual_networks", NULL);
  if (wr__mg_call(&c, "POST", path, NULL, body, "add virtual network", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_vnet(res, &v, &e) != WR_OK)
    goto add_error;
  have = 1;
  wr_uuid_format(&v.id, id);
  printf("Successfully added virtual 'network' %s with ID: %s%s\n"
         "You can now add IP routes attached to this virtual network. See `%s tunnel route ip add -help`\n",
         argv[0], id, v.is_default ? " (as the new default for this account) " : "", o->prog);
  rv = WR_EXIT_OK;
  goto out;
add_error:
  wr__mg_wrap(&e, "Could not add virtual network");
fail:
  rv = wr__mg_fail(&e);
out:
  if (have) wr__mg_vnet_free(&v);
  json_decref(body);
  json_decref(res);
  wr__mg_end(&c);
  return rv;
}

static wr__gv *vnet_gv(wr_arena *a, const wr__mg_vnet *v, int yaml) {
  wr__gv *o = wr__gv_obj(a);
  wr__gv_put(o, "id", wr__gv_uuid(a, &v->id));
  wr__gv_put(o, "comment", wr__gv_str(a, v->comment));
  wr__gv_put(o, "name", wr__gv_str(a, v->name));
  wr__gv_put(o, yaml ? "isdefault" : "is_default_network", wr__gv_bool(a, v->is_default));
  wr__gv_put(o, yaml ? "createdat" : "created_at", wr__gv_time(a, &v->created_at));
  wr__gv_put(o, yaml ? "deletedat" : "deleted_at", wr__gv_time(a, &v->deleted_at));
  return o;
}

int wr_cmd_vnet_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr__mg_query q = {0};
  const char *fmt, *v;
  json_t *res = NULL;
  wr__mg_vnet *vn = NULL;
  size_t n = 0;
  int is_null = 0, rv = WR_EXIT_FAIL;
  char path[WR_CRED_MAX_FIELD * 3 + 64], s[WR_UUID_STR_LEN + 1], why[128];
  (void)cmd;
  (void)argc;
  (void)argv;

  if (wr__mg_begin(&c, o, "tunnel vnet list") != WR_OK) return WR_EXIT_FAIL;
  if (wr__mg_output_format(&c, &fmt, &e) != WR_OK) goto fail;
  if ((v = wr_opts_get(o, "id")) && *v) {
    wr_uuid u;
    if (wr__mg_uuid_parse(v, &u, why, sizeof(why)) != WR_OK) {
      wr__mg_errf(&e, "invalid flags for filtering virtual networks: %s is not a valid virtual network ID: %s", v, why);
      goto fail;
    }
    wr_uuid_format(&u, s);
    wr__mg_query_set(&q, "id", s);
  }
  if ((v = wr_opts_get(o, "name")) && *v) wr__mg_query_set(&q, "name", v);
  if (wr_opts_isset(o, "is-default")) wr__mg_query_set(&q, "is_default", wr_opts_bool(o, "is-default") ? "true" : "false");
  wr__mg_query_set(&q, "is_deleted", wr_opts_bool(o, "show-deleted") ? "true" : "false");
  if ((v = wr_opts_get(o, "max-fetch-size")) && atoi(v) > 0) {
    char pp[24];
    snprintf(pp, sizeof(pp), "%d", atoi(v));
    wr__mg_query_set(&q, "per_page", pp);
  }
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "error while creating backend client");
    goto fail;
  }
  teamnet_path(&c, path, sizeof(path), "virtual_networks", NULL);
  if (wr__mg_call(&c, "GET", path, wr__mg_query_str(&q), NULL, "list virtual networks", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_vnets(res, &vn, &n, &is_null, &e) != WR_OK)
    goto fail;
  if (*fmt) {
    wr_arena a = {0};
    wr__gv *jt = is_null ? wr__gv_null(&a) : wr__gv_arr(&a), *yt = is_null ? wr__gv_null(&a) : wr__gv_arr(&a);
    for (size_t i = 0; i < n; i++) {
      wr__gv_push(jt, vnet_gv(&a, &vn[i], 0));
      wr__gv_push(yt, vnet_gv(&a, &vn[i], 1));
    }
    wr__mg_render(fmt, jt, yt);
    wr_arena_free(&a);
  } else if (n > 0) {
    wr__mg_table tb = {0};
    wr__mg_table_row(&tb, 6, "ID", "NAME", "IS DEFAULT", "COMMENT", "CREATED", "DELETED");
    for (size_t i = 0; i < n; i++) {
      char id[WR_UUID_STR_LEN + 1], created[64], deleted[64] = "-";
      wr_uuid_format(&vn[i].id, id);
      wr__mg_time_rfc3339(&vn[i].created_at, created);
      if (!wr__mg_time_is_zero(&vn[i].deleted_at)) wr__mg_time_rfc3339(&vn[i].deleted_at, deleted);
      wr__mg_table_row(&tb, 6, id, vn[i].name, vn[i].is_default ? "true" : "false", vn[i].comment, created, deleted);
    }
    wr__mg_table_print(&tb);
  } else {
    printf("No virtual networks were found for the given filter flags. You can use '%s tunnel vnet add' to add a "
           "virtual network.\n", o->prog);
  }
  rv = WR_EXIT_OK;
  goto out;
fail:
  rv = wr__mg_fail(&e);
out:
  json_decref(res);
  wr__mg_vnets_free(vn, n);
  wr__mg_query_free(&q);
  wr__mg_end(&c);
  return rv;
}

static int vnet_change(wr_opts *o, int argc, char **argv, int update) {
  wr__mg_ctx c;
  wr__mg_err e;
  wr_uuid id;
  wr__mg_query q = {0};
  json_t *res = NULL, *body = NULL;
  char path[WR_CRED_MAX_FIELD * 3 + 128], tail[64], ids[WR_UUID_STR_LEN + 1];
  int rv = WR_EXIT_FAIL;

  if (wr__mg_begin(&c, o, update ? "tunnel vnet update" : "tunnel vnet delete") != WR_OK) return WR_EXIT_FAIL;
  if (update ? argc != 1 : argc < 1) {
    wr__mg_errf(&e, update ? " You must supply exactly one argument, either the ID or (current) name of the virtual "
                         "network to update"
                       : "You must supply exactly one argument, either the ID or name of the virtual network to "
                         "delete");
    goto fail;
  }
  if (vnet_id(&c, argv[0], &id, &e) != WR_OK) goto fail;
  if (update) {
    body = json_object();
    if (wr_opts_isset(o, "name")) json_object_set_new(body, "name", json_string(wr_opts_get(o, "name")));
    if (wr_opts_isset(o, "comment")) json_object_set_new(body, "comment", json_string(wr_opts_get(o, "comment")));
    if (wr_opts_isset(o, "default")) json_object_set_new(body, "is_default_network", json_boolean(wr_opts_bool(o, "default")));
  } else if (wr_opts_isset(o, "force") && wr_opts_bool(o, "force")) {
    wr__mg_query_set(&q, "force", "true");
  }
  if (wr__mg_client(&c, &e) != WR_OK) {
    wr__mg_wrap(&e, "error while creating backend client");
    goto api_error;
  }
  wr_uuid_format(&id, ids);
  snprintf(tail, sizeof(tail), "/%s", ids);
  teamnet_path(&c, path, sizeof(path), "virtual_networks", tail);
  wr__mg_vnet v;
  if (wr__mg_call(&c, update ? "PATCH" : "DELETE", path, wr__mg_query_str(&q), body,
              update ? "update virtual network" : "delete virtual network", 1, &res, NULL, &e) != WR_OK ||
      wr__mg_decode_vnet(res, &v, &e) != WR_OK)
    goto api_error;
  wr__mg_vnet_free(&v);
  printf("Successfully %s virtual network '%s'\n", update ? "updated" : "deleted", argv[0]);
  rv = WR_EXIT_OK;
  goto out;
api_error:
  wr__mg_wrap(&e, "API error");
fail:
  rv = wr__mg_fail(&e);
out:
  json_decref(body);
  json_decref(res);
  wr__mg_query_free(&q);
  wr__mg_end(&c);
  return rv;
}

int wr_cmd_vnet_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return vnet_change(o, argc, argv, 0);
}

int wr_cmd_vnet_update(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return vnet_change(o, argc, argv, 1);
}
