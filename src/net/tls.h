/* TLS over memory buffers (GnuTLS), for TCP and unix-socket streams: https
 * origins on the connector. Sans-I/O: the
 * owner feeds ciphertext it read from the socket with wr_tls_feed(), takes
 * ciphertext to send with wr_tls_pending()/wr_tls_sent(), and moves
 * plaintext with wr_tls_read()/wr_tls_write(). No callbacks, no sockets, so
 * it is testable by wiring two sessions together in memory.
 *
 * Verification (client): against ca_file (PEM bundle) or, when NULL, the
 * system trust store (gnutls_certificate_set_x509_system_trust); the name
 * checked is verify_name, else server_name. no_verify skips both checks
 * (cloudflared's noTLSVerify). */
#ifndef WR_NET_TLS_H
#define WR_NET_TLS_H
#include <stddef.h>
#include <stdint.h>

/* Shared credentials: loaded once, used by many sessions. */
typedef struct wr_tls_creds wr_tls_creds;

typedef struct wr_tls_client_config {
  const char *ca_file;     /* PEM trust anchors; NULL = system trust store */
  int no_verify;           /* 1: accept any certificate (noTLSVerify) */
  /* With ca_file NULL: PEM anchors trusted besides the system store
   * (Cloudflare's roots for its edge), or NULL. Not kept. */
  const char *extra_ca_pem;
  size_t extra_ca_pem_len;
  /* A client certificate (PEM chain and key) sent when the server asks
   * for one; NULL: none. */
  const char *cert_file;
  const char *key_file;
} wr_tls_client_config;

typedef struct wr_tls_server_config {
  const char *cert_file;   /* PEM chain */
  const char *key_file;    /* PEM key */
  /* PEM anchors: every client must present a certificate chaining to one
   * of them, or the handshake fails (mutual TLS). NULL: no client
   * certificate is asked for. */
  const char *client_ca_file;
} wr_tls_server_config;

/* Returns WR_OK, WR_ERR_CRYPTO (a file GnuTLS refused; |err| says which and
 * why) or WR_ERR_NOMEM. */
int wr_tls_creds_client(const wr_tls_client_config *cfg, wr_tls_creds **out, char *err,
                        size_t errlen);
/* As wr_tls_creds_client, offering only P-256 key exchange (cloudflared's
 * CurvePreferences towards the edge). */
int wr_tls_creds_client_p256(const wr_tls_client_config *cfg, wr_tls_creds **out, char *err,
                             size_t errlen);
int wr_tls_creds_server(const wr_tls_server_config *cfg, wr_tls_creds **out, char *err,
                        size_t errlen);
/* As wr_tls_creds_server from PEM text in memory (|key_pem| is not kept;
 * the caller wipes it). */
int wr_tls_creds_server_mem(const char *cert_pem, const char *key_pem, wr_tls_creds **out,
                            char *err, size_t errlen);
/* Frees; sessions using it must be gone. */
void wr_tls_creds_free(wr_tls_creds *c);
/* The gnutls_certificate_credentials_t inside |c| (borrowed), for a TLS
 * stack that makes its own sessions (QUIC: net/quic.h sni_pick). */
void *wr_tls_creds_native(wr_tls_creds *c);
/* Loaders into a gnutls_certificate_credentials_t |cred| (passed as void *,
 * as wr_tls_creds_native hands it out), shared with QUIC (quic_tls.c).
 * wr_tls_load_key_file: a PEM certificate chain and its key.
 * wr_tls_load_ca_file: trust anchors from a PEM file; none is an error too
 * (every handshake would fail later, less clearly).
 * Both return WR_OK or WR_ERR_CRYPTO with the reason in |err|
 * ("cannot load certificate C / key K: …", "cannot load CA certificates
 * from F: …"). They read files: not for use from a callback. */
int wr_tls_load_key_file(void *cred, const char *cert_file, const char *key_file, char *err, size_t errlen);
int wr_tls_load_ca_file(void *cred, const char *ca_file, char *err, size_t errlen);

typedef struct wr_tls wr_tls;

/* A client session. |server_name| (may be NULL or an IP literal: then no
 * SNI is sent) is the SNI; |verify_name| (NULL = server_name) the name the
 * certificate must carry. |alpn| may be NULL, or the protocols to offer,
 * comma-separated in order of preference ("h2,http/1.1"; at most 8). */
int wr_tls_client_new(wr_tls_creds *creds, const char *server_name, const char *verify_name,
                      const char *alpn, wr_tls **out);
/* A server session. */
int wr_tls_server_new(wr_tls_creds *creds, wr_tls **out);
/* A server session that accepts TLS 1.3 only when |tls13_only| (else 1.2
 * and 1.3) and, when |alpn| is not NULL, selects among its protocols (a
 * comma-separated list of at most 4, "h2,http/1.1", first preferred) the
 * first one the client offers (a client offering none of them gets no
 * ALPN). */
int wr_tls_server_new_opts(wr_tls_creds *creds, int tls13_only, const char *alpn, wr_tls **out);
void wr_tls_free(wr_tls *t);

/* Ciphertext from the peer (copied into the session's input buffer).
 * Returns WR_OK, WR_ERR_LIMIT (more than WR_TLS_MAX_UNREAD bytes would sit
 * unread: drain with wr_tls_handshake()/wr_tls_read() first), WR_ERR_INVAL
 * (after wr_tls_feed_eof) or WR_ERR_NOMEM. */
#define WR_TLS_MAX_UNREAD (1u << 20)
int wr_tls_feed(wr_tls *t, const uint8_t *data, size_t len);
/* Peer closed the transport (TCP EOF). */
void wr_tls_feed_eof(wr_tls *t);

/* Advances the handshake. Returns WR_OK once complete, WR_AGAIN while it
 * needs more input (send wr_tls_pending() first), WR_ERR_CRYPTO on failure
 * (wr_tls_errmsg() says why: "certificate signed by unknown authority",
 * "certificate is valid for x, not y", alert names, ...). */
int wr_tls_handshake(wr_tls *t);

/* Plaintext out of the fed ciphertext. Returns WR_OK with *n > 0, WR_AGAIN
 * (nothing decryptable yet), WR_ERR_TRUNC (the transport ended without
 * close_notify), or WR_ERR_CRYPTO. *eof is set to 1 on close_notify (then
 * WR_OK with *n == 0). */
int wr_tls_read(wr_tls *t, uint8_t *buf, size_t cap, size_t *n, int *eof);
/* Encrypts |len| bytes into the output buffer (all of them). Returns WR_OK,
 * WR_ERR_INVAL (handshake not done) or WR_ERR_CRYPTO. */
int wr_tls_write(wr_tls *t, const uint8_t *data, size_t len);
/* Queues close_notify. */
int wr_tls_bye(wr_tls *t);

/* Ciphertext waiting to be sent: *data, returns its length (0: none). */
size_t wr_tls_pending(wr_tls *t, const uint8_t **data);
/* The first |n| pending bytes were handed to the socket. */
void wr_tls_sent(wr_tls *t, size_t n);

/* 1 if fed ciphertext or decrypted bytes still wait for wr_tls_read. */
int wr_tls_has_unread(wr_tls *t);
/* The negotiated protocol version, "TLS1.2" or "TLS1.3" ("" before). */
const char *wr_tls_version(const wr_tls *t);

/* Why the last call failed (never NULL). */
const char *wr_tls_errmsg(const wr_tls *t);
/* Negotiated ALPN or "". */
const char *wr_tls_alpn(const wr_tls *t);

#endif
