/* A WireGuard interface without I/O; see wg_device.h. */
#include "proto/wg_device.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "lib/siphash.h"
#include "proto/wg_noise.h"

#define PEER_BUCKETS 256
#define INDEX_BUCKETS 4096
#define MAX_TIMER_HANDSHAKES (WR_WG_REKEY_ATTEMPT_TIME / WR_WG_REKEY_TIMEOUT)
#define JITTER_NS 333000000u
#define LOAD_WINDOW_NS WR_WG_NS

enum idx_kind { IDX_HANDSHAKE = 1, IDX_KEYPAIR = 2 };

/* One entry of the index table (what a message's receiver field names):
 * embedded in its handshake or keypair, so lookups never allocate. */
typedef struct idx_node {
  uint32_t id;
  uint8_t kind;
  struct idx_node *next;
  wr_wg_peer *peer;
  struct keypair *kp;
} idx_node;

typedef struct keypair {
  wr_wg_session_keys k;
  uint64_t created;
  uint64_t send_nonce;
  wr_wg_replay replay;
  idx_node node;
} keypair;

struct wr_wg_peer {
  wr_wg_peer *next_hash;
  wr_wg_peer *prev_all, *next_all;
  void *user;
  uint8_t pub[WR_WG_KEY_LEN], psk[WR_WG_KEY_LEN], ss[WR_WG_KEY_LEN];
  int has_psk;
  uint8_t mac1_key[WR_WG_HASH_LEN], cookie_key[WR_WG_HASH_LEN];
  /* The cookie the peer gave us (for our mac2) and our last mac1 (the
   * associated data of its cookie reply). */
  uint8_t cookie[WR_WG_COOKIE_LEN], last_mac1[WR_WG_MAC_LEN];
  uint64_t cookie_set;
  int has_cookie, has_last_mac1;
  wr_wg_handshake hs;
  idx_node hs_node;
  uint64_t last_init_sent;
  int init_sent_ever;
  unsigned attempts;
  uint8_t last_timestamp[WR_WG_TAI64N_LEN];
  uint64_t last_init_consumed;
  int init_consumed_ever;
  keypair *cur, *prev, *next;
  wr_wg_endpoint ep;
  int has_ep;
  /* Packets waiting for a session: a ring of WR_WG_STAGED copies. */
  struct staged {
    uint8_t *data;
    size_t len;
  } *staged;
  size_t staged_head, staged_count;
  /* Timers, as deadlines in |now| units; 0: not armed. */
  uint64_t t_retransmit, t_keepalive, t_new_handshake, t_zero;
  int need_another_keepalive, sent_last_minute_handshake;
  uint64_t last_handshake, rx_bytes, tx_bytes;
};

struct wr_wg {
  uint8_t priv[WR_WG_KEY_LEN], pub[WR_WG_KEY_LEN];
  uint8_t mac1_key[WR_WG_HASH_LEN], cookie_key[WR_WG_HASH_LEN];
  uint8_t secret[WR_WG_HASH_LEN];
  uint64_t secret_set;
  int has_secret;
  wr_wg_callbacks cbs;
  void *user;
  unsigned cookie_threshold;
  uint64_t rekey_responder_ns;
  uint64_t load_start;
  unsigned load_now, load_prev;
  int64_t wall_offset;
  /* Per-source handshake credit under load: a token bucket in ns of
   * credit per slot, the slot picked by a keyed hash of the source. */
  uint64_t rl_k0, rl_k1;
  struct rl_slot {
    uint64_t key, last, credit;
  } rl[WR_WG_SOURCE_SLOTS];
  wr_wg_peer *peers[PEER_BUCKETS];
  wr_wg_peer *all;
  idx_node *idx[INDEX_BUCKETS];
  wr_wg_stats stats;
  uint8_t rx[WR_WG_MAX_PACKET + WR_WG_TAG_LEN];
  uint8_t tx_plain[WR_WG_MAX_PACKET + 16];
  uint8_t tx[WR_WG_DATA_HEADER_LEN + WR_WG_MAX_PACKET + 16 + WR_WG_TAG_LEN];
};

static const char *const DROP_NAMES[WR_WG_NDROPS] = {
    "ok", "junk", "mac", "cookie", "handshake", "replayed_initiation",
    "unknown_index", "decrypt", "replay", "expired", "inner", "rate"};

const char *wr_wg_drop_name(enum wr_wg_drop d) {
  return (unsigned)d < WR_WG_NDROPS ? DROP_NAMES[d] : "unknown";
}

/* ---- tables ------------------------------------------------------------------ */

static unsigned peer_bucket(const uint8_t pub[WR_WG_KEY_LEN]) {
  return (unsigned)(pub[0] ^ pub[7] ^ pub[13] ^ pub[29]) % PEER_BUCKETS;
}

wr_wg_peer *wr_wg_peer_find(const wr_wg *wg, const uint8_t pub[WR_WG_KEY_LEN]) {
  for (wr_wg_peer *p = wg->peers[peer_bucket(pub)]; p; p = p->next_hash)
    if (sodium_memcmp(p->pub, pub, WR_WG_KEY_LEN) == 0) return p;
  return NULL;
}

static idx_node *idx_find(const wr_wg *wg, uint32_t id) {
  for (idx_node *n = wg->idx[id % INDEX_BUCKETS]; n; n = n->next)
    if (n->id == id) return n;
  return NULL;
}

/* Gives |n| a fresh random index and files it. */
static void idx_insert(wr_wg *wg, idx_node *n) {
  do n->id = randombytes_random();
  while (idx_find(wg, n->id));
  n->next = wg->idx[n->id % INDEX_BUCKETS];
  wg->idx[n->id % INDEX_BUCKETS] = n;
}

static void idx_remove(wr_wg *wg, idx_node *n) {
  for (idx_node **pp = &wg->idx[n->id % INDEX_BUCKETS]; *pp; pp = &(*pp)->next)
    if (*pp == n) {
      *pp = n->next;
      break;
    }
  n->next = NULL;
  n->kind = 0;
}

/* ---- keypairs ------------------------------------------------------------------ */

static void keypair_free(wr_wg *wg, keypair *kp) {
  if (!kp) return;
  idx_remove(wg, &kp->node);
  sodium_memzero(kp, sizeof(*kp));
  free(kp);
}

static void hs_clear(wr_wg *wg, wr_wg_peer *p) {
  if (p->hs_node.kind) idx_remove(wg, &p->hs_node);
  wr_wg_noise_wipe(&p->hs);
}

static void wipe_sessions(wr_wg *wg, wr_wg_peer *p) {
  keypair_free(wg, p->cur);
  keypair_free(wg, p->prev);
  keypair_free(wg, p->next);
  p->cur = p->prev = p->next = NULL;
  hs_clear(wg, p);
}

static int keypair_usable(const keypair *kp, uint64_t now) {
  return kp && now - kp->created < WR_WG_REJECT_AFTER_TIME &&
         kp->send_nonce < WR_WG_REJECT_AFTER_MESSAGES;
}

/* ---- timers (wireguard-go's timers.go) ---------------------------------------- */

static uint64_t jitter(void) { return randombytes_uniform(JITTER_NS); }

static void timers_data_sent(wr_wg_peer *p, uint64_t now) {
  if (!p->t_new_handshake)
    p->t_new_handshake = now + WR_WG_KEEPALIVE_TIMEOUT + WR_WG_REKEY_TIMEOUT + jitter();
}

static void timers_data_received(wr_wg_peer *p, uint64_t now) {
  if (!p->t_keepalive)
    p->t_keepalive = now + WR_WG_KEEPALIVE_TIMEOUT;
  else
    p->need_another_keepalive = 1;
}

static void timers_handshake_complete(wr_wg_peer *p, uint64_t now) {
  p->t_retransmit = 0;
  p->attempts = 0;
  p->sent_last_minute_handshake = 0;
  p->last_handshake = now;
}

static void timers_session_derived(wr_wg_peer *p, uint64_t now) {
  p->t_zero = now + 3 * WR_WG_REJECT_AFTER_TIME;
}

/* ---- sending -------------------------------------------------------------------- */

static uint64_t wall(const wr_wg *wg, uint64_t now) { return (uint64_t)((int64_t)now + wg->wall_offset); }

/* The peer's cookie for mac2, while fresh. */
static const uint8_t *mac2_cookie(const wr_wg_peer *p, uint64_t now) {
  return p->has_cookie && now - p->cookie_set < WR_WG_COOKIE_REFRESH_TIME ? p->cookie : NULL;
}

/* mac1 and mac2 of a handshake message we send to |p|. */
static void seal_macs(wr_wg_peer *p, uint64_t now, uint8_t *msg, size_t len) {
  wr_wg_set_mac1(msg, len, p->mac1_key);
  memcpy(p->last_mac1, msg + len - 2 * WR_WG_MAC_LEN, WR_WG_MAC_LEN);
  p->has_last_mac1 = 1;
  wr_wg_set_mac2(msg, len, mac2_cookie(p, now));
}

static void send_initiation(wr_wg *wg, wr_wg_peer *p, uint64_t now, int retry) {
  if (!retry) {
    if (p->init_sent_ever && now - p->last_init_sent < WR_WG_REKEY_TIMEOUT) return;
    p->attempts = 0;
  }
  if (!p->has_ep) return;
  hs_clear(wg, p);
  p->hs_node.kind = IDX_HANDSHAKE;
  p->hs_node.peer = p;
  p->hs_node.kp = NULL;
  idx_insert(wg, &p->hs_node);
  uint8_t ts[WR_WG_TAI64N_LEN], out[WR_WG_INITIATION_LEN];
  wr_wg_tai64n(ts, wall(wg, now));
  wr_wg_initiation m;
  if (wr_wg_noise_create_initiation(&p->hs, wg->pub, p->pub, p->ss, p->hs_node.id, ts, &m) !=
      WR_OK) {
    hs_clear(wg, p);
    return;
  }
  wr_wg_build_initiation(&m, out);
  seal_macs(p, now, out, sizeof(out));
  p->last_init_sent = now;
  p->init_sent_ever = 1;
  wg->stats.initiations_sent++;
  p->t_keepalive = 0; /* any authenticated packet sent */
  p->t_retransmit = now + WR_WG_REKEY_TIMEOUT + jitter();
  wg->cbs.send(wg->user, &p->ep, out, sizeof(out));
}

/* Encrypts and sends one packet (len 0: keepalive) with |kp|. */
static void send_with(wr_wg *wg, wr_wg_peer *p, keypair *kp, uint64_t now, const uint8_t *pkt,
                      size_t len) {
  size_t padded = (len + 15) & ~(size_t)15;
  if (len) memcpy(wg->tx_plain, pkt, len);
  memset(wg->tx_plain + len, 0, padded - len);
  wr_wg_build_data_header(kp->k.remote_index, kp->send_nonce, wg->tx);
  wr_wg_noise_seal(wg->tx + WR_WG_DATA_HEADER_LEN, kp->k.send, kp->send_nonce, wg->tx_plain, padded);
  kp->send_nonce++;
  size_t wire = WR_WG_DATA_HEADER_LEN + padded + WR_WG_TAG_LEN;
  wg->stats.tx_packets++;
  wg->stats.tx_bytes += wire;
  p->tx_bytes += wire;
  p->t_keepalive = 0;
  if (len) timers_data_sent(p, now);
  wg->cbs.send(wg->user, &p->ep, wg->tx, wire);
}

/* After a send: the session's age or count asks for a new one. */
static void maybe_rekey_on_send(wr_wg *wg, wr_wg_peer *p, const keypair *kp, uint64_t now) {
  uint64_t age = now - kp->created;
  int want = kp->k.initiator ? kp->send_nonce > WR_WG_REKEY_AFTER_MESSAGES ||
                                   age >= WR_WG_REKEY_AFTER_TIME
                             : age >= wg->rekey_responder_ns;
  if (want) send_initiation(wg, p, now, 0);
}

static void stage(wr_wg *wg, wr_wg_peer *p, const uint8_t *pkt, size_t len, int *dropped) {
  if (!p->staged) p->staged = wr_xcalloc(WR_WG_STAGED, sizeof(*p->staged));
  if (p->staged_count == WR_WG_STAGED) {
    struct staged *old = &p->staged[p->staged_head];
    free(old->data);
    old->data = NULL;
    p->staged_head = (p->staged_head + 1) % WR_WG_STAGED;
    p->staged_count--;
    wg->stats.staged_dropped++;
    *dropped = 1;
  }
  struct staged *s = &p->staged[(p->staged_head + p->staged_count) % WR_WG_STAGED];
  s->data = wr_xmalloc(len ? len : 1);
  if (len) memcpy(s->data, pkt, len);
  s->len = len;
  p->staged_count++;
}

/* |count|: whether these are drops (timeouts) or just cleanup (removal). */
static void drop_staged(wr_wg *wg, wr_wg_peer *p, int count) {
  while (p->staged_count) {
    free(p->staged[p->staged_head].data);
    p->staged[p->staged_head].data = NULL;
    p->staged_head = (p->staged_head + 1) % WR_WG_STAGED;
    p->staged_count--;
    if (count) wg->stats.staged_dropped++;
  }
}

/* Sends what waited for a session; returns how many went. */
static size_t send_staged(wr_wg *wg, wr_wg_peer *p, uint64_t now) {
  size_t n = 0;
  while (p->staged_count && keypair_usable(p->cur, now) && p->has_ep) {
    struct staged s = p->staged[p->staged_head];
    p->staged[p->staged_head].data = NULL;
    p->staged_head = (p->staged_head + 1) % WR_WG_STAGED;
    p->staged_count--;
    send_with(wg, p, p->cur, now, s.data, s.len);
    free(s.data);
    n++;
  }
  return n;
}

int wr_wg_send(wr_wg *wg, wr_wg_peer *p, uint64_t now, const uint8_t *pkt, size_t len) {
  if (len > WR_WG_MAX_PACKET) return WR_ERR_INVAL;
  if (!p->has_ep) return WR_ERR_NOTFOUND;
  keypair *kp = p->cur;
  if (keypair_usable(kp, now) && !p->staged_count) {
    send_with(wg, p, kp, now, pkt, len);
    maybe_rekey_on_send(wg, p, kp, now);
    return WR_OK;
  }
  int dropped = 0;
  stage(wg, p, pkt, len, &dropped);
  if (keypair_usable(kp, now)) {
    send_staged(wg, p, now);
    return dropped ? WR_ERR_LIMIT : WR_OK;
  }
  send_initiation(wg, p, now, 0);
  return dropped ? WR_ERR_LIMIT : WR_AGAIN;
}

static void send_keepalive(wr_wg *wg, wr_wg_peer *p, uint64_t now) {
  if (!p->staged_count) (void)wr_wg_send(wg, p, now, NULL, 0);
  else send_staged(wg, p, now);
}

/* ---- receiving: helpers ------------------------------------------------------------ */

static void roam(wr_wg *wg, wr_wg_peer *p, const wr_wg_endpoint *from) {
  if (p->has_ep && p->ep.len == from->len && memcmp(p->ep.addr, from->addr, from->len) == 0) return;
  int had = p->has_ep;
  p->ep = *from;
  p->has_ep = 1;
  if (had && wg->cbs.event) wg->cbs.event(wg->user, p, WR_WG_EV_ENDPOINT);
}

/* Counts a handshake message with a good mac1; 1 when over the threshold
 * in this or the last second. */
static int under_load(wr_wg *wg, uint64_t now) {
  if (now - wg->load_start >= LOAD_WINDOW_NS) {
    wg->load_prev = now - wg->load_start >= 2 * LOAD_WINDOW_NS ? 0 : wg->load_now;
    wg->load_now = 0;
    wg->load_start = now;
  }
  wg->load_now++;
  if (wg->cookie_threshold == WR_WG_COOKIE_ALWAYS) return 1;
  return wg->load_now > wg->cookie_threshold || wg->load_prev > wg->cookie_threshold;
}

/* The cookie of |from|: MAC(secret, address), the secret renewed every
 * two minutes. */
static void cookie_of(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                      uint8_t out[WR_WG_COOKIE_LEN]) {
  if (!wg->has_secret || now - wg->secret_set >= WR_WG_COOKIE_REFRESH_TIME) {
    randombytes_buf(wg->secret, sizeof(wg->secret));
    wg->secret_set = now;
    wg->has_secret = 1;
  }
  wr_wg_mac(out, wg->secret, sizeof(wg->secret), from->addr, from->len);
}

/* 1 when the source of |from| may have one more handshake now. A slot
 * taken by another source starts afresh (full burst): colliding sources
 * are let through rather than locked out. */
static int source_allowed(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from) {
  const uint64_t cost = WR_WG_NS / WR_WG_SOURCE_RATE, cap = cost * WR_WG_SOURCE_BURST;
  size_t off = from->src_len ? from->src_off : 0;
  size_t n = from->src_len ? from->src_len : from->len;
  if (off + n > sizeof(from->addr)) n = off < sizeof(from->addr) ? sizeof(from->addr) - off : 0;
  uint64_t key = wr_siphash24(wg->rl_k0, wg->rl_k1, from->addr + off, n) | 1;
  struct rl_slot *s = &wg->rl[key % WR_WG_SOURCE_SLOTS];
  if (s->key != key) {
    s->key = key;
    s->credit = cap;
  } else {
    s->credit += now - s->last;
    if (s->credit > cap) s->credit = cap;
  }
  s->last = now;
  if (s->credit < cost) return 0;
  s->credit -= cost;
  return 1;
}

/* The checks a well-formed initiation or response passes before any crypto:
 * its mac1 must be ours (else WR_WG_DROP_MAC); under load, it must also
 * carry a mac2 from its sender's cookie and the source have handshakes
 * left, otherwise the drop reason (without mac2: a cookie reply went back).
 * WR_WG_OK when it may go on. */
static enum wr_wg_drop check_macs(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                                  const uint8_t *msg, size_t len, uint32_t sender) {
  if (!wr_wg_check_mac1(msg, len, wg->mac1_key)) return WR_WG_DROP_MAC;
  if (!under_load(wg, now)) return WR_WG_OK;
  uint8_t cookie[WR_WG_COOKIE_LEN];
  cookie_of(wg, now, from, cookie);
  if (wr_wg_check_mac2(msg, len, cookie))
    return source_allowed(wg, now, from) ? WR_WG_OK : WR_WG_DROP_RATE;
  wr_wg_cookie_reply r;
  r.receiver = sender;
  randombytes_buf(r.nonce, sizeof(r.nonce));
  const uint8_t *mac1 = msg + len - 2 * WR_WG_MAC_LEN;
  crypto_aead_xchacha20poly1305_ietf_encrypt(r.enc_cookie, NULL, cookie, sizeof(cookie), mac1,
                                             WR_WG_MAC_LEN, NULL, r.nonce, wg->cookie_key);
  uint8_t out[WR_WG_COOKIE_REPLY_LEN];
  wr_wg_build_cookie_reply(&r, out);
  wg->stats.cookies_sent++;
  wg->cbs.send(wg->user, from, out, sizeof(out));
  return WR_WG_DROP_COOKIE;
}

/* The length of the IP packet at the start of |p| (padding follows), or 0. */
static size_t ip_length(const uint8_t *p, size_t n) {
  if (n >= 20 && p[0] >> 4 == 4) {
    size_t l = (size_t)p[2] << 8 | p[3];
    return l >= 20 && l <= n ? l : 0;
  }
  if (n >= 40 && p[0] >> 4 == 6) {
    size_t l = 40 + ((size_t)p[4] << 8 | p[5]);
    return l <= n ? l : 0;
  }
  return 0;
}

/* ---- receiving: the four messages ---------------------------------------------- */

static keypair *keypair_new(wr_wg *wg, wr_wg_peer *p, const wr_wg_session_keys *k, uint64_t now) {
  keypair *kp = wr_xcalloc(1, sizeof(*kp));
  kp->k = *k;
  kp->created = now;
  wr_wg_replay_init(&kp->replay);
  kp->node.kind = IDX_KEYPAIR;
  kp->node.peer = p;
  kp->node.kp = kp;
  kp->node.id = k->local_index;
  kp->node.next = wg->idx[kp->node.id % INDEX_BUCKETS];
  wg->idx[kp->node.id % INDEX_BUCKETS] = &kp->node;
  return kp;
}

/* Decrypts and authenticates an initiation as far as its sender's key;
 * returns the peer or NULL. */
static wr_wg_peer *initiation_peer(wr_wg *wg, const wr_wg_initiation *m, wr_wg_handshake *hs) {
  if (wr_wg_noise_consume_initiation_static(hs, wg->priv, wg->pub, m) != WR_OK) return NULL;
  wr_wg_peer *p = wr_wg_peer_find(wg, hs->remote_static);
  if (!p || wr_wg_noise_consume_initiation_finish(hs, p->ss, m) != WR_OK) {
    wr_wg_noise_wipe(hs);
    return NULL;
  }
  return p;
}

static enum wr_wg_drop input_initiation(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                                        const uint8_t *msg, size_t len) {
  wr_wg_initiation m;
  if (wr_wg_parse_initiation(msg, len, &m) != WR_OK) return WR_WG_DROP_JUNK;
  wg->stats.initiations_received++;
  wr_wg_handshake hs;
  wr_wg_peer *p = initiation_peer(wg, &m, &hs);
  if (!p) return WR_WG_DROP_HANDSHAKE;
  if ((p->init_consumed_ever && now - p->last_init_consumed < WR_WG_INITIATION_RATE) ||
      memcmp(hs.timestamp, p->last_timestamp, WR_WG_TAI64N_LEN) <= 0) {
    wr_wg_noise_wipe(&hs);
    return WR_WG_DROP_REPLAYED_INIT;
  }
  memcpy(p->last_timestamp, hs.timestamp, WR_WG_TAI64N_LEN);
  p->last_init_consumed = now;
  p->init_consumed_ever = 1;
  /* Our own initiation in flight loses to theirs (its response would find
   * no index); the retransmit timer stays, as in wireguard-go. */
  hs_clear(wg, p);
  idx_node reserve = {.kind = IDX_HANDSHAKE, .peer = p};
  idx_insert(wg, &reserve); /* only to draw an unused index */
  uint32_t index = reserve.id;
  idx_remove(wg, &reserve);
  wr_wg_response r;
  wr_wg_session_keys keys;
  if (wr_wg_noise_create_response(&hs, p->has_psk ? p->psk : NULL, index, &r, &keys) != WR_OK)
    return WR_WG_DROP_HANDSHAKE;
  keypair *kp = keypair_new(wg, p, &keys, now);
  sodium_memzero(&keys, sizeof(keys));
  keypair_free(wg, p->next);
  keypair_free(wg, p->prev);
  p->prev = NULL;
  p->next = kp;
  roam(wg, p, from);
  uint8_t out[WR_WG_RESPONSE_LEN];
  wr_wg_build_response(&r, out);
  seal_macs(p, now, out, sizeof(out));
  wg->stats.handshakes++;
  wg->stats.responses_sent++;
  p->last_handshake = now;
  p->t_new_handshake = 0;
  p->t_keepalive = 0;
  timers_session_derived(p, now);
  wg->cbs.send(wg->user, &p->ep, out, sizeof(out));
  if (wg->cbs.event) wg->cbs.event(wg->user, p, WR_WG_EV_HANDSHAKE);
  return WR_WG_OK;
}

static enum wr_wg_drop input_response(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                                      const uint8_t *msg, size_t len) {
  wr_wg_response m;
  if (wr_wg_parse_response(msg, len, &m) != WR_OK) return WR_WG_DROP_JUNK;
  idx_node *n = idx_find(wg, m.receiver);
  if (!n || n->kind != IDX_HANDSHAKE) return WR_WG_DROP_INDEX;
  wr_wg_peer *p = n->peer;
  wr_wg_session_keys keys;
  if (wr_wg_noise_consume_response(&p->hs, wg->priv, p->has_psk ? p->psk : NULL, &m, &keys) !=
      WR_OK)
    return WR_WG_DROP_HANDSHAKE;
  idx_remove(wg, &p->hs_node);
  keypair *kp = keypair_new(wg, p, &keys, now);
  sodium_memzero(&keys, sizeof(keys));
  keypair_free(wg, p->prev);
  if (p->next) {
    p->prev = p->next;
    p->next = NULL;
    keypair_free(wg, p->cur);
  } else {
    p->prev = p->cur;
  }
  p->cur = kp;
  roam(wg, p, from);
  wg->stats.handshakes++;
  timers_session_derived(p, now);
  timers_handshake_complete(p, now);
  p->t_new_handshake = 0;
  if (wg->cbs.event) wg->cbs.event(wg->user, p, WR_WG_EV_HANDSHAKE);
  /* The responder confirms the session by our first packet. */
  if (!send_staged(wg, p, now)) send_with(wg, p, kp, now, NULL, 0);
  return WR_WG_OK;
}

/* Initiations and responses: a well-formed one passes check_macs before
 * its parser and any crypto, as the kernel's wg_receive_handshake_packet
 * validates the cookie for both in one place. */
static enum wr_wg_drop input_handshake(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                                       const uint8_t *msg, size_t len) {
  uint32_t sender;
  if (wr_wg_handshake_sender(msg, len, &sender) != WR_OK) return WR_WG_DROP_JUNK;
  enum wr_wg_drop load = check_macs(wg, now, from, msg, len, sender);
  if (load != WR_WG_OK) return load;
  if (msg[0] == WR_WG_MSG_INITIATION) return input_initiation(wg, now, from, msg, len);
  return input_response(wg, now, from, msg, len);
}

static enum wr_wg_drop input_cookie(wr_wg *wg, uint64_t now, const uint8_t *msg, size_t len) {
  wr_wg_cookie_reply m;
  if (wr_wg_parse_cookie_reply(msg, len, &m) != WR_OK) return WR_WG_DROP_JUNK;
  idx_node *n = idx_find(wg, m.receiver);
  if (!n) return WR_WG_DROP_INDEX;
  wr_wg_peer *p = n->peer;
  if (!p->has_last_mac1) return WR_WG_DROP_INDEX;
  uint8_t cookie[WR_WG_COOKIE_LEN];
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, NULL, NULL, m.enc_cookie,
                                                 sizeof(m.enc_cookie), p->last_mac1,
                                                 WR_WG_MAC_LEN, m.nonce, p->cookie_key) != 0)
    return WR_WG_DROP_DECRYPT;
  memcpy(p->cookie, cookie, sizeof(cookie));
  p->cookie_set = now;
  p->has_cookie = 1;
  p->has_last_mac1 = 0;
  wg->stats.cookies_received++;
  return WR_WG_OK;
}

/* A packet arrived on |kp|: the responder's |next| becomes current. */
static void confirm(wr_wg *wg, wr_wg_peer *p, keypair *kp, uint64_t now) {
  if (kp != p->next) return;
  keypair_free(wg, p->prev);
  p->prev = p->cur;
  p->cur = p->next;
  p->next = NULL;
  timers_handshake_complete(p, now);
  send_staged(wg, p, now);
}

static enum wr_wg_drop input_data(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                                  const uint8_t *msg, size_t len) {
  wr_wg_data d;
  if (wr_wg_parse_data(msg, len, &d) != WR_OK) return WR_WG_DROP_JUNK;
  if (d.payload_len > sizeof(wg->rx)) return WR_WG_DROP_JUNK;
  idx_node *n = idx_find(wg, d.receiver);
  if (!n || n->kind != IDX_KEYPAIR) return WR_WG_DROP_INDEX;
  keypair *kp = n->kp;
  wr_wg_peer *p = n->peer;
  if (now - kp->created >= WR_WG_REJECT_AFTER_TIME) return WR_WG_DROP_EXPIRED;
  if (wr_wg_noise_open(wg->rx, kp->k.recv, d.counter, d.payload, d.payload_len) != WR_OK)
    return WR_WG_DROP_DECRYPT;
  if (!wr_wg_replay_check(&kp->replay, d.counter, WR_WG_REJECT_AFTER_MESSAGES))
    return WR_WG_DROP_REPLAY;
  size_t plen = d.payload_len - WR_WG_TAG_LEN;
  wg->stats.rx_packets++;
  wg->stats.rx_bytes += len;
  p->rx_bytes += len;
  roam(wg, p, from);
  p->t_new_handshake = 0;
  confirm(wg, p, kp, now);
  if (kp->k.initiator && kp == p->cur && !p->sent_last_minute_handshake &&
      now - kp->created >=
          WR_WG_REJECT_AFTER_TIME - WR_WG_KEEPALIVE_TIMEOUT - WR_WG_REKEY_TIMEOUT) {
    p->sent_last_minute_handshake = 1;
    send_initiation(wg, p, now, 0);
  }
  if (plen == 0) return WR_WG_OK; /* keepalive */
  timers_data_received(p, now);
  size_t ip = ip_length(wg->rx, plen);
  if (!ip) return WR_WG_DROP_INNER;
  wg->cbs.receive(wg->user, p, wg->rx, ip);
  return WR_WG_OK;
}

enum wr_wg_drop wr_wg_input(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                            const uint8_t *msg, size_t len) {
  enum wr_wg_drop rv;
  switch (wr_wg_msg_type(msg, len)) {
  case WR_WG_MSG_INITIATION:
  case WR_WG_MSG_RESPONSE: rv = input_handshake(wg, now, from, msg, len); break;
  case WR_WG_MSG_COOKIE: rv = input_cookie(wg, now, msg, len); break;
  case WR_WG_MSG_DATA: rv = input_data(wg, now, from, msg, len); break;
  default: rv = WR_WG_DROP_JUNK; break;
  }
  if (rv != WR_WG_OK) wg->stats.drops[rv]++;
  return rv;
}

/* ---- timers -------------------------------------------------------------------- */

static void tick_peer(wr_wg *wg, wr_wg_peer *p, uint64_t now) {
  if (p->t_retransmit && now >= p->t_retransmit) {
    p->t_retransmit = 0;
    if (p->attempts > MAX_TIMER_HANDSHAKES) {
      /* Gave up: what waited is dropped; keys go later. */
      p->t_keepalive = 0;
      drop_staged(wg, p, 1);
      hs_clear(wg, p);
      if (!p->t_zero) p->t_zero = now + 3 * WR_WG_REJECT_AFTER_TIME;
    } else {
      p->attempts++;
      send_initiation(wg, p, now, 1);
    }
  }
  if (p->t_keepalive && now >= p->t_keepalive) {
    p->t_keepalive = 0;
    send_keepalive(wg, p, now);
    if (p->need_another_keepalive) {
      p->need_another_keepalive = 0;
      p->t_keepalive = now + WR_WG_KEEPALIVE_TIMEOUT;
    }
  }
  if (p->t_new_handshake && now >= p->t_new_handshake) {
    p->t_new_handshake = 0;
    send_initiation(wg, p, now, 0);
  }
  if (p->t_zero && now >= p->t_zero) {
    p->t_zero = 0;
    wipe_sessions(wg, p);
  }
}

void wr_wg_tick(wr_wg *wg, uint64_t now) {
  for (wr_wg_peer *p = wg->all, *next; p; p = next) {
    next = p->next_all;
    tick_peer(wg, p, now);
  }
}

/* ---- lifecycle and peers ----------------------------------------------------------- */

int wr_wg_new(const wr_wg_config *cfg, wr_wg **out) {
  *out = NULL;
  if (!cfg || !cfg->cbs.send || !cfg->cbs.receive) return WR_ERR_INVAL;
  if (sodium_init() < 0) return WR_ERR_CRYPTO;
  wr_wg *wg = wr_xcalloc(1, sizeof(*wg));
  memcpy(wg->priv, cfg->private_key, WR_WG_KEY_LEN);
  if (wr_wg_noise_public(wg->pub, wg->priv) != WR_OK || sodium_is_zero(wg->pub, WR_WG_KEY_LEN)) {
    wr_wg_free(wg);
    return WR_ERR_INVAL;
  }
  wr_wg_mac1_key(wg->mac1_key, wg->pub);
  wr_wg_cookie_key(wg->cookie_key, wg->pub);
  uint8_t rk[16];
  randombytes_buf(rk, sizeof(rk));
  wr_siphash_key(rk, &wg->rl_k0, &wg->rl_k1);
  wg->cbs = cfg->cbs;
  wg->user = cfg->user;
  wg->cookie_threshold = cfg->cookie_threshold ? cfg->cookie_threshold : WR_WG_COOKIE_THRESHOLD;
  wg->rekey_responder_ns =
      cfg->rekey_responder_ns
          ? cfg->rekey_responder_ns
          : WR_WG_REJECT_AFTER_TIME - WR_WG_KEEPALIVE_TIMEOUT - WR_WG_REKEY_TIMEOUT;
  *out = wg;
  return WR_OK;
}

void wr_wg_free(wr_wg *wg) {
  if (!wg) return;
  while (wg->all) wr_wg_peer_remove(wg, wg->all);
  sodium_memzero(wg, sizeof(*wg));
  free(wg);
}

void wr_wg_public_key(const wr_wg *wg, uint8_t out[WR_WG_KEY_LEN]) {
  memcpy(out, wg->pub, WR_WG_KEY_LEN);
}

void wr_wg_set_wall_clock(wr_wg *wg, uint64_t unix_ns, uint64_t now) {
  wg->wall_offset = (int64_t)unix_ns - (int64_t)now;
}

int wr_wg_peer_add(wr_wg *wg, const uint8_t pub[WR_WG_KEY_LEN], const uint8_t *psk, void *user,
                   wr_wg_peer **out) {
  if (out) *out = NULL;
  if (wr_wg_peer_find(wg, pub)) return WR_ERR_EXISTS;
  if (sodium_memcmp(pub, wg->pub, WR_WG_KEY_LEN) == 0) return WR_ERR_INVAL;
  wr_wg_peer *p = wr_xcalloc(1, sizeof(*p));
  memcpy(p->pub, pub, WR_WG_KEY_LEN);
  if (wr_wg_noise_dh(p->ss, wg->priv, pub) != WR_OK) {
    free(p);
    return WR_ERR_INVAL;
  }
  if (psk) {
    memcpy(p->psk, psk, WR_WG_KEY_LEN);
    p->has_psk = 1;
  }
  wr_wg_mac1_key(p->mac1_key, pub);
  wr_wg_cookie_key(p->cookie_key, pub);
  p->user = user;
  unsigned b = peer_bucket(pub);
  p->next_hash = wg->peers[b];
  wg->peers[b] = p;
  p->next_all = wg->all;
  if (wg->all) wg->all->prev_all = p;
  wg->all = p;
  if (out) *out = p;
  return WR_OK;
}

void wr_wg_peer_remove(wr_wg *wg, wr_wg_peer *p) {
  if (!p) return;
  for (wr_wg_peer **pp = &wg->peers[peer_bucket(p->pub)]; *pp; pp = &(*pp)->next_hash)
    if (*pp == p) {
      *pp = p->next_hash;
      break;
    }
  if (p->prev_all) p->prev_all->next_all = p->next_all;
  else wg->all = p->next_all;
  if (p->next_all) p->next_all->prev_all = p->prev_all;
  wipe_sessions(wg, p);
  drop_staged(wg, p, 0);
  free(p->staged);
  sodium_memzero(p, sizeof(*p));
  free(p);
}

void *wr_wg_peer_user(const wr_wg_peer *p) { return p->user; }

void wr_wg_peer_set_endpoint(wr_wg_peer *p, const wr_wg_endpoint *ep) {
  p->ep = *ep;
  p->has_ep = 1;
}

int wr_wg_peer_endpoint(const wr_wg_peer *p, wr_wg_endpoint *out) {
  if (!p->has_ep) return WR_ERR_NOTFOUND;
  *out = p->ep;
  return WR_OK;
}

void wr_wg_peer_get_info(const wr_wg_peer *p, wr_wg_peer_info *out) {
  out->last_handshake = p->last_handshake;
  out->rx_bytes = p->rx_bytes;
  out->tx_bytes = p->tx_bytes;
  out->has_session = p->cur != NULL;
  out->has_endpoint = p->has_ep;
}

void wr_wg_peer_initiate(wr_wg *wg, wr_wg_peer *p, uint64_t now, int force) {
  send_initiation(wg, p, now, force);
}

const wr_wg_stats *wr_wg_get_stats(const wr_wg *wg) { return &wg->stats; }
