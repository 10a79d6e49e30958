/* ACME certificates: scans on the loop, orders on a worker thread; see
 * acme.h. The order's protocol steps (client side of RFC 8555 §7) are in
 * acme_order.c; this file owns the schedule, the challenge table and the
 * files. */
#include "edge/acme_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "lib/err.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strpack.h"
#include "net/http_client.h"
#include "proto/tls_hello.h"

#define DEF_SCAN_MS 60000u
#define DEF_RETRY_MS 60000u
#define DEF_POLL_MS 1000u
#define MAX_BACKOFF_S (6 * 3600)
#define MAX_PEM (256u * 1024u)

/* ---- challenge table (any thread) ---------------------------------------------------- */

int wr_acme_http01(wr_acme *a, const char *token, char *out, size_t cap) {
  int rv = WR_ERR_NOTFOUND;
  if (!a || !wr_acme_token_valid(token)) return rv;
  pthread_mutex_lock(&a->mu);
  for (size_t i = 0; i < WR__ACME_MAX_CHALL; i++) {
    wr__acme_chall *c = &a->chall[i];
    if (c->used && !c->dns && strcmp(c->key, token) == 0) {
      snprintf(out, cap, "%s", c->value);
      a->stats.challenges++;
      rv = WR_OK;
      break;
    }
  }
  pthread_mutex_unlock(&a->mu);
  return rv;
}

size_t wr_acme_dns01(wr_acme *a, const char *name, char (*out)[WR_ACME_THUMB_LEN + 1],
                     size_t max) {
  size_t n = 0;
  if (!a) return 0;
  pthread_mutex_lock(&a->mu);
  for (size_t i = 0; i < WR__ACME_MAX_CHALL && n < max; i++) {
    wr__acme_chall *c = &a->chall[i];
    if (c->used && c->dns && strcmp(c->key, name) == 0) {
      snprintf(out[n++], WR_ACME_THUMB_LEN + 1, "%s", c->value);
      a->stats.challenges++;
    }
  }
  pthread_mutex_unlock(&a->mu);
  return n;
}

int wr__acme_publish(wr_acme *a, int dns, const char *key, const char *value) {
  int rv = WR_ERR_LIMIT;
  pthread_mutex_lock(&a->mu);
  for (size_t i = 0; i < WR__ACME_MAX_CHALL; i++) {
    wr__acme_chall *c = &a->chall[i];
    if (c->used) continue;
    c->used = 1;
    c->dns = dns;
    snprintf(c->key, sizeof(c->key), "%s", key);
    snprintf(c->value, sizeof(c->value), "%s", value);
    rv = WR_OK;
    break;
  }
  pthread_mutex_unlock(&a->mu);
  return rv;
}

void wr__acme_withdraw(wr_acme *a, const char *key) {
  pthread_mutex_lock(&a->mu);
  for (size_t i = 0; i < WR__ACME_MAX_CHALL; i++)
    if (a->chall[i].used && strcmp(a->chall[i].key, key) == 0) a->chall[i].used = 0;
  pthread_mutex_unlock(&a->mu);
}

const wr_acme_stats *wr_acme_get_stats(const wr_acme *a) { return &a->stats; }

/* ---- files ------------------------------------------------------------------------------ */

void wr__acme_cert_paths(const char *data_dir, const char *host, char *cp, char *kp, size_t n) {
  snprintf(cp, n, "%s/" WR_CERTS_ACME_DIR "/%s.pem", data_dir, host);
  snprintf(kp, n, "%s/" WR_CERTS_ACME_DIR "/%s.key", data_dir, host);
}

/* The validity of the first certificate of |pem|. */
int wr__acme_validity(const char *pem, int64_t *not_before, int64_t *not_after) {
  gnutls_x509_crt_t crt;
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
  if (gnutls_x509_crt_init(&crt) < 0) return WR_ERR_NOMEM;
  int rv = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0 ? WR_ERR_CRYPTO : WR_OK;
  if (rv == WR_OK) {
    *not_before = gnutls_x509_crt_get_activation_time(crt);
    *not_after = gnutls_x509_crt_get_expiration_time(crt);
  }
  gnutls_x509_crt_deinit(crt);
  return rv;
}

/* ---- the scan: routed names and their certificates (store thread) ------------------- */

typedef struct scan_ent {
  char host[WR_STORE_HOST_MAX + 1];
  int64_t not_before, not_after; /* 0: no certificate on disk */
} scan_ent;

typedef struct scan_job {
  wr_acme *a; /* NULL once the manager is gone */
  char *data_dir;
  int rv;
  scan_ent *ents;
  size_t n;
} scan_job;

static void scan_run(wr_store *s, void *arg) {
  scan_job *j = arg;
  wr_route *routes = NULL;
  size_t nr = 0;
  j->rv = wr_store_route_list(s, NULL, NULL, &routes, &nr);
  if (j->rv != WR_OK) return;
  j->ents = wr_xcalloc(nr ? nr : 1, sizeof(*j->ents));
  for (size_t i = 0; i < nr; i++) {
    const char *h = routes[i].hostname;
    if (!wr_tls_name_valid(h, 0)) continue; /* wildcard routes: the edge CA's */
    scan_ent *e = &j->ents[j->n++];
    snprintf(e->host, sizeof(e->host), "%s", h);
    char cp[4400], kp[4400], *pem = NULL;
    wr__acme_cert_paths(j->data_dir, h, cp, kp, sizeof(cp));
    if (wr_file_exists(kp) && wr_file_read(cp, MAX_PEM, &pem, NULL) == WR_OK)
      wr__acme_validity(pem, &e->not_before, &e->not_after);
    free(pem);
  }
  free(routes);
}

static wr__acme_host *host_state(wr_acme *a, const char *host) {
  for (size_t i = 0; i < a->n_hosts; i++)
    if (strcmp(a->hosts[i].name, host) == 0) return &a->hosts[i];
  a->hosts = wr_xrealloc(a->hosts, (a->n_hosts + 1) * sizeof(*a->hosts));
  wr__acme_host *h = &a->hosts[a->n_hosts++];
  memset(h, 0, sizeof(*h));
  snprintf(h->name, sizeof(h->name), "%s", host);
  return h;
}

/* 1 if a certificate valid over [nb, na] should be replaced at |now|: none,
 * or 2/3 of its lifetime gone (30 of Let's Encrypt's 90 days left). */
static int needs_order(int64_t nb, int64_t na, int64_t now) {
  if (!na) return 1;
  return now >= nb + (na - nb) * 2 / 3;
}

static void start_order(wr_acme *a, const char *host);

static void scan_done(void *arg, int status) {
  scan_job *j = arg;
  wr_acme *a = j->a;
  if (a) {
    a->scan = NULL;
    if (status != WR_OK || j->rv != WR_OK) {
      wr_warn("ACME: cannot list the routed hostnames; trying again at the next scan");
    } else {
      int64_t now = time(NULL);
      for (size_t i = 0; i < j->n && !a->job; i++) {
        const scan_ent *e = &j->ents[i];
        if (!needs_order(e->not_before, e->not_after, now)) continue;
        wr__acme_host *h = host_state(a, e->host);
        if (h->next_try > now) continue;
        start_order(a, e->host);
      }
    }
  }
  free(j->ents);
  free(j->data_dir);
  free(j);
}

static void scan_tick(uv_timer_t *t) {
  wr_acme *a = t->data;
  if (a->job || a->scan || a->closing) return; /* one order or scan at a time */
  scan_job *j = wr_xcalloc(1, sizeof(*j));
  j->a = a;
  j->data_dir = wr_xstrdup(a->data_dir);
  if (!a->async) {
    scan_run(a->store, j);
    scan_done(j, WR_OK);
    return;
  }
  if (wr_store_async_submit(a->async, scan_run, scan_done, j) != WR_OK) {
    free(j->data_dir);
    free(j);
    return;
  }
  a->scan = j;
}

/* ---- orders (worker thread) ------------------------------------------------------------ */

static void order_work(uv_work_t *req) {
  wr__acme_job *j = req->data;
  j->rv = wr__acme_order(j->a, j);
}

/* Logs the outcome and returns when the next scan should run (ms). */
static uint64_t order_outcome(wr_acme *a, const wr__acme_job *j) {
  wr__acme_host *h = host_state(a, j->host);
  if (j->rv == WR_OK) {
    char until[32];
    time_t na = (time_t)j->not_after;
    struct tm tm;
    strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&na, &tm));
    a->stats.issued++;
    h->failures = 0;
    h->next_try = 0;
    wr_info("ACME: obtained a certificate for %s from %s (valid until %s)", j->host, a->directory,
            until);
    return 0; /* other names may be waiting */
  }
  int64_t wait_ms = (int64_t)a->retry_ms;
  for (unsigned i = 0; i < h->failures && wait_ms < MAX_BACKOFF_S * 1000LL; i++) wait_ms *= 2;
  if (wait_ms > MAX_BACKOFF_S * 1000LL) wait_ms = MAX_BACKOFF_S * 1000LL;
  h->failures++;
  h->next_try = time(NULL) + (wait_ms + 999) / 1000;
  a->stats.failed++;
  wr_warn("ACME: no certificate for %s: %s (attempt %u; next in %" PRId64 " s)", j->host,
          j->err[0] ? j->err : wr_strerror(j->rv), h->failures, (wait_ms + 999) / 1000);
  return (uint64_t)wait_ms;
}

static void order_after(uv_work_t *req, int status) {
  wr__acme_job *j = req->data;
  wr_acme *a = j->a;
  a->job = NULL;
  if (status != 0 && j->rv == WR_OK) j->rv = WR_ERR_INTERNAL;
  if (!a->closing) {
    uint64_t next = order_outcome(a, j);
    if (next < a->scan_ms) uv_timer_start(&a->timer, scan_tick, next, a->scan_ms);
  }
  free(j);
  wr_owner_drop(&a->owner); /* the order; may free |a| */
}

static void start_order(wr_acme *a, const char *host) {
  wr__acme_job *j = wr_xcalloc(1, sizeof(*j));
  j->a = a;
  j->req.data = j;
  snprintf(j->host, sizeof(j->host), "%s", host);
  if (uv_queue_work(a->loop, &j->req, order_work, order_after) != 0) {
    free(j);
    return;
  }
  wr_info("ACME: ordering a certificate for %s (%s)", host, a->dns01 ? "dns-01" : "http-01");
  a->job = j;
  wr_owner_hold(&a->owner);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void acme_release(wr_owner *o);

int wr_acme_start(uv_loop_t *loop, const wr_acme_config *cfg, wr_acme **out, char *err,
                  size_t errlen) {
  wr_url u;
  if (!cfg->data_dir || !cfg->directory || wr_url_parse(cfg->directory, &u) != WR_OK) {
    snprintf(err, errlen, "--acme-directory needs an http:// or https:// URL");
    return WR_ERR_CONFIG;
  }
  if (cfg->ca_file && *cfg->ca_file && !wr_file_exists(cfg->ca_file)) {
    snprintf(err, errlen, "--acme-ca-file %s: no such file", cfg->ca_file);
    return WR_ERR_CONFIG;
  }
  if (cfg->email && (!*cfg->email || strchr(cfg->email, '@') == NULL || strpbrk(cfg->email, " <>\"\r\n"))) {
    snprintf(err, errlen, "--acme-email \"%s\" is not an email address", cfg->email);
    return WR_ERR_CONFIG;
  }
  wr_acme *a = wr_xcalloc(1, sizeof(*a));
  a->loop = loop;
  const wr_strcopy strs[] = {{cfg->data_dir, &a->data_dir},
                             {cfg->directory, &a->directory},
                             {cfg->email, &a->email},
                             {cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL, &a->ca_file}};
  a->strs = wr_strpack(strs, sizeof(strs) / sizeof(strs[0]));
  a->dns01 = cfg->dns01;
  a->store = cfg->store;
  a->async = cfg->async;
  a->retry_ms = cfg->retry_ms ? cfg->retry_ms : DEF_RETRY_MS;
  a->poll_ms = cfg->poll_ms ? cfg->poll_ms : DEF_POLL_MS;
  pthread_mutex_init(&a->mu, NULL);
  a->scan_ms = cfg->scan_ms ? cfg->scan_ms : DEF_SCAN_MS;
  wr_owner_init(&a->owner, acme_release);
  wr_owner_timer_init(&a->owner, loop, &a->timer, a);
  uv_timer_start(&a->timer, scan_tick, 0, a->scan_ms);
  uv_unref((uv_handle_t *)&a->timer);
  *out = a;
  return WR_OK;
}

static void acme_release(wr_owner *o) {
  wr_acme *a = WR_OWNER_OBJ(o, wr_acme, owner);
  if (a->scan) a->scan->a = NULL;
  wr__acme_worker_reset(a);
  pthread_mutex_destroy(&a->mu);
  free(a->hosts);
  free(a->strs);
  free(a);
}

void wr_acme_free(wr_acme *a) {
  if (!a || a->closing) return;
  a->closing = 1;
  atomic_store(&a->cancel, 1);
  wr_owner_close_handle(&a->owner, (uv_handle_t *)&a->timer);
  wr_owner_close(&a->owner); /* frees |a| once the timer closed and the order ended */
}
