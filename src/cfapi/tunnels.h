/* Tunnels (cloudflare-api.md §2.5, §2.6.1): cfapi.Tunnel, Connection and
 * ActiveClient, their decoders and JSON/YAML shapes, and the calls under
 * /accounts/{account}/cfd_tunnel.
 *
 * Ownership: a decoded value owns its strings and arrays; free it with
 * the matching *_free (safe on a zeroed value and after a failed decode,
 * which leaves the value zeroed). Lists carry |is_null| for a JSON null
 * (Go's nil slice), which prints differently from [].
 *
 * Failures: calls return what wr_cfapi_call returns (client.h); decoders
 * return WR_OK or WR_ERR_PROTO with "the Cloudflare API response was an
 * unexpected type: <Go's reason>" in |e|. */
#ifndef WR_CFAPI_TUNNELS_H
#define WR_CFAPI_TUNNELS_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cfapi/client.h"
#include "cfapi/render.h"
#include "cfapi/time.h"
#include "cfapi/values.h"
#include "lib/encoding.h"

typedef struct wr_cfapi_conn {   /* cfapi.Connection */
  char *colo_name;
  wr_uuid id;
  int pending;                   /* is_pending_reconnect */
  wr_cfapi_ip origin_ip;
  wr_cfapi_time opened_at;
} wr_cfapi_conn;

typedef struct wr_cfapi_tunnel { /* cfapi.Tunnel (+ TunnelWithToken's token) */
  wr_uuid id;
  char *name;
  wr_cfapi_time created_at, deleted_at;
  wr_cfapi_conn *conns;
  size_t nconns;
  int conns_null;                /* JSON null or absent (Go: nil slice) */
  char *token;                   /* create only: "" if absent */
} wr_cfapi_tunnel;

typedef struct wr_cfapi_tunnels {
  wr_cfapi_tunnel *v;
  size_t n;
  int is_null;
} wr_cfapi_tunnels;

typedef struct wr_cfapi_active_client { /* cfapi.ActiveClient, a connector */
  wr_uuid id;
  char **features;
  size_t nfeatures;
  int features_null;
  char *version, *arch;
  wr_cfapi_time run_at;
  wr_cfapi_conn *conns;
  size_t nconns;
  int conns_null;
} wr_cfapi_active_client;

typedef struct wr_cfapi_active_clients {
  wr_cfapi_active_client *v;
  size_t n;
  int is_null;
} wr_cfapi_active_clients;

/* ---- decoding (Go's encoding/json rules, decode_int.h) ------------------- */

int wr_cfapi_decode_tunnel(const json_t *j, wr_cfapi_tunnel *t, wr_cfapi_error *e);
int wr_cfapi_decode_tunnels(const json_t *j, wr_cfapi_tunnels *out, wr_cfapi_error *e);
int wr_cfapi_decode_active_clients(const json_t *j, wr_cfapi_active_clients *out, wr_cfapi_error *e);
void wr_cfapi_tunnel_free(wr_cfapi_tunnel *t);
void wr_cfapi_tunnels_free(wr_cfapi_tunnels *l);
void wr_cfapi_active_clients_free(wr_cfapi_active_clients *l);

/* ---- shapes for -o json / -o yaml (render.h) ------------------------------ */

/* A Tunnel: id, name, created_at, deleted_at, connections. */
wr_cfapi_node *wr_cfapi_tunnel_node(wr_arena *a, const wr_cfapi_tunnel *t, wr_cfapi_enc enc);
/* A TunnelWithToken: the Tunnel's fields and token (in YAML, yaml.v3 nests
 * the embedded struct under "tunnel"). */
wr_cfapi_node *wr_cfapi_tunnel_with_token_node(wr_arena *a, const wr_cfapi_tunnel *t, wr_cfapi_enc enc);
/* []*Tunnel (null for a nil slice in JSON). */
wr_cfapi_node *wr_cfapi_tunnels_node(wr_arena *a, const wr_cfapi_tunnels *l, wr_cfapi_enc enc);
/* []*ActiveClient. */
wr_cfapi_node *wr_cfapi_active_clients_node(wr_arena *a, const wr_cfapi_active_clients *l, wr_cfapi_enc enc);

/* ---- calls ----------------------------------------------------------------- */

/* CreateTunnel: POST …/cfd_tunnel {"name","tunnel_secret": base64(secret)}.
 * Refuses an empty name ("tunnel name required") and a name that parses as
 * a UUID ("you cannot use UUIDs as tunnel names") without a request, and
 * turns a 409 into "tunnel with name already exists". |secret_len| is at
 * most WR_CRED_MAX_SECRET (lib/credentials.h). *out (with the optional
 * token) is owned by the caller on success. */
int wr_cfapi_create_tunnel(wr_cfapi_client *c, const char *name, const uint8_t *secret, size_t secret_len,
                           wr_cfapi_tunnel *out, wr_cfapi_error *e);
/* ListTunnels: GET …/cfd_tunnel?<filter>. Filters cloudflared sends:
 * is_deleted, name, name_prefix, exclude_prefix, existed_at, uuid,
 * per_page. One request (2023.7.3 does not page). */
int wr_cfapi_list_tunnels(wr_cfapi_client *c, const wr_cfapi_query *filter, wr_cfapi_tunnels *out,
                          wr_cfapi_error *e);
/* GetTunnel: GET …/cfd_tunnel/{id}. */
int wr_cfapi_get_tunnel(wr_cfapi_client *c, const wr_uuid *id, wr_cfapi_tunnel *out, wr_cfapi_error *e);
/* DeleteTunnel: DELETE …/cfd_tunnel/{id}[?cascade=true]; any 200 without
 * errors[] is success. */
int wr_cfapi_delete_tunnel(wr_cfapi_client *c, const wr_uuid *id, int cascade, wr_cfapi_error *e);
/* CleanupConnections: DELETE …/cfd_tunnel/{id}/connections[?client_id=…]
 * (|connector| NULL: all of them). */
int wr_cfapi_cleanup_connections(wr_cfapi_client *c, const wr_uuid *id, const wr_uuid *connector,
                                 wr_cfapi_error *e);
/* GetTunnelToken: GET …/cfd_tunnel/{id}/token, a JSON string. *token
 * (caller frees and should wipe) on success. A null result reads as
 * Go's "", which the token decoder refuses: "illegal base64 data at input
 * byte 0"; another type is an unexpected type. */
int wr_cfapi_get_tunnel_token(wr_cfapi_client *c, const wr_uuid *id, char **token, wr_cfapi_error *e);
/* GetManagementToken (cloudflared 2023.7.3, `tail`): POST
 * …/cfd_tunnel/{id}/management with {"resources":["logs"]}; the result is
 * a JSON string, the management token. *token is the caller's. */
int wr_cfapi_get_management_token(wr_cfapi_client *c, const wr_uuid *id, char **token,
                                  wr_cfapi_error *e);
/* ListActiveClients: GET …/cfd_tunnel/{id}/connections. */
int wr_cfapi_list_active_clients(wr_cfapi_client *c, const wr_uuid *id, wr_cfapi_active_clients *out,
                                 wr_cfapi_error *e);

#endif
