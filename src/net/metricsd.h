/* The local status endpoints a process serves on --metrics, shared by the
 * connector (connector/metrics.c) and the edge (edge/edge_metrics.c) so both
 * answer alike:
 *   GET /metrics      200, Prometheus text (lib/prom.h), from |render|;
 *   GET /ready        200 or 503 with a JSON body, from |ready|;
 *   GET /healthcheck  200 "OK\n": the process is alive and its loop turns;
 *   any other path    404; a method other than GET or HEAD 405.
 * Served by net/httpd on the caller's loop; the callbacks run on the loop
 * thread and must answer at once (no I/O that blocks for long). */
#ifndef WR_NET_METRICSD_H
#define WR_NET_METRICSD_H
#include <stddef.h>

#include <uv.h>

#include "lib/buf.h"
#include "net/httpd.h"

/* The /ready body's bound. */
#define WR_METRICSD_READY_MAX 1024

typedef struct wr_metricsd wr_metricsd;

typedef struct wr_metricsd_handlers {
  /* Appends the /metrics text to |out| (bounded at 1 MiB). */
  void (*render)(void *user, wr_buf *out);
  /* Appends the /ready JSON body (one line, with its newline) to |out| and
   * returns the status: 200 when ready, 503 when not. */
  int (*ready)(void *user, wr_buf *out);
  /* Optional, in place of |ready|: for an answer that waits (a store read
   * on another thread). Called on the loop thread with the request, which
   * the caller answers exactly once, now or from a later loop callback,
   * with wr_metricsd_ready_done (also after wr_metricsd_free: the answer
   * then goes nowhere, but frees |req|). */
  void (*ready_start)(void *user, wr_httpd_req *req);
  void *user;
} wr_metricsd_handlers;

/* Listens on |addr| ("host:port" or "[v6]:port"; the host may be a name
 * such as localhost, resolved here with getaddrinfo, so call this at
 * start-up only; port 0 picks one) and logs "Starting metrics server on
 * ADDR/metrics". The handlers are copied. Returns WR_OK with *out set, or
 * WR_ERR_CONFIG (a bad address) or WR_ERR_IO (cannot listen), with the
 * reason in |err|. */
int wr_metricsd_start(uv_loop_t *loop, const char *addr, const wr_metricsd_handlers *h,
                      wr_metricsd **out, char *err, size_t errlen);
/* Answers a /ready request given to ready_start: |status| (200 or 503)
 * with the JSON |body| (not taken). Loop thread; |req| is invalid after. */
void wr_metricsd_ready_done(wr_httpd_req *req, int status, const wr_buf *body);
/* "127.0.0.1:PORT" actually bound. */
const char *wr_metricsd_addr(const wr_metricsd *m);
/* Closes the listener and its connections; the memory goes once libuv
 * released the handles (keep running the loop). NULL is a no-op. The
 * callbacks are not called after this. */
void wr_metricsd_free(wr_metricsd *m);

#endif
