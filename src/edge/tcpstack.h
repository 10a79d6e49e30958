/* The edge's user-space TCP stack: TCP connections that clients open to
 * private addresses arrive here as IP packets (from the router's tcp_input
 * hook) and come out as byte streams (flows) the owner carries to a
 * connector. The only module that talks to lwIP (Debian's liblwip, 2.1.3).
 *
 * Threading: none. lwIP is used without its tcpip thread: lwip_init() once
 * per process, and lwIP's timers (retransmission, delayed ACKs, TIME_WAIT)
 * run from a libuv timer on the loop (sys_check_timeouts). Debian builds
 * lwIP with NO_SYS=0 and core locking, but its core-lock check
 * (sys_check_core_locking) only enforces the lock once a tcpip thread
 * exists, which we never start; so every lwIP call and callback happens on
 * the loop thread and nothing needs a lock. lwIP's state is global: there is
 * at most one wr_tcpstack per process at a time.
 *
 * Any destination: lwIP accepts only packets addressed to its interface and
 * listens per port. Before each packet goes in, the interface's address is
 * set to the packet's destination by writing the netif field directly
 * (netif_set_ipaddr would abort the pcbs bound to the old address), with
 * netmask 0 so that every destination routes out of the same interface; a
 * listening pcb for the destination port (bound to any address, IPv4 and
 * IPv6) exists while a handshake to that port is in progress, and the new
 * connection's local address is the packet's destination.
 *
 * A flow starts with a client's SYN: the stack checks the packet (checksum,
 * flags), the caps, then asks the owner (on_flow) before lwIP answers. A
 * refused or capped SYN is answered with RST (connection refused). Then:
 *  - client bytes go to on_data, which returns how many it took; the rest
 *    stays buffered until wr_tcpflow_resume(). Taken bytes stay counted in
 *    the receive window until wr_tcpflow_consume() (call it once the tunnel
 *    took them; from inside on_data too, for bytes it takes there): that is
 *    the backpressure towards the client. The client's
 *    FIN is on_data(len 0), after all its bytes.
 *  - wr_tcpflow_write() takes what fits in the send buffer (64 KiB) and
 *    returns the count; on_writable fires when more fits after a short write.
 *  - wr_tcpflow_shutdown_write() sends FIN after the queued bytes.
 *  - Both directions finished: on_close(WR_TCPFLOW_CLOSED). The client's RST
 *    or a retransmission timeout: on_close with that reason. After on_close
 *    the flow handle is gone. wr_tcpflow_abort() resets the connection (RST)
 *    and frees the flow at once: no callback follows.
 * Callbacks never run from inside lwIP: events are collected and delivered
 * after lwIP returns, so they may call any wr_tcpflow_* function. output()
 * is the exception: it runs from inside lwIP and must not call into this
 * module (writing the packet to the ingress is all it should do).
 *
 * Replies go to the ingress their flow came from: an IP 4-tuple belongs to
 * one ingress; a packet with a known tuple from another ingress is dropped.
 * After both sides closed, lwIP may still retransmit the last bytes or
 * answer in TIME_WAIT; the tuple's ingress is kept for WR_TCPSTACK_LINGER_MS
 * for that.
 *
 * Limits: |max_flows| in total and |max_flows_per_client| per (ingress,
 * source address); each flow buffers at most one receive window (64 KiB) of
 * client bytes and lwIP's send buffer (64 KiB). A malformed packet (bad
 * IP/TCP header or checksum, fragment, not TCP) is counted and dropped. */
#ifndef WR_EDGE_TCPSTACK_H
#define WR_EDGE_TCPSTACK_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/ippacket.h"

typedef struct wr_tcpstack wr_tcpstack;
typedef struct wr_tcpflow wr_tcpflow;

#define WR_TCPSTACK_MAX_FLOWS 65536
#define WR_TCPSTACK_MAX_FLOWS_PER_CLIENT 1024
#define WR_TCPSTACK_MTU 1500
#define WR_TCPSTACK_LINGER_MS 180000

enum wr_tcpflow_reason {
  WR_TCPFLOW_CLOSED = 0, /* both directions ended with FIN */
  WR_TCPFLOW_RESET = 1,  /* the client reset the connection */
  WR_TCPFLOW_TIMEOUT = 2,/* the client stopped answering (retransmissions, handshake) */
  WR_TCPFLOW_ERROR = 3,  /* lwIP failed (memory) or the stack is being freed */
};

typedef struct wr_tcpstack_callbacks {
  /* One IP packet towards the client of |ingress|. Runs inside lwIP: must
   * not call this module. */
  void (*output)(void *user, const uint8_t *pkt, size_t len, void *ingress);
  /* A client of |ingress| sent a SYN from |src|:|sport| to |dst|:|dport|.
   * Return 0 and set |*flow_user| to accept (the handshake completes), or
   * non-zero to refuse (RST). |f| is usable from here on. */
  int (*on_flow)(void *user, wr_tcpflow *f, void *ingress, const wr_ipaddr *src, uint16_t sport,
                 const wr_ipaddr *dst, uint16_t dport, void **flow_user);
  /* Client bytes; return how many were taken (fewer: delivery pauses until
   * wr_tcpflow_resume). |len| 0: the client's FIN (return value ignored). */
  size_t (*on_data)(void *flow_user, const uint8_t *data, size_t len);
  /* More fits in the send buffer after a short wr_tcpflow_write (also once
   * the handshake completed, if a write came before it). */
  void (*on_writable)(void *flow_user);
  /* The flow is gone (enum wr_tcpflow_reason). Last callback. */
  void (*on_close)(void *flow_user, int reason);
} wr_tcpstack_callbacks;

typedef struct wr_tcpstack_config {
  uv_loop_t *loop;            /* required: runs lwIP's timers */
  wr_tcpstack_callbacks cbs;  /* output, on_flow, on_data and on_close required */
  void *user;
  size_t max_flows;           /* 0: WR_TCPSTACK_MAX_FLOWS */
  size_t max_flows_per_client;/* 0: WR_TCPSTACK_MAX_FLOWS_PER_CLIENT */
  uint16_t mtu;               /* of the ingress; 0: WR_TCPSTACK_MTU (MSS follows) */
  uint64_t linger_ms;         /* 0: WR_TCPSTACK_LINGER_MS */
} wr_tcpstack_config;

typedef struct wr_tcpstack_stats {
  uint64_t flows_total;     /* accepted SYNs */
  uint64_t flows_active;    /* flows not yet closed (incl. handshakes) */
  uint64_t refused;         /* SYNs on_flow refused */
  uint64_t limited;         /* SYNs over max_flows / max_flows_per_client */
  uint64_t malformed;       /* undecodable packets, bad checksums, fragments */
  uint64_t foreign;         /* a known tuple from another ingress */
  uint64_t packets_in, packets_out;
  uint64_t bytes_in, bytes_out; /* TCP payload from / to clients */
  uint64_t out_dropped;     /* lwIP output with no ingress to send it to (or not TCP) */
} wr_tcpstack_stats;

/* Returns WR_OK, WR_ERR_INVAL (a required field missing), WR_ERR_EXISTS
 * (another stack lives in this process) or WR_ERR_NOMEM. */
int wr_tcpstack_new(const wr_tcpstack_config *cfg, wr_tcpstack **out);
/* Resets every live flow (no callbacks, no packets), closes the timer (the
 * memory goes in its close callback: run the loop afterwards). NULL: no-op. */
void wr_tcpstack_free(wr_tcpstack *s);

/* One IP packet (a TCP segment) from a client of |ingress| (an opaque
 * pointer handed back to output and on_flow). Returns WR_OK (taken by lwIP),
 * WR_ERR_PROTO (malformed: counted, dropped), WR_ERR_LIMIT (a SYN over the
 * caps: answered with RST), WR_ERR_DENIED (refused by on_flow: RST) or
 * WR_ERR_EXISTS (the tuple belongs to another ingress: dropped). */
int wr_tcpstack_input(wr_tcpstack *s, const uint8_t *pkt, size_t len, void *ingress);

const wr_tcpstack_stats *wr_tcpstack_get_stats(const wr_tcpstack *s);

/* |ingress| is going away (a WireGuard device revoked): its live flows end
 * with on_close(WR_TCPFLOW_ERROR) (delivered before this returns; no RST
 * goes to the ingress), its lingering tuples are dropped, and nothing
 * refers to it afterwards. Call it before the ingress is freed. */
void wr_tcpstack_forget_ingress(wr_tcpstack *s, void *ingress);

/* Queues up to |len| bytes for the client; returns how many were taken
 * (0 when the send buffer is full or the flow can no longer send). */
size_t wr_tcpflow_write(wr_tcpflow *f, const uint8_t *data, size_t len);
/* Bytes written and not yet acknowledged by the client. */
size_t wr_tcpflow_unacked(const wr_tcpflow *f);
/* Opens the receive window by |n| bytes that on_data delivered. */
void wr_tcpflow_consume(wr_tcpflow *f, size_t n);
/* Delivery of buffered client bytes resumes (after on_data took fewer). */
void wr_tcpflow_resume(wr_tcpflow *f);
/* FIN to the client after the queued bytes. Idempotent. */
void wr_tcpflow_shutdown_write(wr_tcpflow *f);
/* RST to the client; frees the flow. No callback follows. */
void wr_tcpflow_abort(wr_tcpflow *f);

#endif
