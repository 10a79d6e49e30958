/* The other Go values in API objects and command arguments, parsed and
 * printed as cloudflared's Go does: uuid.UUID (google/uuid), net.IP and
 * net.IPNet (a route's network). Pure functions, no allocation. */
#ifndef WR_CFAPI_VALUES_H
#define WR_CFAPI_VALUES_H
#include <stddef.h>
#include <stdint.h>

#include "lib/encoding.h"

/* Output buffers of the String() forms need this many bytes. */
#define WR_CFAPI_ADDR_STRLEN 64

/* google/uuid's Parse: canonical, {canonical}, urn:uuid:canonical or 32
 * hex digits. Returns WR_OK, or WR_ERR_PROTO with Go's message in |why|
 * ("invalid UUID length: N", "invalid UUID format", "invalid urn prefix:
 * …"). */
int wr_cfapi_uuid_parse(const char *s, wr_uuid *u, char *why, size_t whylen);

/* net.IP: |len| 0 = nil, else 4 or 16 bytes as Go keeps it. */
typedef struct wr_cfapi_ip {
  uint8_t b[16];
  int len;
} wr_cfapi_ip;

/* net.ParseIP (always the 16-byte form; no zones). WR_OK or WR_ERR_PROTO. */
int wr_cfapi_ip_parse(const char *s, wr_cfapi_ip *ip);
/* IP.String(): dotted quad for IPv4 (and v4-mapped), RFC 5952 for IPv6,
 * "<nil>" for nil. */
void wr_cfapi_ip_str(const wr_cfapi_ip *ip, char out[WR_CFAPI_ADDR_STRLEN]);

/* net.IPNet; an |ip| of len 0 is the zero IPNet. */
typedef struct wr_cfapi_cidr {
  wr_cfapi_ip ip;      /* the masked network address, 4 bytes for IPv4 */
  int bits;            /* prefix length */
} wr_cfapi_cidr;

/* net.ParseCIDR's network (masked). WR_OK or WR_ERR_PROTO. */
int wr_cfapi_cidr_parse(const char *s, wr_cfapi_cidr *c);
/* IPNet.String(): "10.0.0.0/8", "<nil>" for the zero IPNet. */
void wr_cfapi_cidr_str(const wr_cfapi_cidr *c, char out[WR_CFAPI_ADDR_STRLEN]);
/* Byte |i| of the mask (0 <= i < ip.len). */
uint8_t wr_cfapi_cidr_mask_byte(const wr_cfapi_cidr *c, int i);

#endif
