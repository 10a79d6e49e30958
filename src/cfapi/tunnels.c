/* Tunnels, connections and connectors. See tunnels.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi/decode_int.h"
#include "cfapi/tunnels.h"
#include "lib/credentials.h"
#include "lib/err.h"
#include "lib/mem.h"

/* ---- decoding ------------------------------------------------------------------ */

static void conn_fields(wr__cfapi_dec *d, void *o) {
  wr_cfapi_conn *c = o;
  wr__cfapi_d_str(d, "colo_name", &c->colo_name);
  wr__cfapi_d_uuid(d, "id", &c->id);
  wr__cfapi_d_bool(d, "is_pending_reconnect", &c->pending);
  wr__cfapi_d_ip(d, "origin_ip", &c->origin_ip);
  wr__cfapi_d_time(d, "opened_at", &c->opened_at);
}

static void conn_free(void *o) {
  wr_cfapi_conn *c = o;
  free(c->colo_name);
  memset(c, 0, sizeof(*c));
}

static const wr__cfapi_type conn_type = {"Connection", sizeof(wr_cfapi_conn), conn_fields, conn_free};

/* A []Connection field: absent or null leave a nil slice. */
static void d_conns(wr__cfapi_dec *d, const char *key, wr_cfapi_conn **out, size_t *n, int *is_null) {
  const json_t *v = wr__cfapi_dget(d, key);
  *out = NULL;
  *n = 0;
  *is_null = 1;
  if (d->rv || !v) return;
  if (!json_is_array(v)) d->rv = wr__cfapi_type_err(d->e, v, d->gotype, key, "[]cfapi.Connection");
  else d->rv = wr__cfapi_decode_array(v, &conn_type, (void **)out, n, is_null, d->e);
}

static void tunnel_fields(wr__cfapi_dec *d, void *o) {
  wr_cfapi_tunnel *t = o;
  wr__cfapi_d_uuid(d, "id", &t->id);
  wr__cfapi_d_str(d, "name", &t->name);
  wr__cfapi_d_time(d, "created_at", &t->created_at);
  wr__cfapi_d_time(d, "deleted_at", &t->deleted_at);
  d_conns(d, "connections", &t->conns, &t->nconns, &t->conns_null);
  d->gotype = "TunnelWithToken";
  wr__cfapi_d_str(d, "token", &t->token);
}

void wr_cfapi_tunnel_free(wr_cfapi_tunnel *t) {
  if (!t) return;
  free(t->name);
  free(t->token);
  wr__cfapi_free_array(&conn_type, t->conns, t->nconns);
  memset(t, 0, sizeof(*t));
}

static void fr_tunnel(void *o) { wr_cfapi_tunnel_free(o); }
static const wr__cfapi_type tunnel_type = {"Tunnel", sizeof(wr_cfapi_tunnel), tunnel_fields, fr_tunnel};

int wr_cfapi_decode_tunnel(const json_t *j, wr_cfapi_tunnel *t, wr_cfapi_error *e) {
  return wr__cfapi_decode_one(j, &tunnel_type, t, e);
}

int wr_cfapi_decode_tunnels(const json_t *j, wr_cfapi_tunnels *out, wr_cfapi_error *e) {
  return wr__cfapi_decode_array(j, &tunnel_type, (void **)&out->v, &out->n, &out->is_null, e);
}

void wr_cfapi_tunnels_free(wr_cfapi_tunnels *l) {
  wr__cfapi_free_array(&tunnel_type, l->v, l->n);
  memset(l, 0, sizeof(*l));
}

/* A []string field of ActiveClient (null elements read as ""). */
static void d_features(wr__cfapi_dec *d, wr_cfapi_active_client *c) {
  const json_t *f = wr__cfapi_dget(d, "features");
  if (d->rv || !f) return;
  if (!json_is_array(f)) {
    d->rv = wr__cfapi_type_err(d->e, f, d->gotype, "features", "[]string");
    return;
  }
  c->features_null = 0;
  c->features = wr_xcalloc(json_array_size(f) + 1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(f) && !d->rv; i++) {
    const json_t *s = json_array_get(f, i);
    if (!json_is_string(s) && !json_is_null(s)) d->rv = wr__cfapi_type_err(d->e, s, d->gotype, "features", "string");
    else c->features[c->nfeatures++] = wr_xstrdup(json_is_string(s) ? json_string_value(s) : "");
  }
}

static void client_fields(wr__cfapi_dec *d, void *o) {
  wr_cfapi_active_client *c = o;
  c->features_null = 1;
  wr__cfapi_d_uuid(d, "id", &c->id);
  d_features(d, c);
  wr__cfapi_d_str(d, "version", &c->version);
  wr__cfapi_d_str(d, "arch", &c->arch);
  wr__cfapi_d_time(d, "run_at", &c->run_at);
  d_conns(d, "conns", &c->conns, &c->nconns, &c->conns_null);
}

static void client_free(void *o) {
  wr_cfapi_active_client *c = o;
  for (size_t i = 0; i < c->nfeatures; i++) free(c->features[i]);
  free(c->features);
  free(c->version);
  free(c->arch);
  wr__cfapi_free_array(&conn_type, c->conns, c->nconns);
  memset(c, 0, sizeof(*c));
}

static const wr__cfapi_type client_type = {"ActiveClient", sizeof(wr_cfapi_active_client), client_fields,
                                           client_free};

int wr_cfapi_decode_active_clients(const json_t *j, wr_cfapi_active_clients *out, wr_cfapi_error *e) {
  return wr__cfapi_decode_array(j, &client_type, (void **)&out->v, &out->n, &out->is_null, e);
}

void wr_cfapi_active_clients_free(wr_cfapi_active_clients *l) {
  wr__cfapi_free_array(&client_type, l->v, l->n);
  memset(l, 0, sizeof(*l));
}

/* ---- shapes ------------------------------------------------------------------------- */

/* A struct field's name: its json tag, or yaml.v3's lower-cased Go name. */
#define KEY(enc, json, yaml) ((enc) == WR_CFAPI_JSON ? (json) : (yaml))

static wr_cfapi_node *conns_node(wr_arena *a, const wr_cfapi_conn *c, size_t n, int is_null, wr_cfapi_enc enc) {
  char ip[WR_CFAPI_ADDR_STRLEN];
  wr_cfapi_node *arr = wr_cfapi_node_slice(a, is_null, enc);
  for (size_t i = 0; i < n; i++) {
    wr_cfapi_node *o = wr_cfapi_node_push(arr, wr_cfapi_node_obj(a));
    wr_cfapi_node_put(o, KEY(enc, "colo_name", "coloname"), wr_cfapi_node_str(a, c[i].colo_name));
    wr_cfapi_node_put(o, "id", wr_cfapi_node_uuid(a, &c[i].id));
    wr_cfapi_node_put(o, KEY(enc, "is_pending_reconnect", "ispendingreconnect"), wr_cfapi_node_bool(a, c[i].pending));
    if (c[i].origin_ip.len) wr_cfapi_ip_str(&c[i].origin_ip, ip);
    else ip[0] = '\0'; /* a nil net.IP marshals as "" */
    wr_cfapi_node_put(o, KEY(enc, "origin_ip", "originip"), wr_cfapi_node_str(a, ip));
    wr_cfapi_node_put(o, KEY(enc, "opened_at", "openedat"), wr_cfapi_node_time(a, &c[i].opened_at));
  }
  return arr;
}

wr_cfapi_node *wr_cfapi_tunnel_node(wr_arena *a, const wr_cfapi_tunnel *t, wr_cfapi_enc enc) {
  wr_cfapi_node *o = wr_cfapi_node_obj(a);
  wr_cfapi_node_put(o, "id", wr_cfapi_node_uuid(a, &t->id));
  wr_cfapi_node_put(o, "name", wr_cfapi_node_str(a, t->name));
  wr_cfapi_node_put(o, KEY(enc, "created_at", "createdat"), wr_cfapi_node_time(a, &t->created_at));
  wr_cfapi_node_put(o, KEY(enc, "deleted_at", "deletedat"), wr_cfapi_node_time(a, &t->deleted_at));
  wr_cfapi_node_put(o, "connections", conns_node(a, t->conns, t->nconns, t->conns_null, enc));
  return o;
}

wr_cfapi_node *wr_cfapi_tunnel_with_token_node(wr_arena *a, const wr_cfapi_tunnel *t, wr_cfapi_enc enc) {
  wr_cfapi_node *o = enc == WR_CFAPI_JSON ? wr_cfapi_tunnel_node(a, t, enc) : wr_cfapi_node_obj(a);
  if (enc == WR_CFAPI_YAML) wr_cfapi_node_put(o, "tunnel", wr_cfapi_tunnel_node(a, t, enc));
  wr_cfapi_node_put(o, "token", wr_cfapi_node_str(a, t->token));
  return o;
}

wr_cfapi_node *wr_cfapi_tunnels_node(wr_arena *a, const wr_cfapi_tunnels *l, wr_cfapi_enc enc) {
  /* A nil result slice is null in both encodings at the top level. */
  wr_cfapi_node *arr = l->is_null ? wr_cfapi_node_null(a) : wr_cfapi_node_arr(a);
  for (size_t i = 0; i < l->n; i++) wr_cfapi_node_push(arr, wr_cfapi_tunnel_node(a, &l->v[i], enc));
  return arr;
}

wr_cfapi_node *wr_cfapi_active_clients_node(wr_arena *a, const wr_cfapi_active_clients *l, wr_cfapi_enc enc) {
  wr_cfapi_node *arr = wr_cfapi_node_slice(a, l->is_null, enc);
  for (size_t i = 0; i < l->n; i++) {
    const wr_cfapi_active_client *c = &l->v[i];
    wr_cfapi_node *o = wr_cfapi_node_push(arr, wr_cfapi_node_obj(a));
    wr_cfapi_node_put(o, "id", wr_cfapi_node_uuid(a, &c->id));
    wr_cfapi_node *f = wr_cfapi_node_put(o, "features", wr_cfapi_node_slice(a, c->features_null, enc));
    for (size_t k = 0; k < c->nfeatures; k++) wr_cfapi_node_push(f, wr_cfapi_node_str(a, c->features[k]));
    wr_cfapi_node_put(o, "version", wr_cfapi_node_str(a, c->version));
    wr_cfapi_node_put(o, "arch", wr_cfapi_node_str(a, c->arch));
    wr_cfapi_node_put(o, KEY(enc, "run_at", "runat"), wr_cfapi_node_time(a, &c->run_at));
    wr_cfapi_node_put(o, KEY(enc, "conns", "connections"), conns_node(a, c->conns, c->nconns, c->conns_null, enc));
  }
  return arr;
}

/* ---- calls ------------------------------------------------------------------------------ */

/* …/cfd_tunnel[/<id>][<tail>]. Caller frees. */
static char *tunnel_path(const wr_cfapi_client *c, const wr_uuid *id, const char *tail) {
  char t[WR_UUID_STR_LEN + 64] = "/cfd_tunnel";
  if (id) {
    char s[WR_UUID_STR_LEN + 1];
    wr_uuid_format(id, s);
    snprintf(t, sizeof(t), "/cfd_tunnel/%s%s", s, tail);
  }
  return wr_cfapi_account_path(c, t);
}

static int dec_tunnels(const json_t *j, void *out, wr_cfapi_error *e) { return wr_cfapi_decode_tunnels(j, out, e); }
static int dec_clients(const json_t *j, void *out, wr_cfapi_error *e) {
  return wr_cfapi_decode_active_clients(j, out, e);
}

int wr_cfapi_create_tunnel(wr_cfapi_client *c, const char *name, const uint8_t *secret, size_t secret_len,
                           wr_cfapi_tunnel *out, wr_cfapi_error *e) {
  wr_uuid u;
  char why[128], b64[WR_BASE64_ENCODED_SIZE(WR_CRED_MAX_SECRET)];
  memset(out, 0, sizeof(*out));
  if (secret_len > WR_CRED_MAX_SECRET) {
    wr_cfapi_errorf(e, "the tunnel secret is longer than %d bytes", WR_CRED_MAX_SECRET);
    return WR_ERR_INVAL;
  }
  if (!*name) {
    wr_cfapi_errorf(e, "tunnel name required");
    return WR_ERR_INVAL;
  }
  if (wr_cfapi_uuid_parse(name, &u, why, sizeof(why)) == WR_OK) {
    wr_cfapi_errorf(e, "you cannot use UUIDs as tunnel names");
    return WR_ERR_INVAL;
  }
  wr_base64_encode(secret, secret_len, b64, sizeof(b64), 1);
  json_t *body = json_pack("{s:s,s:s}", "name", name, "tunnel_secret", b64);
  explicit_bzero(b64, sizeof(b64));
  char *path = tunnel_path(c, NULL, "");
  wr_cfapi_request rq = {"POST", path, NULL, body, "create tunnel", 1};
  int rv = wr__cfapi_call_one(c, &rq, &tunnel_type, out, e);
  if (rv != WR_OK && e->status == 409) {
    wr_cfapi_errorf(e, "tunnel with name already exists");
    e->status = 409;
  }
  json_decref(body);
  free(path);
  return rv;
}

int wr_cfapi_list_tunnels(wr_cfapi_client *c, const wr_cfapi_query *filter, wr_cfapi_tunnels *out,
                          wr_cfapi_error *e) {
  char *path = tunnel_path(c, NULL, "");
  memset(out, 0, sizeof(*out));
  int rv = wr__cfapi_list(c, path, filter, "list tunnels", dec_tunnels, out, e);
  free(path);
  return rv;
}

int wr_cfapi_get_tunnel(wr_cfapi_client *c, const wr_uuid *id, wr_cfapi_tunnel *out, wr_cfapi_error *e) {
  char *path = tunnel_path(c, id, "");
  wr_cfapi_request rq = {"GET", path, NULL, NULL, "get tunnel", 1};
  int rv = wr__cfapi_call_one(c, &rq, &tunnel_type, out, e);
  free(path);
  return rv;
}

int wr_cfapi_delete_tunnel(wr_cfapi_client *c, const wr_uuid *id, int cascade, wr_cfapi_error *e) {
  char *path = tunnel_path(c, id, "");
  wr_cfapi_request rq = {"DELETE", path, cascade ? "cascade=true" : NULL, NULL, "delete tunnel", 0};
  int rv = wr_cfapi_call(c, &rq, NULL, e);
  free(path);
  return rv;
}

int wr_cfapi_cleanup_connections(wr_cfapi_client *c, const wr_uuid *id, const wr_uuid *connector,
                                 wr_cfapi_error *e) {
  char cid[WR_UUID_STR_LEN + 1];
  char *path = tunnel_path(c, id, "/connections");
  wr_cfapi_query q = {0};
  if (connector) {
    wr_uuid_format(connector, cid);
    wr_cfapi_query_set(&q, "client_id", cid);
  }
  char *qs = wr_cfapi_query_encode(&q);
  wr_cfapi_request rq = {"DELETE", path, qs, NULL, "cleanup connections", 0};
  int rv = wr_cfapi_call(c, &rq, NULL, e);
  free(qs);
  wr_cfapi_query_free(&q);
  free(path);
  return rv;
}

int wr_cfapi_get_tunnel_token(wr_cfapi_client *c, const wr_uuid *id, char **token, wr_cfapi_error *e) {
  json_t *res = NULL;
  char *path = tunnel_path(c, id, "/token");
  wr_cfapi_request rq = {"GET", path, NULL, NULL, "get tunnel token", 1};
  *token = NULL;
  int rv = wr_cfapi_call(c, &rq, &res, e);
  free(path);
  if (rv == WR_OK && json_is_string(res)) {
    *token = wr_xstrdup(json_string_value(res));
  } else if (rv == WR_OK && json_is_null(res)) {
    wr_cfapi_errorf(e, "illegal base64 data at input byte 0");
    rv = WR_ERR_PROTO;
  } else if (rv == WR_OK) {
    /* Go names the JSON type; a bool reads as "number" here (a known
     * difference kept for byte-identical output). */
    wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "json: cannot unmarshal %s into Go value of type string",
                    json_is_object(res) ? "object" : json_is_array(res) ? "array" : "number");
    rv = WR_ERR_PROTO;
  }
  json_decref(res);
  return rv;
}

int wr_cfapi_get_management_token(wr_cfapi_client *c, const wr_uuid *id, char **token,
                                  wr_cfapi_error *e) {
  json_t *res = NULL, *body = json_pack("{s:[s]}", "resources", "logs");
  char *path = tunnel_path(c, id, "/management");
  wr_cfapi_request rq = {"POST", path, NULL, body, "get management token", 1};
  *token = NULL;
  int rv = wr_cfapi_call(c, &rq, &res, e);
  free(path);
  json_decref(body);
  if (rv == WR_OK && json_is_string(res) && json_string_length(res)) {
    *token = wr_xstrdup(json_string_value(res));
  } else if (rv == WR_OK) {
    wr_cfapi_errorf(e, WR__CFAPI_UNEXPECTED "the management token is not a string");
    rv = WR_ERR_PROTO;
  }
  json_decref(res);
  return rv;
}

int wr_cfapi_list_active_clients(wr_cfapi_client *c, const wr_uuid *id, wr_cfapi_active_clients *out,
                                 wr_cfapi_error *e) {
  char *path = tunnel_path(c, id, "/connections");
  wr_cfapi_request rq = {"GET", path, NULL, NULL, "list connection details", 1};
  memset(out, 0, sizeof(*out));
  int rv = wr__cfapi_call_decode(c, &rq, dec_clients, out, e);
  free(path);
  return rv;
}
