/* Internals of the visitor front (visitor.c) shared with its unit tests. */
#ifndef WR_EDGE_VISITOR_INT_H
#define WR_EDGE_VISITOR_INT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A source key: 16 bytes, the IPv6 form of what one source owns. */
#define WR__VISITOR_KEY_LEN 16
/* Room for the longest wr__visitor_source_name (an IPv6 address + "/64"). */
#define WR__VISITOR_NAME_MAX 56

/* The key that limits |sa|'s connections and requests: an IPv4 address
 * (also when it arrives v4-mapped on an IPv6 socket) as ::ffff:a.b.c.d, an
 * IPv6 address by its /64 with the interface half zeroed, since one host
 * gets a whole /64 and can pick any address in it. Returns WR_OK, or
 * WR_ERR_INVAL for another address family (|key| is then zeroed). */
int wr__visitor_source_key(const struct sockaddr *sa, uint8_t key[WR__VISITOR_KEY_LEN]);

/* The key for logs: "192.0.2.7" or "2001:db8:1:2::/64". |cap| of at least
 * WR__VISITOR_NAME_MAX never truncates. */
void wr__visitor_source_name(const uint8_t key[WR__VISITOR_KEY_LEN], char *out, size_t cap);

#endif
