/* Virtual networks. See vnets.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/decode_int.h"
#include "cfapi/vnets.h"
#include "lib/err.h"
#include "lib/mem.h"

static void vnet_fields(wr__cfapi_dec *d, void *o) {
  wr_cfapi_vnet *v = o;
  wr__cfapi_d_uuid(d, "id", &v->id);
  wr__cfapi_d_str(d, "comment", &v->comment);
  wr__cfapi_d_str(d, "name", &v->name);
  wr__cfapi_d_bool(d, "is_default_network", &v->is_default);
  wr__cfapi_d_time(d, "created_at", &v->created_at);
  wr__cfapi_d_time(d, "deleted_at", &v->deleted_at);
}

void wr_cfapi_vnet_free(wr_cfapi_vnet *v) {
  if (!v) return;
  free(v->comment);
  free(v->name);
  memset(v, 0, sizeof(*v));
}

static void fr_vnet(void *o) { wr_cfapi_vnet_free(o); }
static const wr__cfapi_type vnet_type = {"VirtualNetwork", sizeof(wr_cfapi_vnet), vnet_fields, fr_vnet};

int wr_cfapi_decode_vnet(const json_t *j, wr_cfapi_vnet *v, wr_cfapi_error *e) {
  return wr__cfapi_decode_one(j, &vnet_type, v, e);
}

static int dec_vnets(const json_t *j, void *o, wr_cfapi_error *e) { return wr_cfapi_decode_vnets(j, o, e); }

int wr_cfapi_decode_vnets(const json_t *j, wr_cfapi_vnets *out, wr_cfapi_error *e) {
  return wr__cfapi_decode_array(j, &vnet_type, (void **)&out->v, &out->n, &out->is_null, e);
}

void wr_cfapi_vnets_free(wr_cfapi_vnets *l) {
  wr__cfapi_free_array(&vnet_type, l->v, l->n);
  memset(l, 0, sizeof(*l));
}

wr_cfapi_node *wr_cfapi_vnet_node(wr_arena *a, const wr_cfapi_vnet *v, wr_cfapi_enc enc) {
  int json = enc == WR_CFAPI_JSON;
  wr_cfapi_node *o = wr_cfapi_node_obj(a);
  wr_cfapi_node_put(o, "id", wr_cfapi_node_uuid(a, &v->id));
  wr_cfapi_node_put(o, "comment", wr_cfapi_node_str(a, v->comment));
  wr_cfapi_node_put(o, "name", wr_cfapi_node_str(a, v->name));
  wr_cfapi_node_put(o, json ? "is_default_network" : "isdefault", wr_cfapi_node_bool(a, v->is_default));
  wr_cfapi_node_put(o, json ? "created_at" : "createdat", wr_cfapi_node_time(a, &v->created_at));
  wr_cfapi_node_put(o, json ? "deleted_at" : "deletedat", wr_cfapi_node_time(a, &v->deleted_at));
  return o;
}

wr_cfapi_node *wr_cfapi_vnets_node(wr_arena *a, const wr_cfapi_vnets *l, wr_cfapi_enc enc) {
  wr_cfapi_node *arr = l->is_null ? wr_cfapi_node_null(a) : wr_cfapi_node_arr(a);
  for (size_t i = 0; i < l->n; i++) wr_cfapi_node_push(arr, wr_cfapi_vnet_node(a, &l->v[i], enc));
  return arr;
}

/* …/teamnet/virtual_networks[/<id>]. Caller frees. */
static char *vnets_path(const wr_cfapi_client *c, const wr_uuid *id) {
  char tail[WR_UUID_STR_LEN + 64] = "/teamnet/virtual_networks";
  if (id) {
    char s[WR_UUID_STR_LEN + 1];
    wr_uuid_format(id, s);
    snprintf(tail, sizeof(tail), "/teamnet/virtual_networks/%s", s);
  }
  return wr_cfapi_account_path(c, tail);
}

/* One call answered with a vnet (|out| NULL: checked and dropped). */
static int vnet_call(wr_cfapi_client *c, const wr_uuid *id, wr_cfapi_request *rq, wr_cfapi_vnet *out,
                     wr_cfapi_error *e) {
  char *path = vnets_path(c, id);
  rq->path = path;
  int rv = wr__cfapi_call_one(c, rq, &vnet_type, out, e);
  free(path);
  return rv;
}

int wr_cfapi_create_vnet(wr_cfapi_client *c, const char *name, const char *comment, int is_default,
                         wr_cfapi_vnet *out, wr_cfapi_error *e) {
  json_t *body = json_pack("{s:s,s:s,s:b}", "name", name, "comment", comment, "is_default", is_default);
  wr_cfapi_request rq = {"POST", NULL, NULL, body, "add virtual network", 1};
  int rv = vnet_call(c, NULL, &rq, out, e);
  json_decref(body);
  return rv;
}

int wr_cfapi_list_vnets(wr_cfapi_client *c, const wr_cfapi_query *filter, wr_cfapi_vnets *out, wr_cfapi_error *e) {
  char *path = vnets_path(c, NULL);
  memset(out, 0, sizeof(*out));
  int rv = wr__cfapi_list(c, path, filter, "list virtual networks", dec_vnets, out, e);
  free(path);
  return rv;
}

int wr_cfapi_delete_vnet(wr_cfapi_client *c, const wr_uuid *id, int force, wr_cfapi_vnet *out, wr_cfapi_error *e) {
  wr_cfapi_request rq = {"DELETE", NULL, force ? "force=true" : NULL, NULL, "delete virtual network", 1};
  return vnet_call(c, id, &rq, out, e);
}

int wr_cfapi_update_vnet(wr_cfapi_client *c, const wr_uuid *id, const wr_cfapi_vnet_update *u, wr_cfapi_vnet *out,
                         wr_cfapi_error *e) {
  json_t *body = json_object();
  if (u->name) json_object_set_new(body, "name", json_string(u->name));
  if (u->comment) json_object_set_new(body, "comment", json_string(u->comment));
  if (u->is_default >= 0) json_object_set_new(body, "is_default_network", json_boolean(u->is_default));
  wr_cfapi_request rq = {"PATCH", NULL, NULL, body, "update virtual network", 1};
  int rv = vnet_call(c, id, &rq, out, e);
  json_decref(body);
  return rv;
}
