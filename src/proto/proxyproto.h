/* PROXY protocol headers (HAProxy's "The PROXY protocol", versions 1 and 2):
 * the bytes a proxy writes first on a connection to an origin so the origin
 * learns the client's address. Only the sending side is here (the connector
 * writes them; nothing in Warren reads them).
 *
 * Addresses are struct sockaddr_storage holding AF_INET or AF_INET6 with the
 * port set; any other family (AF_UNSPEC) means "unknown", which v1 writes as
 * "PROXY UNKNOWN\r\n" and v2 as the PROXY command with family UNSPEC and no
 * address block. When one side is IPv4 and the other IPv6, the IPv4 address
 * is written as IPv4-mapped IPv6 (both versions require one family).
 *
 * Pure functions: no allocation, callable from anywhere. */
#ifndef WR_PROTO_PROXYPROTO_H
#define WR_PROTO_PROXYPROTO_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest header either version writes (v1 TCP6 is 104 bytes + NUL
 * room; v2 TCP6 is 52 bytes). */
#define WR_PROXYPROTO_MAX 108

/* Version numbers as configured (originRequest.proxyProtocol). */
enum { WR_PROXYPROTO_OFF = 0, WR_PROXYPROTO_V1 = 1, WR_PROXYPROTO_V2 = 2 };

/* Writes the |version| (1 or 2) header for a TCP connection from |src| to
 * |dst| into |out| (|cap| >= WR_PROXYPROTO_MAX is always enough). Returns
 * the length, or -1 for a bad version or too small a buffer. */
int wr_proxyproto_write(int version, const struct sockaddr_storage *src,
                        const struct sockaddr_storage *dst, uint8_t *out, size_t cap);

/* Parses an address literal ("192.0.2.1", "2001:db8::1", also "[2001:db8::1]")
 * and |port| into |out|. Returns 0, or -1 (then |out| is AF_UNSPEC). */
int wr_proxyproto_addr(const char *ip, size_t len, uint16_t port, struct sockaddr_storage *out);

#endif
