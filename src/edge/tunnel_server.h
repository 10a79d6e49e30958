/* The edge side of connector connections (protocol.md 0.1, 3): on every
 * accepted QUIC connection the client's bidi stream 0 is the control stream,
 * served by an RPC session whose bootstrap capability is a
 * RegistrationServer:
 *   registerConnection  checks accountTag + tunnelSecret (constant time) +
 *                       tunnelId against the store; refusals are a
 *                       ConnectionResponse.error with a readable cause and
 *                       shouldRetry = false; success is ConnectionDetails
 *                       (fresh connection uuid, the configured location,
 *                       tunnelIsRemotelyManaged from the tunnel), a
 *                       wr_store_conn_open and an audit row "Registered".
 *   unregisterConnection wr_store_conn_close + audit "Unregistered"; the
 *                       connection stops being routable.
 *   updateLocalConfiguration  logged (the store has no config table yet).
 * Losing the QUIC connection (or the control stream ending) closes a
 * still-registered connection the same way.
 *
 * The server keeps a registry of live, registered connections per tunnel
 * for routing visitors. Everything runs on the libuv loop thread, including
 * the (synchronous) store calls. */
#ifndef WR_EDGE_TUNNEL_SERVER_H
#define WR_EDGE_TUNNEL_SERVER_H
#include <stddef.h>
#include <stdint.h>

#include "edge/store.h"
#include "net/quic.h"

#define WR_TUNNEL_SERVER_LOCATION_DEFAULT "LOCAL"
#define WR_TUNNEL_SERVER_ACTOR_DEFAULT "edge"
/* Audit actions written for connection registration. */
#define WR_TUNNEL_SERVER_AUDIT_REGISTERED "Registered"
#define WR_TUNNEL_SERVER_AUDIT_UNREGISTERED "Unregistered"

typedef struct wr_tunnel_server wr_tunnel_server;

typedef struct wr_tunnel_server_config {
  wr_store *store;       /* required; used on the loop thread */
  const char *location;  /* ConnectionDetails.locationName; default "LOCAL" */
  const char *actor;     /* audit actor; default "edge" */
} wr_tunnel_server_config;

/* What the registry tells about one live registered connection. */
typedef struct wr_tunnel_conn_info {
  char conn_id[WR_STORE_UUID_LEN + 1];
  char tunnel_id[WR_STORE_UUID_LEN + 1];
  char client_id[WR_STORE_UUID_LEN + 1];
  unsigned conn_index;
  wr_quic_conn *quic;    /* for opening data/RPC streams */
} wr_tunnel_conn_info;

/* Returns WR_OK, WR_ERR_INVAL (no store) or WR_ERR_NOMEM. Strings are copied. */
int wr_tunnel_server_new(const wr_tunnel_server_config *cfg, wr_tunnel_server **out);
/* Closes (in the store) every still-registered connection and frees the
 * server. Call wr_quic_endpoint_free() on the endpoint first (it delivers no
 * more callbacks after that); the server does not touch the QUIC
 * connections here. */
void wr_tunnel_server_free(wr_tunnel_server *ts);

/* For wr_quic_endpoint_server(loop, tls, cfg, addr,
 * wr_tunnel_server_quic_callbacks(), wr_tunnel_server_on_accept, ts, &ep). */
const wr_quic_callbacks *wr_tunnel_server_quic_callbacks(void);
void wr_tunnel_server_on_accept(wr_quic_endpoint *ep, wr_quic_conn *c, void *ts);
/* The same in one call. Returns what wr_quic_endpoint_server returns. */
int wr_tunnel_server_listen(wr_tunnel_server *ts, uv_loop_t *loop, wr_quic_tls *tls,
                            const wr_quic_config *cfg, const struct sockaddr *addr,
                            wr_quic_endpoint **out);

/* Registry: number of live registered connections of |tunnel_id| (any case;
 * NULL: all tunnels), and the |i|th of them (oldest first). Returns WR_OK
 * or WR_ERR_NOTFOUND. */
size_t wr_tunnel_server_count(const wr_tunnel_server *ts, const char *tunnel_id);
int wr_tunnel_server_get(const wr_tunnel_server *ts, const char *tunnel_id, size_t i,
                         wr_tunnel_conn_info *out);

#endif
