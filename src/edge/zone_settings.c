/* Per-zone HTTPS options: the store rows and the edge's in-memory copy;
 * see zone_settings.h. */
#include "edge/zone_settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/store_int.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

#define DEF_REFRESH_MS 2000

void wr_zone_settings_defaults(wr_zone_settings *z) {
  z->always_use_https = 0;
  z->hsts_enabled = 0;
  z->hsts_max_age = 0;
  z->hsts_include_subdomains = z->hsts_preload = z->hsts_nosniff = 0;
  z->min_tls_13 = 0;
  z->modified_on = 0;
}

int wr_zone_contains(const char *zone, const char *host) {
  size_t zl = strlen(zone), hl = strlen(host);
  if (hl == zl) return strcasecmp(zone, host) == 0;
  return hl > zl && host[hl - zl - 1] == '.' && strcasecmp(host + hl - zl, zone) == 0;
}

/* ---- store ------------------------------------------------------------------------ */

#define SETTINGS_SELECT                                                                   \
  "SELECT z.id, z.name, coalesce(s.always_use_https, 0), coalesce(s.hsts_enabled, 0),"        \
  " coalesce(s.hsts_max_age, 0), coalesce(s.hsts_include_subdomains, 0),"                     \
  " coalesce(s.hsts_preload, 0), coalesce(s.hsts_nosniff, 0), coalesce(s.min_tls_version, '1.2'),"\
  " coalesce(s.modified_on, 0) FROM zones z LEFT JOIN zone_settings s ON s.zone_id = z.id "

static void read_settings(wr_db_stmt *st, void *row) {
  static const wr__store_col cols[] = {
      WR__COL(WR__COL_TEXT, wr_zone_settings, zone_id),
      WR__COL(WR__COL_TEXT, wr_zone_settings, zone_name),
      WR__COL(WR__COL_BOOL, wr_zone_settings, always_use_https),
      WR__COL(WR__COL_BOOL, wr_zone_settings, hsts_enabled),
      WR__COL(WR__COL_INT64, wr_zone_settings, hsts_max_age),
      WR__COL(WR__COL_BOOL, wr_zone_settings, hsts_include_subdomains),
      WR__COL(WR__COL_BOOL, wr_zone_settings, hsts_preload),
      WR__COL(WR__COL_BOOL, wr_zone_settings, hsts_nosniff),
      {WR__COL_SKIP, 0, 0}, /* min_tls_version: below */
      WR__COL(WR__COL_INT64, wr_zone_settings, modified_on),
  };
  wr_zone_settings *z = row;
  memset(z, 0, sizeof(*z));
  wr__store_read_cols(st, cols, sizeof(cols) / sizeof(cols[0]), z);
  const char *v = wr_db_col_text(st, 8);
  z->min_tls_13 = v && strcmp(v, "1.3") == 0;
}

int wr_store_zone_settings_get(wr_store *s, const char *zone_id, wr_zone_settings *out) {
  return wr__store_one(
      s, "read zone settings", read_settings, out, "no zone with id %s", zone_id,
      SETTINGS_SELECT "WHERE z.id = lower(?)", "s", zone_id);
}

int wr_store_zone_settings_set(wr_store *s, const char *actor, const wr_zone_settings *in) {
  wr_zone z;
  if (in->hsts_max_age < 0) return wr__store_serr(s, WR_ERR_INVAL, "max_age must not be negative");
  int rv = wr__store_tx_begin(s);
  if (rv != WR_OK) return rv;
  if ((rv = wr_store_zone_get(s, in->zone_id, &z)) != WR_OK) goto out;
  rv = wr__store_execf(
      s, NULL, "write zone settings",
      "INSERT INTO zone_settings(zone_id, always_use_https, hsts_enabled, hsts_max_age,"
      " hsts_include_subdomains, hsts_preload, hsts_nosniff, min_tls_version, modified_on)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (zone_id) DO UPDATE SET"
      " always_use_https = excluded.always_use_https, hsts_enabled = excluded.hsts_enabled,"
      " hsts_max_age = excluded.hsts_max_age,"
      " hsts_include_subdomains = excluded.hsts_include_subdomains,"
      " hsts_preload = excluded.hsts_preload, hsts_nosniff = excluded.hsts_nosniff,"
      " min_tls_version = excluded.min_tls_version, modified_on = excluded.modified_on",
      "siiiiiisi", z.id, (int64_t)in->always_use_https, (int64_t)in->hsts_enabled,
      in->hsts_max_age, (int64_t)in->hsts_include_subdomains, (int64_t)in->hsts_preload,
      (int64_t)in->hsts_nosniff, in->min_tls_13 ? "1.3" : "1.2", wr__store_now(s));
  if (rv == WR_OK)
    rv = wr__store_audit_insert(
        s, actor, z.account_id, "zone.settings", "zone", z.id,
        json_pack("{s:s,s:b,s:b,s:I,s:b,s:s}", "zone", z.name, "always_use_https",
                  in->always_use_https, "hsts", in->hsts_enabled, "hsts_max_age",
                  (json_int_t)in->hsts_max_age, "hsts_include_subdomains",
                  in->hsts_include_subdomains, "min_tls_version", in->min_tls_13 ? "1.3" : "1.2"));
out:
  return wr__store_tx_end(s, rv);
}

int wr_store_zone_settings_list(wr_store *s, wr_zone_settings **out, size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "list zone settings", sizeof(**out), read_settings,
      SETTINGS_SELECT "ORDER BY z.name", "");
  return rv;
}

/* ---- the in-memory copy ----------------------------------------------------------- */

typedef struct load_job load_job;

struct wr_zone_cache {
  uv_loop_t *loop;
  wr_store *store;
  wr_store_async *async;
  uv_timer_t timer;
  wr_zone_settings *zones;
  size_t n;
  load_job *job;  /* in flight; its |c| is NULL once the cache is gone */
  int closing;
};

struct load_job {
  wr_zone_cache *c;
  int rv;
  wr_zone_settings *zones;
  size_t n;
};

static void swap_in(wr_zone_cache *c, wr_zone_settings *zones, size_t n) {
  free(c->zones);
  c->zones = zones;
  c->n = n;
}

static void job_run(wr_store *s, void *arg) {
  load_job *j = arg;
  j->rv = wr_store_zone_settings_list(s, &j->zones, &j->n);
}

static void job_done(void *arg, int status) {
  load_job *j = arg;
  wr_zone_cache *c = j->c;
  if (c) {
    c->job = NULL;
    if (status == WR_OK && j->rv == WR_OK) {
      swap_in(c, j->zones, j->n);
      j->zones = NULL;
    }
  }
  free(j->zones);
  free(j);
}

static void reload(uv_timer_t *t) {
  wr_zone_cache *c = t->data;
  if (c->async) {
    if (c->job) return; /* the last one is still running */
    load_job *j = wr_xcalloc(1, sizeof(*j));
    j->c = c;
    if (wr_store_async_submit(c->async, job_run, job_done, j) != WR_OK) {
      free(j);
      return;
    }
    c->job = j;
    return;
  }
  wr_zone_settings *z;
  size_t n;
  if (wr_store_zone_settings_list(c->store, &z, &n) == WR_OK) swap_in(c, z, n);
}

int wr_zone_cache_new(uv_loop_t *loop, wr_store *store, wr_store_async *async,
                      uint64_t refresh_ms, wr_zone_cache **out) {
  wr_zone_cache *c = wr_xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->store = store;
  c->async = async;
  int rv = wr_store_zone_settings_list(store, &c->zones, &c->n);
  if (rv != WR_OK) {
    free(c);
    return rv;
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  if (!refresh_ms) refresh_ms = DEF_REFRESH_MS;
  uv_timer_start(&c->timer, reload, refresh_ms, refresh_ms);
  uv_unref((uv_handle_t *)&c->timer);
  *out = c;
  return WR_OK;
}

const wr_zone_settings *wr_zone_cache_find(wr_zone_cache *c, const char *host) {
  const wr_zone_settings *best = NULL;
  if (!c) return NULL;
  for (size_t i = 0; i < c->n; i++)
    if (wr_zone_contains(c->zones[i].zone_name, host) &&
        (!best || strlen(c->zones[i].zone_name) > strlen(best->zone_name)))
      best = &c->zones[i];
  return best;
}

void wr_zone_cache_put(wr_zone_cache *c, const wr_zone_settings *z) {
  if (!c) return;
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->zones[i].zone_id, z->zone_id) == 0) {
      c->zones[i] = *z;
      return;
    }
  c->zones = wr_xrealloc(c->zones, (c->n + 1) * sizeof(*c->zones));
  c->zones[c->n++] = *z;
}

static void close_cb(uv_handle_t *h) {
  wr_zone_cache *c = h->data;
  free(c->zones);
  free(c);
}

void wr_zone_cache_free(wr_zone_cache *c) {
  if (!c || c->closing) return;
  c->closing = 1;
  if (c->job) c->job->c = NULL;
  uv_close((uv_handle_t *)&c->timer, close_cb);
}
