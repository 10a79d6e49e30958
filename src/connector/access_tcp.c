/* `warren access tcp`: local TCP connections carried over WebSockets; see
 * access_tcp.h for the behaviour.
 *
 * Objects: wr_access_tcp owns the listener and the sessions (a list). A
 * session owns two wr_conns (the local connection, the WebSocket to the
 * edge) and a linger timer; it is freed when libuv has closed all three
 * (|handles| counts them), never inside one of their callbacks.
 *
 * Flow control: reads on one side stop while the other side's write queue
 * is above HIGH_WATER and resume on its on_drain. */
#include "connector/access_tcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/conn.h"
#include "net/tls.h"
#include "proto/http1.h"
#include "proto/wsframe.h"

#define HIGH_WATER (4u * WR_CONN_LOW_WATER)
#define HEAD_MAX (64u * 1024u)
#define WS_STEP 16384
#define LINGER_POLL_MS 20
#define LINGER_MAX_MS 30000

typedef struct session session;

struct wr_access_tcp {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int listening;
  char *scheme, *authority, *host, *path; /* the application URL */
  char *chost;                            /* where to connect */
  uint16_t cport;
  int tls;
  wr_tls_creds *creds;
  wr_buf extra; /* request fields after the handshake's own, CRLF-terminated lines */
  session *sessions;
  wr_access_tcp_stats stats;
  int dying;
  size_t handles; /* listener + sessions not yet freed */
};

enum { S_CONNECTING = 0, S_HANDSHAKE, S_OPEN, S_CLOSING };

struct session {
  wr_access_tcp *a;
  wr_conn *local, *remote;
  uv_timer_t linger;
  uint64_t linger_ms;
  int state;
  int handles;
  wr_buf head;
  char accept[WR_WS_ACCEPT_LEN];
  wr_ws_decoder dec;
  int local_eof;    /* the local side ended: our Close frame is out */
  int remote_close; /* the other end's Close frame came */
  session *next, *prev;
};

/* --- lifetime ----------------------------------------------------------------------- */

static void access_handle_done(wr_access_tcp *a);

static void session_handle_done(session *s) {
  if (--s->handles > 0) return;
  wr_access_tcp *a = s->a;
  if (s->prev)
    s->prev->next = s->next;
  else
    a->sessions = s->next;
  if (s->next) s->next->prev = s->prev;
  a->stats.active--;
  wr_buf_free(&s->head);
  free(s);
  access_handle_done(a);
}

static void linger_closed(uv_handle_t *h) { session_handle_done(h->data); }

static void session_close(session *s) {
  if (s->state == S_CLOSING) return;
  s->state = S_CLOSING;
  uv_timer_stop(&s->linger);
  uv_close((uv_handle_t *)&s->linger, linger_closed);
  if (s->local) wr_conn_close(s->local);
  if (s->remote) wr_conn_close(s->remote);
}

/* Both directions ended: the last bytes go out (shutdown after the queue)
 * before the sockets close. */
static void linger_cb(uv_timer_t *t) {
  session *s = t->data;
  s->linger_ms += LINGER_POLL_MS;
  if ((wr_conn_write_queued(s->local) == 0 && wr_conn_write_queued(s->remote) == 0) ||
      s->linger_ms >= LINGER_MAX_MS)
    session_close(s);
}

static void maybe_done(session *s) {
  if (!s->local_eof || !s->remote_close || s->state == S_CLOSING) return;
  wr_conn_shutdown(s->remote);
  uv_timer_start(&s->linger, linger_cb, LINGER_POLL_MS, LINGER_POLL_MS);
}

/* --- towards the edge ----------------------------------------------------------------- */

/* One masked client frame. */
static int ws_send(session *s, int op, const uint8_t *data, size_t len) {
  uint8_t h[WR_WS_HEAD_MAX], key[4];
  if (wr_random_bytes(key, sizeof(key)) != WR_OK) return WR_ERR_CRYPTO;
  size_t hl = wr_ws_frame_head(h, op, len, key);
  uint8_t *frame = wr_xmalloc(hl + len + 1);
  memcpy(frame, h, hl);
  if (len) memcpy(frame + hl, data, len);
  wr_ws_mask(frame + hl, len, key, 0);
  int rv = wr_conn_write(s->remote, frame, hl + len);
  free(frame);
  return rv;
}

static void send_handshake(session *s) {
  wr_access_tcp *a = s->a;
  uint8_t nonce[16];
  char key[WR_BASE64_ENCODED_SIZE(16)];
  wr_buf req;
  if (wr_random_bytes(nonce, sizeof(nonce)) != WR_OK ||
      wr_base64_encode(nonce, sizeof(nonce), key, sizeof(key), WR_BASE64_PAD) < 0 ||
      wr_ws_accept(key, strlen(key), s->accept) != 0) {
    session_close(s);
    return;
  }
  wr_buf_init(&req, HEAD_MAX, NULL);
  wr_buf_printf(&req,
                "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                a->path, a->authority, key);
  wr_buf_append(&req, a->extra.data, a->extra.len);
  wr_buf_append_str(&req, "\r\n");
  wr_conn_write(s->remote, req.data, req.len);
  wr_buf_free(&req);
  s->state = S_HANDSHAKE;
}

/* --- from the edge ------------------------------------------------------------------- */

static void ws_event(session *s, const wr_ws_event *ev) {
  switch (ev->kind) {
  case WR_WS_EV_DATA:
    if (!s->remote_close && ev->len) wr_conn_write(s->local, ev->data, ev->len);
    if (wr_conn_write_queued(s->local) > HIGH_WATER) wr_conn_read_stop(s->remote);
    break;
  case WR_WS_EV_PING:
    ws_send(s, WR_WS_OP_PONG, ev->data, ev->len);
    break;
  case WR_WS_EV_CLOSE:
    if (s->remote_close) break;
    s->remote_close = 1;
    wr_conn_shutdown(s->local);
    maybe_done(s);
    break;
  default:
    break;
  }
}

static void frames_in(session *s, const uint8_t *data, size_t len) {
  uint8_t buf[WS_STEP];
  size_t off = 0;
  while (off < len && s->state == S_OPEN) {
    size_t n = len - off < WS_STEP ? len - off : WS_STEP, used = 0;
    wr_ws_event ev;
    if (wr_ws_decode(&s->dec, data + off, n, buf, &used, &ev) != 0) {
      wr_error("access: bad WebSocket frame from %s; closing the connection", s->a->authority);
      session_close(s);
      return;
    }
    off += used;
    ws_event(s, &ev);
  }
}

static const wr_http_header *field(const wr_http1_head *h, const char *name) {
  for (size_t i = 0; i < h->nheaders; i++)
    if (h->headers[i].name_len == strlen(name) &&
        strncasecmp(h->headers[i].name, name, h->headers[i].name_len) == 0)
      return &h->headers[i];
  return NULL;
}

/* The handshake answer; gorilla's checks: 101, Upgrade: websocket,
 * Connection: upgrade, the right Sec-WebSocket-Accept. */
static void handshake_input(session *s, const uint8_t *data, size_t len) {
  wr_http_header hs[64];
  wr_http1_head h;
  size_t used = 0;
  if (wr_buf_append(&s->head, data, len) != WR_OK) {
    wr_error("access: the response from %s is too large", s->a->authority);
    s->a->stats.failed++;
    session_close(s);
    return;
  }
  int rv = wr_http1_parse_response(s->head.data, s->head.len, "GET", NULL, hs, 64, &h, &used);
  if (rv == WR_AGAIN) return;
  const wr_http_header *acc = rv == WR_OK ? field(&h, "Sec-WebSocket-Accept") : NULL;
  if (rv != WR_OK || h.status != 101 || !h.websocket || !acc || acc->value_len != strlen(s->accept) ||
      memcmp(acc->value, s->accept, acc->value_len) != 0) {
    if (rv == WR_OK && h.status != 101)
      wr_error("access: %s answered %d instead of switching to WebSocket", s->a->authority,
               h.status);
    else
      wr_error("access: websocket: bad handshake from %s", s->a->authority);
    s->a->stats.failed++;
    session_close(s);
    return;
  }
  s->a->stats.upgraded++;
  s->state = S_OPEN;
  wr_conn_read_start(s->local);
  wr_buf rest = s->head;
  wr_buf_init(&s->head, HEAD_MAX, NULL);
  if (rest.len > used) frames_in(s, rest.data + used, rest.len - used);
  wr_buf_free(&rest);
}

static void r_on_connect(wr_conn *c, int status, const char *msg, void *user) {
  session *s = user;
  if (status != WR_OK) {
    wr_error("access: failed to connect to origin: %s", msg ? msg : wr_strerror(status));
    s->a->stats.failed++;
    session_close(s);
    return;
  }
  send_handshake(s);
}

static void r_on_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  session *s = user;
  if (s->state == S_HANDSHAKE)
    handshake_input(s, data, len);
  else if (s->state == S_OPEN)
    frames_in(s, data, len);
}

static void r_on_eof(wr_conn *c, int status, const char *msg, void *user) {
  session *s = user;
  if (s->state == S_HANDSHAKE) {
    wr_error("access: %s closed the connection during the handshake", s->a->authority);
    s->a->stats.failed++;
  }
  session_close(s);
}

static void r_on_drain(wr_conn *c, void *user) {
  session *s = user;
  if (s->state == S_OPEN && !s->local_eof) wr_conn_read_start(s->local);
}

static void on_conn_closed(wr_conn *c, void *user) { session_handle_done(user); }

static const wr_conn_callbacks remote_cbs = {r_on_connect, r_on_read, r_on_eof, r_on_drain,
                                             on_conn_closed};

/* --- the local connection -------------------------------------------------------------- */

static void l_on_connect(wr_conn *c, int status, const char *msg, void *user) {
  session *s = user;
  if (status != WR_OK) session_close(s);
}

static void l_on_read(wr_conn *c, const uint8_t *data, size_t len, void *user) {
  session *s = user;
  if (s->state != S_OPEN) return;
  if (ws_send(s, WR_WS_OP_BINARY, data, len) != WR_OK) {
    session_close(s);
    return;
  }
  if (wr_conn_write_queued(s->remote) > HIGH_WATER) wr_conn_read_stop(s->local);
}

static void l_on_eof(wr_conn *c, int status, const char *msg, void *user) {
  session *s = user;
  uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
  if (status != WR_OK || s->state != S_OPEN) {
    session_close(s);
    return;
  }
  s->local_eof = 1;
  ws_send(s, WR_WS_OP_CLOSE, code, 2);
  maybe_done(s);
}

static void l_on_drain(wr_conn *c, void *user) {
  session *s = user;
  if (s->state == S_OPEN && !s->remote_close) wr_conn_read_start(s->remote);
}

static const wr_conn_callbacks local_cbs = {l_on_connect, l_on_read, l_on_eof, l_on_drain,
                                            on_conn_closed};

/* --- accepting ---------------------------------------------------------------------------- */

static void start_session(wr_access_tcp *a) {
  session *s = wr_xcalloc(1, sizeof(*s));
  wr_conn_target t;
  s->a = a;
  wr_buf_init(&s->head, HEAD_MAX, NULL);
  wr_ws_decoder_init(&s->dec, 0);
  uv_timer_init(a->loop, &s->linger);
  s->linger.data = s;
  s->handles = 1;
  s->next = a->sessions;
  if (a->sessions) a->sessions->prev = s;
  a->sessions = s;
  a->handles++;
  a->stats.active++;
  if (wr_conn_accept((uv_stream_t *)&a->listener, NULL, &local_cbs, s, &s->local) != WR_OK) {
    session_close(s);
    return;
  }
  s->handles++;
  a->stats.accepted++;
  wr_conn_read_stop(s->local); /* until the WebSocket is up */
  memset(&t, 0, sizeof(t));
  t.host = a->chost;
  t.port = a->cport;
  t.tls = a->creds;
  t.server_name = a->tls ? a->host : NULL;
  if (wr_conn_connect(a->loop, &t, &remote_cbs, s, &s->remote) != WR_OK) {
    s->remote = NULL;
    session_close(s);
    return;
  }
  s->handles++;
}

static void on_listen(uv_stream_t *server, int status) {
  wr_access_tcp *a = server->data;
  if (status < 0 || a->dying) return;
  start_session(a);
}

/* --- configuration ----------------------------------------------------------------------- */

/* Splits "scheme://authority/path" (scheme optional: https). */
static int split_url(const char *u, char **scheme, char **authority, char **path) {
  const char *p = strstr(u, "://"), *a = u, *slash;
  if (p) {
    *scheme = wr_xstrndup(u, (size_t)(p - u));
    a = p + 3;
  } else {
    *scheme = wr_xstrdup("https");
  }
  slash = strchr(a, '/');
  *authority = wr_xstrndup(a, slash ? (size_t)(slash - a) : strlen(a));
  *path = wr_xstrdup(slash ? slash : "/");
  for (char *c = *scheme; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  if (!**authority || (strcmp(*scheme, "https") && strcmp(*scheme, "http") &&
                       strcmp(*scheme, "wss") && strcmp(*scheme, "ws")))
    return -1;
  return 0;
}

static int is_tls_scheme(const char *scheme) {
  return strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0;
}

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

static int add_field(wr_access_tcp *a, const char *name, const char *value, char *err,
                     size_t errlen) {
  for (const char *c = value; *c; c++)
    if ((unsigned char)*c < 0x20 && *c != '\t') {
      snprintf(err, errlen, "header %s: control character in the value", name);
      return WR_ERR_INVAL;
    }
  wr_buf_printf(&a->extra, "%s: %s\r\n", name, value);
  return WR_OK;
}

static int add_fields(wr_access_tcp *a, const wr_access_tcp_config *cfg, char *err,
                      size_t errlen) {
  int rv = WR_OK;
  if (cfg->token_id && *cfg->token_id)
    rv = add_field(a, "Cf-Access-Client-Id", cfg->token_id, err, errlen);
  if (!rv && cfg->token_secret && *cfg->token_secret)
    rv = add_field(a, "Cf-Access-Client-Secret", cfg->token_secret, err, errlen);
  if (!rv && cfg->destination && *cfg->destination)
    rv = add_field(a, "Cf-Access-Jump-Destination", cfg->destination, err, errlen);
  if (!rv) rv = add_field(a, "User-Agent", cfg->user_agent ? cfg->user_agent : "warren", err,
                          errlen);
  for (size_t i = 0; !rv && i < cfg->n_headers; i++) {
    const char *h = cfg->headers[i], *colon = strchr(h, ':');
    if (!colon || colon == h) {
      snprintf(err, errlen, "header \"%s\": expected Name: value", h);
      return WR_ERR_INVAL;
    }
    char *name = wr_xstrndup(h, (size_t)(colon - h));
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    rv = add_field(a, name, v, err, errlen);
    free(name);
  }
  return rv;
}

static int configure(wr_access_tcp *a, const wr_access_tcp_config *cfg, char *err,
                     size_t errlen) {
  char *cscheme = NULL, *cauth = NULL, *cpath = NULL;
  int rv;
  if (!cfg->hostname || !*cfg->hostname ||
      split_url(cfg->hostname, &a->scheme, &a->authority, &a->path) != 0 ||
      split_authority(a->authority, is_tls_scheme(a->scheme), &a->host, &a->cport) != 0) {
    snprintf(err, errlen, "invalid --hostname \"%s\"", cfg->hostname ? cfg->hostname : "");
    return WR_ERR_INVAL;
  }
  a->tls = is_tls_scheme(a->scheme);
  a->chost = wr_xstrdup(a->host);
  if (cfg->edge_url && *cfg->edge_url) {
    rv = split_url(cfg->edge_url, &cscheme, &cauth, &cpath);
    free(a->chost);
    a->chost = NULL;
    if (rv == 0) a->tls = is_tls_scheme(cscheme);
    if (rv != 0 || split_authority(cauth, a->tls, &a->chost, &a->cport) != 0) {
      free(cscheme), free(cauth), free(cpath);
      snprintf(err, errlen, "invalid edge URL \"%s\"", cfg->edge_url);
      return WR_ERR_INVAL;
    }
    free(cscheme), free(cauth), free(cpath);
  }
  if (a->tls) {
    wr_tls_client_config cc = {.ca_file = cfg->ca_file, .no_verify = cfg->no_verify};
    if (wr_tls_creds_client(&cc, &a->creds, err, errlen) != WR_OK) return WR_ERR_CRYPTO;
  }
  return add_fields(a, cfg, err, errlen);
}

static int listen_on(wr_access_tcp *a, const char *addr, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  if (!addr || wr_addr_resolve("--url", addr, SOCK_STREAM, 1, &ss, 1, err, errlen) <= 0) {
    if (!addr) snprintf(err, errlen, "--url is required (the local address to listen on)");
    return WR_ERR_INVAL;
  }
  uv_tcp_init(a->loop, &a->listener);
  a->listener.data = a;
  a->listening = 1;
  a->handles++;
  int rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&a->listener, 128, on_listen);
  if (rc != 0) {
    snprintf(err, errlen, "listen tcp %s: %s", addr, uv_strerror(rc));
    return WR_ERR_IO;
  }
  return WR_OK;
}

/* --- the object ----------------------------------------------------------------------------- */

static void final_free(wr_access_tcp *a) {
  wr_tls_creds_free(a->creds);
  wr_buf_free(&a->extra);
  free(a->scheme);
  free(a->authority);
  free(a->host);
  free(a->path);
  free(a->chost);
  free(a);
}

static void access_handle_done(wr_access_tcp *a) {
  if (--a->handles == 0 && a->dying) final_free(a);
}

static void listener_closed(uv_handle_t *h) { access_handle_done(h->data); }

int wr_access_tcp_start(const wr_access_tcp_config *cfg, wr_access_tcp **out, char *err,
                        size_t errlen) {
  wr_access_tcp *a;
  int rv;
  if (!cfg || !cfg->loop || !out) return WR_ERR_INVAL;
  a = wr_xcalloc(1, sizeof(*a));
  a->loop = cfg->loop;
  wr_buf_init(&a->extra, HEAD_MAX, NULL);
  rv = configure(a, cfg, err, errlen);
  if (rv == WR_OK) rv = listen_on(a, cfg->listen, err, errlen);
  if (rv != WR_OK) {
    wr_access_tcp_free(a);
    return rv;
  }
  *out = a;
  return WR_OK;
}

uint16_t wr_access_tcp_port(const wr_access_tcp *a) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (!a->listening || uv_tcp_getsockname(&a->listener, (struct sockaddr *)&ss, &len) != 0)
    return 0;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

const wr_access_tcp_stats *wr_access_tcp_get_stats(const wr_access_tcp *a) { return &a->stats; }

void wr_access_tcp_free(wr_access_tcp *a) {
  if (!a) return;
  a->dying = 1;
  for (session *s = a->sessions; s; s = s->next) session_close(s);
  a->handles++; /* held while closing */
  if (a->listening) {
    a->listening = 0;
    uv_close((uv_handle_t *)&a->listener, listener_closed);
  }
  access_handle_done(a);
}
