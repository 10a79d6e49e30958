/* Small buffered HTTP/1.1 server on libuv TCP (see httpd.h).
 *
 * One connection serves one request at a time: a request is read (head,
 * then body into the request's own buffer), handed to the handler, and only
 * once it is answered does the next buffered request get parsed, so
 * pipelined requests are answered in order without queueing responses.
 *
 * Memory: received bytes wait in conn->in, bounded by the head limit plus
 * one read (reading stops while more than a head is buffered, e.g. behind a
 * deferred request). Bodies go straight into the request, bounded by
 * max_body. Unsent output above OUT_HIGH stops request processing until the
 * peer reads.
 *
 * Lifetimes (STYLE.md 1.8): a connection is freed only from the close
 * callback of its last libuv handle, never inside another callback. A
 * request with the handler belongs to the handler until wr_httpd_respond();
 * if the connection goes first, the request is orphaned (pub.conn = NULL)
 * and wr_httpd_respond() frees it and returns WR_ERR_INVAL. */
#include "net/httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/read_gate.h"

#define READ_CHUNK (64u * 1024u)
#define MAX_HEAD WR_HTTP1_DEFAULT_MAX_HEAD
#define MAX_HEADERS WR_HTTP1_DEFAULT_MAX_HEADERS
#define OUT_HIGH (256u * 1024u)     /* unsent bytes above which no new request is served */
#define LINGER_MS 5000u             /* drain a closing client at most this long */
#define RESP_MAX (1024u * 1024u * 1024u) /* uv_buf_t lengths are 32-bit */

typedef enum conn_state {
  CS_HEAD,    /* waiting for a request head (or idle between requests) */
  CS_BODY,    /* head parsed; its body goes into conn->req */
  CS_HANDLER, /* conn->req is with the handler; nothing else is parsed */
  CS_CLOSING  /* last response queued: flush, shut down writes, drain input */
} conn_state;

/* What the connection timer currently measures. */
typedef enum timer_mode {
  TM_NONE,   /* the handler has the request: no limit here */
  TM_READ,   /* a request is arriving: read_timeout_ms */
  TM_IDLE,   /* keep-alive without a byte of the next request: idle_timeout_ms */
  TM_WRITE,  /* waiting for the peer to read our output: idle_timeout_ms */
  TM_LINGER  /* writes shut down, draining: LINGER_MS */
} timer_mode;

typedef struct hreq {
  wr_httpd_req pub; /* first, so the handler's pointer is ours */
  char *strings;    /* method, target, path, query, names and values, NUL-terminated */
  wr_http_header *hdrs;
  wr_buf body;
  int keep_alive, head_only, minor;
} hreq;

typedef struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shut;
  wr_httpd *h;
  struct conn *prev, *next;
  conn_state state;
  timer_mode tmode;
  wr_buf in;          /* received bytes not yet parsed */
  size_t scan;        /* in.data[0..scan) holds no end of head */
  hreq *req;          /* being read (CS_BODY) or with the handler (CS_HANDLER) */
  wr_http1_body body_mode;
  uint64_t body_left; /* WR_HTTP1_BODY_LENGTH: bytes still to come */
  wr_http1_chunked chunk;
  struct sockaddr_storage peer;
  uint64_t nreq;      /* responses sent */
  int handles;        /* libuv handles not yet closed */
  int nwrites;        /* uv_write requests in flight */
  unsigned closed : 1;     /* uv_close called */
  unsigned reading : 1;    /* uv_read_start in effect */
  unsigned eof : 1;        /* the peer finished sending */
  unsigned seen : 1;       /* a byte arrived since the last response */
  unsigned shut_done : 1;  /* write side shut down (CS_CLOSING) */
  unsigned in_process : 1; /* conn_process() is on the stack */
} conn;

struct wr_httpd {
  uv_loop_t *loop;
  uv_tcp_t listener;
  wr_httpd_config cfg;
  wr_httpd_handler handler;
  void *user;
  conn *conns; /* every connection not yet freed */
  size_t nconns;
  int listener_open, freeing;
  /* One read buffer for all connections: libuv hands it to read_cb right
   * after alloc_cb, and read_cb copies or consumes it before returning. */
  char rbuf[READ_CHUNK];
};

typedef struct wreq {
  uv_write_t w;
  conn *c;
  wr_buf buf;
} wreq;

static void conn_process(conn *c);
static void conn_update(conn *c);

/* ---- freeing ----------------------------------------------------------------- */

static void hreq_free(hreq *r) {
  if (!r) return;
  wr_buf_free(&r->body);
  free(r->strings);
  free(r->hdrs);
  free(r);
}

static void httpd_maybe_free(wr_httpd *h) {
  if (h->freeing && !h->listener_open && h->nconns == 0) free(h);
}

static void on_conn_handle_close(uv_handle_t *hd) {
  conn *c = hd->data;
  if (--c->handles > 0) return;
  wr_httpd *h = c->h;
  WR_LIST_REMOVE(h->conns, c);
  h->nconns--;
  wr_buf_free(&c->in);
  free(c);
  httpd_maybe_free(h);
}

/* Closes at once. A request with the handler is orphaned, not freed. */
static void conn_close(conn *c) {
  if (c->closed) return;
  c->closed = 1;
  if (c->req) {
    if (c->state == CS_HANDLER)
      c->req->pub.conn = NULL;
    else
      hreq_free(c->req);
    c->req = NULL;
  }
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_close);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_close);
}

/* ---- output ------------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status) {
  wreq *wr = (wreq *)w;
  conn *c = wr->c; /* still allocated: libuv runs write callbacks before close callbacks */
  wr_buf_free(&wr->buf);
  free(wr);
  c->nwrites--;
  if (c->closed) return;
  if (status < 0) {
    wr_debug("httpd: write: %s", uv_strerror(status));
    conn_close(c);
    return;
  }
  conn_process(c); /* below the watermark again, maybe */
}

/* Queues |b| (its storage moves to the write request). */
static void conn_write(conn *c, wr_buf *b) {
  wreq *wr = wr_xmalloc(sizeof(*wr));
  wr->c = c;
  wr->buf = *b;
  wr_buf_init(b, b->max, b->mem);
  uv_buf_t ub = uv_buf_init((char *)wr->buf.data, (unsigned)wr->buf.len);
  int rv = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
  if (rv != 0) {
    wr_debug("httpd: write: %s", uv_strerror(rv));
    wr_buf_free(&wr->buf);
    free(wr);
    conn_close(c);
    return;
  }
  c->nwrites++;
}

static void on_shutdown(uv_shutdown_t *s, int status) {
  conn *c = s->data;
  if (c->closed) return;
  if (status < 0 || c->eof) {
    conn_close(c);
    return;
  }
  c->shut_done = 1;
  conn_update(c); /* lingering: read and discard until EOF or LINGER_MS */
}

/* After the last response: no more requests; flush, then half-close and
 * drain what the client still sends, so that our response is not lost to
 * a reset caused by unread input (nginx's lingering close). */
static void conn_finish(conn *c) {
  if (c->closed || c->state == CS_CLOSING) return;
  c->state = CS_CLOSING;
  c->shut.data = c;
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

/* A canned error response; the connection closes after it. */
static void send_error(conn *c, int status) {
  char body[80], len[24];
  wr_buf out;
  int n = snprintf(body, sizeof(body), "%d %s\n", status, wr_http1_reason(status));
  snprintf(len, sizeof(len), "%d", n);
  const wr_http_header hs[] = {
      {"Content-Type", 12, "text/plain; charset=utf-8", 25},
      {"Content-Length", 14, len, strlen(len)},
      {"Connection", 10, "close", 5},
  };
  if (c->req) {
    hreq_free(c->req);
    c->req = NULL;
  }
  wr_buf_init(&out, 4096, NULL);
  if (wr_http1_write_response_head(&out, status, NULL, hs, 3) == WR_OK &&
      wr_buf_append(&out, body, (size_t)n) == WR_OK)
    conn_write(c, &out);
  wr_buf_free(&out);
  conn_finish(c);
}

/* ---- requests ------------------------------------------------------------------ */

/* 1 if in.data may hold a complete (or certainly bad) head, so that the
 * parser, which starts over on each call, runs once per head rather than
 * once per read. Bare CR/LF also wake it, to answer 400 at once. */
static int head_ready(conn *c) {
  const uint8_t *d = c->in.data;
  size_t n = c->in.len, i = c->scan;
  if (n > MAX_HEAD) return 1;
  if (i == 0) {
    if (d[0] == '\n') return 1;
    i = 1;
  }
  for (; i < n; i++) {
    if (d[i - 1] == '\r' && d[i] != '\n') return 1;
    if (d[i] == '\n' && (d[i - 1] != '\r' || (i >= 3 && d[i - 2] == '\n' && d[i - 3] == '\r')))
      return 1;
  }
  c->scan = n;
  return 0;
}

/* Copies what the handler sees out of the input buffer. */
static hreq *build_req(conn *c, const wr_http1_head *hd) {
  size_t path_len = 0, total, o = 0;
  while (path_len < hd->target_len && hd->target[path_len] != '?') path_len++;
  size_t query_off = path_len < hd->target_len ? path_len + 1 : hd->target_len;
  size_t query_len = hd->target_len - query_off;
  total = hd->method_len + 1 + hd->target_len + 1 + path_len + 1 + query_len + 1;
  for (size_t i = 0; i < hd->nheaders; i++)
    total += hd->headers[i].name_len + 1 + hd->headers[i].value_len + 1;
  hreq *r = wr_xcalloc(1, sizeof(*r));
  r->strings = wr_xmalloc(total);
  r->hdrs = wr_xcalloc(hd->nheaders ? hd->nheaders : 1, sizeof(*r->hdrs));
#define COPY(dst, src, len)                  \
  do {                                       \
    memcpy(r->strings + o, (src), (len));    \
    r->strings[o + (len)] = '\0';            \
    (dst) = r->strings + o;                  \
    o += (len) + 1;                          \
  } while (0)
  COPY(r->pub.method, hd->method, hd->method_len);
  COPY(r->pub.target, hd->target, hd->target_len);
  COPY(r->pub.path, hd->target, path_len);
  COPY(r->pub.query, hd->target + query_off, query_len);
  for (size_t i = 0; i < hd->nheaders; i++) {
    COPY(r->hdrs[i].name, hd->headers[i].name, hd->headers[i].name_len);
    r->hdrs[i].name_len = hd->headers[i].name_len;
    COPY(r->hdrs[i].value, hd->headers[i].value, hd->headers[i].value_len);
    r->hdrs[i].value_len = hd->headers[i].value_len;
  }
#undef COPY
  r->pub.headers = r->hdrs;
  r->pub.nheaders = hd->nheaders;
  r->pub.peer = c->peer;
  r->pub.conn = c;
  wr_buf_init(&r->body, c->h->cfg.max_body, NULL);
  r->keep_alive = hd->keep_alive;
  r->minor = hd->minor;
  r->head_only = hd->method_len == 4 && memcmp(hd->method, "HEAD", 4) == 0;
  return r;
}

/* The step functions below return WR_OK (done), WR_AGAIN (need bytes) or a
 * positive HTTP status to answer with before closing. */
static int read_head(conn *c) {
  wr_buf *in = &c->in;
  wr_http_header hdrs[MAX_HEADERS];
  wr_http1_head hd;
  size_t used, skip = 0;
  /* Empty lines before a request (RFC 9112 2.2) are dropped here, so that
   * head_ready() never takes them for the end of a head. */
  while (skip + 1 < in->len && in->data[skip] == '\r' && in->data[skip + 1] == '\n') skip += 2;
  if (skip) {
    wr_buf_consume(in, skip);
    c->scan = 0;
  }
  if (in->len == 0 || !head_ready(c)) return WR_AGAIN;
  int rv = wr_http1_parse_request(in->data, in->len, NULL, hdrs, MAX_HEADERS, &hd, &used);
  if (rv == WR_AGAIN) return WR_AGAIN;
  if (rv == WR_ERR_LIMIT) return 431;
  if (rv != WR_OK) return 400;
  if (hd.body == WR_HTTP1_BODY_LENGTH && hd.content_length > c->h->cfg.max_body) return 413;
  c->req = build_req(c, &hd);
  c->body_mode = hd.body;
  c->body_left = hd.content_length;
  wr_http1_chunked_init(&c->chunk);
  if (hd.expect_continue && hd.minor == 1 && hd.body != WR_HTTP1_BODY_NONE) {
    wr_buf out;
    wr_buf_init(&out, 64, NULL);
    if (wr_buf_append_str(&out, "HTTP/1.1 100 Continue\r\n\r\n") == WR_OK) conn_write(c, &out);
    wr_buf_free(&out);
  }
  wr_buf_consume(in, used);
  c->scan = 0;
  c->state = CS_BODY;
  return WR_OK;
}

static int read_body(conn *c) {
  wr_buf *in = &c->in, *body = &c->req->body;
  if (c->body_mode == WR_HTTP1_BODY_LENGTH) {
    size_t take = c->body_left < in->len ? (size_t)c->body_left : in->len;
    if (wr_buf_append(body, in->data, take) != WR_OK) return 413; /* cannot: checked at the head */
    wr_buf_consume(in, take);
    c->body_left -= take;
    if (c->body_left) return WR_AGAIN;
  } else if (c->body_mode == WR_HTTP1_BODY_CHUNKED) {
    size_t off = 0;
    int st = WR_OK;
    while (!c->chunk.done && off < in->len) {
      size_t used, doff, dlen;
      if (wr_http1_chunked_decode(&c->chunk, in->data + off, in->len - off, &used, &doff, &dlen) !=
          WR_OK) {
        st = 400;
        break;
      }
      if (dlen && wr_buf_append(body, in->data + off + doff, dlen) != WR_OK) {
        st = 413;
        break;
      }
      off += used;
    }
    wr_buf_consume(in, off);
    if (st != WR_OK) return st;
    if (!c->chunk.done) return WR_AGAIN;
  }
  /* Handlers get a NUL-terminated body (never NULL). */
  c->req->pub.body = (const uint8_t *)wr_buf_cstr(body);
  c->req->pub.body_len = body->len;
  return WR_OK;
}

/* Serves buffered requests until one must wait (bytes, handler, output). */
static void conn_process(conn *c) {
  if (c->in_process || c->closed) return;
  c->in_process = 1;
  while (!c->closed && (c->state == CS_HEAD || c->state == CS_BODY)) {
    int rv;
    if (c->state == CS_HEAD) {
      if (c->tcp.write_queue_size > OUT_HIGH) break; /* let the peer read first */
      rv = read_head(c);
      if (rv == WR_AGAIN) break;
      if (rv != WR_OK) {
        send_error(c, rv);
        break;
      }
    }
    rv = read_body(c);
    if (rv == WR_AGAIN) break;
    if (rv != WR_OK) {
      send_error(c, rv);
      break;
    }
    c->state = CS_HANDLER;
    uv_timer_stop(&c->timer); /* no deadline while the handler works */
    c->tmode = TM_NONE;
    c->h->handler(c->h, &c->req->pub, c->h->user);
    /* The handler may have answered (CS_HEAD / CS_CLOSING), kept the
     * request (CS_HANDLER) or freed the server (closed). */
  }
  c->in_process = 0;
  /* After EOF, once nothing more can be served (output permitting): flush
   * and close, or just close on a partial request. */
  if (!c->closed && c->eof && (c->state == CS_HEAD || c->state == CS_BODY) &&
      c->tcp.write_queue_size <= OUT_HIGH) {
    if (c->state == CS_HEAD && c->in.len == 0)
      conn_finish(c);
    else
      conn_close(c);
  }
  conn_update(c);
}

/* ---- reading and timers ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *hd, size_t size, uv_buf_t *buf) {
  conn *c = hd->data;
  buf->base = c->h->rbuf;
  buf->len = sizeof(c->h->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread == 0 || c->closed) return;
  if (nread < 0) {
    c->eof = 1;
    c->reading = 0; /* libuv stops reading at EOF/error */
    if (nread != UV_EOF) wr_debug("httpd: read: %s", uv_strerror((int)nread));
    /* An error, or EOF while the handler holds the request (the client
     * went away; the request is orphaned), ends the connection now. */
    if (nread != UV_EOF || c->state == CS_HANDLER) {
      conn_close(c);
    } else if (c->state == CS_CLOSING) {
      if (c->shut_done) conn_close(c); /* else on_shutdown closes, as eof is set */
    } else {
      conn_process(c); /* a half-closed client still gets its buffered requests served */
    }
    return;
  }
  if (c->state == CS_CLOSING) return; /* lingering: discard */
  if (wr_buf_append(&c->in, buf->base, (size_t)nread) != WR_OK) {
    conn_close(c); /* cannot happen: reading stops above MAX_HEAD */
    return;
  }
  c->seen = 1;
  conn_process(c);
}

static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  wr_debug("httpd: connection timed out (mode %d)", (int)c->tmode);
  conn_close(c);
}

/* Brings reading and the timer in line with the state. The timer restarts
 * only when its mode changes, so a deadline runs from the moment that
 * started it (connection open, first byte after idle, end of a response). */
static void conn_update(conn *c) {
  const wr_httpd_config *cfg = &c->h->cfg;
  if (c->closed) return;
  int want_read = !c->eof && (c->state == CS_CLOSING || c->in.len <= MAX_HEAD);
  c->reading = wr_read_gate((uv_stream_t *)&c->tcp, c->reading, want_read, on_alloc, on_read);
  if (want_read && !c->reading) {
    conn_close(c);
    return;
  }
  timer_mode m;
  uint64_t ms = 0;
  if (c->state == CS_CLOSING)
    m = c->shut_done ? TM_LINGER : TM_WRITE;
  else if (c->state == CS_HANDLER)
    m = TM_NONE;
  else if (c->tcp.write_queue_size > OUT_HIGH)
    m = TM_WRITE;
  else if (c->state == CS_HEAD && c->nreq > 0 && !c->seen && c->in.len == 0)
    m = TM_IDLE;
  else
    m = TM_READ;
  if (m == c->tmode) return;
  c->tmode = m;
  switch (m) {
  case TM_READ: ms = cfg->read_timeout_ms; break;
  case TM_IDLE:
  case TM_WRITE: ms = cfg->idle_timeout_ms; break;
  case TM_LINGER: ms = LINGER_MS < cfg->idle_timeout_ms ? LINGER_MS : cfg->idle_timeout_ms; break;
  case TM_NONE: uv_timer_stop(&c->timer); return;
  }
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- accepting --------------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status) {
  wr_httpd *h = server->data;
  if (status < 0) {
    wr_warn("httpd: accept: %s", uv_strerror(status));
    return;
  }
  conn *c = wr_xcalloc(1, sizeof(*c));
  c->h = h;
  c->tmode = TM_NONE;
  wr_buf_init(&c->in, MAX_HEAD + READ_CHUNK, NULL);
  uv_tcp_init(h->loop, &c->tcp);
  uv_timer_init(h->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  WR_LIST_INSERT_HEAD(h->conns, c);
  h->nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  if (h->nconns > h->cfg.max_conns) {
    /* Accepted only to be closed: otherwise it would wait in the backlog. */
    wr_debug("httpd: max_conns (%zu) reached; closing a new connection", h->cfg.max_conns);
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  int len = (int)sizeof(c->peer);
  uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
  conn_update(c);
}

static void on_listener_close(uv_handle_t *hd) {
  wr_httpd *h = hd->data;
  h->listener_open = 0;
  httpd_maybe_free(h);
}

int wr_httpd_listen(uv_loop_t *loop, const struct sockaddr *addr, const wr_httpd_config *cfg,
                    wr_httpd_handler handler, void *user, wr_httpd **out) {
  wr_httpd *h = wr_xcalloc(1, sizeof(*h));
  int rv;
  *out = NULL;
  h->loop = loop;
  if (cfg) h->cfg = *cfg;
  if (!h->cfg.max_body) h->cfg.max_body = 1024 * 1024;
  if (!h->cfg.read_timeout_ms) h->cfg.read_timeout_ms = 10000;
  if (!h->cfg.idle_timeout_ms) h->cfg.idle_timeout_ms = 60000;
  if (!h->cfg.max_conns) h->cfg.max_conns = 1024;
  h->handler = handler;
  h->user = user;
  if ((rv = uv_tcp_init(loop, &h->listener)) != 0) {
    free(h);
    wr_error("httpd: %s", uv_strerror(rv));
    return WR_ERR_IO;
  }
  h->listener.data = h;
  h->listener_open = 1;
  rv = uv_tcp_bind(&h->listener, addr, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&h->listener, 511, on_connection);
  if (rv != 0) {
    wr_error("httpd: listen: %s", uv_strerror(rv));
    h->freeing = 1; /* freed by the close callback */
    uv_close((uv_handle_t *)&h->listener, on_listener_close);
    return WR_ERR_IO;
  }
  *out = h;
  return WR_OK;
}

int wr_httpd_addr(wr_httpd *h, struct sockaddr_storage *ss) {
  int len = (int)sizeof(*ss);
  return uv_tcp_getsockname(&h->listener, (struct sockaddr *)ss, &len) == 0 ? WR_OK : WR_ERR_IO;
}

void wr_httpd_free(wr_httpd *h) {
  if (!h || h->freeing) return;
  h->freeing = 1;
  uv_close((uv_handle_t *)&h->listener, on_listener_close);
  for (conn *c = h->conns; c; c = c->next) conn_close(c);
}

/* ---- responding ---------------------------------------------------------------------- */

int wr_httpd_respond(wr_httpd_req *req, int status, const wr_http_header *hdrs, size_t n,
                     const void *body, size_t body_len) {
  hreq *r = (hreq *)req;
  conn *c = req->conn;
  wr_buf out;
  char len[24];
  int rv;
  if (!c) { /* orphaned: the connection is gone */
    hreq_free(r);
    return WR_ERR_INVAL;
  }
  c->req = NULL;
  int no_body = status < 200 || status == 204 || status == 304;
  int keep = r->keep_alive && !c->h->freeing;
  /* The server frames the message: the handler's framing fields go, and
   * its Connection field only counts for "close". */
  wr_http_header *all = wr_xmalloc((n + 2) * sizeof(*all));
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const wr_http_header *x = &hdrs[i];
    if (x->name_len == 14 && strncasecmp(x->name, "Content-Length", 14) == 0) continue;
    if (x->name_len == 17 && strncasecmp(x->name, "Transfer-Encoding", 17) == 0) continue;
    if (x->name_len == 10 && strncasecmp(x->name, "Connection", 10) == 0) {
      if (wr_http1_has_token(x->value, x->value_len, "close")) keep = 0;
      continue;
    }
    all[k++] = *x;
  }
  if (!no_body) {
    snprintf(len, sizeof(len), "%zu", body_len);
    all[k++] = (wr_http_header){"Content-Length", 14, len, strlen(len)};
  }
  if (!keep)
    all[k++] = (wr_http_header){"Connection", 10, "close", 5};
  else if (r->minor == 0)
    all[k++] = (wr_http_header){"Connection", 10, "keep-alive", 10};
  wr_buf_init(&out, RESP_MAX, NULL);
  /* 1xx would need a second, final answer: not offered by this API. */
  rv = status < 200 ? WR_ERR_INVAL : wr_http1_write_response_head(&out, status, NULL, all, k);
  if (rv == WR_OK && !no_body && !r->head_only) rv = wr_buf_append(&out, body, body_len);
  free(all);
  hreq_free(r);
  if (rv != WR_OK) {
    wr_warn("httpd: invalid response (status %d): %s; sending 500", status, wr_strerror(rv));
    wr_buf_free(&out);
    c->state = CS_HEAD;
    send_error(c, 500);
    return WR_ERR_INVAL;
  }
  c->nreq++;
  c->seen = 0;
  c->state = CS_HEAD;
  conn_write(c, &out);
  wr_buf_free(&out);
  if (!keep) conn_finish(c);
  conn_process(c); /* next pipelined request; no-op if already on the stack */
  return WR_OK;
}

void wr_httpd_page_fields(wr_http_header *hs, size_t *n, const char *ctype, const char *csp,
                          const char *referrer) {
  const char *kv[][2] = {{"Content-Type", ctype},
                         {"Cache-Control", "no-store"},
                         {"Content-Security-Policy", csp},
                         {"X-Frame-Options", "DENY"},
                         {"X-Content-Type-Options", "nosniff"},
                         {"Referrer-Policy", referrer}};
  for (size_t i = 0; i < WR_HTTPD_PAGE_FIELDS; i++)
    hs[(*n)++] = (wr_http_header){kv[i][0], strlen(kv[i][0]), kv[i][1], strlen(kv[i][1])};
}

int wr_httpd_respond_simple(wr_httpd_req *req, int status, const char *content_type,
                            const void *body, size_t body_len) {
  wr_http_header h = {"Content-Type", 12, content_type, content_type ? strlen(content_type) : 0};
  return wr_httpd_respond(req, status, &h, content_type ? 1 : 0, body, body_len);
}
