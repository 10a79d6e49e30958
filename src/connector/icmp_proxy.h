/* The connector's ICMP proxy (protocol.md 6.3), as cloudflared 2023.7.3
 * (ingress/origin_icmp_proxy.go, icmp_linux.go, icmp_posix.go,
 * packet_router.go):
 *
 *  - An IP packet from the edge (the payload of a v2 datagram of type 1 or
 *    2, or a v3 datagram of type 2) is decoded as IPv4/IPv6 + ICMP.
 *  - TTL / hop limit <= 1: the connector answers itself with ICMP time
 *    exceeded from its own ICMP source address (--icmpv4-src / --icmpv6-src
 *    or the auto-detected one), quoting the original packet. That is the
 *    hop traceroute -I and mtr show.
 *  - Otherwise only echo requests are proxied: one flow per (source IP,
 *    destination IP, original echo id), each with its own ping socket
 *    (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP); raw sockets where ping
 *    sockets are not allowed) bound to the source address, so the kernel
 *    assigns the echo id on the wire. Replies read from that socket are
 *    rewritten back to the client (original echo id, destination = the
 *    client, TTL 255) and handed to the flow's reply callback.
 *  - A request for an existing flow from another reply_user (QUIC
 *    connection) moves the flow there, so replies go to the newest
 *    connection. (cloudflared closes the funnel and opens a new socket;
 *    moving it keeps replies in flight and is otherwise the same.)
 *  - Flows idle for idle_timeout_ms (request or reply) are closed, checked
 *    every idle_timeout_ms as cloudflared's cleanup ticker (so a flow lives
 *    between one and two periods after its last packet); at most max_flows
 *    flows exist at a time (a request for a new flow beyond that is counted
 *    and dropped). cloudflared has no cap.
 *  - An echo *reply* from the client is dropped: cloudflared would send it
 *    on the ping socket, which the kernel refuses (only echo requests).
 *  - With raw sockets (no ping_group_range) the proxy picks the echo id
 *    itself and accepts only echo replies with that id from the pinged
 *    host. cloudflared 2023.7.3 has no raw fallback on Linux.
 *
 * Never fatal: a malformed packet, a non-echo message, a full flow table or
 * an address family without a usable socket is counted and dropped. If no
 * socket kind works for a family, that is logged once.
 *
 * Threading: everything runs on cfg->loop's thread. The reply callback runs
 * from the loop (socket readable) or from inside wr_icmp_proxy_request:
 * for time exceeded, and for an echo whose reply was already there after
 * the send (a host on this machine). It may call wr_icmp_proxy_forget and
 * wr_icmp_proxy_request (the packet it was given is then overwritten), not
 * wr_icmp_proxy_free. The caller (the datagram multiplexer) checks
 * warp-routing per packet, as cloudflared does, and calls
 * wr_icmp_proxy_forget when a QUIC connection closes. Flows never keep the
 * loop alive. */
#ifndef WR_CONNECTOR_ICMP_PROXY_H
#define WR_CONNECTOR_ICMP_PROXY_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/ippacket.h"

typedef struct wr_icmp_proxy wr_icmp_proxy;

/* One IP packet (IPv4 or IPv6 with ICMP) for the client: an echo reply or a
 * time exceeded, to be sent as a v2 datagram of type 1 (or v3 type 2).
 * |ip_packet| is valid only during the call. */
typedef void (*wr_icmp_reply_fn)(void *reply_user, const uint8_t *ip_packet, size_t len);

#define WR_ICMP_PROXY_IDLE_MS_DEFAULT 10000 /* cloudflared's funnelIdleTimeout */
#define WR_ICMP_PROXY_MAX_FLOWS_DEFAULT 4096

/* How flows open their sockets. AUTO: ping socket, else raw socket. */
typedef enum wr_icmp_sock_mode {
  WR_ICMP_SOCK_AUTO = 0,
  WR_ICMP_SOCK_DGRAM, /* ping sockets only */
  WR_ICMP_SOCK_RAW    /* raw sockets only (needs CAP_NET_RAW) */
} wr_icmp_sock_mode;

typedef struct wr_icmp_proxy_config {
  uv_loop_t *loop;
  /* --icmpv4-src / --icmpv6-src (IPv6 may carry "%zone"); NULL or "" =
   * auto-detect as cloudflared does (wr_icmp_proxy_detect_src4/6). */
  const char *src4;
  const char *src6;
  unsigned max_flows;       /* 0: WR_ICMP_PROXY_MAX_FLOWS_DEFAULT */
  uint64_t idle_timeout_ms; /* 0: WR_ICMP_PROXY_IDLE_MS_DEFAULT */
  wr_icmp_sock_mode sock_mode;
} wr_icmp_proxy_config;

typedef struct wr_icmp_proxy_stats {
  uint64_t requests;        /* packets given to wr_icmp_proxy_request */
  uint64_t echo_sent;       /* echo requests written to a socket */
  uint64_t replies;         /* echo replies handed to a reply callback */
  uint64_t time_exceeded;   /* time exceeded generated for TTL <= 1 */
  uint64_t malformed;       /* not decodable as IP + ICMP */
  uint64_t not_echo;        /* not ICMP, or ICMP other than an echo request */
  uint64_t no_socket;       /* the family has no usable socket / source */
  uint64_t flow_limit;      /* a new flow beyond max_flows */
  uint64_t send_errors;     /* sendto failed */
  uint64_t reply_dropped;   /* read from a socket but not an echo reply for the flow */
  uint64_t flows_opened;
  uint64_t flows_closed;
  uint64_t flows_active;
} wr_icmp_proxy_stats;

/* Resolves the source addresses (logging them as cloudflared does), then
 * checks per family that a socket can be opened (cloudflared's
 * testPermission: a ping socket, else a raw socket, opened and closed
 * again). A family without one is logged and its echo requests dropped;
 * with neither, the proxy drops everything (time exceeded included), as
 * cloudflared without an ICMP router. Returns WR_OK, WR_ERR_INVAL (no loop,
 * or a src4/src6 that is not an IPv4/IPv6 address: cloudflared then runs
 * without ICMP proxy) or WR_ERR_NOMEM. */
int wr_icmp_proxy_new(const wr_icmp_proxy_config *cfg, wr_icmp_proxy **out);

/* One IP packet from the edge (the payload of a v2 datagram of type 1 or 2,
 * or v3 type 2). Replies (and time-exceeded messages) go to
 * fn(reply_user, ...). Never fatal: malformed -> counted, dropped. Returns
 * WR_OK when the packet was answered or sent on, else the reason it was
 * dropped (WR_ERR_TRUNC / WR_ERR_PROTO: malformed; WR_ERR_UNSUPPORTED: not
 * ICMP echo or no socket for the family; WR_ERR_LIMIT: flow cap; WR_ERR_IO:
 * socket error; WR_ERR_NOMEM). Callers may ignore it. */
int wr_icmp_proxy_request(wr_icmp_proxy *p, const uint8_t *pkt, size_t len, wr_icmp_reply_fn fn,
                          void *reply_user);

/* |reply_user| (a QUIC connection) is gone: its flows are closed and fn is
 * never called for it again. */
void wr_icmp_proxy_forget(wr_icmp_proxy *p, void *reply_user);

/* Closes every flow and frees. The sockets' close callbacks run on the
 * loop, so run the loop once more after this (as for any libuv handle).
 * NULL is a no-op. */
void wr_icmp_proxy_free(wr_icmp_proxy *p);

/* 1 if echo requests for IP |version| (4 or 6) can be proxied (a socket
 * kind works for that family), else 0. */
int wr_icmp_proxy_enabled(const wr_icmp_proxy *p, uint8_t version);

void wr_icmp_proxy_stats_get(const wr_icmp_proxy *p, wr_icmp_proxy_stats *out);

/* The source addresses in use (for time exceeded, and bound by flows). */
void wr_icmp_proxy_sources(const wr_icmp_proxy *p, wr_ipaddr *src4, wr_ipaddr *src6);

/* ---- pure parts (no I/O; unit-tested against the captured vectors) ------ */

/* The flow key cloudflared uses (flow3Tuple). */
typedef struct wr_icmp_flow_key {
  wr_ipaddr src; /* the client */
  wr_ipaddr dst; /* the pinged host */
  uint16_t echo_id; /* the client's original echo id */
} wr_icmp_flow_key;

/* Fills |key| from a decoded echo request. */
void wr_icmp_flow_key_make(const wr_ip_packet *ip, const wr_icmp *icmp, wr_icmp_flow_key *key);
int wr_icmp_flow_key_equal(const wr_icmp_flow_key *a, const wr_icmp_flow_key *b);

/* What to do with one packet from the edge (cloudflared's PacketRouter
 * handlePacket + icmpRouter.Request, without the I/O). */
typedef enum wr_icmp_action_kind {
  WR_ICMP_ACT_TIME_EXCEEDED = 1, /* answer with out[0..reply_len) */
  WR_ICMP_ACT_FORWARD            /* send an echo request on key's flow */
} wr_icmp_action_kind;

typedef struct wr_icmp_action {
  wr_icmp_action_kind kind;
  size_t reply_len;       /* TIME_EXCEEDED */
  wr_icmp_flow_key key;   /* FORWARD: the flow */
  uint16_t seq;           /* FORWARD: echo seq and data (pointing into the packet) */
  const uint8_t *data;
  size_t data_len;
} wr_icmp_action;

/* Decodes |pkt|: TTL / hop limit <= 1 -> time exceeded from |src4| (IPv4)
 * or |src6| (IPv6) written to |out|; an echo request -> FORWARD. Returns
 * WR_OK, or why the packet is dropped: WR_ERR_TRUNC / WR_ERR_PROTO (not IP),
 * WR_ERR_UNSUPPORTED (not ICMP, or ICMP other than an echo request),
 * WR_ERR_LIMIT (|cap| too small). */
int wr_icmp_proxy_classify(const uint8_t *pkt, size_t len, const wr_ipaddr *src4,
                           const wr_ipaddr *src6, wr_icmp_action *act, uint8_t *out, size_t cap);

/* The packet sent back for a bare ICMP message |msg| read from a flow's
 * socket (the replying host |from|, for the flow |key|): an echo reply
 * from |from| to key->src, with the original echo id, the same seq and
 * data, TTL 255. Returns the length written to |out|,
 * WR_ERR_PROTO if |msg| is not an echo reply for |key|'s IP version,
 * WR_ERR_TRUNC if it is too short, or WR_ERR_LIMIT if |cap| is too small. */
int wr_icmp_proxy_build_reply(const wr_icmp_flow_key *key, const wr_ipaddr *from,
                              const uint8_t *msg, size_t len, uint8_t *out, size_t cap);

/* cloudflared's auto-detected sources: IPv4 = the local address the kernel
 * picks for a UDP "connect" to 192.168.0.1:53, else 0.0.0.0; IPv6 = an IPv6
 * address of the interface that holds |src4|, else any interface's IPv6
 * address, else ::. Return WR_OK (they always produce an address). */
int wr_icmp_proxy_detect_src4(wr_ipaddr *out);
int wr_icmp_proxy_detect_src6(const wr_ipaddr *src4, wr_ipaddr *out, char *zone, size_t zone_cap);

#endif
