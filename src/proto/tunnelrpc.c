/* tunnelrpc params/results codec: see tunnelrpc.h.
 *
 * Allocation order in the encoders follows cloudflared's pogs marshalling
 * (the tunnelrpc/pogs package), so encoded messages are byte-identical to the Go
 * ones (checked against golden-encodings.md in tests/unit/test_tunnelrpc.c). */
#include "proto/tunnelrpc.h"

#include <string.h>

#include "lib/err.h"

static const struct {
  uint64_t iface;
  uint16_t method;
  int id;
  const char *name;
} methods[] = {
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_REGISTER_CONNECTION,
     WR_TUNNELRPC_M_REGISTER_CONNECTION, "registerConnection"},
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UNREGISTER_CONNECTION,
     WR_TUNNELRPC_M_UNREGISTER_CONNECTION, "unregisterConnection"},
    {WR_TUNNELRPC_REGISTRATION_SERVER, WR_TUNNELRPC_UPDATE_LOCAL_CONFIGURATION,
     WR_TUNNELRPC_M_UPDATE_LOCAL_CONFIGURATION, "updateLocalConfiguration"},
    {WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_REGISTER_UDP_SESSION,
     WR_TUNNELRPC_M_REGISTER_UDP_SESSION, "registerUdpSession"},
    {WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_UNREGISTER_UDP_SESSION,
     WR_TUNNELRPC_M_UNREGISTER_UDP_SESSION, "unregisterUdpSession"},
    {WR_TUNNELRPC_CONFIGURATION_MANAGER, WR_TUNNELRPC_UPDATE_CONFIGURATION,
     WR_TUNNELRPC_M_UPDATE_CONFIGURATION, "updateConfiguration"},
};

int wr_tunnelrpc_method_lookup(uint64_t interface_id, uint16_t method_id) {
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    if (methods[i].iface == interface_id && methods[i].method == method_id) return methods[i].id;
  return WR_ERR_NOTFOUND;
}

const char *wr_tunnelrpc_method_name(int method) {
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    if (methods[i].id == method) return methods[i].name;
  return "unknown";
}

/* The params/results struct of a payload. */
static int content(const wr_rpc_payload *p, wr_capnp_struct *out) {
  if (p->content_kind != WR_CAPNP_PTR_STRUCT && p->content_kind != WR_CAPNP_PTR_NULL)
    return WR_ERR_PROTO;
  *out = p->content;
  return WR_OK;
}

/* ---- registerConnection ------------------------------------------------ */

static int decode_client_info(const wr_capnp_struct *s, wr_tunnelrpc_client_info *c) {
  wr_capnp_list f;
  int rv;
  if ((rv = wr_capnp_get_data(s, 0, &c->client_id, &c->client_id_len)) != 0) return rv;
  if ((rv = wr_capnp_get_list(s, 1, &f)) != 0) return rv;
  if (f.count > WR_TUNNELRPC_MAX_FEATURES) return WR_ERR_LIMIT;
  for (uint32_t i = 0; i < f.count; i++)
    if ((rv = wr_capnp_list_text(&f, i, &c->features[i].ptr, &c->features[i].len)) != 0)
      return rv;
  c->nfeatures = f.count;
  if ((rv = wr_capnp_get_text(s, 2, &c->version, &c->version_len)) != 0) return rv;
  return wr_capnp_get_text(s, 3, &c->arch, &c->arch_len);
}

int wr_tunnelrpc_register_params_decode(const wr_rpc_payload *payload,
                                        wr_tunnelrpc_register_params *out) {
  wr_capnp_struct c, auth, opts, client;
  int rv;
  memset(out, 0, sizeof(*out));
  if ((rv = content(payload, &c)) != 0) return rv;
  out->conn_index = wr_capnp_u8(&c, 0);
  if ((rv = wr_capnp_get_struct(&c, 0, &auth)) != 0 ||
      (rv = wr_capnp_get_text(&auth, 0, &out->account_tag, &out->account_tag_len)) != 0 ||
      (rv = wr_capnp_get_data(&auth, 1, &out->tunnel_secret, &out->tunnel_secret_len)) != 0 ||
      (rv = wr_capnp_get_data(&c, 1, &out->tunnel_id, &out->tunnel_id_len)) != 0 ||
      (rv = wr_capnp_get_struct(&c, 2, &opts)) != 0 ||
      (rv = wr_capnp_get_struct(&opts, 0, &client)) != 0 ||
      (rv = decode_client_info(&client, &out->client)) != 0 ||
      (rv = wr_capnp_get_data(&opts, 1, &out->origin_local_ip, &out->origin_local_ip_len)) != 0)
    return rv;
  out->replace_existing = wr_capnp_bool(&opts, 0);
  out->compression_quality = wr_capnp_u8(&opts, 1);
  out->num_previous_attempts = wr_capnp_u8(&opts, 2);
  return WR_OK;
}

int wr_tunnelrpc_register_params_encode(wr_capnp_bstruct *payload,
                                        const wr_tunnelrpc_register_params *p) {
  wr_capnp_builder *b = payload->b;
  wr_capnp_bstruct c, auth, opts, client;
  wr_capnp_blist f;
  if (b->err) return b->err;
  if (p->client.nfeatures > WR_TUNNELRPC_MAX_FEATURES) return b->err = WR_ERR_INVAL;
  /* pogs: NewAuth + marshal, SetTunnelId, SetConnIndex, NewOptions:
   * NewClient (clientId, features, version, arch), originLocalIp, flags. */
  if (wr_capnp_new_struct(payload, 0, 1, 3, &c) != 0 ||
      wr_capnp_new_struct(&c, 0, 0, 2, &auth) != 0 ||
      wr_capnp_set_text(&auth, 0, p->account_tag, p->account_tag_len) != 0 ||
      wr_capnp_set_data(&auth, 1, p->tunnel_secret, p->tunnel_secret_len) != 0 ||
      wr_capnp_set_data(&c, 1, p->tunnel_id, p->tunnel_id_len) != 0)
    return b->err;
  wr_capnp_set_u8(&c, 0, p->conn_index);
  if (wr_capnp_new_struct(&c, 2, 1, 2, &opts) != 0 ||
      wr_capnp_new_struct(&opts, 0, 0, 4, &client) != 0 ||
      wr_capnp_set_data(&client, 0, p->client.client_id, p->client.client_id_len) != 0 ||
      wr_capnp_new_pointer_list(&client, 1, (uint32_t)p->client.nfeatures, &f) != 0)
    return b->err;
  for (size_t i = 0; i < p->client.nfeatures; i++)
    if (wr_capnp_blist_set_text(&f, (uint32_t)i, p->client.features[i].ptr,
                                p->client.features[i].len) != 0)
      return b->err;
  if (wr_capnp_set_text(&client, 2, p->client.version, p->client.version_len) != 0 ||
      wr_capnp_set_text(&client, 3, p->client.arch, p->client.arch_len) != 0 ||
      wr_capnp_set_data(&opts, 1, p->origin_local_ip, p->origin_local_ip_len) != 0)
    return b->err;
  wr_capnp_set_bool(&opts, 0, p->replace_existing);
  wr_capnp_set_u8(&opts, 1, p->compression_quality);
  wr_capnp_set_u8(&opts, 2, p->num_previous_attempts);
  return b->err;
}

int wr_tunnelrpc_register_results_decode(const wr_rpc_payload *payload,
                                         wr_tunnelrpc_conn_response *out) {
  wr_capnp_struct c, r, v;
  int rv;
  memset(out, 0, sizeof(*out));
  if ((rv = content(payload, &c)) != 0) return rv;
  if ((rv = wr_capnp_get_struct(&c, 0, &r)) != 0) return rv;
  out->which = wr_capnp_u16(&r, 0);
  if (out->which > WR_TUNNELRPC_CONN_DETAILS) return WR_ERR_PROTO;
  if ((rv = wr_capnp_get_struct(&r, 0, &v)) != 0) return rv;
  if (out->which == WR_TUNNELRPC_CONN_ERROR) {
    out->error.retry_after_ns = (int64_t)wr_capnp_u64(&v, 0);
    out->error.should_retry = wr_capnp_bool(&v, 64);
    return wr_capnp_get_text(&v, 0, &out->error.cause, &out->error.cause_len);
  }
  out->details.remotely_managed = wr_capnp_bool(&v, 0);
  if ((rv = wr_capnp_get_data(&v, 0, &out->details.uuid, &out->details.uuid_len)) != 0)
    return rv;
  return wr_capnp_get_text(&v, 1, &out->details.location, &out->details.location_len);
}

int wr_tunnelrpc_register_results_encode(wr_capnp_bstruct *payload,
                                         const wr_tunnelrpc_conn_response *r) {
  wr_capnp_builder *b = payload->b;
  wr_capnp_bstruct c, cr, v;
  if (b->err) return b->err;
  if (r->which > WR_TUNNELRPC_CONN_DETAILS) return b->err = WR_ERR_INVAL;
  if (wr_capnp_new_struct(payload, 0, 0, 1, &c) != 0 ||
      wr_capnp_new_struct(&c, 0, 1, 1, &cr) != 0)
    return b->err;
  wr_capnp_set_u16(&cr, 0, r->which);
  if (r->which == WR_TUNNELRPC_CONN_ERROR) {
    if (wr_capnp_new_struct(&cr, 0, 2, 1, &v) != 0 ||
        wr_capnp_set_text(&v, 0, r->error.cause, r->error.cause_len) != 0)
      return b->err;
    wr_capnp_set_u64(&v, 0, (uint64_t)r->error.retry_after_ns);
    wr_capnp_set_bool(&v, 64, r->error.should_retry);
    return b->err;
  }
  if (wr_capnp_new_struct(&cr, 0, 1, 2, &v) != 0 ||
      wr_capnp_set_data(&v, 0, r->details.uuid, r->details.uuid_len) != 0 ||
      wr_capnp_set_text(&v, 1, r->details.location, r->details.location_len) != 0)
    return b->err;
  wr_capnp_set_bool(&v, 0, r->details.remotely_managed);
  return b->err;
}

/* ---- Empty / updateLocalConfiguration --------------------------------- */

int wr_tunnelrpc_empty_encode(wr_capnp_bstruct *payload) {
  wr_capnp_bstruct c;
  return wr_capnp_new_struct(payload, 0, 0, 0, &c);
}

int wr_tunnelrpc_empty_decode(const wr_rpc_payload *payload) {
  wr_capnp_struct c;
  return content(payload, &c);
}

int wr_tunnelrpc_local_config_encode(wr_capnp_bstruct *payload, const uint8_t *config,
                                     size_t len) {
  wr_capnp_bstruct c;
  if (wr_capnp_new_struct(payload, 0, 0, 1, &c) == 0) wr_capnp_set_data(&c, 0, config, len);
  return payload->b->err;
}

int wr_tunnelrpc_local_config_decode(const wr_rpc_payload *payload, const uint8_t **config,
                                     size_t *len) {
  wr_capnp_struct c;
  int rv;
  *config = NULL;
  *len = 0;
  if ((rv = content(payload, &c)) != 0) return rv;
  return wr_capnp_get_data(&c, 0, config, len);
}

/* ---- SessionManager ----------------------------------------------------- */

int wr_tunnelrpc_udp_register_params_decode(const wr_rpc_payload *payload,
                                            wr_tunnelrpc_udp_register_params *out) {
  wr_capnp_struct c;
  int rv;
  memset(out, 0, sizeof(*out));
  if ((rv = content(payload, &c)) != 0) return rv;
  out->dst_port = wr_capnp_u16(&c, 0);
  out->close_after_idle_ns = (int64_t)wr_capnp_u64(&c, 8);
  if ((rv = wr_capnp_get_data(&c, 0, &out->session_id, &out->session_id_len)) != 0 ||
      (rv = wr_capnp_get_data(&c, 1, &out->dst_ip, &out->dst_ip_len)) != 0)
    return rv;
  return wr_capnp_get_text(&c, 2, &out->trace_context, &out->trace_context_len);
}

int wr_tunnelrpc_udp_register_params_encode(wr_capnp_bstruct *payload,
                                            const wr_tunnelrpc_udp_register_params *p) {
  wr_capnp_bstruct c;
  if (wr_capnp_new_struct(payload, 0, 2, 3, &c) != 0 ||
      wr_capnp_set_data(&c, 0, p->session_id, p->session_id_len) != 0 ||
      wr_capnp_set_data(&c, 1, p->dst_ip, p->dst_ip_len) != 0)
    return payload->b->err;
  wr_capnp_set_u16(&c, 0, p->dst_port);
  wr_capnp_set_u64(&c, 8, (uint64_t)p->close_after_idle_ns);
  wr_capnp_set_text(&c, 2, p->trace_context, p->trace_context_len);
  return payload->b->err;
}

int wr_tunnelrpc_udp_register_results_decode(const wr_rpc_payload *payload,
                                             wr_tunnelrpc_udp_register_results *out) {
  wr_capnp_struct c, r;
  int rv;
  memset(out, 0, sizeof(*out));
  if ((rv = content(payload, &c)) != 0 || (rv = wr_capnp_get_struct(&c, 0, &r)) != 0 ||
      (rv = wr_capnp_get_text(&r, 0, &out->err, &out->err_len)) != 0)
    return rv;
  return wr_capnp_get_data(&r, 1, &out->spans, &out->spans_len);
}

int wr_tunnelrpc_udp_register_results_encode(wr_capnp_bstruct *payload,
                                             const wr_tunnelrpc_udp_register_results *r) {
  wr_capnp_bstruct c, v;
  if (wr_capnp_new_struct(payload, 0, 0, 1, &c) == 0 &&
      wr_capnp_new_struct(&c, 0, 0, 2, &v) == 0 &&
      wr_capnp_set_text(&v, 0, r->err, r->err_len) == 0)
    wr_capnp_set_data(&v, 1, r->spans, r->spans_len);
  return payload->b->err;
}

int wr_tunnelrpc_udp_unregister_params_decode(const wr_rpc_payload *payload,
                                              wr_tunnelrpc_udp_unregister_params *out) {
  wr_capnp_struct c;
  int rv;
  memset(out, 0, sizeof(*out));
  if ((rv = content(payload, &c)) != 0 ||
      (rv = wr_capnp_get_data(&c, 0, &out->session_id, &out->session_id_len)) != 0)
    return rv;
  return wr_capnp_get_text(&c, 1, &out->message, &out->message_len);
}

int wr_tunnelrpc_udp_unregister_params_encode(wr_capnp_bstruct *payload,
                                              const wr_tunnelrpc_udp_unregister_params *p) {
  wr_capnp_bstruct c;
  if (wr_capnp_new_struct(payload, 0, 0, 2, &c) == 0 &&
      wr_capnp_set_data(&c, 0, p->session_id, p->session_id_len) == 0)
    wr_capnp_set_text(&c, 1, p->message, p->message_len);
  return payload->b->err;
}

/* ---- ConfigurationManager --------------------------------------------- */

int wr_tunnelrpc_config_params_decode(const wr_rpc_payload *payload,
                                      wr_tunnelrpc_config_params *out) {
  wr_capnp_struct c;
  int rv;
  memset(out, 0, sizeof(*out));
  if ((rv = content(payload, &c)) != 0) return rv;
  out->version = (int32_t)wr_capnp_u32(&c, 0);
  return wr_capnp_get_data(&c, 0, &out->config, &out->config_len);
}

int wr_tunnelrpc_config_params_encode(wr_capnp_bstruct *payload,
                                      const wr_tunnelrpc_config_params *p) {
  wr_capnp_bstruct c;
  if (wr_capnp_new_struct(payload, 0, 1, 1, &c) == 0) {
    wr_capnp_set_u32(&c, 0, (uint32_t)p->version);
    wr_capnp_set_data(&c, 0, p->config, p->config_len);
  }
  return payload->b->err;
}

int wr_tunnelrpc_config_results_decode(const wr_rpc_payload *payload,
                                       wr_tunnelrpc_config_results *out) {
  wr_capnp_struct c, r;
  int rv;
  memset(out, 0, sizeof(*out));
  if ((rv = content(payload, &c)) != 0 || (rv = wr_capnp_get_struct(&c, 0, &r)) != 0)
    return rv;
  out->latest_applied_version = (int32_t)wr_capnp_u32(&r, 0);
  return wr_capnp_get_text(&r, 0, &out->err, &out->err_len);
}

int wr_tunnelrpc_config_results_encode(wr_capnp_bstruct *payload,
                                       const wr_tunnelrpc_config_results *r) {
  wr_capnp_bstruct c, v;
  if (wr_capnp_new_struct(payload, 0, 0, 1, &c) == 0 &&
      wr_capnp_new_struct(&c, 0, 1, 1, &v) == 0) {
    wr_capnp_set_u32(&v, 0, (uint32_t)r->latest_applied_version);
    wr_capnp_set_text(&v, 0, r->err, r->err_len);
  }
  return payload->b->err;
}
