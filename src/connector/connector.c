/* The connector process's owner; see connector.h for the order of things. */
#include "connector/connector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/datagram_mux.h"
#include "connector/icmp_proxy.h"
#include "connector/metrics.h"
#include "connector/proxy.h"
#include "connector/registration.h"
#include "connector/remote_config.h"
#include "connector/supervisor.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/idle_trim.h"

/* Close callbacks to wait for in wr_connector_free: a bound, not a timing. */
#define CLOSE_RUNS 1000

struct wr_connector {
  uv_loop_t *loop;
  wr_uuid connector_id;
  uint64_t grace_ms;
  wr_proxy *proxy;
  wr_dgram_mux *mux;
  wr_remote_config *remote;
  wr_icmp_proxy *icmp; /* NULL: a bad --icmpv4-src/--icmpv6-src, as cloudflared runs on without */
  wr_metrics_server *metrics;
  wr_supervisor *sup;
  wr_idle_trim *trim; /* freed heap back to the kernel when idle */
  const wr_ingress *first_ingress; /* the caller's; every later one is ours */
  wr_ingress *current;             /* ours, or NULL while the first is current */
  int failed;
  void (*on_stopped)(void *user);
  void *user;
};

static void log_rules(const wr_ingress *ing) {
  for (size_t i = 0; i < ing->n_rules; i++) {
    const wr_ingress_rule *rule = &ing->rules[i];
    wr_info("ingress rule %zu: hostname=%s path=%s service=%s", i,
            rule->hostname ? rule->hostname : "*", rule->path ? rule->path : "",
            rule->service.display);
  }
}

/* cloudflared's start-up lines, before anything is dialled. */
static void log_start(const wr_connector *c, const wr_connector_options *o) {
  char idstr[WR_UUID_STR_LEN + 1], tid[WR_UUID_STR_LEN + 1];
  wr_uuid_format(&c->connector_id, idstr);
  wr_uuid_format(&o->edge.cred->tunnel_id, tid);
  wr_info("Starting tunnel tunnelID=%s", tid);
  wr_info("Version %s", WR_VERSION);
  wr_info("Generated Connector ID: %s", idstr);
  log_rules(o->ingress);
}

/* Registration refused for good before anything ever registered:
 * cloudflared exits then, printing the edge's reason. */
static void on_fatal(void *user, const char *why) {
  wr_connector *c = user;
  wr_error("Couldn't start tunnel: %s", why);
  c->failed = 1;
  wr_supervisor_shutdown(c->sup, 0);
}

static void on_stopped(void *user) {
  wr_connector *c = user;
  c->on_stopped(c->user);
}

static int start_supervisor(wr_connector *c, const wr_connector_options *o, char *err,
                            size_t errlen) {
  wr_supervisor_config sc;
  memset(&sc, 0, sizeof(sc));
  sc.loop = c->loop;
  sc.edge = &o->edge;
  sc.connector_id = c->connector_id;
  /* management_logs only with the management service that serves it. */
  const char *feats[WR_REGISTRATION_MAX_EXTRA_FEATURES];
  size_t nf = 0;
  for (size_t i = 0; i < o->nfeatures && nf + 1 < WR_REGISTRATION_MAX_EXTRA_FEATURES; i++)
    feats[nf++] = o->features[i];
  if (o->management_hostname && o->management_hostname[0])
    feats[nf++] = WR_FEATURE_MANAGEMENT_LOGS;
  sc.extra_features = feats;
  sc.nextra_features = nf;
  sc.proxy = c->proxy;
  sc.mux = c->mux;
  sc.on_fatal = on_fatal;
  sc.on_stopped = on_stopped;
  sc.user = c;
  return wr_supervisor_start(&sc, &c->sup, err, errlen);
}

static void remote_apply(void *user, wr_ingress *ing) { wr_connector_set_ingress(user, ing); }

/* What the edge's RPC streams reach: UDP sessions and datagrams (the
 * multiplexer) and remote configuration. */
static int start_rpc_services(wr_connector *c, const wr_connector_options *o) {
  wr_rpc_services svc;
  wr_dgram_mux_config mc;
  int rv;
  memset(&mc, 0, sizeof(mc));
  mc.loop = c->loop;
  mc.proxy = c->proxy;
  mc.icmp = c->icmp;
  /* As cloudflared: --features support_datagram_v3_2 picks v3 for every
   * connection (the feature goes out with the registration). */
  mc.v3 = wr_registration_datagram_v3(o->features, o->nfeatures);
  if (mc.v3) wr_info("Using datagram v3 for UDP and ICMP (support_datagram_v3_2)");
  if ((rv = wr_dgram_mux_new(&mc, &c->mux)) != WR_OK) return rv;
  c->remote = wr_remote_config_new(remote_apply, c);
  memset(&svc, 0, sizeof(svc));
  wr_dgram_mux_services(c->mux, &svc);
  wr_remote_config_services(c->remote, &svc);
  wr_proxy_set_services(c->proxy, &svc);
  return WR_OK;
}

/* cloudflared builds its ICMP router at start-up whatever warp-routing
 * says; a failure only disables ICMP ("ICMP proxy feature is disabled"). */
static void start_icmp(wr_connector *c, const wr_connector_options *o) {
  wr_icmp_proxy_config ic;
  memset(&ic, 0, sizeof(ic));
  ic.loop = c->loop;
  ic.src4 = o->icmpv4_src;
  ic.src6 = o->icmpv6_src;
  int rv = wr_icmp_proxy_new(&ic, &c->icmp);
  if (rv != WR_OK)
    wr_warn("ICMP proxy feature is disabled: %s",
            rv == WR_ERR_INVAL ? "--icmpv4-src / --icmpv6-src is not an IPv4 / IPv6 address"
                               : wr_strerror(rv));
}

/* The proxy no longer uses a replaced set of rules. */
static void ingress_unused(void *user, const wr_ingress *ing) {
  wr_connector *c = user;
  if (ing != c->first_ingress && ing != c->current) wr_ingress_free((wr_ingress *)ing);
}

void wr_connector_set_ingress(wr_connector *c, wr_ingress *ing) {
  /* c->current first: a replaced set that no stream uses is freed from
   * inside wr_proxy_set_ingress (ingress_unused), and must not be current. */
  c->current = ing;
  wr_proxy_set_ingress(c->proxy, ing);
  log_rules(ing);
}

int wr_connector_new(uv_loop_t *loop, const wr_connector_options *o, wr_connector **out,
                     char *err, size_t errlen) {
  int rv;
  *out = NULL;
  if (errlen) err[0] = '\0';
  if (!loop || !o || !o->edge.cred || !o->ingress || !o->on_stopped) return WR_ERR_INVAL;
  wr_connector *c = wr_xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->grace_ms = o->grace_ms;
  c->on_stopped = o->on_stopped;
  c->user = o->user;
  wr_uuid_random(&c->connector_id);
  log_start(c, o);

  wr_proxy_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.loop = loop;
  pc.ingress = o->ingress;
  pc.connector_id = c->connector_id;
  pc.tag_names = o->tag_names;
  pc.tag_values = o->tag_values;
  pc.ntags = o->ntags;
  pc.ingress_unused = ingress_unused;
  pc.ingress_user = c;
  pc.management_hostname = o->management_hostname;
  pc.label = o->label;
  c->first_ingress = o->ingress;
  if ((rv = wr_proxy_new(&pc, &c->proxy)) != WR_OK) {
    snprintf(err, errlen, "cannot start the proxy");
    goto fail;
  }
  start_icmp(c, o);
  if ((rv = start_rpc_services(c, o)) != WR_OK) {
    snprintf(err, errlen, "cannot start the datagram multiplexer");
    goto fail;
  }
  /* Before the supervisor: /ready answers 503 while connecting. */
  if (o->metrics && *o->metrics &&
      (rv = wr_metrics_server_start(loop, o->metrics, c->proxy, &c->connector_id, &c->metrics, err,
                                    errlen)) != WR_OK)
    goto fail;
  if ((rv = start_supervisor(c, o, err, errlen)) != WR_OK) goto fail;
  c->trim = wr_idle_trim_start(loop);
  if (c->metrics) {
    wr_metrics_server_set_supervisor(c->metrics, c->sup);
    wr_metrics_server_set_datagrams(c->metrics, c->mux, c->icmp);
  }
  *out = c;
  return WR_OK;

fail:
  wr_connector_free(c);
  return rv;
}

void wr_connector_shutdown(wr_connector *c) { wr_supervisor_shutdown(c->sup, c->grace_ms); }

int wr_connector_failed(const wr_connector *c) { return c->failed; }

void wr_connector_free(wr_connector *c) {
  if (!c) return;
  if (c->metrics) {
    wr_metrics_server_set_supervisor(c->metrics, NULL);
    wr_metrics_server_set_datagrams(c->metrics, NULL, NULL);
  }
  if (c->sup) wr_supervisor_free(c->sup);
  wr_metrics_server_free(c->metrics);
  wr_dgram_mux_free(c->mux);
  wr_proxy_free(c->proxy);
  wr_icmp_proxy_free(c->icmp);
  wr_idle_trim_free(c->trim);
  /* Let every close callback run (sockets, timers, endpoints). */
  for (int i = 0; i < CLOSE_RUNS && uv_run(c->loop, UV_RUN_NOWAIT); i++) {
  }
  wr_remote_config_free(c->remote);
  /* The proxy released every replaced set on the way (ingress_unused). */
  wr_ingress_free(c->current);
  free(c);
}
