/* The visitor front's per-source limits (visitor_int.h, visitor.h).
 *
 * A connection holds a slot from accept until uv_close (the descriptor is
 * released there, not in the close callback), counted in |nslots| and in
 * its source's |conns|. Sources live in a hash table keyed with SipHash
 * under a random key, so that chosen addresses cannot pile into one chain.
 * A source without connections stays on the |quiet| list until its request
 * bucket is full again (its rate history must survive a reconnect), then is
 * freed; when the table is full the oldest quiet one is reused, and when
 * none is quiet the newcomer is served untracked, under the global limits
 * only. Idle connections (waiting for a request, nothing unwritten) are on
 * the |idle| list, oldest first: under pressure one of them is closed for
 * each newcomer. Requests are charged to a token bucket per source; over
 * it the answer is 429 with Retry-After.
 *
 * Owns: the source table and its quiet list, the idle list, admission and
 * eviction, the rate buckets, and the rate-limited warnings about all of
 * them. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/visitor_int.h"
#include "net/addr.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/siphash.h"

#define DEF_MAX_CONNS 10000
/* Per source. 256 connections is ~40 browsers behind one NAT at their six
 * connections per host, while 40 such sources are needed to fill the
 * default 10,000. 100 requests/s sustained with a burst of 200 lets a page
 * with a few hundred assets load at once and a busy NAT keep going, but
 * caps one address at 1 % of what the edge proxies on one core. */
#define DEF_MAX_CONNS_PER_SOURCE 256
#define DEF_RATE_PER_SOURCE 100
#define DEF_RESERVE_DIVISOR 10       /* reserve: the last 10 % of max_conns */
#define MIN_MAX_SOURCES 1024
#define MAX_MAX_SOURCES (1u << 20)   /* ~64 MiB of entries at most */
#define RATE_CLAMP 1000000u          /* rates and bursts: keeps milli-token sums in range */
#define EVICT_SAMPLE 32              /* idle connections weighed per eviction */
#define EVICT_SCAN_MAX 256           /* ... and walked past, when busy ones are in the way */
#define WARN_EVERY_MS 10000          /* one warning per kind per 10 s under a flood */

/* ---- the source table ------------------------------------------------------------ */

/* SipHash-2-4 of a 16-byte key: sources are chosen by the peers. */
static uint64_t src_hash(const wr_visitor *v, const uint8_t key[WR__VISITOR_KEY_LEN]) {
  return wr_siphash24(v->sip_k0, v->sip_k1, key, WR__VISITOR_KEY_LEN);
}

/* Milliseconds an empty bucket needs to fill up: a quiet source is freed
 * after that long (0 without a rate limit: nothing to remember). */
static uint64_t bucket_fill_ms(const wr_visitor *v) {
  return v->rate ? (v->burst * 1000 + v->rate - 1) / v->rate : 0;
}

static void bucket_refill(const wr_visitor *v, vsrc *s, uint64_t now) {
  uint64_t cap = v->burst * 1000, el = now > s->stamp ? now - s->stamp : 0;
  s->stamp = now;
  if (!v->rate) return;
  /* |rate| thousandths of a request per millisecond. */
  if (el >= bucket_fill_ms(v) || s->tokens + el * v->rate >= cap)
    s->tokens = cap;
  else
    s->tokens += el * v->rate;
}

/* Takes one request from |s|'s bucket. Returns 1, or 0 with *wait_ms until
 * the next token when the source is over its rate. Untracked: always 1. */
static int bucket_take(wr_visitor *v, vsrc *s, uint64_t now, uint64_t *wait_ms) {
  if (!s || !v->rate) return 1;
  bucket_refill(v, s, now);
  if (s->tokens >= 1000) {
    s->tokens -= 1000;
    return 1;
  }
  *wait_ms = (1000 - s->tokens + v->rate - 1) / v->rate;
  return 0;
}

static void quiet_timer_cb(uv_timer_t *t);

static void quiet_arm(wr_visitor *v) {
  if (v->closing || !v->quiet_head) return;
  uint64_t now = uv_now(v->loop), due = v->quiet_head->stamp + bucket_fill_ms(v);
  uv_timer_start(&v->quiet_timer, quiet_timer_cb, due > now ? due - now : 0, 0);
}

static void quiet_del(wr_visitor *v, vsrc *s) {
  if (!s->quiet) return;
  WR_DLIST_REMOVE(v->quiet_head, v->quiet_tail, s, qprev, qnext);
  s->quiet = 0;
}

/* |s| has no connections: remember it until its bucket is full. The list
 * stays in |stamp| order because the refill stamps it now. */
static void quiet_add(wr_visitor *v, vsrc *s) {
  if (s->quiet) return;
  bucket_refill(v, s, uv_now(v->loop));
  s->quiet = 1;
  WR_DLIST_APPEND(v->quiet_head, v->quiet_tail, s, qprev, qnext);
  if (v->quiet_head == s) quiet_arm(v);
}

static void src_free(wr_visitor *v, vsrc *s) {
  quiet_del(v, s);
  for (vsrc **pp = &v->srcs[src_hash(v, s->key) & v->src_mask]; *pp; pp = &(*pp)->hnext)
    if (*pp == s) {
      *pp = s->hnext;
      break;
    }
  free(s);
  v->stats.sources--;
}

static void quiet_timer_cb(uv_timer_t *t) {
  wr_visitor *v = t->data;
  uint64_t now = uv_now(v->loop), fill = bucket_fill_ms(v);
  while (v->quiet_head && v->quiet_head->stamp + fill <= now) src_free(v, v->quiet_head);
  quiet_arm(v);
}

/* The entry for |key|, created (quiet, with a full bucket) if new. NULL if
 * the table is full of sources that hold connections. */
static vsrc *src_get(wr_visitor *v, const uint8_t key[WR__VISITOR_KEY_LEN]) {
  size_t b = src_hash(v, key) & v->src_mask;
  for (vsrc *s = v->srcs[b]; s; s = s->hnext)
    if (memcmp(s->key, key, WR__VISITOR_KEY_LEN) == 0) return s;
  if (v->stats.sources >= v->max_sources) {
    /* Reuse the longest-quiet entry: it forgets a little rate history. */
    if (!v->quiet_head) return NULL;
    src_free(v, v->quiet_head);
  }
  vsrc *s = wr_xcalloc(1, sizeof(*s));
  memcpy(s->key, key, WR__VISITOR_KEY_LEN);
  s->tokens = v->burst * 1000;
  s->stamp = uv_now(v->loop);
  s->hnext = v->srcs[b];
  v->srcs[b] = s;
  v->stats.sources++;
  quiet_add(v, s);
  return s;
}

/* 1 if a warning of this kind may be logged now; *more is the count of
 * events not logged since the last one. */
static int warn_due(wr_visitor *v, vwarn *w, uint64_t *more) {
  uint64_t now = uv_now(v->loop);
  if (w->next && now < w->next) {
    w->held++;
    return 0;
  }
  *more = w->held;
  w->held = 0;
  w->next = now + WARN_EVERY_MS;
  return 1;
}

vsrc *wr__visitor_source_get(wr_visitor *v, const struct sockaddr *sa) {
  uint8_t key[WR__VISITOR_KEY_LEN];
  vsrc *s = NULL;
  uint64_t more = 0;
  if (wr_addr_source_key(sa, key) == 0) s = src_get(v, key);
  if (s) return s;
  v->stats.untracked_conns++;
  if (warn_due(v, &v->warn_table, &more))
    wr_warn("visitor limits: %zu sources tracked (the table's limit): a new one gets only "
            "the global limits; %" PRIu64 " more since the last warning",
            (size_t)v->stats.sources, more);
  return NULL;
}

/* ---- slots and the idle list -------------------------------------------------------- */

void wr__visitor_idle_enter(vconn *c) {
  wr_visitor *v = c->v;
  if (c->idle || !c->has_slot) return;
  c->idle = 1;
  WR_DLIST_APPEND(v->idle_head, v->idle_tail, c, iprev, inext);
}

void wr__visitor_idle_leave(vconn *c) {
  wr_visitor *v = c->v;
  if (!c->idle) return;
  WR_DLIST_REMOVE(v->idle_head, v->idle_tail, c, iprev, inext);
  c->idle = 0;
}

void wr__visitor_src_hold(wr_visitor *v, vsrc *s) {
  v->nslots++;
  if (s && s->conns++ == 0) quiet_del(v, s);
}

void wr__visitor_src_drop(wr_visitor *v, vsrc *s) {
  v->nslots--;
  if (s && --s->conns == 0) quiet_add(v, s);
}

void wr__visitor_slot_take(vconn *c, vsrc *s) {
  c->has_slot = 1;
  c->src = s;
  wr__visitor_src_hold(c->v, s);
}

/* Called as the connection closes: its descriptor is gone from here on. */
void wr__visitor_slot_release(vconn *c) {
  wr_visitor *v = c->v;
  wr__visitor_idle_leave(c);
  if (!c->has_slot) return;
  c->has_slot = 0;
  wr__visitor_src_drop(v, c->src);
  c->src = NULL;
}

/* The idle connection to close for a newcomer: among the EVICT_SAMPLE
 * oldest, the one whose source holds the most connections (the oldest of
 * those), and only from sources holding at least |min_held|. NULL if none. */
static vconn *pick_victim(wr_visitor *v, size_t min_held) {
  vconn *best = NULL;
  size_t best_held = 0, weighed = 0, walked = 0;
  for (vconn *c = v->idle_head; c && weighed < EVICT_SAMPLE && walked < EVICT_SCAN_MAX;
       c = c->inext) {
    walked++;
    /* The last response may still be on its way out: not idle yet. */
    if (c->writes || c->pend) continue;
    weighed++;
    size_t held = c->src ? c->src->conns : 0;
    if (held < min_held) continue;
    if (!best || held > best_held) {
      best = c;
      best_held = held;
    }
  }
  return best;
}

enum { ADMIT_OK = 0, REFUSE_SOURCE, REFUSE_RESERVE, REFUSE_FULL };

/* May a new connection of |s| (NULL: untracked) take a slot? Closes one
 * idle connection to make room when that is what it takes. */
static int admit_or_evict(wr_visitor *v, vsrc *s) {
  /* Untracked newcomers are treated as large: no reserve for them. */
  size_t held = s ? s->conns : WR_VISITOR_RESERVE_BELOW;
  if (s && v->max_per_source != WR_VISITOR_OFF && held >= v->max_per_source)
    return REFUSE_SOURCE;
  int small = held < WR_VISITOR_RESERVE_BELOW;
  size_t room = small ? v->max_conns : v->max_conns - v->reserve;
  if (v->nslots < room) return ADMIT_OK;
  /* Under pressure. A large source may only displace connections of
   * sources at least as large as itself (its own included): it cannot
   * push out the visitors the reserve is for. */
  vconn *victim = pick_victim(v, small ? 0 : held);
  if (!victim) return !small && v->nslots < v->max_conns ? REFUSE_RESERVE : REFUSE_FULL;
  v->stats.evicted_idle++;
  uint64_t more = 0;
  if (warn_due(v, &v->warn_evict, &more)) {
    char name[WR__VISITOR_NAME_MAX] = "an untracked source";
    if (victim->src) wr_addr_source_name(victim->src->key, name, sizeof(name));
    wr_warn("visitor limits: %zu connections open (limit %zu): closed an idle connection of "
            "%s (holding %u) to make room; %" PRIu64 " more since the last warning",
            v->nslots, v->max_conns, name, victim->src ? victim->src->conns : 0, more);
  }
  wr__vconn_close_now(victim);
  return ADMIT_OK;
}

/* Logs a refusal, at most once per WARN_EVERY_MS per kind. */
static void warn_refusal(wr_visitor *v, int why, const vsrc *s) {
  char name[WR__VISITOR_NAME_MAX] = "an untracked source";
  uint64_t more = 0;
  vwarn *w = why == REFUSE_SOURCE ? &v->warn_source : &v->warn_full;
  if (!warn_due(v, w, &more)) return;
  if (s) wr_addr_source_name(s->key, name, sizeof(name));
  if (why == REFUSE_SOURCE)
    wr_warn("visitor limits: refusing connections from %s: it holds %u (the per-source "
            "limit); %" PRIu64 " more refusals of this kind since the last warning",
            name, s ? s->conns : 0, more);
  else
    wr_warn("visitor limits: refusing a connection from %s: %zu connections open (limit %zu, "
            "the last %zu kept for sources holding fewer than %d) and none idle to close; "
            "%" PRIu64 " more refusals of this kind since the last warning",
            name, v->nslots, v->max_conns, v->reserve, WR_VISITOR_RESERVE_BELOW, more);
}

int wr__visitor_admit(wr_visitor *v, vsrc *s) {
  int why = admit_or_evict(v, s);
  if (why == ADMIT_OK) return 1;
  v->stats.conns_refused++;
  if (why == REFUSE_SOURCE)
    v->stats.refused_per_source++;
  else if (why == REFUSE_RESERVE)
    v->stats.refused_reserve++;
  else
    v->stats.refused_full++;
  warn_refusal(v, why, s);
  return 0;
}

/* ---- request rate ------------------------------------------------------------------ */

/* Charges the request to its source. Over the rate: answers 429 with
 * Retry-After and returns 1. The connection stays if the visitor waits that
 * long before its next request; one that sends again sooner while still
 * over the rate is pushing on, and is closed. */
int wr__visitor_over_rate(vconn *c, size_t used) {
  wr_visitor *v = c->v;
  uint64_t now = uv_now(v->loop), wait_ms = 0, more = 0;
  if (bucket_take(v, c->src, now, &wait_ms)) {
    c->retry_at = 0;
    return 0;
  }
  uint64_t secs = wait_ms < 1000 ? 1 : (wait_ms + 999) / 1000;
  int pushing = c->retry_at && now < c->retry_at;
  char ra[24], msg[160], name[WR__VISITOR_NAME_MAX];
  snprintf(ra, sizeof(ra), "%" PRIu64, secs);
  c->retry_at = now + secs * 1000;
  v->stats.rate_limited++;
  if (pushing) v->stats.rate_limited_closed++;
  if (warn_due(v, &v->warn_rate, &more)) {
    wr_addr_source_name(c->src->key, name, sizeof(name));
    wr_warn("visitor limits: %s is over %" PRIu64 " requests/s (burst %" PRIu64 "): 429%s; "
            "%" PRIu64 " more since the last warning",
            name, v->rate, v->burst, pushing ? " and connection closed" : "", more);
  }
  snprintf(msg, sizeof(msg),
           "Too many requests from your address. Retry in %" PRIu64 " second%s.", secs,
           secs == 1 ? "" : "s");
  wr_http_header h = {"Retry-After", 11, ra, strlen(ra)};
  wr_buf_consume(&c->in, used);
  wr__vconn_local_h(c, 429, msg, pushing, &h);
  return 1;
}

/* ---- configuration and lifetime ------------------------------------------------------ */

/* |val| unless 0 (then |def|); WR_VISITOR_OFF stays. */
static size_t or_default(size_t val, size_t def) { return val ? val : def; }

static void limits_resolve(wr_visitor *v, const wr_visitor_config *cfg) {
  v->max_conns = or_default(cfg->max_conns, DEF_MAX_CONNS);
  v->max_per_source = or_default(cfg->max_conns_per_source, DEF_MAX_CONNS_PER_SOURCE);
  v->reserve = cfg->reserve_conns == WR_VISITOR_OFF ? 0
               : cfg->reserve_conns           ? cfg->reserve_conns
                                              : v->max_conns / DEF_RESERVE_DIVISOR;
  if (v->max_conns != WR_VISITOR_OFF && v->reserve >= v->max_conns) v->reserve = v->max_conns - 1;
  size_t rate = or_default(cfg->requests_per_second_per_source, DEF_RATE_PER_SOURCE);
  if (rate != WR_VISITOR_OFF) {
    v->rate = rate > RATE_CLAMP ? RATE_CLAMP : rate;
    size_t burst = cfg->request_burst_per_source;
    v->burst = !burst || burst == WR_VISITOR_OFF ? 2 * v->rate : burst;
    if (v->burst > 2 * RATE_CLAMP) v->burst = 2 * RATE_CLAMP;
  }
  /* Every source with a connection must fit, with as much room again for
   * the recently quiet ones whose rate history is still remembered. */
  size_t ms = cfg->max_sources;
  if (!ms || ms == WR_VISITOR_OFF)
    ms = v->max_conns >= MAX_MAX_SOURCES / 2 ? MAX_MAX_SOURCES
         : 2 * v->max_conns < MIN_MAX_SOURCES ? MIN_MAX_SOURCES
                                              : 2 * v->max_conns;
  v->max_sources = ms > MAX_MAX_SOURCES ? MAX_MAX_SOURCES : ms;
}

int wr__visitor_limits_init(wr_visitor *v, const wr_visitor_config *cfg) {
  limits_resolve(v, cfg);
  size_t nb = 64;
  while (nb < v->max_sources && nb < MAX_MAX_SOURCES) nb <<= 1;
  v->srcs = wr_xcalloc(nb, sizeof(*v->srcs));
  v->src_mask = nb - 1;
  uint64_t k[2];
  if (wr_random_bytes(k, sizeof(k)) != 0) {
    free(v->srcs);
    v->srcs = NULL;
    return WR_ERR_IO;
  }
  v->sip_k0 = k[0];
  v->sip_k1 = k[1];
  return WR_OK;
}

void wr__visitor_limits_free(wr_visitor *v) {
  for (size_t i = 0; v->srcs && i <= v->src_mask; i++) {
    vsrc *e = v->srcs[i];
    while (e) {
      vsrc *n = e->hnext;
      free(e);
      e = n;
    }
  }
  free(v->srcs);
  v->srcs = NULL;
}
