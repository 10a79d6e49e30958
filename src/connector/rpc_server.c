/* RPC streams of the proxy (see rpc_server.h for the behaviour and
 * proxy_int.h for the stream objects): the CloudflaredServer capability
 * served on edge-opened RPC streams, and the unregisterUdpSession call the
 * connector makes on a stream it opens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/proxy_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/preamble.h"

/* --- the byte stream --------------------------------------------------------------- */

static int rpc_write(void *user, const uint8_t *data, size_t len) {
  pstream *s = user;
  wr__proxy_emit(s, data, len);
  return WR_OK;
}

/* The RPC session ended (abort, EOF, protocol error): FIN our side; bytes
 * that still come are consumed and dropped. */
static void rpc_closed(pstream *s) {
  if (s->state == ST_DONE) return;
  wr__proxy_finish(s);
  wr__proxy_set_state(s, ST_DONE);
}

void wr__proxy_rpc_input(pstream *s, const uint8_t *data, size_t len, int fin) {
  int rv = WR_OK;
  wr__proxy_consume(s, len);
  if (!s->rpc || wr_rpc_session_closed(s->rpc)) return;
  if (len) rv = wr_rpc_session_feed(s->rpc, data, len);
  if (rv == WR_OK && fin) rv = wr_rpc_session_eof(s->rpc);
  if (rv != WR_OK)
    wr_debug("RPC stream %lld: %s", (long long)s->sid, wr_rpc_session_reason(s->rpc));
  if (fin) s->edge_fin = 1;
  if (wr_rpc_session_closed(s->rpc)) rpc_closed(s);
}

/* --- CloudflaredServer ---------------------------------------------------------------- */

static int unsupported(wr_rpc_reply *r, const char *what) {
  snprintf(r->reason, sizeof(r->reason), "%s is not supported by this connector", what);
  return WR_ERR_UNSUPPORTED;
}

/* uuid.FromBytes */
static int check_uuid(wr_rpc_reply *r, size_t len) {
  if (len == 16) return WR_OK;
  snprintf(r->reason, sizeof(r->reason), "invalid UUID (got %zu bytes)", len);
  return WR_ERR_PROTO;
}

static int m_register_udp(wr_rpc_session *rs, void *user, const wr_rpc_call *call,
                          wr_rpc_reply *r) {
  pstream *s = user;
  const wr_rpc_services *svc = &s->p->svc;
  wr_tunnelrpc_udp_register_params p;
  wr_tunnelrpc_udp_register_results res;
  char err[WR_RPC_ERR_MAX];
  int rv;
  (void)rs;
  if ((rv = wr_tunnelrpc_udp_register_params_decode(&call->params, &p)) != WR_OK) return rv;
  if ((rv = check_uuid(r, p.session_id_len)) != WR_OK) return rv;
  if (!p.dst_ip) {
    snprintf(r->reason, sizeof(r->reason), "[] is not valid IP");
    return WR_ERR_PROTO;
  }
  if (!svc->register_udp) return unsupported(r, "registerUdpSession");
  memset(&res, 0, sizeof(res));
  err[0] = '\0';
  if (!s->qc || svc->register_udp(svc->udp_user, s->qc, &p, err, sizeof(err)) != WR_OK) {
    if (!err[0]) snprintf(err, sizeof(err), "connection closed");
    res.err = err;
    res.err_len = strlen(err);
  }
  return wr_tunnelrpc_udp_register_results_encode(&r->results, &res);
}

static int m_unregister_udp(wr_rpc_session *rs, void *user, const wr_rpc_call *call,
                            wr_rpc_reply *r) {
  pstream *s = user;
  const wr_rpc_services *svc = &s->p->svc;
  wr_tunnelrpc_udp_unregister_params p;
  int rv;
  (void)rs;
  if ((rv = wr_tunnelrpc_udp_unregister_params_decode(&call->params, &p)) != WR_OK) return rv;
  if ((rv = check_uuid(r, p.session_id_len)) != WR_OK) return rv;
  if (!svc->unregister_udp) return unsupported(r, "unregisterUdpSession");
  /* A refusal's text goes straight into the exception's reason. */
  if (s->qc && (rv = svc->unregister_udp(svc->udp_user, s->qc, p.session_id,
                                         p.message ? p.message : "", r->reason,
                                         sizeof(r->reason))) != WR_OK)
    return rv;
  return wr_tunnelrpc_empty_encode(&r->results);
}

static int m_update_config(wr_rpc_session *rs, void *user, const wr_rpc_call *call,
                           wr_rpc_reply *r) {
  pstream *s = user;
  const wr_rpc_services *svc = &s->p->svc;
  wr_tunnelrpc_config_params p;
  wr_tunnelrpc_config_results res;
  char err[WR_RPC_ERR_MAX];
  int rv;
  (void)rs;
  if ((rv = wr_tunnelrpc_config_params_decode(&call->params, &p)) != WR_OK) return rv;
  if (!svc->update_config) return unsupported(r, "updateConfiguration");
  err[0] = '\0';
  memset(&res, 0, sizeof(res));
  res.latest_applied_version =
      svc->update_config(svc->config_user, p.version, p.config, p.config_len, err, sizeof(err));
  res.err = err;
  res.err_len = strlen(err);
  return wr_tunnelrpc_config_results_encode(&r->results, &res);
}

/* CloudflaredServer extends both; calls carry the declaring interface's ID. */
static const wr_rpc_method cloudflared_server[] = {
    {WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_REGISTER_UDP_SESSION, m_register_udp},
    {WR_TUNNELRPC_SESSION_MANAGER, WR_TUNNELRPC_UNREGISTER_UDP_SESSION, m_unregister_udp},
    {WR_TUNNELRPC_CONFIGURATION_MANAGER, WR_TUNNELRPC_UPDATE_CONFIGURATION, m_update_config},
};

void wr__proxy_rpc_start(pstream *s, const uint8_t *rest, size_t len, int fin) {
  wr_rpc_session_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.write = rpc_write;
  cfg.serve_bootstrap = 1;
  cfg.methods = cloudflared_server;
  cfg.nmethods = sizeof(cloudflared_server) / sizeof(cloudflared_server[0]);
  cfg.user = s;
  if (wr_rpc_session_new(&cfg, &s->rpc) != WR_OK) {
    wr__proxy_reject(s, "out of memory");
    return;
  }
  wr__proxy_set_state(s, ST_RPC);
  /* The head bytes were not given back yet: account for them here. */
  wr__proxy_rpc_input(s, rest, len, fin);
}

/* --- unregisterUdpSession towards the edge -------------------------------------------- */

static int fill_unregister(void *arg, wr_capnp_bstruct *params) {
  pstream *s = arg;
  wr_tunnelrpc_udp_unregister_params p;
  memset(&p, 0, sizeof(p));
  p.session_id = s->rpc_session_id;
  p.session_id_len = 16;
  p.message = s->rpc_message;
  p.message_len = s->rpc_message ? strlen(s->rpc_message) : 0;
  return wr_tunnelrpc_udp_unregister_params_encode(params, &p);
}

static void on_unregister_return(wr_rpc_session *rs, void *user, uint32_t q,
                                 const wr_rpc_return *ret) {
  pstream *s = user;
  (void)q;
  if (ret->which != WR_RPC_RET_RESULTS)
    wr_error("Failed to unregister udp session with edge: %.*s", (int)ret->exception.reason_len,
             ret->exception.reason ? ret->exception.reason : "");
  /* rpcClientStream.Close(): Release the bootstrap, Abort, then the
   * stream's FIN. */
  wr_rpc_session_shutdown(rs);
  rpc_closed(s);
}

int wr_proxy_unregister_udp(wr_proxy *p, wr_quic_conn *qc, const uint8_t *id,
                            const char *message) {
  int64_t sid;
  pstream *s;
  wr_rpc_session_config cfg;
  int rv;
  if (p->dying || !qc) return WR_ERR_INVAL;
  s = wr__proxy_stream_new(p, qc, -1);
  if ((rv = wr_quic_stream_open(qc, s, &sid)) != WR_OK) {
    wr_debug("Failed to open quic stream to unregister udp session with edge: %s",
             wr_strerror(rv));
    wr__proxy_stream_drop(s);
    return rv;
  }
  s->sid = sid;
  s->rpc_client = 1;
  s->have_req = 0;
  memcpy(s->rpc_session_id, id, 16);
  s->rpc_message = wr_xstrdup(message ? message : "");
  memset(&cfg, 0, sizeof(cfg));
  cfg.write = rpc_write;
  cfg.user = s;
  wr__proxy_hold(s);
  if ((rv = wr_rpc_session_new(&cfg, &s->rpc)) != WR_OK) {
    wr__proxy_reset(s);
    wr__proxy_unhold(s);
    return rv;
  }
  wr__proxy_set_state(s, ST_RPC);
  wr__proxy_emit(s, wr_preamble_rpc_sig, WR_PREAMBLE_RPC_LEN);
  rv = wr_rpc_session_call(s->rpc, WR_TUNNELRPC_SESSION_MANAGER,
                           WR_TUNNELRPC_UNREGISTER_UDP_SESSION, fill_unregister, s,
                           on_unregister_return, s, NULL);
  if (rv != WR_OK) {
    wr_error("Failed to unregister udp session with edge: %s", wr_strerror(rv));
    wr__proxy_reset(s);
  }
  wr__proxy_unhold(s);
  return rv;
}
