/* The management log stream client; see mgmt_tail.h.
 *
 * States: connecting, the upgrade (request sent, collecting the answer's
 * head, and for a refusal its body), open (frames both ways), closing
 * (our Close sent, waiting for the peer's or a one-second timer), done.
 * The object is freed from the connection's close callback (or, when the
 * connection never started, by wr_mgmt_tail_free itself), never inside
 * another callback of it. */
#include "connector/mgmt_tail.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/bytes.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/conn.h"
#include "net/tls.h"
#include "net/ws_client.h"

#define HEAD_MAX (64u * 1024u)
#define MSG_MAX (4u * 1024u * 1024u)
#define CLOSE_WAIT_MS 1000

enum { T_CONNECTING = 0, T_UPGRADE, T_REFUSED, T_OPEN, T_CLOSING, T_DONE };

struct wr_mgmt_tail {
  uv_loop_t *loop;
  wr_ws_client ws; /* ws.conn: the connection, NULL once closed */
  uv_timer_t timer;
  int timer_open, conn_open, freeing;
  int state;
  char *host;    /* the management hostname, the request's Host */
  wr_ws_url where; /* where to connect */
  wr_tls_creds *creds;
  char *request; /* the upgrade request */
  wr_buf msg;    /* the text message being collected */
  char *start; /* the start_streaming event */
  wr_mgmt_tail_config cfg; /* callbacks and user */
};

/* --- lifetime ------------------------------------------------------------------------ */

static void final_free(wr_mgmt_tail *t) {
  wr_tls_creds_free(t->creds);
  wr_ws_client_free(&t->ws);
  wr_buf_free(&t->msg);
  free(t->host);
  wr_ws_url_free(&t->where);
  free(t->request);
  free(t->start);
  free(t);
}

static void maybe_final(wr_mgmt_tail *t) {
  if (t->freeing && !t->conn_open && !t->timer_open) final_free(t);
}

static void timer_closed(uv_handle_t *h) {
  wr_mgmt_tail *t = h->data;
  t->timer_open = 0;
  maybe_final(t);
}

static void conn_closed(wr_conn *c, void *user) {
  wr_mgmt_tail *t = user;
  (void)c;
  t->conn_open = 0;
  t->ws.conn = NULL;
  maybe_final(t);
}

/* The end, reported once; the connection closes. */
static void finish(wr_mgmt_tail *t, int ok, const char *why) {
  if (t->state == T_DONE) return;
  t->state = T_DONE;
  uv_timer_stop(&t->timer);
  if (t->ws.conn) wr_conn_close(t->ws.conn);
  if (t->cfg.on_end) t->cfg.on_end(t->cfg.user, ok, why);
}

/* --- frames out ------------------------------------------------------------------------ */

static void ws_send(wr_mgmt_tail *t, int op, const uint8_t *data, size_t len) {
  (void)wr_ws_client_send(&t->ws, op, data, len);
}

static void on_close_wait(uv_timer_t *h) { finish(h->data, 1, NULL); }

void wr_mgmt_tail_stop(wr_mgmt_tail *t) {
  static const uint8_t normal[2] = {0x03, 0xe8}; /* 1000 */
  if (t->state != T_OPEN) {
    finish(t, 1, NULL);
    return;
  }
  t->state = T_CLOSING;
  ws_send(t, WR_WS_OP_CLOSE, normal, 2);
  uv_timer_start(&t->timer, on_close_wait, CLOSE_WAIT_MS, 0);
}

/* --- frames in --------------------------------------------------------------------------- */

static int one_log(void *user, const wr_mgmt_log *l) {
  wr_mgmt_tail *t = user;
  if (t->cfg.on_log) t->cfg.on_log(t->cfg.user, l);
  return 0;
}

/* The peer's Close: 1000 is a normal end, anything else is reported with
 * its code and reason ("received remote closure: (4002) ..."). */
static void peer_close(wr_mgmt_tail *t, const uint8_t *p, size_t n) {
  char why[256];
  unsigned code = n >= 2 ? wr_get_be16(p) : 1005;
  if (t->state == T_OPEN) ws_send(t, WR_WS_OP_CLOSE, p, n >= 2 ? 2 : 0);
  if (code == 1000 || t->state == T_CLOSING) {
    finish(t, 1, NULL);
    return;
  }
  snprintf(why, sizeof(why), "received remote closure: (%u) %.*s", code,
           (int)(n > 2 ? n - 2 : 0), (const char *)p + 2);
  finish(t, 0, why);
}

static int on_ws_event(void *user, const wr_ws_event *ev) {
  wr_mgmt_tail *t = user;
  switch (ev->kind) {
  case WR_WS_EV_DATA:
    if (wr_buf_append(&t->msg, ev->data, ev->len) != WR_OK) {
      finish(t, 0, "a log event larger than 4 MiB");
      break;
    }
    if (ev->end) {
      /* cloudflared's tail logs a bad event and goes on. */
      wr_mgmt_logs_decode((const char *)t->msg.data, t->msg.len, one_log, t);
      wr_buf_reset(&t->msg);
    }
    break;
  case WR_WS_EV_PING:
    ws_send(t, WR_WS_OP_PONG, ev->data, ev->len);
    break;
  case WR_WS_EV_CLOSE:
    peer_close(t, ev->data, ev->len);
    break;
  default:
    break;
  }
  return t->state == T_OPEN || t->state == T_CLOSING ? 0 : -1;
}

/* --- the upgrade ------------------------------------------------------------------------------ */

/* A refusal: the reasons of its JSON body, as cloudflared's
 * handleValidationError prints them. */
static int on_refused(void *user, int status, const uint8_t *body, size_t blen, int complete) {
  wr_mgmt_tail *t = user;
  char why[1024];
  size_t o = 0;
  json_t *j, *e;
  size_t i;
  if (!complete) return 0;
  j = json_loadb((const char *)body, blen, 0, NULL);
  if (status == 530)
    o += (size_t)snprintf(why + o, sizeof(why) - o,
                          "no connector available or reachable via management request; ");
  json_array_foreach(json_object_get(j, "errors"), i, e) {
    if (o >= sizeof(why) - 1) break;
    o += (size_t)snprintf(why + o, sizeof(why) - o, "management request failed validation: (%d) %s; ",
                          (int)json_integer_value(json_object_get(e, "code")),
                          json_string_value(json_object_get(e, "message"))
                              ? json_string_value(json_object_get(e, "message"))
                              : "");
  }
  if (o == 0 || o >= sizeof(why))
    snprintf(why, sizeof(why),
             "unable to start management log streaming session: http response code returned %d",
             status);
  else
    why[o - 2] = '\0';
  json_decref(j);
  finish(t, 0, why);
  return -1;
}

static int on_ws_open(void *user) {
  wr_mgmt_tail *t = user;
  t->state = T_OPEN;
  ws_send(t, WR_WS_OP_TEXT, (const uint8_t *)t->start, strlen(t->start));
  return 0;
}

static void on_ws_fail(void *user, int why) {
  static const char *const msgs[] = {
      [WR_WSC_TOO_LARGE] = "the answer to the WebSocket handshake is too large",
      [WR_WSC_BAD_HTTP] = "bad HTTP answer to the WebSocket handshake",
      [WR_WSC_BAD_HANDSHAKE] = "websocket: bad handshake",
      [WR_WSC_BAD_FRAME] = "bad WebSocket frame from the server"};
  finish(user, 0, msgs[why]);
}

static const wr_ws_client_cbs ws_cbs = {on_refused, on_ws_open, on_ws_event, on_ws_fail};

/* --- connection callbacks -------------------------------------------------------------------- */

static void on_connect(wr_conn *c, int status, const char *msg, void *user) {
  wr_mgmt_tail *t = user;
  char why[512];
  (void)c;
  if (status != WR_OK) {
    snprintf(why, sizeof(why), "unable to start management log streaming session: %s",
             msg && msg[0] ? msg : wr_strerror(status));
    finish(t, 0, why);
    return;
  }
  t->state = T_UPGRADE;
  wr_conn_write(t->ws.conn, (const uint8_t *)t->request, strlen(t->request));
}

static void on_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  wr_mgmt_tail *t = user;
  (void)c;
  if (t->state == T_UPGRADE || t->state == T_OPEN || t->state == T_CLOSING)
    wr_ws_client_read(&t->ws, data, len, 0);
}

static void on_eof(wr_conn *c, int status, const char *msg, void *user) {
  wr_mgmt_tail *t = user;
  (void)c;
  (void)status;
  (void)msg;
  if (t->state == T_UPGRADE) wr_ws_client_read(&t->ws, NULL, 0, 1);
  if (t->state == T_UPGRADE) finish(t, 0, "the server closed the connection during the handshake");
  if (t->state == T_CLOSING) finish(t, 1, NULL);
  finish(t, 0, "the management connection was closed abruptly");
}

static const wr_conn_callbacks cbs = {on_connect, on_read, on_eof, NULL, conn_closed};

/* --- configuration ----------------------------------------------------------------------------- */

/* The upgrade request, with the key whose answer we expect. */
static int build_request(wr_mgmt_tail *t, const wr_mgmt_tail_config *cfg) {
  size_t tl = strlen(cfg->token);
  wr_buf target, r;
  int rv;
  /* A JWT is base64url and dots: nothing to escape; anything else is refused. */
  for (size_t i = 0; i < tl; i++)
    if (!(cfg->token[i] == '.' || cfg->token[i] == '-' || cfg->token[i] == '_' ||
          (cfg->token[i] >= '0' && cfg->token[i] <= '9') ||
          ((cfg->token[i] | 0x20) >= 'a' && (cfg->token[i] | 0x20) <= 'z')))
      return WR_ERR_INVAL;
  wr_buf_init(&target, HEAD_MAX, NULL);
  wr_buf_init(&r, HEAD_MAX, NULL);
  wr_buf_printf(&target, "/logs?access_token=%s", cfg->token);
  rv = wr_ws_client_request(&t->ws, wr_buf_cstr(&target), t->host,
                            cfg->dial.user_agent ? cfg->dial.user_agent : "warren", NULL, &r);
  if (rv == WR_OK) t->request = wr_xstrdup(wr_buf_cstr(&r));
  wr_buf_free(&target);
  wr_buf_free(&r);
  return rv;
}

static int configure(wr_mgmt_tail *t, const wr_mgmt_tail_config *cfg, char *err, size_t errlen) {
  const wr_edge_dial *d = &cfg->dial;
  wr_ws_url check = {0};
  wr_buf st;
  int bad = !d->hostname || !d->hostname[0] || strpbrk(d->hostname, " \r\n/?") ||
            wr_ws_url_parse(d->hostname, &check) != WR_OK;
  wr_ws_url_free(&check);
  if (bad) {
    snprintf(err, errlen, "invalid management hostname \"%s\"", d->hostname ? d->hostname : "");
    return WR_ERR_INVAL;
  }
  t->host = wr_xstrdup(d->hostname);
  if (wr_ws_url_parse(d->edge_url && d->edge_url[0] ? d->edge_url : d->hostname,
                      &t->where) != WR_OK) {
    snprintf(err, errlen, "invalid URL \"%s\"", d->edge_url);
    return WR_ERR_INVAL;
  }
  if (!cfg->token || !cfg->token[0] || build_request(t, cfg) != WR_OK) {
    snprintf(err, errlen, "invalid management token");
    return WR_ERR_INVAL;
  }
  wr_buf_init(&st, 4096, NULL);
  if (wr_mgmt_client_event_encode(WR_MGMT_START_STREAMING, cfg->filters, &st) != WR_OK) {
    wr_buf_free(&st);
    snprintf(err, errlen, "invalid filters");
    return WR_ERR_INVAL;
  }
  t->start = wr_xstrdup(wr_buf_cstr(&st));
  wr_buf_free(&st);
  if (t->where.tls) {
    wr_tls_client_config cc = {.ca_file = d->ca_file, .no_verify = d->no_verify};
    if (wr_tls_creds_client(&cc, &t->creds, err, errlen) != WR_OK) return WR_ERR_CRYPTO;
  }
  return WR_OK;
}

int wr_mgmt_tail_start(const wr_mgmt_tail_config *cfg, wr_mgmt_tail **out, char *err,
                       size_t errlen) {
  wr_mgmt_tail *t;
  wr_conn_target ct;
  int rv;
  *out = NULL;
  if (!cfg || !cfg->dial.loop) return WR_ERR_INVAL;
  t = wr_xcalloc(1, sizeof(*t));
  t->loop = cfg->dial.loop;
  t->cfg = *cfg;
  wr_ws_client_init(&t->ws, &ws_cbs, t);
  wr_buf_init(&t->msg, MSG_MAX, NULL);
  rv = configure(t, cfg, err, errlen);
  if (rv != WR_OK) {
    final_free(t);
    return rv;
  }
  uv_timer_init(t->loop, &t->timer);
  t->timer.data = t;
  t->timer_open = 1;
  wr_ws_url_target(&t->where, t->host, t->creds, &ct);
  if (wr_conn_connect(t->loop, &ct, &cbs, t, &t->ws.conn) != WR_OK) {
    snprintf(err, errlen, "cannot connect to %s", t->where.host);
    t->ws.conn = NULL;
    wr_mgmt_tail_free(t);
    return WR_ERR_INVAL;
  }
  t->conn_open = 1;
  *out = t;
  return WR_OK;
}

void wr_mgmt_tail_free(wr_mgmt_tail *t) {
  if (!t || t->freeing) return;
  t->freeing = 1;
  t->state = T_DONE;
  if (t->ws.conn) wr_conn_close(t->ws.conn);
  if (t->timer_open) uv_close((uv_handle_t *)&t->timer, timer_closed);
  maybe_final(t);
}
