/* tunnelrpc.capnp (file 0xdb8274f9144abc7e): the interfaces cloudflared and
 * the edge call over Cap'n Proto RPC, and their params/results structs
 * (protocol.md 3.3, 3.4, 5.2, 5.3). Sans-I/O.
 *
 * Encoders fill a Payload started by wr_rpc_begin_call() or
 * wr_rpc_begin_return() (they create the content struct in the payload's
 * pointer 0, allocating in the same order as cloudflared's Go code, so the
 * bytes match); the caller then calls wr_rpc_end_payload(). They return 0
 * or the builder's sticky error (WR_ERR_NOMEM, WR_ERR_LIMIT, WR_ERR_INVAL).
 * Empty Text is written as a null pointer (Go's SetText("")); Data with a
 * NULL pointer is written as null, non-NULL with length 0 as an empty list.
 *
 * Decoders read a wr_rpc_payload from a decoded Call or Return. Strings and
 * data point into the message buffer (Text is NUL-terminated there; absent
 * Text reads as "" and absent Data as NULL/0). They return 0, WR_ERR_PROTO
 * (content is not a struct, wrong pointer kinds, Text without NUL, unknown
 * union tag), WR_ERR_BOUNDS, or WR_ERR_LIMIT (traversal/depth limits, more
 * than WR_TUNNELRPC_MAX_FEATURES features). A null content reads as an
 * all-default struct, as in Go. Lengths of Data fields (tunnel/session IDs,
 * IPs) are not checked here: that is the method layer's decision.
 * A failed decode leaves the error sticky in the underlying message (see
 * capnp.h), so later reads of that message fail too: to try another reader
 * (e.g. when the answer's method is unknown), decode the message again. */
#ifndef WR_TUNNELRPC_H
#define WR_TUNNELRPC_H
#include <stddef.h>
#include <stdint.h>

#include "proto/capnp.h"
#include "proto/rpc.h"

/* Interface IDs. Calls carry the *declaring* interface's ID. */
#define WR_TUNNELRPC_REGISTRATION_SERVER 0xf71695ec7fe85497ull
#define WR_TUNNELRPC_TUNNEL_SERVER 0xea58385c65416035ull /* legacy, extends the above */
#define WR_TUNNELRPC_SESSION_MANAGER 0x839445a59fb01686ull
#define WR_TUNNELRPC_CONFIGURATION_MANAGER 0xb48edfbdaa25db04ull
#define WR_TUNNELRPC_CLOUDFLARED_SERVER 0xf548cef9dea2a4a1ull /* no own methods */

/* Method IDs. */
enum {
  WR_TUNNELRPC_REGISTER_CONNECTION = 0,      /* RegistrationServer */
  WR_TUNNELRPC_UNREGISTER_CONNECTION = 1,
  WR_TUNNELRPC_UPDATE_LOCAL_CONFIGURATION = 2,
  WR_TUNNELRPC_REGISTER_UDP_SESSION = 0,     /* SessionManager */
  WR_TUNNELRPC_UNREGISTER_UDP_SESSION = 1,
  WR_TUNNELRPC_UPDATE_CONFIGURATION = 0      /* ConfigurationManager */
};

/* One value for each (interface, method) pair this module knows. */
enum wr_tunnelrpc_method {
  WR_TUNNELRPC_M_REGISTER_CONNECTION = 1,
  WR_TUNNELRPC_M_UNREGISTER_CONNECTION,
  WR_TUNNELRPC_M_UPDATE_LOCAL_CONFIGURATION,
  WR_TUNNELRPC_M_REGISTER_UDP_SESSION,
  WR_TUNNELRPC_M_UNREGISTER_UDP_SESSION,
  WR_TUNNELRPC_M_UPDATE_CONFIGURATION
};

/* Exact lookup, as the Go server's sorted method table does (no "extends"
 * aliasing). Returns an enum wr_tunnelrpc_method or WR_ERR_NOTFOUND. */
int wr_tunnelrpc_method_lookup(uint64_t interface_id, uint16_t method_id);
/* "registerConnection", ... or "unknown". */
const char *wr_tunnelrpc_method_name(int method);

#define WR_TUNNELRPC_MAX_FEATURES 64

typedef struct wr_tunnelrpc_text {
  const char *ptr;
  size_t len;
} wr_tunnelrpc_text;

/* ---- RegistrationServer.registerConnection (method 0) ------------------ */

typedef struct wr_tunnelrpc_client_info {   /* ClientInfo {0,4} */
  const uint8_t *client_id;  /* 16 bytes: the connector ID */
  size_t client_id_len;
  wr_tunnelrpc_text features[WR_TUNNELRPC_MAX_FEATURES];
  size_t nfeatures;
  const char *version;
  size_t version_len;
  const char *arch;
  size_t arch_len;
} wr_tunnelrpc_client_info;

typedef struct wr_tunnelrpc_register_params { /* params {8,3} */
  /* auth: TunnelAuth {0,2} */
  const char *account_tag;
  size_t account_tag_len;
  const uint8_t *tunnel_secret;
  size_t tunnel_secret_len;
  const uint8_t *tunnel_id;  /* 16 raw bytes */
  size_t tunnel_id_len;
  uint8_t conn_index;
  /* options: ConnectionOptions {8,2} */
  wr_tunnelrpc_client_info client;
  const uint8_t *origin_local_ip; /* 4 or 16 bytes */
  size_t origin_local_ip_len;
  int replace_existing;
  uint8_t compression_quality;
  uint8_t num_previous_attempts;
} wr_tunnelrpc_register_params;

/* ConnectionResponse.result */
enum { WR_TUNNELRPC_CONN_ERROR = 0, WR_TUNNELRPC_CONN_DETAILS = 1 };

typedef struct wr_tunnelrpc_conn_response {
  uint16_t which; /* WR_TUNNELRPC_CONN_ERROR or _DETAILS */
  struct {        /* ConnectionError {16,1} */
    const char *cause;       /* "EDUPCONN": already connected to this server */
    size_t cause_len;
    int64_t retry_after_ns;
    int should_retry;
  } error;
  struct {        /* ConnectionDetails {8,2} */
    const uint8_t *uuid;     /* 16 bytes */
    size_t uuid_len;
    const char *location;
    size_t location_len;
    int remotely_managed;
  } details;
} wr_tunnelrpc_conn_response;

int wr_tunnelrpc_register_params_encode(wr_capnp_bstruct *payload,
                                        const wr_tunnelrpc_register_params *p);
/* Also WR_ERR_INVAL from the encoder: nfeatures > WR_TUNNELRPC_MAX_FEATURES. */
int wr_tunnelrpc_register_params_decode(const wr_rpc_payload *payload,
                                        wr_tunnelrpc_register_params *out);
/* results {0,1}: result ConnectionResponse {8,1}. An unknown r->which is
 * WR_ERR_INVAL when encoding and WR_ERR_PROTO when decoding. */
int wr_tunnelrpc_register_results_encode(wr_capnp_bstruct *payload,
                                         const wr_tunnelrpc_conn_response *r);
int wr_tunnelrpc_register_results_decode(const wr_rpc_payload *payload,
                                         wr_tunnelrpc_conn_response *out);

/* ---- Empty params/results ----------------------------------------------
 * unregisterConnection params and results, updateLocalConfiguration results,
 * unregisterUdpSession results: a {0,0} struct, written as the canonical
 * zero-sized pointer. The decoder only checks the content is a struct. */
int wr_tunnelrpc_empty_encode(wr_capnp_bstruct *payload);
int wr_tunnelrpc_empty_decode(const wr_rpc_payload *payload);

/* ---- updateLocalConfiguration (method 2) params {0,1}: config Data ----- */
int wr_tunnelrpc_local_config_encode(wr_capnp_bstruct *payload, const uint8_t *config,
                                     size_t len);
int wr_tunnelrpc_local_config_decode(const wr_rpc_payload *payload, const uint8_t **config,
                                     size_t *len);

/* ---- SessionManager.registerUdpSession (method 0) ---------------------- */

typedef struct wr_tunnelrpc_udp_register_params { /* params {16,3} */
  const uint8_t *session_id;  /* 16 raw UUID bytes */
  size_t session_id_len;
  const uint8_t *dst_ip;      /* 4 or 16 bytes */
  size_t dst_ip_len;
  uint16_t dst_port;
  int64_t close_after_idle_ns; /* 0: the connector's default (210 s) */
  const char *trace_context;
  size_t trace_context_len;
} wr_tunnelrpc_udp_register_params;

typedef struct wr_tunnelrpc_udp_register_results { /* RegisterUdpSessionResponse {0,2} */
  const char *err;            /* "" on success */
  size_t err_len;
  const uint8_t *spans;       /* OTLP protobuf, may be NULL */
  size_t spans_len;
} wr_tunnelrpc_udp_register_results;

int wr_tunnelrpc_udp_register_params_encode(wr_capnp_bstruct *payload,
                                            const wr_tunnelrpc_udp_register_params *p);
int wr_tunnelrpc_udp_register_params_decode(const wr_rpc_payload *payload,
                                            wr_tunnelrpc_udp_register_params *out);
int wr_tunnelrpc_udp_register_results_encode(wr_capnp_bstruct *payload,
                                             const wr_tunnelrpc_udp_register_results *r);
int wr_tunnelrpc_udp_register_results_decode(const wr_rpc_payload *payload,
                                             wr_tunnelrpc_udp_register_results *out);

/* ---- SessionManager.unregisterUdpSession (method 1) params {0,2} ------- */

typedef struct wr_tunnelrpc_udp_unregister_params {
  const uint8_t *session_id;
  size_t session_id_len;
  const char *message;        /* reason, e.g. "session idle for 3m30s" */
  size_t message_len;
} wr_tunnelrpc_udp_unregister_params;

int wr_tunnelrpc_udp_unregister_params_encode(wr_capnp_bstruct *payload,
                                              const wr_tunnelrpc_udp_unregister_params *p);
int wr_tunnelrpc_udp_unregister_params_decode(const wr_rpc_payload *payload,
                                              wr_tunnelrpc_udp_unregister_params *out);

/* ---- ConfigurationManager.updateConfiguration (method 0) --------------- */

typedef struct wr_tunnelrpc_config_params { /* params {8,1} */
  int32_t version;
  const uint8_t *config;      /* UTF-8 JSON */
  size_t config_len;
} wr_tunnelrpc_config_params;

typedef struct wr_tunnelrpc_config_results { /* UpdateConfigurationResponse {8,1} */
  int32_t latest_applied_version;
  const char *err;
  size_t err_len;
} wr_tunnelrpc_config_results;

int wr_tunnelrpc_config_params_encode(wr_capnp_bstruct *payload,
                                      const wr_tunnelrpc_config_params *p);
int wr_tunnelrpc_config_params_decode(const wr_rpc_payload *payload,
                                      wr_tunnelrpc_config_params *out);
int wr_tunnelrpc_config_results_encode(wr_capnp_bstruct *payload,
                                       const wr_tunnelrpc_config_results *r);
int wr_tunnelrpc_config_results_decode(const wr_rpc_payload *payload,
                                       wr_tunnelrpc_config_results *out);

#endif
