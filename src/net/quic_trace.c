/* QUIC diagnostics from the environment, for measuring, never needed to
 * run (quic_int.h):
 *
 *   WARREN_QUIC_TRACE=MS   every MS milliseconds (at a write), one line per
 *                          connection on the log at info level: bytes sent
 *                          and received since the last line, the congestion
 *                          window, ssthresh, bytes in flight, RTTs, ngtcp2's
 *                          delivery rate, and the flow-control credit left
 *                          to send (connection level). It tells whether a
 *                          transfer is limited by the congestion window
 *                          (in flight ~ cwnd), by the peer's flow control
 *                          (credit ~ 0) or by the application (neither).
 *   WARREN_QUIC_CC=cubic|reno|bbr|bbr2
 *                          the congestion controller of new connections
 *                          (default: ngtcp2's, cubic), for experiments.
 *
 * Both are read once, at the first connection. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>

#include "lib/log.h"
#include "net/quic_int.h"

static int env_read;
static uint64_t trace_ns; /* 0: off */
static int cc_set;
static ngtcp2_cc_algo cc_algo;

static void read_env(void) {
  if (env_read) return;
  env_read = 1;
  const char *t = getenv("WARREN_QUIC_TRACE");
  if (t && *t) {
    char *end;
    unsigned long long ms = strtoull(t, &end, 10);
    if (*end == '\0' && ms > 0 && ms < 3600000) trace_ns = (uint64_t)ms * WR_QUIC_MS;
  }
  const char *cc = getenv("WARREN_QUIC_CC");
  static const struct {
    const char *name;
    ngtcp2_cc_algo algo;
  } names[] = {{"reno", NGTCP2_CC_ALGO_RENO},
               {"cubic", NGTCP2_CC_ALGO_CUBIC},
               {"bbr", NGTCP2_CC_ALGO_BBR},
               {"bbr2", NGTCP2_CC_ALGO_BBR2}};
  for (size_t i = 0; cc && i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(cc, names[i].name) == 0) {
      cc_set = 1;
      cc_algo = names[i].algo;
    }
  if (cc && *cc && !cc_set) wr_warn("WARREN_QUIC_CC=%s: not reno, cubic, bbr or bbr2; ignored", cc);
}

void wr__quic_trace_settings(ngtcp2_settings *s) {
  read_env();
  if (cc_set) s->cc_algo = cc_algo;
}

void wr__quic_trace(wr_quic_conn *c, size_t tx, wr_quic_tstamp now) {
  if (!trace_ns || !c->conn) return;
  c->trace_tx += tx;
  if (!c->trace_at) c->trace_at = now;
  if (now - c->trace_at < trace_ns) return;
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(c->conn, &st);
  double secs = (double)(now - c->trace_at) / 1e9;
  wr_info("quic trace %p %s: tx %.1f MB/s rx %.1f MB/s cwnd %" PRIu64 " ssthresh %" PRIu64
          " inflight %" PRIu64 " srtt %.3f ms minrtt %.3f ms rate %.1f MB/s credit %" PRIu64,
          (void *)c, c->role == WR_QUIC_SERVER ? "server" : "client", (double)c->trace_tx / secs / 1e6,
          (double)c->trace_rx / secs / 1e6, st.cwnd,
          st.ssthresh == UINT64_MAX ? 0 : st.ssthresh, st.bytes_in_flight,
          (double)st.smoothed_rtt / 1e6, (double)st.min_rtt / 1e6, (double)st.delivery_rate_sec / 1e6,
          ngtcp2_conn_get_max_data_left(c->conn));
  c->trace_at = now;
  c->trace_tx = c->trace_rx = 0;
}
