/* An HTTP/2 connection to the edge; see h2_link.h. */
#include "connector/h2_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/h2_transport.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/conn.h"
#include "net/owner.h"

#define DIAL_TIMEOUT_MS 15000

struct wr_h2_link {
  wr_h2_link_config cfg;
  wr_conn *conn;
  wr_h2 *h2;
  uv_idle_t idle;  /* deferred flushes */
  wr_owner owner;  /* holds idle + conn until they closed; its release reports */
  int close_req;   /* wr_h2_link_close: done from the idle callback */
  int closing;
  int reported;
  int self_free;   /* wr_h2_link_abort: nobody to report to */
  int status;
  char why[256];
};

static void report(wr_owner *o) {
  wr_h2_link *l = WR_OWNER_OBJ(o, wr_h2_link, owner);
  l->reported = 1;
  if (l->self_free) {
    free(l);
    return;
  }
  if (l->cfg.on_close) l->cfg.on_close(l->cfg.user, l->status, l->why);
}

static void do_close(wr_h2_link *l);

static void fail(wr_h2_link *l, int status, const char *why) {
  if (!l->closing && !l->close_req) {
    l->status = status;
    snprintf(l->why, sizeof(l->why), "%s", why ? why : "");
  }
  wr_h2_link_close(l, NULL);
}

/* --- the session's side ---------------------------------------------------------- */

static int h_send(void *user, const uint8_t *data, size_t len) {
  wr_h2_link *l = user;
  if (l->closing) return WR_ERR_IO;
  if (wr_conn_write_queued(l->conn) > WR_H2_LINK_HIGH) return WR_AGAIN;
  return wr_conn_write(l->conn, data, len) == WR_OK ? WR_OK : WR_ERR_IO;
}

static void idle_cb(uv_idle_t *t) {
  wr_h2_link *l = t->data;
  uv_idle_stop(t);
  if (l->close_req && !l->closing) {
    do_close(l);
    return;
  }
  if (l->closing || !l->h2) return;
  if (wr_h2_flush(l->h2) != WR_OK) fail(l, WR_ERR_IO, "write to the edge failed");
}

static void h_kick(void *user) {
  wr_h2_link *l = user;
  if (!l->closing && !l->close_req) uv_idle_start(&l->idle, idle_cb);
}

static void h_control_open(void *user) {
  wr_h2_link *l = user;
  if (l->cfg.on_control_open) l->cfg.on_control_open(l->cfg.user);
}

static void h_control_data(void *user, const uint8_t *data, size_t len, int fin) {
  wr_h2_link *l = user;
  if (l->cfg.on_control_data) l->cfg.on_control_data(l->cfg.user, data, len, fin);
}

/* --- the socket's side ------------------------------------------------------------- */

static void c_connect(wr_conn *c, int status, const char *msg, void *user) {
  wr_h2_link *l = user;
  wr_h2_config hc;
  (void)c;
  if (status != WR_OK) {
    fail(l, status, msg && msg[0] ? msg : wr_strerror(status));
    return;
  }
  memset(&hc, 0, sizeof(hc));
  hc.proxy = l->cfg.proxy;
  hc.send = h_send;
  hc.kick = h_kick;
  hc.on_control_open = h_control_open;
  hc.on_control_data = h_control_data;
  hc.user = l;
  if (wr_h2_new(&hc, &l->h2) != WR_OK) {
    fail(l, WR_ERR_NOMEM, "cannot start the HTTP/2 session");
    return;
  }
  if (wr_h2_flush(l->h2) != WR_OK) {
    fail(l, WR_ERR_IO, "write to the edge failed");
    return;
  }
  if (l->cfg.on_up) l->cfg.on_up(l->cfg.user);
}

static void c_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  wr_h2_link *l = user;
  (void)c;
  if (l->closing || l->close_req || !l->h2) return;
  int rv = wr_h2_feed(l->h2, data, len);
  if (rv != WR_OK) {
    fail(l, rv, rv == WR_ERR_PROTO ? "HTTP/2 protocol error from the edge"
                                   : "write to the edge failed");
    return;
  }
  if (wr_h2_done(l->h2)) fail(l, WR_OK, "the edge closed the HTTP/2 connection");
}

static void c_eof(wr_conn *c, int status, const char *msg, void *user) {
  wr_h2_link *l = user;
  (void)c;
  fail(l, status == WR_OK ? WR_ERR_IO : status,
       status == WR_OK ? "EOF" : (msg && msg[0] ? msg : wr_strerror(status)));
}

static void c_drain(wr_conn *c, void *user) {
  wr_h2_link *l = user;
  (void)c;
  if (!l->closing && l->h2) h_kick(l);
}

static void c_close(wr_conn *c, void *user) {
  wr_h2_link *l = user;
  (void)c;
  l->conn = NULL;
  wr_owner_drop(&l->owner); /* may report, or free |l| */
}

static const wr_conn_callbacks conn_cbs = {
    .on_connect = c_connect,
    .on_read = c_read,
    .on_eof = c_eof,
    .on_drain = c_drain,
    .on_close = c_close,
};

/* --- public ---------------------------------------------------------------------------- */

int wr_h2_link_dial(const wr_h2_link_config *cfg, wr_h2_link **out) {
  char host[INET6_ADDRSTRLEN];
  wr_conn_target t;
  uint16_t port;
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->edge || !cfg->proxy || !cfg->creds) return WR_ERR_INVAL;
  if (cfg->edge->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)cfg->edge;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (cfg->edge->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)cfg->edge;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  } else {
    return WR_ERR_INVAL;
  }
  wr_h2_link *l = wr_xcalloc(1, sizeof(*l));
  l->cfg = *cfg;
  l->cfg.edge = NULL;
  l->cfg.local = NULL;
  memset(&t, 0, sizeof(t));
  t.host = host;
  t.port = port;
  t.tls = cfg->creds;
  t.server_name = cfg->sni ? cfg->sni : WR_H2_SNI;
  t.verify_name = t.server_name;
  t.local_addr = cfg->local;
  t.connect_timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DIAL_TIMEOUT_MS;
  t.tcp_keepalive_s = 15; /* Go's dialer default; HTTP/2 has no other liveness check */
  int rv = wr_conn_connect(cfg->loop, &t, &conn_cbs, l, &l->conn);
  if (rv != WR_OK) {
    free(l);
    return rv;
  }
  uv_idle_init(cfg->loop, &l->idle);
  l->idle.data = l;
  wr_owner_init(&l->owner, report);
  wr_owner_hold(&l->owner); /* conn */
  wr_owner_hold(&l->owner); /* idle */
  *out = l;
  return WR_OK;
}

int wr_h2_link_control_write(wr_h2_link *l, const uint8_t *data, size_t len) {
  if (l->closing || !l->h2) return WR_ERR_INVAL;
  return wr_h2_control_write(l->h2, data, len);
}

void wr_h2_link_control_end(wr_h2_link *l) {
  if (!l->closing && l->h2) wr_h2_control_end(l->h2);
}

/* Never called from inside the session (a callback of it may have asked
 * for the close): the idle callback runs it. */
static void do_close(wr_h2_link *l) {
  l->closing = 1;
  if (l->h2) {
    wr_h2_goaway(l->h2);
    l->closing = 0; /* let the GOAWAY out */
    wr_h2_flush(l->h2);
    l->closing = 1;
    wr_h2_free(l->h2); /* the proxy lets go of every stream */
    l->h2 = NULL;
  }
  uv_idle_stop(&l->idle);
  wr_owner_close_handle(&l->owner, (uv_handle_t *)&l->idle);
  if (l->conn) {
    wr_conn_shutdown(l->conn);
    wr_conn_close(l->conn);
  }
  wr_owner_close(&l->owner); /* reports once both closed */
}

void wr_h2_link_close(wr_h2_link *l, const char *why) {
  if (l->closing || l->close_req) return;
  if (why) {
    l->status = WR_OK;
    snprintf(l->why, sizeof(l->why), "%s", why);
  }
  l->close_req = 1;
  uv_idle_start(&l->idle, idle_cb);
}

void wr_h2_link_abort(wr_h2_link *l) {
  if (l->reported) { /* closed already */
    free(l);
    return;
  }
  l->self_free = 1;
  l->cfg.on_close = NULL;
  if (!l->closing) do_close(l);
}

void wr_h2_link_free(wr_h2_link *l) { free(l); }
