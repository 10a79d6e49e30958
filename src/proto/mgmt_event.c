/* Management log stream events; see mgmt_event.h. */
#include "proto/mgmt_event.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const event_names[] = {"cloudflared", "http", "tcp", "udp"};

static int name_index(const char *const *names, size_t n, const char *s) {
  if (!s) return -1;
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) return (int)i;
  return -1;
}

int wr_mgmt_level_parse(const char *s) { return name_index(level_names, 4, s); }
int wr_mgmt_event_parse(const char *s) { return name_index(event_names, 4, s); }

const char *wr_mgmt_level_name(int level) {
  return level >= 0 && level < 4 ? level_names[level] : "";
}

const char *wr_mgmt_event_name(int event) {
  return event >= 0 && event < WR_MGMT_NEVENTS ? event_names[event] : "";
}

void wr_mgmt_filters_none(wr_mgmt_filters *f) {
  f->level = -1;
  f->events = 0;
  f->sampling = 0;
}

/* --- client events ---------------------------------------------------------------- */

/* The "filters" object of start_streaming. Returns WR_OK or WR_ERR_PROTO. */
static int filters_decode(json_t *jf, wr_mgmt_filters *f) {
  json_t *lv, *evs, *sm;
  wr_mgmt_filters_none(f);
  if (!jf || json_is_null(jf)) return WR_OK;
  if (!json_is_object(jf)) return WR_ERR_PROTO;
  lv = json_object_get(jf, "level");
  if (lv && !json_is_null(lv)) {
    if (!json_is_string(lv) || (f->level = wr_mgmt_level_parse(json_string_value(lv))) < 0)
      return WR_ERR_PROTO;
  }
  evs = json_object_get(jf, "events");
  if (evs && !json_is_null(evs)) {
    size_t i;
    json_t *e;
    if (!json_is_array(evs)) return WR_ERR_PROTO;
    json_array_foreach(evs, i, e) {
      int t = json_is_string(e) ? wr_mgmt_event_parse(json_string_value(e)) : -1;
      if (t < 0) return WR_ERR_PROTO;
      f->events |= 1u << t;
    }
  }
  sm = json_object_get(jf, "sampling");
  if (sm && !json_is_null(sm)) {
    double v;
    if (!json_is_number(sm)) return WR_ERR_PROTO;
    v = json_number_value(sm);
    /* Clamped as cloudflared's session.Filters (NaN compares false: 0). */
    f->sampling = v > 1 ? 1 : (v > 0 ? v : 0);
  }
  return WR_OK;
}

int wr_mgmt_client_event_decode(const char *json, size_t len, int *type, wr_mgmt_filters *f) {
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  const char *t;
  int rv = WR_ERR_PROTO;
  wr_mgmt_filters_none(f);
  if (!root) return WR_ERR_PROTO;
  if (!json_is_object(root)) goto out;
  t = json_string_value(json_object_get(root, "type"));
  if (!t) goto out;
  if (strcmp(t, "start_streaming") == 0) {
    *type = WR_MGMT_START_STREAMING;
    rv = filters_decode(json_object_get(root, "filters"), f);
  } else if (strcmp(t, "stop_streaming") == 0) {
    *type = WR_MGMT_STOP_STREAMING;
    rv = WR_OK;
  }
out:
  json_decref(root);
  return rv;
}

/* Appends |j| (consumed) as compact JSON to |out|. */
static int dump_to(json_t *j, wr_buf *out) {
  char *s;
  int rv;
  if (!j) return WR_ERR_NOMEM;
  s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(j);
  if (!s) return WR_ERR_NOMEM;
  rv = wr_buf_append_str(out, s);
  free(s);
  return rv;
}

int wr_mgmt_client_event_encode(int type, const wr_mgmt_filters *f, wr_buf *out) {
  json_t *root;
  if (type != WR_MGMT_START_STREAMING && type != WR_MGMT_STOP_STREAMING) return WR_ERR_INVAL;
  root = json_object();
  if (!root) return WR_ERR_NOMEM;
  json_object_set_new(root, "type", json_string(type == WR_MGMT_START_STREAMING
                                                    ? "start_streaming"
                                                    : "stop_streaming"));
  if (type == WR_MGMT_START_STREAMING && f &&
      (f->level >= 0 || f->events || (f->sampling > 0 && f->sampling < 1))) {
    json_t *jf = json_object();
    if (f->events) {
      json_t *a = json_array();
      for (int i = 0; i < WR_MGMT_NEVENTS; i++)
        if (f->events & (1u << i)) json_array_append_new(a, json_string(event_names[i]));
      json_object_set_new(jf, "events", a);
    }
    if (f->level >= 0 && f->level < 4)
      json_object_set_new(jf, "level", json_string(level_names[f->level]));
    if (f->sampling > 0) json_object_set_new(jf, "sampling", json_real(f->sampling));
    json_object_set_new(root, "filters", jf);
  }
  return dump_to(root, out);
}

int wr_mgmt_filters_match(const wr_mgmt_filters *f, int level, int event, unsigned rnd) {
  if (f->level >= 0 && f->level > level) return 0;
  if (f->events && (event < 0 || event >= WR_MGMT_NEVENTS || !(f->events & (1u << event))))
    return 0;
  if (f->sampling > 0 && f->sampling < 1 && rnd > (unsigned)(f->sampling * 100)) return 0;
  return 1;
}

/* --- server events ------------------------------------------------------------------ */

/* |s| with every non-ASCII byte as '?': the fallback for a string that is
 * not valid UTF-8. */
static json_t *ascii_string(const char *s) {
  size_t n = strlen(s);
  char *c = malloc(n + 1);
  json_t *j;
  if (!c) return NULL;
  for (size_t i = 0; i <= n; i++) c[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
  j = json_string(c);
  free(c);
  return j;
}

/* One log as a JSON object; |omit_zero|: level debug and event cloudflared
 * left out, as Go's omitempty. NULL on a bad log or out of memory. */
static json_t *log_json(const wr_mgmt_log *l, int omit_zero) {
  json_t *o;
  if (l->level < 0 || l->level > 3 || l->event < 0 || l->event >= WR_MGMT_NEVENTS) return NULL;
  o = json_object();
  if (!o) return NULL;
  if (l->time && l->time[0]) json_object_set_new(o, "time", json_string(l->time));
  if (!omit_zero || l->level) json_object_set_new(o, "level", json_string(level_names[l->level]));
  if (l->message && l->message[0]) {
    /* A message need not be UTF-8 (a visitor's bytes in a log line):
     * stored with its invalid bytes as they are would make jansson fail. */
    json_t *m = json_string(l->message);
    if (!m) m = ascii_string(l->message);
    json_object_set_new(o, "message", m);
  }
  if (!omit_zero || l->event) json_object_set_new(o, "event", json_string(event_names[l->event]));
  if (l->fields) {
    json_t *fj = json_loads(l->fields, 0, NULL);
    if (!json_is_object(fj)) {
      json_decref(fj);
      json_decref(o);
      return NULL;
    }
    if (json_object_size(fj))
      json_object_set_new(o, "fields", fj);
    else
      json_decref(fj);
  }
  return o;
}

int wr_mgmt_logs_encode(const wr_mgmt_log *logs, size_t n, wr_buf *out) {
  json_t *root = json_object(), *arr = json_array();
  if (!root || !arr) {
    json_decref(root);
    json_decref(arr);
    return WR_ERR_NOMEM;
  }
  json_object_set_new(root, "type", json_string("logs"));
  json_object_set_new(root, "logs", arr);
  for (size_t i = 0; i < n; i++) {
    json_t *o = log_json(&logs[i], 0);
    if (!o) {
      json_decref(root);
      return WR_ERR_INVAL;
    }
    json_array_append_new(arr, o);
  }
  return dump_to(root, out);
}

/* Reads one log object into |l|; |fields| gets a malloc'd string or NULL.
 * Returns WR_OK or WR_ERR_PROTO. */
static int log_decode(json_t *o, wr_mgmt_log *l, char **fields) {
  json_t *t = json_object_get(o, "time"), *lv = json_object_get(o, "level"),
         *m = json_object_get(o, "message"), *e = json_object_get(o, "event"),
         *fj = json_object_get(o, "fields");
  memset(l, 0, sizeof(*l));
  *fields = NULL;
  if (!json_is_object(o)) return WR_ERR_PROTO;
  if ((t && !json_is_string(t)) || (m && !json_is_string(m))) return WR_ERR_PROTO;
  l->time = t ? json_string_value(t) : "";
  l->message = m ? json_string_value(m) : "";
  l->level = WR_MGMT_DEBUG;
  if (lv && (!json_is_string(lv) || (l->level = wr_mgmt_level_parse(json_string_value(lv))) < 0))
    return WR_ERR_PROTO;
  l->event = WR_MGMT_EV_CLOUDFLARED;
  if (e && (!json_is_string(e) || (l->event = wr_mgmt_event_parse(json_string_value(e))) < 0))
    return WR_ERR_PROTO;
  if (fj && !json_is_null(fj)) {
    if (!json_is_object(fj)) return WR_ERR_PROTO;
    *fields = json_dumps(fj, JSON_COMPACT | JSON_SORT_KEYS);
    if (!*fields) return WR_ERR_PROTO;
    l->fields = *fields;
  }
  return WR_OK;
}

int wr_mgmt_logs_decode(const char *json, size_t len,
                        int (*cb)(void *user, const wr_mgmt_log *log), void *user) {
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *arr, *o;
  const char *t;
  size_t i;
  int rv = WR_ERR_PROTO;
  if (!root) return WR_ERR_PROTO;
  t = json_string_value(json_object_get(root, "type"));
  arr = json_object_get(root, "logs");
  if (!t || strcmp(t, "logs") != 0 || (arr && !json_is_array(arr) && !json_is_null(arr)))
    goto out;
  rv = WR_OK;
  json_array_foreach(arr, i, o) {
    wr_mgmt_log l;
    char *fields;
    rv = log_decode(o, &l, &fields);
    if (rv == WR_OK) rv = cb(user, &l);
    free(fields);
    if (rv != WR_OK) break;
  }
out:
  json_decref(root);
  return rv;
}

int wr_mgmt_log_format(const wr_mgmt_log *l, int json, wr_buf *out) {
  int rv;
  if (json) {
    json_t *o = log_json(l, 1);
    if (!o) return WR_ERR_INVAL;
    rv = dump_to(o, out);
    return rv == WR_OK ? wr_buf_append(out, "\n", 1) : rv;
  }
  return wr_buf_printf(out, "%s %s %s %s %s\n", l->time ? l->time : "",
                       wr_mgmt_level_name(l->level), wr_mgmt_event_name(l->event),
                       l->message ? l->message : "", l->fields ? l->fields : "null");
}
