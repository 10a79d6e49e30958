/* Fuzzes the WireGuard device (proto/wg_device.h) with what arrives on its
 * UDP port: the message parsers, mac1/mac2, the Noise consumer, cookie
 * replies and transport data. Raw datagrams rarely get past mac1, so the
 * harness also makes real messages with a second device and lets the input
 * flip their bits (re-sealing mac1 on request, so the mutations reach the
 * handshake itself), on a fresh pair per input:
 *   mode 0  the input as datagrams (2-byte length, bytes), to the target
 *   mode 1  a real initiation, mutated, to the target
 *   mode 2  a session, then a real data packet and a keepalive, mutated
 *   mode 3  the target under load: its cookie reply, mutated, to the peer,
 *           then the peer's retry
 * After each input the target must still complete a fresh handshake with a
 * third key and carry a packet: no state the input left may wedge it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/wg_device.h"
#include "proto/wg_noise.h"
#include "proto/wireguard.h"
#include "fuzz.h"

#define QMAX 16
typedef struct q {
  uint8_t data[QMAX][256];
  size_t len[QMAX];
  size_t n;
  int received;
} q;

static q outq[2];

static void cb_send(void *user, const wr_wg_endpoint *to, const uint8_t *data, size_t len) {
  q *o = user;
  (void)to;
  if (o->n < QMAX && len <= sizeof(o->data[0])) {
    memcpy(o->data[o->n], data, len);
    o->len[o->n++] = len;
  }
}

static void cb_receive(void *user, wr_wg_peer *peer, uint8_t *pkt, size_t len) {
  q *o = user;
  (void)peer;
  (void)pkt;
  (void)len;
  o->received++;
}

static uint8_t keys[3][32], pubs[3][32];
static int ready;

static wr_wg *dev(int i, unsigned cookie) {
  wr_wg_config cfg = {.cbs = {cb_send, cb_receive, NULL}, .user = &outq[i ? 1 : 0],
                      .cookie_threshold = cookie};
  memcpy(cfg.private_key, keys[i], 32);
  wr_wg *wg = NULL;
  if (wr_wg_new(&cfg, &wg) != WR_OK) abort();
  return wg;
}

static const wr_wg_endpoint EP_T = {.len = 2, .addr = {1, 1}}, EP_P = {.len = 2, .addr = {2, 2}};

/* Delivers what each side queued to the other, a few rounds. */
static void pump(wr_wg *t, wr_wg *p, uint64_t now) {
  for (int round = 0; round < 4; round++) {
    q a = outq[0], b = outq[1];
    outq[0].n = outq[1].n = 0;
    for (size_t i = 0; i < a.n; i++) wr_wg_input(p, now, &EP_T, a.data[i], a.len[i]);
    for (size_t i = 0; i < b.n; i++) wr_wg_input(t, now, &EP_P, b.data[i], b.len[i]);
  }
}

static void mutate(uint8_t *m, size_t len, const uint8_t *in, size_t n, int reseal,
                   const uint8_t mac1_key[32]) {
  for (size_t i = 0; i < n; i++) m[i % len] ^= in[i];
  if (reseal && (len == WR_WG_INITIATION_LEN || len == WR_WG_RESPONSE_LEN))
    wr_wg_set_mac1(m, len, mac1_key);
}

static const uint8_t PING[28] = {0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) {
    for (int i = 0; i < 3; i++) {
      wr_wg_noise_generate(keys[i]);
      if (wr_wg_noise_public(pubs[i], keys[i]) != WR_OK) abort();
    }
    ready = 1;
  }
  if (size < 1 || size > 4096) return 0;
  int mode = data[0] & 3, reseal = data[0] & 4;
  data++;
  size--;
  outq[0].n = outq[1].n = 0;
  outq[0].received = outq[1].received = 0;
  wr_wg *t = dev(0, mode == 3 ? WR_WG_COOKIE_ALWAYS : 0), *p = dev(1, 0);
  wr_wg_peer *tp = NULL, *pp = NULL;
  if (wr_wg_peer_add(t, pubs[1], NULL, NULL, &tp) != WR_OK) abort();
  if (wr_wg_peer_add(p, pubs[0], NULL, NULL, &pp) != WR_OK) abort();
  wr_wg_peer_set_endpoint(pp, &EP_T);
  uint8_t mk_t[32];
  wr_wg_mac1_key(mk_t, pubs[0]);
  uint64_t now = 1000 * WR_WG_NS;

  if (mode == 0) {
    for (size_t off = 0; off + 2 <= size;) {
      size_t n = (size_t)data[off] << 8 | data[off + 1];
      off += 2;
      if (n > size - off) n = size - off;
      wr_wg_input(t, now, &EP_P, data + off, n);
      off += n;
    }
  } else if (mode == 1) {
    wr_wg_peer_initiate(p, pp, now, 1);
    if (outq[1].n != 1) abort();
    outq[1].n = 0;
    uint8_t m[WR_WG_INITIATION_LEN];
    memcpy(m, outq[1].data[0], sizeof(m));
    mutate(m, sizeof(m), data, size, reseal, mk_t);
    wr_wg_input(t, now, &EP_P, m, sizeof(m));
    pump(t, p, now);
  } else if (mode == 2) {
    wr_wg_send(p, pp, now, PING, sizeof(PING));
    pump(t, p, now);
    if (outq[0].received != 1) abort(); /* the session works before the mutation */
    wr_wg_send(p, pp, now, PING, sizeof(PING));
    wr_wg_send(p, pp, now, NULL, 0);
    for (size_t i = 0; i < outq[1].n; i++) {
      mutate(outq[1].data[i], outq[1].len[i], data, size, 0, mk_t);
      wr_wg_input(t, now, &EP_P, outq[1].data[i], outq[1].len[i]);
    }
    outq[1].n = 0;
  } else {
    wr_wg_send(p, pp, now, PING, sizeof(PING));
    wr_wg_input(t, now, &EP_P, outq[1].data[0], outq[1].len[0]);
    outq[1].n = 0;
    for (size_t i = 0; i < outq[0].n; i++) {
      mutate(outq[0].data[i], outq[0].len[i], data, size, 0, mk_t);
      wr_wg_input(p, now, &EP_T, outq[0].data[i], outq[0].len[i]);
    }
    outq[0].n = 0;
    wr_wg_tick(p, now + 6 * WR_WG_NS);
    pump(t, p, now + 6 * WR_WG_NS);
  }
  wr_wg_tick(t, now + 1);

  /* A third party still gets through. */
  wr_wg *c = dev(2, 0);
  wr_wg_peer *cp = NULL, *tc = NULL;
  if (wr_wg_peer_add(t, pubs[2], NULL, NULL, &tc) != WR_OK) abort();
  if (wr_wg_peer_add(c, pubs[0], NULL, NULL, &cp) != WR_OK) abort();
  wr_wg_peer_set_endpoint(cp, &EP_T);
  outq[0].n = outq[1].n = 0;
  int before = outq[0].received;
  wr_wg_send(c, cp, now + 2, PING, sizeof(PING));
  pump(t, c, now + 2);
  if (mode != 3 && outq[0].received != before + 1) abort();
  wr_wg_free(c);
  wr_wg_free(t);
  wr_wg_free(p);
  return 0;
}
