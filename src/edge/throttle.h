/* Failure throttling for sign-ins (edge/login.h) and API tokens
 * (edge/api.h): a bounded table of failure counters with exponential
 * backoff, and a token bucket for the audit rows it causes.
 *
 * Sans-I/O: keys and a millisecond |now| (any monotonic clock) go in,
 * decisions come out; nothing here reads a clock, logs or touches the store,
 * so the tests drive it with virtual time.
 *
 * The policy, per key (the caller builds keys: a normalised email, a source
 * prefix from wr_throttle_source_key):
 *   - the first |free_failures| - 1 failures cost nothing;
 *   - failure number |free_failures| refuses the key for |base_delay_ms|,
 *     each later one doubles that, up to |max_delay_ms|
 *     (defaults: 5 free, then 1 s, 2 s, 4 s ... 15 min);
 *   - a refused key is answered at once by the caller, without the costly
 *     check (password hash) that a guess needs;
 *   - a success (wr_throttle_end/record with WR_THROTTLE_SUCCESS) forgets
 *     the key;
 *   - a key without a failure for |forget_ms| after its delay ended is
 *     forgotten too (default 1 h), so an old typo does not count forever.
 * A key that reaches |free_failures| is "locked": the caller is told once
 * (WR_THROTTLE_LOCKED), and told again (WR_THROTTLE_UNLOCKED) when the key
 * is forgotten, by a success or by time (wr_throttle_sweep); the span
 * between the two is one lockout, however many delays it held.
 *
 * Checks that take a while (a password hash on a worker thread) are
 * bracketed with wr_throttle_begin/end: the attempt counts as pending in
 * between, and a locked key allows one pending attempt at a time (an
 * unlocked one as many as it has free failures left). Without this, many
 * attempts started in the same instant would all pass the check before the
 * first failure was recorded.
 *
 * The table holds at most |max_keys| keys. When it is full, the least
 * recently used key that is neither locked nor pending makes room; only if
 * there is none does the least recently used locked key go. Guessers who
 * fill the table with fresh keys therefore push out each other's one-off
 * failures, not the lockouts. Bucket placement uses SipHash with a random
 * key, so chosen keys (emails) cannot be made to collide.
 *
 * Not thread-safe: one owner thread (the loop thread of the edge). */
#ifndef WR_EDGE_THROTTLE_H
#define WR_EDGE_THROTTLE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/mem.h"

#define WR_THROTTLE_KEY_MAX 320 /* longer keys are cut: callers stay below */
/* A source key: "192.0.2.1" or "2001:db8:1:2::/64", with the NUL. */
#define WR_THROTTLE_SOURCE_MAX 64

#define WR_THROTTLE_FREE_FAILURES_DEFAULT 5
#define WR_THROTTLE_BASE_DELAY_MS_DEFAULT 1000
#define WR_THROTTLE_MAX_DELAY_MS_DEFAULT (15u * 60 * 1000)
#define WR_THROTTLE_FORGET_MS_DEFAULT (60u * 60 * 1000)
#define WR_THROTTLE_MAX_KEYS_DEFAULT 16384

typedef struct wr_throttle wr_throttle;

/* Zero fields take the defaults above. */
typedef struct wr_throttle_config {
  const wr_mem *mem;       /* NULL: libc */
  unsigned free_failures;  /* the failure that starts the delays, >= 1 */
  uint64_t base_delay_ms;  /* the first delay */
  uint64_t max_delay_ms;   /* where the doubling stops */
  uint64_t forget_ms;      /* quiet time after the delay that clears a key */
  size_t max_keys;         /* bound of the table */
  /* SipHash key for bucket placement; all zero: random (wr_random_bytes). */
  uint8_t seed[16];
} wr_throttle_config;

/* What a call did to a key. */
enum {
  WR_THROTTLE_LOCKED = 1,   /* this failure began a lockout */
  WR_THROTTLE_UNLOCKED = 2, /* a lockout of this key ended (success or forgotten) */
};

/* How an attempt ended. */
typedef enum wr_throttle_outcome {
  WR_THROTTLE_FAILURE = 0, /* a wrong guess: counts */
  WR_THROTTLE_SUCCESS = 1, /* the key is forgotten */
  WR_THROTTLE_NEUTRAL = 2, /* neither (cancelled, or a source that signed in) */
} wr_throttle_outcome;

typedef struct wr_throttle_info {
  unsigned events;        /* WR_THROTTLE_LOCKED | WR_THROTTLE_UNLOCKED */
  unsigned failures;      /* counted for the key after the call (before a reset) */
  uint64_t wait_ms;       /* how long the key is refused from now on; 0: it is not */
  uint64_t locked_since;  /* when the current (or, for UNLOCKED, the ended) lockout began */
} wr_throttle_info;

typedef struct wr_throttle_stats {
  size_t keys;            /* in the table now */
  uint64_t evicted;       /* keys pushed out by newer ones */
  uint64_t evicted_locked; /* of those, keys that were locked */
} wr_throttle_stats;

/* Makes a table. Returns WR_OK, WR_ERR_INVAL (free_failures of 0 cannot
 * happen: 0 is the default; max_delay below base_delay), WR_ERR_NOMEM or
 * WR_ERR_CRYPTO (no randomness for the seed). *out is NULL on failure. */
int wr_throttle_new(const wr_throttle_config *cfg, wr_throttle **out);
/* Frees the table and every key. NULL is a no-op. */
void wr_throttle_free(wr_throttle *t);

/* How long |key| must wait before its next attempt, in ms (0: go ahead).
 * Changes nothing. A key with pending attempts that used up its free
 * failures answers base_delay_ms while they run. */
uint64_t wr_throttle_check(const wr_throttle *t, const char *key, uint64_t now);

/* The failures counted for |key| now (0 for a key not in the table, or
 * one about to be forgotten). Changes nothing. */
unsigned wr_throttle_failures(const wr_throttle *t, const char *key, uint64_t now);

/* Counts an attempt of |key| as pending until wr_throttle_end. Call it
 * after wr_throttle_check said 0 (it does not check again). Returns WR_OK,
 * or WR_ERR_NOMEM, or WR_ERR_LIMIT when every key in a full table is
 * pending (a caller bug: keep max_keys above the attempts it runs at once). */
int wr_throttle_begin(wr_throttle *t, const char *key, uint64_t now);
/* Ends an attempt started with wr_throttle_begin and records |outcome|.
 * |info| (may be NULL) says what happened. An end without a begin (for
 * example after the key was forgotten) records the outcome alone. */
void wr_throttle_end(wr_throttle *t, const char *key, uint64_t now, wr_throttle_outcome outcome,
                     wr_throttle_info *info);
/* Records |outcome| for an attempt that was not pending (a check done at
 * once, such as an API token lookup). |info| may be NULL. Allocation
 * failure drops the record (the key stays unthrottled), which the table
 * reports as not locked; nothing else can fail. */
void wr_throttle_record(wr_throttle *t, const char *key, uint64_t now, wr_throttle_outcome outcome,
                        wr_throttle_info *info);

/* Forgets keys quiet for forget_ms and calls |cb| for each that was locked
 * (its lockout ended by time), with the key and its last state. |cb| may be
 * NULL; it must not call into |t|. Walks the whole table: call it every
 * few seconds, not per request. Returns the number of keys forgotten. */
size_t wr_throttle_sweep(wr_throttle *t, uint64_t now,
                         void (*cb)(void *user, const char *key, const wr_throttle_info *info),
                         void *user);

void wr_throttle_get_stats(const wr_throttle *t, wr_throttle_stats *st);

/* The source key of a peer address: the IPv4 address (/32), or the IPv6 /64
 * written as "2001:db8:1:2::/64" (one subscriber usually holds a whole /64,
 * so one address per guess would be no limit at all). An IPv4-mapped IPv6
 * address counts as the IPv4 address. Another family gives "?". |out| gets
 * at most WR_THROTTLE_SOURCE_MAX bytes with the NUL. */
void wr_throttle_source_key(const struct sockaddr_storage *peer, char out[WR_THROTTLE_SOURCE_MAX]);

/* A token bucket: at most |burst| events at once, refilled by one every
 * |every_ms|. Zero-initialise, then set burst and every_ms. Used to bound
 * the audit rows lockouts write, which a guesser with many addresses could
 * otherwise multiply. */
typedef struct wr_ratelimit {
  unsigned burst;
  uint64_t every_ms;
  /* private */
  unsigned tokens;
  uint64_t last;    /* time of the last refill */
  int started;
  uint64_t dropped; /* events refused since the last wr_ratelimit_take_dropped */
} wr_ratelimit;

/* 1 if an event may happen at |now| (and uses a token), 0 if not (counted
 * in dropped). */
int wr_ratelimit_take(wr_ratelimit *r, uint64_t now);
/* The count of refused events since the last call, resetting it. */
uint64_t wr_ratelimit_take_dropped(wr_ratelimit *r);

#endif
