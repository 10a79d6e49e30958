/* Internals of the ACME manager (acme.c: schedule, challenge table, files;
 * acme_order.c: one order on the worker thread). */
#ifndef WR_EDGE_ACME_INT_H
#define WR_EDGE_ACME_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "edge/acme.h"
#include "edge/certs.h"
#include "net/owner.h"

#define WR__ACME_MAX_CHALL 16

/* A published challenge answer. */
typedef struct wr__acme_chall {
  int used;
  int dns;                                 /* TXT at key, else HTTP-01 token key */
  char key[WR_ACME_NAME_MAX + 20];         /* token, or "_acme-challenge.<host>" */
  char value[WR_ACME_KEYAUTH_MAX + 1];     /* key authorization, or the TXT value */
} wr__acme_chall;

/* What the schedule knows of one routed hostname (loop thread). */
typedef struct wr__acme_host {
  char name[WR_STORE_HOST_MAX + 1];
  int64_t next_try;                        /* Unix seconds; 0: now */
  unsigned failures;                       /* in a row */
} wr__acme_host;

typedef struct wr__acme_job {
  uv_work_t req;
  struct wr_acme *a;
  char host[WR_STORE_HOST_MAX + 1];
  int rv;
  char err[768];                           /* why it failed, for the log */
  int64_t not_after;                       /* of the new certificate */
} wr__acme_job;

struct scan_job;

struct wr_acme {
  uv_loop_t *loop;
  uv_timer_t timer;
  char *data_dir, *directory, *email, *ca_file; /* of the config */
  char *strs; /* the one block holding those copies: free only it (lib/strpack.h) */
  int dns01;
  wr_store *store;
  wr_store_async *async;
  uint64_t scan_ms, retry_ms, poll_ms;
  wr__acme_host *hosts;
  size_t n_hosts;
  wr__acme_job *job;                       /* the order in flight */
  struct scan_job *scan;                   /* the scan in flight */
  int closing;
  wr_owner owner;                          /* holds the timer and the order in flight */
  atomic_int cancel;                       /* set by wr_acme_free; read by the worker */
  wr_acme_stats stats;
  pthread_mutex_t mu;                      /* guards chall */
  wr__acme_chall chall[WR__ACME_MAX_CHALL];
  /* Worker-only state (one order at a time): the account and the CA. */
  struct {
    wr_acme_key *key;
    char kid[WR_ACME_URL_MAX + 1];
    wr_acme_directory dir;
    int have_dir;
    char nonce[WR_ACME_TOKEN_MAX + 1];
  } w;
};

/* acme.c */
int wr__acme_publish(struct wr_acme *a, int dns, const char *key, const char *value);
void wr__acme_withdraw(struct wr_acme *a, const char *key);
void wr__acme_cert_paths(const char *data_dir, const char *host, char *cp, char *kp, size_t n);
int wr__acme_validity(const char *pem, int64_t *not_before, int64_t *not_after);

/* acme_order.c: obtains and stores a certificate for j->host (worker
 * thread). WR_OK, or an error with j->err set. */
int wr__acme_order(struct wr_acme *a, wr__acme_job *j);
/* Frees the worker state (after the last order). */
void wr__acme_worker_reset(struct wr_acme *a);

#endif
