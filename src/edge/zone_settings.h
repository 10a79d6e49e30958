/* Per-zone HTTPS options, as Cloudflare's zone settings name them:
 *   always_use_https   plain-HTTP visitors get 301 to the https:// URL
 *   security_header    HSTS: Strict-Transport-Security on HTTPS answers
 *                      (enabled, max_age, include_subdomains, preload,
 *                      nosniff adds X-Content-Type-Options: nosniff)
 *   min_tls_version    "1.2" or "1.3" (1.0 and 1.1 are not offered at all)
 * Stored in the edge store (table zone_settings; a zone without a row has
 * the defaults: off, off, "1.2"), and kept by the edge in memory
 * (wr_zone_cache) so that visitors never wait for the store: the cache is
 * reloaded on the store thread every couple of seconds, and the API's own
 * changes are put in at once. */
#ifndef WR_EDGE_ZONE_SETTINGS_H
#define WR_EDGE_ZONE_SETTINGS_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/store.h"
#include "edge/store_async.h"

typedef struct wr_zone_settings {
  char zone_id[WR_STORE_ID_LEN + 1];
  char zone_name[WR_STORE_HOST_MAX + 1];
  int always_use_https;
  int hsts_enabled;
  int64_t hsts_max_age;        /* seconds */
  int hsts_include_subdomains;
  int hsts_preload;
  int hsts_nosniff;
  int min_tls_13;              /* 0: TLS 1.2 and 1.3; 1: TLS 1.3 only */
  int64_t modified_on;         /* Unix seconds of the last change; 0: never */
} wr_zone_settings;

/* The defaults of |zone| (ids and names copied by the caller). */
void wr_zone_settings_defaults(wr_zone_settings *z);

/* The settings of zone |zone_id| (its defaults if never set). WR_OK,
 * WR_ERR_NOTFOUND (no such zone), WR_ERR_STORE. */
int wr_store_zone_settings_get(wr_store *s, const char *zone_id, wr_zone_settings *out);
/* Replaces the settings of zone |in->zone_id| and audits the change
 * ("zone.settings"). WR_ERR_INVAL for a negative max_age. */
int wr_store_zone_settings_set(wr_store *s, const char *actor, const wr_zone_settings *in);
/* Every zone with its settings. *out is malloc'd. */
int wr_store_zone_settings_list(wr_store *s, wr_zone_settings **out, size_t *n);

/* 1 if |host| is |zone| or a name inside it. */
int wr_zone_contains(const char *zone, const char *host);

/* ---- the in-memory copy the visitor fronts read ----------------------------------- */

typedef struct wr_zone_cache wr_zone_cache;

/* Loads every zone's settings now (on the calling thread, once) and then
 * every |refresh_ms| (0: 2000) on |async|'s store thread (NULL: on the
 * loop through |store|). */
int wr_zone_cache_new(uv_loop_t *loop, wr_store *store, wr_store_async *async,
                      uint64_t refresh_ms, wr_zone_cache **out);
/* The settings of the most specific zone containing |host| (NULL: none);
 * valid until the next loop iteration. */
const wr_zone_settings *wr_zone_cache_find(wr_zone_cache *c, const char *host);
/* A change the API just stored: seen at once, before the next reload. */
void wr_zone_cache_put(wr_zone_cache *c, const wr_zone_settings *z);
/* Closes its timer; freed from the close callback (or after the job in
 * flight ends). */
void wr_zone_cache_free(wr_zone_cache *c);

#endif
