/* The API objects cloudflared decodes (cfapi.Tunnel, ActiveClient, Route,
 * DetailedRoute, VirtualNetwork), decoded with Go's encoding/json rules:
 * keys match case-insensitively, unknown keys are ignored, null leaves the
 * zero value (except for a route's network, whose UnmarshalJSON refuses
 * it), a wrong JSON type is an error naming the Go field. And Go's parsers
 * and String() forms for the values in them: RFC 3339 times, net.IP,
 * net.IPNet, uuid.UUID. See mgmt_int.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd/mgmt_int.h"
#include "lib/err.h"
#include "lib/mem.h"

#define UNEXPECTED "the Cloudflare API response was an unexpected type: "

/* ---- time -------------------------------------------------------------------- */

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in(int y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

int wr__mg_time_parse(const char *s, wr__mg_time *t) {
  const char *p = s;
  int oh = 0, om = 0;
  memset(t, 0, sizeof(*t));
  if (digits(&p, 4, &t->year) || *p++ != '-' || digits(&p, 2, &t->mon) || *p++ != '-' ||
      digits(&p, 2, &t->day) || *p++ != 'T' || digits(&p, 2, &t->hour) || *p++ != ':' ||
      digits(&p, 2, &t->min) || *p++ != ':' || digits(&p, 2, &t->sec))
    return WR_ERR_PROTO;
  if (*p == '.' || *p == ',') {
    int n = 0;
    p++;
    if (!isdigit((unsigned char)*p)) return WR_ERR_PROTO;
    while (isdigit((unsigned char)*p)) {
      if (n < 9) t->nsec = t->nsec * 10 + (uint32_t)(*p - '0');
      n++;
      p++;
    }
    for (; n < 9; n++) t->nsec *= 10;
  }
  if (*p == 'Z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1;
    if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
      return WR_ERR_PROTO;
    t->off_min = sign * (oh * 60 + om);
  } else {
    return WR_ERR_PROTO;
  }
  if (*p || t->mon < 1 || t->mon > 12 || t->day < 1 || t->day > days_in(t->year, t->mon) ||
      t->hour > 23 || t->min > 59 || t->sec > 59)
    return WR_ERR_PROTO;
  t->set = 1;
  return WR_OK;
}

static void zone_colon(const wr__mg_time *t, char *out, size_t cap) {
  int o = t->off_min;
  if (o == 0) snprintf(out, cap, "Z");
  else snprintf(out, cap, "%c%02d:%02d", o < 0 ? '-' : '+', abs(o) / 60, abs(o) % 60);
}

static void frac(uint32_t nsec, char *out, size_t cap) {
  char d[16];
  if (!nsec) {
    out[0] = '\0';
    return;
  }
  snprintf(d, sizeof(d), "%09u", nsec % 1000000000u);
  for (int i = 8; i > 0 && d[i] == '0'; i--) d[i] = '\0';
  snprintf(out, cap, ".%.9s", d);
}

static const wr__mg_time zero_time = {0, 1, 1, 1, 0, 0, 0, 0, 0};

/* Formats into a roomy buffer, then copies at most 63 bytes to |out|
 * (the compiler cannot see that the fields are in range). */
#define FMT64(out, ...)                                   \
  do {                                                    \
    char tmp_[192];                                       \
    snprintf(tmp_, sizeof(tmp_), __VA_ARGS__);            \
    snprintf((out), 64, "%.63s", tmp_);                   \
  } while (0)

void wr__mg_time_rfc3339(const wr__mg_time *t, char *out) {
  char z[16];
  if (!t->set) t = &zero_time;
  zone_colon(t, z, sizeof(z));
  FMT64(out, "%04d-%02d-%02dT%02d:%02d:%02d%s", t->year, t->mon, t->day, t->hour, t->min,
           t->sec, z);
}

void wr__mg_time_nano(const wr__mg_time *t, char *out) {
  char z[16], f[16];
  if (!t->set) t = &zero_time;
  zone_colon(t, z, sizeof(z));
  frac(t->nsec, f, sizeof(f));
  FMT64(out, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", t->year, t->mon, t->day, t->hour, t->min,
           t->sec, f, z);
}

void wr__mg_time_string(const wr__mg_time *t, char *out) {
  char f[16], off[16];
  if (!t->set) t = &zero_time;
  frac(t->nsec, f, sizeof(f));
  int o = t->off_min;
  snprintf(off, sizeof(off), "%c%02d%02d", o < 0 ? '-' : '+', abs(o) / 60, abs(o) % 60);
  /* A zero offset reads as UTC (Go's UTC or a Local that is UTC); other
   * offsets come from a FixedZone without a name, printed as the offset. */
  FMT64(out, "%04d-%02d-%02d %02d:%02d:%02d%s %s %s", t->year, t->mon, t->day, t->hour,
           t->min, t->sec, f, off, o == 0 ? "UTC" : off);
}

int wr__mg_time_is_zero(const wr__mg_time *t) {
  return !t->set || (wr__mg_time_unix(t) == wr__mg_time_unix(&zero_time) && t->nsec == 0);
}

int64_t wr__mg_time_unix(const wr__mg_time *t) {
  if (!t->set) t = &zero_time;
  /* days from civil (Howard Hinnant's algorithm), then the offset. */
  int64_t y = t->year - (t->mon <= 2);
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (t->mon + (t->mon > 2 ? -3 : 9)) + 2) / 5 + t->day - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return days * 86400 + t->hour * 3600 + t->min * 60 + t->sec - (int64_t)t->off_min * 60;
}

/* ---- IP and CIDR -------------------------------------------------------------- */

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int wr__mg_ip_parse(const char *s, wr__mg_ip *ip) {
  memset(ip, 0, sizeof(*ip));
  if (strchr(s, '.') && !strchr(s, ':')) {
    if (inet_pton(AF_INET, s, ip->b + 12) != 1) return WR_ERR_PROTO;
    memcpy(ip->b, v4_prefix, 12);
    ip->len = 16; /* net.ParseIP returns the 16-byte form */
    return WR_OK;
  }
  if (strchr(s, '%') || inet_pton(AF_INET6, s, ip->b) != 1) return WR_ERR_PROTO;
  ip->len = 16;
  return WR_OK;
}

static int ip_is_v4(const wr__mg_ip *ip) {
  return ip->len == 4 || (ip->len == 16 && memcmp(ip->b, v4_prefix, 12) == 0);
}

static const uint8_t *ip_v4(const wr__mg_ip *ip) { return ip->len == 4 ? ip->b : ip->b + 12; }

void wr__mg_ip_str(const wr__mg_ip *ip, char *out) {
  if (ip->len == 0) {
    snprintf(out, 64, "<nil>");
    return;
  }
  if (ip_is_v4(ip)) {
    const uint8_t *b = ip_v4(ip);
    snprintf(out, 64, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return;
  }
  /* RFC 5952 as Go writes it: the longest run (>= 2) of zero groups becomes
   * "::", the first one on a tie; groups in lower-case hex. */
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && ip->b[2 * j] == 0 && ip->b[2 * j + 1] == 0) j++;
    if (j - i > best_len && j - i >= 2) best = i, best_len = j - i;
    i = j > i ? j : i + 1;
  }
  size_t o = 0;
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      o += (size_t)snprintf(out + o, 64 - o, "::");
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) out[o++] = ':';
    o += (size_t)snprintf(out + o, 64 - o, "%x", (unsigned)(ip->b[2 * i] << 8 | ip->b[2 * i + 1]));
  }
  out[o] = '\0';
}

int wr__mg_cidr_parse(const char *s, wr__mg_cidr *c) {
  char addr[64];
  const char *slash = strchr(s, '/');
  memset(c, 0, sizeof(*c));
  if (!slash || (size_t)(slash - s) >= sizeof(addr) || !slash[1]) return WR_ERR_PROTO;
  memcpy(addr, s, (size_t)(slash - s));
  addr[slash - s] = '\0';
  int bits = 0;
  for (const char *p = slash + 1; *p; p++) {
    if (!isdigit((unsigned char)*p) || (bits = bits * 10 + (*p - '0')) > 128) return WR_ERR_PROTO;
  }
  wr__mg_ip ip;
  if (wr__mg_ip_parse(addr, &ip) != WR_OK) return WR_ERR_PROTO;
  int v4 = strchr(addr, ':') == NULL;
  if (v4) {
    if (bits > 32) return WR_ERR_PROTO;
    memcpy(c->ip.b, ip.b + 12, 4);
    c->ip.len = 4;
  } else {
    c->ip = ip;
  }
  c->bits = bits;
  int nbytes = c->ip.len;
  for (int i = 0; i < nbytes; i++) {
    int keep = bits - 8 * i;
    uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    c->ip.b[i] &= mask;
  }
  return WR_OK;
}

void wr__mg_cidr_str(const wr__mg_cidr *c, char *out) {
  char ip[48];
  if (c->ip.len == 0) {
    snprintf(out, 64, "<nil>");
    return;
  }
  wr__mg_ip_str(&c->ip, ip);
  snprintf(out, 64, "%.47s/%d", ip, c->bits & 0xff);
}

/* ---- uuid.Parse ------------------------------------------------------------------ */

/* google/uuid's Parse: canonical, {canonical}, urn:uuid:canonical, or 32
 * hex digits. Returns WR_OK, or WR_ERR_PROTO with Go's message. */
static int go_uuid_parse(const char *s, wr_uuid *u, char *why, size_t whylen) {
  size_t n = strlen(s);
  char canon[37];
  if (n == 36 + 9) {
    if (strncasecmp(s, "urn:uuid:", 9) != 0) goto bad_urn;
    s += 9;
    n = 36;
  } else if (n == 38) {
    if (s[0] != '{' || s[37] != '}') goto bad_format;
    s++;
    n = 36;
  } else if (n == 32) {
    for (int i = 0, o = 0; i < 32; i++) {
      if (o == 8 || o == 13 || o == 18 || o == 23) canon[o++] = '-';
      canon[o++] = s[i];
    }
    canon[36] = '\0';
    s = canon;
    n = 36;
  } else if (n != 36) {
    snprintf(why, whylen, "invalid UUID length: %zu", strlen(s));
    return WR_ERR_PROTO;
  }
  if (wr_uuid_parse(s, 36, u) == WR_OK) return WR_OK;
bad_format:
  snprintf(why, whylen, "invalid UUID format");
  return WR_ERR_PROTO;
bad_urn:
  snprintf(why, whylen, "invalid urn prefix: %.9s", s);
  return WR_ERR_PROTO;
}

int wr__mg_uuid_parse(const char *s, wr_uuid *u, char *why, size_t whylen) {
  return go_uuid_parse(s, u, why, whylen);
}

/* ---- decoding --------------------------------------------------------------------- */

/* Go's json field lookup: an exact key first, else a case-insensitive one. */
static const json_t *jfield(const json_t *o, const char *key) {
  const char *k;
  json_t *v;
  const json_t *ci = NULL;
  if (!json_is_object(o)) return NULL;
  if ((v = json_object_get(o, key))) return v;
  json_object_foreach((json_t *)o, k, v) {
    if (!ci && strcasecmp(k, key) == 0) ci = v;
  }
  return ci;
}

static const char *jkind(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "bool";
  default: return "null";
  }
}

static int type_err(wr__mg_err *e, const json_t *j, const char *gotype, const char *key,
                    const char *want) {
  wr__mg_errf(e, UNEXPECTED "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
          jkind(j), gotype, key, want);
  return WR_ERR_PROTO;
}

typedef struct dec {
  const json_t *obj;
  const char *gotype; /* "Tunnel", ... for messages */
  wr__mg_err *e;
  int rv;
} dec;

static const json_t *dget(dec *d, const char *key) {
  const json_t *v = jfield(d->obj, key);
  return v && !json_is_null(v) ? v : NULL;
}

static void d_str(dec *d, const char *key, char **out) {
  const json_t *v = dget(d, key);
  if (d->rv) return;
  if (v && !json_is_string(v)) {
    d->rv = type_err(d->e, v, d->gotype, key, "string");
    return;
  }
  free(*out);
  *out = wr_xstrdup(v ? json_string_value(v) : "");
}

static void d_bool(dec *d, const char *key, int *out) {
  const json_t *v = dget(d, key);
  if (d->rv || !v) return;
  if (!json_is_boolean(v)) {
    d->rv = type_err(d->e, v, d->gotype, key, "bool");
    return;
  }
  *out = json_is_true(v);
}

static void d_uuid(dec *d, const char *key, wr_uuid *out) {
  const json_t *v = dget(d, key);
  char why[128];
  if (d->rv || !v) return;
  if (!json_is_string(v)) {
    d->rv = type_err(d->e, v, d->gotype, key, "uuid.UUID");
    return;
  }
  if (go_uuid_parse(json_string_value(v), out, why, sizeof(why)) != WR_OK) {
    wr__mg_errf(d->e, UNEXPECTED "%s", why);
    d->rv = WR_ERR_PROTO;
  }
}

static void d_time(dec *d, const char *key, wr__mg_time *out) {
  const json_t *v = dget(d, key);
  if (d->rv || !v) return;
  if (!json_is_string(v)) {
    d->rv = type_err(d->e, v, d->gotype, key, "time.Time");
    return;
  }
  if (wr__mg_time_parse(json_string_value(v), out) != WR_OK) {
    wr__mg_errf(d->e, UNEXPECTED "parsing time \"\\\"%s\\\"\" as \"\\\"2006-01-02T15:04:05Z07:00\\\"\": "
            "cannot parse as RFC 3339", json_string_value(v));
    d->rv = WR_ERR_PROTO;
  }
}

static void d_ip(dec *d, const char *key, wr__mg_ip *out) {
  const json_t *v = dget(d, key);
  if (d->rv || !v) return;
  if (!json_is_string(v)) {
    d->rv = type_err(d->e, v, d->gotype, key, "net.IP");
    return;
  }
  if (!*json_string_value(v)) {
    memset(out, 0, sizeof(*out));
    return;
  }
  if (wr__mg_ip_parse(json_string_value(v), out) != WR_OK) {
    wr__mg_errf(d->e, UNEXPECTED "invalid IP address: %s", json_string_value(v));
    d->rv = WR_ERR_PROTO;
  }
}

static int decode_conn(const json_t *j, wr__mg_conn *c, wr__mg_err *e) {
  dec d = {j, "Connection", e, 0};
  memset(c, 0, sizeof(*c));
  if (!json_is_object(j) && !json_is_null(j)) {
    wr__mg_errf(e, UNEXPECTED "json: cannot unmarshal %s into Go value of type cfapi.Connection", jkind(j));
    return WR_ERR_PROTO;
  }
  d_str(&d, "colo_name", &c->colo_name);
  d_uuid(&d, "id", &c->id);
  d_bool(&d, "is_pending_reconnect", &c->pending);
  d_ip(&d, "origin_ip", &c->origin_ip);
  d_time(&d, "opened_at", &c->opened_at);
  if (!c->colo_name) c->colo_name = wr_xstrdup("");
  return d.rv;
}

static void conns_free(wr__mg_conn *c, size_t n) {
  for (size_t i = 0; i < n; i++) free(c[i].colo_name);
  free(c);
}

static void d_conns(dec *d, const char *key, wr__mg_conn **out, size_t *n, int *is_null) {
  const json_t *v = dget(d, key);
  *out = NULL;
  *n = 0;
  *is_null = 1;
  if (d->rv || !v) return;
  if (!json_is_array(v)) {
    d->rv = type_err(d->e, v, d->gotype, key, "[]cfapi.Connection");
    return;
  }
  *is_null = 0;
  *out = wr_xcalloc(json_array_size(v) + 1, sizeof(**out));
  for (size_t i = 0; i < json_array_size(v); i++) {
    if ((d->rv = decode_conn(json_array_get(v, i), &(*out)[i], d->e)) != WR_OK) {
      conns_free(*out, i + 1);
      *out = NULL;
      return;
    }
    (*n)++;
  }
}

static int not_object(const json_t *j, const char *type, wr__mg_err *e) {
  wr__mg_errf(e, UNEXPECTED "json: cannot unmarshal %s into Go value of type %s", jkind(j), type);
  return WR_ERR_PROTO;
}

int wr__mg_decode_tunnel(const json_t *j, wr__mg_tunnel *t, wr__mg_err *e) {
  dec d = {j, "Tunnel", e, 0};
  memset(t, 0, sizeof(*t));
  t->conns_null = 1;
  if (!json_is_object(j) && !json_is_null(j)) return not_object(j, "cfapi.Tunnel", e);
  d_uuid(&d, "id", &t->id);
  d_str(&d, "name", &t->name);
  d_time(&d, "created_at", &t->created_at);
  d_time(&d, "deleted_at", &t->deleted_at);
  d_conns(&d, "connections", &t->conns, &t->nconns, &t->conns_null);
  d.gotype = "TunnelWithToken";
  d_str(&d, "token", &t->token);
  if (!t->name) t->name = wr_xstrdup("");
  if (!t->token) t->token = wr_xstrdup("");
  if (d.rv) wr__mg_tunnel_free(t);
  return d.rv;
}

void wr__mg_tunnel_free(wr__mg_tunnel *t) {
  if (!t) return;
  free(t->name);
  free(t->token);
  conns_free(t->conns, t->nconns);
  memset(t, 0, sizeof(*t));
}

void wr__mg_tunnels_free(wr__mg_tunnel *t, size_t n) {
  for (size_t i = 0; i < n; i++) wr__mg_tunnel_free(&t[i]);
  free(t);
}

/* Decodes a JSON array (or null) of |size|-byte elements with |one|. */
static int decode_array(const json_t *j, const char *type, size_t size,
                        int (*one)(const json_t *, void *, wr__mg_err *), void (*fr)(void *),
                        void **out, size_t *n, int *is_null, wr__mg_err *e) {
  *out = NULL;
  *n = 0;
  *is_null = json_is_null(j);
  if (*is_null) return WR_OK;
  if (!json_is_array(j)) return not_object(j, type, e);
  uint8_t *arr = wr_xcalloc(json_array_size(j) + 1, size);
  for (size_t i = 0; i < json_array_size(j); i++) {
    if (one(json_array_get(j, i), arr + i * size, e) != WR_OK) {
      for (size_t k = 0; k < i; k++) fr(arr + k * size);
      free(arr);
      return WR_ERR_PROTO;
    }
  }
  *out = arr;
  *n = json_array_size(j);
  return WR_OK;
}

static int one_tunnel(const json_t *j, void *o, wr__mg_err *e) { return wr__mg_decode_tunnel(j, o, e); }
static void fr_tunnel(void *o) { wr__mg_tunnel_free(o); }

int wr__mg_decode_tunnels(const json_t *j, wr__mg_tunnel **out, size_t *n, int *is_null, wr__mg_err *e) {
  return decode_array(j, "[]*cfapi.Tunnel", sizeof(wr__mg_tunnel), one_tunnel, fr_tunnel, (void **)out, n,
                      is_null, e);
}

static void client_free(wr__mg_client_info *c) {
  for (size_t i = 0; i < c->nfeatures; i++) free(c->features[i]);
  free(c->features);
  free(c->version);
  free(c->arch);
  conns_free(c->conns, c->nconns);
  memset(c, 0, sizeof(*c));
}

static int one_client(const json_t *j, void *o, wr__mg_err *e) {
  wr__mg_client_info *c = o;
  dec d = {j, "ActiveClient", e, 0};
  memset(c, 0, sizeof(*c));
  c->features_null = c->conns_null = 1;
  if (!json_is_object(j) && !json_is_null(j)) return not_object(j, "cfapi.ActiveClient", e);
  d_uuid(&d, "id", &c->id);
  const json_t *f = dget(&d, "features");
  if (f && !json_is_array(f)) d.rv = type_err(e, f, "ActiveClient", "features", "[]string");
  if (!d.rv && f) {
    c->features_null = 0;
    c->features = wr_xcalloc(json_array_size(f) + 1, sizeof(char *));
    for (size_t i = 0; i < json_array_size(f) && !d.rv; i++) {
      const json_t *s = json_array_get(f, i);
      if (!json_is_string(s) && !json_is_null(s)) d.rv = type_err(e, s, "ActiveClient", "features", "string");
      else c->features[c->nfeatures++] = wr_xstrdup(json_is_string(s) ? json_string_value(s) : "");
    }
  }
  d_str(&d, "version", &c->version);
  d_str(&d, "arch", &c->arch);
  d_time(&d, "run_at", &c->run_at);
  d_conns(&d, "conns", &c->conns, &c->nconns, &c->conns_null);
  if (!c->version) c->version = wr_xstrdup("");
  if (!c->arch) c->arch = wr_xstrdup("");
  if (d.rv) client_free(c);
  return d.rv;
}
static void fr_client(void *o) { client_free(o); }

int wr__mg_decode_clients(const json_t *j, wr__mg_client_info **out, size_t *n, int *is_null, wr__mg_err *e) {
  return decode_array(j, "[]*cfapi.ActiveClient", sizeof(wr__mg_client_info), one_client, fr_client,
                      (void **)out, n, is_null, e);
}

void wr__mg_clients_free(wr__mg_client_info *c, size_t n) {
  for (size_t i = 0; i < n; i++) client_free(&c[i]);
  free(c);
}

int wr__mg_decode_route(const json_t *j, wr__mg_route *r, wr__mg_err *e) {
  dec d = {j, "DetailedRoute", e, 0};
  memset(r, 0, sizeof(*r));
  if (!json_is_object(j) && !json_is_null(j)) return not_object(j, "cfapi.DetailedRoute", e);
  /* CIDR has its own UnmarshalJSON: null and "" are errors, absence is not. */
  const json_t *net = jfield(j, "network");
  if (net) {
    const char *s = json_is_string(net) ? json_string_value(net) : "";
    if (!json_is_string(net) && !json_is_null(net)) {
      wr__mg_errf(e, UNEXPECTED "error parsing cidr string: json: cannot unmarshal %s into Go value of type string",
              jkind(net));
      return WR_ERR_PROTO;
    }
    if (wr__mg_cidr_parse(s, &r->network) != WR_OK) {
      wr__mg_errf(e, UNEXPECTED "error parsing invalid network from backend: invalid CIDR address: %s", s);
      return WR_ERR_PROTO;
    }
  }
  d_uuid(&d, "tunnel_id", &r->tunnel_id);
  const json_t *vn = dget(&d, "virtual_network_id");
  if (vn) {
    d_uuid(&d, "virtual_network_id", &r->vnet_id);
    r->has_vnet = 1;
  }
  d_str(&d, "comment", &r->comment);
  d_time(&d, "created_at", &r->created_at);
  d_time(&d, "deleted_at", &r->deleted_at);
  d_str(&d, "tunnel_name", &r->tunnel_name);
  if (!r->comment) r->comment = wr_xstrdup("");
  if (!r->tunnel_name) r->tunnel_name = wr_xstrdup("");
  if (d.rv) wr__mg_route_free(r);
  return d.rv;
}

void wr__mg_route_free(wr__mg_route *r) {
  if (!r) return;
  free(r->comment);
  free(r->tunnel_name);
  memset(r, 0, sizeof(*r));
}

static int one_route(const json_t *j, void *o, wr__mg_err *e) { return wr__mg_decode_route(j, o, e); }
static void fr_route(void *o) { wr__mg_route_free(o); }

int wr__mg_decode_routes(const json_t *j, wr__mg_route **out, size_t *n, int *is_null, wr__mg_err *e) {
  return decode_array(j, "[]*cfapi.DetailedRoute", sizeof(wr__mg_route), one_route, fr_route, (void **)out,
                      n, is_null, e);
}

void wr__mg_routes_free(wr__mg_route *r, size_t n) {
  for (size_t i = 0; i < n; i++) wr__mg_route_free(&r[i]);
  free(r);
}

int wr__mg_decode_vnet(const json_t *j, wr__mg_vnet *v, wr__mg_err *e) {
  dec d = {j, "VirtualNetwork", e, 0};
  memset(v, 0, sizeof(*v));
  if (!json_is_object(j) && !json_is_null(j)) return not_object(j, "cfapi.VirtualNetwork", e);
  d_uuid(&d, "id", &v->id);
  d_str(&d, "comment", &v->comment);
  d_str(&d, "name", &v->name);
  d_bool(&d, "is_default_network", &v->is_default);
  d_time(&d, "created_at", &v->created_at);
  d_time(&d, "deleted_at", &v->deleted_at);
  if (!v->comment) v->comment = wr_xstrdup("");
  if (!v->name) v->name = wr_xstrdup("");
  if (d.rv) wr__mg_vnet_free(v);
  return d.rv;
}

void wr__mg_vnet_free(wr__mg_vnet *v) {
  if (!v) return;
  free(v->comment);
  free(v->name);
  memset(v, 0, sizeof(*v));
}

static int one_vnet(const json_t *j, void *o, wr__mg_err *e) { return wr__mg_decode_vnet(j, o, e); }
static void fr_vnet(void *o) { wr__mg_vnet_free(o); }

int wr__mg_decode_vnets(const json_t *j, wr__mg_vnet **out, size_t *n, int *is_null, wr__mg_err *e) {
  return decode_array(j, "[]*cfapi.VirtualNetwork", sizeof(wr__mg_vnet), one_vnet, fr_vnet, (void **)out,
                      n, is_null, e);
}

void wr__mg_vnets_free(wr__mg_vnet *v, size_t n) {
  for (size_t i = 0; i < n; i++) wr__mg_vnet_free(&v[i]);
  free(v);
}
