/* The connector side of the control stream (protocol.md 0.1, 3.2): on a
 * QUIC client connection it opens bidi stream 0 and sends, exactly like
 * cloudflared 2023.7.3, Bootstrap + a pipelined
 * RegistrationServer.registerConnection(TunnelAuth, tunnelId, connIndex,
 * ConnectionOptions{ClientInfo{connector id, features, version, arch},
 * originLocalIp, replaceExisting, numPreviousAttempts}). On success it
 * pushes updateLocalConfiguration(JSON) when connIndex is 0 and the tunnel
 * is not remotely managed; on a refusal it closes the RPC session (Release,
 * Abort "rpc: shutdown", FIN). wr_registration_unregister() runs the
 * graceful-shutdown call.
 *
 * The QUIC connection belongs to the caller, who forwards the control
 * stream's events: wr_registration_stream_data() from on_stream_data (it
 * returns 0 without doing anything for other stream ids). Callbacks must not
 * free the registration; free it after they return (e.g. on the next loop
 * iteration or from the connection's on_close). */
#ifndef WR_CONNECTOR_REGISTRATION_H
#define WR_CONNECTOR_REGISTRATION_H
#include <stddef.h>
#include <stdint.h>

#include "lib/credentials.h"
#include "lib/encoding.h"
#include "net/quic.h"

#define WR_REGISTRATION_MAX_CONFIG (1u << 20) /* local config JSON */
#define WR_REGISTRATION_MAX_EXTRA_FEATURES 16

typedef struct wr_registration wr_registration;

typedef struct wr_registration_result {
  int ok;                           /* 1: registered */
  /* success */
  wr_uuid conn_uuid;
  char conn_id[WR_UUID_STR_LEN + 1];
  char location[64];
  int remotely_managed;
  /* failure: ConnectionError, or an RPC/stream failure (rpc_error = 1,
   * which cloudflared treats as permanent) */
  char cause[256];
  int should_retry;
  int64_t retry_after_ns;
  int rpc_error;
  int dup_conn;                     /* cause was "EDUPCONN" */
} wr_registration_result;

typedef struct wr_registration_config {
  const wr_credentials *cred;       /* required (copied) */
  wr_uuid connector_id;             /* ClientInfo.clientId */
  uint8_t conn_index;
  uint8_t num_previous_attempts;
  int replace_existing;             /* --force */
  const char *version;              /* NULL: WR_VERSION */
  const char *arch;                 /* NULL: from uname, e.g. "linux_amd64" */
  /* --features values added to the defaults (copied); duplicates and the
   * deprecated support_datagram_v3 / support_datagram_v3_1 are left out. */
  const char *const *extra_features;
  size_t nextra_features;
  /* originLocalIp (4 or 16 bytes). NULL: the edge's address, 16-byte form,
   * as cloudflared does over QUIC. */
  const uint8_t *origin_local_ip;
  size_t origin_local_ip_len;
  /* updateLocalConfiguration payload (copied); NULL: not sent. */
  const char *local_config;
  size_t local_config_len;
  void (*on_registered)(wr_registration *r, void *user, const wr_registration_result *res);
  /* The unregisterConnection answer arrived (ok = 1) or failed (ok = 0). */
  void (*on_unregistered)(wr_registration *r, void *user, int ok);
  /* updateLocalConfiguration answered (ok = 1) or failed. May be NULL. */
  void (*on_config_pushed)(wr_registration *r, void *user, int ok);
  void *user;
  /* A control stream that is not QUIC stream 0 (HTTP/2, protocol.md 7.2:
   * the edge's control-stream request; our RPC bytes are its response
   * body). With io_write set, wr_registration_start takes no QUIC
   * connection, the RPC bytes go to io_write / io_fin and the edge's come
   * in through wr_registration_input. origin_local_ip should be given. */
  int (*io_write)(void *io, const uint8_t *data, size_t len); /* WR_OK or an error */
  void (*io_fin)(void *io);
  void *io;
  const char *protocol; /* the log line's protocol=; NULL: "quic" */
} wr_registration_config;

/* Opens the control stream on |c| and sends Bootstrap + registerConnection.
 * Returns WR_OK, WR_ERR_INVAL (bad config), WR_ERR_LIMIT (config too large)
 * or a stream/RPC error. */
int wr_registration_start(wr_quic_conn *c, const wr_registration_config *cfg,
                          wr_registration **out);
/* Forward on_stream_data here. Returns 0 (also for other streams) or a
 * fatal error (the registration then reports failure if still pending). */
int wr_registration_stream_data(wr_registration *r, int64_t sid, const uint8_t *data, size_t len,
                                int fin);
/* The edge's RPC bytes on a control stream of io_write (see above). Returns
 * as wr_registration_stream_data. */
int wr_registration_input(wr_registration *r, const uint8_t *data, size_t len, int fin);
/* The stream id of the control stream. */
int64_t wr_registration_stream_id(const wr_registration *r);
/* Graceful shutdown: unregisterConnection(); when it is answered (or
 * fails), Release + Abort + FIN and on_unregistered. Returns WR_OK,
 * WR_ERR_INVAL (not registered / already closed) or an RPC error. */
int wr_registration_unregister(wr_registration *r);
/* Immediate close of the RPC session (Release, Abort, FIN), e.g. when the
 * grace period is over. Idempotent. */
void wr_registration_close(wr_registration *r);
/* 1 while registered and not unregistered. */
int wr_registration_is_registered(const wr_registration *r);
/* The edge's address as the connection lines give it (ip=, as cloudflared
 * writes it) into |out| (INET6_ADDRSTRLEN bytes suffice); "" when unknown.
 * Callable from the registration's callbacks. */
void wr_registration_edge_ip(const wr_registration *r, char *out, size_t outlen);
/* Frees; sends nothing. NULL is a no-op. */
void wr_registration_free(wr_registration *r);

/* "linux_amd64" style GOOS_GOARCH of this machine. */
void wr_registration_arch(char *out, size_t outlen);
/* The feature that selects datagram v3 (protocol.md 6.6). */
#define WR_FEATURE_DATAGRAM_V3_2 "support_datagram_v3_2"
#define WR_FEATURE_MANAGEMENT_LOGS "management_logs"
/* 1 if |features| (the --features values) select datagram v3, as
 * cloudflared HEAD's features.datagramVersion() with no remote record:
 * support_datagram_v3_2 among them. The list sent at registration is then
 * the defaults (support_datagram_v2 included, as HEAD sends it) plus
 * support_datagram_v3_2; support_datagram_v3 and support_datagram_v3_1
 * are never sent. */
int wr_registration_datagram_v3(const char *const *features, size_t n);
/* The features cloudflared 2023.7.3 always sends. NULL-terminated. */
extern const char *const wr_registration_default_features[];

#endif
