/* RPC streams on a registered QUIC connection (protocol.md 5.1-5.3), as
 * cloudflared 2023.7.3 handles them (connection/quic.go handleRPCStream,
 * closeUDPSession; tunnelrpc/pogs sessionrpc.go, configurationrpc.go):
 *
 *  - Edge-opened: after the 6-byte RPC signature the connector serves a
 *    Cap'n Proto RPC session whose bootstrap capability is
 *    CloudflaredServer: SessionManager (registerUdpSession,
 *    unregisterUdpSession) and ConfigurationManager (updateConfiguration).
 *    Registration failures are answered in RegisterUdpSessionResponse.err;
 *    undecodable params (a session id that is not 16 bytes: "invalid UUID
 *    (got N bytes)", a null dstIp: "[] is not valid IP") as RPC exceptions,
 *    as the Go server does. It serves until the edge aborts or ends the
 *    stream, then FINs its side.
 *  - Connector-opened (wr_proxy_unregister_udp): a UDP session that ended
 *    on the connector's side is reported to the edge on a new stream:
 *    signature, Bootstrap + pipelined unregisterUdpSession(id, reason),
 *    then, after the answer, Release + Abort("rpc: shutdown") and FIN.
 *    cloudflared gives up after 5 s (--udp-unregister-session-timeout);
 *    this connector has no such timeout yet: a stream the edge never
 *    answers stays open until the connection goes.
 *
 * The services are the connector's (UDP sessions, remote configuration);
 * the proxy (connector/proxy.h) owns the streams and calls them. */
#ifndef WR_CONNECTOR_RPC_SERVER_H
#define WR_CONNECTOR_RPC_SERVER_H
#include <stddef.h>
#include <stdint.h>

#include "net/quic.h"
#include "proto/tunnelrpc.h"

#define WR_RPC_ERR_MAX 512

/* What the CloudflaredServer capability does. A NULL callback answers the
 * call with an exception ("... is not supported by this connector"). */
typedef struct wr_rpc_services {
  /* registerUdpSession on |qc| (params decoded, session id 16 bytes, dstIp
   * present). Returns WR_OK, or an error with the text for
   * RegisterUdpSessionResponse.err in |err|. */
  int (*register_udp)(void *user, wr_quic_conn *qc, const wr_tunnelrpc_udp_register_params *p,
                      char *err, size_t errlen);
  /* unregisterUdpSession from the edge (|id| 16 bytes). Returns WR_OK, or
   * an error whose text in |err| the edge gets as the RPC exception (as a
   * Go handler returning an error). */
  int (*unregister_udp)(void *user, wr_quic_conn *qc, const uint8_t *id, const char *message,
                        char *err, size_t errlen);
  void *udp_user;
  /* updateConfiguration: returns latestAppliedVersion; |err| "" on success
   * (or when the version was not newer), else why it was refused. */
  int32_t (*update_config)(void *user, int32_t version, const uint8_t *json, size_t len,
                           char *err, size_t errlen);
  void *config_user;
} wr_rpc_services;

#endif
