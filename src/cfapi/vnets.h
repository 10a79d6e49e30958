/* Virtual networks (cloudflare-api.md §2.6.4): cfapi.VirtualNetwork, its
 * decoder and JSON/YAML shape, and the calls under
 * /accounts/{account}/teamnet/virtual_networks.
 *
 * Ownership and failures as in tunnels.h. */
#ifndef WR_CFAPI_VNETS_H
#define WR_CFAPI_VNETS_H
#include <stddef.h>

#include <jansson.h>

#include "cfapi/client.h"
#include "cfapi/render.h"
#include "cfapi/time.h"
#include "lib/encoding.h"

typedef struct wr_cfapi_vnet {
  wr_uuid id;
  char *comment, *name;
  int is_default;      /* is_default_network */
  wr_cfapi_time created_at, deleted_at;
} wr_cfapi_vnet;

typedef struct wr_cfapi_vnets {
  wr_cfapi_vnet *v;
  size_t n;
  int is_null;
} wr_cfapi_vnets;

int wr_cfapi_decode_vnet(const json_t *j, wr_cfapi_vnet *v, wr_cfapi_error *e);
int wr_cfapi_decode_vnets(const json_t *j, wr_cfapi_vnets *out, wr_cfapi_error *e);
void wr_cfapi_vnet_free(wr_cfapi_vnet *v);
void wr_cfapi_vnets_free(wr_cfapi_vnets *l);

wr_cfapi_node *wr_cfapi_vnet_node(wr_arena *a, const wr_cfapi_vnet *v, wr_cfapi_enc enc);
/* []*VirtualNetwork (null for a nil slice). */
wr_cfapi_node *wr_cfapi_vnets_node(wr_arena *a, const wr_cfapi_vnets *l, wr_cfapi_enc enc);

/* CreateVirtualNetwork: POST … {"name","comment","is_default"}. */
int wr_cfapi_create_vnet(wr_cfapi_client *c, const char *name, const char *comment, int is_default,
                         wr_cfapi_vnet *out, wr_cfapi_error *e);
/* ListVirtualNetworks: GET …?<filter>. Filters: id, name, is_default,
 * is_deleted, per_page. Not paged. */
int wr_cfapi_list_vnets(wr_cfapi_client *c, const wr_cfapi_query *filter, wr_cfapi_vnets *out, wr_cfapi_error *e);
/* DeleteVirtualNetwork: DELETE …/{id}[?force=true]. |out| may be NULL. */
int wr_cfapi_delete_vnet(wr_cfapi_client *c, const wr_uuid *id, int force, wr_cfapi_vnet *out, wr_cfapi_error *e);

/* The fields an update changes; NULL / -1 leave one out of the body. */
typedef struct wr_cfapi_vnet_update {
  const char *name, *comment;
  int is_default; /* -1: unchanged */
} wr_cfapi_vnet_update;
/* UpdateVirtualNetwork: PATCH …/{id} {"name"?,"comment"?,
 * "is_default_network"?} (an empty object when nothing changes). |out| may
 * be NULL. */
int wr_cfapi_update_vnet(wr_cfapi_client *c, const wr_uuid *id, const wr_cfapi_vnet_update *u, wr_cfapi_vnet *out,
                         wr_cfapi_error *e);

#endif
