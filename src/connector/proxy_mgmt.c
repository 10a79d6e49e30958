/* The management service (cloudflared 2023.7.3 management/service.go,
 * middleware.go): requests the edge sends into the tunnel for the
 * management hostname are served here, never by an origin.
 *   every path  needs ?access_token=<management token> whose claims carry
 *               tun.id, tun.account_tag and actor.id (the edge verified
 *               the signature; like cloudflared, the connector only reads
 *               them), else 400 {"success":false,"errors":[{"code":1001,...}]}
 *   /ping       200
 *   /host_details  {"connector_id":ID,"hostname":LABEL or the host name}
 *   /logs       WebSocket: client events in (text frames), log events out
 *               (connector/mgmt_logs.h); the connector terminates it
 *   anything else 404.
 * Stream bytes are consumed as they are decoded; a peer that does not read
 * loses log events (mgmt_logs.h) rather than growing our queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "connector/mgmt_logs.h"
#include "connector/proxy_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/mgmt_token.h"
#include "proto/wsframe.h"

/* A client event larger than this ends the session (close 1009). */
#define MSG_MAX (64u * 1024u)
/* Bytes waiting for QUIC beyond which log events are dropped. */
#define OUT_DROP (256u * 1024u)
#define WS_STEP 16384

struct mgmt_ws {
  wr_ws_decoder dec;
  wr_buf msg; /* the client message being collected */
  wr_mgmt_session *sess;
  int close_sent;
};

int wr__proxy_mgmt_host(const pstream *s) {
  const char *h = s->hm.host, *want = s->p->mgmt_host;
  size_t hl = s->hm.host_len;
  if (!want || !want[0] || !h) return 0;
  /* Without a port, as ingress rules match. */
  const char *colon = memchr(h, ':', hl);
  if (colon && h[0] != '[') hl = (size_t)(colon - h);
  return hl == strlen(want) && strncasecmp(h, want, hl) == 0;
}

/* The value of query parameter |name| of the request target, decoded, in
 * |out|. Returns 1 when present and non-empty. */
static int query_param(const char *target, const char *name, char *out, size_t cap) {
  const char *q = strchr(target, '?');
  size_t nl = strlen(name);
  while (q && *q) {
    const char *k = q + 1, *amp = strchr(k, '&');
    size_t kl = amp ? (size_t)(amp - k) : strlen(k);
    if (kl > nl && k[nl] == '=' && strncmp(k, name, nl) == 0)
      return wr_pct_decode(k + nl + 1, kl - nl - 1, WR_PCT_PLUS, out, cap) > 0;
    q = amp;
  }
  return 0;
}

static void respond_json(pstream *s, int status, const char *body) {
  char clen[24];
  snprintf(clen, sizeof(clen), "%zu", strlen(body));
  wr_http_header hs[2] = {{"Content-Type", 12, "application/json", 16},
                          {"Content-Length", 14, clen, strlen(clen)}};
  wr__proxy_respond_local(s, status, hs, 2, (const uint8_t *)body, strlen(body));
}

static void host_details(pstream *s) {
  char host[256], body[512];
  const char *label = s->p->mgmt_label;
  if (label && label[0]) {
    snprintf(host, sizeof(host), "custom:%s", label);
  } else if (gethostname(host, sizeof(host)) != 0) {
    snprintf(host, sizeof(host), "unknown");
  }
  host[sizeof(host) - 1] = '\0';
  for (char *c = host; *c; c++)
    if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) *c = '?';
  snprintf(body, sizeof(body), "{\"connector_id\":\"%s\",\"hostname\":\"%s\"}", s->p->tag,
           host);
  respond_json(s, 200, body);
}

/* --- the /logs WebSocket ---------------------------------------------------------------- */

static void ws_emit(pstream *s, int op, const uint8_t *data, size_t len) {
  uint8_t h[WR_WS_HEAD_MAX];
  size_t hl = wr_ws_frame_head(h, op, len, NULL);
  wr__proxy_emit(s, h, hl);
  if (len) wr__proxy_emit(s, data, len);
}

/* Close frame with |code| and |reason|, then the end of the stream. */
static void ws_close(pstream *s, unsigned code, const char *reason) {
  uint8_t b[125];
  size_t rl = strlen(reason) < sizeof(b) - 2 ? strlen(reason) : sizeof(b) - 2;
  if (s->state != ST_PIPE || s->mws->close_sent) return;
  s->mws->close_sent = 1;
  b[0] = (uint8_t)(code >> 8);
  b[1] = (uint8_t)code;
  memcpy(b + 2, reason, rl);
  ws_emit(s, WR_WS_OP_CLOSE, b, rl + 2);
  wr__proxy_complete(s, 0);
}

static int sess_send(void *user, const char *json, size_t len) {
  pstream *s = user;
  if (s->state != ST_PIPE || s->mws->close_sent) return 1;
  if (s->out.len > OUT_DROP) return 1;
  ws_emit(s, WR_WS_OP_TEXT, (const uint8_t *)json, len);
  return 0;
}

static void sess_close(void *user, unsigned code, const char *reason) {
  ws_close(user, code, reason);
}

static const wr_mgmt_session_ops sess_ops = {sess_send, sess_close};

static void ws_event(pstream *s, const wr_ws_event *ev) {
  mgmt_ws *w = s->mws;
  switch (ev->kind) {
  case WR_WS_EV_DATA:
    if (wr_buf_append(&w->msg, ev->data, ev->len) != WR_OK) {
      ws_close(s, 1009, "message too big");
      return;
    }
    if (ev->end) {
      wr_mgmt_session_message(w->sess, (const char *)w->msg.data, w->msg.len);
      wr_buf_reset(&w->msg);
    }
    break;
  case WR_WS_EV_PING:
    ws_emit(s, WR_WS_OP_PONG, ev->data, ev->len);
    break;
  case WR_WS_EV_CLOSE:
    ws_close(s, WR_MGMT_CLOSE_NORMAL, "");
    break;
  default:
    break;
  }
}

void wr__proxy_mgmt_edge_input(pstream *s, const uint8_t *data, size_t len, int fin) {
  uint8_t buf[WS_STEP];
  size_t off = 0;
  if (len) wr__proxy_consume(s, len);
  while (off < len && s->state == ST_PIPE && !s->mws->close_sent) {
    size_t n = len - off < WS_STEP ? len - off : WS_STEP, used = 0;
    wr_ws_event ev;
    if (wr_ws_decode(&s->mws->dec, data + off, n, buf, &used, &ev) != 0) {
      ws_close(s, 1002, "bad frame");
      return;
    }
    off += used;
    ws_event(s, &ev);
  }
  if (fin && !s->edge_fin) {
    s->edge_fin = 1;
    if (s->state == ST_PIPE) ws_close(s, WR_MGMT_CLOSE_NORMAL, "");
  }
}

static void logs_start(pstream *s, const wr_mgmt_claims *c) {
  const wr_http_header *kf = wr__proxy_field(s, "Sec-WebSocket-Key");
  const char *key = kf ? kf->value : NULL;
  size_t kl = kf ? kf->value_len : 0;
  char accept[WR_WS_ACCEPT_LEN];
  if (!s->ws) {
    respond_json(s, 426, "{\"success\":false,\"errors\":[{\"code\":1002,\"message\":"
                         "\"a WebSocket upgrade is required\"}]}");
    return;
  }
  int rv;
  if (key && kl) {
    if (wr_ws_accept(key, kl, accept) != 0) {
      wr__proxy_respond_error(s, "cannot compute Sec-WebSocket-Accept");
      return;
    }
    wr_http_header hs[3] = {{"Connection", 10, "Upgrade", 7},
                            {"Sec-Websocket-Accept", 20, accept, strlen(accept)},
                            {"Upgrade", 7, "websocket", 9}};
    rv = wr__proxy_send_head(s, 101, hs, 3);
  } else {
    rv = wr__proxy_send_head(s, 101, NULL, 0);
  }
  if (rv != WR_OK || s->state == ST_DONE) {
    if (rv != WR_OK) wr__proxy_respond_error(s, "cannot encode the response");
    return;
  }
  s->mws = wr_xcalloc(1, sizeof(*s->mws));
  wr_ws_decoder_init(&s->mws->dec, 1);
  wr_buf_init(&s->mws->msg, MSG_MAX, NULL);
  s->mws->sess = wr_mgmt_session_new(s->p->mgmt, c->actor_id, &sess_ops, s);
  wr__proxy_set_state(s, ST_PIPE);
  s->ready = 1;
  wr_debug("management logs: session opened for tunnel %s", c->tunnel_id);
}

void wr__proxy_mgmt_start(pstream *s, const char *path) {
  char tok[WR_MGMT_TOKEN_MAX + 1];
  wr_mgmt_claims c;
  if (!query_param(s->target, "access_token", tok, sizeof(tok)) ||
      wr_mgmt_token_parse(tok, strlen(tok), &c) != WR_OK) {
    respond_json(s, 400, "{\"success\":false,\"errors\":[{\"code\":1001,\"message\":"
                         "\"missing access_token query parameter\"}]}");
    return;
  }
  explicit_bzero(tok, sizeof(tok));
  if (strcmp(path, "/ping") == 0)
    wr__proxy_respond_local(s, 200, NULL, 0, NULL, 0);
  else if (strcmp(path, "/host_details") == 0)
    host_details(s);
  else if (strcmp(path, "/logs") == 0)
    logs_start(s, &c);
  else
    respond_json(s, 404, "{\"success\":false,\"errors\":[{\"code\":1004,\"message\":"
                         "\"not found\"}]}");
}

void wr__proxy_mgmt_free(pstream *s) {
  if (!s->mws) return;
  wr_mgmt_session_free(s->mws->sess);
  wr_buf_free(&s->mws->msg);
  free(s->mws);
  s->mws = NULL;
}
