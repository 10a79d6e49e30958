/* The connector's metrics server; see metrics.h. */
#include "connector/metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/addr.h"
#include "net/httpd.h"

#ifndef WR_VERSION
#define WR_VERSION "0.0.0"
#endif
#ifndef WR_GIT_REV
#define WR_GIT_REV "unknown"
#endif

struct wr_metrics_server {
  wr_httpd *httpd;
  wr_proxy *proxy;
  wr_supervisor *sup;
  wr_uuid connector_id;
  char addr[80];
  double start_time;
};

/* ---- /proc figures (Prometheus' process collector names) ------------------ */

typedef struct proc_stats {
  double cpu_seconds;
  double rss_bytes;
  double vsize_bytes;
  double open_fds;
} proc_stats;

static void read_proc(proc_stats *ps) {
  memset(ps, 0, sizeof(*ps));
  FILE *f = fopen("/proc/self/stat", "r");
  if (f) {
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    /* Fields after the ")" that ends the command name: state is field 3;
     * utime 14, stime 15, vsize 23, rss 24 (pages). */
    char *p = strrchr(buf, ')');
    if (p) {
      unsigned long utime = 0, stime = 0, vsize = 0;
      long rss = 0;
      if (sscanf(p + 2,
                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                 "%*u %lu %ld",
                 &utime, &stime, &vsize, &rss) == 4) {
        long hz = sysconf(_SC_CLK_TCK);
        ps->cpu_seconds = (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
        ps->vsize_bytes = (double)vsize;
        ps->rss_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
      }
    }
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.') ps->open_fds++;
    closedir(d);
    ps->open_fds--; /* the directory stream itself */
  }
}

static void metric(wr_buf *b, const char *name, const char *type, const char *help) {
  wr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render(wr_metrics_server *m, wr_buf *b) {
  const wr_proxy_stats *st = wr_proxy_get_stats(m->proxy);
  unsigned ready = m->sup ? wr_supervisor_ready(m->sup) : 0;
  proc_stats ps;
  read_proc(&ps);

  metric(b, "build_info", "gauge", "Build and version information");
  wr_buf_printf(b, "build_info{goversion=\"none\",revision=\"%s\",type=\"warren\",version=\"%s\"} 1\n",
                WR_GIT_REV, WR_VERSION);
  metric(b, "cloudflared_tunnel_ha_connections", "gauge", "Number of active ha connections");
  wr_buf_printf(b, "cloudflared_tunnel_ha_connections %u\n", ready);
  metric(b, "cloudflared_tunnel_total_requests", "counter",
         "Amount of requests proxied through all the tunnels");
  wr_buf_printf(b, "cloudflared_tunnel_total_requests %llu\n",
                (unsigned long long)st->total_requests);
  metric(b, "cloudflared_tunnel_concurrent_requests_per_tunnel", "gauge",
         "Concurrent requests proxied through each tunnel");
  wr_buf_printf(b, "cloudflared_tunnel_concurrent_requests_per_tunnel %llu\n",
                (unsigned long long)st->concurrent_requests);
  metric(b, "cloudflared_tunnel_request_errors", "counter",
         "Amount of errors due to proxying request");
  wr_buf_printf(b, "cloudflared_tunnel_request_errors %llu\n",
                (unsigned long long)st->request_errors);
  metric(b, "cloudflared_tunnel_response_by_code", "counter",
         "Count of responses by HTTP status code class");
  for (int c = 1; c <= 5; c++)
    if (st->responses_by_code[c])
      wr_buf_printf(b, "cloudflared_tunnel_response_by_code{status_code=\"%dxx\"} %llu\n", c,
                    (unsigned long long)st->responses_by_code[c]);
  metric(b, "cloudflared_tcp_active_sessions", "gauge", "Concurrent count of TCP sessions that are being proxied to any origin");
  wr_buf_printf(b, "cloudflared_tcp_active_sessions %llu\n", (unsigned long long)st->tcp_active);
  metric(b, "cloudflared_tcp_total_sessions", "counter", "Total count of TCP sessions that have been proxied to any origin");
  wr_buf_printf(b, "cloudflared_tcp_total_sessions %llu\n", (unsigned long long)st->tcp_total);
  metric(b, "cloudflared_tunnel_tunnel_register_success", "counter",
         "Count of successful tunnel registrations");
  wr_buf_printf(b, "cloudflared_tunnel_tunnel_register_success{rpcName=\"registerConnection\"} %llu\n",
                (unsigned long long)(m->sup ? wr_supervisor_registrations(m->sup) : 0));
  metric(b, "cloudflared_tunnel_server_locations", "gauge",
         "Where each tunnel is connected to. 1 means current location, 0 means previous locations.");
  for (unsigned i = 0; m->sup && i < wr_supervisor_nslots(m->sup); i++) {
    const char *loc = "";
    const char *id = wr_supervisor_conn_id(m->sup, i, &loc);
    if (*id)
      wr_buf_printf(b, "cloudflared_tunnel_server_locations{connection_id=\"%u\",edge_location=\"%s\"} 1\n",
                    i, loc);
  }
  metric(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
  wr_buf_printf(b, "process_cpu_seconds_total %.2f\n", ps.cpu_seconds);
  metric(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  wr_buf_printf(b, "process_resident_memory_bytes %.0f\n", ps.rss_bytes);
  metric(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  wr_buf_printf(b, "process_virtual_memory_bytes %.0f\n", ps.vsize_bytes);
  metric(b, "process_open_fds", "gauge", "Number of open file descriptors.");
  wr_buf_printf(b, "process_open_fds %.0f\n", ps.open_fds);
  metric(b, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
  wr_buf_printf(b, "process_start_time_seconds %.2f\n", m->start_time);
}

static void handle(wr_httpd *h, wr_httpd_req *req, void *user) {
  wr_metrics_server *m = user;
  (void)h;
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    wr_httpd_respond_simple(req, 405, "text/plain; charset=utf-8", "method not allowed\n", 19);
    return;
  }
  if (strcmp(req->path, "/healthcheck") == 0) {
    wr_httpd_respond_simple(req, 200, "text/plain; charset=utf-8", "OK\n", 3);
  } else if (strcmp(req->path, "/ready") == 0) {
    unsigned n = m->sup ? wr_supervisor_ready(m->sup) : 0;
    int status = n ? 200 : 503;
    char id[WR_UUID_STR_LEN + 1], body[160];
    wr_uuid_format(&m->connector_id, id);
    int len = snprintf(body, sizeof(body),
                       "{\"status\":%d,\"readyConnections\":%u,\"connectorId\":\"%s\"}\n", status,
                       n, id);
    wr_httpd_respond_simple(req, status, "application/json", body, (size_t)len);
  } else if (strcmp(req->path, "/metrics") == 0) {
    wr_buf b;
    wr_buf_init(&b, 1u << 20, NULL);
    render(m, &b);
    wr_httpd_respond_simple(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    wr_buf_free(&b);
  } else {
    wr_httpd_respond_simple(req, 404, "text/plain; charset=utf-8", "404 page not found\n", 19);
  }
}

/* "host:port" or "[v6]:port" to an address, resolving names such as
 * localhost (cloudflared's default is localhost:0), IPv4 first as Go. */
static int resolve(const char *s, struct sockaddr_storage *out, char *err, size_t errlen) {
  return wr_addr_resolve("--metrics", s, SOCK_STREAM, 1, out, 1, err, errlen) > 0 ? WR_OK
                                                                                  : WR_ERR_CONFIG;
}

int wr_metrics_server_start(uv_loop_t *loop, const char *addr, wr_proxy *proxy,
                            const wr_uuid *connector_id, wr_metrics_server **out, char *err,
                            size_t errlen) {
  struct sockaddr_storage ss, bound;
  *out = NULL;
  int rv = resolve(addr, &ss, err, errlen);
  if (rv != WR_OK) return rv;
  wr_metrics_server *m = wr_xcalloc(1, sizeof(*m));
  m->proxy = proxy;
  m->connector_id = *connector_id;
  m->start_time = (double)time(NULL);
  wr_httpd_config hc;
  memset(&hc, 0, sizeof(hc));
  hc.max_body = 4096;
  rv = wr_httpd_listen(loop, (const struct sockaddr *)&ss, &hc, handle, m, &m->httpd);
  if (rv != WR_OK) {
    snprintf(err, errlen, "cannot listen on %s for metrics", addr);
    free(m);
    return WR_ERR_IO;
  }
  if (wr_httpd_addr(m->httpd, &bound) == WR_OK) wr_addr_format(&bound, m->addr, sizeof(m->addr));
  wr_info("Starting metrics server on %s/metrics", m->addr);
  *out = m;
  return WR_OK;
}

void wr_metrics_server_set_supervisor(wr_metrics_server *m, wr_supervisor *sup) { m->sup = sup; }

const char *wr_metrics_server_addr(const wr_metrics_server *m) { return m->addr; }

void wr_metrics_server_free(wr_metrics_server *m) {
  if (!m) return;
  wr_httpd_free(m->httpd);
  free(m);
}
