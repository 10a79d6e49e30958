/* UDP sessions; see udp_session.h. */
#include "connector/udp_session.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "proto/datagram.h"

#define NBUCKETS 1024

typedef struct usession usession;
struct usession {
  wr_udp_sessions *t;
  wr_quic_conn *qc;
  uint8_t id[16];
  uv_udp_t udp;
  uv_timer_t timer;
  struct sockaddr_storage dst;
  int64_t idle_ns;
  uint64_t active_ms; /* uv_now of the last read or write */
  int handles;        /* open libuv handles; freed at 0 */
  int closing;
  usession *next, *prev; /* bucket chain (unlinked once closing) */
};

struct wr_udp_sessions {
  uv_loop_t *loop;
  wr_udp_sessions_config cfg;
  usession *buckets[NBUCKETS];
  size_t n;
  size_t pending; /* sessions not yet freed (open handles) */
  int dying;
  int dial_err; /* libuv error of the last failed dial */
  wr_udp_sessions_stats stats;
  uint8_t rbuf[WR_UDP_READ_BUF];
  uint8_t dgram[WR_DGRAM_MAX_FRAME];
};

/* --- Go's Duration.String ----------------------------------------------------- */

/* fmtFrac: the fraction of v/10^prec without trailing zeros (and without
 * the '.' when it is zero), written backwards from |w|; v becomes v/10^prec. */
static size_t fmt_frac(char *buf, size_t w, uint64_t *v, int prec) {
  int print = 0;
  for (int i = 0; i < prec; i++) {
    int digit = (int)(*v % 10);
    print = print || digit != 0;
    if (print) buf[--w] = (char)('0' + digit);
    *v /= 10;
  }
  if (print) buf[--w] = '.';
  return w;
}

static size_t fmt_int(char *buf, size_t w, uint64_t v) {
  if (v == 0) {
    buf[--w] = '0';
    return w;
  }
  while (v > 0) {
    buf[--w] = (char)('0' + v % 10);
    v /= 10;
  }
  return w;
}

int wr_go_duration(int64_t ns, char *out, size_t cap) {
  char buf[40];
  size_t w = sizeof(buf);
  int neg = ns < 0;
  uint64_t u = neg ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
  if (u < 1000000000ull) {
    int prec;
    if (u == 0) return snprintf(out, cap, "0s");
    buf[--w] = 's';
    if (u < 1000ull) {
      prec = 0;
      buf[--w] = 'n';
    } else if (u < 1000000ull) {
      prec = 3;
      buf[--w] = '\xb5'; /* "µ" is U+00B5: 0xc2 0xb5 */
      buf[--w] = '\xc2';
    } else {
      prec = 6;
      buf[--w] = 'm';
    }
    w = fmt_frac(buf, w, &u, prec);
    w = fmt_int(buf, w, u);
  } else {
    buf[--w] = 's';
    w = fmt_frac(buf, w, &u, 9);
    w = fmt_int(buf, w, u % 60);
    u /= 60;
    if (u > 0) {
      buf[--w] = 'm';
      w = fmt_int(buf, w, u % 60);
      u /= 60;
      if (u > 0) {
        buf[--w] = 'h';
        w = fmt_int(buf, w, u);
      }
    }
  }
  if (neg) buf[--w] = '-';
  return snprintf(out, cap, "%.*s", (int)(sizeof(buf) - w), buf + w);
}

/* --- errors as Go prints them (addresses: wr_addr_format, as net.JoinHostPort) --- */

/* Go's syscall error strings are strerror's in lower case at the start. */
static void go_errno(int uverr, char *out, size_t cap) {
  snprintf(out, cap, "%s", strerror(-uverr));
  if (out[0]) out[0] = (char)tolower((unsigned char)out[0]);
}

/* dstIp as Go's net.IP: 4 bytes or IPv4-mapped 16 bytes are IPv4. */
static int make_dst(const uint8_t *ip, size_t iplen, uint16_t port, struct sockaddr_storage *ss) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  memset(ss, 0, sizeof(*ss));
  if (iplen == 4 || (iplen == 16 && memcmp(ip, mapped, 12) == 0)) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    memcpy(&in->sin_addr, ip + (iplen - 4), 4);
    return WR_OK;
  }
  if (iplen == 16) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    memcpy(&in6->sin6_addr, ip, 16);
    return WR_OK;
  }
  return WR_ERR_INVAL;
}

/* --- the table ------------------------------------------------------------------ */

/* v2 sessions belong to (connection, id); v3 flows to their request id
 * alone (they can migrate), so the connection is not part of their key. */
static size_t bucket_of(const wr_udp_sessions *t, const wr_quic_conn *qc, const uint8_t *id) {
  uint64_t h = t->cfg.v3 ? 0 : (uint64_t)(uintptr_t)qc * 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 16; i++) h = (h ^ id[i]) * 0x100000001b3ull;
  return (size_t)(h % NBUCKETS);
}

static usession *find(const wr_udp_sessions *t, const wr_quic_conn *qc, const uint8_t *id) {
  for (usession *s = t->buckets[bucket_of(t, qc, id)]; s; s = s->next)
    if ((t->cfg.v3 || s->qc == qc) && memcmp(s->id, id, 16) == 0) return s;
  return NULL;
}

static void unlink_session(wr_udp_sessions *t, usession *s) {
  size_t b = bucket_of(t, s->qc, s->id);
  WR_LIST_REMOVE(t->buckets[b], s);
  s->next = s->prev = NULL;
  t->n--;
  t->stats.active--;
}

static void table_final_free(wr_udp_sessions *t) { free(t); }

static void handle_closed(uv_handle_t *h) {
  usession *s = h->data;
  if (--s->handles > 0) return;
  wr_udp_sessions *t = s->t;
  free(s);
  if (--t->pending == 0 && t->dying) table_final_free(t);
}

/* Removes |s| from the table and closes its handles (freed later). */
static void session_close(usession *s) {
  if (s->closing) return;
  s->closing = 1;
  unlink_session(s->t, s);
  uv_udp_recv_stop(&s->udp);
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->udp, handle_closed);
  uv_close((uv_handle_t *)&s->timer, handle_closed);
}

/* Ended on our side: close, then tell the owner (who tells the edge). */
static void session_end(usession *s, const char *reason) {
  wr_udp_sessions *t = s->t;
  wr_quic_conn *qc = s->qc;
  uint8_t id[16];
  char sid[WR_UUID_STR_LEN + 1];
  memcpy(id, s->id, 16);
  wr_uuid_format((const wr_uuid *)id, sid);
  WR_LOG_EV(WR_LOG_DEBUG, WR_LOG_EV_UDP, "UDP session %s terminated: %s", sid, reason);
  session_close(s);
  if (t->cfg.on_end) t->cfg.on_end(t->cfg.user, qc, id, reason);
}

/* --- origin -> edge ---------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  usession *s = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)s->t->rbuf, sizeof(s->t->rbuf));
}

static void read_error(usession *s, ssize_t nread) {
  struct sockaddr_storage local;
  int namelen = sizeof(local);
  char l[64] = "", r[64], e[128], reason[WR_UDP_REASON_MAX];
  if (uv_udp_getsockname(&s->udp, (struct sockaddr *)&local, &namelen) == 0)
    wr_addr_format(&local, l, sizeof(l));
  wr_addr_format(&s->dst, r, sizeof(r));
  go_errno((int)nread, e, sizeof(e));
  snprintf(reason, sizeof(reason), "read udp %s->%s: read: %s", l, r, e);
  s->t->stats.ended_error++;
  session_end(s, reason);
}

/* The origin's datagram in t->rbuf as the wire version wants it. */
static int encode_payload(wr_udp_sessions *t, const usession *s, size_t len) {
  if (t->cfg.v3) {
    wr_dgram_v3 d = {.type = WR_DGRAM_V3_PAYLOAD, .payload = t->rbuf, .payload_len = len};
    memcpy(d.request_id, s->id, 16);
    return wr_dgram_v3_encode(&d, t->dgram, sizeof(t->dgram));
  }
  wr_dgram d = {.type = WR_DGRAM_UDP, .payload = t->rbuf, .payload_len = len};
  memcpy(d.session_id.b, s->id, 16);
  return wr_dgram_v2_encode(&d, WR_DGRAM_MAX_FRAME, WR_DGRAM_MAX_UDP_PAYLOAD, t->dgram,
                            sizeof(t->dgram));
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
  usession *s = h->data;
  wr_udp_sessions *t = s->t;
  (void)buf;
  if (s->closing) return;
  if (nread < 0) {
    read_error(s, nread);
    return;
  }
  if (nread == 0 && !addr) return; /* nothing more to read */
  s->active_ms = uv_now(t->loop);
  if ((size_t)nread > WR_DGRAM_MAX_UDP_PAYLOAD || (flags & UV_UDP_PARTIAL)) {
    t->stats.too_big++;
    return;
  }
  int n = encode_payload(t, s, (size_t)nread);
  if (n < 0 || wr_quic_datagram_send(s->qc, t->dgram, (size_t)n) != WR_OK) {
    t->stats.send_dropped++;
    return;
  }
  t->stats.from_origin++;
}

/* --- idle ------------------------------------------------------------------------------ */

static void idle_cb(uv_timer_t *tm) {
  usession *s = tm->data;
  char d[40], reason[WR_UDP_REASON_MAX];
  uint64_t now = uv_now(s->t->loop);
  /* now.After(activeAt + closeAfterIdle) */
  if ((int64_t)(now - s->active_ms) * 1000000LL <= s->idle_ns) return;
  wr_go_duration(s->idle_ns, d, sizeof(d));
  snprintf(reason, sizeof(reason), "session idle for %s", d);
  s->t->stats.ended_idle++;
  session_end(s, reason);
}

/* --- public -------------------------------------------------------------------------- */

int wr_udp_sessions_new(const wr_udp_sessions_config *cfg, wr_udp_sessions **out) {
  *out = NULL;
  if (!cfg || !cfg->loop) return WR_ERR_INVAL;
  wr_udp_sessions *t = wr_xcalloc(1, sizeof(*t));
  t->loop = cfg->loop;
  t->cfg = *cfg;
  if (!t->cfg.max_per_conn) t->cfg.max_per_conn = WR_UDP_MAX_SESSIONS_PER_CONN;
  *out = t;
  return WR_OK;
}

static void close_where(wr_udp_sessions *t, const wr_quic_conn *qc) {
  for (size_t b = 0; b < NBUCKETS; b++) {
    usession *s = t->buckets[b], *n;
    for (; s; s = n) {
      n = s->next;
      if (!qc || s->qc == qc) session_close(s);
    }
  }
}

void wr_udp_sessions_free(wr_udp_sessions *t) {
  if (!t) return;
  t->dying = 1;
  close_where(t, NULL);
  if (t->pending == 0) table_final_free(t);
}

static int dial(wr_udp_sessions *t, usession *s, char *err, size_t errlen) {
  char hp[64], ip[INET6_ADDRSTRLEN], e[128];
  uint16_t port;
  int rv;
  uv_udp_init(t->loop, &s->udp);
  uv_timer_init(t->loop, &s->timer);
  s->udp.data = s->timer.data = s;
  s->handles = 2;
  t->pending++;
  rv = uv_udp_connect(&s->udp, (const struct sockaddr *)&s->dst);
  if (rv == 0) rv = uv_udp_recv_start(&s->udp, alloc_cb, recv_cb);
  if (rv == 0) return WR_OK;
  wr_addr_format(&s->dst, hp, sizeof(hp));
  if (s->dst.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&s->dst)->sin_addr, ip, sizeof(ip));
    port = ntohs(((struct sockaddr_in *)&s->dst)->sin_port);
  } else {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&s->dst)->sin6_addr, ip, sizeof(ip));
    port = ntohs(((struct sockaddr_in6 *)&s->dst)->sin6_port);
  }
  t->dial_err = rv;
  go_errno(rv, e, sizeof(e));
  snprintf(err, errlen, "unable to create UDP proxy to origin (%s:%u): dial udp %s: connect: %s", ip,
           port, hp, e);
  s->closing = 1;
  uv_close((uv_handle_t *)&s->udp, handle_closed);
  uv_close((uv_handle_t *)&s->timer, handle_closed);
  return WR_ERR_IO;
}

static size_t count_conn(const wr_udp_sessions *t, const wr_quic_conn *qc) {
  size_t n = 0;
  for (size_t b = 0; b < NBUCKETS; b++)
    for (const usession *s = t->buckets[b]; s; s = s->next) n += !qc || s->qc == qc;
  return n;
}

/* Dials |dst| and adds a session for (qc, id); NULL (|err| set, counted)
 * when the dial fails. The caller checked caps and duplicates. */
static usession *session_add(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                             const struct sockaddr_storage *dst, int64_t idle_ns, char *err,
                             size_t errlen) {
  usession *s = wr_xcalloc(1, sizeof(*s));
  s->t = t;
  s->qc = qc;
  memcpy(s->id, id, 16);
  s->dst = *dst;
  s->idle_ns = idle_ns > 0 ? idle_ns : WR_UDP_DEFAULT_IDLE_NS;
  if (dial(t, s, err, errlen) != WR_OK) {
    t->stats.refused++;
    return NULL;
  }
  return s;
}

static void session_insert(wr_udp_sessions *t, usession *s) {
  size_t b = bucket_of(t, s->qc, s->id);
  s->next = t->buckets[b];
  if (s->next) s->next->prev = s;
  t->buckets[b] = s;
  t->n++;
  t->stats.active++;
  t->stats.registered++;
  s->active_ms = uv_now(t->loop);
  /* Ticks every hint/8 (at least 1 ms: libuv's resolution). */
  uint64_t tick = (uint64_t)(s->idle_ns / 8 / 1000000LL);
  if (tick == 0) tick = 1;
  uv_timer_start(&s->timer, idle_cb, tick, tick);
}

static int check_dst(wr_udp_sessions *t, const uint8_t *ip, size_t iplen, uint16_t port,
                     struct sockaddr_storage *dst, char *err, size_t errlen) {
  if (ip && make_dst(ip, iplen, port, dst) == WR_OK) return WR_OK;
  snprintf(err, errlen, "dstIp has %zu bytes, not an IPv4 or IPv6 address", iplen);
  t->stats.refused++;
  return WR_ERR_INVAL;
}

static int over_cap(wr_udp_sessions *t, wr_quic_conn *qc, char *err, size_t errlen) {
  if (count_conn(t, qc) < t->cfg.max_per_conn) return 0;
  snprintf(err, errlen, "too many active UDP sessions on this connection (limit %zu)",
           t->cfg.max_per_conn);
  t->stats.refused++;
  return 1;
}

int wr_udp_session_register(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                            const uint8_t *ip, size_t iplen, uint16_t port, int64_t idle_ns,
                            char *err, size_t errlen) {
  struct sockaddr_storage dst;
  usession *old, *s;
  if (errlen) err[0] = '\0';
  if (!id || t->dying || t->cfg.v3) return WR_ERR_INVAL;
  if (check_dst(t, ip, iplen, port, &dst, err, errlen) != WR_OK) return WR_ERR_INVAL;
  old = find(t, qc, id);
  if (!old && over_cap(t, qc, err, errlen)) return WR_ERR_LIMIT;
  if (!(s = session_add(t, qc, id, &dst, idle_ns, err, errlen))) return WR_ERR_IO;
  if (old) session_close(old); /* cloudflared overwrites the map entry */
  session_insert(t, s);
  return WR_OK;
}

/* A dial error that says the destination cannot be reached, rather than
 * that no socket could be made. */
static int unreachable_errno(int uverr) {
  return uverr == UV_ENETUNREACH || uverr == UV_EHOSTUNREACH || uverr == UV_EADDRNOTAVAIL ||
         uverr == UV_EAFNOSUPPORT;
}

int wr_udp_flow_register(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                         const uint8_t *ip, size_t iplen, uint16_t port, int64_t idle_ns,
                         const uint8_t *first, size_t first_len, enum wr_udp_flow_result *res,
                         char *err, size_t errlen) {
  struct sockaddr_storage dst;
  usession *s;
  if (errlen) err[0] = '\0';
  *res = WR_UDP_FLOW_NEW;
  if (!id || t->dying || !t->cfg.v3) return WR_DGRAM_V3_RESP_ERROR_WITH_MSG;
  if ((s = find(t, qc, id)) != NULL) {
    /* The edge did not get our answer (same connection), or moved the
     * flow to another connection: either way the flow goes on, answered
     * OK, and its idle timer starts over. */
    *res = s->qc == qc ? WR_UDP_FLOW_AGAIN : WR_UDP_FLOW_MIGRATED;
    if (s->qc != qc)
      t->stats.migrated++;
    else
      t->stats.reregistered++;
    s->qc = qc;
    s->active_ms = uv_now(t->loop);
    return WR_DGRAM_V3_RESP_OK;
  }
  if (check_dst(t, ip, iplen, port, &dst, err, errlen) != WR_OK)
    return WR_DGRAM_V3_RESP_DEST_UNREACHABLE;
  if (over_cap(t, qc, err, errlen)) return WR_DGRAM_V3_RESP_TOO_MANY_FLOWS;
  if (!(s = session_add(t, qc, id, &dst, idle_ns, err, errlen)))
    return unreachable_errno(t->dial_err) ? WR_DGRAM_V3_RESP_DEST_UNREACHABLE
                                          : WR_DGRAM_V3_RESP_UNABLE_TO_BIND;
  session_insert(t, s);
  if (first) wr_udp_session_to_origin(t, qc, id, first, first_len);
  return WR_DGRAM_V3_RESP_OK;
}

int wr_udp_session_unregister(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                              const char *message) {
  usession *s = find(t, qc, id);
  char sid[WR_UUID_STR_LEN + 1];
  if (!s) return WR_ERR_NOTFOUND;
  wr_uuid_format((const wr_uuid *)id, sid);
  WR_LOG_EV(WR_LOG_DEBUG, WR_LOG_EV_UDP, "UDP session %s unregistered by the edge: %s", sid, message ? message : "");
  t->stats.ended_remote++;
  session_close(s);
  return WR_OK;
}

int wr_udp_session_to_origin(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                             const uint8_t *payload, size_t len) {
  usession *s = find(t, qc, id);
  static uint8_t empty[1];
  if (!s) {
    t->stats.unknown_session++;
    return WR_ERR_NOTFOUND;
  }
  s->active_ms = uv_now(t->loop);
  uv_buf_t b = uv_buf_init((char *)(len ? payload : empty), (unsigned)len);
  int rv = uv_udp_try_send(&s->udp, &b, 1, NULL);
  if (rv < 0) {
    t->stats.write_errors++;
    WR_LOG_EV(WR_LOG_DEBUG, WR_LOG_EV_UDP, "UDP session: failed to write payload to the origin: %s", uv_strerror(rv));
    return WR_ERR_IO;
  }
  t->stats.to_origin++;
  return WR_OK;
}

void wr_udp_sessions_conn_gone(wr_udp_sessions *t, wr_quic_conn *qc) { close_where(t, qc); }

size_t wr_udp_sessions_count(const wr_udp_sessions *t, const wr_quic_conn *qc) {
  return qc ? count_conn(t, qc) : t->n;
}

const wr_udp_sessions_stats *wr_udp_sessions_get_stats(const wr_udp_sessions *t) {
  return &t->stats;
}
