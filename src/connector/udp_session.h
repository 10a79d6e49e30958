/* The connector's UDP sessions (protocol.md 5.2, 5.4, 6.2), as cloudflared
 * 2023.7.3 runs them (connection/quic.go RegisterUdpSession,
 * datagramsession/manager.go and session.go, ingress/origin_udp_proxy.go):
 *
 *  - register: the edge's registerUdpSession(id, dstIp, dstPort, idleHint)
 *    opens a connected UDP socket to dst (OS-chosen source) and adds the
 *    session before the RPC answers. The same id on the same connection
 *    replaces the old session (cloudflared overwrites its map entry).
 *  - edge -> origin: the payload of a v2 datagram of type 0 is written to
 *    the session's socket (an empty payload is an empty UDP datagram);
 *    write errors are logged, never fatal. Unknown ids are counted and
 *    dropped ("session not found").
 *  - origin -> edge: each datagram read (1500-byte buffer) goes back as
 *    `payload ‖ id ‖ 0x00` on the session's QUIC connection; payloads over
 *    WR_DGRAM_MAX_UDP_PAYLOAD (1280) are counted and dropped, as
 *    cloudflared's "packet too big" drop.
 *  - idle: checked every hint/8; a session without traffic in either
 *    direction for longer than the hint (0: 210 s) ends with reason
 *    "session idle for <Go duration>", e.g. "session idle for 3m30s".
 *    A read error from the origin socket (e.g. ICMP port unreachable) ends
 *    it with Go's error text ("read udp L->R: read: connection refused").
 *    Sessions ended here are reported through on_end, whose owner tells the
 *    edge with unregisterUdpSession on a new RPC stream (closeUDPSession).
 *  - unregister (by the edge) closes the session without on_end.
 *  - a QUIC connection that goes takes its sessions with it, silently.
 *
 * Beyond cloudflared: at most max_per_conn sessions per QUIC connection (a
 * registration beyond is refused with an error text).
 *
 * Datagram v3 (protocol.md 6.6, cloudflared HEAD quic/v3 manager.go and
 * session.go), when the table is made with |v3|: sessions ("flows") are
 * keyed by their 16-byte request id alone, not by connection, and are
 * registered with wr_udp_flow_register (the edge's type 0 datagram), whose
 * result is a registration response code:
 *  - a new id: dial as above, then OK; a bundled first payload is written
 *    to the origin (HEAD ignores it; an edge that bundles loses nothing
 *    here). A dial that fails because the destination cannot be reached
 *    (network/host unreachable, no such address family) answers
 *    "destination unreachable", any other dial failure "unable to bind
 *    socket" (HEAD answers that for every dial error); over max_per_conn:
 *    "too many active flows";
 *  - an id registered on the same connection (the edge missed the answer):
 *    OK again and the idle timer starts over;
 *  - an id registered on another connection: the flow migrates (its
 *    replies go to the new connection from now on), OK, idle timer reset.
 * Payloads from the edge reach a flow whatever connection they come on;
 * the origin's datagrams go out as type 1 (request id ‖ payload, payload
 * ≤ 1280) on the flow's current connection. There is no unregister
 * message: flows end by idle timeout (the registration's hint in seconds;
 * 0: 210 s), an origin read error, or their connection going (on_end
 * still runs for the first two; the owner sends nothing in v3).
 *
 * Memory and handles: each session owns a uv_udp_t and a uv_timer_t; a
 * closed session is freed from its handles' close callbacks, the table once
 * the last of them ran after wr_udp_sessions_free (run the loop).
 * Threading: the loop's thread only. on_end runs from the loop (a timer or
 * a socket callback), never from inside a call of this module. */
#ifndef WR_CONNECTOR_UDP_SESSION_H
#define WR_CONNECTOR_UDP_SESSION_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "net/quic.h"

#define WR_UDP_MAX_SESSIONS_PER_CONN 4096
#define WR_UDP_DEFAULT_IDLE_NS (210LL * 1000000000LL) /* defaultCloseIdleAfter */
#define WR_UDP_READ_BUF 1500                          /* cloudflared's maxPacketSize */
#define WR_UDP_REASON_MAX 384

typedef struct wr_udp_sessions wr_udp_sessions;

typedef struct wr_udp_sessions_config {
  uv_loop_t *loop;
  size_t max_per_conn; /* 0: WR_UDP_MAX_SESSIONS_PER_CONN */
  int v3;              /* datagram v3 flows instead of v2 sessions */
  /* A session ended on the connector's side (idle, origin read error); it
   * is already gone from the table. |id| is the 16-byte session id. */
  void (*on_end)(void *user, wr_quic_conn *qc, const uint8_t *id, const char *reason);
  void *user;
} wr_udp_sessions_config;

typedef struct wr_udp_sessions_stats {
  uint64_t active;            /* cloudflared_udp_active_sessions */
  uint64_t registered;        /* cloudflared_udp_total_sessions */
  uint64_t refused;           /* registrations refused (dial error, cap) */
  uint64_t ended_idle;        /* ended by the idle timeout */
  uint64_t ended_error;       /* ended by an origin read error */
  uint64_t ended_remote;      /* unregistered by the edge */
  uint64_t to_origin;         /* datagrams written to origins */
  uint64_t from_origin;       /* datagrams sent to the edge */
  uint64_t unknown_session;   /* edge datagrams for no session: dropped */
  uint64_t too_big;           /* origin payloads over 1280 bytes: dropped */
  uint64_t send_dropped;      /* QUIC refused the datagram (queue, size) */
  uint64_t write_errors;      /* writes to the origin that failed */
  uint64_t reregistered;      /* v3: registration of a live flow, same connection */
  uint64_t migrated;          /* v3: registration of a live flow from another connection */
} wr_udp_sessions_stats;

/* Returns WR_OK or WR_ERR_INVAL (no loop). */
int wr_udp_sessions_new(const wr_udp_sessions_config *cfg, wr_udp_sessions **out);
/* Closes every session (without on_end) and frees once the handles are
 * closed: run the loop afterwards. NULL is a no-op. */
void wr_udp_sessions_free(wr_udp_sessions *t);

/* registerUdpSession (v2 tables only: WR_ERR_INVAL in v3). |id| must be 16 bytes, |ip| 4 or 16 bytes (IPv4-mapped
 * IPv6 dials IPv4, as Go does); |idle_ns| <= 0 takes the default. On
 * failure |err| gets the text the edge sees in RegisterUdpSessionResponse.err,
 * e.g. "unable to create UDP proxy to origin (10.0.0.1:53): dial udp
 * 10.0.0.1:53: connect: network is unreachable". Returns WR_OK, WR_ERR_INVAL
 * (bad id or address length), WR_ERR_LIMIT (cap) or WR_ERR_IO (dial). */
int wr_udp_session_register(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                            const uint8_t *ip, size_t iplen, uint16_t port, int64_t idle_ns,
                            char *err, size_t errlen);
/* v3: what wr_udp_flow_register did with the registration. */
enum wr_udp_flow_result { WR_UDP_FLOW_NEW = 0, WR_UDP_FLOW_AGAIN, WR_UDP_FLOW_MIGRATED };

/* A v3 registration datagram (|ip| 4 or 16 bytes, |idle_ns| <= 0: the
 * default; |first|: the bundled payload or NULL). Returns the response
 * code (enum wr_dgram_v3_resp): WR_DGRAM_V3_RESP_OK with |*res| saying
 * what happened, or a refusal with the reason in |err| (for the log).
 * A table made without |v3| answers WR_DGRAM_V3_RESP_ERROR_WITH_MSG. */
int wr_udp_flow_register(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                         const uint8_t *ip, size_t iplen, uint16_t port, int64_t idle_ns,
                         const uint8_t *first, size_t first_len, enum wr_udp_flow_result *res,
                         char *err, size_t errlen);
/* unregisterUdpSession from the edge: closes the session, no on_end.
 * Returns WR_OK or WR_ERR_NOTFOUND (nothing to do, as in cloudflared). */
int wr_udp_session_unregister(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                              const char *message);
/* A v2 type-0 (or v3 type-1) datagram from the edge; v3 ignores |qc|. Returns WR_OK, WR_ERR_NOTFOUND
 * (unknown session: counted, dropped) or WR_ERR_IO (write failed: counted). */
int wr_udp_session_to_origin(wr_udp_sessions *t, wr_quic_conn *qc, const uint8_t *id,
                             const uint8_t *payload, size_t len);
/* |qc| is gone: its sessions close without on_end and without datagrams. */
void wr_udp_sessions_conn_gone(wr_udp_sessions *t, wr_quic_conn *qc);

/* Sessions of |qc| (NULL: all). */
size_t wr_udp_sessions_count(const wr_udp_sessions *t, const wr_quic_conn *qc);
const wr_udp_sessions_stats *wr_udp_sessions_get_stats(const wr_udp_sessions *t);

/* Go's time.Duration.String() of |ns| ("3m30s", "1.5s", "250ms", "0s").
 * Returns the length written (|cap| >= 32 always suffices). */
int wr_go_duration(int64_t ns, char *out, size_t cap);

#endif
