/* Failure counters with exponential backoff; see throttle.h. */
#include "edge/throttle.h"
#include "net/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/siphash.h"

/* One key. Keys live on one of two LRU lists: |cold| holds keys that may be
 * dropped freely (some failures, no lockout, nothing pending), |hot| the
 * locked or pending ones, which go only when no cold key is left. */
typedef struct entry {
  struct entry *hnext;       /* bucket chain */
  struct entry *prev, *next; /* LRU list, most recent at the head */
  uint64_t until;            /* refused before this time */
  uint64_t last;             /* last failure (or creation) */
  uint64_t locked_since;
  uint32_t fails;
  uint32_t pending;
  int hot;                   /* on the hot list */
  size_t klen;
  char key[];
} entry;

typedef struct lru {
  entry *head, *tail;
} lru;

struct wr_throttle {
  const wr_mem *mem;
  unsigned free_failures;
  uint64_t base_delay_ms, max_delay_ms, forget_ms;
  size_t max_keys;
  uint64_t k0, k1; /* SipHash key */
  entry **buckets;
  size_t mask;     /* buckets - 1 */
  size_t count;
  lru cold, hot;
  uint64_t evicted, evicted_locked;
};

/* --- table ------------------------------------------------------------------ */

static size_t key_len(const char *key) { return strnlen(key, WR_THROTTLE_KEY_MAX); }

static size_t bucket_of(const wr_throttle *t, const char *key, size_t klen) {
  return (size_t)wr_siphash24(t->k0, t->k1, (const uint8_t *)key, klen) & t->mask;
}

static entry *find(const wr_throttle *t, const char *key, size_t klen) {
  for (entry *e = t->buckets[bucket_of(t, key, klen)]; e; e = e->hnext)
    if (e->klen == klen && memcmp(e->key, key, klen) == 0) return e;
  return NULL;
}

static void lru_unlink(lru *l, entry *e) {
  if (e->prev) e->prev->next = e->next;
  else l->head = e->next;
  if (e->next) e->next->prev = e->prev;
  else l->tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push(lru *l, entry *e) {
  e->prev = NULL;
  e->next = l->head;
  if (l->head) l->head->prev = e;
  else l->tail = e;
  l->head = e;
}

static int is_locked(const wr_throttle *t, const entry *e) { return e->fails >= t->free_failures; }

/* Moves |e| to the head of the list its state belongs on: used on every
 * touch, so each list is in least-recently-used order. */
static void touch(wr_throttle *t, entry *e) {
  lru_unlink(e->hot ? &t->hot : &t->cold, e);
  e->hot = is_locked(t, e) || e->pending > 0;
  lru_push(e->hot ? &t->hot : &t->cold, e);
}

static void unchain(wr_throttle *t, entry *e) {
  entry **pp = &t->buckets[bucket_of(t, e->key, e->klen)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
}

static void drop(wr_throttle *t, entry *e) {
  unchain(t, e);
  lru_unlink(e->hot ? &t->hot : &t->cold, e);
  t->count--;
  wr_free(t->mem, e);
}

/* Room for one more key. WR_OK, or WR_ERR_LIMIT if every key is pending. */
static int make_room(wr_throttle *t) {
  entry *victim;
  if (t->count < t->max_keys) return WR_OK;
  victim = t->cold.tail;
  if (!victim) {
    /* Locked keys, oldest first; never one whose attempt is still running
     * (its end would find nothing to end). */
    for (victim = t->hot.tail; victim && victim->pending; victim = victim->prev) {
    }
    if (!victim) return WR_ERR_LIMIT;
    t->evicted_locked++;
  }
  t->evicted++;
  drop(t, victim);
  return WR_OK;
}

static entry *find_or_add(wr_throttle *t, const char *key, uint64_t now, int *rv) {
  size_t klen = key_len(key);
  entry *e = find(t, key, klen);
  *rv = WR_OK;
  if (e) return e;
  if ((*rv = make_room(t)) != WR_OK) return NULL;
  e = wr_calloc(t->mem, 1, sizeof(*e) + klen + 1);
  if (!e) {
    *rv = WR_ERR_NOMEM;
    return NULL;
  }
  memcpy(e->key, key, klen);
  e->klen = klen;
  e->last = now;
  size_t b = bucket_of(t, key, klen);
  e->hnext = t->buckets[b];
  t->buckets[b] = e;
  lru_push(&t->cold, e);
  t->count++;
  return e;
}

/* A key with nothing pending whose last failure, and delay, lie forget_ms
 * in the past. */
static int is_stale(const wr_throttle *t, const entry *e, uint64_t now) {
  uint64_t quiet_from = e->until > e->last ? e->until : e->last;
  return e->pending == 0 && now >= quiet_from && now - quiet_from >= t->forget_ms;
}

static uint64_t delay_for(const wr_throttle *t, uint32_t fails) {
  uint32_t n = fails - t->free_failures; /* fails >= free_failures */
  /* Doubling past 2^40 ms (35 years) is the cap whatever it is. */
  if (n >= 40 || (t->base_delay_ms << n) >> n != t->base_delay_ms) return t->max_delay_ms;
  uint64_t d = t->base_delay_ms << n;
  return d < t->max_delay_ms ? d : t->max_delay_ms;
}

static void fill_info(const wr_throttle *t, const entry *e, uint64_t now, wr_throttle_info *info) {
  info->failures = e->fails;
  info->wait_ms = e->until > now ? e->until - now : 0;
  info->locked_since = is_locked(t, e) ? e->locked_since : 0;
}

/* Forgets |e|'s failures and delay; ending a lockout is reported in |info|. */
static void reset(const wr_throttle *t, entry *e, wr_throttle_info *info) {
  if (is_locked(t, e)) {
    info->events |= WR_THROTTLE_UNLOCKED;
    info->locked_since = e->locked_since;
  }
  e->fails = 0;
  e->until = 0;
  e->locked_since = 0;
}

/* Applies |outcome| to |e|; may free it (success, or a stale key). */
static void apply(wr_throttle *t, entry *e, uint64_t now, wr_throttle_outcome outcome, wr_throttle_info *info) {
  wr_throttle_info tmp;
  if (!info) info = &tmp;
  memset(info, 0, sizeof(*info));
  /* An old lockout or old typos: this attempt starts afresh. */
  if (is_stale(t, e, now) && e->fails) reset(t, e, info);
  switch (outcome) {
  case WR_THROTTLE_FAILURE:
    e->fails++;
    e->last = now;
    if (e->fails == t->free_failures) {
      info->events |= WR_THROTTLE_LOCKED;
      e->locked_since = now;
    }
    if (e->fails >= t->free_failures) {
      uint64_t until = now + delay_for(t, e->fails);
      /* Never shorten a delay that a parallel attempt already set. */
      if (until > e->until) e->until = until;
    }
    if (is_locked(t, e) || !(info->events & WR_THROTTLE_UNLOCKED)) {
      fill_info(t, e, now, info);
    } else {
      /* Keep the start of the lockout that just ended. */
      uint64_t since = info->locked_since;
      fill_info(t, e, now, info);
      info->locked_since = since;
    }
    break;
  case WR_THROTTLE_SUCCESS:
    info->failures = e->fails;
    reset(t, e, info);
    break;
  case WR_THROTTLE_NEUTRAL:
    fill_info(t, e, now, info);
    break;
  }
  if (e->fails == 0 && e->pending == 0) drop(t, e);
  else touch(t, e);
}

/* --- interface ---------------------------------------------------------------- */

int wr_throttle_new(const wr_throttle_config *cfg, wr_throttle **out) {
  static const wr_throttle_config defaults = {0};
  const wr_mem *mem;
  wr_throttle *t;
  uint8_t seed[16];
  size_t nb = 1;
  *out = NULL;
  if (!cfg) cfg = &defaults;
  mem = cfg->mem ? cfg->mem : wr_mem_default();
  if (!(t = wr_calloc(mem, 1, sizeof(*t)))) return WR_ERR_NOMEM;
  t->mem = mem;
  t->free_failures = cfg->free_failures ? cfg->free_failures : WR_THROTTLE_FREE_FAILURES_DEFAULT;
  t->base_delay_ms = cfg->base_delay_ms ? cfg->base_delay_ms : WR_THROTTLE_BASE_DELAY_MS_DEFAULT;
  t->max_delay_ms = cfg->max_delay_ms ? cfg->max_delay_ms : WR_THROTTLE_MAX_DELAY_MS_DEFAULT;
  t->forget_ms = cfg->forget_ms ? cfg->forget_ms : WR_THROTTLE_FORGET_MS_DEFAULT;
  t->max_keys = cfg->max_keys ? cfg->max_keys : WR_THROTTLE_MAX_KEYS_DEFAULT;
  if (t->max_delay_ms < t->base_delay_ms) {
    wr_free(mem, t);
    return WR_ERR_INVAL;
  }
  memcpy(seed, cfg->seed, sizeof(seed));
  static const uint8_t zero[16];
  if (memcmp(seed, zero, sizeof(seed)) == 0 && wr_random_bytes(seed, sizeof(seed)) != WR_OK) {
    wr_free(mem, t);
    return WR_ERR_CRYPTO;
  }
  wr_siphash_key(seed, &t->k0, &t->k1);
  /* One bucket per key at most: chains stay short when full. */
  while (nb < t->max_keys && nb < ((size_t)1 << 30)) nb <<= 1;
  if (!(t->buckets = wr_calloc(mem, nb, sizeof(*t->buckets)))) {
    wr_free(mem, t);
    return WR_ERR_NOMEM;
  }
  t->mask = nb - 1;
  *out = t;
  return WR_OK;
}

void wr_throttle_free(wr_throttle *t) {
  if (!t) return;
  for (lru *l = &t->cold; l; l = l == &t->cold ? &t->hot : NULL)
    for (entry *e = l->head, *next; e; e = next) {
      next = e->next;
      wr_free(t->mem, e);
    }
  wr_free(t->mem, t->buckets);
  wr_free(t->mem, t);
}

uint64_t wr_throttle_check(const wr_throttle *t, const char *key, uint64_t now) {
  const entry *e = find(t, key, key_len(key));
  if (!e || is_stale(t, e, now)) return 0;
  if (e->until > now) return e->until - now;
  if (e->pending && e->fails + e->pending >= t->free_failures)
    /* Its running attempts may lock it: wait for their answer. */
    return t->base_delay_ms;
  return 0;
}

unsigned wr_throttle_failures(const wr_throttle *t, const char *key, uint64_t now) {
  const entry *e = find(t, key, key_len(key));
  return e && !is_stale(t, e, now) ? e->fails : 0;
}

int wr_throttle_begin(wr_throttle *t, const char *key, uint64_t now) {
  int rv;
  entry *e = find_or_add(t, key, now, &rv);
  if (!e) return rv;
  e->pending++;
  touch(t, e);
  return WR_OK;
}

void wr_throttle_end(wr_throttle *t, const char *key, uint64_t now, wr_throttle_outcome outcome,
                     wr_throttle_info *info) {
  entry *e = find(t, key, key_len(key));
  if (e && e->pending) e->pending--;
  if (e) apply(t, e, now, outcome, info);
  else wr_throttle_record(t, key, now, outcome, info);
}

void wr_throttle_record(wr_throttle *t, const char *key, uint64_t now, wr_throttle_outcome outcome,
                        wr_throttle_info *info) {
  int rv;
  entry *e;
  if (info) memset(info, 0, sizeof(*info));
  if (outcome != WR_THROTTLE_FAILURE) {
    /* Nothing to forget or keep about a key that is not there. */
    if ((e = find(t, key, key_len(key)))) apply(t, e, now, outcome, info);
    return;
  }
  if ((e = find_or_add(t, key, now, &rv))) apply(t, e, now, outcome, info);
}

size_t wr_throttle_sweep(wr_throttle *t, uint64_t now,
                         void (*cb)(void *user, const char *key, const wr_throttle_info *info),
                         void *user) {
  size_t n = 0;
  for (lru *l = &t->cold; l; l = l == &t->cold ? &t->hot : NULL)
    for (entry *e = l->head, *next; e; e = next) {
      next = e->next;
      if (!is_stale(t, e, now)) continue;
      if (cb && is_locked(t, e)) {
        wr_throttle_info info = {.events = WR_THROTTLE_UNLOCKED, .failures = e->fails,
                                 .locked_since = e->locked_since};
        cb(user, e->key, &info);
      }
      drop(t, e);
      n++;
    }
  return n;
}

void wr_throttle_get_stats(const wr_throttle *t, wr_throttle_stats *st) {
  st->keys = t->count;
  st->evicted = t->evicted;
  st->evicted_locked = t->evicted_locked;
}

void wr_throttle_source_key(const struct sockaddr_storage *peer, char out[WR_THROTTLE_SOURCE_MAX]) {
  uint8_t key[WR_ADDR_SOURCE_KEY_LEN];
  if (wr_addr_source_key((const struct sockaddr *)peer, key) != 0) {
    snprintf(out, WR_THROTTLE_SOURCE_MAX, "?");
    return;
  }
  wr_addr_source_name(key, out, WR_THROTTLE_SOURCE_MAX);
}

/* --- token bucket ------------------------------------------------------------------ */

int wr_ratelimit_take(wr_ratelimit *r, uint64_t now) {
  if (!r->started) {
    r->started = 1;
    r->tokens = r->burst;
    r->last = now;
  } else if (r->every_ms && now > r->last) {
    uint64_t n = (now - r->last) / r->every_ms;
    if (n >= r->burst - r->tokens) {
      r->tokens = r->burst;
      r->last = now;
    } else {
      r->tokens += (unsigned)n;
      r->last += n * r->every_ms;
    }
  }
  if (r->tokens == 0) {
    r->dropped++;
    return 0;
  }
  r->tokens--;
  return 1;
}

uint64_t wr_ratelimit_take_dropped(wr_ratelimit *r) {
  uint64_t n = r->dropped;
  r->dropped = 0;
  return n;
}
