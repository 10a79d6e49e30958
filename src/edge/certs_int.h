/* Inside edge/certs: the objects certs.c (files, uploaded and ACME tables)
 * and certs_issue.c (certificates of the edge CA, signed on libuv's worker
 * pool) share. Not for other modules. */
#ifndef WR_EDGE_CERTS_INT_H
#define WR_EDGE_CERTS_INT_H
#include <time.h>

#include <uv.h>

#include "edge/certs.h"
#include "edge/pki.h"
#include "lib/watchers.h"

#define MAX_PEM (256u * 1024u)
#define ISSUED_DAYS 90
#define ISSUED_RENEW_S (30 * 86400)
#define ISSUED_MAX 4096
#define ISSUED_BUCKETS 512
#define RESCAN_S 1
#define WR__CERTS_WATCHERS 4
#define WR__CERTS_SIGNERS 2 /* jobs on libuv's pool at once: the pool is shared */

struct wr_cert {
  wr_cert *next;         /* issued: hash chain */
  wr_tls_creds *creds;   /* NULL: an issued placeholder for a failed issuance */
  int refs;              /* the table's own reference counts as one */
  int uploaded;
  int acme;              /* obtained by ACME (edge/acme.h) */
  char file[WR_CERTS_NAME_MAX + 1]; /* base name of its files (uploaded, ACME) */
  int carried;           /* kept over one rescan that could not load its files */
  time_t made, not_after;
  size_t n_names;
  char names[WR_CERTS_MAX_NAMES][WR_CERTS_NAME_MAX + 1];
};

/* Certificates read from one directory, reread when it changes. */
typedef struct cert_table {
  char *dir;             /* DIR/certs or DIR/acme/certs */
  int by_host;           /* files are <host>.pem (ACME), else <id>.pem */
  wr_cert **ents;        /* each holding a table reference */
  size_t n;
  struct timespec mtime;
  time_t last_scan;
} cert_table;

/* A name waiting for its certificate (queued) or being signed (running). */
typedef struct wr__issue_job wr__issue_job;
/* The routed hostnames read on the store thread (wr_certs_prepare_routes). */
typedef struct wr__route_sweep wr__route_sweep;

struct wr_certs {
  char *dir;             /* DIR */
  wr_pem_pair ca;
  cert_table up;         /* uploaded */
  cert_table acme;       /* obtained by ACME (edge/acme.h) */
  wr_cert *issued[ISSUED_BUCKETS];
  size_t n_issued;
  /* Signing on libuv's pool (wr_certs_start); loop NULL: wr_certs_issued only. */
  uv_loop_t *loop;
  unsigned delay_ms;     /* WARREN_TEST_SIGN_DELAY_MS */
  wr__issue_job *pending[ISSUED_BUCKETS]; /* queued and running jobs, by name */
  wr__issue_job *qhead, *qtail;           /* queued, in signing order */
  size_t queued, running;
  int freeing;           /* wr_certs_free waits for the running jobs */
  wr__route_sweep *sweep;
  wr_watcher watchers[WR__CERTS_WATCHERS];
  wr_certs_stats stats;
};

wr_cert *wr__cert_ref(wr_cert *r);
/* Frees what wr_certs_free leaves once no job is running. */
void wr__certs_destroy(wr_certs *c);
/* Drops the issued certificates and the queued jobs (certs_issue.c). */
void wr__certs_issue_free(wr_certs *c);
#endif
