/* "host:port" as Go's net package reads it for net.Dial("tcp", dest): the
 * split of net.SplitHostPort and the port rules of Resolver.LookupPort,
 * with Go's error texts, because the connector answers a warp-routing `tcp`
 * ConnectRequest whose dest it cannot dial with exactly the error
 * cloudflared 2023.7.3 gives (protocol.md 4.5, vector
 * tcp-dial-error.from-connector.bin: "dial tcp: address tcp://127.0.0.1:9000:
 * too many colons in address").
 *
 * Pure functions, no allocation. */
#ifndef WR_PROTO_HOSTPORT_H
#define WR_PROTO_HOSTPORT_H
#include <stddef.h>
#include <stdint.h>

/* Splits |s| (|len| bytes, not NUL-terminated) into |host| (brackets of
 * "[v6]:port" removed; "" allowed) and |port| (a number 0..65535, or a
 * service name from /etc/services). Returns 0, or -1 with Go's message in
 * |err| without the "dial tcp: " prefix, e.g.
 *   "address 10.0.0.1: missing port in address"
 *   "address a:b:c: too many colons in address"
 *   "address 70000: invalid port"
 *   "lookup tcp/nosuch: unknown port"
 * A host longer than |hostcap| - 1 bytes is "address ...: host too long". */
int wr_go_split_host_port(const char *s, size_t len, char *host, size_t hostcap, uint16_t *port,
                          char *err, size_t errlen);

#endif
