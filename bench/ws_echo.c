/* ws_echo: the WebSocket echo origin of `make bench`.
 *
 * One thread, epoll, level-triggered. Accepts HTTP/1.1 upgrade requests on
 * any path, answers 101 with the right Sec-WebSocket-Accept, then echoes every
 * frame back unmasked with the same FIN bit and opcode (continuation frames
 * stay continuation frames), answers ping with pong and close with close.
 * Plain GET requests without an upgrade get a small 200 (a readiness probe).
 * No limits beyond a 64 MiB frame cap: it is a benchmark origin on loopback.
 *
 *   ws_echo PORT      listens on 127.0.0.1:PORT, prints "ready PORT" when up
 *
 * Build: cc -O2 -o ws_echo ws_echo.c   (SHA-1 and base64 are included below).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)
#define READ_CHUNK (256u << 10)

/* --- SHA-1 (RFC 3174), enough for the handshake ------------------------- */
static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t total = ((len + 8) / 64 + 1) * 64;
  unsigned char *m = calloc(1, total);
  if (!m) abort();
  memcpy(m, msg, len);
  m[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) m[total - 1 - i] = (unsigned char)(bits >> (8 * i));
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 |
             (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
      else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
      else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
      else { f = b ^ c ^ d; k = 0xCA62C1D6; }
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d; d = c; c = rol(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  free(m);
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void b64(const unsigned char *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

/* --- connections ---------------------------------------------------------- */
struct buf { unsigned char *p; size_t len, cap; };

static void buf_reserve(struct buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  b->p = realloc(b->p, cap);
  if (!b->p) abort();
  b->cap = cap;
}

static void buf_put(struct buf *b, const void *p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void buf_drop(struct buf *b, size_t n) {
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
}

struct conn {
  int fd;
  int ws;        /* upgraded */
  int closing;   /* close after the output drains */
  int want_out;  /* EPOLLOUT armed */
  struct buf in, out;
};

static int ep;

static void conn_free(struct conn *c) {
  close(c->fd);
  free(c->in.p);
  free(c->out.p);
  free(c);
}

static void set_events(struct conn *c) {
  int want = c->out.len > 0;
  if (want == c->want_out) return;
  struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = want;
}

/* Writes what it can; 0 ok, -1 dead. */
static int flush_out(struct conn *c) {
  size_t off = 0;
  while (off < c->out.len) {
    ssize_t n = send(c->fd, c->out.p + off, c->out.len - off, MSG_NOSIGNAL);
    if (n > 0) { off += (size_t)n; continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return -1;
  }
  buf_drop(&c->out, off);
  if (c->out.len == 0 && c->closing) return -1;
  set_events(c);
  return 0;
}

static const char *find_header(const char *head, const char *name, size_t *vlen) {
  size_t nl = strlen(name);
  const char *p = strstr(head, "\r\n");
  while (p && p[2] != '\r') {
    p += 2;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      const char *e = strstr(v, "\r\n");
      while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
      *vlen = (size_t)(e - v);
      return v;
    }
    p = strstr(p, "\r\n");
  }
  return NULL;
}

/* 1 = need more, 0 = progressed, -1 = fatal */
static int handle_http(struct conn *c) {
  unsigned char *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
  if (!end) return c->in.len > 65536 ? -1 : 1;
  size_t hlen = (size_t)(end - c->in.p) + 4;
  char *head = malloc(hlen + 1);
  memcpy(head, c->in.p, hlen);
  head[hlen] = 0;
  buf_drop(&c->in, hlen);
  size_t klen = 0;
  const char *key = find_header(head, "Sec-WebSocket-Key", &klen);
  if (!key || klen > 64) {
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n";
    buf_put(&c->out, ok, sizeof ok - 1);
    free(head);
    return 0;
  }
  char kbuf[128];
  memcpy(kbuf, key, klen);
  memcpy(kbuf + klen, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
  unsigned char dig[20];
  sha1((unsigned char *)kbuf, klen + 36, dig);
  char acc[32];
  b64(dig, 20, acc);
  char resp[256];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
  buf_put(&c->out, resp, (size_t)n);
  c->ws = 1;
  free(head);
  return 0;
}

static int handle_ws(struct conn *c) {
  size_t off = 0;
  int rc = 1;
  while (c->in.len - off >= 2) {
    unsigned char *p = c->in.p + off;
    size_t avail = c->in.len - off;
    int fin = p[0] & 0x80, op = p[0] & 0x0F, masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7F;
    size_t h = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t)p[2] << 8 | p[3];
      h = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
      h = 10;
    }
    if (len > MAX_FRAME) return -1;
    size_t mh = masked ? 4 : 0;
    if (avail < h + mh + len) break;
    unsigned char *pl = p + h + mh;
    if (masked) {
      unsigned char *m = p + h;
      for (uint64_t i = 0; i < len; i++) pl[i] ^= m[i & 3];
    }
    unsigned char oh[10];
    size_t ohl = 2;
    int rop = op == 0x9 ? 0xA : op;
    oh[0] = (unsigned char)((fin ? 0x80 : 0) | rop);
    if (len < 126) oh[1] = (unsigned char)len;
    else if (len < 65536) { oh[1] = 126; oh[2] = (unsigned char)(len >> 8); oh[3] = (unsigned char)len; ohl = 4; }
    else { oh[1] = 127; for (int i = 0; i < 8; i++) oh[2 + i] = (unsigned char)(len >> (56 - 8 * i)); ohl = 10; }
    if (op != 0xA) { /* pongs from the client are dropped */
      buf_put(&c->out, oh, ohl);
      buf_put(&c->out, pl, len);
    }
    off += h + mh + len;
    rc = 0;
    if (op == 0x8) { c->closing = 1; break; }
  }
  buf_drop(&c->in, off);
  return rc;
}

static int on_readable(struct conn *c) {
  for (;;) {
    buf_reserve(&c->in, READ_CHUNK);
    ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
    if (n == 0) return -1;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    c->in.len += (size_t)n;
    if ((size_t)n < READ_CHUNK) break;
  }
  for (;;) {
    int r = c->ws ? handle_ws(c) : handle_http(c);
    if (r < 0) return -1;
    if (r == 1 || c->closing || c->in.len == 0) break;
  }
  return flush_out(c);
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: ws_echo PORT\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
    perror("ws_echo: bind/listen");
    return 1;
  }
  ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  printf("ready %s\n", argv[1]);
  fflush(stdout);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = calloc(1, sizeof *c);
          c->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      int dead = 0;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) dead = evs[i].events & EPOLLERR ? 1 : 0;
      if (!dead && (evs[i].events & EPOLLOUT)) dead = flush_out(c) < 0;
      if (!dead && (evs[i].events & (EPOLLIN | EPOLLHUP))) dead = on_readable(c) < 0;
      if (dead) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); conn_free(c); }
    }
  }
}
