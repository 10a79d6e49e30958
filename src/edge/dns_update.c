#include "edge/dns_update.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/owner.h"
#include "proto/dnsmsg.h"

#define DEF_TTL 300
#define DEF_TIMEOUT_MS 5000
#define DEF_MAX_QUEUED 1024
#define MAX_CHANGES 64
#define MAX_RDATA 64
#define TSIG_FUDGE 300
#define SECRET_MAX 512
#define TARGET_LABEL "cfargotunnel"

/* --- configuration ------------------------------------------------------------------- */

/* Canonical form of a configured name: lower case, no trailing dot. */
static int canon_name(const char *in, char out[WR_DNS_NAME_MAX + 1]) {
  size_t len = in ? strlen(in) : 0;
  if (len && in[len - 1] == '.') len--;
  if (len == 0 || len > WR_DNS_NAME_MAX) return WR_ERR_INVAL;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  out[len] = '\0';
  return wr_dns_name_check(out) == WR_OK && !strchr(out, '*') ? WR_OK : WR_ERR_INVAL;
}

/* ldns's spelling of a TSIG algorithm (it compares "hmac-sha256." etc.). */
static const char *tsig_algorithm(const char *alg) {
  if (!alg || strcasecmp(alg, "hmac-sha256") == 0 || strcasecmp(alg, "hmac-sha256.") == 0)
    return "hmac-sha256.";
  if (strcasecmp(alg, "hmac-sha512") == 0 || strcasecmp(alg, "hmac-sha512.") == 0)
    return "hmac-sha512.";
  return NULL; /* hmac-sha384 is misspelt inside ldns 1.8; md5 and sha1 are obsolete */
}

/* Parses "IP", "IP:PORT" or "[IPv6]:PORT". */
static int parse_server(const char *s, struct sockaddr_storage *ss) {
  char host[INET6_ADDRSTRLEN + 2];
  long port = 53;
  const char *end;
  memset(ss, 0, sizeof(*ss));
  if (!s || !*s) return WR_ERR_INVAL;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || (size_t)(rb - s - 1) >= sizeof(host)) return WR_ERR_INVAL;
    memcpy(host, s + 1, (size_t)(rb - s - 1));
    host[rb - s - 1] = '\0';
    end = rb + 1;
    if (*end && *end != ':') return WR_ERR_INVAL;
  } else {
    const char *colon = strchr(s, ':');
    if (colon && strchr(colon + 1, ':')) colon = NULL; /* a bare IPv6 address */
    size_t hl = colon ? (size_t)(colon - s) : strlen(s);
    if (hl >= sizeof(host)) return WR_ERR_INVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    end = s + hl;
  }
  if (*end == ':') {
    char *pe;
    port = strtol(end + 1, &pe, 10);
    if (pe == end + 1 || *pe || port <= 0 || port > 65535) return WR_ERR_INVAL;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    return WR_OK;
  }
  if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    return WR_OK;
  }
  return WR_ERR_INVAL;
}

int wr_dns_update_config_check(const wr_dns_update_config *cfg, char *err, size_t errlen) {
  char name[WR_DNS_NAME_MAX + 1];
  struct sockaddr_storage ss;
  if (!cfg) {
    snprintf(err, errlen, "no DNS update configuration");
    return WR_ERR_CONFIG;
  }
  if (parse_server(cfg->server, &ss) != WR_OK) {
    snprintf(err, errlen, "DNS update server \"%.80s\" is not IP, IP:PORT or [IPv6]:PORT",
             cfg->server ? cfg->server : "");
    return WR_ERR_CONFIG;
  }
  if (canon_name(cfg->zone, name) != WR_OK) {
    snprintf(err, errlen, "DNS update zone \"%.80s\" is not a DNS name", cfg->zone ? cfg->zone : "");
    return WR_ERR_CONFIG;
  }
  if (cfg->key_name) {
    uint8_t secret[SECRET_MAX];
    if (canon_name(cfg->key_name, name) != WR_OK) {
      snprintf(err, errlen, "TSIG key name \"%.80s\" is not a DNS name", cfg->key_name);
      return WR_ERR_CONFIG;
    }
    if (!tsig_algorithm(cfg->algorithm)) {
      snprintf(err, errlen, "TSIG algorithm \"%.40s\" is not supported (hmac-sha256, hmac-sha512)",
               cfg->algorithm);
      return WR_ERR_CONFIG;
    }
    int n = cfg->secret ? wr_base64_decode(cfg->secret, strlen(cfg->secret), secret, sizeof(secret), 0) : -1;
    if (n < 16) { /* RFC 8945 6.2: at least half the hash length; 16 bytes is our floor */
      snprintf(err, errlen, "TSIG secret must be base64 of 16 to %d bytes", SECRET_MAX);
      return WR_ERR_CONFIG;
    }
  }
  if (cfg->naddrs > MAX_RDATA) {
    snprintf(err, errlen, "too many addresses (%zu; the limit is %d)", cfg->naddrs, MAX_RDATA);
    return WR_ERR_CONFIG;
  }
  for (size_t i = 0; i < cfg->naddrs; i++) {
    uint8_t b[16];
    const char *a = cfg->addrs[i];
    if (!a || (inet_pton(AF_INET, a, b) != 1 && inet_pton(AF_INET6, a, b) != 1)) {
      snprintf(err, errlen, "address \"%.64s\" is not an IPv4 or IPv6 address", a ? a : "");
      return WR_ERR_CONFIG;
    }
  }
  return WR_OK;
}

/* --- messages -------------------------------------------------------------------------- */

static ldns_rr *update_rr(const char *name, uint16_t type, ldns_rr_class cls, uint32_t ttl,
                          const char *rdata) {
  ldns_rr *rr = ldns_rr_new();
  ldns_rdf *owner = ldns_dname_new_frm_str(name), *rd = NULL;
  if (!rr || !owner) goto fail;
  ldns_rr_set_owner(rr, owner);
  owner = NULL;
  ldns_rr_set_type(rr, (ldns_rr_type)type);
  ldns_rr_set_class(rr, cls);
  ldns_rr_set_ttl(rr, ttl);
  if (rdata) {
    if (type == WR_DNS_TYPE_CNAME) {
      char target[WR_DNS_NAME_MAX + 1];
      if (canon_name(rdata, target) != WR_OK) goto fail;
      rd = ldns_dname_new_frm_str(target);
    } else {
      uint8_t b[16];
      int v6 = type == WR_DNS_TYPE_AAAA;
      if (inet_pton(v6 ? AF_INET6 : AF_INET, rdata, b) != 1) goto fail;
      rd = ldns_rdf_new_frm_data(v6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, v6 ? 16 : 4, b);
    }
    if (!rd || !ldns_rr_push_rdf(rr, rd)) goto fail;
  }
  return rr;
fail:
  if (rd) ldns_rdf_deep_free(rd);
  if (owner) ldns_rdf_deep_free(owner);
  if (rr) ldns_rr_free(rr);
  return NULL;
}

static int push_rr(ldns_rr_list *l, ldns_rr *rr) {
  if (!rr) return WR_ERR_INVAL;
  if (!ldns_rr_list_push_rr(l, rr)) {
    ldns_rr_free(rr);
    return WR_ERR_NOMEM;
  }
  return WR_OK;
}

void wr_dns_update_msg_clear(wr_dns_update_msg *msg) {
  if (!msg) return;
  free(msg->wire);
  if (msg->mac) ldns_rdf_deep_free(msg->mac);
  memset(msg, 0, sizeof(*msg));
}

/* Appends the update RRs of change |c| (number |i|, for messages) to |up|.
 * Returns WR_OK or WR_ERR_INVAL with the reason in |err|. */
static int add_change(ldns_rr_list *up, const wr_dns_change *c, size_t i, const char *zone,
                      uint32_t ttl, char *err, size_t errlen) {
  char name[WR_DNS_NAME_MAX + 1];
  int rv = WR_OK;
  if (canon_name(c->name, name) != WR_OK || !wr_dns_name_in_zone(name, zone)) {
    snprintf(err, errlen, "\"%.80s\" is not a name in zone %s", c->name ? c->name : "", zone);
    return WR_ERR_INVAL;
  }
  if ((c->type != WR_DNS_TYPE_A && c->type != WR_DNS_TYPE_AAAA && c->type != WR_DNS_TYPE_CNAME) ||
      c->nrdata > MAX_RDATA || (c->nrdata && !c->rdata) ||
      (c->op != WR_DNS_CHANGE_SET && c->op != WR_DNS_CHANGE_DELETE)) {
    snprintf(err, errlen, "change %zu for %s: unsupported type, operation or record count", i, name);
    return WR_ERR_INVAL;
  }
  /* RFC 2136 2.5: "delete an RRset" is class ANY, TTL 0, no rdata;
   * "delete an RR" class NONE, TTL 0; "add" the zone's class. SET is a
   * delete of the RRset followed by the adds, in one atomic UPDATE. */
  if (c->op == WR_DNS_CHANGE_SET || c->nrdata == 0)
    rv = push_rr(up, update_rr(name, c->type, LDNS_RR_CLASS_ANY, 0, NULL));
  for (size_t k = 0; k < c->nrdata && rv == WR_OK; k++) {
    if (c->op == WR_DNS_CHANGE_SET)
      rv = push_rr(up, update_rr(name, c->type, LDNS_RR_CLASS_IN, ttl, c->rdata[k]));
    else
      rv = push_rr(up, update_rr(name, c->type, LDNS_RR_CLASS_NONE, 0, c->rdata[k]));
  }
  if (rv != WR_OK) snprintf(err, errlen, "change %zu for %s: bad record data", i, name);
  return rv;
}

/* Signs |p| with the configured TSIG key and keeps the MAC in |msg| (the
 * answer's TSIG is checked against it). */
static int sign_tsig(const wr_dns_update_config *cfg, ldns_pkt *p, wr_dns_update_msg *msg,
                     char *err, size_t errlen) {
  char key[WR_DNS_NAME_MAX + 1];
  canon_name(cfg->key_name, key);
  if (ldns_pkt_tsig_sign(p, key, cfg->secret, TSIG_FUDGE, tsig_algorithm(cfg->algorithm), NULL) !=
      LDNS_STATUS_OK) {
    snprintf(err, errlen, "TSIG signing failed");
    return WR_ERR_CRYPTO;
  }
  if (!(msg->mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(p), 3)))) return WR_ERR_NOMEM;
  return WR_OK;
}

int wr_dns_update_build(const wr_dns_update_config *cfg, const wr_dns_change *ch, size_t n,
                        uint16_t id, wr_dns_update_msg *msg, char *err, size_t errlen) {
  char zone[WR_DNS_NAME_MAX + 1];
  ldns_rr_list *up = NULL;
  ldns_pkt *p = NULL;
  int rv;
  memset(msg, 0, sizeof(*msg));
  if ((rv = wr_dns_update_config_check(cfg, err, errlen)) != WR_OK) return WR_ERR_INVAL;
  if (n == 0 || n > MAX_CHANGES) {
    snprintf(err, errlen, "an update carries 1 to %d changes", MAX_CHANGES);
    return WR_ERR_INVAL;
  }
  canon_name(cfg->zone, zone);
  uint32_t ttl = cfg->ttl ? cfg->ttl : DEF_TTL;
  if (!(up = ldns_rr_list_new())) return WR_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    if ((rv = add_change(up, &ch[i], i, zone, ttl, err, errlen)) != WR_OK) goto out;
  ldns_rdf *zrdf = ldns_dname_new_frm_str(zone);
  /* ldns_update_pkt_new takes the zone name. */
  if (!zrdf || !(p = ldns_update_pkt_new(zrdf, LDNS_RR_CLASS_IN, NULL, up, NULL))) {
    rv = WR_ERR_NOMEM;
    goto out;
  }
  ldns_pkt_set_id(p, id);
  ldns_pkt_set_rd(p, false); /* ldns sets RD; the bit is zero (Z) in UPDATE */
  if (cfg->key_name && (rv = sign_tsig(cfg, p, msg, err, errlen)) != WR_OK) goto out;
  if (ldns_pkt2wire(&msg->wire, p, &msg->len) != LDNS_STATUS_OK || msg->len > WR_DNSMSG_MAX) {
    snprintf(err, errlen, "the update does not fit in a DNS message");
    rv = WR_ERR_LIMIT;
    goto out;
  }
  msg->id = id;
  rv = WR_OK;
out:
  if (rv != WR_OK) wr_dns_update_msg_clear(msg);
  ldns_rr_list_deep_free(up);
  ldns_pkt_free(p);
  return rv;
}

static const char *rcode_name(int rcode) {
  static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
                                      "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
                                      "NOTZONE"};
  return rcode >= 0 && rcode <= 10 ? names[rcode] : "RCODE?";
}

#define ANSWER_REFUSED \
  "the server answered %s: is it primary for the zone, and does it allow updates with this key?"

/* What an update's answer means: its error and the message (a format with
 * the rcode's name as its one argument, which it need not use). */
static const struct {
  int rcode, rv;
  const char *fmt;
} answers[] = {
    {LDNS_RCODE_NOERROR, WR_OK, "NOERROR"},
    {LDNS_RCODE_REFUSED, WR_ERR_DENIED, ANSWER_REFUSED},
    {LDNS_RCODE_NOTAUTH, WR_ERR_DENIED, ANSWER_REFUSED},
    {LDNS_RCODE_NOTZONE, WR_ERR_DENIED, ANSWER_REFUSED},
    {LDNS_RCODE_SERVFAIL, WR_ERR_IO, "the server answered SERVFAIL"},
    {LDNS_RCODE_FORMERR, WR_ERR_INVAL, "the server answered FORMERR"},
    {LDNS_RCODE_NOTIMPL, WR_ERR_UNSUPPORTED, "the server does not implement dynamic updates (NOTIMP)"},
    {LDNS_RCODE_YXDOMAIN, WR_ERR_EXISTS, "the server answered %s"},
    {LDNS_RCODE_YXRRSET, WR_ERR_EXISTS, "the server answered %s"},
};

/* The result of an (authenticated or unsigned) answer with rcode |rc|,
 * explained in |err|. */
static int answer_result(int rc, char *err, size_t errlen) {
  for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
    if (answers[i].rcode == rc) {
      snprintf(err, errlen, answers[i].fmt, rcode_name(rc));
      return answers[i].rv;
    }
  snprintf(err, errlen, "the server answered %s (%d)", rcode_name(rc), rc);
  return rc == LDNS_RCODE_NXDOMAIN || rc == LDNS_RCODE_NXRRSET ? WR_ERR_NOTFOUND : WR_ERR_PROTO;
}

static const char *tsig_error_name(unsigned e) {
  switch (e) {
  case 16:
    return "BADSIG";
  case 17:
    return "BADKEY";
  case 18:
    return "BADTIME";
  case 22:
    return "BADTRUNC";
  default:
    return "TSIG error";
  }
}

int wr_dns_update_check(const wr_dns_update_config *cfg, const wr_dns_update_msg *msg,
                        const uint8_t *resp, size_t len, int *rcode, char *err, size_t errlen) {
  ldns_pkt *p = NULL;
  int rv = WR_ERR_PROTO, rc = -1;
  if (len < 12 || ldns_wire2pkt(&p, resp, len) != LDNS_STATUS_OK) {
    snprintf(err, errlen, "the server's response is not a DNS message");
    goto out;
  }
  if (ldns_pkt_id(p) != msg->id || !ldns_pkt_qr(p) || ldns_pkt_get_opcode(p) != LDNS_PACKET_UPDATE) {
    snprintf(err, errlen, "the server's response does not match the update (id or opcode)");
    goto out;
  }
  rc = ldns_pkt_get_rcode(p);
  ldns_rr *tsig = ldns_pkt_tsig(p);
  if (msg->mac) {
    if (tsig && ldns_rr_rd_count(tsig) >= 6) {
      unsigned terr = ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
      if (terr) {
        snprintf(err, errlen, "the server refused our TSIG signature: %s (%s %s)",
                 tsig_error_name(terr), rcode_name(rc), "check the key name, secret and clock");
        rv = WR_ERR_DENIED;
        goto out;
      }
    }
    if (!tsig) {
      if (rc == LDNS_RCODE_NOERROR) {
        snprintf(err, errlen, "the server's response is not signed");
        goto out;
      }
      /* An unsigned error answer: report the rcode, but do not trust it further. */
    } else {
      char key[WR_DNS_NAME_MAX + 1];
      canon_name(cfg->key_name, key);
      /* ldns_pkt_tsig_verify reads the wire it is given; it does not keep it. */
      if (!ldns_pkt_tsig_verify(p, resp, len, key, cfg->secret, msg->mac)) {
        snprintf(err, errlen, "the server's response signature does not verify");
        goto out;
      }
    }
  }
  rv = answer_result(rc, err, errlen);
out:
  if (rcode) *rcode = rc;
  ldns_pkt_free(p);
  return rv;
}

/* --- the updater ----------------------------------------------------------------------- */

typedef struct up_req {
  struct up_req *next;
  wr_dns_update_msg msg;
  wr_dns_update_cb cb;
  void *user;
} up_req;

/* The transaction in flight. */
typedef enum up_state {
  UP_IDLE = 0,    /* nothing in flight */
  UP_CONNECTING,  /* TCP connect sent */
  UP_WAITING,     /* request written (or being written), reading the response */
  UP_CLOSING      /* tcp handle closing; the result is reported from its close callback */
} up_state;

struct wr_dns_updater {
  uv_loop_t *loop;
  wr_dns_update_config cfg; /* strings below */
  char server[80], zone[WR_DNS_NAME_MAX + 1], key_name[WR_DNS_NAME_MAX + 1], algorithm[32];
  char *secret;
  char **addrs;
  struct sockaddr_storage server_addr;
  uint64_t timeout_ms;
  size_t max_queued;

  up_req *head, *tail; /* head is the one in flight when state != UP_IDLE */
  size_t queued;
  up_state state;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  uv_timer_t timer;
  uv_idle_t kick;      /* starts the next update from the loop, never from inside send */
  uint8_t lenbuf[2];
  uint8_t *rbuf;       /* 2 + 65535 */
  size_t rlen;
  int result;
  int result_rcode;
  char result_msg[WR_DNS_UPDATE_MSG_MAX];
  wr_owner owner;      /* holds timer + kick (+ tcp while open) */
  int freeing;
};

static void up_kick(uv_idle_t *h);

static void up_release(wr_owner *o) {
  wr_dns_updater *u = WR_OWNER_OBJ(o, wr_dns_updater, owner);
  free(u->secret);
  for (size_t i = 0; i < u->cfg.naddrs; i++) free(u->addrs[i]);
  free(u->addrs);
  free(u->rbuf);
  free(u);
}

/* Reports the head request's result (after the TCP handle closed). */
static void up_tcp_closed(uv_handle_t *h) {
  wr_dns_updater *u = h->data;
  up_req *r = u->head;
  u->state = UP_IDLE;
  WR_FIFO_POP(u->head, u->tail, next);
  u->queued--;
  if (r->cb) r->cb(r->user, u->result, u->result_rcode, u->result_msg);
  wr_dns_update_msg_clear(&r->msg);
  free(r);
  /* Unless wr_dns_updater_free ran (maybe from the callback). */
  if (!u->freeing && u->head) uv_idle_start(&u->kick, up_kick);
  wr_owner_drop(&u->owner); /* the tcp handle; frees |u| once it is being freed */
}

static void up_finish(wr_dns_updater *u, int rv, int rcode, const char *msg) {
  if (u->state == UP_CLOSING || u->state == UP_IDLE) return;
  u->state = UP_CLOSING;
  u->result = rv;
  u->result_rcode = rcode;
  snprintf(u->result_msg, sizeof(u->result_msg), "%s", msg);
  uv_timer_stop(&u->timer);
  uv_close((uv_handle_t *)&u->tcp, up_tcp_closed);
}

static void up_timeout(uv_timer_t *t) {
  wr_dns_updater *u = t->data;
  char m[128];
  snprintf(m, sizeof(m), "no answer from %s within %llu ms", u->server,
           (unsigned long long)u->timeout_ms);
  up_finish(u, WR_ERR_IO, -1, m);
}

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  wr_dns_updater *u = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)u->rbuf + u->rlen, (unsigned)(2 + WR_DNSMSG_MAX - u->rlen));
}

static void up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wr_dns_updater *u = s->data;
  char m[WR_DNS_UPDATE_MSG_MAX];
  (void)buf;
  if (u->state != UP_WAITING) return;
  if (nread < 0) {
    snprintf(m, sizeof(m), "%s closed the connection before answering (%s)", u->server,
             uv_strerror((int)nread));
    up_finish(u, WR_ERR_IO, -1, m);
    return;
  }
  u->rlen += (size_t)nread;
  if (u->rlen < 2) return;
  size_t mlen = (size_t)(u->rbuf[0] << 8 | u->rbuf[1]);
  if (u->rlen < 2 + mlen) return;
  int rcode = -1;
  int rv = wr_dns_update_check(&u->cfg, &u->head->msg, u->rbuf + 2, mlen, &rcode, m, sizeof(m));
  up_finish(u, rv, rcode, m);
}

static void up_written(uv_write_t *req, int status) {
  wr_dns_updater *u = req->data;
  if (status < 0 && u->state == UP_WAITING) {
    char m[128];
    snprintf(m, sizeof(m), "sending the update to %s failed: %s", u->server, uv_strerror(status));
    up_finish(u, WR_ERR_IO, -1, m);
  }
}

static void up_connected(uv_connect_t *req, int status) {
  wr_dns_updater *u = req->data;
  char m[128];
  if (u->state != UP_CONNECTING) return; /* timed out or cancelled meanwhile */
  if (status < 0) {
    snprintf(m, sizeof(m), "cannot connect to %s: %s", u->server, uv_strerror(status));
    up_finish(u, WR_ERR_IO, -1, m);
    return;
  }
  wr_dns_update_msg *msg = &u->head->msg;
  u->lenbuf[0] = (uint8_t)(msg->len >> 8);
  u->lenbuf[1] = (uint8_t)msg->len;
  uv_buf_t bufs[2] = {uv_buf_init((char *)u->lenbuf, 2), uv_buf_init((char *)msg->wire, (unsigned)msg->len)};
  u->state = UP_WAITING;
  u->rlen = 0;
  int r = uv_write(&u->write_req, (uv_stream_t *)&u->tcp, bufs, 2, up_written);
  if (r == 0) r = uv_read_start((uv_stream_t *)&u->tcp, up_alloc, up_read);
  if (r != 0) {
    snprintf(m, sizeof(m), "sending the update to %s failed: %s", u->server, uv_strerror(r));
    up_finish(u, WR_ERR_IO, -1, m);
  }
}

/* Starts the head request; runs as an idle callback, so always from the
 * loop and never inside wr_dns_update_send. */
static void up_kick(uv_idle_t *h) {
  wr_dns_updater *u = h->data;
  uv_idle_stop(&u->kick);
  if (u->state != UP_IDLE || !u->head || u->freeing) return;
  uv_tcp_init(u->loop, &u->tcp);
  u->tcp.data = u;
  wr_owner_hold(&u->owner);
  u->state = UP_CONNECTING;
  u->connect_req.data = u->write_req.data = u;
  uv_timer_start(&u->timer, up_timeout, u->timeout_ms, 0);
  int r = uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)&u->server_addr,
                         up_connected);
  if (r != 0) {
    char m[128];
    snprintf(m, sizeof(m), "cannot connect to %s: %s", u->server, uv_strerror(r));
    up_finish(u, WR_ERR_IO, -1, m);
  }
}

int wr_dns_updater_new(uv_loop_t *loop, const wr_dns_update_config *cfg, wr_dns_updater **out,
                       char *err, size_t errlen) {
  int rv;
  *out = NULL;
  if ((rv = wr_dns_update_config_check(cfg, err, errlen)) != WR_OK) return rv;
  wr_dns_updater *u = wr_xcalloc(1, sizeof(*u));
  u->loop = loop;
  u->cfg = *cfg;
  snprintf(u->server, sizeof(u->server), "%s", cfg->server);
  canon_name(cfg->zone, u->zone);
  u->cfg.server = u->server;
  u->cfg.zone = u->zone;
  if (cfg->key_name) {
    canon_name(cfg->key_name, u->key_name);
    snprintf(u->algorithm, sizeof(u->algorithm), "%s", cfg->algorithm ? cfg->algorithm : "hmac-sha256");
    u->secret = wr_xstrdup(cfg->secret);
    u->cfg.key_name = u->key_name;
    u->cfg.algorithm = u->algorithm;
    u->cfg.secret = u->secret;
  } else {
    u->cfg.algorithm = u->cfg.secret = NULL;
  }
  u->addrs = wr_xcalloc(cfg->naddrs + 1, sizeof(char *));
  for (size_t i = 0; i < cfg->naddrs; i++) u->addrs[i] = wr_xstrdup(cfg->addrs[i]);
  u->cfg.addrs = (const char *const *)u->addrs;
  parse_server(cfg->server, &u->server_addr);
  u->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEF_TIMEOUT_MS;
  u->max_queued = cfg->max_queued ? cfg->max_queued : DEF_MAX_QUEUED;
  u->rbuf = wr_xmalloc(2 + WR_DNSMSG_MAX);
  wr_owner_init(&u->owner, up_release);
  wr_owner_timer_init(&u->owner, loop, &u->timer, u);
  uv_idle_init(loop, &u->kick);
  u->kick.data = u;
  wr_owner_hold(&u->owner);
  *out = u;
  return WR_OK;
}

int wr_dns_update_send(wr_dns_updater *u, const wr_dns_change *changes, size_t n,
                       wr_dns_update_cb cb, void *user) {
  char err[256];
  uint16_t id;
  if (!u || u->freeing) return WR_ERR_INVAL;
  if (u->queued >= u->max_queued) {
    wr_warn("dns update: %zu updates already queued for %s; dropping one", u->queued, u->server);
    return WR_ERR_LIMIT;
  }
  if (wr_random_bytes(&id, sizeof(id)) != WR_OK) return WR_ERR_CRYPTO;
  up_req *r = wr_xcalloc(1, sizeof(*r));
  int rv = wr_dns_update_build(&u->cfg, changes, n, id, &r->msg, err, sizeof(err));
  if (rv != WR_OK) {
    wr_warn("dns update for zone %s: %s", u->zone, err);
    free(r);
    return rv;
  }
  r->cb = cb;
  r->user = user;
  WR_FIFO_PUSH(u->head, u->tail, r, next);
  u->queued++;
  if (u->state == UP_IDLE) uv_idle_start(&u->kick, up_kick);
  return WR_OK;
}

/* <tunnel>.cfargotunnel.<zone>, the target of a route's CNAME. */
static int target_name(const wr_dns_updater *u, const char *tunnel_id, char *out, size_t size) {
  wr_uuid id;
  char canon[WR_UUID_STR_LEN + 1];
  if (!tunnel_id || wr_uuid_parse(tunnel_id, strlen(tunnel_id), &id) != WR_OK) return WR_ERR_INVAL;
  wr_uuid_format(&id, canon);
  int n = snprintf(out, size, "%s." TARGET_LABEL ".%s", canon, u->zone);
  return n > 0 && (size_t)n < size && (size_t)n <= WR_DNS_NAME_MAX ? WR_OK : WR_ERR_INVAL;
}

/* Splits the address list by family. */
static void split_addrs(const wr_dns_updater *u, const char **v4, size_t *n4, const char **v6,
                        size_t *n6) {
  uint8_t b[16];
  *n4 = *n6 = 0;
  for (size_t i = 0; i < u->cfg.naddrs; i++) {
    if (inet_pton(AF_INET, u->addrs[i], b) == 1)
      v4[(*n4)++] = u->addrs[i];
    else
      v6[(*n6)++] = u->addrs[i];
  }
}

int wr_dns_update_publish(wr_dns_updater *u, const char *hostname, const char *tunnel_id,
                          wr_dns_update_cb cb, void *user) {
  char target[WR_DNS_NAME_MAX + 64], host[WR_DNS_NAME_MAX + 1];
  const char *v4[MAX_RDATA], *v6[MAX_RDATA], *t[1] = {target};
  size_t n4, n6;
  if (!u || target_name(u, tunnel_id, target, sizeof(target)) != WR_OK ||
      canon_name(hostname, host) != WR_OK || strcmp(host, u->zone) == 0)
    return WR_ERR_INVAL;
  split_addrs(u, v4, &n4, v6, &n6);
  wr_dns_change ch[3] = {
      {WR_DNS_CHANGE_SET, WR_DNS_TYPE_CNAME, host, t, 1},
      {WR_DNS_CHANGE_SET, WR_DNS_TYPE_A, target, v4, n4},
      {WR_DNS_CHANGE_SET, WR_DNS_TYPE_AAAA, target, v6, n6},
  };
  return wr_dns_update_send(u, ch, 3, cb, user);
}

int wr_dns_update_unpublish(wr_dns_updater *u, const char *hostname, const char *tunnel_id,
                            wr_dns_update_cb cb, void *user) {
  char target[WR_DNS_NAME_MAX + 64], host[WR_DNS_NAME_MAX + 1];
  const char *t[1] = {target};
  if (!u || target_name(u, tunnel_id, target, sizeof(target)) != WR_OK ||
      canon_name(hostname, host) != WR_OK)
    return WR_ERR_INVAL;
  wr_dns_change ch = {WR_DNS_CHANGE_DELETE, WR_DNS_TYPE_CNAME, host, t, 1};
  return wr_dns_update_send(u, &ch, 1, cb, user);
}

int wr_dns_update_unpublish_tunnel(wr_dns_updater *u, const char *tunnel_id, wr_dns_update_cb cb,
                                   void *user) {
  char target[WR_DNS_NAME_MAX + 64];
  if (!u || target_name(u, tunnel_id, target, sizeof(target)) != WR_OK) return WR_ERR_INVAL;
  wr_dns_change ch[2] = {
      {WR_DNS_CHANGE_DELETE, WR_DNS_TYPE_A, target, NULL, 0},
      {WR_DNS_CHANGE_DELETE, WR_DNS_TYPE_AAAA, target, NULL, 0},
  };
  return wr_dns_update_send(u, ch, 2, cb, user);
}

size_t wr_dns_updater_pending(const wr_dns_updater *u) { return u ? u->queued : 0; }

void wr_dns_updater_free(wr_dns_updater *u) {
  if (!u || u->freeing) return;
  u->freeing = 1;
  /* The request in flight reports from its close callback; the others now.
   * Callbacks run from here may not call back into this updater (it is
   * being freed); they may free their own state. */
  up_req *r = u->head;
  if (u->state != UP_IDLE) {
    up_finish(u, WR_ERR_IO, -1, "cancelled");
    r = r->next;
    u->head->next = NULL;
    u->tail = u->head;
  } else {
    u->head = u->tail = NULL;
  }
  while (r) {
    up_req *next = r->next;
    u->queued--;
    if (r->cb) r->cb(r->user, WR_ERR_IO, -1, "cancelled");
    wr_dns_update_msg_clear(&r->msg);
    free(r);
    r = next;
  }
  wr_owner_close_handle(&u->owner, (uv_handle_t *)&u->timer);
  wr_owner_close_handle(&u->owner, (uv_handle_t *)&u->kick);
  wr_owner_close(&u->owner); /* frees |u| once the handles closed */
}

/* --- blocking wrapper -------------------------------------------------------------------- */

typedef struct run_result {
  int done, rv, rcode;
  char msg[WR_DNS_UPDATE_MSG_MAX];
} run_result;

static void run_cb(void *user, int rv, int rcode, const char *msg) {
  run_result *r = user;
  r->done = 1;
  r->rv = rv;
  r->rcode = rcode;
  snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

int wr_dns_update_run(const wr_dns_update_config *cfg, const wr_dns_change *changes, size_t n,
                      int *rcode, char *msg, size_t msglen) {
  uv_loop_t loop;
  wr_dns_updater *u = NULL;
  run_result res = {0};
  char err[256];
  int rv;
  if (rcode) *rcode = -1;
  if (uv_loop_init(&loop) != 0) {
    snprintf(msg, msglen, "cannot create an event loop");
    return WR_ERR_IO;
  }
  if ((rv = wr_dns_updater_new(&loop, cfg, &u, err, sizeof(err))) != WR_OK) {
    snprintf(msg, msglen, "%s", err);
    goto out;
  }
  if ((rv = wr_dns_update_send(u, changes, n, run_cb, &res)) != WR_OK) {
    snprintf(msg, msglen, "the update could not be built (%s)", wr_strerror(rv));
    goto out;
  }
  while (!res.done && uv_run(&loop, UV_RUN_ONCE)) {
  }
  rv = res.done ? res.rv : WR_ERR_INTERNAL;
  snprintf(msg, msglen, "%s", res.done ? res.msg : "the loop ended without an answer");
  if (rcode) *rcode = res.rcode;
out:
  wr_dns_updater_free(u);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return rv;
}

/* --- partial setup ----------------------------------------------------------------------- */

int wr_dns_partial_record(const char *hostname, const char *tunnel_id, const char *zone,
                          uint32_t ttl, char *out, size_t len) {
  char host[WR_DNS_NAME_MAX + 1], z[WR_DNS_NAME_MAX + 1], canon[WR_UUID_STR_LEN + 1];
  wr_uuid id;
  if (canon_name(hostname, host) != WR_OK || canon_name(zone, z) != WR_OK ||
      !wr_dns_name_in_zone(host, z) || !tunnel_id ||
      wr_uuid_parse(tunnel_id, strlen(tunnel_id), &id) != WR_OK)
    return WR_ERR_INVAL;
  wr_uuid_format(&id, canon);
  int n = snprintf(out, len, "%s. %u IN CNAME %s." TARGET_LABEL ".%s.", host,
                   (unsigned)(ttl ? ttl : DEF_TTL), canon, z);
  return n < 0 ? WR_ERR_INVAL : n;
}
