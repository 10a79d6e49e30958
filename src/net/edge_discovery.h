/* Edge discovery as cloudflared's edgediscovery/allregions (protocol.md
 * 1.4), used when no --edge is given:
 *
 *   1. SRV lookup of _v2-origintunneld._tcp.argotunnel.com, or with a
 *      region R (--region, TUNNEL_REGION) _R-v2-origintunneld._tcp...,
 *      through the system resolver (/etc/resolv.conf, glibc's res_nquery);
 *   2. every SRV record is one region; at least two are required and only
 *      the first two (by priority) are used;
 *   3. each region's target is resolved to its A and AAAA addresses
 *      (getaddrinfo, in the system's preference order) with the record's
 *      port;
 *   4. per region the addresses are split by family: --edge-ip-version 4
 *      or 6 keeps that family only; auto keeps the family of the first
 *      address returned (cloudflared's "system preference");
 *   5. HA connections take addresses one at a time from the region with
 *      more unused addresses (region 1 on a tie; cloudflared picks at
 *      random), so four connections over two regions of two addresses each
 *      alternate between them.
 *
 * Not done: cloudflared's DNS-over-TLS retry to 1.1.1.1 when the system
 * resolver fails, re-resolving every hour, and switching an auto region to
 * its other family after connectivity errors.
 *
 * It blocks (DNS round trips): call it at start-up only. */
#ifndef WR_NET_EDGE_DISCOVERY_H
#define WR_NET_EDGE_DISCOVERY_H
#include <stddef.h>
#include <sys/socket.h>

/* --edge-ip-version */
enum { WR_EDGE_IP_AUTO = 0, WR_EDGE_IP_V4 = 4, WR_EDGE_IP_V6 = 6 };

/* Addresses kept per region. */
#define WR_EDGE_REGION_MAX 16

typedef struct wr_edge_region {
  struct sockaddr_storage addr[WR_EDGE_REGION_MAX];
  size_t n;
} wr_edge_region;

/* "auto", "4", "6" to WR_EDGE_IP_*. Returns 0, or -1 for anything else. */
int wr_edge_ip_version_parse(const char *s, int *out);

/* The SRV name for |region| (NULL or "": the global one) into |out|.
 * Returns 0, or -1 if it does not fit. */
int wr_edge_srv_name(const char *region, char *out, size_t cap);

/* Step 4 in place on |r|. */
void wr_edge_region_filter(wr_edge_region *r, int ip_version);

/* Step 5: up to |cap| addresses from |r1| and |r2| into |out| in
 * connection order. Returns the count. */
size_t wr_edge_spread(const wr_edge_region *r1, const wr_edge_region *r2,
                      struct sockaddr_storage *out, size_t cap);

/* Steps 1–5. Returns the number of addresses written to |out| (> 0), or -1
 * with a reason in |err| (cloudflared's wording where it has one). */
int wr_edge_discover(const char *region, int ip_version, struct sockaddr_storage *out,
                     size_t cap, char *err, size_t errlen);

#endif
