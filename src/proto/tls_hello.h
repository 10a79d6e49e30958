/* Sans-I/O helpers for the visitor TLS front: the server name (SNI) of a
 * TLS ClientHello read before any TLS session exists, the plaintext alert
 * record that refuses a handshake, and the certificate-name rules.
 *
 * Why peek: the certificate (and whether there is one at all) depends on
 * a route lookup that runs on the store thread; reading the name first
 * lets the edge pick the credentials before GnuTLS sees the bytes, and
 * refuse an unknown name without ever loading another tenant's key.
 *
 * Name rules (RFC 6125 6.4.3, as browsers apply them): names compare case-
 * insensitively, without a trailing dot; "*" is allowed only as the whole
 * left-most label and matches exactly one non-empty label ("*.a.b" matches
 * "x.a.b", not "a.b" nor "y.x.a.b"); a wildcard needs at least two labels
 * after it. */
#ifndef WR_PROTO_TLS_HELLO_H
#define WR_PROTO_TLS_HELLO_H
#include <stddef.h>
#include <stdint.h>

/* The most ClientHello bytes (records included) read before giving up. */
#define WR_TLS_HELLO_MAX (32u * 1024u)
#define WR_TLS_NAME_MAX 253

/* Parses the ClientHello at the start of |data| (TLS records, possibly
 * split over several). On WR_OK |sni| holds the host_name of the
 * server_name extension, lower-cased and without a trailing dot, or "" when
 * the client sent none. Returns WR_OK, WR_AGAIN (more bytes needed),
 * WR_ERR_PROTO (not a TLS ClientHello, malformed, or a server name that
 * is not a DNS name) or WR_ERR_LIMIT (over WR_TLS_HELLO_MAX). */
int wr_tls_hello_sni(const uint8_t *data, size_t len, char *sni, size_t cap);

/* A fatal alert record (plaintext, as before any keys exist): 7 bytes. */
#define WR_TLS_ALERT_UNRECOGNIZED_NAME 112
#define WR_TLS_ALERT_DECODE_ERROR 50
void wr_tls_alert_record(uint8_t out[7], uint8_t alert);

/* 1 if |name| is a DNS name as certificates carry them (letters, digits,
 * '-', '_' labels of 1..63, total <= 253, an optional "*." first label
 * when |allow_wildcard|), else 0. */
int wr_tls_name_valid(const char *name, int allow_wildcard);
/* 1 if certificate name |pattern| covers host |host| (rules above). */
int wr_tls_name_match(const char *pattern, const char *host);

#endif
