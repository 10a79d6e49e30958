/* Quick tunnels: POST /tunnel on the API listener, the request cloudflared's
 * `tunnel --url` (quick_tunnel.go) sends to --quick-service, and their
 * expiry.
 *
 * The request is unauthenticated, as trycloudflare's is, so it is bounded
 * twice: per source (a wr_throttle table in which every creation counts as
 * a "failure": the first quick_per_source are free, then the source waits,
 * doubling) and in total (quick_max live quick tunnels). A quick tunnel is
 * an ordinary tunnel of the configured account named "quick-<hex>" with one
 * DNS route <words>-<hex>.<zone>; wr_api_quick_sweep deletes it (and so its
 * route) once no connector has been connected for quick_idle_s.
 *
 * The answer is cloudflared's QuickTunnelResponse: {"success":true,
 * "result":{"id","name","hostname","account_tag","secret"}} with the secret
 * in standard base64 (Go's []byte). "url" is added (cloudflared ignores it):
 * the URL that works through this edge's visitor front, which is plain
 * HTTP; cloudflared itself always prints https://HOSTNAME. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/api_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"

#define QUICK_PREFIX "quick-"
#define QUICK_ACTOR "quick-tunnel"

/* Short words for readable names, as trycloudflare's four-word ones. */
static const char *const words[] = {
    "amber", "brook", "cedar", "delta", "ember", "fable", "grove", "harbor",
    "island", "jolly", "kettle", "lumen", "maple", "nectar", "orbit", "pebble",
    "quartz", "river", "sable", "timber", "umber", "velvet", "willow", "zephyr",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

/* The configured account (ID or name). 0, or -1 after answering. */
static int quick_account(wr__api_ctx *c, wr_account *out) {
  wr_api *a = c->api;
  wr_account *all = NULL;
  size_t n = 0, found = 0;
  if (wr_store_account_list(c->store, &all, &n) != WR_OK) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot read the accounts");
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if ((strcmp(all[i].id, a->quick_account) == 0 || strcmp(all[i].name, a->quick_account) == 0) &&
        !found++)
      *out = all[i];
  free(all);
  if (found == 1) return 0;
  wr__api_err(c, 503, WR_API_CODE_INTERNAL,
              "quick tunnels are misconfigured on this edge: account %s %s", a->quick_account,
              found ? "is ambiguous" : "does not exist");
  return -1;
}

/* --quick-tunnels-zone, else the account's first zone. 0, or -1 after
 * answering. */
static int quick_zone(wr__api_ctx *c, const char *account_id, wr_zone *out) {
  wr_zone *zones = NULL;
  size_t n = 0;
  int found = 0;
  const char *want = c->api->quick_zone;
  if (wr_store_zone_list(c->store, account_id, &zones, &n) != WR_OK) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot read the zones");
    return -1;
  }
  for (size_t i = 0; i < n && !found; i++)
    if (!want || strcmp(zones[i].name, want) == 0 || strcmp(zones[i].id, want) == 0) {
      *out = zones[i];
      found = 1;
    }
  free(zones);
  if (found) return 0;
  wr__api_err(c, 503, WR_API_CODE_INTERNAL,
              "quick tunnels are misconfigured on this edge: the account has no zone%s%s",
              want ? " " : "", want ? want : "");
  return -1;
}

/* The source's wait, read on the loop (the throttle is the loop's). */
typedef struct quick_gate {
  wr__api_ctx *c;
  uint64_t wait;
} quick_gate;

static void gate_check(void *arg) {
  quick_gate *g = arg;
  g->wait = wr_throttle_check(g->c->api->quick_rl, g->c->source, g->c->now);
}

static void gate_record(void *arg) {
  quick_gate *g = arg;
  wr_throttle_record(g->c->api->quick_rl, g->c->source, g->c->now, WR_THROTTLE_FAILURE, NULL);
}

/* The per-source and total bounds. 0, or -1 after answering 429 (503
 * when the edge is stopping). */
static int quick_limits(wr__api_ctx *c, const char *account_id) {
  wr_api *a = c->api;
  quick_gate g = {c, 0};
  if (wr__api_on_loop(c, gate_check, &g) != 0) {
    wr__api_err(c, 503, WR_API_CODE_INTERNAL, "the edge is stopping; try again");
    return -1;
  }
  if (g.wait) {
    snprintf(c->retry_buf, sizeof(c->retry_buf), "%llu", (unsigned long long)((g.wait + 999) / 1000));
    c->retry_after = c->retry_buf;
    wr__api_err(c, 429, WR_API_CODE_RATE_LIMIT,
                "too many quick tunnels from %s; retry in %s s", c->source, c->retry_buf);
    return -1;
  }
  wr_tunnel_filter f = {.account_id = account_id, .name_prefix = QUICK_PREFIX};
  size_t live = 0;
  if (wr_store_tunnel_count(c->store, &f, &live) != WR_OK) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "cannot count the quick tunnels");
    return -1;
  }
  if (live >= a->quick_max) {
    wr__api_err(c, 429, WR_API_CODE_LIMIT,
                "this edge already serves %zu quick tunnels, its limit; try again later", live);
    return -1;
  }
  /* Counted in the same store-thread job as the check: the jobs run one
   * at a time, so two requests cannot both pass on the same count. */
  if (wr__api_on_loop(c, gate_record, &g) != 0) {
    wr__api_err(c, 503, WR_API_CODE_INTERNAL, "the edge is stopping; try again");
    return -1;
  }
  return 0;
}

static json_t *quick_result(const wr_api *a, const wr_tunnel *t, const char *host) {
  char b64[WR_BASE64_ENCODED_SIZE(WR_STORE_SECRET_MAX)], url[WR_STORE_HOST_MAX + 96];
  wr_base64_encode(t->secret, t->secret_len, b64, sizeof(b64), 1);
  if (a->quick_url_port && a->quick_url_port != 80)
    snprintf(url, sizeof(url), "http://%s:%u", host, a->quick_url_port);
  else
    snprintf(url, sizeof(url), "http://%s", host);
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", t->id, "name", t->name, "hostname", host,
                        "account_tag", t->account_id, "secret", b64, "url", url);
  explicit_bzero(b64, sizeof(b64));
  return j;
}

/* Creates the tunnel and its route; answers. */
static void quick_create(wr__api_ctx *c, const wr_account *acct, const wr_zone *z) {
  wr_api *a = c->api;
  wr_store *s = c->store;
  uint8_t rnd[8];
  char name[32], host[WR_STORE_HOST_MAX + 64];
  wr_tunnel t;
  wr_route r;
  wr_route_change ch;
  if (wr_random_bytes(rnd, sizeof(rnd)) != 0) {
    wr__api_err(c, 500, WR_API_CODE_INTERNAL, "no randomness");
    return;
  }
  snprintf(name, sizeof(name), QUICK_PREFIX "%02x%02x%02x%02x%02x", rnd[3], rnd[4], rnd[5], rnd[6],
           rnd[7]);
  snprintf(host, sizeof(host), "%s-%s-%s-%s.%s", words[rnd[0] % NWORDS], words[rnd[1] % NWORDS],
           words[rnd[2] % NWORDS], name + strlen(QUICK_PREFIX), z->name);
  if (strlen(host) > WR_STORE_HOST_MAX) {
    wr__api_err(c, 503, WR_API_CODE_INTERNAL, "the quick tunnels' zone name is too long");
    return;
  }
  int rv = wr_store_tunnel_create_ex(s, QUICK_ACTOR, acct->id, name, NULL, 0, 0, 0, &t);
  if (rv != WR_OK) {
    wr__api_store_err(c, rv, "creating the quick tunnel");
    return;
  }
  rv = wr_store_route_dns_add(s, QUICK_ACTOR, z->id, t.id, host, 0, &r, &ch);
  if (rv != WR_OK) {
    size_t gone = 0;
    wr_store_tunnel_delete(s, QUICK_ACTOR, t.id, &gone);
    explicit_bzero(&t, sizeof(t));
    wr__api_store_err(c, rv, "routing the quick tunnel");
    return;
  }
  wr__api_route_event(c, WR_API_ROUTE_SET, host, t.id);
  wr_info("api: quick tunnel %s (%s) for %s at %s", t.name, t.id, c->actor, host);
  json_t *j = quick_result(a, &t, host);
  explicit_bzero(&t, sizeof(t));
  wr__api_ok(c, j, NULL);
}

int wr__api_quick_pre(wr__api_ctx *c) {
  wr_api *a = c->api;
  if (strcmp(c->method, "POST") != 0) {
    wr__api_method(c, "POST");
    return -1;
  }
  if (!a->quick_account) {
    wr__api_err(c, 404, WR_API_CODE_NOTFOUND,
                "quick tunnels are not enabled on this edge (warren-edge run --quick-tunnels-account)");
    return -1;
  }
  wr_throttle_source_key(&c->req->peer, c->source);
  snprintf(c->actor, sizeof(c->actor), "%s", c->source);
  c->now = a->now_ms ? a->now_ms(a->now_user) : (uint64_t)time(NULL) * 1000;
  return 0;
}

void wr__api_quick(wr__api_ctx *c) {
  wr_account acct;
  wr_zone z;
  if (quick_account(c, &acct) != 0 || quick_zone(c, acct.id, &z) != 0 || quick_limits(c, acct.id) != 0)
    return;
  quick_create(c, &acct, &z);
}

/* A sweep: the store work on the store thread (or the loop without one),
 * then the route hooks told on the loop of the tunnels it deleted. */
typedef struct sweep_job {
  wr_api *a; /* only its settings are read off the loop */
  char (*gone)[WR_STORE_UUID_LEN + 1];
  size_t ngone;
} sweep_job;

/* Deletes the idle quick tunnels through |s|; returns how many. */
static size_t sweep_store(sweep_job *j, wr_store *s) {
  wr_api *a = j->a;
  wr_account acct;
  wr_tunnel *rows = NULL;
  size_t n = 0;
  int found = 0;
  wr_account *all = NULL;
  size_t na = 0;
  if (wr_store_account_list(s, &all, &na) != WR_OK) return 0;
  for (size_t i = 0; i < na && !found; i++)
    if (strcmp(all[i].id, a->quick_account) == 0 || strcmp(all[i].name, a->quick_account) == 0) {
      acct = all[i];
      found = 1;
    }
  free(all);
  wr_tunnel_filter f = {.account_id = acct.id, .name_prefix = QUICK_PREFIX};
  if (!found || wr_store_tunnel_list(s, &f, &rows, &n) != WR_OK) return 0;
  int64_t now = (int64_t)time(NULL);
  for (size_t i = 0; i < n; i++) {
    wr_tunnel *t = &rows[i];
    int64_t active_at = 0, inactive_at = 0;
    if (t->active_conns) continue;
    wr_store_tunnel_conn_times(s, t->id, &active_at, &inactive_at);
    int64_t idle_since = inactive_at > t->created_at ? inactive_at : t->created_at;
    if (now - idle_since < a->quick_idle_s) continue;
    size_t routes = 0;
    if (wr_store_tunnel_delete(s, QUICK_ACTOR, t->id, &routes) != WR_OK) {
      wr_warn("quick tunnel %s: cannot delete: %s", t->id, wr_store_errmsg(s));
      continue;
    }
    wr_info("quick tunnel %s (%s) expired: no connector for %lld s", t->name, t->id,
            (long long)(now - idle_since));
    j->gone = wr_xrealloc(j->gone, (j->ngone + 1) * sizeof(*j->gone));
    snprintf(j->gone[j->ngone++], sizeof(j->gone[0]), "%s", t->id);
  }
  explicit_bzero(rows, n * sizeof(*rows));
  free(rows);
  return j->ngone;
}

/* Loop thread: the route hooks of the deleted tunnels; frees |j|. */
static void sweep_finish(sweep_job *j) {
  for (size_t i = 0; i < j->ngone && !j->a->stopping; i++)
    wr__api_route_notify(j->a, WR_API_TUNNEL_DELETED, NULL, j->gone[i]);
  free(j->gone);
  free(j);
}

static void sweep_run(wr_store *s, void *arg) { sweep_store(arg, s); }

static void sweep_done(void *arg, int status) {
  sweep_job *j = arg;
  j->a->quick_sweeping = 0;
  if (status != WR_OK) j->ngone = 0; /* the store thread stopped first: nothing was deleted */
  sweep_finish(j);
}

size_t wr_api_quick_sweep(wr_api *a) {
  if (!a->quick_account) return 0;
  sweep_job *j = wr_xcalloc(1, sizeof(*j));
  j->a = a;
  if (!a->async) {
    size_t removed = sweep_store(j, a->store);
    sweep_finish(j);
    return removed;
  }
  /* One sweep at a time: a slow store does not pile them up. */
  if (a->quick_sweeping || wr_store_async_owner_submit(a->async, &a->jobs, sweep_run, sweep_done, j) != WR_OK) {
    free(j);
    return 0;
  }
  a->quick_sweeping = 1;
  return 0;
}
