/* Routes (cloudflare-api.md §2.6.2-2.6.3): hostname routes of a zone
 * (`route dns`, `route lb`: PUT /zones/{zone}/tunnels/{id}/routes) and
 * private-network routes of the account (`route ip`: …/teamnet/routes),
 * with their result types, decoders and JSON/YAML shapes.
 *
 * Ownership and failures as in tunnels.h: decoded values own their
 * strings (free with the matching *_free, safe on zeroed values); calls
 * return what wr_cfapi_call returns, decoders WR_OK or WR_ERR_PROTO with
 * "the Cloudflare API response was an unexpected type: …". */
#ifndef WR_CFAPI_ROUTES_H
#define WR_CFAPI_ROUTES_H
#include <stddef.h>

#include <jansson.h>

#include "cfapi/client.h"
#include "cfapi/render.h"
#include "cfapi/time.h"
#include "cfapi/values.h"
#include "lib/encoding.h"

/* ---- hostname routes ---------------------------------------------------------- */

/* cfapi.DNSRouteResult: cname is "new", "updated" or "unchanged"; name is
 * the final FQDN ("" if absent). */
typedef struct wr_cfapi_dns_route {
  char *cname, *name;
} wr_cfapi_dns_route;

/* cfapi.LBRouteResult: "new", "updated" or "unchanged" for each. */
typedef struct wr_cfapi_lb_route {
  char *load_balancer, *pool;
} wr_cfapi_lb_route;

/* Decoders: the result must be an object or null ("…cannot unmarshal
 * array into Go value of type cfapi.DNSRouteResult"); fields that are not
 * strings read as "". */
int wr_cfapi_decode_dns_route(const json_t *j, wr_cfapi_dns_route *r, wr_cfapi_error *e);
int wr_cfapi_decode_lb_route(const json_t *j, wr_cfapi_lb_route *r, wr_cfapi_error *e);
void wr_cfapi_dns_route_free(wr_cfapi_dns_route *r);
void wr_cfapi_lb_route_free(wr_cfapi_lb_route *r);

/* RouteTunnel, DNS: {"type":"dns","user_hostname":H,"overwrite_existing":B}. */
int wr_cfapi_route_dns(wr_cfapi_client *c, const wr_uuid *tunnel, const char *hostname, int overwrite,
                       wr_cfapi_dns_route *out, wr_cfapi_error *e);
/* RouteTunnel, load balancer: {"type":"lb","lb_name":LB,"lb_pool":POOL}. */
int wr_cfapi_route_lb(wr_cfapi_client *c, const wr_uuid *tunnel, const char *lb, const char *pool,
                      wr_cfapi_lb_route *out, wr_cfapi_error *e);

/* SuccessSummary(): what the route did, in cloudflared's words ("Added
 * CNAME <name> which will route to this tunnel"; <name> is |hostname|
 * when the answer has none; an unknown cname value gives Go's
 * "%!(EXTRA string=<name>)"). Caller frees. */
char *wr_cfapi_dns_route_summary(const wr_cfapi_dns_route *r, const char *hostname);
/* "Created load balancer <lb> and added a new pool <pool> …" for the
 * eight known combinations, else "Something went wrong: …". Caller frees. */
char *wr_cfapi_lb_route_summary(const wr_cfapi_lb_route *r, const char *lb, const char *pool);

/* ---- private-network (IP) routes --------------------------------------------------- */

/* cfapi.DetailedRoute (a Route has no tunnel_name: ""). */
typedef struct wr_cfapi_route {
  wr_cfapi_cidr network;
  wr_uuid tunnel_id;
  int has_vnet;        /* virtual_network_id present and not null */
  wr_uuid vnet_id;
  char *comment;
  wr_cfapi_time created_at, deleted_at;
  char *tunnel_name;
} wr_cfapi_route;

typedef struct wr_cfapi_routes {
  wr_cfapi_route *v;
  size_t n;
  int is_null;
} wr_cfapi_routes;

/* The network is a CIDR with its own UnmarshalJSON: absent is fine, null
 * or "" or anything unparsable is an error. */
int wr_cfapi_decode_route(const json_t *j, wr_cfapi_route *r, wr_cfapi_error *e);
int wr_cfapi_decode_routes(const json_t *j, wr_cfapi_routes *out, wr_cfapi_error *e);
void wr_cfapi_route_free(wr_cfapi_route *r);
void wr_cfapi_routes_free(wr_cfapi_routes *l);

/* A DetailedRoute for -o json|yaml (in YAML the network is yaml.v3's view
 * of net.IPNet: {ip, mask: [bytes]}). */
wr_cfapi_node *wr_cfapi_route_node(wr_arena *a, const wr_cfapi_route *r, wr_cfapi_enc enc);
/* []*DetailedRoute (null for a nil slice). */
wr_cfapi_node *wr_cfapi_routes_node(wr_arena *a, const wr_cfapi_routes *l, wr_cfapi_enc enc);

/* AddRoute (2023.7.3's form): POST …/teamnet/routes/network/<CIDR escaped
 * twice> {"tunnel_id","comment"[,"virtual_network_id"]}. |vnet| NULL: the
 * default. |out| may be NULL (the answer is still checked). */
int wr_cfapi_add_route(wr_cfapi_client *c, const wr_cfapi_cidr *net, const wr_uuid *tunnel, const char *comment,
                       const wr_uuid *vnet, wr_cfapi_route *out, wr_cfapi_error *e);
/* ListRoutes: GET …/teamnet/routes?<filter>. Filters: is_deleted,
 * network_subset, network_superset, comment, tunnel_id,
 * virtual_network_id, per_page. One request. */
int wr_cfapi_list_routes(wr_cfapi_client *c, const wr_cfapi_query *filter, wr_cfapi_routes *out,
                         wr_cfapi_error *e);
/* DeleteRoute: DELETE …/teamnet/routes/network/<CIDR escaped
 * twice>[?virtual_network_id=…]. |out| may be NULL. */
int wr_cfapi_delete_route(wr_cfapi_client *c, const wr_cfapi_cidr *net, const wr_uuid *vnet, wr_cfapi_route *out,
                          wr_cfapi_error *e);
/* GetByIP: GET …/teamnet/routes/ip/<ip>[?virtual_network_id=…]. No match
 * is a route with the nil tunnel ID. */
int wr_cfapi_get_route_by_ip(wr_cfapi_client *c, const wr_cfapi_ip *ip, const wr_uuid *vnet, wr_cfapi_route *out,
                             wr_cfapi_error *e);

#endif
