/* Certificates issued by the edge CA (certs.h): the in-memory table, the
 * queue of names to sign and the signing jobs on libuv's worker pool, and
 * the sweep that prepares every routed hostname.
 *
 * A name is in at most one job (c->pending, by name) from the moment it is
 * queued until its job is back; the job only signs (the CA pair is read,
 * never written, while jobs run) and everything else happens on the loop
 * in job_done. A failed issuance leaves a placeholder (creds NULL) so that
 * a waiting visitor is refused instead of asking again at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge/certs_int.h"
#include "lib/err.h"
#include "lib/hash.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "proto/tls_hello.h"

#define QUEUE_MAX (ISSUED_MAX / 2) /* names queued by the sweep or by routes */
#define RETRY_S 60                 /* a name that failed is not signed again before */

struct wr__issue_job {
  uv_work_t work;
  wr_certs *c;
  wr__issue_job *next;  /* the queue */
  wr__issue_job *hnext; /* c->pending's chain */
  int running, urgent;
  char name[WR_CERTS_NAME_MAX + 1];
  /* results, written on the worker */
  wr_tls_creds *creds;
  int rv;
  char err[256];
};

struct wr__route_sweep {
  wr_certs *c; /* NULL once |c| went away */
  wr_store *store;
  wr_store_async *async;
  int again; /* the routes changed while this read ran: read them once more */
  int rv;
  wr_route *routes;
  size_t n;
};

static unsigned bucket(const char *name) { return wr_hash_str(name) % ISSUED_BUCKETS; }

/* ---- the table ------------------------------------------------------------------ */

static void drop_issued(wr_certs *c) {
  for (size_t i = 0; i < ISSUED_BUCKETS; i++) {
    wr_cert *r = c->issued[i];
    while (r) {
      wr_cert *n = r->next;
      wr_cert_release(r);
      r = n;
    }
    c->issued[i] = NULL;
  }
  c->n_issued = 0;
}

/* The entry of |name| (also a placeholder), or NULL. */
static wr_cert *issued_find(wr_certs *c, const char *name) {
  for (wr_cert *r = c->issued[bucket(name)]; r; r = r->next)
    if (strcmp(r->names[0], name) == 0) return r;
  return NULL;
}

static void issued_remove(wr_certs *c, const char *name) {
  for (wr_cert **pp = &c->issued[bucket(name)]; *pp; pp = &(*pp)->next) {
    wr_cert *r = *pp;
    if (strcmp(r->names[0], name) != 0) continue;
    *pp = r->next;
    c->n_issued--;
    wr_cert_release(r);
    return;
  }
}

/* Puts |r| (holding the table's reference) in place of |name|'s entry. A
 * full table starts again empty: the names in use are signed again. */
static void issued_put(wr_certs *c, wr_cert *r) {
  issued_remove(c, r->names[0]);
  if (c->n_issued >= ISSUED_MAX) drop_issued(c);
  unsigned b = bucket(r->names[0]);
  r->next = c->issued[b];
  c->issued[b] = r;
  c->n_issued++;
}

static wr_cert *entry_new(const char *name, wr_tls_creds *creds) {
  wr_cert *r = wr_xcalloc(1, sizeof(*r));
  r->creds = creds;
  r->refs = 1;
  r->made = time(NULL);
  r->n_names = 1;
  snprintf(r->names[0], sizeof(r->names[0]), "%s", name);
  return r;
}

/* Signs a leaf for |name| with |c|'s CA. Runs on either thread (reads
 * nothing |c| changes): no logging. */
static int sign(const wr_certs *c, const char *name, wr_tls_creds **out, char *err, size_t errlen) {
  const char *dns[1] = {name};
  if (c->delay_ms) usleep(c->delay_ms * 1000u); /* tests: a slow signature, wherever it runs */
  wr_pki_req req = {.common_name = name, .dns = dns, .n_dns = 1, .days = ISSUED_DAYS};
  wr_pem_pair pair = {NULL, NULL};
  int rv = wr_pki_issue(&c->ca, &req, &pair, err, errlen);
  if (rv == WR_OK) rv = wr_tls_creds_server_mem(pair.cert, pair.key, out, err, errlen);
  wr_pem_pair_free(&pair);
  return rv;
}

wr_cert *wr_certs_issued(wr_certs *c, const char *host) {
  if (!wr_tls_name_valid(host, 0)) return NULL;
  wr_cert *r = issued_find(c, host);
  if (r && r->creds && time(NULL) - r->made < ISSUED_RENEW_S) return wr__cert_ref(r);
  char err[256];
  wr_tls_creds *creds = NULL;
  if (sign(c, host, &creds, err, sizeof(err)) != WR_OK) {
    wr_warn("cannot issue a certificate for %s: %s", host, err);
    return NULL;
  }
  wr_debug("issued a certificate for %s from the edge CA", host);
  r = entry_new(host, creds);
  issued_put(c, r);
  return wr__cert_ref(r);
}

/* ---- the queue and the signing jobs ------------------------------------------------ */

static wr__issue_job *pending_find(wr_certs *c, const char *name) {
  for (wr__issue_job *j = c->pending[bucket(name)]; j; j = j->hnext)
    if (strcmp(j->name, name) == 0) return j;
  return NULL;
}

static void pending_remove(wr_certs *c, wr__issue_job *j) {
  for (wr__issue_job **pp = &c->pending[bucket(j->name)]; *pp; pp = &(*pp)->hnext)
    if (*pp == j) {
      *pp = j->hnext;
      return;
    }
}

static wr__issue_job *queue_pop(wr_certs *c) {
  wr__issue_job *j = c->qhead;
  if (!j) return NULL;
  WR_FIFO_POP(c->qhead, c->qtail, next);
  j->next = NULL;
  c->queued--;
  return j;
}

static void queue_push(wr_certs *c, wr__issue_job *j, int front) {
  if (front) {
    j->next = c->qhead;
    c->qhead = j;
    if (!c->qtail) c->qtail = j;
  } else {
    WR_FIFO_PUSH(c->qhead, c->qtail, j, next);
  }
  c->queued++;
}

/* Moves queued |j| to the front. */
static void queue_promote(wr_certs *c, wr__issue_job *j) {
  if (c->qhead == j) return;
  for (wr__issue_job *p = c->qhead; p; p = p->next)
    if (p->next == j) {
      p->next = j->next;
      if (c->qtail == j) c->qtail = p;
      c->queued--;
      queue_push(c, j, 1);
      return;
    }
}

static void notify(wr_certs *c) { wr_watchers_notify(c->watchers, WR__CERTS_WATCHERS); }

static void job_work(uv_work_t *w) {
  wr__issue_job *j = w->data;
  j->rv = sign(j->c, j->name, &j->creds, j->err, sizeof(j->err));
}

static void pump(wr_certs *c);

/* On the loop: the job's certificate (or its failure) goes into the table. */
static void job_finish(wr_certs *c, wr__issue_job *j) {
  pending_remove(c, j);
  if (j->rv == WR_OK) {
    c->stats.signed_ok++;
    wr_debug("issued a certificate for %s from the edge CA%s", j->name,
             j->urgent ? " (a visitor waited)" : "");
    issued_put(c, entry_new(j->name, j->creds));
    j->creds = NULL;
  } else {
    c->stats.sign_failed++;
    wr_warn("cannot issue a certificate for %s: %s", j->name, j->err);
    wr_cert *old = issued_find(c, j->name);
    if (!old || !old->creds) issued_put(c, entry_new(j->name, NULL)); /* else: the old one serves */
  }
  wr_tls_creds_free(j->creds);
  free(j);
}

static void job_done(uv_work_t *w, int status) {
  wr__issue_job *j = w->data;
  wr_certs *c = j->c;
  c->running--;
  if (status != 0 && j->rv == WR_OK) {
    j->rv = WR_ERR_INTERNAL;
    snprintf(j->err, sizeof(j->err), "the job was cancelled");
  }
  if (c->freeing) {
    wr_tls_creds_free(j->creds);
    free(j);
    if (!c->running) wr__certs_destroy(c);
    return;
  }
  job_finish(c, j);
  pump(c);
  notify(c);
}

/* Starts queued jobs while fewer than WR__CERTS_SIGNERS run. */
static void pump(wr_certs *c) {
  wr__issue_job *j;
  while (c->running < WR__CERTS_SIGNERS && (j = queue_pop(c))) {
    j->running = 1;
    j->work.data = j;
    if (uv_queue_work(c->loop, &j->work, job_work, job_done) != 0) {
      j->rv = WR_ERR_INTERNAL;
      snprintf(j->err, sizeof(j->err), "the worker pool refused the job");
      job_finish(c, j);
      continue;
    }
    c->running++;
  }
}

void wr_certs_start(wr_certs *c, uv_loop_t *loop) { c->loop = loop; }

int wr_certs_prepare(wr_certs *c, const char *name, int urgent) {
  if (!c->loop || !wr_tls_name_valid(name, 1)) return WR_ERR_INVAL;
  time_t now = time(NULL);
  wr_cert *r = issued_find(c, name);
  wr__issue_job *j = pending_find(c, name);
  if (j) {
    if (urgent && !j->running) queue_promote(c, j);
    if (urgent && !j->urgent) c->stats.urgent++;
    j->urgent |= urgent;
    return WR_AGAIN;
  }
  if (r && r->creds && now - r->made < ISSUED_RENEW_S) return WR_OK;
  if (r && !r->creds && now - r->made < RETRY_S) return WR_ERR_CRYPTO;
  if (!urgent && c->queued >= QUEUE_MAX) return WR_ERR_LIMIT;
  j = wr_xcalloc(1, sizeof(*j));
  j->c = c;
  j->urgent = urgent;
  c->stats.urgent += (uint64_t)urgent;
  snprintf(j->name, sizeof(j->name), "%s", name);
  unsigned b = bucket(name);
  j->hnext = c->pending[b];
  c->pending[b] = j;
  queue_push(c, j, urgent);
  pump(c);
  return WR_AGAIN;
}

wr_cert *wr_certs_issued_cached(wr_certs *c, const char *host) {
  if (!wr_tls_name_valid(host, 0)) return NULL;
  wr_cert *r = issued_find(c, host);
  if (!r || !r->creds) {
    const char *dot = strchr(host, '.');
    char wild[WR_CERTS_NAME_MAX + 2];
    if (!dot || !strchr(dot + 1, '.')) return NULL; /* "*.tld" is never issued */
    snprintf(wild, sizeof(wild), "*%s", dot);
    r = issued_find(c, wild);
    if (!r || !r->creds) return NULL;
  }
  if (time(NULL) - r->made >= ISSUED_RENEW_S && c->loop) {
    wr_cert *keep = wr__cert_ref(r); /* the renewal's job may replace it meanwhile */
    wr_certs_prepare(c, r->names[0], 0);
    return keep;
  }
  return wr__cert_ref(r);
}

int wr_certs_watch(wr_certs *c, void (*cb)(void *user), void *user) {
  return wr_watchers_add(c->watchers, WR__CERTS_WATCHERS, cb, user);
}

void wr_certs_unwatch(wr_certs *c, void *user) {
  if (c) wr_watchers_remove(c->watchers, WR__CERTS_WATCHERS, user);
}

const wr_certs_stats *wr_certs_get_stats(const wr_certs *c) { return &c->stats; }

/* ---- the sweep over the routed hostnames -------------------------------------------- */

static void sweep_run(wr_store *s, void *arg) {
  wr__route_sweep *w = arg;
  w->rv = wr_store_route_list(s, NULL, NULL, &w->routes, &w->n);
}

/* Whether an uploaded or ACME certificate already covers |name|. */
static int covered(wr_certs *c, const char *name) {
  wr_cert *r = wr_certs_uploaded(c, name);
  if (!r) r = wr_certs_acme(c, name);
  wr_cert_release(r);
  return r != NULL;
}

static void sweep_done(void *arg, int status) {
  wr__route_sweep *w = arg;
  wr_certs *c = w->c;
  size_t queued = 0;
  if (c) {
    c->sweep = NULL;
    if (status != WR_OK || w->rv != WR_OK) wr_warn("cannot list the routed hostnames to prepare their certificates");
    for (size_t i = 0; status == WR_OK && w->rv == WR_OK && i < w->n; i++) {
      const char *name = w->routes[i].hostname;
      if (covered(c, name)) continue;
      int rv = wr_certs_prepare(c, name, 0);
      if (rv == WR_ERR_LIMIT) break;
      queued += rv == WR_AGAIN;
    }
    if (queued) wr_debug("signing certificates for %zu routed hostnames", queued);
    if (w->again) wr_certs_prepare_routes(c, w->store, w->async);
  }
  free(w->routes);
  free(w);
}

void wr_certs_prepare_routes(wr_certs *c, wr_store *store, wr_store_async *async) {
  if (!c->loop) return;
  if (c->sweep) {
    c->sweep->again = 1;
    return;
  }
  wr__route_sweep *w = wr_xcalloc(1, sizeof(*w));
  w->c = c;
  w->store = store;
  w->async = async;
  if (!async) {
    sweep_run(store, w);
    sweep_done(w, WR_OK);
    return;
  }
  if (wr_store_async_submit(async, sweep_run, sweep_done, w) != WR_OK) {
    free(w);
    return;
  }
  c->sweep = w;
}

void wr__certs_issue_free(wr_certs *c) {
  if (c->sweep) c->sweep->c = NULL;
  c->sweep = NULL;
  for (wr__issue_job *j; (j = queue_pop(c));) {
    pending_remove(c, j);
    free(j);
  }
  drop_issued(c);
}
