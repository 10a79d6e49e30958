/* QUIC transport: streams and datagrams. The stream table, each stream's
 * unacked send data and receive credit, the round-robin send queue, the
 * datagram queue, their ngtcp2 callbacks, the public stream and datagram
 * API, and packing all of it into packets (wr__quic_write_app, called by
 * wr_quic_conn_write for each packet). See quic_int.h for how the QUIC
 * files divide the work.
 *
 * Memory ownership of stream data: ngtcp2 0.x does not copy stream data; it
 * keeps pointers to the application's bytes until they are acknowledged
 * (retransmissions reuse them). So every byte accepted by
 * wr_quic_stream_write() lives in a per-stream chunk list until
 * acked_stream_data_offset says the peer has it, and the list is bounded by
 * cfg.stream_send_queue (backpressure: WR_AGAIN + on_stream_writable). */
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>

#include "lib/err.h"
#include "lib/list.h"
#include "net/quic_int.h"

#define NBUCKETS 256
#define MAX_VECS 16
/* Attempts before an unfittable datagram is dropped (datagrams are
 * unreliable; holding one forever would block the queue). */
#define DGRAM_MAX_TRIES 3

typedef struct chunk {
  struct chunk *next;
  uint64_t off; /* stream offset of data[0] */
  size_t len;
  uint8_t data[];
} chunk;

typedef struct stream {
  int64_t id;
  void *suser;
  struct stream *hnext;  /* hash bucket chain */
  struct stream *qnext;  /* send queue */
  chunk *head, *tail;    /* unacked data, oldest first */
  chunk *send;           /* first chunk with unsent bytes, NULL if none */
  uint64_t ack_off, send_off, write_off;
  uint64_t rx_delivered, rx_consumed;
  unsigned fin_queued : 1, fin_sent : 1, write_shut : 1, blocked : 1,
      in_sendq : 1, want_writable : 1;
} stream;

typedef struct dgram {
  struct dgram *next;
  size_t len;
  int tries;
  uint8_t data[];
} dgram;

/* --- streams: bookkeeping ------------------------------------------------ */

static stream *stream_find(wr_quic_conn *c, int64_t id) {
  stream *s;
  if (!c->buckets) return NULL;
  s = c->buckets[(uint64_t)id % NBUCKETS];
  while (s && s->id != id) s = s->hnext;
  return s;
}

static stream *stream_add(wr_quic_conn *c, int64_t id, void *suser) {
  stream *s;
  /* Allocated with the first stream, not with the connection: a half-open
   * connection never has one. */
  if (!c->buckets && !(c->buckets = calloc(NBUCKETS, sizeof(*c->buckets)))) return NULL;
  s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->id = id;
  s->suser = suser;
  s->hnext = c->buckets[(uint64_t)id % NBUCKETS];
  c->buckets[(uint64_t)id % NBUCKETS] = s;
  return s;
}

static void stream_free_data(stream *s) {
  chunk *k = s->head;
  while (k) {
    chunk *n = k->next;
    free(k);
    k = n;
  }
  s->head = s->tail = s->send = NULL;
}

static void sendq_remove(wr_quic_conn *c, stream *s) {
  stream **pp = &c->sq_head, *prev = NULL;
  if (!s->in_sendq) return;
  while (*pp && *pp != s) {
    prev = *pp;
    pp = &(*pp)->qnext;
  }
  if (*pp) {
    *pp = s->qnext;
    if (c->sq_tail == s) c->sq_tail = prev;
  }
  s->qnext = NULL;
  s->in_sendq = 0;
}

static void sendq_push(wr_quic_conn *c, stream *s) {
  if (s->in_sendq || s->blocked || s->write_shut) return;
  WR_FIFO_PUSH(c->sq_head, c->sq_tail, s, qnext);
  s->in_sendq = 1;
}

static stream *sendq_pop(wr_quic_conn *c) {
  stream *s = c->sq_head;
  if (!s) return NULL;
  WR_FIFO_POP(c->sq_head, c->sq_tail, qnext);
  s->qnext = NULL;
  s->in_sendq = 0;
  return s;
}

static int stream_has_pending(const stream *s) {
  return !s->write_shut &&
         (s->send_off < s->write_off || (s->fin_queued && !s->fin_sent));
}

static void stream_remove(wr_quic_conn *c, stream *s) {
  stream **pp = &c->buckets[(uint64_t)s->id % NBUCKETS];
  while (*pp && *pp != s) pp = &(*pp)->hnext;
  if (*pp) *pp = s->hnext;
  sendq_remove(c, s);
  stream_free_data(s);
  free(s);
}

/* --- ngtcp2 callbacks ------------------------------------------------------ */

/* An owner callback returned < 0: ngtcp2 fails the connection, and the close
 * reason says the application did it. */
static int owner_refused(wr_quic_conn *c) {
  c->cb_failed = 1;
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t sid,
                               uint64_t offset, const uint8_t *data,
                               size_t len, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  int fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
  (void)conn;
  (void)offset;
  (void)suser;
  if (s) s->rx_delivered += len;
  if (c->cbs.on_stream_data &&
      c->cbs.on_stream_data(c, sid, data, len, fin, c->user,
                            s ? s->suser : NULL) < 0)
    return owner_refused(c);
  if (!c->cbs.on_stream_data) {
    /* Nobody reads: give the credit straight back so the peer never
     * stalls on a stream we ignore. */
    if (s) s->rx_consumed += len;
    ngtcp2_conn_extend_max_stream_offset(c->conn, sid, len);
    ngtcp2_conn_extend_max_offset(c->conn, len);
  }
  return 0;
}

static int cb_acked(ngtcp2_conn *conn, int64_t sid, uint64_t offset,
                    uint64_t len, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)suser;
  if (!s) return 0;
  if (offset + len > s->ack_off) s->ack_off = offset + len;
  while (s->head && s->head->off + s->head->len <= s->ack_off) {
    chunk *k = s->head;
    s->head = k->next;
    if (!s->head) s->tail = NULL;
    free(k);
  }
  if (s->want_writable &&
      s->write_off - s->ack_off <= c->send_queue_cap / 2) {
    s->want_writable = 0;
    if (c->cbs.on_stream_writable)
      c->cbs.on_stream_writable(c, sid, c->user, s->suser);
  }
  return 0;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t sid, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  /* The tunnel protocol uses no uni streams; HTTP/3 does. */
  if (!ngtcp2_is_bidi_stream(sid) && !c->uni_streams) return 0;
  if (!stream_add(c, sid, NULL)) return NGTCP2_ERR_CALLBACK_FAILURE;
  if (c->cbs.on_stream_open && c->cbs.on_stream_open(c, sid, c->user) < 0)
    return owner_refused(c);
  return 0;
}

uint64_t wr_quic_peer_streams_max(wr_quic_conn *c) {
  return ngtcp2_conn_get_local_transport_params(c->conn)->initial_max_streams_bidi +
         c->peer_bidi_closed;
}

/* ngtcp2 gives the peer no new stream credit by itself (ngtcp2.h,
 * ngtcp2_conn_extend_max_streams_bidi): each stream of the peer's that
 * closes makes room for one more. */
static void peer_stream_closed(wr_quic_conn *c, int64_t sid) {
  /* Bit 0 of a stream id: 1 when the server opened it (RFC 9000 2.1). */
  if ((int)(sid & 1) == (c->role == WR_QUIC_SERVER)) return;
  if (!ngtcp2_is_bidi_stream(sid)) {
    ngtcp2_conn_extend_max_streams_uni(c->conn, 1);
    return;
  }
  if (!c->bidi_credit) return;
  ngtcp2_conn_extend_max_streams_bidi(c->conn, 1);
  c->peer_bidi_closed++;
  if (c->cbs.on_peer_streams) c->cbs.on_peer_streams(c, wr_quic_peer_streams_max(c), c->user);
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t sid,
                           uint64_t code, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)suser;
  if (!s) return 0;
  /* Bytes delivered but never consumed would leak connection credit;
   * the stream is gone, so return it now. */
  if (s->rx_delivered > s->rx_consumed)
    ngtcp2_conn_extend_max_offset(c->conn, s->rx_delivered - s->rx_consumed);
  if (c->cbs.on_stream_close)
    c->cbs.on_stream_close(
        c, sid, (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0,
        code, c->user, s->suser);
  stream_remove(c, s);
  peer_stream_closed(c, sid);
  return 0;
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t sid, uint64_t final_size,
                           uint64_t code, void *user, void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)final_size;
  (void)suser;
  if (c->cbs.on_stream_reset &&
      c->cbs.on_stream_reset(c, sid, code, c->user, s ? s->suser : NULL) < 0)
    return owner_refused(c);
  return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t sid,
                                     uint64_t max_data, void *user,
                                     void *suser) {
  wr_quic_conn *c = user;
  stream *s = stream_find(c, sid);
  (void)conn;
  (void)max_data;
  (void)suser;
  if (s && s->blocked) {
    s->blocked = 0;
    if (stream_has_pending(s)) sendq_push(c, s);
  }
  return 0;
}

static int cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags,
                            const uint8_t *data, size_t len, void *user) {
  wr_quic_conn *c = user;
  (void)conn;
  (void)flags;
  if (c->cbs.on_datagram && c->cbs.on_datagram(c, data, len, c->user) < 0)
    return owner_refused(c);
  return 0;
}

void wr__quic_stream_callbacks(ngtcp2_callbacks *cb) {
  cb->recv_stream_data = cb_recv_stream_data;
  cb->acked_stream_data_offset = cb_acked;
  cb->stream_open = cb_stream_open;
  cb->stream_close = cb_stream_close;
  cb->stream_reset = cb_stream_reset;
  cb->extend_max_stream_data = cb_extend_max_stream_data;
  cb->recv_datagram = cb_recv_datagram;
}

void wr__quic_streams_free(wr_quic_conn *c) {
  size_t i;
  for (i = 0; c->buckets && i < NBUCKETS; i++) {
    stream *s = c->buckets[i];
    while (s) {
      stream *n = s->hnext;
      stream_free_data(s);
      free(s);
      s = n;
    }
  }
  free(c->buckets);
  c->buckets = NULL;
  c->sq_head = c->sq_tail = NULL;
  while (c->dq_head) {
    dgram *d = c->dq_head;
    c->dq_head = d->next;
    free(d);
  }
  c->dq_tail = NULL;
  c->dq_len = 0;
}

/* --- streams: API ------------------------------------------------------------ */

static int stream_open(wr_quic_conn *c, int bidi, void *suser, int64_t *sid) {
  int64_t id;
  int rv;
  if (c->state >= WR_QUIC_CLOSING || c->app_close_requested)
    return WR_ERR_INVAL;
  rv = bidi ? ngtcp2_conn_open_bidi_stream(c->conn, &id, NULL)
            : ngtcp2_conn_open_uni_stream(c->conn, &id, NULL);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return WR_AGAIN;
  if (rv != 0) return WR_ERR_NOMEM;
  if (!stream_add(c, id, suser)) {
    ngtcp2_conn_shutdown_stream(c->conn, id, NGTCP2_INTERNAL_ERROR);
    return WR_ERR_NOMEM;
  }
  *sid = id;
  return WR_OK;
}

int wr_quic_stream_open(wr_quic_conn *c, void *suser, int64_t *sid) {
  return stream_open(c, 1, suser, sid);
}

int wr_quic_stream_open_uni(wr_quic_conn *c, void *suser, int64_t *sid) {
  return stream_open(c, 0, suser, sid);
}

int wr_quic_stream_write(wr_quic_conn *c, int64_t sid, const uint8_t *data,
                         size_t len, int fin, size_t *accepted) {
  stream *s = stream_find(c, sid);
  size_t room, take;
  *accepted = 0;
  if (!s) return WR_ERR_NOTFOUND;
  if (c->state >= WR_QUIC_CLOSING || s->fin_queued || s->write_shut)
    return WR_ERR_INVAL;
  room = c->send_queue_cap > s->write_off - s->ack_off
             ? c->send_queue_cap - (size_t)(s->write_off - s->ack_off)
             : 0;
  take = len < room ? len : room;
  if (take > 0) {
    chunk *k = malloc(sizeof(*k) + take);
    if (!k) return WR_ERR_NOMEM;
    k->next = NULL;
    k->off = s->write_off;
    k->len = take;
    memcpy(k->data, data, take);
    if (s->tail)
      s->tail->next = k;
    else
      s->head = k;
    s->tail = k;
    if (!s->send) s->send = k;
    s->write_off += take;
    *accepted = take;
  }
  if (take == len && fin) s->fin_queued = 1;
  if (stream_has_pending(s) && !s->blocked) sendq_push(c, s);
  wr__quic_kick(c);
  if (take < len) {
    s->want_writable = 1;
    return WR_AGAIN;
  }
  return WR_OK;
}

int wr_quic_stream_consume(wr_quic_conn *c, int64_t sid, size_t n) {
  stream *s = stream_find(c, sid);
  /* Connection credit is returned even for a stream that just closed:
   * cb_stream_close only returns what was not consumed by then. */
  if (!s) return WR_ERR_NOTFOUND;
  s->rx_consumed += n;
  ngtcp2_conn_extend_max_stream_offset(c->conn, sid, n);
  ngtcp2_conn_extend_max_offset(c->conn, n);
  wr__quic_kick(c);
  return WR_OK;
}

int wr_quic_stream_reset(wr_quic_conn *c, int64_t sid, uint64_t app_code) {
  stream *s = stream_find(c, sid);
  if (!s) return WR_ERR_NOTFOUND;
  s->write_shut = 1;
  sendq_remove(c, s);
  if (ngtcp2_conn_shutdown_stream_write(c->conn, sid, app_code) != 0)
    return WR_ERR_INVAL;
  wr__quic_kick(c);
  return WR_OK;
}

int wr_quic_stream_stop_sending(wr_quic_conn *c, int64_t sid,
                                uint64_t app_code) {
  if (!stream_find(c, sid)) return WR_ERR_NOTFOUND;
  if (ngtcp2_conn_shutdown_stream_read(c->conn, sid, app_code) != 0)
    return WR_ERR_INVAL;
  wr__quic_kick(c);
  return WR_OK;
}

size_t wr_quic_stream_queued(wr_quic_conn *c, int64_t sid) {
  stream *s = stream_find(c, sid);
  return s ? (size_t)(s->write_off - s->ack_off) : 0;
}

void *wr_quic_stream_user(wr_quic_conn *c, int64_t sid) {
  stream *s = stream_find(c, sid);
  return s ? s->suser : NULL;
}

int wr_quic_stream_set_user(wr_quic_conn *c, int64_t sid, void *suser) {
  stream *s = stream_find(c, sid);
  if (!s) return WR_ERR_NOTFOUND;
  s->suser = suser;
  return WR_OK;
}

/* --- datagrams: API ---------------------------------------------------------- */

static size_t varint_len(uint64_t n) {
  return n < 64 ? 1 : n < 16384 ? 2 : n < 1073741824 ? 4 : 8;
}

size_t wr_quic_datagram_max(wr_quic_conn *c) {
  const ngtcp2_transport_params *p =
      ngtcp2_conn_get_remote_transport_params(c->conn);
  uint64_t f, n;
  if (!p || p->max_datagram_frame_size == 0) return 0;
  f = p->max_datagram_frame_size;
  if (f > 65535) f = 65535;
  /* Largest n with type(1) + varint(n) + n <= f (RFC 9221 4). */
  n = f > 1 ? f - 2 : 0;
  while (n > 0 && 1 + varint_len(n) + n > f) n--;
  return (size_t)n;
}

int wr_quic_datagram_send(wr_quic_conn *c, const uint8_t *data, size_t len) {
  const ngtcp2_transport_params *p;
  dgram *d;
  if (c->state >= WR_QUIC_CLOSING || c->app_close_requested)
    return WR_ERR_INVAL;
  p = ngtcp2_conn_get_remote_transport_params(c->conn);
  if (!p) return WR_AGAIN;
  if (p->max_datagram_frame_size == 0) return WR_ERR_UNSUPPORTED;
  if (len > wr_quic_datagram_max(c)) return WR_ERR_LIMIT;
  if (c->dq_len >= c->dgram_queue_cap) return WR_AGAIN;
  d = malloc(sizeof(*d) + len);
  if (!d) return WR_ERR_NOMEM;
  d->next = NULL;
  d->len = len;
  d->tries = 0;
  memcpy(d->data, data, len);
  if (c->dq_tail)
    c->dq_tail->next = d;
  else
    c->dq_head = d;
  c->dq_tail = d;
  c->dq_len++;
  wr__quic_kick(c);
  return WR_OK;
}

/* --- packing into packets ----------------------------------------------------- */

static void dgram_pop(wr_quic_conn *c) {
  dgram *d = c->dq_head;
  c->dq_head = d->next;
  if (!c->dq_head) c->dq_tail = NULL;
  c->dq_len--;
  free(d);
}

/* What the packet loop does after a frame source had its turn. */
enum { PKT_DONE = 0, PKT_NEXT = 1 };

/* Offers the oldest queued datagram to the packet in |buf|. One ngtcp2
 * cannot fit stays queued for later packets, DGRAM_MAX_TRIES offers in all.
 * Returns PKT_NEXT to go on filling the packet, or PKT_DONE with the
 * packet's size, 0 (nothing written: congestion or amplification limit) or
 * a negative ngtcp2 error in |*nwrite|. */
static int write_datagram(wr_quic_conn *c, ngtcp2_path *path, uint8_t *buf, size_t cap,
                          wr_quic_tstamp now, ngtcp2_ssize *nwrite) {
  dgram *d = c->dq_head;
  ngtcp2_vec v = {d->data, d->len};
  int accepted = 0;
  *nwrite = ngtcp2_conn_writev_datagram(c->conn, path, NULL, buf, cap, &accepted,
                                        NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, now);
  if (accepted)
    dgram_pop(c);
  else if (++d->tries >= DGRAM_MAX_TRIES)
    dgram_pop(c);
  if (*nwrite == NGTCP2_ERR_WRITE_MORE) return PKT_NEXT;
  if (*nwrite == NGTCP2_ERR_INVALID_ARGUMENT || *nwrite == NGTCP2_ERR_INVALID_STATE) {
    /* Peer limit changed or datagrams not allowed: drop it. */
    if (!accepted && c->dq_head == d) dgram_pop(c);
    return PKT_NEXT;
  }
  return PKT_DONE;
}

/* Points |vec| at the unsent bytes of |s| (at most MAX_VECS chunks, no
 * copy) and returns the number of entries; |*total| gets their size. */
static size_t stream_vecs(const stream *s, ngtcp2_vec *vec, size_t *total) {
  size_t nv = 0;
  *total = 0;
  for (chunk *k = s->send; k && nv < MAX_VECS; k = k->next) {
    uint64_t skip = s->send_off > k->off ? s->send_off - k->off : 0;
    vec[nv].base = k->data + skip;
    vec[nv].len = k->len - skip;
    *total += vec[nv].len;
    nv++;
  }
  return nv;
}

/* ngtcp2 took |ndata| of the |total| bytes offered from |s| (and the FIN
 * with them if |fin| was offered and all of them fitted). */
static void stream_sent(stream *s, size_t ndata, size_t total, int fin) {
  s->send_off += (uint64_t)ndata;
  while (s->send && s->send->off + s->send->len <= s->send_off)
    s->send = s->send->next;
  if (fin && ndata == total) s->fin_sent = 1;
}

/* Offers the next stream of the send queue to the packet in |buf|; a
 * stream with bytes left goes back to the end of the queue. Returns like
 * write_datagram. */
static int write_stream(wr_quic_conn *c, ngtcp2_path *path, uint8_t *buf, size_t cap,
                        wr_quic_tstamp now, ngtcp2_ssize *nwrite) {
  ngtcp2_vec vec[MAX_VECS];
  size_t nv, total;
  ngtcp2_ssize ndata = -1;
  uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
  stream *s = sendq_pop(c);
  nv = stream_vecs(s, vec, &total);
  if (s->fin_queued && s->send_off + total == s->write_off)
    flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
  *nwrite = ngtcp2_conn_writev_stream(c->conn, path, NULL, buf, cap, &ndata, flags, s->id,
                                      vec, nv, now);
  if (ndata >= 0) stream_sent(s, (size_t)ndata, total, (flags & NGTCP2_WRITE_STREAM_FLAG_FIN) != 0);
  switch (*nwrite) {
  case NGTCP2_ERR_STREAM_DATA_BLOCKED:
    s->blocked = 1; /* until extend_max_stream_data */
    return PKT_NEXT;
  case NGTCP2_ERR_STREAM_SHUT_WR:
  case NGTCP2_ERR_STREAM_NOT_FOUND:
    s->write_shut = 1;
    return PKT_NEXT;
  case NGTCP2_ERR_WRITE_MORE:
    if (stream_has_pending(s)) sendq_push(c, s);
    return PKT_NEXT;
  default:
    /* A packet, an error, or 0: congestion or a connection-level limit. */
    if (stream_has_pending(s)) sendq_push(c, s);
    return PKT_DONE;
  }
}

/* Coalesces frames with the *_FLAG_MORE protocol. Each source gets at most
 * as many turns as it had entries on entry, so a packet ends even when
 * every offer is refused. */
ngtcp2_ssize wr__quic_write_app(wr_quic_conn *c, ngtcp2_path *path, uint8_t *buf,
                                size_t cap, wr_quic_tstamp now) {
  size_t dg_budget = c->dq_len;
  size_t st_budget = 0;
  ngtcp2_ssize nwrite;

  for (stream *s = c->sq_head; s; s = s->qnext) st_budget++;
  for (;;) {
    if (c->dq_head && dg_budget > 0 && c->state == WR_QUIC_ESTABLISHED) {
      dg_budget--;
      if (write_datagram(c, path, buf, cap, now, &nwrite) == PKT_DONE) return nwrite;
    } else if (c->sq_head && st_budget > 0) {
      st_budget--;
      if (write_stream(c, path, buf, cap, now, &nwrite) == PKT_DONE) return nwrite;
    } else {
      /* Control frames only (ACK, PING, MAX_*), and completes a packet
       * that a WRITE_MORE above left open. */
      return ngtcp2_conn_write_pkt(c->conn, path, NULL, buf, cap, now);
    }
  }
}
