/* Fuzzes the QUIC server endpoint's receive path end to end: demultiplexing,
 * admission control (Retry, caps, token checks, stateless resets) and the
 * accept path of a listening endpoint wired to the real tunnel server
 * (src/edge/tunnel_server.c callbacks, a store in a temporary directory),
 * through wr_quic_endpoint_inject, which handles a datagram exactly as the
 * socket's receive callback does. Replies go out on the real socket to
 * 127.0.0.x addresses where nobody listens.
 *
 * Input: one flags byte, then records of [source byte][length: 2 bytes, big
 * endian][datagram]. Flags: bit 0 demands a Retry from every new connection,
 * bit 1 sets tiny caps (2 half-open per source, 4 in total), bit 2 tiny
 * Retry thresholds (1 per source, 2 in total), bit 3 ends the input with a
 * real client dialling the endpoint over loopback (ownership handover at
 * handshake completion, with the hostile connections still around). Source
 * byte: bits 0-2 pick one of 8 sources (4 addresses x 2 ports); with bit 7
 * set the datagram is replaced by one of three real client Initials made at
 * start-up by our own client (bits 3-4 pick it; the third offers no ALPN),
 * so inputs keep reaching the handshake whatever the mutations do to the
 * ClientHello bytes. Every input gets a fresh endpoint and tunnel server
 * and must free everything (LeakSanitizer).
 *
 * Seeds (tests/fuzz/corpus/fuzz_quic_endpoint/): the 1,200-byte forged
 * Initial of the attack report, a real client Initial captured from our
 * client, and variants (truncated, other versions, bad Length fields,
 * forged Retry token, short-header garbage, bursts, flags set). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "edge/pki.h"
#include "edge/store.h"
#include "edge/tunnel_server.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/quic.h"
#include "fuzz.h"
#include "../unit/quic_initial.h"

static char dir[64], ca_path[128], cert_path[128], key_path[128], db_path[128];
static wr_store *store;
static wr_quic_tls *stls, *ctls;
static uv_loop_t loop;
static uint8_t real_initial[3][1500];
static size_t real_len[3];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f);
  fputs(text, f);
  fclose(f);
}

/* A real ClientHello Initial from our client code (|alpn| "" offers none). */
static size_t make_initial(uint8_t *buf, size_t cap, const char *alpn) {
  size_t n;
  CHECK(quic_client_initial(ca_path, alpn, 0x7f000002u, 0x7f000001u, buf, cap, &n) == WR_OK &&
        n >= 1200);
  return n;
}

static void at_exit(void) {
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  char p[160];
  wr_store_close(store);
  wr_quic_tls_free(stls);
  wr_quic_tls_free(ctls);
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof(p), "%s%s", db_path, suffix[i]);
    unlink(p);
  }
  unlink(ca_path);
  unlink(cert_path);
  unlink(key_path);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char err[256];
  wr_pem_pair ca = {0}, srv = {0};
  wr_account account;
  wr_tunnel tunnel;
  static const char *const dns[] = {"quic.cftunnel.com"};
  static const char *const ips[] = {"127.0.0.1"};
  (void)argc;
  (void)argv;
  wr_log_set_level(WR_LOG_OFF);
  snprintf(dir, sizeof(dir), "%s/wr-fuzz-quic-XXXXXX",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  CHECK(mkdtemp(dir));
  snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
  snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
  snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
  snprintf(db_path, sizeof(db_path), "%s/warren.db", dir);
  wr_pki_req creq = {.common_name = "fuzz CA", .is_ca = 1, .days = 1};
  CHECK(wr_pki_issue(NULL, &creq, &ca, err, sizeof(err)) == 0);
  wr_pki_req sreq = {.common_name = "quic.cftunnel.com", .dns = dns, .n_dns = 1, .ips = ips,
                     .n_ips = 1, .days = 1};
  CHECK(wr_pki_issue(&ca, &sreq, &srv, err, sizeof(err)) == 0);
  write_file(ca_path, ca.cert);
  write_file(cert_path, srv.cert);
  write_file(key_path, srv.key);
  wr_pem_pair_free(&ca);
  wr_pem_pair_free(&srv);
  CHECK(wr_store_open(db_path, WR_STORE_CREATE, &store, err, sizeof(err)) == WR_OK);
  CHECK(wr_store_account_create(store, "fuzz", "example.test", &account) == WR_OK);
  CHECK(wr_store_tunnel_create(store, "fuzz", account.id, "t", NULL, 0, &tunnel) == WR_OK);
  wr_quic_config scfg = {.cert_file = cert_path, .key_file = key_path};
  wr_quic_config ccfg = {.ca_file = ca_path};
  CHECK(wr_quic_tls_new(WR_QUIC_SERVER, &scfg, &stls, NULL, 0) == WR_OK);
  CHECK(wr_quic_tls_new(WR_QUIC_CLIENT, &ccfg, &ctls, NULL, 0) == WR_OK);
  CHECK(uv_loop_init(&loop) == 0);
  real_len[0] = make_initial(real_initial[0], sizeof(real_initial[0]), NULL);
  real_len[1] = make_initial(real_initial[1], sizeof(real_initial[1]), NULL);
  real_len[2] = make_initial(real_initial[2], sizeof(real_initial[2]), "");
  atexit(at_exit);
  return 0;
}

/* ---- the real client of flag bit 3 ---- */

static int client_done;

static void cl_hs(wr_quic_conn *c, void *user) {
  (void)user;
  client_done = 1;
  wr_quic_conn_close(c, 0, NULL);
}

static void cl_close(wr_quic_conn *c, const wr_quic_close_info *ci, void *user) {
  (void)c;
  (void)ci;
  (void)user;
  client_done = 1;
}

static void dial(wr_quic_endpoint *sep) {
  static const wr_quic_callbacks cbs = {.on_handshake_done = cl_hs, .on_close = cl_close};
  wr_quic_config ccfg = {.ca_file = ca_path};
  struct sockaddr_storage sa;
  wr_quic_endpoint *cep;
  wr_quic_conn *c;
  CHECK(wr_quic_endpoint_addr(sep, &sa) == WR_OK);
  CHECK(wr_quic_endpoint_client(&loop, ctls, &ccfg, (struct sockaddr *)&sa, &cbs, NULL, &cep,
                                &c) == WR_OK);
  client_done = 0;
  /* Bounded: the client may well be refused (caps) or lose packets; the
   * point is the server's paths, not the client's success. */
  for (int i = 0; i < 3000 && !client_done; i++) uv_run(&loop, UV_RUN_NOWAIT);
  wr_quic_endpoint_free(cep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_tunnel_server *ts;
  wr_quic_endpoint *ep;
  struct sockaddr_in bind;
  wr_quic_endpoint_stats st;
  uint8_t flags;
  size_t o = 1, n = 0;

  if (size < 1) return 0;
  flags = data[0];
  wr_quic_config cfg = {.cert_file = cert_path, .key_file = key_path};
  cfg.retry_always = flags & 1;
  if (flags & 2) {
    cfg.max_half_open_per_source = 2;
    cfg.max_half_open = 4;
  }
  if (flags & 4) {
    cfg.retry_half_open_per_source = 1;
    cfg.retry_half_open = 2;
  }
  wr_tunnel_server_config tcfg = {.store = store};
  CHECK(wr_tunnel_server_new(&tcfg, &ts) == WR_OK);
  uv_ip4_addr("127.0.0.1", 0, &bind);
  CHECK(wr_tunnel_server_listen(ts, &loop, stls, &cfg, (struct sockaddr *)&bind, &ep) == WR_OK);

  while (o + 3 <= size && n < 64) {
    uint8_t src = data[o];
    size_t len = (size_t)data[o + 1] << 8 | data[o + 2];
    const uint8_t *d = data + o + 3;
    o += 3;
    if (len > size - o) len = size - o;
    o += len;
    n++;
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(0x7f000002u + (src & 3));
    from.sin_port = htons((uint16_t)(40000 + ((src >> 2) & 1)));
    if (src & 0x80) {
      unsigned k = ((src >> 3) & 3) % 3;
      d = real_initial[k];
      len = real_len[k];
    }
    if (len == 0) continue;
    CHECK(wr_quic_endpoint_inject(ep, (struct sockaddr *)&from, d, len) == WR_OK);
    /* Lets the endpoint flush and run timers between datagrams. */
    uv_run(&loop, UV_RUN_NOWAIT);
    wr_quic_endpoint_get_stats(ep, &st);
    /* The accounting invariants the caps rely on. */
    CHECK(st.half_open <= st.conns);
    CHECK(st.sources <= st.half_open);
    CHECK(st.half_open <= (flags & 2 ? 4u : (unsigned)WR_QUIC_MAX_HALF_OPEN));
  }
  if (flags & 8) dial(ep);
  /* No connection completed a handshake from injected bytes alone, so the
   * tunnel server owns at most the dialling client's. */
  CHECK(wr_tunnel_server_count(ts, NULL) == 0);
  wr_quic_endpoint_free(ep);
  uv_run(&loop, UV_RUN_DEFAULT);
  wr_tunnel_server_free(ts);
  return 0;
}
