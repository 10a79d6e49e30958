/* The connector process's one owner (`warren tunnel run`): the origin
 * proxy, the metrics server and the supervisor's HA connections, started,
 * shut down and freed in one place. The command line
 * (src/cmd/tunnel_run.c) resolves everything that comes from flags, the
 * config file and the environment (credentials, edge addresses, ingress
 * rules, grace period, pidfile, log settings) into wr_connector_options,
 * handles the signals and runs the loop:
 *
 *   wr_connector_new(loop, &opts, &c, err, errlen)
 *   uv_run(loop, UV_RUN_DEFAULT)    until opts.on_stopped
 *   wr_connector_shutdown(c)        (from the signal handler)
 *   wr_connector_free(c)
 *
 * Start order, as cloudflared: the start-up lines ("Starting tunnel
 * tunnelID=…", "Version …", "Generated Connector ID: …", one line per
 * ingress rule), the proxy, the metrics server (before any connection, so
 * that /ready answers 503 while connecting), then the supervisor, which
 * dials connection 0 (connector/supervisor.h).
 *
 * Shutdown: wr_connector_shutdown is the graceful stop (supervisor.h:
 * unregister, let in-flight streams finish within grace_ms, close); a
 * registration refused for good before anything registered logs "Couldn't
 * start tunnel: <reason>", marks the connector failed and closes
 * everything at once. Either way on_stopped runs once every connection is
 * closed, and the caller ends its uv_run.
 *
 * Free order: the metrics server forgets the supervisor, then the
 * supervisor (its QUIC connections), the metrics server, the proxy (which
 * aborts what streams are left without touching the connections), the ICMP
 * proxy (connector/icmp_proxy.h: its flows' sockets), and the
 * loop runs until their close callbacks ran.
 *
 * Threading: everything runs on the loop's thread. wr_connector_shutdown and
 * wr_connector_failed may be called from callbacks; wr_connector_new and
 * wr_connector_free not (the latter runs the loop). */
#ifndef WR_CONNECTOR_CONNECTOR_H
#define WR_CONNECTOR_CONNECTOR_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "connector/ingress.h"
#include "connector/supervisor.h"

typedef struct wr_connector wr_connector;

/* Plain values. Everything is copied during wr_connector_new except
 * |ingress|, which is borrowed and must outlive the connector (rules given
 * later to wr_connector_set_ingress belong to the connector). */
typedef struct wr_connector_options {
  /* Credentials (required), edge addresses (required), CA file, timeouts,
   * protocol: handed to the supervisor as they are (supervisor.h). */
  wr_supervisor_edge edge;
  const wr_ingress *ingress;            /* required; borrowed */
  const char *const *features;          /* --features */
  size_t nfeatures;
  const char *metrics;                  /* HOST:PORT for /metrics, /ready; NULL or "": none */
  uint64_t grace_ms;                    /* wr_connector_shutdown's wait for in-flight streams */
  const char *icmpv4_src;               /* --icmpv4-src; NULL: auto (connector/icmp_proxy.h) */
  const char *icmpv6_src;               /* --icmpv6-src; NULL: auto */
  /* --tag NAME=VALUE pairs: Cf-Warp-Tag-NAME on every origin request. */
  const char *const *tag_names;
  const char *const *tag_values;
  size_t ntags;
  /* --management-hostname: the management service (/logs for `tail`)
   * answers it and management_logs is announced; NULL or "": neither. */
  const char *management_hostname;
  const char *label; /* --label (the management service's host details) */
  /* Every connection is closed after a shutdown or a fatal refusal: end
   * the uv_run. Required. */
  void (*on_stopped)(void *user);
  void *user;
} wr_connector_options;

/* Logs the start-up lines and starts the proxy, the metrics server and the
 * supervisor. On failure what started is freed again, *out is NULL and
 * |err| says why. Returns WR_OK, WR_ERR_INVAL (a required option missing),
 * WR_ERR_NOMEM ("cannot start the proxy"), or the metrics server's
 * (WR_ERR_CONFIG, WR_ERR_IO) or supervisor's (WR_ERR_CRYPTO: the CA file)
 * error. */
int wr_connector_new(uv_loop_t *loop, const wr_connector_options *opts, wr_connector **out,
                     char *err, size_t errlen);

/* The graceful stop within grace_ms; called again, closes everything at
 * once (supervisor.h). on_stopped follows. Callable from callbacks. */
void wr_connector_shutdown(wr_connector *c);

/* Hot reload: new streams use |ing| from now on; streams already open
 * finish with the rules they started with. The connector owns |ing| and
 * frees each replaced set of rules once no stream uses it (the first set,
 * from the options, stays the caller's). Connections are not touched. */
void wr_connector_set_ingress(wr_connector *c, wr_ingress *ing);

/* 1 once a registration was refused for good before any connection
 * registered (the process should exit 1), else 0. */
int wr_connector_failed(const wr_connector *c);

/* Frees in the order above and runs the loop until the closed handles are
 * released; the loop stays the caller's to close. Call after on_stopped
 * (or after the loop ended). NULL is a no-op. */
void wr_connector_free(wr_connector *c);

#endif
