/* quic_halfopen: opens N QUIC handshakes to a server and never completes
 * them, to measure what half-open connections cost the server (the attack
 * "1,000 valid client Initials grow the edge by 87 MB"). Each connection is
 * our own client (src/net/quic_*.c) with a real ClientHello, on its own UDP
 * socket, from one of S source addresses (127.0.0.2, 127.0.0.3, ... for a
 * loopback server). Replies are ignored, except that with --retry a Retry
 * is answered the way a real client does (the token comes back in a new
 * Initial), so the server's caps rather than its Retry thresholds bound it.
 *
 * Build (after `make`):
 *   cc -O2 -Isrc -D_GNU_SOURCE $(pkg-config --cflags libuv gnutls libngtcp2) \
 *      tests/tools/quic_halfopen.c build/libwarren.a \
 *      $(pkg-config --libs libuv gnutls libngtcp2 libngtcp2_crypto_gnutls \
 *        libnghttp2 yaml-0.1 jansson sqlite3 ldns) -lm -lpthread -o build/quic_halfopen
 * Run:
 *   build/quic_halfopen [--retry] [--sources S] [--hold SECONDS] HOST:PORT N
 * It prints how many Retries it saw; measure the server's RSS while it
 * holds (default 3 s, below the server's 5 s handshake timeout). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "net/quic.h"

typedef struct hc {
  int fd;
  struct sockaddr_in local;
  wr_quic_conn *c;
  int retried;
} hc;

static void send_all(hc *h, const struct sockaddr_in *srv) {
  uint8_t buf[1500];
  size_t n;
  for (;;) {
    if (wr_quic_conn_write(h->c, buf, sizeof(buf), &n, uv_hrtime()) != 0 || n == 0) break;
    (void)sendto(h->fd, buf, n, 0, (const struct sockaddr *)srv, sizeof(*srv));
  }
}

int main(int argc, char **argv) {
  int retry = 0, sources = 1, hold = 3, i, n, port;
  char host[64];
  struct sockaddr_in srv = {.sin_family = AF_INET};
  /* Every handshake: from its own socket's address (set below) to srv. */
  wr_quic_path path = {NULL, sizeof(struct sockaddr_in), (struct sockaddr *)&srv, sizeof(srv)};
  wr_quic_config cfg = {0};
  wr_quic_tls *tls;
  hc *hs;
  struct pollfd *pfd;
  long retries = 0;

  while (argc > 3 && argv[1][0] == '-') {
    if (!strcmp(argv[1], "--retry")) {
      retry = 1;
      argv++, argc--;
    } else if (!strcmp(argv[1], "--sources") && argc > 4) {
      sources = atoi(argv[2]);
      argv += 2, argc -= 2;
    } else if (!strcmp(argv[1], "--hold") && argc > 4) {
      hold = atoi(argv[2]);
      argv += 2, argc -= 2;
    } else {
      break;
    }
  }
  if (argc != 3 || sscanf(argv[1], "%63[^:]:%d", host, &port) != 2 || (n = atoi(argv[2])) <= 0 ||
      sources < 1 || sources > 250) {
    fprintf(stderr, "usage: %s [--retry] [--sources S] [--hold SECONDS] HOST:PORT N\n", argv[0]);
    return 2;
  }
  srv.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &srv.sin_addr) != 1) return 2;
  /* The handshake never gets far enough to verify the server. */
  cfg.ca_file = NULL;
  cfg.keepalive_ms = UINT64_MAX;
  if (wr_quic_tls_new(WR_QUIC_CLIENT, &cfg, &tls, NULL, 0) != 0) return 1;
  hs = calloc((size_t)n, sizeof(*hs));
  pfd = calloc((size_t)n, sizeof(*pfd));
  for (i = 0; i < n; i++) {
    socklen_t l = sizeof(hs[i].local);
    hs[i].local.sin_family = AF_INET;
    /* Sources 127.0.0.2... for a loopback server; else the default route. */
    if ((ntohl(srv.sin_addr.s_addr) >> 24) == 127)
      hs[i].local.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % sources));
    hs[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (hs[i].fd < 0 || bind(hs[i].fd, (struct sockaddr *)&hs[i].local, sizeof(hs[i].local)) != 0 ||
        getsockname(hs[i].fd, (struct sockaddr *)&hs[i].local, &l) != 0) {
      perror("socket");
      return 1;
    }
    path.local = (struct sockaddr *)&hs[i].local;
    if (wr_quic_conn_client_new(tls, &cfg, &path, NULL, NULL, uv_hrtime(), &hs[i].c) != 0)
      return 1;
    send_all(&hs[i], &srv);
    pfd[i].fd = hs[i].fd;
    pfd[i].events = POLLIN;
  }
  /* Hold the handshakes open; with --retry, answer Retries (only them). */
  uint64_t end = uv_hrtime() + (uint64_t)hold * 1000000000ULL;
  while (uv_hrtime() < end) {
    if (poll(pfd, (nfds_t)n, 50) <= 0) continue;
    for (i = 0; i < n; i++) {
      uint8_t buf[65536];
      ssize_t r;
      if (!(pfd[i].revents & POLLIN)) continue;
      while ((r = recv(hs[i].fd, buf, sizeof(buf), 0)) > 0) {
        /* Long header, QUIC v1, packet type 3: a Retry. */
        int is_retry = (buf[0] & 0xb0) == 0xb0 && r > 5 && buf[1] == 0 && buf[2] == 0 &&
                       buf[3] == 0 && buf[4] == 1;
        if (!is_retry) continue;
        retries++;
        if (!retry || hs[i].retried) continue;
        hs[i].retried = 1;
        wr_quic_conn_read(hs[i].c, (struct sockaddr *)&srv, sizeof(srv), buf, (size_t)r,
                          uv_hrtime());
        send_all(&hs[i], &srv);
      }
    }
  }
  printf("%d handshakes from %d source%s, %ld Retr%s seen%s\n", n, sources, sources == 1 ? "" : "s",
         retries, retries == 1 ? "y" : "ies", retry ? " and answered" : "");
  for (i = 0; i < n; i++) {
    wr_quic_conn_free(hs[i].c);
    close(hs[i].fd);
  }
  free(hs);
  free(pfd);
  wr_quic_tls_free(tls);
  return 0;
}
