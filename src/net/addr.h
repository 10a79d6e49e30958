/* HOST:PORT strings and socket addresses, shared by every listener and
 * dialler flag (--edge, --metrics, --tunnel-listen, --api-listen, ...). */
#ifndef WR_NET_ADDR_H
#define WR_NET_ADDR_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Splits "host:port" or "[v6]:port" into |host| (brackets removed) and
 * |port| (digits, 0..65535). Returns 0, or -1 if it has no port, the host
 * does not fit |hostlen|, or the port is not a number in range. */
int wr_addr_split(const char *s, char *host, size_t hostlen, unsigned *port);

/* Resolves HOST:PORT with getaddrinfo (names such as localhost allowed;
 * this may block, so call it at start-up only). Up to |cap| addresses go to
 * |out|, IPv4 first when |prefer_v4|. Returns the count (> 0), or -1 with a
 * reason in |err| that quotes |s|. |what| names the flag in the message. */
int wr_addr_resolve(const char *what, const char *s, int socktype, int prefer_v4,
                    struct sockaddr_storage *out, size_t cap, char *err, size_t errlen);

/* "1.2.3.4:80" or "[::1]:80". */
void wr_addr_format(const struct sockaddr_storage *ss, char *out, size_t outlen);

/* The IP address of |sa| in 16-byte form (IPv4 as ::ffff:a.b.c.d), as
 * registerConnection's originLocalIp carries it. Returns 0, or -1 (|out|
 * zeroed) when |sa| is NULL or neither IPv4 nor IPv6. */
int wr_addr_ip16(const struct sockaddr *sa, uint8_t out[16]);

/* A raw IP address of |len| bytes (4, or 16 with a v4-mapped one written as
 * IPv4) as text in |out| (INET6_ADDRSTRLEN bytes suffice); any other length
 * gives "". Never fails; no allocation. */
void wr_addr_ip_text(const uint8_t *ip, size_t len, char *out, size_t outlen);

/* ---- sources ----------------------------------------------------------------
 * What every per-source limit counts under (QUIC half-open handshakes,
 * unregistered tunnel connections, visitor connections, sign-in and API-token
 * throttles): an IPv4 address, or the /64 of an IPv6 address, because one
 * subscriber usually has a whole /64 to send from. A v4-mapped IPv6 peer is
 * its IPv4 address. Written once here so that every limit agrees. */

#define WR_ADDR_SOURCE_KEY_LEN 16
/* Room for the longest source name: an IPv6 address, "/64" and the NUL. */
#define WR_ADDR_SOURCE_NAME_MAX 50

/* The 16-byte key of |sa|: ::ffff:a.b.c.d for IPv4 (and v4-mapped IPv6),
 * the first 8 bytes followed by zeros for IPv6. Returns 0, or -1 (key all
 * zero) for another address family or NULL. */
int wr_addr_source_key(const struct sockaddr *sa, uint8_t key[WR_ADDR_SOURCE_KEY_LEN]);

/* The key as text, for logs: "192.0.2.7" or "2001:db8:1:2::/64".
 * Truncated to |cap| (WR_ADDR_SOURCE_NAME_MAX always suffices). */
void wr_addr_source_name(const uint8_t key[WR_ADDR_SOURCE_KEY_LEN], char *out, size_t cap);

/* 1 if |a| and |b| are the same source, else 0 (also for NULL or another
 * family). */
int wr_addr_same_source(const struct sockaddr *a, const struct sockaddr *b);

#endif
