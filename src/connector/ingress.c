#include "connector/ingress.h"
#include "connector/ingress_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <jansson.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"

/* --- parse context and messages ----------------------------------------- */

typedef struct pctx {
  wr_config *cfg;     /* NULL when building from flags */
  const char *source; /* file name for messages */
  int ic;             /* JSON: keys match case-insensitively, as Go's encoding/json */
  wr_arena *a;        /* the ingress being built owns every string */
  char *err;
  size_t errlen;
} pctx;

static int perr(pctx *p, unsigned line, const char *kp, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(pctx *p, unsigned line, const char *kp, const char *fmt, ...) {
  char reason[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  wr_config_errorf(p->err, p->errlen, p->source, line, kp, "%s", reason);
  return WR_ERR_CONFIG;
}

static void pwarn_unknown(pctx *p, const wr_ynode *key, const char *kp) {
  if (p->cfg) wr_config_warn(p->cfg, key->line, kp, "unknown key \"%s\"; ignored", key->str);
}

static int key_is(const pctx *p, const wr_ynode *k, const char *name) {
  return p->ic ? strcasecmp(k->str, name) == 0 : strcmp(k->str, name) == 0;
}

/* "base[idx]"; key paths only label messages, so truncation is harmless. */
static void kp_index(char *out, size_t n, const char *base, size_t idx) {
  if (snprintf(out, n, "%s[%zu]", base, idx) >= (int)n) out[n - 1] = '\0';
}

static void kp_join(char *out, size_t n, const char *base, const char *key) {
  if (base && *base)
    snprintf(out, n, "%s.%s", base, key);
  else
    snprintf(out, n, "%s", key);
}

/* --- typed scalars ------------------------------------------------------- */

static int get_str(pctx *p, const wr_ynode *v, const char *kp, const char **out) {
  if (v->kind == WR_YNODE_NULL) {
    *out = "";
    return WR_OK;
  }
  if (v->kind != WR_YNODE_SCALAR)
    return perr(p, v->line, kp, "expected a string, found %s", wr_ynode_kind_name(v));
  *out = wr_arena_strndup(p->a, v->str, v->len);
  return WR_OK;
}

static int get_bool(pctx *p, const wr_ynode *v, const char *kp, int *out) {
  if (wr_ynode_bool(v, out) == 0) return WR_OK;
  if (v->kind == WR_YNODE_SCALAR)
    return perr(p, v->line, kp, "expected true or false, found \"%s\"", v->str);
  return perr(p, v->line, kp, "expected true or false, found %s", wr_ynode_kind_name(v));
}

static int get_int(pctx *p, const wr_ynode *v, const char *kp, long long lo, long long hi,
                   long long *out) {
  char *end;
  if (v->kind != WR_YNODE_SCALAR)
    return perr(p, v->line, kp, "expected an integer, found %s", wr_ynode_kind_name(v));
  errno = 0;
  long long x = strtoll(v->str, &end, 10);
  if (errno || end == v->str || *end)
    return perr(p, v->line, kp, "expected an integer, found \"%s\"", v->str);
  if (x < lo || x > hi)
    return perr(p, v->line, kp, "%lld is out of range (%lld to %lld)", x, lo, hi);
  *out = x;
  return WR_OK;
}

/* Go duration strings ("30s", "1m30s", "1.5h"); a bare integer is seconds,
 * which is what the JSON form carries. */
static int get_duration(pctx *p, const wr_ynode *v, const char *kp, long long *out) {
  if (v->kind != WR_YNODE_SCALAR)
    return perr(p, v->line, kp, "expected a duration such as 30s or 1m30s, found %s",
                wr_ynode_kind_name(v));
  if (wr_parse_duration(v->str, out) != 0)
    return perr(p, v->line, kp, "invalid duration \"%s\" (use e.g. 30s, 1m30s, 500ms)", v->str);
  return WR_OK;
}

/* proxyProtocol: "v1" or "v2" (null or "" leave it off). */
static int get_pproto(pctx *p, const wr_ynode *v, const char *kp, int *out) {
  if (v->kind != WR_YNODE_SCALAR)
    return perr(p, v->line, kp, "expected v1 or v2, found %s", wr_ynode_kind_name(v));
  if (strcmp(v->str, "v1") == 0 || strcmp(v->str, "1") == 0)
    *out = 1;
  else if (strcmp(v->str, "v2") == 0 || strcmp(v->str, "2") == 0)
    *out = 2;
  else if (v->str[0] == '\0')
    *out = 0;
  else
    return perr(p, v->line, kp, "expected v1 or v2, found \"%s\"", v->str);
  return WR_OK;
}

/* --- ipRules and access -------------------------------------------------- */

static int parse_cidr(const char *s, wr_ip_rule *r) {
  char host[64];
  const char *slash = strchr(s, '/');
  if (!slash || (size_t)(slash - s) >= sizeof(host) || !slash[1]) return -1;
  memcpy(host, s, (size_t)(slash - s));
  host[slash - s] = '\0';
  unsigned max;
  if (inet_pton(AF_INET, host, r->addr) == 1)
    r->family = AF_INET, max = 32;
  else if (inet_pton(AF_INET6, host, r->addr) == 1)
    r->family = AF_INET6, max = 128;
  else
    return -1;
  unsigned len = 0;
  for (const char *q = slash + 1; *q; q++) {
    if (!isdigit((unsigned char)*q) || q - slash > 3) return -1;
    len = len * 10 + (unsigned)(*q - '0');
  }
  if (len > max) return -1;
  r->prefix_len = len;
  /* Keep only the network part, as net.ParseCIDR's IPNet does. */
  for (unsigned bit = len; bit < max; bit++) r->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
  return 0;
}

static int cmp_u16(const void *a, const void *b) {
  return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int parse_ip_rules(pctx *p, const wr_ynode *v, const char *kp, wr_origin_request *o) {
  char ikp[192], fkp[224];
  if (v->kind == WR_YNODE_NULL) return WR_OK;
  if (v->kind != WR_YNODE_SEQ)
    return perr(p, v->line, kp, "expected a list of rules, found %s", wr_ynode_kind_name(v));
  wr_ip_rule *rules = wr_arena_alloc(p->a, (v->n ? v->n : 1) * sizeof(*rules));
  for (size_t i = 0; i < v->n; i++) {
    const wr_ynode *it = v->items[i];
    wr_ip_rule *r = &rules[i];
    const char *prefix = NULL;
    kp_index(ikp, sizeof(ikp), kp, i);
    if (it->kind != WR_YNODE_MAP)
      return perr(p, it->line, ikp, "expected a map with prefix, ports and allow, found %s",
                  wr_ynode_kind_name(it));
    for (size_t j = 0; j < it->n; j++) {
      const wr_ynode *k = it->pairs[j].key, *val = it->pairs[j].val;
      int rv;
      kp_join(fkp, sizeof(fkp), ikp, k->str);
      if (key_is(p, k, "prefix")) {
        if ((rv = get_str(p, val, fkp, &prefix))) return rv;
      } else if (key_is(p, k, "ports")) {
        if (val->kind == WR_YNODE_NULL) continue;
        if (val->kind != WR_YNODE_SEQ)
          return perr(p, val->line, fkp, "expected a list of ports, found %s",
                      wr_ynode_kind_name(val));
        uint16_t *ports = wr_arena_alloc(p->a, (val->n ? val->n : 1) * sizeof(*ports));
        for (size_t q = 0; q < val->n; q++) {
          char pkp[240];
          long long port = 0;
          kp_index(pkp, sizeof(pkp), fkp, q);
          if ((rv = get_int(p, val->items[q], pkp, -0x7fffffffLL, 0x7fffffffLL, &port))) return rv;
          if (port < 1 || port > 65535)
            return perr(p, val->items[q]->line, pkp,
                        "invalid port %lld, needs to be between 1 and 65535", port);
          ports[q] = (uint16_t)port;
        }
        qsort(ports, val->n, sizeof(*ports), cmp_u16);
        r->ports = ports;
        r->n_ports = val->n;
      } else if (key_is(p, k, "allow")) {
        if (val->kind != WR_YNODE_NULL && (rv = get_bool(p, val, fkp, &r->allow))) return rv;
      } else {
        pwarn_unknown(p, k, ikp);
      }
    }
    kp_join(fkp, sizeof(fkp), ikp, "prefix");
    if (!prefix || !*prefix) return perr(p, it->line, fkp, "no prefix provided");
    if (parse_cidr(prefix, r) != 0) return perr(p, it->line, fkp, "unable to parse cidr: %s", prefix);
    char txt[INET6_ADDRSTRLEN + 8], a[INET6_ADDRSTRLEN];
    inet_ntop(r->family, r->addr, a, sizeof(a));
    snprintf(txt, sizeof(txt), "%s/%u", a, r->prefix_len);
    r->cidr = wr_arena_strdup(p->a, txt);
  }
  o->ip_rules = rules;
  o->n_ip_rules = v->n;
  return WR_OK;
}

static int parse_access(pctx *p, const wr_ynode *v, const char *kp, wr_access_config *acc) {
  char fkp[224];
  int rv;
  *acc = (wr_access_config){.team_name = ""};
  if (v->kind == WR_YNODE_NULL) return WR_OK;
  if (v->kind != WR_YNODE_MAP)
    return perr(p, v->line, kp, "expected a map with required, teamName and audTag, found %s",
                wr_ynode_kind_name(v));
  for (size_t i = 0; i < v->n; i++) {
    const wr_ynode *k = v->pairs[i].key, *val = v->pairs[i].val;
    kp_join(fkp, sizeof(fkp), kp, k->str);
    if (key_is(p, k, "required")) {
      if (val->kind != WR_YNODE_NULL && (rv = get_bool(p, val, fkp, &acc->required))) return rv;
    } else if (key_is(p, k, "teamName")) {
      if ((rv = get_str(p, val, fkp, &acc->team_name))) return rv;
    } else if (key_is(p, k, "audTag")) {
      if (val->kind == WR_YNODE_NULL) continue;
      if (val->kind != WR_YNODE_SEQ)
        return perr(p, val->line, fkp, "expected a list of strings, found %s",
                    wr_ynode_kind_name(val));
      const char **tags = wr_arena_alloc(p->a, (val->n ? val->n : 1) * sizeof(*tags));
      for (size_t j = 0; j < val->n; j++) {
        char tkp[240];
        kp_index(tkp, sizeof(tkp), fkp, j);
        if ((rv = get_str(p, val->items[j], tkp, &tags[j]))) return rv;
      }
      acc->aud_tags = tags;
      acc->n_aud_tags = val->n;
    } else {
      pwarn_unknown(p, k, kp);
    }
  }
  /* An initial setup may force Access before the rest is configured, but
   * audience tags without a team cannot be checked (validateAccessConfiguration). */
  if (acc->required && !*acc->team_name && acc->n_aud_tags)
    return perr(p, v->line, kp, "access.TeamName cannot be blank when access.audTags are present");
  return WR_OK;
}

/* --- originRequest (table-driven, STYLE 1.12) ---------------------------- */

typedef enum otype {
  OT_DUR, OT_BOOL, OT_INT, OT_PORT, OT_STR, OT_IPRULES, OT_ACCESS, OT_PPROTO
} otype;

typedef struct okey {
  const char *name; /* YAML and JSON key */
  otype type;
  size_t off;
  uint32_t bit;
} okey;

#define OFF(f) offsetof(wr_origin_request, f)
/* In cloudflared's struct order, which is also the JSON key order. */
static const okey or_keys[] = {
    {"connectTimeout", OT_DUR, OFF(connect_timeout_ns), WR_OR_CONNECT_TIMEOUT},
    {"tlsTimeout", OT_DUR, OFF(tls_timeout_ns), WR_OR_TLS_TIMEOUT},
    {"tcpKeepAlive", OT_DUR, OFF(tcp_keepalive_ns), WR_OR_TCP_KEEPALIVE},
    {"noHappyEyeballs", OT_BOOL, OFF(no_happy_eyeballs), WR_OR_NO_HAPPY_EYEBALLS},
    {"keepAliveConnections", OT_INT, OFF(keepalive_connections), WR_OR_KEEPALIVE_CONNECTIONS},
    {"keepAliveTimeout", OT_DUR, OFF(keepalive_timeout_ns), WR_OR_KEEPALIVE_TIMEOUT},
    {"httpHostHeader", OT_STR, OFF(http_host_header), WR_OR_HTTP_HOST_HEADER},
    {"originServerName", OT_STR, OFF(origin_server_name), WR_OR_ORIGIN_SERVER_NAME},
    {"caPool", OT_STR, OFF(ca_pool), WR_OR_CA_POOL},
    {"noTLSVerify", OT_BOOL, OFF(no_tls_verify), WR_OR_NO_TLS_VERIFY},
    {"disableChunkedEncoding", OT_BOOL, OFF(disable_chunked_encoding), WR_OR_DISABLE_CHUNKED},
    {"bastionMode", OT_BOOL, OFF(bastion_mode), WR_OR_BASTION_MODE},
    {"proxyAddress", OT_STR, OFF(proxy_address), WR_OR_PROXY_ADDRESS},
    {"proxyPort", OT_PORT, OFF(proxy_port), WR_OR_PROXY_PORT},
    {"proxyType", OT_STR, OFF(proxy_type), WR_OR_PROXY_TYPE},
    {"ipRules", OT_IPRULES, OFF(ip_rules), WR_OR_IP_RULES},
    {"http2Origin", OT_BOOL, OFF(http2_origin), WR_OR_HTTP2_ORIGIN},
    {"access", OT_ACCESS, OFF(access), WR_OR_ACCESS},
    /* Warren's own: a PROXY protocol header to tcp/ssh/rdp/smb origins. */
    {"proxyProtocol", OT_PPROTO, OFF(proxy_protocol), WR_OR_PROXY_PROTOCOL},
};
#define N_OR_KEYS (sizeof(or_keys) / sizeof(or_keys[0]))

static void or_defaults(wr_origin_request *o) {
  *o = (wr_origin_request){
      .connect_timeout_ns = WR_INGRESS_DEFAULT_CONNECT_TIMEOUT_NS,
      .tls_timeout_ns = WR_INGRESS_DEFAULT_TLS_TIMEOUT_NS,
      .tcp_keepalive_ns = WR_INGRESS_DEFAULT_TCP_KEEPALIVE_NS,
      .keepalive_connections = WR_INGRESS_DEFAULT_KEEPALIVE_CONNECTIONS,
      .keepalive_timeout_ns = WR_INGRESS_DEFAULT_KEEPALIVE_TIMEOUT_NS,
      .http_host_header = "",
      .origin_server_name = "",
      .ca_pool = "",
      .proxy_address = WR_INGRESS_DEFAULT_PROXY_ADDRESS,
      .proxy_type = "",
      .access = {.team_name = ""},
  };
}

/* Sets one key of |o| from |v| (a NULL value leaves the key unset, as a nil
 * pointer does in cloudflared's raw config). */
static int or_set(pctx *p, const okey *k, const wr_ynode *v, const char *kp, wr_origin_request *o) {
  char *field = (char *)o + k->off;
  long long x;
  int rv = WR_OK;
  if (v->kind == WR_YNODE_NULL) return WR_OK;
  switch (k->type) {
  case OT_DUR:
    rv = get_duration(p, v, kp, (long long *)(void *)field);
    break;
  case OT_BOOL:
    rv = get_bool(p, v, kp, (int *)(void *)field);
    break;
  case OT_INT:
    if ((rv = get_int(p, v, kp, 0, 0x7fffffff, &x)) == 0) *(int *)(void *)field = (int)x;
    break;
  case OT_PORT:
    if ((rv = get_int(p, v, kp, 0, 65535, &x)) == 0) *(uint16_t *)(void *)field = (uint16_t)x;
    break;
  case OT_STR:
    rv = get_str(p, v, kp, (const char **)(void *)field);
    break;
  case OT_IPRULES:
    rv = parse_ip_rules(p, v, kp, o);
    break;
  case OT_ACCESS:
    rv = parse_access(p, v, kp, &o->access);
    break;
  case OT_PPROTO:
    rv = get_pproto(p, v, kp, (int *)(void *)field);
    break;
  }
  if (rv == WR_OK) o->set |= k->bit;
  return rv;
}

/* Parses an originRequest map into |raw| (only the keys it gives). */
static int or_parse(pctx *p, const wr_ynode *v, const char *kp, wr_origin_request *raw) {
  char fkp[192];
  or_defaults(raw);
  raw->set = 0;
  if (!v || v->kind == WR_YNODE_NULL) return WR_OK;
  if (v->kind != WR_YNODE_MAP)
    return perr(p, v->line, kp, "expected a map of origin settings, found %s",
                wr_ynode_kind_name(v));
  for (size_t i = 0; i < v->n; i++) {
    const wr_ynode *k = v->pairs[i].key;
    const okey *ok = NULL;
    for (size_t j = 0; j < N_OR_KEYS && !ok; j++)
      if (key_is(p, k, or_keys[j].name)) ok = &or_keys[j];
    if (!ok) {
      pwarn_unknown(p, k, kp);
      continue;
    }
    kp_join(fkp, sizeof(fkp), kp, ok->name);
    int rv = or_set(p, ok, v->pairs[i].val, fkp, raw);
    if (rv) return rv;
  }
  return WR_OK;
}

/* setConfig(): the keys |over| gives replace those of |dst|. ipRules only
 * replace when non-empty, as in cloudflared. */
static void or_merge(wr_origin_request *dst, const wr_origin_request *over) {
  for (size_t i = 0; i < N_OR_KEYS; i++) {
    const okey *k = &or_keys[i];
    if (!(over->set & k->bit)) continue;
    const char *src = (const char *)over + k->off;
    char *d = (char *)dst + k->off;
    switch (k->type) {
    case OT_DUR: memcpy(d, src, sizeof(long long)); break;
    case OT_BOOL:
    case OT_PPROTO:
    case OT_INT: memcpy(d, src, sizeof(int)); break;
    case OT_PORT: memcpy(d, src, sizeof(uint16_t)); break;
    case OT_STR: *(const char **)(void *)d = *(const char *const *)(const void *)src; break;
    case OT_IPRULES:
      if (over->n_ip_rules) dst->ip_rules = over->ip_rules, dst->n_ip_rules = over->n_ip_rules;
      break;
    case OT_ACCESS: dst->access = over->access; break;
    }
  }
  dst->set |= over->set;
}

/* --- services ------------------------------------------------------------ */

static int is_scheme_char(int c, int first) {
  if (isalpha(c)) return 1;
  return !first && (isdigit(c) || c == '+' || c == '-' || c == '.');
}

static const struct {
  const char *scheme;
  uint16_t port;
} stream_ports[] = {{"ssh", 22}, {"rdp", 3389}, {"smb", 445}, {"tcp", 7864}};

static const char *join_host_port(pctx *p, const char *host, unsigned port) {
  char buf[600];
  if (strchr(host, ':'))
    snprintf(buf, sizeof(buf), "[%s]:%u", host, port);
  else
    snprintf(buf, sizeof(buf), "%s:%u", host, port);
  return wr_arena_strdup(p->a, buf);
}

#define ERR_NEED_SCHEME_HOST \
  "%s is an invalid address, please make sure it has a scheme and a hostname"

/* The pieces of an origin URL, as parse_url_service reads them. */
typedef struct url_parts {
  char scheme[32]; /* lower-cased */
  size_t scheme_len;
  const char *auth; /* authority without userinfo: host[:port] */
  size_t alen;
  char host[512]; /* without brackets */
  long port;      /* 0 without an explicit port */
  int has_port;
} url_parts;

/* Reads scheme "://" at the start of |s|. Returns 0 or -1. */
static int url_scheme(const char *s, url_parts *u) {
  size_t i = 0, len = strlen(s);
  while (i < len && is_scheme_char((unsigned char)s[i], i == 0)) i++;
  if (i == 0 || i >= sizeof(u->scheme) || s[i] != ':' || strncmp(s + i, "://", 3) != 0) return -1;
  for (size_t j = 0; j < i; j++) u->scheme[j] = (char)tolower((unsigned char)s[j]);
  u->scheme[i] = '\0';
  u->scheme_len = i;
  return 0;
}

/* The port after the host: |port_s| up to the end of the authority (none
 * when |port_s| is NULL or the port is empty). */
static int url_port(pctx *p, const char *s, unsigned line, const char *kp, const char *port_s,
                    url_parts *u) {
  const char *end = u->auth + u->alen;
  u->port = 0;
  u->has_port = 0;
  if (!port_s || port_s >= end) return WR_OK;
  size_t plen = (size_t)(end - port_s);
  if (plen > 5) return perr(p, line, kp, "%s is an invalid address: invalid port", s);
  for (size_t j = 0; j < plen; j++) {
    if (!isdigit((unsigned char)port_s[j]))
      return perr(p, line, kp, "%s is an invalid address: invalid port", s);
    u->port = u->port * 10 + (port_s[j] - '0');
  }
  if (u->port < 1 || u->port > 65535)
    return perr(p, line, kp, "%s is an invalid address: port %ld out of range", s, u->port);
  u->has_port = 1;
  return WR_OK;
}

/* Splits the authority into host ("[v6]" unbracketed) and port. */
static int url_host_port(pctx *p, const char *s, unsigned line, const char *kp, url_parts *u) {
  const char *auth = u->auth, *port_s = NULL;
  size_t alen = u->alen, hlen;
  if (alen >= sizeof(u->host))
    return perr(p, line, kp, "%s is an invalid address: host name too long", s);
  if (auth[0] == '[') {
    const char *close = memchr(auth, ']', alen);
    if (!close) return perr(p, line, kp, "%s is an invalid address: missing ']' in host", s);
    hlen = (size_t)(close - auth - 1);
    memcpy(u->host, auth + 1, hlen);
    if ((size_t)(close + 1 - auth) < alen) {
      if (close[1] != ':') return perr(p, line, kp, "%s is an invalid address: bad host", s);
      port_s = close + 2;
    }
  } else {
    const char *colon = memchr(auth, ':', alen);
    hlen = colon ? (size_t)(colon - auth) : alen;
    memcpy(u->host, auth, hlen);
    if (colon) port_s = colon + 1;
  }
  u->host[hlen] = '\0';
  if (!hlen) return perr(p, line, kp, ERR_NEED_SCHEME_HOST, s);
  if (strchr(u->host, ':') && auth[0] != '[')
    return perr(p, line, kp, "%s is an invalid address: bad host", s);
  return url_port(p, s, line, kp, port_s, u);
}

static int is_http_scheme(const char *scheme) {
  return strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0 ||
         strcmp(scheme, "ws") == 0 || strcmp(scheme, "wss") == 0;
}

/* http(s):// and ws(s):// origins. */
static int url_http_service(pctx *p, const char *s, const url_parts *u, wr_service *svc) {
  svc->kind = WR_SVC_HTTP;
  svc->tls = strcmp(u->scheme, "https") == 0 || strcmp(u->scheme, "wss") == 0;
  svc->scheme = svc->tls ? "https" : "http";
  svc->port = u->has_port ? (uint16_t)u->port : svc->tls ? 443 : 80;
  svc->authority = wr_arena_strndup(p->a, u->auth, u->alen);
  /* url.String() keeps everything but lower-cases the scheme. */
  char *d = wr_arena_strdup(p->a, s);
  memcpy(d, u->scheme, u->scheme_len);
  svc->display = d;
  return WR_OK;
}

/* Any other scheme: a TCP origin (ssh://, rdp://, ...). */
static int url_stream_service(pctx *p, unsigned line, const char *kp, const url_parts *u,
                              wr_service *svc) {
  long port = u->port;
  svc->kind = WR_SVC_STREAM;
  svc->scheme = wr_arena_strdup(p->a, u->scheme);
  if (!u->has_port) {
    for (size_t j = 0; j < sizeof(stream_ports) / sizeof(stream_ports[0]); j++)
      if (strcmp(u->scheme, stream_ports[j].scheme) == 0) port = stream_ports[j].port;
    /* cloudflared would accept any other scheme and fail at dial time for
     * want of a port; a scheme we know no port for is almost always a typo
     * ("htp://"), so it is refused here. With an explicit port any scheme
     * is a TCP origin, as in cloudflared. */
    if (!port) return perr(p, line, kp, "unknown scheme \"%s\"", u->scheme);
  }
  svc->port = (uint16_t)port;
  svc->authority = join_host_port(p, u->host, (unsigned)port);
  char buf[700];
  snprintf(buf, sizeof(buf), "%s://%s", u->scheme, svc->authority);
  svc->display = wr_arena_strdup(p->a, buf);
  return WR_OK;
}

/* Parses scheme://[user@]host[:port] the way Go's url.Parse and cloudflared's
 * validateIngress see it: a scheme and a hostname are required and a path is
 * refused (the eyeball's path is always used). */
static int parse_url_service(pctx *p, const char *s, unsigned line, const char *kp,
                             wr_service *svc) {
  url_parts u;
  int rv;
  if (url_scheme(s, &u) != 0) return perr(p, line, kp, ERR_NEED_SCHEME_HOST, s);
  u.auth = s + u.scheme_len + 3;
  u.alen = strcspn(u.auth, "/?#");
  if (u.auth[u.alen] == '/')
    return perr(p, line, kp,
                "%s is an invalid address, ingress rules don't support proxying to a different "
                "path on the origin service. The path will be the same as the eyeball request's "
                "path",
                s);
  /* Userinfo is not part of the host (url.URL.Host); it runs to the last
   * '@' of the authority, as in Go's parseAuthority ("http://a@b@host"
   * is user "a@b" at "host"). */
  const char *at = memrchr(u.auth, '@', u.alen);
  if (at) u.alen -= (size_t)(at + 1 - u.auth), u.auth = at + 1;
  if ((rv = url_host_port(p, s, line, kp, &u))) return rv;
  svc->host = wr_arena_strdup(p->a, u.host);
  if (is_http_scheme(u.scheme)) return url_http_service(p, s, &u, svc);
  return url_stream_service(p, line, kp, &u, svc);
}

/* The service string of rule |kp| (cloudflared's validateIngress order:
 * unix:, unix+tls:, http_status:, hello_world, socks-proxy, bastion or
 * bastionMode, then a URL). May switch |origin| to bastion mode. */
static int parse_service(pctx *p, const char *s, unsigned line, const char *kp,
                         wr_origin_request *origin, wr_service *svc) {
  *svc = (wr_service){0};
  if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "unix+tls:", 9) == 0) {
    int tls = s[4] == '+';
    const char *path = s + (tls ? 9 : 5);
    if (!*path) return perr(p, line, kp, "%s: the unix socket path is empty", s);
    svc->kind = WR_SVC_UNIX;
    svc->tls = tls;
    svc->scheme = tls ? "https" : "http";
    svc->path = wr_arena_strdup(p->a, path);
    svc->display = wr_arena_strdup(p->a, s);
    return WR_OK;
  }
  if (strncmp(s, "http_status:", 12) == 0) {
    const char *num = s + 12, *q = num;
    long code = 0;
    /* strconv.Atoi: optional sign, decimal digits. */
    if (*q == '+' || *q == '-') q++;
    if (!*q || strspn(q, "0123456789") != strlen(q) || strlen(q) > 9)
      return perr(p, line, kp, "invalid HTTP status code \"%s\"", num);
    code = strtol(num, NULL, 10);
    if (code < 100 || code > 999) return perr(p, line, kp, "invalid HTTP status code: %ld", code);
    char buf[32];
    snprintf(buf, sizeof(buf), "http_status:%ld", code);
    svc->kind = WR_SVC_HTTP_STATUS;
    svc->status = (int)code;
    svc->display = wr_arena_strdup(p->a, buf);
    return WR_OK;
  }
  if (strcmp(s, "hello_world") == 0 || strcmp(s, "hello-world") == 0) {
    svc->kind = WR_SVC_HELLO_WORLD;
    svc->display = "hello_world";
    return WR_OK;
  }
  if (strcmp(s, "socks-proxy") == 0) {
    svc->kind = WR_SVC_SOCKS_PROXY;
    svc->display = "socks-proxy";
    return WR_OK;
  }
  if (strcmp(s, "bastion") == 0 || origin->bastion_mode) {
    /* cloudflared turns any later-kind service into a bastion when
     * bastionMode is on, even a URL. */
    origin->bastion_mode = 1;
    svc->kind = WR_SVC_BASTION;
    svc->display = "bastion";
    return WR_OK;
  }
  return parse_url_service(p, s, line, kp, svc);
}

/* --- hostnames ----------------------------------------------------------- */

static const char err_bad_wildcard[] =
    "Hostname patterns can have at most one wildcard character (\"*\") and it can only be used "
    "for subdomains, e.g. \"*.example.com\"";
static const char err_last_not_catch_all[] =
    "The last ingress rule must match all URLs (i.e. it should not have a hostname or path "
    "filter)";

/* RFC 3492 punycode of one label's code points into |out|. */
static int punycode_encode(const uint32_t *cp, size_t n, char *out, size_t cap, size_t *olen) {
  enum { BASE = 36, TMIN = 1, TMAX = 26, SKEW = 38, DAMP = 700 };
  uint32_t nn = 128, delta = 0, bias = 72, h, b = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (cp[i] < 0x80) {
      if (o >= cap) return -1;
      out[o++] = (char)tolower((int)cp[i]);
      b++;
    }
  }
  h = b;
  if (b > 0) {
    if (o >= cap) return -1;
    out[o++] = '-';
  }
  while (h < n) {
    uint32_t m = UINT32_MAX;
    for (size_t i = 0; i < n; i++)
      if (cp[i] >= nn && cp[i] < m) m = cp[i];
    if ((uint64_t)(m - nn) * (h + 1) + delta > UINT32_MAX) return -1;
    delta += (m - nn) * (h + 1);
    nn = m;
    for (size_t i = 0; i < n; i++) {
      if (cp[i] < nn && ++delta == 0) return -1;
      if (cp[i] != nn) continue;
      uint32_t q = delta;
      for (uint32_t k = BASE;; k += BASE) {
        uint32_t t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
        if (q < t) break;
        uint32_t d = t + (q - t) % (BASE - t);
        if (o >= cap) return -1;
        out[o++] = (char)(d < 26 ? 'a' + d : '0' + d - 26);
        q = (q - t) / (BASE - t);
      }
      if (o >= cap) return -1;
      out[o++] = (char)(q < 26 ? 'a' + q : '0' + q - 26);
      /* adapt() */
      uint32_t dl = h == b ? delta / DAMP : delta / 2, k = 0;
      dl += dl / (h + 1);
      while (dl > ((BASE - TMIN) * TMAX) / 2) dl /= BASE - TMIN, k += BASE;
      bias = k + (BASE - TMIN + 1) * dl / (dl + SKEW);
      delta = 0;
      h++;
    }
    delta++;
    nn++;
  }
  *olen = o;
  return 0;
}

/* Decodes one UTF-8 sequence; returns its length or -1. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  if (s[0] < 0x80) return *cp = s[0], 1;
  int len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
  if (!len || (size_t)len > n || s[0] > 0xf4) return -1;
  uint32_t c = s[0] & (0x7f >> len);
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return -1;
    c = c << 6 | (s[i] & 0x3f);
  }
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return -1;
  *cp = c;
  return len;
}

/* The ASCII (punycode) form of an IDN hostname, or NULL if |h| is ASCII or
 * cannot be converted. Only the encoding step of IDNA is done: names are
 * expected in their normalised lower-case form already. */
static const char *to_punycode(pctx *p, const char *h) {
  int ascii = 1;
  for (const char *q = h; *q; q++) ascii &= (unsigned char)*q < 0x80;
  if (ascii) return NULL;
  char out[256];
  size_t o = 0;
  const char *label = h;
  for (;;) {
    size_t llen = strcspn(label, ".");
    uint32_t cps[64];
    size_t n = 0, i = 0;
    int non_ascii = 0;
    while (i < llen) {
      if (n == 64) return NULL;
      int l = utf8_decode((const unsigned char *)label + i, llen - i, &cps[n]);
      if (l < 0) return NULL;
      non_ascii |= cps[n] >= 0x80;
      i += (size_t)l, n++;
    }
    if (non_ascii) {
      size_t enc = 0;
      if (o + 4 >= sizeof(out)) return NULL;
      memcpy(out + o, "xn--", 4);
      if (punycode_encode(cps, n, out + o + 4, sizeof(out) - o - 5, &enc) != 0) return NULL;
      if (enc + 4 > 63) return NULL;
      o += 4 + enc;
    } else {
      if (o + llen >= sizeof(out)) return NULL;
      for (size_t j = 0; j < llen; j++) out[o++] = (char)tolower((unsigned char)label[j]);
    }
    if (!label[llen]) break;
    if (o + 1 >= sizeof(out)) return NULL;
    out[o++] = '.';
    label += llen + 1;
  }
  out[o] = '\0';
  return wr_arena_strdup(p->a, out);
}

/* --- path regexes -------------------------------------------------------- */

/* Path patterns are Go RE2 in cloudflared; ingress_regex.c translates the
 * subset that POSIX ERE can express for regcomp. */
static int compile_path(pctx *p, const char *path, unsigned line, const char *kp, size_t rule_no,
                        regex_t **out) {
  size_t cap = strlen(path) * 12 + 16;
  char *tr;
  const char *why = NULL;
  int icase = 0, rc;
  if (strlen(path) > WR_INGRESS_MAX_REGEX)
    return perr(p, line, kp, "Rule #%zu has an invalid regex: longer than %u bytes", rule_no,
                WR_INGRESS_MAX_REGEX);
  tr = wr_xmalloc(cap);
  if (wr__ingress_regex_translate(path, tr, cap, &icase, &why) != 0) {
    free(tr);
    return perr(p, line, kp, "Rule #%zu has an invalid regex: %s", rule_no, why);
  }
  regex_t *re = wr_xcalloc(1, sizeof(*re));
  rc = regcomp(re, tr, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
  free(tr);
  if (rc != 0) {
    char msg[256];
    regerror(rc, re, msg, sizeof(msg));
    free(re);
    return perr(p, line, kp, "Rule #%zu has an invalid regex: %s", rule_no, msg);
  }
  *out = re;
  return WR_OK;
}

/* --- rules --------------------------------------------------------------- */

static wr_ingress *ingress_new(void) {
  wr_ingress *ing = wr_xcalloc(1, sizeof(*ing));
  or_defaults(&ing->defaults);
  ing->warp = (wr_warp_routing){0, WR_WARP_DEFAULT_CONNECT_TIMEOUT_NS,
                                WR_WARP_DEFAULT_TCP_KEEPALIVE_NS, 0, 0};
  return ing;
}

void wr_ingress_free(wr_ingress *ing) {
  if (!ing) return;
  for (size_t i = 0; i < ing->n_rules; i++) {
    if (ing->rules[i].path_re) {
      regfree(ing->rules[i].path_re);
      free(ing->rules[i].path_re);
    }
  }
  wr_arena_free(&ing->arena);
  free(ing);
}

/* True when net.SplitHostPort would accept |h|, i.e. it carries a port:
 * "host:port" or "[v6]:port"; a bare IPv6 address has several colons and
 * does not. */
static int has_port(const char *h) {
  if (h[0] == '[') return strstr(h, "]:") != NULL;
  const char *c = strchr(h, ':');
  return c && !strchr(c + 1, ':');
}

/* The values of one rule's keys; absent keys stay NULL. */
typedef struct rule_nodes {
  const wr_ynode *hostname, *path, *service, *orq;
} rule_nodes;

static void rule_find_keys(pctx *p, const wr_ynode *v, const char *kp, rule_nodes *n) {
  *n = (rule_nodes){0};
  for (size_t i = 0; i < v->n; i++) {
    const wr_ynode *k = v->pairs[i].key;
    if (key_is(p, k, "hostname")) n->hostname = v->pairs[i].val;
    else if (key_is(p, k, "path")) n->path = v->pairs[i].val;
    else if (key_is(p, k, "service")) n->service = v->pairs[i].val;
    else if (key_is(p, k, "originRequest")) n->orq = v->pairs[i].val;
    else pwarn_unknown(p, k, kp);
  }
}

/* The string of key |key| of rule |kp| into *out when the key is there. */
static int rule_str(pctx *p, const wr_ynode *val, const char *kp, const char *key,
                    const char **out) {
  char fkp[96];
  if (!val) return WR_OK;
  kp_join(fkp, sizeof(fkp), kp, key);
  return get_str(p, val, fkp, out);
}

/* validateHostname (no port, one leading wildcard label at most), then the
 * catch-all rule: the last rule must be one and no other may be. */
static int check_rule_host(pctx *p, const wr_ynode *v, const wr_ynode *hostname, const char *kp,
                           const char *host, const char *path_s, size_t idx, size_t total) {
  char fkp[96];
  kp_join(fkp, sizeof(fkp), kp, "hostname");
  unsigned hline = hostname ? hostname->line : v->line;
  if (has_port(host)) return perr(p, hline, fkp, "Hostname cannot contain a port");
  const char *star = strrchr(host, '*');
  if (star && (star != host || (host[1] != '\0' && host[1] != '.')))
    return perr(p, hline, fkp, "%s", err_bad_wildcard);
  int catch_all = (!*host || strcmp(host, "*") == 0) && !*path_s;
  int last = idx == total - 1;
  if (last && !catch_all) return perr(p, v->line, kp, "%s", err_last_not_catch_all);
  if (!last && catch_all)
    return perr(p, hline, hostname ? fkp : kp,
                "Rule #%zu is matching the hostname '%s', but this will match every hostname, "
                "meaning the rules which follow it will never be triggered.",
                idx + 1, host);
  return WR_OK;
}

static int parse_rule(pctx *p, const wr_ynode *v, size_t idx, size_t total,
                      const wr_origin_request *defaults, wr_ingress_rule *r) {
  char kp[64], fkp[96];
  rule_nodes n;
  const char *host = "", *path_s = "", *svc = "";
  wr_origin_request raw;
  int rv;
  snprintf(kp, sizeof(kp), "ingress[%zu]", idx);
  if (v->kind != WR_YNODE_MAP)
    return perr(p, v->line, kp, "expected a map with hostname, path and service, found %s",
                wr_ynode_kind_name(v));
  r->line = v->line;
  rule_find_keys(p, v, kp, &n);
  if ((rv = rule_str(p, n.hostname, kp, "hostname", &host)) ||
      (rv = rule_str(p, n.path, kp, "path", &path_s)) ||
      (rv = rule_str(p, n.service, kp, "service", &svc)))
    return rv;

  kp_join(fkp, sizeof(fkp), kp, "originRequest");
  if ((rv = or_parse(p, n.orq, fkp, &raw))) return rv;
  r->origin = *defaults;
  or_merge(&r->origin, &raw);

  kp_join(fkp, sizeof(fkp), kp, "service");
  if (!*svc) return perr(p, v->line, kp, "\"service\" is required");
  if ((rv = parse_service(p, svc, n.service->line, fkp, &r->origin, &r->service))) return rv;
  if ((rv = check_rule_host(p, v, n.hostname, kp, host, path_s, idx, total))) return rv;

  r->hostname = *host ? host : NULL;
  if (r->hostname) r->punycode = to_punycode(p, host);
  if (*path_s) {
    kp_join(fkp, sizeof(fkp), kp, "path");
    r->path = path_s;
    if ((rv = compile_path(p, path_s, n.path->line, fkp, idx + 1, &r->path_re))) return rv;
  }
  return WR_OK;
}

int wr_warp_routing_parse(wr_config *cfg, const wr_ynode *node, wr_warp_routing *out, char *err,
                          size_t errlen) {
  pctx p = {cfg, cfg ? cfg->source : "config", cfg ? cfg->is_json : 0, NULL, err, errlen};
  int rv;
  *out = (wr_warp_routing){0, WR_WARP_DEFAULT_CONNECT_TIMEOUT_NS, WR_WARP_DEFAULT_TCP_KEEPALIVE_NS,
                           0, 0};
  if (!node || node->kind == WR_YNODE_NULL) return WR_OK;
  if (node->kind != WR_YNODE_MAP)
    return perr(&p, node->line, "warp-routing", "expected a map, found %s",
                wr_ynode_kind_name(node));
  for (size_t i = 0; i < node->n; i++) {
    const wr_ynode *k = node->pairs[i].key, *v = node->pairs[i].val;
    char kp[96];
    kp_join(kp, sizeof(kp), "warp-routing", k->str);
    if (v->kind == WR_YNODE_NULL) continue;
    if (key_is(&p, k, "enabled")) {
      if ((rv = get_bool(&p, v, kp, &out->enabled))) return rv;
    } else if (key_is(&p, k, "connectTimeout")) {
      if ((rv = get_duration(&p, v, kp, &out->connect_timeout_ns))) return rv;
      out->set |= 1;
    } else if (key_is(&p, k, "tcpKeepAlive")) {
      if ((rv = get_duration(&p, v, kp, &out->tcp_keepalive_ns))) return rv;
      out->set |= 2;
    } else if (key_is(&p, k, "proxyProtocol")) {
      if ((rv = get_pproto(&p, v, kp, &out->proxy_protocol))) return rv;
    } else {
      pwarn_unknown(&p, k, "warp-routing");
    }
  }
  return WR_OK;
}

int wr_ingress_parse(wr_config *cfg, wr_ingress **out, char *err, size_t errlen) {
  wr_ingress *ing = ingress_new();
  pctx p = {cfg, cfg->source, cfg->is_json, &ing->arena, err, errlen};
  const wr_ynode *rules = cfg->ingress;
  wr_origin_request raw;
  int rv;
  *out = NULL;
  if (!rules || rules->kind == WR_YNODE_NULL || (rules->kind == WR_YNODE_SEQ && rules->n == 0)) {
    snprintf(err, errlen, "%s", WR_INGRESS_ERR_NO_RULES);
    rv = WR_ERR_NOTFOUND;
    goto fail;
  }
  if (rules->kind != WR_YNODE_SEQ) {
    rv = perr(&p, rules->line, "ingress", "expected a list of rules, found %s",
              wr_ynode_kind_name(rules));
    goto fail;
  }
  if (rules->n > WR_INGRESS_MAX_RULES) {
    rv = perr(&p, rules->line, "ingress", "more than %u rules", WR_INGRESS_MAX_RULES);
    goto fail;
  }
  /* originRequestFromConfig: the global block over cloudflared's defaults. */
  if ((rv = or_parse(&p, cfg->origin_request, "originRequest", &raw))) goto fail;
  or_merge(&ing->defaults, &raw);
  ing->rules = wr_arena_alloc(&ing->arena, rules->n * sizeof(*ing->rules));
  for (size_t i = 0; i < rules->n; i++) {
    ing->n_rules = i + 1; /* so wr_ingress_free sees compiled regexes */
    if ((rv = parse_rule(&p, rules->items[i], i, rules->n, &ing->defaults, &ing->rules[i])))
      goto fail;
  }
  if ((rv = wr_warp_routing_parse(cfg, cfg->warp_routing, &ing->warp, err, errlen))) goto fail;
  *out = ing;
  return WR_OK;
fail:
  wr_ingress_free(ing);
  return rv;
}

/* --- rules from flags ---------------------------------------------------- */

/* cloudflared's single-origin flags and the originRequest keys they set
 * (originRequestFromSingleRule). Flags the command does not declare are
 * skipped, so the table can list all of cloudflared's. */
static const struct {
  const char *flag;
  const char *key;
} cli_origin_flags[] = {
    {"proxy-connect-timeout", "connectTimeout"},
    {"proxy-tls-timeout", "tlsTimeout"},
    {"proxy-tcp-keepalive", "tcpKeepAlive"},
    {"proxy-no-happy-eyeballs", "noHappyEyeballs"},
    {"proxy-keepalive-connections", "keepAliveConnections"},
    {"proxy-keepalive-timeout", "keepAliveTimeout"},
    {"http-host-header", "httpHostHeader"},
    {"origin-server-name", "originServerName"},
    {"origin-ca-pool", "caPool"},
    {"no-tls-verify", "noTLSVerify"},
    {"no-chunked-encoding", "disableChunkedEncoding"},
    {"bastion", "bastionMode"},
    {"proxy-address", "proxyAddress"},
    {"proxy-port", "proxyPort"},
    {"http2-origin", "http2Origin"},
};

static int opt_set(const wr_opts *o, const char *name) {
  return o && wr_opts_known(o, name) && wr_opts_isset(o, name);
}

/* validation.ValidateUrl: --url may lack a scheme ("localhost:8080",
 * "127.0.0.1", "[::1]:80"), then http is assumed; with a scheme it must be
 * one cloudflared supports, and any path is dropped. */
static int validate_cli_url(pctx *p, const char *u, char *out, size_t outlen) {
  static const char *const schemes[] = {"http", "https", "rdp", "ssh", "smb", "tcp", NULL};
  unsigned char v6[16];
  if (!*u) return perr(p, 0, NULL, "URL should not be empty");
  const char *sep = strstr(u, "://");
  if (!sep) {
    if (inet_pton(AF_INET6, u, v6) == 1)
      snprintf(out, outlen, "http://[%s]", u);
    else
      snprintf(out, outlen, "http://%.*s", (int)strcspn(u, "/?#"), u);
    return WR_OK;
  }
  size_t slen = (size_t)(sep - u);
  int ok = 0;
  for (const char *const *s = schemes; *s && !ok; s++)
    ok = strlen(*s) == slen && strncasecmp(u, *s, slen) == 0;
  if (!ok)
    return perr(p, 0, NULL, "Currently Cloudflare Tunnel does not support %.*s protocol.",
                (int)slen, u);
  snprintf(out, outlen, "%.*s", (int)(slen + 3 + strcspn(sep + 3, "/?#")), u);
  return WR_OK;
}

int wr_ingress_from_cli(const wr_opts *opts, wr_ingress **out, char *err, size_t errlen) {
  wr_ingress *ing = ingress_new();
  pctx p = {NULL, "--url", 0, &ing->arena, err, errlen};
  wr_origin_request raw;
  wr_ingress_rule *r;
  int rv = WR_OK;
  *out = NULL;
  or_defaults(&raw);
  raw.set = 0;
  for (size_t i = 0; i < sizeof(cli_origin_flags) / sizeof(cli_origin_flags[0]); i++) {
    if (!opt_set(opts, cli_origin_flags[i].flag)) continue;
    const char *val = wr_opts_get(opts, cli_origin_flags[i].flag);
    int b;
    /* Flag booleans follow strconv.ParseBool ("1", "t"), YAML's do not. */
    if (wr_parse_bool(val, &b) == 0) val = b ? "true" : "false";
    wr_ynode node = {.kind = WR_YNODE_SCALAR, .plain = 1, .str = val, .len = strlen(val)};
    char kp[64];
    snprintf(kp, sizeof(kp), "--%s", cli_origin_flags[i].flag);
    p.source = "command line";
    for (size_t k = 0; k < N_OR_KEYS; k++)
      if (strcmp(or_keys[k].name, cli_origin_flags[i].key) == 0 &&
          (rv = or_set(&p, &or_keys[k], &node, kp, &raw)))
        goto fail;
  }
  if (opt_set(opts, "socks5")) raw.proxy_type = "socks", raw.set |= WR_OR_PROXY_TYPE;
  or_merge(&ing->defaults, &raw);

  ing->rules = wr_arena_alloc(&ing->arena, sizeof(*ing->rules));
  ing->n_rules = 1;
  ing->from_cli = 1;
  r = &ing->rules[0];
  r->origin = ing->defaults;
  if (opt_set(opts, "hello-world") && wr_opts_bool(opts, "hello-world")) {
    r->service = (wr_service){.kind = WR_SVC_HELLO_WORLD, .display = "hello_world"};
  } else if (opt_set(opts, "bastion") && wr_opts_bool(opts, "bastion")) {
    r->service = (wr_service){.kind = WR_SVC_BASTION, .display = "bastion"};
  } else if (opt_set(opts, "url")) {
    char u[1024];
    p.source = "--url";
    if ((rv = validate_cli_url(&p, wr_opts_get(opts, "url"), u, sizeof(u)))) goto fail;
    if ((rv = parse_url_service(&p, u, 0, NULL, &r->service))) goto fail;
  } else if (opt_set(opts, "unix-socket")) {
    const char *path = wr_opts_get(opts, "unix-socket");
    char buf[1100];
    p.source = "--unix-socket";
    if (!*path) {
      rv = perr(&p, 0, NULL, "the unix socket path is empty");
      goto fail;
    }
    snprintf(buf, sizeof(buf), "unix:%s", path);
    r->service = (wr_service){.kind = WR_SVC_UNIX,
                              .scheme = "http",
                              .path = wr_arena_strdup(&ing->arena, path),
                              .display = wr_arena_strdup(&ing->arena, buf)};
  } else {
    r->service = (wr_service){.kind = WR_SVC_HTTP_STATUS, .status = 503,
                              .display = "http_status:503"};
  }
  *out = ing;
  return WR_OK;
fail:
  wr_ingress_free(ing);
  return rv;
}

static int no_cli_origin(const wr_opts *opts) {
  return !opt_set(opts, "hello-world") && !opt_set(opts, "bastion") && !opt_set(opts, "url") &&
         !opt_set(opts, "unix-socket");
}

int wr_ingress_load(wr_config *cfg, const wr_opts *opts, wr_ingress **out, char *err,
                    size_t errlen) {
  size_t nwarn = cfg ? cfg->n_warnings : 0;
  int rv = WR_ERR_NOTFOUND;
  *out = NULL;
  if (cfg) rv = wr_ingress_parse(cfg, out, err, errlen);
  if (rv == WR_ERR_NOTFOUND) {
    rv = wr_ingress_from_cli(opts, out, err, errlen);
    if (rv == WR_OK && cfg)
      rv = wr_warp_routing_parse(cfg, cfg->warp_routing, &(*out)->warp, err, errlen);
    if (rv == WR_OK && no_cli_origin(opts) && !opt_set(opts, "token"))
      wr_warn("%s", WR_INGRESS_WARN_NO_RULES_CLI);
    if (rv != WR_OK) {
      wr_ingress_free(*out);
      *out = NULL;
    }
  }
  for (size_t i = nwarn; cfg && i < cfg->n_warnings; i++) wr_warn("%s", cfg->warnings[i]);
  return rv;
}

/* --- matching ------------------------------------------------------------ */

static int match_host(const char *rule, const char *host, size_t hlen) {
  size_t rlen = strlen(rule);
  if (rlen == hlen && strncasecmp(rule, host, hlen) == 0) return 1;
  if (rule[0] == '*' && rule[1] == '.') {
    const char *suffix = rule + 1; /* ".example.com" */
    size_t slen = rlen - 1;
    return hlen >= slen && strncasecmp(host + hlen - slen, suffix, slen) == 0;
  }
  return 0;
}

int wr_ingress_match(const wr_ingress *ing, const char *host, const char *path) {
  if (!ing || !ing->n_rules) return WR_ERR_NOTFOUND;
  if (!host) host = "";
  if (!path) path = "";
  /* net.SplitHostPort: "host:port" or "[v6]:port" lose the port; a bare
   * IPv6 address (several colons) stays as it is. */
  size_t hlen = strlen(host);
  const char *colon = strrchr(host, ':');
  if (host[0] == '[') {
    const char *close = strchr(host, ']');
    if (close && close[1] == ':') host++, hlen = (size_t)(close - host);
  } else if (colon && colon == strchr(host, ':')) {
    hlen = (size_t)(colon - host);
  }
  for (size_t i = 0; i < ing->n_rules; i++) {
    const wr_ingress_rule *r = &ing->rules[i];
    int host_ok = !r->hostname || strcmp(r->hostname, "*") == 0 ||
                  match_host(r->hostname, host, hlen) ||
                  (r->punycode && match_host(r->punycode, host, hlen));
    if (!host_ok) continue;
    if (r->path_re && regexec(r->path_re, path, 0, NULL, 0) != 0) continue;
    return (int)i;
  }
  return (int)ing->n_rules - 1;
}

char *wr_ingress_rule_describe(const wr_ingress_rule *r) {
  size_t n = 64 + (r->hostname ? strlen(r->hostname) : 0) + (r->path ? strlen(r->path) : 0) +
             strlen(r->service.display);
  char *s = wr_xmalloc(n);
  size_t o = 0;
  if (r->hostname) o += (size_t)snprintf(s + o, n - o, "\thostname: %s\n", r->hostname);
  if (r->path) o += (size_t)snprintf(s + o, n - o, "\tpath: %s\n", r->path);
  snprintf(s + o, n - o, "\tservice: %s", r->service.display);
  return s;
}

/* --- local configuration JSON -------------------------------------------- */

/* CustomDuration.MarshalJSON writes Duration.Seconds(); whole seconds come
 * out as integers, which is also the only form its UnmarshalJSON reads. */
static json_t *json_seconds(long long ns) {
  if (ns % 1000000000LL == 0) return json_integer(ns / 1000000000LL);
  return json_real((double)ns / 1e9);
}

static json_t *json_str_list(const char *const *v, size_t n) {
  if (!n) return json_null(); /* a nil Go slice */
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
  return a;
}

/* ConvertToRawOriginConfig: only values that differ from cloudflared's
 * defaults, in struct order. */
static json_t *origin_json(const wr_origin_request *o) {
  wr_origin_request d;
  json_t *obj = json_object();
  or_defaults(&d);
  for (size_t i = 0; i < N_OR_KEYS; i++) {
    const okey *k = &or_keys[i];
    const char *f = (const char *)o + k->off, *df = (const char *)&d + k->off;
    json_t *v = NULL;
    long long ll;
    int x;
    uint16_t u16;
    const char *s;
    switch (k->type) {
    case OT_DUR:
      memcpy(&ll, f, sizeof(ll));
      if (memcmp(f, df, sizeof(ll)) != 0) v = json_seconds(ll);
      break;
    case OT_BOOL:
      memcpy(&x, f, sizeof(x));
      if (x) v = json_true();
      break;
    case OT_INT:
      memcpy(&x, f, sizeof(x));
      if (memcmp(f, df, sizeof(x)) != 0) v = json_integer(x);
      break;
    case OT_PORT:
      memcpy(&u16, f, sizeof(u16));
      if (u16) v = json_integer(u16);
      break;
    case OT_STR:
      memcpy(&s, f, sizeof(s));
      if (strcmp(k->name, "proxyAddress") == 0) {
        if (strcmp(s, WR_INGRESS_DEFAULT_PROXY_ADDRESS) != 0) v = json_string(s);
      } else if (*s) {
        v = json_string(s);
      }
      break;
    case OT_IPRULES:
      if (o->n_ip_rules) {
        v = json_array();
        for (size_t r = 0; r < o->n_ip_rules; r++) {
          const wr_ip_rule *ir = &o->ip_rules[r];
          json_t *ports = json_null();
          if (ir->n_ports) {
            ports = json_array();
            for (size_t q = 0; q < ir->n_ports; q++)
              json_array_append_new(ports, json_integer(ir->ports[q]));
          }
          json_array_append_new(v, json_pack("{s:s, s:o, s:b}", "prefix", ir->cidr, "ports",
                                             ports, "allow", ir->allow));
        }
      }
      break;
    case OT_ACCESS:
      if (o->access.required) {
        v = json_object();
        json_object_set_new(v, "required", json_true());
        json_object_set_new(v, "teamName", json_string(o->access.team_name));
        json_object_set_new(v, "audTag", json_str_list(o->access.aud_tags, o->access.n_aud_tags));
      }
      break;
    case OT_PPROTO:
      memcpy(&x, f, sizeof(x));
      if (x) v = json_string(x == 2 ? "v2" : "v1");
      break;
    }
    if (v) json_object_set_new(obj, k->name, v);
  }
  return obj;
}

/* The flags cloudflared reports in __configuration_flags, sorted as Go
 * sorts map keys. */
static const char *const config_flags[] = {
    "autoupdate-freq", "edge-bind-address", "edge-ip-version", "loglevel",
    "metrics",         "metrics-update-freq", "no-autoupdate", "origincert",
    "protocol",        "retries",           "transport-loglevel",
};

char *wr_ingress_local_config_json(const wr_ingress *ing, const wr_opts *opts) {
  json_t *root = json_object(), *flags = json_object(), *rules = json_array(), *warp;
  for (size_t i = 0; opts && i < sizeof(config_flags) / sizeof(config_flags[0]); i++) {
    const char *v;
    if (opt_set(opts, config_flags[i]) && (v = wr_opts_get(opts, config_flags[i])) && *v)
      json_object_set_new(flags, config_flags[i], json_string(v));
  }
  if (json_object_size(flags)) json_object_set(root, "__configuration_flags", flags);
  json_decref(flags);
  for (size_t i = 0; i < ing->n_rules; i++) {
    const wr_ingress_rule *r = &ing->rules[i];
    json_t *o = json_object();
    if (r->hostname) json_object_set_new(o, "hostname", json_string(r->hostname));
    if (r->path) json_object_set_new(o, "path", json_string(r->path));
    json_object_set_new(o, "service", json_string(r->service.display));
    json_object_set_new(o, "originRequest", origin_json(&r->origin));
    json_array_append_new(rules, o);
  }
  json_object_set_new(root, "ingress", rules);
  warp = json_object();
  json_object_set_new(warp, "enabled", json_boolean(ing->warp.enabled));
  if (ing->warp.connect_timeout_ns != WR_WARP_DEFAULT_CONNECT_TIMEOUT_NS)
    json_object_set_new(warp, "connectTimeout", json_seconds(ing->warp.connect_timeout_ns));
  if (ing->warp.tcp_keepalive_ns != WR_WARP_DEFAULT_TCP_KEEPALIVE_NS)
    json_object_set_new(warp, "tcpKeepAlive", json_seconds(ing->warp.tcp_keepalive_ns));
  json_object_set_new(root, "warp-routing", warp);
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (!s) abort(); /* jansson only fails on out-of-memory: the process policy */
  return s;
}

/* --- ipRules evaluation -------------------------------------------------- */

int wr_ip_rules_allowed(const wr_ip_rule *rules, size_t n, int family, const uint8_t *addr,
                        uint16_t port, int default_allow) {
  for (size_t i = 0; i < n; i++) {
    const wr_ip_rule *r = &rules[i];
    if (r->family != family) continue;
    unsigned full = r->prefix_len / 8, rem = r->prefix_len % 8;
    if (memcmp(r->addr, addr, full) != 0) continue;
    if (rem && ((r->addr[full] ^ addr[full]) & (uint8_t)(0xff00u >> rem))) continue;
    if (!r->n_ports) return r->allow;
    for (size_t q = 0; q < r->n_ports; q++)
      if (r->ports[q] == port) return r->allow;
  }
  return default_allow;
}
