/* Authoritative DNS answers, sans-I/O (STYLE.md 1.1): the bytes of one query
 * in, the bytes of its response out. The names the edge serves come from an
 * immutable zone snapshot (wr_dnszone) that the caller builds from the store
 * (edge/dns.c) and hands over through a lookup callback; nothing here opens a
 * socket, reads the clock or logs.
 *
 * What a zone holds (`route dns`):
 *   apex                      SOA and NS (NS names configurable, e.g. ns1.<zone>)
 *   address names             A/AAAA = the zone's address list (the edge's
 *                             public addresses): <uuid>.cfargotunnel.<zone> of
 *                             each live tunnel, and in-zone NS names
 *   CNAME names               hostname -> <uuid>.cfargotunnel.<zone>, one per
 *                             DNS route; "*.x" routes are DNS wildcards (RFC 4592)
 * Answers follow RFC 1034 4.3.2: CNAMEs are chased inside the zone (so an A
 * query for a routed hostname returns the CNAME and the target's A records),
 * names that exist only because of names below them ("empty non-terminals")
 * answer NODATA, names that do not exist NXDOMAIN with the SOA in the
 * authority section (RFC 2308), names outside every zone REFUSED.
 * UDP responses are limited to 512 bytes, or with EDNS(0) to the requester's
 * size clamped to [512, WR_DNSMSG_EDNS_SIZE]; the additional section goes
 * first, then the response is cut to the question with TC set (RFC 2181 9).
 *
 * Messages are parsed and written with ldns (ldns_wire2pkt / ldns_pkt2wire,
 * with name compression) after a header check that bounds what ldns sees:
 * one question, no answer or authority records, at most two additional
 * records (OPT, TSIG). ldns allocates with malloc, outside wr_mem; the zone
 * snapshot itself uses the injected allocator. */
#ifndef WR_PROTO_DNSMSG_H
#define WR_PROTO_DNSMSG_H
#include <stddef.h>
#include <stdint.h>

#include "lib/mem.h"

#define WR_DNS_NAME_MAX 253    /* presentation form, no trailing dot */
#define WR_DNSMSG_UDP_MIN 512  /* RFC 1035 UDP limit without EDNS */
#define WR_DNSMSG_EDNS_SIZE 1232 /* what we advertise and accept over UDP (DNS flag day 2020) */
#define WR_DNSMSG_MAX 65535    /* TCP messages (2-byte length prefix) */
#define WR_DNSMSG_MAX_CHASE 8  /* CNAMEs followed inside one zone */
#define WR_DNSZONE_MAX_NAMES (1u << 20)

/* Record types and response codes used by the edge. */
enum {
  WR_DNS_TYPE_A = 1,
  WR_DNS_TYPE_NS = 2,
  WR_DNS_TYPE_CNAME = 5,
  WR_DNS_TYPE_SOA = 6,
  WR_DNS_TYPE_TXT = 16,
  WR_DNS_TYPE_AAAA = 28,
  WR_DNS_TYPE_ANY = 255
};
enum {
  WR_DNS_RCODE_NOERROR = 0,
  WR_DNS_RCODE_FORMERR = 1,
  WR_DNS_RCODE_SERVFAIL = 2,
  WR_DNS_RCODE_NXDOMAIN = 3,
  WR_DNS_RCODE_NOTIMP = 4,
  WR_DNS_RCODE_REFUSED = 5,
  WR_DNS_RCODE_NOTAUTH = 9,
  WR_DNS_RCODE_BADVERS = 16 /* extended (EDNS) rcode */
};

/* --- names ------------------------------------------------------------------- */

/* Checks that |name| is a canonical name as the store keeps them: 1..253
 * bytes, labels of 1..63 bytes of [a-z0-9_-] or a lone "*", no trailing dot.
 * Returns WR_OK or WR_ERR_INVAL. */
int wr_dns_name_check(const char *name);
/* 1 if |name| equals |zone| or lies below it (both canonical). */
int wr_dns_name_in_zone(const char *name, const char *zone);

/* --- zone snapshots ------------------------------------------------------------ */

typedef struct wr_dnszone wr_dnszone;

typedef struct wr_dnszone_params {
  const char *origin;          /* the zone (canonical) */
  const char *const *ns;       /* NS names, canonical absolute; 1..16 */
  size_t nns;
  const char *hostmaster;      /* SOA RNAME, canonical absolute (hostmaster.<zone>) */
  uint32_t serial;             /* SOA serial */
  uint32_t ttl;                /* every record; 0 means 300 */
  uint32_t neg_ttl;            /* SOA MINIMUM, the negative-caching TTL; 0 means 60 */
  const uint8_t (*v4)[4];      /* the address list of address names */
  size_t nv4;
  const uint8_t (*v6)[16];
  size_t nv6;
} wr_dnszone_params;

/* Creates an empty snapshot; every string and address is copied. NS names
 * inside the zone become address names (they must resolve: glue). Errors:
 * WR_ERR_INVAL (bad origin, NS or hostmaster name, no NS, more than 16 NS or
 * 64 addresses), WR_ERR_NOMEM. */
int wr_dnszone_new(const wr_mem *mem, const wr_dnszone_params *p, wr_dnszone **out);
/* Adds |owner| (canonical, strictly inside the zone): a CNAME to |target|
 * (canonical, anywhere) or, with |target| NULL, an address name. When a name
 * is added twice, the first one wins (NS hosts, then tunnels, then routes, as
 * edge/dns.c adds them). Errors: WR_ERR_INVAL (bad name, the apex, outside
 * the zone, already sealed), WR_ERR_LIMIT (WR_DNSZONE_MAX_NAMES), WR_ERR_NOMEM. */
int wr_dnszone_add(wr_dnszone *z, const char *owner, const char *target);
/* TXT records looked up when a query is answered rather than stored in
 * the snapshot (ACME DNS-01 answers, which come and go within seconds):
 * |fn| puts up to |max| values (each at most 255 bytes, NUL-terminated in
 * |out|'s rows of |row| bytes) for |name| (canonical) and returns how many.
 * A name with values answers TXT (and ANY) with them and every other type
 * with NODATA. |fn| runs inside wr_dnsmsg_respond; NULL: none. */
typedef size_t (*wr_dnszone_txt_fn)(void *user, const char *name, char *out, size_t row,
                                    size_t max);
void wr_dnszone_set_txt(wr_dnszone *z, wr_dnszone_txt_fn fn, void *user);
/* Sorts the names and drops duplicates; the snapshot is read-only afterwards
 * and only a sealed snapshot answers queries. */
void wr_dnszone_seal(wr_dnszone *z);
const char *wr_dnszone_origin(const wr_dnszone *z);
/* Names held (after seal: distinct names). */
size_t wr_dnszone_count(const wr_dnszone *z);
void wr_dnszone_free(wr_dnszone *z);

/* --- answering ----------------------------------------------------------------- */

/* Finds the zone that is authoritative for |qname| (canonical form; labels
 * with bytes outside [a-z0-9_*-] have them replaced by '?', which matches no
 * stored name): the deepest zone containing it. Sets *zone and returns WR_OK,
 * returns WR_ERR_NOTFOUND (not ours: REFUSED) or another error (SERVFAIL).
 * The zone must stay valid until wr_dnsmsg_respond returns. */
typedef int (*wr_dnsmsg_zone_fn)(void *user, const char *qname, const wr_dnszone **zone);

typedef struct wr_dnsmsg_info {
  uint16_t id;
  uint16_t qtype;                   /* 0 when there was no readable question */
  int rcode;                        /* full rcode (BADVERS = 16) of the response */
  int truncated;                    /* TC set */
  int edns;                         /* the query carried an OPT record */
  char qname[WR_DNS_NAME_MAX + 1];  /* canonical, "" when unknown */
} wr_dnsmsg_info;

/* Answers the query in |q| (one DNS message without the TCP length prefix).
 * |tcp| selects the size limit (65535 instead of the UDP limit); |cap| must
 * be at least WR_DNSMSG_UDP_MIN and bounds the response further. On WR_OK
 * |out| holds *outlen bytes to send; |info| (may be NULL) describes them.
 * Malformed queries with a readable header get FORMERR, other opcodes
 * NOTIMP, TSIG-signed queries NOTAUTH (no keys here), classes other than IN
 * and zone transfers REFUSED.
 * Errors (send nothing): WR_ERR_PROTO (shorter than a header, longer than
 * 65535, or a response: QR set), WR_ERR_INVAL (|cap| too small), WR_ERR_NOMEM. */
int wr_dnsmsg_respond(const uint8_t *q, size_t qlen, int tcp, wr_dnsmsg_zone_fn find, void *user,
                      uint8_t *out, size_t cap, size_t *outlen, wr_dnsmsg_info *info);

#endif
