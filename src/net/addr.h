/* HOST:PORT strings and socket addresses, shared by every listener and
 * dialler flag (--edge, --metrics, --tunnel-listen, --api-listen, ...). */
#ifndef WR_NET_ADDR_H
#define WR_NET_ADDR_H
#include <stddef.h>
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

#endif
