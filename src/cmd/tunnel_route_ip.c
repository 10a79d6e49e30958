/* `warren tunnel route ip add|show|list|delete|get` and `warren tunnel vnet
 * add|list|delete|update`: private-network routes and virtual networks,
 * as cloudflared 2023.7.3 (teamnet API, cloudflare-api.md §2.6.3-2.6.4),
 * thin commands over cfapi/routes.h and cfapi/vnets.h.
 * As 2023.7.3 does, route add and delete address the route by its network,
 * escaped twice on the wire (…/teamnet/routes/network/10.0.0.0%252F8).
 * One difference on purpose: --filter-network-is-subset-of sends
 * network_subset (cloudflared sends network_superset for both filters). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/routes.h"
#include "cfapi/values.h"
#include "cfapi/vnets.h"
#include "cmd/commands.h"
#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/mem.h"

/* The client, with the context every teamnet command gives its failure. */
static int backend(wr__mg_ctx *c, wr_cfapi_error *e) {
  int rv = wr__mg_client(c, e);
  if (rv != WR_OK) wr_cfapi_wrap(e, "error while creating backend client");
  return rv;
}

/* Ends a command on input it cannot use: the message (a printf format)
 * as cloudflared's errors.New / fmt.Errorf gives it, then wr__mg_finish. */
static int invalid(wr__mg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(wr__mg_ctx *c, const char *fmt, ...) {
  wr_cfapi_error e;
  char msg[WR_CFAPI_ERRLEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wr_cfapi_errorf(&e, "%s", msg);
  return wr__mg_finish(c, WR_ERR_INVAL, &e);
}

/* Ends a command whose step |rv| failed, its error wrapped with |context|
 * ("API error: …"). */
static int failed(wr__mg_ctx *c, int rv, wr_cfapi_error *e, const char *context) {
  wr_cfapi_wrap(e, "%s", context);
  return wr__mg_finish(c, rv, e);
}

/* The --vnet flag, if given: *vnet points at its ID in |id|; else NULL. */
static int vnet_flag(wr__mg_ctx *c, wr_uuid *id, const wr_uuid **vnet, wr_cfapi_error *e) {
  *vnet = NULL;
  if (!wr_opts_isset(c->opts, "vnet")) return WR_OK;
  int rv = wr__mg_vnet_id(c, wr_opts_get(c->opts, "vnet"), id, e);
  if (rv == WR_OK) *vnet = id;
  return rv;
}

/* ---- route ip add ---------------------------------------------------------------------- */

int wr_cmd_route_ip_add(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_cfapi_cidr net;
  wr_uuid tid, vid;
  const wr_uuid *vnet;
  char id[WR_UUID_STR_LEN + 1], ns[WR_CFAPI_ADDR_STRLEN];
  int rv;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel route ip add") != WR_OK) return WR_EXIT_FAIL;
  if (argc < 2)
    return invalid(&c, "You must supply at least 2 arguments, first the network you wish to route (in CIDR form "
                       "e.g. 1.2.3.4/32) and then the tunnel ID to proxy with");
  if (wr_cfapi_cidr_parse(argv[0], &net) != WR_OK)
    return invalid(&c, "Invalid network CIDR: invalid CIDR address: %s", argv[0]);
  if ((rv = wr__mg_find_id(&c, argv[1], &tid, &e)) != WR_OK) return failed(&c, rv, &e, "Invalid tunnel");
  if ((rv = vnet_flag(&c, &vid, &vnet, &e)) != WR_OK) return wr__mg_finish(&c, rv, &e);
  if ((rv = backend(&c, &e)) == WR_OK)
    rv = wr_cfapi_add_route(c.api, &net, &tid, argc >= 3 ? argv[2] : "", vnet, NULL, &e);
  if (rv != WR_OK) return failed(&c, rv, &e, "API error");
  wr_cfapi_cidr_str(&net, ns);
  wr_uuid_format(&tid, id);
  printf("Successfully added route for %s over tunnel %s\n", ns, id);
  return wr__mg_finish(&c, WR_OK, &e);
}

/* ---- route ip show ------------------------------------------------------------------------ */

static void print_routes(const wr_cfapi_route *r, size_t n) {
  wr__mg_table tb = {0};
  wr__mg_table_row(&tb, 7, "NETWORK", "VIRTUAL NET ID", "COMMENT", "TUNNEL ID", "TUNNEL NAME", "CREATED", "DELETED");
  for (size_t i = 0; i < n; i++) {
    char net[WR_CFAPI_ADDR_STRLEN], vnet[WR_UUID_STR_LEN + 1] = "default", tid[WR_UUID_STR_LEN + 1];
    char created[WR_CFAPI_TIME_STRLEN], deleted[WR_CFAPI_TIME_STRLEN] = "-";
    wr_cfapi_cidr_str(&r[i].network, net);
    if (r[i].has_vnet) wr_uuid_format(&r[i].vnet_id, vnet);
    wr_uuid_format(&r[i].tunnel_id, tid);
    wr_cfapi_time_rfc3339(&r[i].created_at, created);
    if (!wr_cfapi_time_is_zero(&r[i].deleted_at)) wr_cfapi_time_rfc3339(&r[i].deleted_at, deleted);
    wr__mg_table_row(&tb, 7, net, vnet, r[i].comment, tid, r[i].tunnel_name, created, deleted);
  }
  wr__mg_table_print(&tb);
}

/* route ip show and vnet list: the same steps around a different list.
 * The list lives in a list_buf; the functions see it as |l|. */
typedef union list_buf {
  wr_cfapi_routes routes;
  wr_cfapi_vnets vnets;
} list_buf;

typedef struct list_kind {
  const char *path;
  const wr__mg_qflag *filters;
  const char *bad_filters; /* context of a bad filter value's error, or NULL */
  const char *none;        /* printed when nothing matched (%s: the program) */
  int (*fetch)(wr_cfapi_client *api, const wr_cfapi_query *q, void *l, wr_cfapi_error *e);
  wr_cfapi_node *(*node)(wr_arena *a, const void *l, wr_cfapi_enc enc);
  size_t (*table)(const void *l); /* prints the table unless empty; returns the number of rows */
  void (*free)(void *l);
} list_kind;

/* -o, the filter flags, one list call, then the list as -o says: JSON or
 * YAML, else a table or, when nothing matched, |none|. */
static int list_cmd(const list_kind *k, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_cfapi_query q = {0};
  wr__mg_format fmt;
  list_buf l;
  int rv;
  (void)argc;
  (void)argv;

  memset(&l, 0, sizeof(l));
  if (wr__mg_begin(&c, o, k->path) != WR_OK) return WR_EXIT_FAIL;
  if ((rv = wr__mg_output_format(&c, &fmt, &e)) != WR_OK) goto out;
  if ((rv = wr__mg_query_flags(o, k->filters, &q, &e)) != WR_OK) {
    if (k->bad_filters) wr_cfapi_wrap(&e, "%s", k->bad_filters);
    goto out;
  }
  if ((rv = backend(&c, &e)) != WR_OK || (rv = k->fetch(c.api, &q, &l, &e)) != WR_OK) goto out;
  if (fmt != WR__MG_TEXT) {
    wr_arena a = {0};
    wr__mg_print(fmt, k->node(&a, &l, wr__mg_enc(fmt)));
    wr_arena_free(&a);
  } else if (k->table(&l) == 0) {
    printf(k->none, o->prog);
  }
out:
  k->free(&l);
  wr_cfapi_query_free(&q);
  return wr__mg_finish(&c, rv, &e);
}

/* NewIpRouteFilterFromCLI. */
static const wr__mg_qflag route_filters[] = {
    {"filter-is-deleted", "is_deleted", WR__MG_Q_BOOL, NULL, 0},
    {"filter-network-is-subset-of", "network_subset", WR__MG_Q_CIDR, "invalid CIDR address: %s", 0},
    {"filter-network-is-superset-of", "network_superset", WR__MG_Q_CIDR, "invalid CIDR address: %s", 0},
    {"filter-comment-is", "comment", WR__MG_Q_STR, NULL, 0},
    {"filter-tunnel-id", "tunnel_id", WR__MG_Q_UUID, "Couldn't parse UUID from %s: %s", 1},
    {"filter-vnet-id", "virtual_network_id", WR__MG_Q_UUID, "Couldn't parse UUID from %s: %s", 1},
    {"max-fetch-size", "per_page", WR__MG_Q_POSINT, NULL, 0},
    {NULL, NULL, 0, NULL, 0},
};

static int routes_fetch(wr_cfapi_client *api, const wr_cfapi_query *q, void *l, wr_cfapi_error *e) {
  return wr_cfapi_list_routes(api, q, l, e);
}
static wr_cfapi_node *routes_node(wr_arena *a, const void *l, wr_cfapi_enc enc) { return wr_cfapi_routes_node(a, l, enc); }
/* The table of |l| (a wr_cfapi_routes) unless it is empty; returns its length. */
static size_t routes_table(const void *l) {
  const wr_cfapi_routes *rl = l;
  if (rl->n > 0) print_routes(rl->v, rl->n);
  return rl->n;
}
static void routes_free(void *l) { wr_cfapi_routes_free(l); }

static const list_kind route_list = {
    "tunnel route ip show", route_filters, "invalid config for routing filters",
    "No routes were found for the given filter flags. You can use '%s tunnel route ip add' to add a route.\n",
    routes_fetch, routes_node, routes_table, routes_free};

int wr_cmd_route_ip_show(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return list_cmd(&route_list, o, argc, argv);
}

/* ---- route ip delete / get ------------------------------------------------------------------- */

/* delete and get: one address and --vnet, then one call. */
typedef union route_addr {
  wr_cfapi_cidr net; /* delete */
  wr_cfapi_ip ip;    /* get */
} route_addr;

typedef struct route_at {
  const char *path;
  const char *usage; /* for a wrong argument count */
  const char *bad;   /* for an argument |parse| refuses (%s: it) */
  int (*parse)(const char *s, route_addr *a);
  int (*call)(wr__mg_ctx *c, const route_addr *a, const wr_uuid *vnet, wr_cfapi_error *e); /* and prints */
} route_at;

static int route_at_cmd(const route_at *k, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  route_addr a;
  wr_uuid vid;
  const wr_uuid *vnet;
  int rv;

  if (wr__mg_begin(&c, o, k->path) != WR_OK) return WR_EXIT_FAIL;
  if (argc != 1) return invalid(&c, "%s", k->usage);
  if (k->parse(argv[0], &a) != WR_OK) return invalid(&c, k->bad, argv[0]);
  if ((rv = vnet_flag(&c, &vid, &vnet, &e)) != WR_OK) return wr__mg_finish(&c, rv, &e);
  if ((rv = backend(&c, &e)) == WR_OK) rv = k->call(&c, &a, vnet, &e);
  if (rv != WR_OK) return failed(&c, rv, &e, "API error");
  return wr__mg_finish(&c, WR_OK, &e);
}

static int parse_net(const char *s, route_addr *a) { return wr_cfapi_cidr_parse(s, &a->net); }

static int delete_call(wr__mg_ctx *c, const route_addr *a, const wr_uuid *vnet, wr_cfapi_error *e) {
  char ns[WR_CFAPI_ADDR_STRLEN];
  int rv = wr_cfapi_delete_route(c->api, &a->net, vnet, NULL, e);
  if (rv != WR_OK) return rv;
  wr_cfapi_cidr_str(&a->net, ns);
  printf("Successfully deleted route for %s\n", ns);
  return WR_OK;
}

static const route_at route_delete = {
    "tunnel route ip delete",
    "You must supply exactly one argument, the network whose route you want to delete (in CIDR form e.g. "
    "1.2.3.4/32)",
    "Invalid network CIDR: invalid CIDR address: %s", parse_net, delete_call};

int wr_cmd_route_ip_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return route_at_cmd(&route_delete, o, argc, argv);
}

static int parse_ip(const char *s, route_addr *a) { return wr_cfapi_ip_parse(s, &a->ip); }

static int get_call(wr__mg_ctx *c, const route_addr *a, const wr_uuid *vnet, wr_cfapi_error *e) {
  static const wr_uuid nil;
  wr_cfapi_route r;
  char is[WR_CFAPI_ADDR_STRLEN];
  int rv = wr_cfapi_get_route_by_ip(c->api, &a->ip, vnet, &r, e);
  if (rv != WR_OK) return rv;
  wr_cfapi_ip_str(&a->ip, is);
  if (memcmp(&r.tunnel_id, &nil, sizeof(nil)) == 0) printf("No route matches the IP %s\n", is);
  else print_routes(&r, 1);
  wr_cfapi_route_free(&r);
  return WR_OK;
}

static const route_at route_get = {
    "tunnel route ip get",
    "You must supply exactly one argument, an IP whose route will be queried (e.g. 1.2.3.4 or 2001:0db8:::7334)",
    "Invalid IP %s", parse_ip, get_call};

int wr_cmd_route_ip_get(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return route_at_cmd(&route_get, o, argc, argv);
}

/* ---- vnet ----------------------------------------------------------------------------------------- */

int wr_cmd_vnet_add(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_cfapi_vnet v;
  char id[WR_UUID_STR_LEN + 1];
  int rv;
  (void)cmd;

  if (wr__mg_begin(&c, o, "tunnel vnet add") != WR_OK) return WR_EXIT_FAIL;
  if (argc < 1)
    return invalid(&c, "You must supply at least 1 argument, the name of the virtual network you wish to add.");
  if ((rv = backend(&c, &e)) == WR_OK)
    rv = wr_cfapi_create_vnet(c.api, argv[0], argc >= 2 ? argv[1] : "", wr_opts_bool(o, "default"), &v, &e);
  if (rv != WR_OK) return failed(&c, rv, &e, "Could not add virtual network");
  wr_uuid_format(&v.id, id);
  printf("Successfully added virtual 'network' %s with ID: %s%s\n"
         "You can now add IP routes attached to this virtual network. See `%s tunnel route ip add -help`\n",
         argv[0], id, v.is_default ? " (as the new default for this account) " : "", o->prog);
  wr_cfapi_vnet_free(&v);
  return wr__mg_finish(&c, WR_OK, &e);
}

/* The table of |l| (a wr_cfapi_vnets) unless it is empty; returns its length. */
static size_t vnets_table(const void *l) {
  const wr_cfapi_vnets *vl = l;
  if (vl->n == 0) return 0;
  wr__mg_table tb = {0};
  wr__mg_table_row(&tb, 6, "ID", "NAME", "IS DEFAULT", "COMMENT", "CREATED", "DELETED");
  for (size_t i = 0; i < vl->n; i++) {
    const wr_cfapi_vnet *v = &vl->v[i];
    char id[WR_UUID_STR_LEN + 1], created[WR_CFAPI_TIME_STRLEN], deleted[WR_CFAPI_TIME_STRLEN] = "-";
    wr_uuid_format(&v->id, id);
    wr_cfapi_time_rfc3339(&v->created_at, created);
    if (!wr_cfapi_time_is_zero(&v->deleted_at)) wr_cfapi_time_rfc3339(&v->deleted_at, deleted);
    wr__mg_table_row(&tb, 6, id, v->name, v->is_default ? "true" : "false", v->comment, created, deleted);
  }
  wr__mg_table_print(&tb);
  return vl->n;
}

static const wr__mg_qflag vnet_filters[] = {
    {"id", "id", WR__MG_Q_UUID, "invalid flags for filtering virtual networks: %s is not a valid virtual network ID: %s",
     0},
    {"name", "name", WR__MG_Q_STR, NULL, 0},
    {"is-default", "is_default", WR__MG_Q_BOOL_IFSET, NULL, 0},
    {"show-deleted", "is_deleted", WR__MG_Q_BOOL, NULL, 0},
    {"max-fetch-size", "per_page", WR__MG_Q_POSINT, NULL, 0},
    {NULL, NULL, 0, NULL, 0},
};

static int vnets_fetch(wr_cfapi_client *api, const wr_cfapi_query *q, void *l, wr_cfapi_error *e) {
  return wr_cfapi_list_vnets(api, q, l, e);
}
static wr_cfapi_node *vnets_node(wr_arena *a, const void *l, wr_cfapi_enc enc) { return wr_cfapi_vnets_node(a, l, enc); }
static void vnets_free(void *l) { wr_cfapi_vnets_free(l); }

static const list_kind vnet_list = {
    "tunnel vnet list", vnet_filters, NULL,
    "No virtual networks were found for the given filter flags. You can use '%s tunnel vnet add' to add a "
    "virtual network.\n",
    vnets_fetch, vnets_node, vnets_table, vnets_free};

int wr_cmd_vnet_list(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return list_cmd(&vnet_list, o, argc, argv);
}

/* delete and update: the same steps around a different call. */
typedef struct vnet_change {
  const char *path, *done;
  const char *bad_args;
  int (*args_ok)(int argc);
  int (*call)(wr__mg_ctx *c, const wr_uuid *id, wr_cfapi_error *e);
} vnet_change;

static int one_arg(int argc) { return argc == 1; }
static int some_args(int argc) { return argc >= 1; }

static int vnet_delete_call(wr__mg_ctx *c, const wr_uuid *id, wr_cfapi_error *e) {
  int force = wr_opts_isset(c->opts, "force") && wr_opts_bool(c->opts, "force");
  return wr_cfapi_delete_vnet(c->api, id, force, NULL, e);
}

static int vnet_update_call(wr__mg_ctx *c, const wr_uuid *id, wr_cfapi_error *e) {
  wr_opts *o = c->opts;
  wr_cfapi_vnet_update u = {wr_opts_isset(o, "name") ? wr_opts_get(o, "name") : NULL,
                            wr_opts_isset(o, "comment") ? wr_opts_get(o, "comment") : NULL,
                            wr_opts_isset(o, "default") ? wr_opts_bool(o, "default") : -1};
  return wr_cfapi_update_vnet(c->api, id, &u, NULL, e);
}

static const vnet_change vnet_delete = {
    "tunnel vnet delete", "deleted",
    "You must supply exactly one argument, either the ID or name of the virtual network to delete", some_args,
    vnet_delete_call};
static const vnet_change vnet_update = {
    "tunnel vnet update", "updated",
    " You must supply exactly one argument, either the ID or (current) name of the virtual network to update", one_arg,
    vnet_update_call};

static int change_vnet(const vnet_change *k, wr_opts *o, int argc, char **argv) {
  wr__mg_ctx c;
  wr_cfapi_error e;
  wr_uuid id;
  int rv;

  if (wr__mg_begin(&c, o, k->path) != WR_OK) return WR_EXIT_FAIL;
  if (!k->args_ok(argc)) return invalid(&c, "%s", k->bad_args);
  if ((rv = wr__mg_vnet_id(&c, argv[0], &id, &e)) != WR_OK) return wr__mg_finish(&c, rv, &e);
  if ((rv = backend(&c, &e)) == WR_OK) rv = k->call(&c, &id, &e);
  if (rv != WR_OK) return failed(&c, rv, &e, "API error");
  printf("Successfully %s virtual network '%s'\n", k->done, argv[0]);
  return wr__mg_finish(&c, WR_OK, &e);
}

int wr_cmd_vnet_delete(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return change_vnet(&vnet_delete, o, argc, argv);
}

int wr_cmd_vnet_update(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  (void)cmd;
  return change_vnet(&vnet_update, o, argc, argv);
}
