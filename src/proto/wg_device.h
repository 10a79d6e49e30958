/* A WireGuard interface without I/O: one local static key, its peers, their
 * sessions and timers, as the paper (section 6) and wireguard-go's
 * device/ (send.go, receive.go, timers.go, keypair.go, cookie.go) define
 * them. Datagrams go in with wr_wg_input, IP packets with wr_wg_send,
 * time with wr_wg_tick; what comes out goes through the callbacks: UDP
 * payloads to send to an endpoint, and decrypted IP packets of a peer.
 * The caller owns the socket and the clock (|now|: monotonic nanoseconds).
 *
 * Sessions (keypairs): each peer has current, previous and next. A
 * responder's new session waits in |next| until the initiator's first data
 * packet confirms it; an initiator's becomes current at once and is
 * confirmed by sending (staged packets, or a keepalive). Data is sent with
 * the current session; received with any of the three.
 *
 * Timers (constants as in the paper; every one runs off wr_wg_tick):
 *   - rekey: an initiator session older than REKEY_AFTER_TIME (120 s) or
 *     past REKEY_AFTER_MESSAGES starts a handshake on the next send; one
 *     older than REJECT_AFTER_TIME - KEEPALIVE - REKEY_TIMEOUT (165 s) on
 *     the next receive. A responder session (the edge's usual case) is
 *     renewed by this side too once older than |rekey_responder_ns| (165 s)
 *     when it has data to send, so the edge never sits on a dead session.
 *   - a session older than REJECT_AFTER_TIME (180 s) or past
 *     REJECT_AFTER_MESSAGES neither sends nor receives; packets to send are
 *     staged (at most WR_WG_STAGED) and a handshake starts.
 *   - handshake retransmission every REKEY_TIMEOUT (5 s) plus jitter, for
 *     REKEY_ATTEMPT_TIME (90 s); then the staged packets are dropped.
 *   - keepalive: KEEPALIVE_TIMEOUT (10 s) after receiving data with
 *     nothing sent back, an empty packet goes out.
 *   - new handshake: KEEPALIVE + REKEY_TIMEOUT (15 s) after sending data
 *     with nothing received.
 *   - all key material is wiped 3 x REJECT_AFTER_TIME after the last
 *     session was made.
 *
 * Denial of service: a message of the wrong size or type, or a handshake
 * message with a bad mac1, is dropped before any allocation or DH. When
 * more than |cookie_threshold| handshake messages with a good mac1 arrived
 * in the last second ("under load"), those without a valid mac2 are
 * answered with a cookie reply (an XChaCha20-Poly1305-sealed MAC of the
 * sender's address under a secret that changes every 2 minutes) instead
 * of a DH, and those with a valid mac2 (a sender that really owns its
 * address) get at most WR_WG_SOURCE_RATE handshakes a second per source
 * (burst WR_WG_SOURCE_BURST), as wireguard-go's ratelimiter: the table is
 * fixed-size (WR_WG_SOURCE_SLOTS), so this costs no allocation either. A
 * peer's initiations are also refused when they come faster
 * than every 50 ms or carry a timestamp not newer than the last one
 * (replayed initiations). Memory is allocated only for authenticated
 * sessions and staged packets.
 *
 * Roaming: every authenticated packet (data, keepalive, handshake) from a
 * new address makes that address the peer's endpoint.
 *
 * Single-threaded; callbacks run from inside wr_wg_input / wr_wg_send /
 * wr_wg_tick and may call wr_wg_send but not free the device or remove the
 * peer they are about. */
#ifndef WR_PROTO_WG_DEVICE_H
#define WR_PROTO_WG_DEVICE_H
#include <stddef.h>
#include <stdint.h>

#include "proto/wireguard.h"

typedef struct wr_wg wr_wg;
typedef struct wr_wg_peer wr_wg_peer;

#define WR_WG_NS 1000000000ull
#define WR_WG_REKEY_AFTER_MESSAGES (1ull << 60)
#define WR_WG_REJECT_AFTER_MESSAGES (UINT64_MAX - (1ull << 13))
#define WR_WG_REKEY_AFTER_TIME (120 * WR_WG_NS)
#define WR_WG_REJECT_AFTER_TIME (180 * WR_WG_NS)
#define WR_WG_REKEY_ATTEMPT_TIME (90 * WR_WG_NS)
#define WR_WG_REKEY_TIMEOUT (5 * WR_WG_NS)
#define WR_WG_KEEPALIVE_TIMEOUT (10 * WR_WG_NS)
#define WR_WG_COOKIE_REFRESH_TIME (120 * WR_WG_NS)
#define WR_WG_INITIATION_RATE (WR_WG_NS / 20)
#define WR_WG_STAGED 128
#define WR_WG_COOKIE_THRESHOLD 200
#define WR_WG_SOURCE_RATE 20
#define WR_WG_SOURCE_BURST 5
#define WR_WG_SOURCE_SLOTS 4096
/* The largest IP packet it encrypts or delivers. */
#define WR_WG_MAX_PACKET 65535

/* An address the caller understands (its sockaddr, say): opaque bytes,
 * compared bytewise, and the input of the cookie MAC. addr[src_off ..
 * src_off + src_len) is the part that names the sender for the per-source
 * handshake rate (the IP address, or an IPv6 /64, without the port);
 * src_len 0: all of it. */
typedef struct wr_wg_endpoint {
  uint8_t len;
  uint8_t src_off, src_len;
  uint8_t addr[29];
} wr_wg_endpoint;

enum wr_wg_event {
  WR_WG_EV_HANDSHAKE = 0,   /* a session was made with the peer */
  WR_WG_EV_ENDPOINT,        /* the peer roamed to a new address */
};

typedef struct wr_wg_callbacks {
  /* A UDP payload for |to|. Required. */
  void (*send)(void *user, const wr_wg_endpoint *to, const uint8_t *data, size_t len);
  /* A decrypted IP packet from |peer| (trimmed to the IP header's length;
   * the buffer is the device's, writable, valid during the call).
   * Required. */
  void (*receive)(void *user, wr_wg_peer *peer, uint8_t *pkt, size_t len);
  void (*event)(void *user, wr_wg_peer *peer, enum wr_wg_event ev); /* optional */
} wr_wg_callbacks;

typedef struct wr_wg_config {
  uint8_t private_key[WR_WG_KEY_LEN];
  wr_wg_callbacks cbs;
  void *user;
  unsigned cookie_threshold;   /* 0: WR_WG_COOKIE_THRESHOLD; WR_WG_COOKIE_ALWAYS: always */
  uint64_t rekey_responder_ns; /* 0: REJECT_AFTER_TIME - KEEPALIVE - REKEY_TIMEOUT */
} wr_wg_config;
#define WR_WG_COOKIE_ALWAYS UINT32_MAX

/* Why wr_wg_input dropped a message (its return value; WR_WG_OK: taken). */
enum wr_wg_drop {
  WR_WG_OK = 0,
  WR_WG_DROP_JUNK,          /* unknown type, wrong size, reserved bytes */
  WR_WG_DROP_MAC,           /* bad mac1 */
  WR_WG_DROP_COOKIE,        /* under load without a valid mac2: cookie reply sent */
  WR_WG_DROP_HANDSHAKE,     /* handshake did not authenticate, unknown peer */
  WR_WG_DROP_REPLAYED_INIT, /* timestamp not newer, or faster than the rate */
  WR_WG_DROP_INDEX,         /* no session or handshake with that index */
  WR_WG_DROP_DECRYPT,       /* transport data did not authenticate */
  WR_WG_DROP_REPLAY,        /* counter seen or too old */
  WR_WG_DROP_EXPIRED,       /* session past REJECT_AFTER_TIME / MESSAGES */
  WR_WG_DROP_INNER,         /* decrypted bytes are no IPv4/IPv6 packet */
  WR_WG_DROP_RATE,          /* under load: the source's handshake rate spent */
  WR_WG_NDROPS
};
const char *wr_wg_drop_name(enum wr_wg_drop d);

typedef struct wr_wg_stats {
  uint64_t handshakes;          /* sessions made, both roles */
  uint64_t initiations_sent, initiations_received;
  uint64_t responses_sent;
  uint64_t cookies_sent, cookies_received;
  uint64_t rx_packets, rx_bytes;/* decrypted data packets and their bytes (incl. keepalives) */
  uint64_t tx_packets, tx_bytes;
  uint64_t staged_dropped;      /* staged packets dropped (full, gave up) */
  uint64_t drops[WR_WG_NDROPS];
} wr_wg_stats;

typedef struct wr_wg_peer_info {
  uint64_t last_handshake;      /* |now| of the last session made; 0: never */
  uint64_t rx_bytes, tx_bytes;  /* transport payload, this peer */
  int has_session;              /* a current session usable for sending */
  int has_endpoint;
} wr_wg_peer_info;

/* Returns WR_OK, WR_ERR_INVAL (missing callbacks, bad private key) or
 * WR_ERR_NOMEM. */
int wr_wg_new(const wr_wg_config *cfg, wr_wg **out);
/* Wipes every key and frees. NULL: no-op. */
void wr_wg_free(wr_wg *wg);
void wr_wg_public_key(const wr_wg *wg, uint8_t out[WR_WG_KEY_LEN]);
/* Tells the device the wall clock (Unix ns) at |now|, for TAI64N
 * timestamps. Without it, |now| itself is used. */
void wr_wg_set_wall_clock(wr_wg *wg, uint64_t unix_ns, uint64_t now);

/* Adds a peer with public key |pub| and optional pre-shared key |psk|
 * (NULL: none). Returns WR_OK, WR_ERR_EXISTS (same key), WR_ERR_INVAL (the
 * key is our own or a low-order point) or WR_ERR_NOMEM. */
int wr_wg_peer_add(wr_wg *wg, const uint8_t pub[WR_WG_KEY_LEN], const uint8_t *psk, void *user,
                   wr_wg_peer **out);
/* Wipes the peer's sessions and handshake and forgets it at once: its next
 * packet finds no session. Not from a callback about that peer. */
void wr_wg_peer_remove(wr_wg *wg, wr_wg_peer *p);
wr_wg_peer *wr_wg_peer_find(const wr_wg *wg, const uint8_t pub[WR_WG_KEY_LEN]);
void *wr_wg_peer_user(const wr_wg_peer *p);
void wr_wg_peer_set_endpoint(wr_wg_peer *p, const wr_wg_endpoint *ep);
/* WR_OK or WR_ERR_NOTFOUND (no endpoint yet). */
int wr_wg_peer_endpoint(const wr_wg_peer *p, wr_wg_endpoint *out);
void wr_wg_peer_get_info(const wr_wg_peer *p, wr_wg_peer_info *out);
/* Starts a handshake now (at most one per REKEY_TIMEOUT unless |force|). */
void wr_wg_peer_initiate(wr_wg *wg, wr_wg_peer *p, uint64_t now, int force);

/* One UDP payload from |from|. Returns WR_WG_OK or the drop reason (also
 * counted). */
enum wr_wg_drop wr_wg_input(wr_wg *wg, uint64_t now, const wr_wg_endpoint *from,
                            const uint8_t *msg, size_t len);
/* Encrypts the IP packet |pkt| to |p|'s endpoint. Returns WR_OK (sent),
 * WR_AGAIN (staged until a handshake completes; one was started),
 * WR_ERR_NOTFOUND (the peer has no endpoint), WR_ERR_LIMIT (staging full:
 * the oldest staged packet was dropped for it) or WR_ERR_INVAL (longer
 * than WR_WG_MAX_PACKET). */
int wr_wg_send(wr_wg *wg, wr_wg_peer *p, uint64_t now, const uint8_t *pkt, size_t len);
/* Runs the timers due at |now|. Call it every 100 ms or so. */
void wr_wg_tick(wr_wg *wg, uint64_t now);

const wr_wg_stats *wr_wg_get_stats(const wr_wg *wg);

#endif
