/* Pushing the edge's DNS records to a zone whose DNS lives elsewhere (the
 * FAQ's partial, or CNAME, setup): RFC 2136 UPDATE messages signed with TSIG
 * (RFC 8945, hmac-sha256 by default), sent to the zone's primary server.
 *
 * The records are the ones edge/dns.h serves for a zone of its own:
 *   <hostname>                      CNAME <tunnel-uuid>.cfargotunnel.<zone>
 *   <tunnel-uuid>.cfargotunnel.<zone>   A / AAAA  the edge's public addresses
 * Publishing a route replaces the CNAME RRset of the hostname and the A and
 * AAAA RRsets of the target in one UPDATE (applied atomically by the server);
 * unpublishing deletes that exact CNAME record only (class NONE), so a record
 * someone else changed meanwhile stays.
 *
 * Transport: TCP (RFC 7766), one connection per update, updates of one
 * updater strictly in the order they were queued, so add-then-remove of the
 * same name cannot be reordered. Nothing blocks: the updater runs on the
 * caller's libuv loop; wr_dns_update_run is a blocking wrapper (a private
 * loop) for CLI commands and tests. Responses must carry a TSIG that verifies
 * with the key and our request's MAC.
 *
 * Errors passed to callbacks: WR_OK (the server answered NOERROR), WR_ERR_IO
 * (connect, timeout, connection lost, SERVFAIL, cancelled), WR_ERR_DENIED
 * (REFUSED, NOTAUTH, NOTZONE, or a TSIG error: BADKEY, BADSIG, BADTIME),
 * WR_ERR_PROTO (malformed or unsigned response, MAC does not verify),
 * WR_ERR_INVAL (FORMERR), WR_ERR_EXISTS / WR_ERR_NOTFOUND (YX / NX rcodes),
 * WR_ERR_UNSUPPORTED (NOTIMP). */
#ifndef WR_EDGE_DNS_UPDATE_H
#define WR_EDGE_DNS_UPDATE_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define WR_DNS_UPDATE_MSG_MAX 512 /* human-readable result text */

typedef struct wr_dns_update_config {
  const char *server;       /* primary server, numeric: "IP", "IP:PORT", "[IPv6]:PORT" (port 53) */
  const char *zone;         /* the zone at that server, e.g. "example.org" */
  const char *key_name;     /* TSIG key name; NULL sends unsigned updates (tests only) */
  const char *algorithm;    /* "hmac-sha256" (default), "hmac-sha384", "hmac-sha512" */
  const char *secret;       /* the TSIG secret, base64 (as in knot/BIND key files) */
  const char *const *addrs; /* the edge's public addresses (IPv4/IPv6 text) for the targets */
  size_t naddrs;
  uint32_t ttl;             /* of pushed records; 0: 300 */
  uint64_t timeout_ms;      /* per update, connect to response; 0: 5000 */
  size_t max_queued;        /* updates waiting; 0: 1024 */
} wr_dns_update_config;

/* One change in an UPDATE message. */
typedef enum wr_dns_change_op {
  WR_DNS_CHANGE_SET = 0,    /* replace the RRset |type| at |name| by |rdata| (none: delete it) */
  WR_DNS_CHANGE_DELETE = 1  /* delete the listed records (class NONE); no |rdata|: the RRset */
} wr_dns_change_op;

typedef struct wr_dns_change {
  wr_dns_change_op op;
  uint16_t type;            /* WR_DNS_TYPE_CNAME, _A or _AAAA (proto/dnsmsg.h) */
  const char *name;         /* canonical, inside the zone */
  const char *const *rdata; /* presentation: a name for CNAME, an address for A/AAAA */
  size_t nrdata;
} wr_dns_change;

/* --- messages (no I/O; exposed for tests) ------------------------------------------- */

/* One built, signed UPDATE and what is needed to check its response. */
typedef struct wr_dns_update_msg {
  uint8_t *wire;  /* malloc'd */
  size_t len;
  uint16_t id;
  void *mac;      /* the request's TSIG MAC (an ldns_rdf), NULL when unsigned */
} wr_dns_update_msg;

/* Checks |cfg| (names, algorithm, base64 secret, addresses). WR_OK or
 * WR_ERR_CONFIG with the reason in |err|. */
int wr_dns_update_config_check(const wr_dns_update_config *cfg, char *err, size_t errlen);
/* Builds and signs an UPDATE of |n| (1..64) changes with message id |id|.
 * Errors: WR_ERR_INVAL (a name outside the zone, bad rdata, bad config;
 * |err| says which), WR_ERR_CRYPTO (signing failed), WR_ERR_NOMEM. */
int wr_dns_update_build(const wr_dns_update_config *cfg, const wr_dns_change *ch, size_t n,
                        uint16_t id, wr_dns_update_msg *msg, char *err, size_t errlen);
/* Checks the server's response |resp| to |msg|: id, opcode, TSIG, rcode.
 * *rcode (may be NULL) gets the response's rcode (-1 if unreadable).
 * Returns WR_OK or an error listed above, explained in |err|. */
int wr_dns_update_check(const wr_dns_update_config *cfg, const wr_dns_update_msg *msg,
                        const uint8_t *resp, size_t len, int *rcode, char *err, size_t errlen);
void wr_dns_update_msg_clear(wr_dns_update_msg *msg);

/* --- the updater (libuv) ----------------------------------------------------------- */

typedef struct wr_dns_updater wr_dns_updater;

/* |rcode| is the server's rcode or -1; |msg| explains (also on success). */
typedef void (*wr_dns_update_cb)(void *user, int rv, int rcode, const char *msg);

/* Copies |cfg|. WR_ERR_CONFIG (|err| says why) or WR_OK. */
int wr_dns_updater_new(uv_loop_t *loop, const wr_dns_update_config *cfg, wr_dns_updater **out,
                       char *err, size_t errlen);
/* Queues an UPDATE with |changes| (copied). |cb| (may be NULL) runs once,
 * from the loop, never from inside this call. Errors (cb not called):
 * WR_ERR_INVAL (bad change; logged), WR_ERR_LIMIT (queue full),
 * WR_ERR_CRYPTO (no randomness for the message id, or signing failed). */
int wr_dns_update_send(wr_dns_updater *u, const wr_dns_change *changes, size_t n,
                       wr_dns_update_cb cb, void *user);
/* The route's records: CNAME |hostname| -> <tunnel_id>.cfargotunnel.<zone>
 * plus the target's A/AAAA. |hostname| must lie strictly inside the zone. */
int wr_dns_update_publish(wr_dns_updater *u, const char *hostname, const char *tunnel_id,
                          wr_dns_update_cb cb, void *user);
/* Deletes that CNAME record (not the target's addresses: other hostnames of
 * the tunnel still use them). */
int wr_dns_update_unpublish(wr_dns_updater *u, const char *hostname, const char *tunnel_id,
                            wr_dns_update_cb cb, void *user);
/* Deletes the target's A and AAAA RRsets (a deleted tunnel). */
int wr_dns_update_unpublish_tunnel(wr_dns_updater *u, const char *tunnel_id, wr_dns_update_cb cb,
                                   void *user);
/* Updates not yet answered (queued + in flight). */
size_t wr_dns_updater_pending(const wr_dns_updater *u);
/* Cancels what is queued or in flight and frees once the handles are
 * closed; run the loop afterwards. Callbacks get WR_ERR_IO "cancelled":
 * queued updates from inside this call, the one in flight from the loop.
 * Those callbacks must not use the updater again. Safe to call from an
 * update callback. */
void wr_dns_updater_free(wr_dns_updater *u);

/* Blocking: sends one UPDATE on a private loop and waits for the answer.
 * For CLI commands and tests, never on the edge's loop. */
int wr_dns_update_run(const wr_dns_update_config *cfg, const wr_dns_change *changes, size_t n,
                      int *rcode, char *msg, size_t msglen);

/* --- partial setup ------------------------------------------------------------------ */

/* The record a user creates at their DNS provider for a route (the FAQ's
 * partial setup), in zone-file form:
 *   "app.example.org. 300 IN CNAME <uuid>.cfargotunnel.example.org."
 * The target must resolve too: either the zone's NS delegates
 * cfargotunnel.<zone> to the edge's DNS, or the A/AAAA records are pushed
 * (wr_dns_update_publish) or created by hand. Returns the length written
 * (snprintf semantics) or WR_ERR_INVAL. */
int wr_dns_partial_record(const char *hostname, const char *tunnel_id, const char *zone,
                          uint32_t ttl, char *out, size_t len);

#endif
