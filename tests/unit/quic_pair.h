/* A loopback QUIC client/server pair in one libuv loop, for the unit suites
 * that play the edge (server side) against connector code (client side):
 * the loop, a guard timer that fails a wait that never ends, and both TLS
 * contexts and endpoints on 127.0.0.1. The suite embeds a unit_qpair in its
 * context, fills |ecbs| (edge) and |kcbs| (connector) and connects; what it
 * adds (origins, proxies) it closes itself between unit_qpair_free_endpoints
 * and unit_qpair_finish. Linked into every unit test, like unit.c. */
#ifndef WR_UNIT_QUIC_PAIR_H
#define WR_UNIT_QUIC_PAIR_H
#include <stdint.h>

#include <uv.h>

#include "connector/ingress.h"
#include "lib/buf.h"
#include "lib/encoding.h"
#include "net/quic.h"
#include "proto/connect.h"
#include "unit.h"

typedef struct unit_qpair {
  uv_loop_t loop;
  uv_timer_t guard, poll;
  int timed_out;
  int (*done)(void *arg); /* the condition unit_qpair_run_at waits for */
  void *arg;
  wr_quic_callbacks ecbs, kcbs; /* kept here: the endpoints keep pointers */
  wr_quic_tls *stls, *ctls;
  wr_quic_endpoint *sep, *cep;
  wr_quic_conn *cconn;
} unit_qpair;

/* The group setup of a suite that uses the pair: logging off and a test PKI
 * (unit_pki_make) in /tmp/<prefix>-XXXXXX for quic.cftunnel.com. Returns 0
 * or -1. */
int unit_qpair_pki(unit_pki *pki, const char *prefix);
/* Clears |q|, starts its loop and timers. */
void unit_qpair_init(unit_qpair *q);
/* TLS from |pki| (server cert/key, client trusts pki->ca), the edge endpoint
 * on 127.0.0.1:0 with |q->ecbs|, |on_accept| and |edge_user|, and the
 * connector's client connection with |q->kcbs| and |conn_user| in q->cep /
 * q->cconn. Does not wait for the handshake. Fails the test on error. */
void unit_qpair_connect(unit_qpair *q, const unit_pki *pki, wr_quic_accept_cb on_accept,
                        void *edge_user, void *conn_user);
/* Another client connection to q->sep with |cbs| (kept by the endpoint, so
 * it must outlive it) and |user|. */
void unit_qpair_dial(unit_qpair *q, const unit_pki *pki, const wr_quic_callbacks *cbs, void *user,
                     wr_quic_endpoint **ep, wr_quic_conn **conn);
/* Runs the loop until |done(arg)| (checked every 2 ms) or |ms| pass; the
 * latter fails the test, naming |line|. */
void unit_qpair_run_at(unit_qpair *q, int (*done)(void *arg), void *arg, uint64_t ms, int line);
/* Runs the loop for |ms|, whatever happens (lets traffic settle). */
void unit_qpair_run_for(unit_qpair *q, uint64_t ms);
/* Defines run_until(c, done, ms) for a suite's context type |T| that holds
 * the pair as member |q| and `int (*done)(T *)` as member |done|: runs the
 * loop until done(c), as unit_qpair_run_at. */
#define UNIT_QPAIR_RUN_UNTIL(T)                                                 \
  static int T##_done(void *arg) {                                              \
    T *c_ = arg;                                                                \
    return c_->done(c_);                                                        \
  }                                                                             \
  static void run_until_at(T *c, int (*done)(T *), uint64_t ms, int line) {     \
    c->done = done;                                                             \
    unit_qpair_run_at(&c->q, T##_done, c, ms, line);                            \
  }
#define run_until(c, done, ms) run_until_at((c), (done), (ms), __LINE__)
/* Frees the client and server endpoints (their connections close). */
void unit_qpair_free_endpoints(unit_qpair *q);
/* Closes the timers, runs the loop until every handle closed, asserts it
 * closes, then frees the TLS contexts. */
void unit_qpair_finish(unit_qpair *q);

/* The connector side of a proxy suite: a wr_proxy over |ing| (version
 * "9.9.9-test", connector ID |connector_id| or all zeros) as the client
 * connection's stream handler (unit_qpair_proxy_callbacks), then
 * unit_qpair_connect with unit_qpair_accept and |edge_user|; q->ecbs must be
 * set before. Returns the proxy, which the caller frees. */
struct wr_proxy *unit_qpair_proxy_start(unit_qpair *q, const unit_pki *pki, wr_ingress *ing,
                                        const wr_uuid *connector_id, void *edge_user);
/* Edge side: an on_accept that gives each connection the endpoint's user
 * pointer (edge_user). */
void unit_qpair_accept(wr_quic_endpoint *ep, wr_quic_conn *qc, void *user);
/* Connector side as the supervisor wires it: every stream and connection
 * event of the client connection goes to the wr_proxy passed as conn_user to
 * unit_qpair_connect. */
void unit_qpair_proxy_callbacks(wr_quic_callbacks *cbs);
/* The bytes an edge writes to open a data stream, appended to |b|: the data
 * preamble, ConnectRequest{|dest|, |type|, the |nmeta| entries of |meta|}
 * (an empty but present list when |nmeta| is 0), then |body|. Fails the
 * test if it does not encode. */
void unit_edge_request(wr_buf *b, int type, const char *dest, wr_meta *meta, size_t nmeta,
                       const void *body, size_t body_len);
/* The connector's answer at the start of |data|: checks the data preamble
 * and decodes the ConnectResponse after it into |r| (free it with
 * wr_connect_response_free(NULL, r)). Returns the bytes both take; fails
 * the test if they are not there. */
size_t unit_edge_response(const uint8_t *data, size_t len, wr_connect_response *r);
/* The ingress rules of the config file text |yaml|; fails the test if it
 * does not parse. The config is freed before they are returned, so they
 * must own everything they point to. The caller frees them. */
wr_ingress *unit_ingress_of(const char *yaml);

#endif
