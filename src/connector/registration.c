/* Connector side of the control stream; see registration.h. */
#include "connector/registration.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "proto/rpc_session.h"
#include "proto/tunnelrpc.h"

/* Only what this connector does: the edge acts on these. In cloudflared's
 * order (features.DefaultFeatures): allow_remote_config (updateConfiguration,
 * connector/remote_config.h), serialized_headers, support_datagram_v2 (UDP
 * session RPCs and v2 datagrams, connector/datagram_mux.h),
 * support_quic_eof. management_logs (log streaming to `tail`) is added by
 * the connector when its management service runs (connector.h). */
const char *const wr_registration_default_features[] = {
    "allow_remote_config", "serialized_headers", "support_datagram_v2", "support_quic_eof", NULL};

/* cloudflared HEAD (features/features.go): announcing support_datagram_v3_2
 * selects datagram v3; the two earlier v3 flags are deprecated and removed
 * from the list it sends, whatever the user asked for. */
static const char *const deprecated_features[] = {"support_datagram_v3", "support_datagram_v3_1",
                                                  NULL};

static int is_deprecated(const char *f) {
  for (size_t i = 0; deprecated_features[i]; i++)
    if (strcmp(f, deprecated_features[i]) == 0) return 1;
  return 0;
}

int wr_registration_datagram_v3(const char *const *features, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (features[i] && strcmp(features[i], WR_FEATURE_DATAGRAM_V3_2) == 0) return 1;
  return 0;
}

enum { R_PENDING = 0, R_REGISTERED, R_FAILED, R_UNREGISTERING, R_DONE };

struct wr_registration {
  wr_quic_conn *quic;
  int64_t sid;
  wr_rpc_session *rpc;
  wr_registration_config cfg;
  int state;
  int fin_sent;
  wr_credentials cred;
  char version[64];
  char arch[64];
  char *extra[WR_REGISTRATION_MAX_EXTRA_FEATURES];
  uint8_t origin_ip[16];
  size_t origin_ip_len;
  char *config;
  size_t config_len;
  wr_tunnelrpc_register_params params;
};

void wr_registration_arch(char *out, size_t outlen) {
  struct utsname u;
  const char *os = "linux", *m = "amd64";
  char osbuf[32];
  if (uname(&u) == 0) {
    size_t i = 0;
    for (; u.sysname[i] && i + 1 < sizeof(osbuf); i++)
      osbuf[i] = (char)tolower((unsigned char)u.sysname[i]);
    osbuf[i] = '\0';
    os = osbuf;
    if (!strcmp(u.machine, "x86_64")) m = "amd64";
    else if (!strcmp(u.machine, "aarch64") || !strcmp(u.machine, "arm64")) m = "arm64";
    else if (!strncmp(u.machine, "arm", 3)) m = "arm";
    else if (u.machine[0] == 'i' && strstr(u.machine, "86")) m = "386";
    else m = u.machine;
  }
  snprintf(out, outlen, "%s_%s", os, m);
}

/* ---- stream glue ---------------------------------------------------------- */

static int rpc_write(void *user, const uint8_t *data, size_t len) {
  wr_registration *r = user;
  size_t acc = 0;
  if (r->cfg.io_write) return r->cfg.io_write(r->cfg.io, data, len);
  int rv = wr_quic_stream_write(r->quic, r->sid, data, len, 0, &acc);
  return rv == WR_AGAIN ? WR_ERR_LIMIT : rv;
}

static void close_rpc(wr_registration *r) {
  if (r->rpc && !wr_rpc_session_closed(r->rpc)) wr_rpc_session_shutdown(r->rpc);
  if (!r->fin_sent) {
    size_t acc;
    r->fin_sent = 1;
    if (r->cfg.io_fin)
      r->cfg.io_fin(r->cfg.io);
    else if (r->quic)
      wr_quic_stream_write(r->quic, r->sid, NULL, 0, 1, &acc);
  }
}

/* ---- returns --------------------------------------------------------------- */

static void report(wr_registration *r, const wr_registration_result *res) {
  if (r->cfg.on_registered) r->cfg.on_registered(r, r->cfg.user, res);
}

static void on_config_ret(wr_rpc_session *s, void *user, uint32_t q, const wr_rpc_return *ret) {
  wr_registration *r = user;
  int ok = ret->which == WR_RPC_RET_RESULTS;
  if (!ok)
    wr_warn("updateLocalConfiguration failed: %.*s", (int)ret->exception.reason_len,
            ret->exception.reason ? ret->exception.reason : "");
  if (r->cfg.on_config_pushed) r->cfg.on_config_pushed(r, r->cfg.user, ok);
}

static int fill_config(void *arg, wr_capnp_bstruct *params) {
  wr_registration *r = arg;
  return wr_tunnelrpc_local_config_encode(params, (const uint8_t *)r->config, r->config_len);
}

static void on_register_ret(wr_rpc_session *s, void *user, uint32_t q,
                            const wr_rpc_return *ret) {
  wr_registration *r = user;
  wr_registration_result res;
  memset(&res, 0, sizeof(res));
  if (ret->which != WR_RPC_RET_RESULTS) {
    res.rpc_error = 1;
    snprintf(res.cause, sizeof(res.cause), "%.*s", (int)ret->exception.reason_len,
             ret->exception.reason ? ret->exception.reason : "rpc error");
  } else {
    wr_tunnelrpc_conn_response cr;
    int rv = wr_tunnelrpc_register_results_decode(&ret->results, &cr);
    if (rv) {
      res.rpc_error = 1;
      snprintf(res.cause, sizeof(res.cause), "cannot decode registerConnection results: %s",
               wr_strerror(rv));
    } else if (cr.which == WR_TUNNELRPC_CONN_ERROR) {
      snprintf(res.cause, sizeof(res.cause), "%.*s", (int)cr.error.cause_len, cr.error.cause);
      res.should_retry = cr.error.should_retry;
      res.retry_after_ns = cr.error.retry_after_ns;
      res.dup_conn = strcmp(res.cause, "EDUPCONN") == 0;
    } else if (cr.details.uuid_len != 16) {
      res.rpc_error = 1;
      snprintf(res.cause, sizeof(res.cause), "invalid connection uuid of %zu bytes",
               cr.details.uuid_len);
    } else {
      res.ok = 1;
      memcpy(res.conn_uuid.b, cr.details.uuid, 16);
      wr_uuid_format(&res.conn_uuid, res.conn_id);
      snprintf(res.location, sizeof(res.location), "%.*s", (int)cr.details.location_len,
               cr.details.location);
      res.remotely_managed = cr.details.remotely_managed;
    }
  }
  if (!res.ok) {
    r->state = R_FAILED;
    close_rpc(r);
    report(r, &res);
    return;
  }
  r->state = R_REGISTERED;
  /* cloudflared's fields, in its (alphabetical) order; event=0 is its
   * management event type for connector lines, ip= the edge's address. */
  char ip[INET6_ADDRSTRLEN];
  wr_registration_edge_ip(r, ip, sizeof(ip));
  wr_info("Registered tunnel connection connIndex=%u connection=%s event=0 ip=%s location=%s "
          "protocol=%s",
          r->cfg.conn_index, res.conn_id, ip, res.location,
          r->cfg.protocol ? r->cfg.protocol : "quic");
  if (r->cfg.conn_index == 0 && !res.remotely_managed && r->config) {
    int rv = wr_rpc_session_call(s, WR_TUNNELRPC_REGISTRATION_SERVER,
                                 WR_TUNNELRPC_UPDATE_LOCAL_CONFIGURATION, fill_config, r,
                                 on_config_ret, r, NULL);
    if (rv) wr_warn("updateLocalConfiguration not sent: %s", wr_strerror(rv));
  }
  report(r, &res);
}

static void on_unregister_ret(wr_rpc_session *s, void *user, uint32_t q,
                              const wr_rpc_return *ret) {
  wr_registration *r = user;
  int ok = ret->which == WR_RPC_RET_RESULTS;
  r->state = R_DONE;
  close_rpc(r);
  if (r->cfg.on_unregistered) r->cfg.on_unregistered(r, r->cfg.user, ok);
}

static int fill_register(void *arg, wr_capnp_bstruct *params) {
  wr_registration *r = arg;
  return wr_tunnelrpc_register_params_encode(params, &r->params);
}

/* ---- public ------------------------------------------------------------------ */

void wr_registration_free(wr_registration *r) {
  if (!r) return;
  wr_rpc_session_free(r->rpc);
  for (size_t i = 0; i < WR_REGISTRATION_MAX_EXTRA_FEATURES; i++) free(r->extra[i]);
  free(r->config);
  memset(&r->cred, 0, sizeof(r->cred));
  free(r);
}

static void build_params(wr_registration *r) {
  wr_tunnelrpc_register_params *p = &r->params;
  memset(p, 0, sizeof(*p));
  p->account_tag = r->cred.account_tag;
  p->account_tag_len = strlen(r->cred.account_tag);
  p->tunnel_secret = r->cred.secret;
  p->tunnel_secret_len = r->cred.secret_len;
  p->tunnel_id = r->cred.tunnel_id.b;
  p->tunnel_id_len = 16;
  p->conn_index = r->cfg.conn_index;
  p->client.client_id = r->cfg.connector_id.b;
  p->client.client_id_len = 16;
  size_t n = 0;
  for (size_t i = 0; wr_registration_default_features[i]; i++) {
    p->client.features[n].ptr = wr_registration_default_features[i];
    p->client.features[n++].len = strlen(wr_registration_default_features[i]);
  }
  for (size_t i = 0; i < r->cfg.nextra_features && r->extra[i]; i++) {
    int dup = is_deprecated(r->extra[i]);
    for (size_t j = 0; j < n; j++)
      dup |= strlen(r->extra[i]) == p->client.features[j].len &&
             !memcmp(r->extra[i], p->client.features[j].ptr, p->client.features[j].len);
    if (dup) continue;
    p->client.features[n].ptr = r->extra[i];
    p->client.features[n++].len = strlen(r->extra[i]);
  }
  p->client.nfeatures = n;
  p->client.version = r->version;
  p->client.version_len = strlen(r->version);
  p->client.arch = r->arch;
  p->client.arch_len = strlen(r->arch);
  p->origin_local_ip = r->origin_ip_len ? r->origin_ip : NULL;
  p->origin_local_ip_len = r->origin_ip_len;
  p->replace_existing = r->cfg.replace_existing;
  p->num_previous_attempts = r->cfg.num_previous_attempts;
}

static void edge_ip(wr_registration *r) {
  socklen_t len = 0;
  const struct sockaddr *sa = r->quic ? wr_quic_conn_remote(r->quic, &len) : NULL;
  r->origin_ip_len = wr_addr_ip16(sa, r->origin_ip) == 0 ? 16 : 0;
}

int wr_registration_start(wr_quic_conn *c, const wr_registration_config *cfg,
                          wr_registration **out) {
  *out = NULL;
  if (!cfg || (!c && !cfg->io_write) || !cfg->cred || !cfg->cred->has_tunnel_id)
    return WR_ERR_INVAL;
  if (cfg->nextra_features > WR_REGISTRATION_MAX_EXTRA_FEATURES) return WR_ERR_LIMIT;
  if (cfg->local_config && cfg->local_config_len > WR_REGISTRATION_MAX_CONFIG)
    return WR_ERR_LIMIT;
  if (cfg->origin_local_ip && cfg->origin_local_ip_len != 4 && cfg->origin_local_ip_len != 16)
    return WR_ERR_INVAL;
  wr_registration *r = wr_xcalloc(1, sizeof(*r));
  r->quic = c;
  r->cfg = *cfg;
  r->cred = *cfg->cred;
  r->cfg.cred = &r->cred;
  snprintf(r->version, sizeof(r->version), "%s", cfg->version ? cfg->version : WR_VERSION);
  if (cfg->arch)
    snprintf(r->arch, sizeof(r->arch), "%s", cfg->arch);
  else
    wr_registration_arch(r->arch, sizeof(r->arch));
  for (size_t i = 0; i < cfg->nextra_features; i++)
    r->extra[i] = wr_xstrdup(cfg->extra_features[i]);
  r->cfg.extra_features = NULL;
  if (cfg->local_config) {
    r->config = wr_xmalloc(cfg->local_config_len + 1);
    memcpy(r->config, cfg->local_config, cfg->local_config_len);
    r->config_len = cfg->local_config_len;
  }
  r->cfg.local_config = NULL;
  if (cfg->origin_local_ip) {
    memcpy(r->origin_ip, cfg->origin_local_ip, cfg->origin_local_ip_len);
    r->origin_ip_len = cfg->origin_local_ip_len;
  } else {
    edge_ip(r);
  }
  r->cfg.origin_local_ip = NULL;
  build_params(r);

  int rv = WR_OK;
  r->sid = -1;
  if (c && !cfg->io_write && (rv = wr_quic_stream_open(c, NULL, &r->sid)) != WR_OK) goto fail;
  wr_rpc_session_config sc;
  memset(&sc, 0, sizeof(sc));
  sc.max_message = 1u << 20;
  sc.write = rpc_write;
  sc.user = r;
  if ((rv = wr_rpc_session_new(&sc, &r->rpc)) != 0) goto fail;
  rv = wr_rpc_session_call(r->rpc, WR_TUNNELRPC_REGISTRATION_SERVER,
                           WR_TUNNELRPC_REGISTER_CONNECTION, fill_register, r, on_register_ret, r,
                           NULL);
  if (rv) goto fail;
  *out = r;
  return WR_OK;
fail:
  wr_registration_free(r);
  return rv;
}

int wr_registration_stream_data(wr_registration *r, int64_t sid, const uint8_t *data, size_t len,
                                int fin) {
  if (sid != r->sid) return 0;
  wr_quic_stream_consume(r->quic, sid, len);
  return wr_registration_input(r, data, len, fin);
}

int wr_registration_input(wr_registration *r, const uint8_t *data, size_t len, int fin) {
  int rv = 0;
  if (!wr_rpc_session_closed(r->rpc)) {
    rv = wr_rpc_session_feed(r->rpc, data, len);
    if (!rv && fin) wr_rpc_session_eof(r->rpc);
    /* If the session died, pending questions were failed via callbacks. */
  }
  return rv;
}

int64_t wr_registration_stream_id(const wr_registration *r) { return r->sid; }

int wr_registration_unregister(wr_registration *r) {
  if (r->state != R_REGISTERED || wr_rpc_session_closed(r->rpc)) return WR_ERR_INVAL;
  r->state = R_UNREGISTERING;
  return wr_rpc_session_call(r->rpc, WR_TUNNELRPC_REGISTRATION_SERVER,
                             WR_TUNNELRPC_UNREGISTER_CONNECTION, NULL, NULL, on_unregister_ret, r,
                             NULL);
}

void wr_registration_close(wr_registration *r) {
  if (r->state == R_REGISTERED || r->state == R_UNREGISTERING) r->state = R_DONE;
  close_rpc(r);
}

int wr_registration_is_registered(const wr_registration *r) { return r->state == R_REGISTERED; }

void wr_registration_edge_ip(const wr_registration *r, char *out, size_t outlen) {
  wr_addr_ip_text(r->origin_ip, r->origin_ip_len, out, outlen);
}
