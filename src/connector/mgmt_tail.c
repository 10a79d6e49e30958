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
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/conn.h"
#include "net/tls.h"
#include "proto/http1.h"
#include "proto/wsframe.h"

#define HEAD_MAX (64u * 1024u)
#define MSG_MAX (4u * 1024u * 1024u)
#define WS_STEP 16384
#define CLOSE_WAIT_MS 1000

enum { T_CONNECTING = 0, T_UPGRADE, T_REFUSED, T_OPEN, T_CLOSING, T_DONE };

struct wr_mgmt_tail {
  uv_loop_t *loop;
  wr_conn *conn;
  uv_timer_t timer;
  int timer_open, conn_open, freeing;
  int state;
  char *host;  /* the management hostname, the request's Host */
  char *chost; /* where to connect */
  uint16_t cport;
  int tls;
  wr_tls_creds *creds;
  char *request; /* the upgrade request */
  char accept[WR_WS_ACCEPT_LEN];
  wr_buf in;  /* the answer's head (and a refusal's body) */
  wr_buf msg; /* the text message being collected */
  wr_ws_decoder dec;
  char *start; /* the start_streaming event */
  wr_mgmt_tail_config cfg; /* callbacks and user */
};

/* --- lifetime ------------------------------------------------------------------------ */

static void final_free(wr_mgmt_tail *t) {
  wr_tls_creds_free(t->creds);
  wr_buf_free(&t->in);
  wr_buf_free(&t->msg);
  free(t->host);
  free(t->chost);
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
  t->conn = NULL;
  maybe_final(t);
}

/* The end, reported once; the connection closes. */
static void finish(wr_mgmt_tail *t, int ok, const char *why) {
  if (t->state == T_DONE) return;
  t->state = T_DONE;
  uv_timer_stop(&t->timer);
  if (t->conn) wr_conn_close(t->conn);
  if (t->cfg.on_end) t->cfg.on_end(t->cfg.user, ok, why);
}

/* --- frames out ------------------------------------------------------------------------ */

static void ws_send(wr_mgmt_tail *t, int op, const uint8_t *data, size_t len) {
  uint8_t h[WR_WS_HEAD_MAX], key[4];
  if (!t->conn || wr_random_bytes(key, sizeof(key)) != WR_OK) return;
  size_t hl = wr_ws_frame_head(h, op, len, key);
  uint8_t *frame = wr_xmalloc(hl + len + 1);
  memcpy(frame, h, hl);
  if (len) memcpy(frame + hl, data, len);
  wr_ws_mask(frame + hl, len, key, 0);
  wr_conn_write(t->conn, frame, hl + len);
  free(frame);
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
  unsigned code = n >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;
  if (t->state == T_OPEN) ws_send(t, WR_WS_OP_CLOSE, p, n >= 2 ? 2 : 0);
  if (code == 1000 || t->state == T_CLOSING) {
    finish(t, 1, NULL);
    return;
  }
  snprintf(why, sizeof(why), "received remote closure: (%u) %.*s", code,
           (int)(n > 2 ? n - 2 : 0), (const char *)p + 2);
  finish(t, 0, why);
}

static void ws_event(wr_mgmt_tail *t, const wr_ws_event *ev) {
  switch (ev->kind) {
  case WR_WS_EV_DATA:
    if (wr_buf_append(&t->msg, ev->data, ev->len) != WR_OK) {
      finish(t, 0, "a log event larger than 4 MiB");
      return;
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
}

static void frames_in(wr_mgmt_tail *t, const uint8_t *data, size_t len) {
  uint8_t buf[WS_STEP];
  size_t off = 0;
  while (off < len && (t->state == T_OPEN || t->state == T_CLOSING)) {
    size_t n = len - off < WS_STEP ? len - off : WS_STEP, used = 0;
    wr_ws_event ev;
    if (wr_ws_decode(&t->dec, data + off, n, buf, &used, &ev) != 0) {
      finish(t, 0, "bad WebSocket frame from the server");
      return;
    }
    off += used;
    ws_event(t, &ev);
  }
}

/* --- the upgrade ------------------------------------------------------------------------------ */

/* A refusal: the reasons of its JSON body, as cloudflared's
 * handleValidationError prints them. */
static void refused(wr_mgmt_tail *t, int status, const uint8_t *body, size_t blen) {
  char why[1024];
  size_t o = 0;
  json_t *j = json_loadb((const char *)body, blen, 0, NULL), *e;
  size_t i;
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
}

static const wr_http_header *field(const wr_http1_head *h, const char *name) {
  for (size_t i = 0; i < h->nheaders; i++)
    if (h->headers[i].name_len == strlen(name) &&
        strncasecmp(h->headers[i].name, name, h->headers[i].name_len) == 0)
      return &h->headers[i];
  return NULL;
}

static void upgrade_input(wr_mgmt_tail *t, int eof) {
  wr_http_header hs[64];
  wr_http1_head h;
  size_t used = 0;
  int rv = wr_http1_parse_response(t->in.data, t->in.len, "GET", NULL, hs, 64, &h, &used);
  if (rv == WR_AGAIN) {
    if (eof) finish(t, 0, "the server closed the connection during the handshake");
    return;
  }
  if (rv != WR_OK) {
    finish(t, 0, "bad HTTP answer to the WebSocket handshake");
    return;
  }
  if (h.status != 101) {
    size_t have = t->in.len - used;
    int complete = eof || h.body == WR_HTTP1_BODY_NONE ||
                   (h.body == WR_HTTP1_BODY_LENGTH && have >= h.content_length);
    if (complete) refused(t, h.status, t->in.data + used, have);
    return;
  }
  const wr_http_header *acc = field(&h, "Sec-WebSocket-Accept");
  if (!h.websocket || !acc || acc->value_len != strlen(t->accept) ||
      memcmp(acc->value, t->accept, acc->value_len) != 0) {
    finish(t, 0, "websocket: bad handshake");
    return;
  }
  t->state = T_OPEN;
  ws_send(t, WR_WS_OP_TEXT, (const uint8_t *)t->start, strlen(t->start));
  wr_buf rest = t->in;
  wr_buf_init(&t->in, HEAD_MAX, NULL);
  if (rest.len > used) frames_in(t, rest.data + used, rest.len - used);
  wr_buf_free(&rest);
}

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
  wr_conn_write(t->conn, (const uint8_t *)t->request, strlen(t->request));
}

static void on_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  wr_mgmt_tail *t = user;
  (void)c;
  if (t->state == T_UPGRADE) {
    if (wr_buf_append(&t->in, data, len) != WR_OK) {
      finish(t, 0, "the answer to the WebSocket handshake is too large");
      return;
    }
    upgrade_input(t, 0);
  } else if (t->state == T_OPEN || t->state == T_CLOSING) {
    frames_in(t, data, len);
  }
}

static void on_eof(wr_conn *c, int status, const char *msg, void *user) {
  wr_mgmt_tail *t = user;
  (void)c;
  (void)status;
  (void)msg;
  if (t->state == T_UPGRADE) upgrade_input(t, 1);
  if (t->state == T_CLOSING) finish(t, 1, NULL);
  finish(t, 0, "the management connection was closed abruptly");
}

static const wr_conn_callbacks cbs = {on_connect, on_read, on_eof, NULL, conn_closed};

/* --- configuration ----------------------------------------------------------------------------- */

/* "scheme://host[:port][/...]" or "host[:port]" into host, port and TLS. */
static int parse_where(const char *u, char **host, uint16_t *port, int *tls) {
  const char *p = strstr(u, "://"), *a = u;
  char h[256];
  unsigned pt;
  *tls = 1;
  if (p) {
    size_t sl = (size_t)(p - u);
    if ((sl == 4 && strncasecmp(u, "http", 4) == 0) || (sl == 2 && strncasecmp(u, "ws", 2) == 0))
      *tls = 0;
    else if (!((sl == 5 && strncasecmp(u, "https", 5) == 0) ||
               (sl == 3 && strncasecmp(u, "wss", 3) == 0)))
      return -1;
    a = p + 3;
  }
  size_t n = strcspn(a, "/?");
  if (n == 0 || n >= sizeof(h)) return -1;
  memcpy(h, a, n);
  h[n] = '\0';
  pt = *tls ? 443 : 80;
  if (strchr(h, ':') && (h[0] != '[' || strstr(h, "]:"))) {
    char hh[256];
    if (wr_addr_split(h, hh, sizeof(hh), &pt) != 0) return -1;
    snprintf(h, sizeof(h), "%s", hh);
  }
  *host = wr_xstrdup(h);
  *port = (uint16_t)pt;
  return 0;
}

/* The upgrade request, with the key whose answer we expect. */
static int build_request(wr_mgmt_tail *t, const wr_mgmt_tail_config *cfg) {
  uint8_t nonce[16];
  char key[WR_BASE64_ENCODED_SIZE(16)];
  size_t tl = strlen(cfg->token);
  wr_buf r;
  if (wr_random_bytes(nonce, sizeof(nonce)) != WR_OK ||
      wr_base64_encode(nonce, sizeof(nonce), key, sizeof(key), WR_BASE64_PAD) < 0 ||
      wr_ws_accept(key, strlen(key), t->accept) != 0)
    return WR_ERR_CRYPTO;
  /* A JWT is base64url and dots: nothing to escape; anything else is refused. */
  for (size_t i = 0; i < tl; i++)
    if (!(cfg->token[i] == '.' || cfg->token[i] == '-' || cfg->token[i] == '_' ||
          (cfg->token[i] >= '0' && cfg->token[i] <= '9') ||
          ((cfg->token[i] | 0x20) >= 'a' && (cfg->token[i] | 0x20) <= 'z')))
      return WR_ERR_INVAL;
  wr_buf_init(&r, HEAD_MAX, NULL);
  wr_buf_printf(&r,
                "GET /logs?access_token=%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n",
                cfg->token, t->host,
                cfg->user_agent ? cfg->user_agent : "warren", key);
  t->request = wr_xstrdup(wr_buf_cstr(&r));
  wr_buf_free(&r);
  return WR_OK;
}

static int configure(wr_mgmt_tail *t, const wr_mgmt_tail_config *cfg, char *err, size_t errlen) {
  uint16_t hp;
  int htls;
  char *hh = NULL;
  wr_buf st;
  if (!cfg->hostname || !cfg->hostname[0] || strpbrk(cfg->hostname, " \r\n/?") ||
      parse_where(cfg->hostname, &hh, &hp, &htls) != 0) {
    snprintf(err, errlen, "invalid management hostname \"%s\"", cfg->hostname ? cfg->hostname : "");
    return WR_ERR_INVAL;
  }
  free(hh);
  t->host = wr_xstrdup(cfg->hostname);
  if (parse_where(cfg->edge_url && cfg->edge_url[0] ? cfg->edge_url : cfg->hostname, &t->chost,
                  &t->cport, &t->tls) != 0) {
    snprintf(err, errlen, "invalid URL \"%s\"", cfg->edge_url);
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
  if (t->tls) {
    wr_tls_client_config cc = {.ca_file = cfg->ca_file, .no_verify = cfg->no_verify};
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
  if (!cfg || !cfg->loop) return WR_ERR_INVAL;
  t = wr_xcalloc(1, sizeof(*t));
  t->loop = cfg->loop;
  t->cfg = *cfg;
  wr_buf_init(&t->in, HEAD_MAX, NULL);
  wr_buf_init(&t->msg, MSG_MAX, NULL);
  wr_ws_decoder_init(&t->dec, 0);
  rv = configure(t, cfg, err, errlen);
  if (rv != WR_OK) {
    final_free(t);
    return rv;
  }
  uv_timer_init(t->loop, &t->timer);
  t->timer.data = t;
  t->timer_open = 1;
  memset(&ct, 0, sizeof(ct));
  ct.host = t->chost;
  ct.port = t->cport;
  ct.tls = t->creds;
  ct.server_name = t->tls ? t->host : NULL;
  if (wr_conn_connect(t->loop, &ct, &cbs, t, &t->conn) != WR_OK) {
    snprintf(err, errlen, "cannot connect to %s", t->chost);
    t->conn = NULL;
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
  if (t->conn) wr_conn_close(t->conn);
  if (t->timer_open) uv_close((uv_handle_t *)&t->timer, timer_closed);
  maybe_final(t);
}
