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
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/conn.h"
#include "net/tls.h"
#include "net/ws_client.h"

#define HIGH_WATER (4u * WR_CONN_LOW_WATER)
#define HEAD_MAX (64u * 1024u)
#define LINGER_POLL_MS 20
#define LINGER_MAX_MS 30000

typedef struct session session;

struct wr_access_tcp {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int listening;
  wr_ws_url app;   /* the application URL */
  wr_ws_url where; /* where to connect */
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
  wr_conn *local;
  wr_ws_client ws; /* ws.conn: the WebSocket to the edge */
  uv_timer_t linger;
  uint64_t linger_ms;
  int state;
  int handles;
  int local_eof;    /* the local side ended: our Close frame is out */
  int remote_close; /* the other end's Close frame came */
  session *next, *prev;
};

/* --- lifetime ----------------------------------------------------------------------- */

static void access_handle_done(wr_access_tcp *a);

static void session_handle_done(session *s) {
  if (--s->handles > 0) return;
  wr_access_tcp *a = s->a;
  WR_LIST_REMOVE(a->sessions, s);
  a->stats.active--;
  wr_ws_client_free(&s->ws);
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
  if (s->ws.conn) wr_conn_close(s->ws.conn);
}

/* Both directions ended: the last bytes go out (shutdown after the queue)
 * before the sockets close. */
static void linger_cb(uv_timer_t *t) {
  session *s = t->data;
  s->linger_ms += LINGER_POLL_MS;
  if ((wr_conn_write_queued(s->local) == 0 && wr_conn_write_queued(s->ws.conn) == 0) ||
      s->linger_ms >= LINGER_MAX_MS)
    session_close(s);
}

static void maybe_done(session *s) {
  if (!s->local_eof || !s->remote_close || s->state == S_CLOSING) return;
  wr_conn_shutdown(s->ws.conn);
  uv_timer_start(&s->linger, linger_cb, LINGER_POLL_MS, LINGER_POLL_MS);
}

/* --- towards the edge ----------------------------------------------------------------- */

static int ws_send(session *s, int op, const uint8_t *data, size_t len) {
  return wr_ws_client_send(&s->ws, op, data, len);
}

static void send_handshake(session *s) {
  wr_access_tcp *a = s->a;
  wr_buf req;
  wr_buf_init(&req, HEAD_MAX, NULL);
  if (wr_ws_client_request(&s->ws, a->app.path, a->app.authority, NULL, wr_buf_cstr(&a->extra),
                           &req) != WR_OK) {
    wr_buf_free(&req);
    session_close(s);
    return;
  }
  wr_conn_write(s->ws.conn, req.data, req.len);
  wr_buf_free(&req);
  s->state = S_HANDSHAKE;
}

/* --- from the edge ------------------------------------------------------------------- */

static int on_ws_event(void *user, const wr_ws_event *ev) {
  session *s = user;
  switch (ev->kind) {
  case WR_WS_EV_DATA:
    if (!s->remote_close && ev->len) wr_conn_write(s->local, ev->data, ev->len);
    if (wr_conn_write_queued(s->local) > HIGH_WATER) wr_conn_read_stop(s->ws.conn);
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
  return s->state == S_OPEN ? 0 : -1;
}

/* Not 101: gorilla's client fails at once, body or not. */
static int on_ws_refused(void *user, int status, const uint8_t *body, size_t len, int complete) {
  session *s = user;
  (void)body, (void)len, (void)complete;
  wr_error("access: %s answered %d instead of switching to WebSocket", s->a->app.authority, status);
  s->a->stats.failed++;
  session_close(s);
  return -1;
}

static int on_ws_open(void *user) {
  session *s = user;
  s->a->stats.upgraded++;
  s->state = S_OPEN;
  wr_conn_read_start(s->local);
  return 0;
}

static void on_ws_fail(void *user, int why) {
  session *s = user;
  if (why == WR_WSC_BAD_FRAME) {
    wr_error("access: bad WebSocket frame from %s; closing the connection", s->a->app.authority);
  } else {
    if (why == WR_WSC_TOO_LARGE)
      wr_error("access: the response from %s is too large", s->a->app.authority);
    else
      wr_error("access: websocket: bad handshake from %s", s->a->app.authority);
    s->a->stats.failed++;
  }
  session_close(s);
}

static const wr_ws_client_cbs ws_cbs = {on_ws_refused, on_ws_open, on_ws_event, on_ws_fail};

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
  if (s->state == S_HANDSHAKE || s->state == S_OPEN) wr_ws_client_read(&s->ws, data, len, 0);
}

static void r_on_eof(wr_conn *c, int status, const char *msg, void *user) {
  session *s = user;
  if (s->state == S_HANDSHAKE) {
    wr_error("access: %s closed the connection during the handshake", s->a->app.authority);
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
  if (wr_conn_write_queued(s->ws.conn) > HIGH_WATER) wr_conn_read_stop(s->local);
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
  if (s->state == S_OPEN && !s->remote_close) wr_conn_read_start(s->ws.conn);
}

static const wr_conn_callbacks local_cbs = {l_on_connect, l_on_read, l_on_eof, l_on_drain,
                                            on_conn_closed};

/* --- accepting ---------------------------------------------------------------------------- */

static void start_session(wr_access_tcp *a) {
  session *s = wr_xcalloc(1, sizeof(*s));
  wr_conn_target t;
  s->a = a;
  wr_ws_client_init(&s->ws, &ws_cbs, s);
  uv_timer_init(a->loop, &s->linger);
  s->linger.data = s;
  s->handles = 1;
  WR_LIST_INSERT_HEAD(a->sessions, s);
  a->handles++;
  a->stats.active++;
  if (wr_conn_accept((uv_stream_t *)&a->listener, NULL, &local_cbs, s, &s->local) != WR_OK) {
    session_close(s);
    return;
  }
  s->handles++;
  a->stats.accepted++;
  wr_conn_read_stop(s->local); /* until the WebSocket is up */
  wr_ws_url_target(&a->where, a->app.host, a->creds, &t);
  if (wr_conn_connect(a->loop, &t, &remote_cbs, s, &s->ws.conn) != WR_OK) {
    s->ws.conn = NULL;
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
  const char *ua = cfg->dial.user_agent ? cfg->dial.user_agent : "warren";
  int rv = WR_OK;
  if (cfg->token_id && *cfg->token_id)
    rv = add_field(a, "Cf-Access-Client-Id", cfg->token_id, err, errlen);
  if (!rv && cfg->token_secret && *cfg->token_secret)
    rv = add_field(a, "Cf-Access-Client-Secret", cfg->token_secret, err, errlen);
  if (!rv && cfg->destination && *cfg->destination)
    rv = add_field(a, "Cf-Access-Jump-Destination", cfg->destination, err, errlen);
  if (!rv) rv = add_field(a, "User-Agent", ua, err, errlen);
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
  const wr_edge_dial *d = &cfg->dial;
  if (!d->hostname || !*d->hostname || wr_ws_url_parse(d->hostname, &a->app) != WR_OK) {
    snprintf(err, errlen, "invalid --hostname \"%s\"", d->hostname ? d->hostname : "");
    return WR_ERR_INVAL;
  }
  if (wr_ws_url_parse(d->edge_url && *d->edge_url ? d->edge_url : d->hostname,
                      &a->where) != WR_OK) {
    snprintf(err, errlen, "invalid edge URL \"%s\"", d->edge_url);
    return WR_ERR_INVAL;
  }
  if (a->where.tls) {
    wr_tls_client_config cc = {.ca_file = d->ca_file, .no_verify = d->no_verify};
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
  wr_ws_url_free(&a->app);
  wr_ws_url_free(&a->where);
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
  if (!cfg || !cfg->dial.loop || !out) return WR_ERR_INVAL;
  a = wr_xcalloc(1, sizeof(*a));
  a->loop = cfg->dial.loop;
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
