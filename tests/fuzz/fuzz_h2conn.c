/* Fuzzes the connector's HTTP/2 side (connector/h2_transport.h), which reads
 * what the edge sends on an HTTP/2 connection: the client preface (added
 * when the input does not start with it), frames, HPACK, request heads by
 * cloudflared's conventions (control stream, configuration update,
 * websocket, TCP, HTTP) and request bodies. The proxy behind it answers
 * every HTTP request locally (http_status:404, no origin dialed); the
 * configuration update service accepts anything. Checked, beyond
 * ASan/UBSan: a feed error is only WR_ERR_PROTO / WR_ERR_IO, and once the
 * session is freed the proxy holds no stream. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "connector/h2_transport.h"
#include "connector/ingress.h"
#include "connector/proxy.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "fuzz.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static uv_loop_t loop;
static wr_proxy *proxy;
static wr_ingress *ing;

static int32_t update_config(void *user, int32_t version, const uint8_t *json, size_t len,
                             char *err, size_t errlen) {
  (void)user;
  (void)json;
  (void)len;
  (void)err;
  (void)errlen;
  return version;
}

static int sink(void *user, const uint8_t *data, size_t len) {
  (void)user;
  (void)data;
  (void)len;
  return WR_OK;
}

static void nop(void *user) { (void)user; }

static void control_data(void *user, const uint8_t *d, size_t n, int fin) {
  (void)user;
  (void)d;
  (void)n;
  (void)fin;
}

static void setup(void) {
  static const char yaml[] = "ingress:\n  - service: http_status:404\n";
  wr_config *cfg = NULL;
  char err[256];
  wr_rpc_services svc;
  wr_proxy_config pc;
  wr_log_set_level(WR_LOG_FATAL);
  uv_loop_init(&loop);
  CHECK(wr_config_parse(yaml, strlen(yaml), "config.yml", &cfg, err, sizeof(err)) == 0);
  CHECK(wr_ingress_parse(cfg, &ing, err, sizeof(err)) == 0);
  wr_config_free(cfg);
  memset(&svc, 0, sizeof(svc));
  svc.update_config = update_config;
  memset(&pc, 0, sizeof(pc));
  pc.loop = &loop;
  pc.ingress = ing;
  pc.services = &svc;
  CHECK(wr_proxy_new(&pc, &proxy) == WR_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_h2 *h;
  if (!proxy) setup();
  wr_h2_config hc = {.proxy = proxy, .send = sink, .kick = nop, .on_control_open = nop,
                     .on_control_data = control_data};
  CHECK(wr_h2_new(&hc, &h) == WR_OK);
  int rv = WR_OK;
  if (size < sizeof(preface) - 1 || memcmp(data, preface, sizeof(preface) - 1) != 0)
    rv = wr_h2_feed(h, (const uint8_t *)preface, sizeof(preface) - 1);
  /* In two pieces, so frames split across feeds are exercised too. */
  size_t cut = size ? data[0] % (size + 1) : 0;
  if (rv == WR_OK) rv = wr_h2_feed(h, data, cut);
  if (rv == WR_OK) rv = wr_h2_feed(h, data + cut, size - cut);
  CHECK(rv == WR_OK || rv == WR_ERR_PROTO || rv == WR_ERR_IO);
  wr_h2_flush(h);
  wr_h2_free(h);
  CHECK(wr_proxy_active(proxy) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}
