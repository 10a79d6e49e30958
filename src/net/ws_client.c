/* The client half of a WebSocket; see ws_client.h. */
#include "net/ws_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "proto/http1.h"

#define HEAD_MAX (64u * 1024u)
#define WS_STEP 16384

/* --- the URL ------------------------------------------------------------------------- */

/* host and port of an authority, with the scheme's default port. */
static int split_authority(const char *auth, int tls, char **host, uint16_t *port) {
  char h[256];
  unsigned p = tls ? 443 : 80;
  if (strchr(auth, ':') && (auth[0] != '[' || strstr(auth, "]:"))) {
    if (wr_addr_split(auth, h, sizeof(h), &p) != 0) return -1;
  } else {
    size_t n = strlen(auth);
    if (auth[0] == '[' && n > 2) auth++, n -= 2;
    if (n >= sizeof(h)) return -1;
    memcpy(h, auth, n);
    h[n] = '\0';
  }
  *host = wr_xstrdup(h);
  *port = (uint16_t)p;
  return 0;
}

int wr_ws_url_parse(const char *u, wr_ws_url *out) {
  const char *p = strstr(u, "://"), *a = u;
  memset(out, 0, sizeof(*out));
  if (p) {
    out->scheme = wr_xstrndup(u, (size_t)(p - u));
    a = p + 3;
  } else {
    out->scheme = wr_xstrdup("https");
  }
  size_t n = strcspn(a, "/?");
  out->authority = wr_xstrndup(a, n);
  out->path = wr_xstrdup(a[n] == '/' ? a + n : "/");
  for (char *c = out->scheme; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  out->tls = strcmp(out->scheme, "https") == 0 || strcmp(out->scheme, "wss") == 0;
  if (!out->authority[0] ||
      (!out->tls && strcmp(out->scheme, "http") != 0 && strcmp(out->scheme, "ws") != 0) ||
      split_authority(out->authority, out->tls, &out->host, &out->port) != 0)
    return WR_ERR_INVAL;
  return WR_OK;
}

void wr_ws_url_free(wr_ws_url *u) {
  free(u->scheme);
  free(u->authority);
  free(u->host);
  free(u->path);
  memset(u, 0, sizeof(*u));
}

void wr_ws_url_target(const wr_ws_url *where, const char *server_name, wr_tls_creds *creds,
                      wr_conn_target *out) {
  memset(out, 0, sizeof(*out));
  out->host = where->host;
  out->port = where->port;
  out->tls = where->tls ? creds : NULL;
  out->server_name = where->tls ? server_name : NULL;
}

/* --- the object ---------------------------------------------------------------------- */

void wr_ws_client_init(wr_ws_client *w, const wr_ws_client_cbs *cbs, void *user) {
  memset(w, 0, sizeof(*w));
  w->cbs = cbs;
  w->user = user;
  wr_buf_init(&w->head, HEAD_MAX, NULL);
  wr_ws_decoder_init(&w->dec, 0);
}

void wr_ws_client_free(wr_ws_client *w) { wr_buf_free(&w->head); }

int wr_ws_client_request(wr_ws_client *w, const char *target, const char *host, const char *ua,
                         const char *extra, wr_buf *out) {
  uint8_t nonce[16];
  char key[WR_BASE64_ENCODED_SIZE(16)];
  if (wr_random_bytes(nonce, sizeof(nonce)) != WR_OK ||
      wr_base64_encode(nonce, sizeof(nonce), key, sizeof(key), WR_BASE64_PAD) < 0 ||
      wr_ws_accept(key, strlen(key), w->accept) != 0)
    return WR_ERR_CRYPTO;
  wr_buf_printf(out, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, host);
  if (ua) wr_buf_printf(out, "User-Agent: %s\r\n", ua);
  wr_buf_printf(out,
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Version: 13\r\n%s\r\n",
                key, extra ? extra : "");
  return WR_OK;
}

int wr_ws_client_send(wr_ws_client *w, int opcode, const uint8_t *data, size_t len) {
  uint8_t h[WR_WS_HEAD_MAX], key[4];
  if (!w->conn) return WR_ERR_INVAL;
  if (wr_random_bytes(key, sizeof(key)) != WR_OK) return WR_ERR_CRYPTO;
  size_t hl = wr_ws_frame_head(h, opcode, len, key);
  uint8_t *frame = wr_xmalloc(hl + len + 1);
  memcpy(frame, h, hl);
  if (len) memcpy(frame + hl, data, len);
  wr_ws_mask(frame + hl, len, key, 0);
  int rv = wr_conn_write(w->conn, frame, hl + len);
  free(frame);
  return rv;
}

/* --- bytes in ------------------------------------------------------------------------ */

static void frames_in(wr_ws_client *w, const uint8_t *data, size_t len) {
  uint8_t buf[WS_STEP];
  size_t off = 0;
  while (off < len) {
    size_t n = len - off < WS_STEP ? len - off : WS_STEP, used = 0;
    wr_ws_event ev;
    if (wr_ws_decode(&w->dec, data + off, n, buf, &used, &ev) != 0) {
      w->cbs->on_fail(w->user, WR_WSC_BAD_FRAME);
      return;
    }
    off += used;
    if (ev.kind != WR_WS_EV_NONE && w->cbs->on_event(w->user, &ev) != 0) return;
  }
}

static const wr_http_header *field(const wr_http1_head *h, const char *name) {
  for (size_t i = 0; i < h->nheaders; i++)
    if (h->headers[i].name_len == strlen(name) &&
        strncasecmp(h->headers[i].name, name, h->headers[i].name_len) == 0)
      return &h->headers[i];
  return NULL;
}

static void answer_in(wr_ws_client *w, int eof) {
  wr_http_header hs[64];
  wr_http1_head h;
  size_t used = 0;
  int rv = wr_http1_parse_response(w->head.data, w->head.len, "GET", NULL, hs, 64, &h, &used);
  if (rv == WR_AGAIN) return;
  if (rv != WR_OK) {
    w->cbs->on_fail(w->user, WR_WSC_BAD_HTTP);
    return;
  }
  if (h.status != 101) {
    size_t have = w->head.len - used;
    int complete = eof || h.body == WR_HTTP1_BODY_NONE ||
                   (h.body == WR_HTTP1_BODY_LENGTH && have >= h.content_length);
    w->cbs->on_refused(w->user, h.status, w->head.data + used, have, complete);
    return;
  }
  const wr_http_header *acc = field(&h, "Sec-WebSocket-Accept");
  if (!h.websocket || !acc || acc->value_len != strlen(w->accept) ||
      memcmp(acc->value, w->accept, acc->value_len) != 0) {
    w->cbs->on_fail(w->user, WR_WSC_BAD_HANDSHAKE);
    return;
  }
  w->open = 1;
  if (w->cbs->on_open(w->user) != 0) return;
  wr_buf rest = w->head;
  wr_buf_init(&w->head, HEAD_MAX, NULL);
  if (rest.len > used) frames_in(w, rest.data + used, rest.len - used);
  wr_buf_free(&rest);
}

void wr_ws_client_read(wr_ws_client *w, const uint8_t *data, size_t len, int eof) {
  if (w->open) {
    frames_in(w, data, len);
    return;
  }
  if (wr_buf_append(&w->head, data, len) != WR_OK) {
    w->cbs->on_fail(w->user, WR_WSC_TOO_LARGE);
    return;
  }
  answer_in(w, eof);
}
