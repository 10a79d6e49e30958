/* The gate's service-token checks (access.h, wr_access_prefetch_token):
 * CF-Access-Client-Id / CF-Access-Client-Secret looked up on the store
 * thread and kept for WR_ACCESS_CACHE_MS in an open-addressed table keyed
 * by SHA-256(id NUL secret), so that the secret is neither kept nor
 * compared on the loop. A table whose probe slots all wait makes the
 * request wait too, as the host cache does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "edge/access_int.h"
#include "edge/store_access.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

typedef struct token_job {
  wr_access *a;
  uint64_t gen;
  uint8_t key[32];
  char client_id[257];
  char secret[257];
  int rv;
  char id[WR_STORE_UUID_LEN + 1];
  char account[WR_STORE_ID_LEN + 1];
} token_job;

static int token_key(const char *client_id, const char *secret, uint8_t key[32]) {
  size_t il = strlen(client_id), sl = strlen(secret);
  char *buf = wr_xmalloc(il + sl + 1);
  memcpy(buf, client_id, il + 1);
  memcpy(buf + il + 1, secret, sl);
  int rv = gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, il + 1 + sl, key);
  explicit_bzero(buf, il + sl + 1);
  free(buf);
  return rv == 0 ? WR_OK : WR_ERR_CRYPTO;
}

static size_t home_of(const uint8_t key[32]) {
  return ((size_t)key[0] << 8 | key[1]) % WR__ACCESS_TOKEN_SLOTS;
}

static wr__access_token *token_find(wr_access *a, const uint8_t key[32]) {
  size_t home = home_of(key);
  for (size_t k = 0; k < WR__ACCESS_TOKEN_PROBE; k++) {
    wr__access_token *t = &a->tokens[(home + k) % WR__ACCESS_TOKEN_SLOTS];
    if (t->used && !memcmp(t->key, key, 32)) return t;
  }
  return NULL;
}

/* A free slot, else the one that expired first among those not waiting. */
static wr__access_token *token_take(wr_access *a, const uint8_t key[32]) {
  wr__access_token *slot = NULL;
  size_t home = home_of(key);
  for (size_t k = 0; k < WR__ACCESS_TOKEN_PROBE; k++) {
    wr__access_token *t = &a->tokens[(home + k) % WR__ACCESS_TOKEN_SLOTS];
    if (t->pending) continue;
    if (!t->used) {
      slot = t;
      break;
    }
    if (!slot || t->expires < slot->expires) slot = t;
  }
  if (!slot) return NULL;
  memset(slot, 0, sizeof(*slot));
  memcpy(slot->key, key, 32);
  slot->used = 1;
  return slot;
}

static void token_run(wr_store *s, void *arg) {
  token_job *j = arg;
  j->rv = wr_store_access_token_check(s, j->client_id, j->secret, j->id, j->account);
  explicit_bzero(j->secret, sizeof(j->secret));
}

static void token_done(void *arg, int status) {
  token_job *j = arg;
  wr_access *a = j->a;
  wr__access_token *t = token_find(a, j->key);
  if (t && t->pending && t->gen == j->gen && !a->freeing) {
    t->pending = 0;
    t->answered = 1;
    t->rv = status == WR_OK ? j->rv : WR_ERR_STORE;
    memcpy(t->id, j->id, sizeof(t->id));
    memcpy(t->account, j->account, sizeof(t->account));
    t->expires = wr__access_now_ms(a) + WR_ACCESS_CACHE_MS;
  }
  explicit_bzero(j, sizeof(*j));
  free(j);
  wr__access_read_back(a);
}

/* Whether |host|'s cached apps are any: tokens matter only then. */
static int host_has_apps(wr_access *a, const char *host) {
  return json_array_size(json_object_get(wr__access_host_doc(a, host), "apps")) > 0;
}

int wr_access_prefetch_token(wr_access *a, const char *host, const char *client_id, const char *secret,
                             int stale_ok) {
  uint8_t key[32];
  if (!a->async || !host_has_apps(a, host)) return WR_OK;
  if (strlen(client_id) > 256 || strlen(secret) > 256 || token_key(client_id, secret, key) != WR_OK)
    return WR_OK; /* wr__access_token_check refuses it */
  wr__access_token *t = token_find(a, key);
  if (t && t->pending) return t->answered ? WR_OK : WR_AGAIN;
  if (t && (stale_ok || t->expires > wr__access_now_ms(a))) return WR_OK;
  if (!t && !(t = token_take(a, key))) return WR_AGAIN;
  token_job *j = wr_xcalloc(1, sizeof(*j));
  j->a = a;
  j->gen = ++a->gen;
  memcpy(j->key, key, 32);
  snprintf(j->client_id, sizeof(j->client_id), "%s", client_id);
  snprintf(j->secret, sizeof(j->secret), "%s", secret);
  if (wr__access_submit(a, token_run, token_done, j, sizeof(*j)) != WR_OK) return WR_ERR_LIMIT;
  t->pending = 1;
  t->gen = j->gen;
  return t->answered ? WR_OK : WR_AGAIN;
}

int wr__access_token_check(wr_access *a, const char *client_id, const char *secret, char *id, char *account) {
  uint8_t key[32];
  if (!a->async) return wr_store_access_token_check(a->store, client_id, secret, id, account);
  if (strlen(client_id) > 256 || strlen(secret) > 256 || token_key(client_id, secret, key) != WR_OK)
    return WR_ERR_DENIED;
  const wr__access_token *t = token_find(a, key);
  if (!t || !t->answered) return WR_ERR_DENIED; /* not prefetched: never fail open */
  if (t->rv != WR_OK) return t->rv;
  snprintf(id, WR_STORE_UUID_LEN + 1, "%s", t->id);
  snprintf(account, WR_STORE_ID_LEN + 1, "%s", t->account);
  return WR_OK;
}
