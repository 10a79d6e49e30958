/* QUIC transport: TLS. The shared credentials (wr_quic_tls), each
 * connection's GnuTLS session as ngtcp2_crypto_gnutls drives it, the checks
 * the tunnel protocol adds to the handshake (ALPN "argotunnel" on both
 * sides, protocol.md 1.2), and the text a TLS failure is reported with.
 * See quic_int.h for how the QUIC files divide the work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "lib/err.h"
#include "net/quic_int.h"
#include "net/tls.h"

/* --- TLS material ------------------------------------------------------- */

/* Loads the trust anchors (client) or the certificate chain and key
 * (server) into |cred|. Returns WR_OK or WR_ERR_CRYPTO (message in |err|). */
static int load_credentials(gnutls_certificate_credentials_t cred, wr_quic_role role,
                            const wr_quic_config *cfg, char *err, size_t errlen) {
  if (role != WR_QUIC_CLIENT) return wr_tls_load_key_file(cred, cfg->cert_file, cfg->key_file, err, errlen);
  if (cfg->ca_file) return wr_tls_load_ca_file(cred, cfg->ca_file, err, errlen);
  int rv = gnutls_certificate_set_x509_system_trust(cred);
  if (rv >= 0 && cfg->extra_ca_pem) {
    gnutls_datum_t d = {(unsigned char *)cfg->extra_ca_pem, (unsigned)cfg->extra_ca_pem_len};
    int k = gnutls_certificate_set_x509_trust_mem(cred, &d, GNUTLS_X509_FMT_PEM);
    rv = k < 0 ? k : rv + k;
  }
  /* The number of certificates loaded; none would make every handshake
   * fail later, less clearly (unlike TCP TLS, which leaves that to Go's
   * "signed by unknown authority"). */
  if (rv <= 0) {
    wr_set_err(err, errlen, "cannot load CA certificates from system store: %s",
               rv == 0 ? "no certificates found" : gnutls_strerror(rv));
    return WR_ERR_CRYPTO;
  }
  return WR_OK;
}

int wr_quic_tls_new(wr_quic_role role, const wr_quic_config *cfg,
                    wr_quic_tls **out, char *err, size_t errlen) {
  wr_quic_tls *t;
  const char *errpos = NULL;
  int rv;

  if (!cfg || !out) return WR_ERR_INVAL;
  if (role == WR_QUIC_SERVER && !cfg->sni_pick && (!cfg->cert_file || !cfg->key_file)) {
    wr_set_err(err, errlen, "QUIC server needs a certificate and a key file");
    return WR_ERR_CONFIG;
  }
  t = calloc(1, sizeof(*t));
  if (!t) return WR_ERR_NOMEM;
  t->role = role;
  if (gnutls_certificate_allocate_credentials(&t->cred) != 0) {
    rv = WR_ERR_NOMEM;
    goto fail_cred;
  }
  /* With sni_pick, each session gets its credentials from the owner. */
  rv = role == WR_QUIC_SERVER && cfg->sni_pick ? WR_OK : load_credentials(t->cred, role, cfg, err, errlen);
  if (rv != WR_OK) goto fail_files;
  rv = gnutls_priority_init(
      &t->prio, cfg->priority ? cfg->priority : WR_QUIC_PRIORITY_DEFAULT,
      &errpos);
  if (rv != 0) {
    wr_set_err(err, errlen, "bad GnuTLS priority string near '%s': %s",
               errpos ? errpos : "?", gnutls_strerror(rv));
    rv = WR_ERR_CRYPTO;
    goto fail_files;
  }
  *out = t;
  return WR_OK;

fail_files:
  gnutls_certificate_free_credentials(t->cred);
fail_cred:
  free(t);
  return rv;
}

void wr_quic_tls_free(wr_quic_tls *tls) {
  if (!tls) return;
  gnutls_priority_deinit(tls->prio);
  gnutls_certificate_free_credentials(tls->cred);
  free(tls);
}

/* --- per-connection session ----------------------------------------------- */

/* CRYPTO frame data for GnuTLS. A server drops its session once the
 * handshake is complete (wr__quic_tls_session_drop): a client has no TLS
 * message left to send then (TLS 1.3 post-handshake messages from a client
 * are KeyUpdate, forbidden in QUIC, and post-handshake authentication,
 * which no server here asks for), so such data ends the connection with
 * unexpected_message, as GnuTLS itself would. */
static int recv_crypto_data(ngtcp2_conn *conn, ngtcp2_crypto_level level, uint64_t offset,
                            const uint8_t *data, size_t datalen, void *user) {
  wr_quic_conn *c = user;
  if (!c->session) {
    c->tls_alert = GNUTLS_A_UNEXPECTED_MESSAGE;
    snprintf(c->tls_msg, sizeof(c->tls_msg), "%zu bytes of TLS data after the handshake",
             datalen);
    return NGTCP2_ERR_CRYPTO;
  }
  return ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, datalen, user);
}

void wr__quic_tls_callbacks(ngtcp2_callbacks *cb, wr_quic_role role) {
  if (role == WR_QUIC_CLIENT) {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  } else {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  }
  cb->recv_crypto_data = recv_crypto_data;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
}

/* Server side: GnuTLS would happily finish a handshake with a client that
 * sent no ALPN at all, but TLS-in-QUIC requires one (RFC 9001 8.1) and
 * cloudflared's edge only speaks "argotunnel". Refuse here, after
 * ClientHello parsing, with no_application_protocol. */
static int server_hello_hook(gnutls_session_t session, unsigned htype,
                             unsigned when, unsigned incoming,
                             const gnutls_datum_t *msg) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
  wr_quic_conn *c = ref->user_data;
  gnutls_datum_t d = {NULL, 0};
  (void)htype;
  (void)when;
  (void)incoming;
  (void)msg;
  if (gnutls_alpn_get_selected_protocol(session, &d) != 0) {
    snprintf(c->tls_msg, sizeof(c->tls_msg),
             "client offered no ALPN '%s' (no_application_protocol)",
             c->want_alpn);
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
  }
  return 0;
}

/* Server with sni_pick: the credentials for the name the client asked
 * for, or the unrecognized_name refusal (never another name's). */
static int server_pick_creds(gnutls_session_t session) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
  wr_quic_conn *c = ref->user_data;
  size_t len = sizeof(c->sni) - 1;
  unsigned type = 0;
  void *cred = NULL;
  int later = 0;
  if (gnutls_server_name_get(session, c->sni, &len, &type, 0) != 0 ||
      type != GNUTLS_NAME_DNS)
    len = 0;
  c->sni[len] = 0;
  if (c->sni_ref || !(c->sni_ref = c->sni_pick(c->sni_arg, c->sni, &cred, &later)) || !cred) {
    c->sni_later = later;
    c->tls_alert = GNUTLS_A_UNRECOGNIZED_NAME;
    snprintf(c->tls_msg, sizeof(c->tls_msg), "no certificate for server name '%.*s'",
             120, c->sni);
    return GNUTLS_E_UNRECOGNIZED_NAME;
  }
  return gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
}

int wr__quic_tls_session_new(wr_quic_conn *c, const wr_quic_config *cfg) {
  const char *alpn = cfg->alpn ? cfg->alpn : WR_QUIC_ALPN;
  unsigned flags = GNUTLS_NO_END_OF_EARLY_DATA;
  int rv;

  if (c->role == WR_QUIC_CLIENT)
    flags |= GNUTLS_CLIENT;
  else
    flags |= GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET;
  if (gnutls_init(&c->session, flags) != 0) return WR_ERR_NOMEM;
  if (gnutls_priority_set(c->session, c->tls->prio) != 0) return WR_ERR_CRYPTO;
  rv = c->role == WR_QUIC_CLIENT
           ? ngtcp2_crypto_gnutls_configure_client_session(c->session)
           : ngtcp2_crypto_gnutls_configure_server_session(c->session);
  if (rv != 0) return WR_ERR_CRYPTO;
  gnutls_session_set_ptr(c->session, &c->ref);
  if (gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE,
                             c->tls->cred) != 0)
    return WR_ERR_CRYPTO;
  snprintf(c->want_alpn, sizeof(c->want_alpn), "%s", alpn);
  if (alpn[0]) {
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)alpn,
                        (unsigned)strlen(alpn)};
    if (gnutls_alpn_set_protocols(c->session, &d, 1, GNUTLS_ALPN_MANDATORY) !=
        0)
      return WR_ERR_CRYPTO;
  }
  if (c->role == WR_QUIC_CLIENT) {
    const char *sni = cfg->sni ? cfg->sni : WR_QUIC_SNI_DEFAULT;
    if (gnutls_server_name_set(c->session, GNUTLS_NAME_DNS, sni,
                               strlen(sni)) != 0)
      return WR_ERR_CRYPTO;
    /* Verify the chain against the CA file and the name against the SNI,
     * as cloudflared does (protocol.md 1.2). */
    gnutls_session_set_verify_cert(c->session, sni, 0);
  } else {
    if (c->sni_pick)
      gnutls_handshake_set_post_client_hello_function(c->session, server_pick_creds);
    gnutls_handshake_set_hook_function(c->session, GNUTLS_HANDSHAKE_CLIENT_HELLO,
                                       GNUTLS_HOOK_POST, server_hello_hook);
  }
  ngtcp2_conn_set_tls_native_handle(c->conn, c->session);
  return WR_OK;
}

int wr__quic_tls_handshake_done(wr_quic_conn *c) {
  gnutls_datum_t d = {NULL, 0};
  const char *g;
  if (gnutls_alpn_get_selected_protocol(c->session, &d) == 0 &&
      d.size < sizeof(c->alpn)) {
    memcpy(c->alpn, d.data, d.size);
    c->alpn[d.size] = 0;
  }
  /* A server that ignores ALPN lets a GnuTLS client finish without one;
   * the tunnel protocol is only defined for "argotunnel". */
  if (c->want_alpn[0] && strcmp(c->alpn, c->want_alpn) != 0) {
    snprintf(c->tls_msg, sizeof(c->tls_msg),
             "server did not select ALPN '%s'", c->want_alpn);
    return -1;
  }
  g = gnutls_group_get_name(gnutls_group_get(c->session));
  snprintf(c->group, sizeof(c->group), "%s", g ? g : "");
  return 0;
}

void wr__quic_tls_session_drop(wr_quic_conn *c) {
  if (c->role != WR_QUIC_SERVER || !c->session) return;
  ngtcp2_conn_set_tls_native_handle(c->conn, NULL);
  gnutls_deinit(c->session);
  c->session = NULL;
  /* The credentials sni_pick lent were the session's: a long-lived
   * connection no longer holds a rotated-out certificate. */
  if (c->sni_ref && c->sni_release) c->sni_release(c->sni_arg, c->sni_ref);
  c->sni_ref = NULL;
}

/* --- failures ------------------------------------------------------------- */

const char *wr__quic_alert_name(uint64_t code) {
  const char *n = NULL;
  if (code >= NGTCP2_CRYPTO_ERROR && code <= NGTCP2_CRYPTO_ERROR + 0xff)
    n = gnutls_alert_get_strname((gnutls_alert_description_t)(code & 0xff));
  return n ? n : "";
}

/* The handshake failed inside GnuTLS: the alert it chose, explained by our
 * own refusal, the certificate check or the alert's name. */
static void describe_crypto_error(wr_quic_conn *c) {
  uint8_t alert = c->tls_alert ? c->tls_alert : ngtcp2_conn_get_tls_alert(c->conn);
  unsigned vs = 0;
  ngtcp2_connection_close_error_set_transport_error_tls_alert(&c->ccerr,
                                                              alert, NULL, 0);
  if (c->tls_msg[0]) {
    snprintf(c->msg, sizeof(c->msg), "%s: %s",
             c->session ? "TLS handshake failed" : "TLS", c->tls_msg);
  } else if (c->role == WR_QUIC_CLIENT &&
             (vs = gnutls_session_get_verify_cert_status(c->session)) != 0) {
    gnutls_datum_t d = {NULL, 0};
    gnutls_certificate_verification_status_print(vs, GNUTLS_CRT_X509, &d, 0);
    snprintf(c->msg, sizeof(c->msg),
             "TLS handshake failed: server certificate verification "
             "failed: %s",
             d.data ? (const char *)d.data : "unknown reason");
    gnutls_free(d.data);
  } else {
    snprintf(c->msg, sizeof(c->msg), "TLS handshake failed (alert %u %s)",
             alert, wr__quic_alert_name(NGTCP2_CRYPTO_ERROR | alert));
  }
}

int wr__quic_tls_close_error(wr_quic_conn *c, int liberr) {
  if (liberr == NGTCP2_ERR_CRYPTO) {
    describe_crypto_error(c);
    return 1;
  }
  if (c->tls_msg[0]) {
    /* Our own TLS-level refusal from a callback (e.g. ALPN check). */
    ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &c->ccerr, c->tls_alert ? c->tls_alert : GNUTLS_A_NO_APPLICATION_PROTOCOL, NULL, 0);
    snprintf(c->msg, sizeof(c->msg), "TLS handshake failed: %s", c->tls_msg);
    return 1;
  }
  return 0;
}
