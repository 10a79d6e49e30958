/* The --metrics status endpoints; see metricsd.h. */
#include "net/metricsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/prom.h"
#include "net/addr.h"
#include "net/httpd.h"

/* A scrape of a busy edge is some tens of KiB; past this the text is cut
 * (the renderers bound their labelled series well below it). */
#define METRICS_MAX (1u << 20)

struct wr_metricsd {
  wr_httpd *httpd;
  wr_metricsd_handlers h;
  char addr[80];
};

void wr_metricsd_ready_done(wr_httpd_req *req, int status, const wr_buf *body) {
  wr_httpd_respond_simple(req, status, "application/json", body->data, body->len);
}

static void handle(wr_httpd *h, wr_httpd_req *req, void *user) {
  wr_metricsd *m = user;
  static const char text[] = "text/plain; charset=utf-8";
  (void)h;
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    wr_httpd_respond_simple(req, 405, text, "method not allowed\n", 19);
  } else if (strcmp(req->path, "/healthcheck") == 0) {
    wr_httpd_respond_simple(req, 200, text, "OK\n", 3);
  } else if (strcmp(req->path, "/ready") == 0 && m->h.ready_start) {
    m->h.ready_start(m->h.user, req);
  } else if (strcmp(req->path, "/ready") == 0) {
    wr_buf b;
    wr_buf_init(&b, WR_METRICSD_READY_MAX, NULL);
    int status = m->h.ready(m->h.user, &b);
    wr_metricsd_ready_done(req, status, &b);
    wr_buf_free(&b);
  } else if (strcmp(req->path, "/metrics") == 0) {
    wr_buf b;
    wr_buf_init(&b, METRICS_MAX, NULL);
    m->h.render(m->h.user, &b);
    wr_httpd_respond_simple(req, 200, WR_PROM_CONTENT_TYPE, b.data, b.len);
    wr_buf_free(&b);
  } else {
    wr_httpd_respond_simple(req, 404, text, "404 page not found\n", 19);
  }
}

int wr_metricsd_start(uv_loop_t *loop, const char *addr, const wr_metricsd_handlers *h,
                      wr_metricsd **out, char *err, size_t errlen) {
  struct sockaddr_storage ss, bound;
  *out = NULL;
  /* Names such as localhost are fine here (cloudflared's default is
   * localhost:0); IPv4 first, as Go resolves them. */
  if (wr_addr_resolve("--metrics", addr, SOCK_STREAM, 1, &ss, 1, err, errlen) <= 0)
    return WR_ERR_CONFIG;
  wr_metricsd *m = wr_xcalloc(1, sizeof(*m));
  m->h = *h;
  wr_httpd_config hc;
  memset(&hc, 0, sizeof(hc));
  /* Scrapes and probes send no bodies. */
  hc.max_body = 4096;
  if (wr_httpd_listen(loop, (const struct sockaddr *)&ss, &hc, handle, m, &m->httpd) != WR_OK) {
    snprintf(err, errlen, "cannot listen on %s for metrics", addr);
    free(m);
    return WR_ERR_IO;
  }
  if (wr_httpd_addr(m->httpd, &bound) == WR_OK) wr_addr_format(&bound, m->addr, sizeof(m->addr));
  wr_info("Starting metrics server on %s/metrics", m->addr);
  *out = m;
  return WR_OK;
}

const char *wr_metricsd_addr(const wr_metricsd *m) { return m->addr; }

void wr_metricsd_free(wr_metricsd *m) {
  if (!m) return;
  wr_httpd_free(m->httpd);
  free(m);
}
