/* Byte streams on libuv with optional TLS. See conn.h for the contract.
 *
 * Lifetime: the conn owns its socket handle (heap-allocated, one per connect
 * attempt), two timers and, while resolving, a getaddrinfo request. |refs|
 * counts those that libuv still holds; wr_conn_close() closes or cancels
 * them all, and the last close (or cancelled lookup) callback runs on_close
 * and frees. libuv completes a stream's write, connect and shutdown requests
 * (with UV_ECANCELED) before that stream's close callback, so requests need
 * no reference of their own.
 *
 * Every user callback is guarded by !closing, and code that runs after a
 * user callback re-checks it: a callback may close the conn, which stays
 * valid until a later loop iteration.
 *
 * Out-of-memory aborts (wr_x*), as documented for non-codec code. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/strpack.h"
#include "lib/thread_buf.h"
#include "net/read_gate.h"

#define READ_CHUNK 65536
#define DEFAULT_TIMEOUT_MS 30000

typedef enum conn_state {
  ST_RESOLVING,  /* uv_getaddrinfo in flight */
  ST_CONNECTING, /* uv_tcp_connect / uv_pipe_connect in flight */
  ST_HANDSHAKE,  /* TLS handshake (client, or accepted server) */
  ST_ACCEPTED,   /* plain accept: on_connect deferred to the next iteration */
  ST_OPEN,       /* on_connect(WR_OK) delivered */
  ST_FAILED,     /* on_connect(error) delivered; waiting for wr_conn_close */
} conn_state;

typedef union sock {
  uv_handle_t h;
  uv_stream_t s;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
} sock;

/* One uv_write with its own copy of the bytes. */
typedef struct wreq {
  uv_write_t req;
  size_t plain; /* plaintext bytes that count as sent when this completes */
  size_t len, cap;
  uint8_t data[];
} wreq;

struct wr_conn {
  uv_loop_t *loop;
  conn_state state;
  wr_conn_callbacks cbs;
  void *user;
  sock *sk;          /* current socket, NULL between attempts */
  uv_timer_t timer;  /* connect timeout */
  uv_timer_t defer;  /* work for the next loop iteration */
  uv_timer_t wflush; /* hands the gathered plaintext writes to libuv */
  struct wreq *pend; /* plain writes of this loop iteration, gathered */
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  struct addrinfo *ai, *ai_next;
  wr_tls_creds *creds; /* client TLS; NULL: plain */
  wr_tls *tls;
  char *host, *unix_path, *server_name, *verify_name, *alpn; /* of the target */
  char *strs; /* the one block holding those copies: free only it (lib/strpack.h) */
  struct sockaddr_storage local; /* bind before connect when has_local */
  int has_local;
  uint64_t keepalive_s;
  const char *net;   /* "tcp" or "unix", for messages */
  char addr[INET6_ADDRSTRLEN + 16]; /* current peer "ip:port" or path */
  char first_err[320]; /* Go reports the first dial error of several */
  struct sockaddr_storage peer; /* TCP peer, kept: getpeername fails once
                                 * both sides have shut down */
  wr_buf pre;        /* plaintext written before the conn is open */
  size_t queued;     /* see wr_conn_write_queued */
  int refs;
  unsigned closing : 1, gai_pending : 1, reading : 1, paused : 1, eof : 1, shut : 1,
      above_low : 1, wfailed : 1;
  uint8_t *own_rbuf; /* only for a read nested in another's callback */
};

/* Reads go into the thread's shared buffer (lib/thread_buf.h): libuv fills
 * it for one read at a time, and each byte is fed to TLS (which copies) or
 * handed to on_read (which must copy or forward it) before the callback
 * returns, so a pooled idle origin connection holds no 64 KiB buffer. A
 * read that starts while the shared buffer is in use, i.e. from inside
 * another connection's callback, gets the connection's own buffer. */
static uint8_t *rbuf_take(wr_conn *c) {
  uint8_t *b = wr_tbuf_take(WR_TBUF_CONN_READ, READ_CHUNK);
  if (b) return b;
  if (!c->own_rbuf) c->own_rbuf = wr_xmalloc(READ_CHUNK);
  return c->own_rbuf;
}

static void rbuf_give(const void *b) { wr_tbuf_give(WR_TBUF_CONN_READ, b); }

/* --- lifetime -------------------------------------------------------------- */

static void finish(wr_conn *c) {
  if (c->cbs.on_close) c->cbs.on_close(c, c->user);
  wr_tls_free(c->tls);
  if (c->ai) uv_freeaddrinfo(c->ai);
  wr_buf_free(&c->pre);
  free(c->pend);
  free(c->strs);
  free(c->own_rbuf);
  free(c);
}

static void unref(wr_conn *c) {
  if (--c->refs == 0 && c->closing) finish(c);
}

static void handle_closed(uv_handle_t *h) { unref(h->data); }

static void sock_closed(uv_handle_t *h) {
  wr_conn *c = h->data;
  free(h);
  unref(c);
}

static void sock_open(wr_conn *c, uv_handle_type type) {
  c->sk = wr_xmalloc(sizeof(*c->sk));
  if (type == UV_TCP) uv_tcp_init(c->loop, &c->sk->tcp);
  else uv_pipe_init(c->loop, &c->sk->pipe, 0);
  c->sk->h.data = c;
  c->reading = 0;
  c->refs++;
}

static void sock_close(wr_conn *c) {
  if (!c->sk) return;
  uv_close(&c->sk->h, sock_closed);
  c->sk = NULL;
  c->reading = 0;
}

static wr_conn *conn_new(uv_loop_t *loop, const wr_conn_callbacks *cbs, void *user) {
  wr_conn *c = wr_xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->cbs = *cbs;
  c->user = user;
  c->net = "tcp";
  wr_buf_init(&c->pre, SIZE_MAX / 2, NULL); /* bounded by the caller's backpressure */
  uv_timer_init(loop, &c->timer);
  uv_timer_init(loop, &c->defer);
  uv_timer_init(loop, &c->wflush);
  c->timer.data = c->defer.data = c->wflush.data = c;
  c->refs = 3;
  c->gai.data = c->creq.data = c->sreq.data = c;
  return c;
}

void wr_conn_close(wr_conn *c) {
  if (!c || c->closing) return;
  c->closing = 1;
  /* If the lookup already runs on the threadpool, its callback still comes
   * (with the result) and drops the last reference then. */
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai);
  uv_close((uv_handle_t *)&c->timer, handle_closed);
  uv_close((uv_handle_t *)&c->defer, handle_closed);
  uv_close((uv_handle_t *)&c->wflush, handle_closed);
  sock_close(c);
}

/* --- reading ----------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  wr_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)rbuf_take(c), READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Reads from the socket exactly when someone wants the bytes: during the TLS
 * handshake, or when open, not paused and not at EOF. */
static void update_reading(wr_conn *c) {
  if (!c->sk) return; /* between attempts: sock_close stopped reading */
  int want = !c->closing && !c->eof && (c->state == ST_HANDSHAKE || (c->state == ST_OPEN && !c->paused));
  c->reading = wr_read_gate(&c->sk->s, c->reading, want, on_alloc, on_read);
}

static void report_eof(wr_conn *c, int status, const char *msg) {
  c->eof = 1;
  update_reading(c);
  if (!c->closing && c->cbs.on_eof) c->cbs.on_eof(c, status, msg, c->user);
}

/* --- writing ------------------------------------------------------------------- */

static void fail_connect(wr_conn *c, int status, const char *msg);

static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  wr_conn *c = req->data;
  size_t plain = w->plain;
  free(w);
  if (c->closing) return; /* UV_ECANCELED from wr_conn_close */
  c->queued -= plain;
  if (status < 0) {
    char msg[128];
    if (c->wfailed) return;
    c->wfailed = 1;
    snprintf(msg, sizeof(msg), "write %s %s: %s", c->net, c->addr, uv_strerror(status));
    if (c->state == ST_HANDSHAKE) fail_connect(c, WR_ERR_IO, msg);
    else if (c->state == ST_OPEN && !c->eof) report_eof(c, WR_ERR_IO, msg);
    return;
  }
  if (c->above_low && c->queued <= WR_CONN_LOW_WATER) {
    c->above_low = 0;
    if (c->cbs.on_drain) c->cbs.on_drain(c, c->user);
  }
}

/* Hands |w| (its |plain| set) to the socket. When no write is queued it is
 * first tried at once (uv_try_write): libuv 1.44 re-arms the socket's epoll
 * watcher whenever a uv_write completes (one epoll_ctl per write, i.e. per
 * request on a keep-alive connection), and a try that takes everything costs
 * no more than the write itself. Only the rest, if any, goes to uv_write.
 * Not while above the low-water mark: on_drain must not run from inside a
 * write. Takes |w|. Returns WR_OK or WR_ERR_IO. */
static int submit(wr_conn *c, wreq *w) {
  size_t off = 0;
  if (!c->above_low) {
    uv_buf_t tb = uv_buf_init((char *)w->data, (unsigned)w->len);
    int n = uv_try_write(&c->sk->s, &tb, 1);
    if (n > 0) off = (size_t)n;
    if (off == w->len) {
      c->queued -= w->plain;
      free(w);
      return WR_OK;
    }
  }
  w->req.data = c;
  uv_buf_t b = uv_buf_init((char *)w->data + off, (unsigned)(w->len - off));
  if (uv_write(&w->req, &c->sk->s, &b, 1, on_write) == 0) return WR_OK;
  c->queued -= w->plain;
  free(w);
  c->wfailed = 1;
  return WR_ERR_IO;
}

/* Hands a copy of |data| to the socket. Returns WR_OK or WR_ERR_IO. */
static int send_copy(wr_conn *c, const uint8_t *data, size_t len, size_t plain) {
  if (!c->sk || c->wfailed) {
    c->queued -= plain;
    return WR_ERR_IO;
  }
  wreq *w = wr_xmalloc(sizeof(*w) + len);
  memcpy(w->data, data, len);
  w->len = len;
  w->plain = plain;
  return submit(c, w);
}

/* Sends whatever ciphertext the TLS session has produced; |plain| bytes of
 * plaintext are accounted to it. */
static int flush_tls(wr_conn *c, size_t plain) {
  const uint8_t *p;
  size_t n = wr_tls_pending(c->tls, &p);
  int rv;
  if (!n) {
    c->queued -= plain;
    return WR_OK;
  }
  rv = send_copy(c, p, n, plain);
  wr_tls_sent(c->tls, n);
  return rv;
}

/* Hands the gathered plain writes to libuv as one write. */
static int flush_pending(wr_conn *c) {
  wreq *w = c->pend;
  if (!w) return WR_OK;
  c->pend = NULL;
  if (!c->sk || c->wfailed) {
    c->queued -= w->plain;
    free(w);
    return WR_ERR_IO;
  }
  return submit(c, w);
}

static void on_wflush(uv_timer_t *t) {
  wr_conn *c = t->data;
  if (!c->closing) flush_pending(c);
}

/* Plain writes made during one loop iteration (typically one per QUIC
 * packet of a request body) are gathered and written once, from a zero
 * timer: one write(2) for many small pieces. */
static int gather_plain(wr_conn *c, const uint8_t *data, size_t len) {
  wreq *w = c->pend;
  if (w && w->len + len > 256u * 1024u) {
    int rv = flush_pending(c);
    if (rv != WR_OK) {
      c->queued -= len;
      return rv;
    }
    w = NULL;
  }
  if (!w || w->len + len > w->cap) {
    size_t used = w ? w->len : 0, cap = used + len < 16384 ? 16384 : used + len;
    if (w && cap < 2 * w->cap) cap = 2 * w->cap;
    wreq *nw = wr_xrealloc(w, sizeof(*nw) + cap);
    if (!w) nw->len = nw->plain = 0;
    nw->cap = cap;
    w = c->pend = nw;
  }
  memcpy(w->data + w->len, data, len);
  w->len += len;
  w->plain += len;
  if (!uv_is_active((uv_handle_t *)&c->wflush)) uv_timer_start(&c->wflush, on_wflush, 0, 0);
  return WR_OK;
}

/* Queues plaintext on an open conn; c->queued already counts it. */
static int send_plain(wr_conn *c, const uint8_t *data, size_t len) {
  if (!c->tls) return gather_plain(c, data, len);
  int rv = wr_tls_write(c->tls, data, len);
  if (rv != WR_OK) {
    c->queued -= len;
    return rv;
  }
  return flush_tls(c, len);
}

/* The result is of no use: a failed shutdown shows up as a read error or
 * the peer never seeing EOF, and libuv wants a callback either way. */
static void on_shutdown(uv_shutdown_t *req, int status) {}

static void do_shutdown(wr_conn *c) {
  flush_pending(c); /* before the FIN */
  if (c->tls && wr_tls_bye(c->tls) == WR_OK) flush_tls(c, 0);
  /* libuv shuts down after the queued writes. */
  if (c->sk && uv_shutdown(&c->sreq, &c->sk->s, on_shutdown) != 0) c->wfailed = 1;
}

int wr_conn_write(wr_conn *c, const uint8_t *data, size_t len) {
  if (!c || c->closing || c->shut || c->state == ST_FAILED) return WR_ERR_INVAL;
  if (c->wfailed) return WR_ERR_IO;
  if (!len) return WR_OK;
  c->queued += len;
  if (c->queued > WR_CONN_LOW_WATER) c->above_low = 1;
  if (c->state != ST_OPEN) {
    if (wr_buf_append(&c->pre, data, len) != WR_OK) abort(); /* OOM, see top */
    return WR_OK;
  }
  return send_plain(c, data, len);
}

size_t wr_conn_write_queued(const wr_conn *c) { return c->queued; }

int wr_conn_shutdown(wr_conn *c) {
  if (!c || c->closing || c->shut || c->state == ST_FAILED) return WR_ERR_INVAL;
  c->shut = 1;
  if (c->state == ST_OPEN) do_shutdown(c);
  return WR_OK;
}

/* --- connection established -------------------------------------------------- */

static void drain_tls(wr_conn *c);

static void become_open(wr_conn *c) {
  c->state = ST_OPEN;
  uv_timer_stop(&c->timer);
  if (c->pre.len) {
    send_plain(c, c->pre.data, c->pre.len);
    wr_buf_free(&c->pre);
  }
  if (c->shut) do_shutdown(c);
  update_reading(c);
  if (c->cbs.on_connect) c->cbs.on_connect(c, WR_OK, NULL, c->user);
  /* Application data may have come with the handshake's last flight. */
  if (c->tls && !c->closing) drain_tls(c);
}

static void fail_connect(wr_conn *c, int status, const char *msg) {
  c->state = ST_FAILED;
  uv_timer_stop(&c->timer);
  update_reading(c);
  if (!c->closing && c->cbs.on_connect) c->cbs.on_connect(c, status, msg, c->user);
}

static void handshake_step(wr_conn *c) {
  int rv = wr_tls_handshake(c->tls);
  flush_tls(c, 0); /* our next flight, or the alert that tells the peer why */
  if (rv == WR_AGAIN) return;
  if (rv == WR_OK) become_open(c);
  else fail_connect(c, rv, wr_tls_errmsg(c->tls));
}

/* Delivers decrypted bytes until the session runs dry, the user pauses or
 * closes, or the stream ends. */
static void drain_tls(wr_conn *c) {
  uint8_t *out = NULL;
  while (!c->closing && c->state == ST_OPEN && !c->paused && !c->eof) {
    size_t n;
    int eof, rv;
    if (!out) out = rbuf_take(c);
    rv = wr_tls_read(c->tls, out, READ_CHUNK, &n, &eof);
    if (rv == WR_AGAIN) break;
    if (rv == WR_OK && n) {
      if (c->cbs.on_read) c->cbs.on_read(c, out, n, c->user);
    } else if (rv == WR_OK || rv == WR_ERR_TRUNC) {
      /* close_notify, or a bare EOF, which Go also reads as io.EOF. */
      report_eof(c, WR_OK, NULL);
    } else {
      report_eof(c, rv, wr_tls_errmsg(c->tls));
    }
  }
  rbuf_give(out);
  if (!c->closing) {
    flush_tls(c, 0); /* post-handshake replies or alerts */
    update_reading(c);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wr_conn *c = s->data;
  const uint8_t *data = (const uint8_t *)buf->base;
  char msg[128];
  if (c->closing || nread == 0) {
    rbuf_give(data);
    return;
  }
  if (nread > 0) {
    if (!c->tls) {
      if (c->cbs.on_read) c->cbs.on_read(c, data, (size_t)nread, c->user);
      rbuf_give(data);
      return;
    }
    /* Never trips: we drain after every read and stop reading when paused. */
    int rv = wr_tls_feed(c->tls, data, (size_t)nread);
    rbuf_give(data); /* TLS copied it */
    if (rv != WR_OK) {
      if (c->state == ST_HANDSHAKE) fail_connect(c, WR_ERR_LIMIT, "tls: input buffer full");
      else report_eof(c, WR_ERR_LIMIT, "tls: input buffer full");
      return;
    }
  } else {
    rbuf_give(data);
    if (nread == UV_EOF && c->tls) {
      wr_tls_feed_eof(c->tls);
    } else if (nread == UV_EOF) {
      report_eof(c, WR_OK, NULL);
      return;
    } else {
      snprintf(msg, sizeof(msg), "read %s %s: %s", c->net, c->addr, uv_strerror((int)nread));
      if (c->state == ST_HANDSHAKE) fail_connect(c, WR_ERR_IO, msg);
      else report_eof(c, WR_ERR_IO, msg);
      return;
    }
  }
  if (c->state == ST_HANDSHAKE) handshake_step(c);
  else drain_tls(c);
}

/* Transport connected (client): TLS or open. */
static void transport_up(wr_conn *c) {
  int rv;
  if (!c->creds) {
    become_open(c);
    return;
  }
  /* SNI defaults to the host; wr_tls leaves IP literals out of SNI. */
  rv = wr_tls_client_new(c->creds, c->server_name ? c->server_name : c->host, c->verify_name,
                         c->alpn, &c->tls);
  if (rv != WR_OK) {
    fail_connect(c, rv, "tls: cannot create a session");
    return;
  }
  c->state = ST_HANDSHAKE;
  update_reading(c);
  handshake_step(c);
}

/* --- dialing ---------------------------------------------------------------------- */

static void format_addr(char *out, size_t cap, const struct sockaddr *sa) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, ip, sizeof(ip));
    snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof(ip));
    snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
  }
}

static void record_dial_err(wr_conn *c, int status) {
  if (!c->first_err[0])
    snprintf(c->first_err, sizeof(c->first_err), "dial %s %s: connect: %s", c->net, c->addr,
             uv_strerror(status));
}

static void try_next(wr_conn *c);

static void on_connected(uv_connect_t *req, int status) {
  wr_conn *c = req->data;
  /* Cancelled by close or by the timeout (which closed the socket). */
  if (c->closing || c->state != ST_CONNECTING) return;
  if (status < 0) {
    record_dial_err(c, status);
    sock_close(c);
    if (c->unix_path) fail_connect(c, WR_ERR_IO, c->first_err);
    else try_next(c);
    return;
  }
  if (c->sk->h.type == UV_TCP) {
    int len = sizeof(c->peer);
    uv_tcp_getpeername(&c->sk->tcp, (struct sockaddr *)&c->peer, &len);
    uv_tcp_nodelay(&c->sk->tcp, 1);
    /* After connect, when the fd exists: before it, libuv would apply its
     * own fixed 60 s delay instead of ours. */
    if (c->keepalive_s) uv_tcp_keepalive(&c->sk->tcp, 1, (unsigned)c->keepalive_s);
  }
  transport_up(c);
}

/* Tries the remaining resolved addresses in order. */
static void try_next(wr_conn *c) {
  while (c->ai_next) {
    struct addrinfo *a = c->ai_next;
    int rc;
    c->ai_next = a->ai_next;
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    if (c->has_local && a->ai_family != c->local.ss_family) continue;
    format_addr(c->addr, sizeof(c->addr), a->ai_addr);
    sock_open(c, UV_TCP);
    rc = c->has_local ? uv_tcp_bind(&c->sk->tcp, (const struct sockaddr *)&c->local, 0) : 0;
    if (rc == 0) rc = uv_tcp_connect(&c->creq, &c->sk->tcp, a->ai_addr, on_connected);
    if (rc == 0) {
      c->state = ST_CONNECTING;
      return;
    }
    record_dial_err(c, rc); /* e.g. no IPv6 on this host */
    sock_close(c);
  }
  fail_connect(c, WR_ERR_IO, c->first_err[0] ? c->first_err : "dial tcp: no addresses");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  wr_conn *c = req->data;
  char msg[384];
  c->gai_pending = 0;
  if (c->closing || c->state != ST_RESOLVING) {
    if (res) uv_freeaddrinfo(res);
    unref(c);
    return;
  }
  c->refs--; /* cannot reach 0: the timers hold references */
  if (status < 0) {
    snprintf(msg, sizeof(msg), "dial tcp: lookup %s: %s", c->host,
             status == UV_EAI_NONAME || status == UV_EAI_NODATA ? "no such host"
                                                                : uv_strerror(status));
    fail_connect(c, WR_ERR_IO, msg);
    return;
  }
  c->ai = c->ai_next = res;
  try_next(c);
}

static void on_timeout(uv_timer_t *t) {
  wr_conn *c = t->data;
  char msg[384];
  switch (c->state) {
  case ST_RESOLVING:
    snprintf(msg, sizeof(msg), "dial tcp: lookup %s: i/o timeout", c->host);
    uv_cancel((uv_req_t *)&c->gai);
    break;
  case ST_CONNECTING:
    snprintf(msg, sizeof(msg), "dial %s %s: i/o timeout", c->net, c->addr);
    sock_close(c); /* cancels the connect */
    break;
  case ST_HANDSHAKE:
    snprintf(msg, sizeof(msg), "tls: handshake with %s: i/o timeout", c->addr);
    break;
  default:
    return;
  }
  fail_connect(c, WR_ERR_IO, msg);
}

/* Next-iteration work: a plain accept's on_connect, or plaintext a TLS
 * session still holds after wr_conn_read_start. */
static void on_defer(uv_timer_t *t) {
  wr_conn *c = t->data;
  if (c->state == ST_ACCEPTED) become_open(c);
  else if (c->state == ST_OPEN && c->tls) drain_tls(c);
}

int wr_conn_connect(uv_loop_t *loop, const wr_conn_target *t, const wr_conn_callbacks *cbs,
                    void *user, wr_conn **out) {
  wr_conn *c;
  if (!loop || !t || !cbs || !out) return WR_ERR_INVAL;
  if (t->unix_path ? !*t->unix_path || strlen(t->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)
                   : !t->host || !*t->host || !t->port)
    return WR_ERR_INVAL;
  c = conn_new(loop, cbs, user);
  c->creds = t->tls;
  c->keepalive_s = t->tcp_keepalive_s;
  const wr_strcopy strs[] = {{t->host, &c->host}, {t->unix_path, &c->unix_path},
                             {t->server_name, &c->server_name}, {t->verify_name, &c->verify_name},
                             {t->alpn, &c->alpn}};
  c->strs = wr_strpack(strs, sizeof(strs) / sizeof(strs[0]));
  if (t->local_addr && (t->local_addr->sa_family == AF_INET || t->local_addr->sa_family == AF_INET6)) {
    memcpy(&c->local, t->local_addr,
           t->local_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6));
    c->has_local = 1;
  }
  uv_timer_start(&c->timer, on_timeout,
                 t->connect_timeout_ms ? t->connect_timeout_ms : DEFAULT_TIMEOUT_MS, 0);
  *out = c;

  if (c->unix_path) {
    c->net = "unix";
    snprintf(c->addr, sizeof(c->addr), "%s", c->unix_path);
    sock_open(c, UV_NAMED_PIPE);
    c->state = ST_CONNECTING;
    uv_pipe_connect(&c->creq, &c->sk->pipe, c->unix_path, on_connected);
    return WR_OK;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV};
  char port[8];
  snprintf(port, sizeof(port), "%u", t->port);
  c->state = ST_RESOLVING;
  int rc = uv_getaddrinfo(loop, &c->gai, on_resolved, c->host, port, &hints);
  if (rc != 0) { /* only on bad arguments or OOM: undo without callbacks */
    c->cbs = (wr_conn_callbacks){0};
    wr_conn_close(c);
    *out = NULL;
    return rc == UV_ENOMEM ? WR_ERR_NOMEM : WR_ERR_INVAL;
  }
  c->gai_pending = 1;
  c->refs++;
  return WR_OK;
}

int wr_conn_accept(uv_stream_t *server, wr_tls_creds *tls, const wr_conn_callbacks *cbs,
                   void *user, wr_conn **out) {
  wr_conn *c;
  int rc;
  if (!server || !cbs || !out) return WR_ERR_INVAL;
  if (server->type != UV_TCP && server->type != UV_NAMED_PIPE) return WR_ERR_INVAL;
  c = conn_new(server->loop, cbs, user);
  sock_open(c, server->type);
  if ((rc = uv_accept(server, &c->sk->s)) != 0) {
    rc = rc == UV_EAGAIN ? WR_AGAIN : WR_ERR_IO;
    goto fail;
  }
  if (server->type == UV_TCP) {
    int len = sizeof(c->peer);
    uv_tcp_nodelay(&c->sk->tcp, 1);
    if (uv_tcp_getpeername(&c->sk->tcp, (struct sockaddr *)&c->peer, &len) == 0)
      format_addr(c->addr, sizeof(c->addr), (struct sockaddr *)&c->peer);
  } else {
    c->net = "unix";
    snprintf(c->addr, sizeof(c->addr), "@");
  }
  if (tls) {
    if ((rc = wr_tls_server_new(tls, &c->tls)) != WR_OK) goto fail;
    c->state = ST_HANDSHAKE;
    update_reading(c);
  } else {
    c->state = ST_ACCEPTED;
    uv_timer_start(&c->defer, on_defer, 0, 0);
  }
  *out = c;
  return WR_OK;

fail:
  c->cbs = (wr_conn_callbacks){0};
  wr_conn_close(c);
  *out = NULL;
  return rc;
}

/* --- flow control and accessors ----------------------------------------------- */

void wr_conn_read_stop(wr_conn *c) {
  if (!c || c->closing) return;
  c->paused = 1;
  update_reading(c);
}

void wr_conn_read_start(wr_conn *c) {
  if (!c || c->closing || !c->paused) return;
  c->paused = 0;
  /* The TLS session may hold decrypted or undecrypted bytes that no socket
   * event would bring out; deliver them next iteration, not re-entrantly. */
  if (c->tls && c->state == ST_OPEN) uv_timer_start(&c->defer, on_defer, 0, 0);
  else update_reading(c);
}

const char *wr_conn_alpn(const wr_conn *c) { return c->tls ? wr_tls_alpn(c->tls) : ""; }

void *wr_conn_user(const wr_conn *c) { return c->user; }
void wr_conn_set_user(wr_conn *c, void *user) { c->user = user; }
void wr_conn_set_callbacks(wr_conn *c, const wr_conn_callbacks *cbs) { c->cbs = *cbs; }

int wr_conn_peer(const wr_conn *c, struct sockaddr_storage *ss) {
  *ss = c->peer; /* AF_UNSPEC (0) unless a TCP connection was made */
  return WR_OK;
}
