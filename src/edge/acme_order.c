/* One ACME order on the worker thread (RFC 8555 §7): account, order,
 * challenges, finalize, download, files. Blocking by design: it runs
 * under uv_queue_work, never on the loop. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/acme_int.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "net/http_client.h"
#include "net/tls.h"

#define TIMEOUT_MS 10000u
#define MAX_POLLS 60
#define MAX_CHAIN (64u * 1024u)
#define MAX_NONCE_RETRIES 3

static void seterr(wr__acme_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(wr__acme_job *j, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->err, sizeof(j->err), fmt, ap);
  va_end(ap);
}

static int cancelled(wr_acme *a) { return atomic_load(&a->cancel); }

/* Waits poll_ms while the CA works: WR_OK, or WR_ERR_INTERNAL when the
 * edge is stopping. */
static int poll_wait(wr_acme *a) {
  if (cancelled(a)) return WR_ERR_INTERNAL;
  uv_sleep((unsigned)a->poll_ms);
  return WR_OK;
}

/* Keeps the Replay-Nonce of |resp| for the next request. */
static void take_nonce(wr_acme *a, const wr_http_response *resp) {
  const char *n = wr_http_response_header(resp, "Replay-Nonce");
  if (n && wr_acme_token_valid(n)) snprintf(a->w.nonce, sizeof(a->w.nonce), "%s", n);
  else a->w.nonce[0] = '\0';
}

static int http(wr_acme *a, wr__acme_job *j, const char *method, const char *url, const char *body,
                wr_http_response *resp) {
  static const wr_http_header jose = {"Content-Type", 12, "application/jose+json", 21};
  wr_http_request req = {.method = method, .url = url, .headers = body ? &jose : NULL,
                         .nheaders = body ? 1 : 0, .body = (const uint8_t *)body,
                         .body_len = body ? strlen(body) : 0, .timeout_ms = TIMEOUT_MS,
                         .max_body = MAX_CHAIN, .ca_file = a->ca_file};
  char err[512];
  memset(resp, 0, sizeof(*resp));
  int rv = wr_http_do(&req, resp, err, sizeof(err));
  if (rv != WR_OK) {
    seterr(j, "%s", err);
    return rv;
  }
  take_nonce(a, resp);
  return WR_OK;
}

/* "<status> <problem type>: <detail>" of an error answer into j->err. */
static void problem(wr__acme_job *j, const char *what, const wr_http_response *resp) {
  wr_acme_problem p;
  wr_acme_parse_problem((const char *)resp->body, resp->body_len, &p);
  seterr(j, "%s: HTTP %d %s%s%s", what, resp->status, p.type, p.type[0] ? ": " : "",
         p.detail[0] ? p.detail : "(no detail)");
}

static int get_directory(wr_acme *a, wr__acme_job *j) {
  wr_http_response resp;
  if (a->w.have_dir) return WR_OK;
  int rv = http(a, j, "GET", a->directory, NULL, &resp);
  if (rv == WR_OK && resp.status != 200) {
    problem(j, "the directory", &resp);
    rv = WR_ERR_PROTO;
  } else if (rv == WR_OK &&
             wr_acme_parse_directory((const char *)resp.body, resp.body_len, &a->w.dir) != WR_OK) {
    seterr(j, "%s is not an ACME directory", a->directory);
    rv = WR_ERR_PROTO;
  }
  wr_http_response_free(&resp);
  a->w.have_dir = rv == WR_OK;
  return rv;
}

static int new_nonce(wr_acme *a, wr__acme_job *j) {
  wr_http_response resp;
  int rv = http(a, j, "GET", a->w.dir.new_nonce, NULL, &resp);
  if (rv == WR_OK && !a->w.nonce[0]) {
    seterr(j, "newNonce gave no Replay-Nonce (HTTP %d)", resp.status);
    rv = WR_ERR_PROTO;
  }
  wr_http_response_free(&resp);
  return rv;
}

/* A signed POST (|payload| NULL: POST-as-GET); a badNonce answer is tried
 * again with the nonce it carried (RFC 8555 §6.5: servers may reject any
 * nonce; Pebble rejects 5% by default). Any HTTP status is WR_OK here. */
static int post(wr_acme *a, wr__acme_job *j, const char *url, const json_t *payload, int use_jwk,
                wr_http_response *resp) {
  for (int attempt = 0;; attempt++) {
    char *jws = NULL;
    int rv = a->w.nonce[0] ? WR_OK : new_nonce(a, j);
    if (rv != WR_OK) return rv;
    rv = wr_acme_jws(a->w.key, use_jwk ? NULL : a->w.kid, a->w.nonce, url, payload, &jws);
    a->w.nonce[0] = '\0'; /* used */
    if (rv != WR_OK) {
      seterr(j, "cannot sign a request: %s", wr_strerror(rv));
      return rv;
    }
    rv = http(a, j, "POST", url, jws, resp);
    free(jws);
    if (rv != WR_OK || resp->status != 400 || attempt >= MAX_NONCE_RETRIES) return rv;
    wr_acme_problem p;
    wr_acme_parse_problem((const char *)resp->body, resp->body_len, &p);
    if (strcmp(p.type, "urn:ietf:params:acme:error:badNonce") != 0) return WR_OK;
    wr_http_response_free(resp);
  }
}

/* The account key (DIR/acme/account.key, made 0600 on first use). */
static int load_key(wr_acme *a, wr__acme_job *j) {
  char path[4200], dir[4200], *pem = NULL;
  size_t len = 0;
  if (a->w.key) return WR_OK;
  snprintf(path, sizeof(path), "%s/" WR_ACME_ACCOUNT_KEY, a->data_dir);
  snprintf(dir, sizeof(dir), "%s/" WR_ACME_DATA_DIR, a->data_dir);
  int rv = wr_file_read(path, 64 * 1024, &pem, &len);
  if (rv == WR_OK) {
    rv = wr_acme_key_import_pem(pem, len, &a->w.key);
    if (rv != WR_OK) seterr(j, "%s is not a P-256 private key", path);
  } else if ((rv = wr_acme_key_generate(&a->w.key)) == WR_OK &&
             (rv = wr_acme_key_export_pem(a->w.key, &pem)) == WR_OK) {
    if (wr_mkdirs(dir, 0700) != WR_OK ||
        (rv = wr_file_write(path, pem, strlen(pem), 0600, 1)) != WR_OK) {
      seterr(j, "cannot write %s", path);
      rv = WR_ERR_IO;
    }
  }
  if (pem) {
    explicit_bzero(pem, strlen(pem));
    free(pem);
  }
  if (rv != WR_OK) {
    wr_acme_key_free(a->w.key);
    a->w.key = NULL;
  }
  return rv;
}

static int account(wr_acme *a, wr__acme_job *j) {
  wr_http_response resp;
  if (a->w.kid[0]) return WR_OK;
  json_t *pay = json_pack("{s:b}", "termsOfServiceAgreed", 1);
  if (a->email) {
    char mail[400];
    snprintf(mail, sizeof(mail), "mailto:%s", a->email);
    json_object_set_new(pay, "contact", json_pack("[s]", mail));
  }
  int rv = post(a, j, a->w.dir.new_account, pay, 1, &resp);
  json_decref(pay);
  if (rv == WR_OK) {
    const char *loc = wr_http_response_header(&resp, "Location");
    if ((resp.status != 200 && resp.status != 201) || !loc || strlen(loc) > WR_ACME_URL_MAX) {
      if (resp.status == 200 || resp.status == 201) seterr(j, "newAccount: no account URL");
      else problem(j, "newAccount", &resp);
      rv = WR_ERR_DENIED;
    } else {
      snprintf(a->w.kid, sizeof(a->w.kid), "%s", loc);
    }
  }
  wr_http_response_free(&resp);
  return rv;
}

/* POST-as-GET of |url| parsed as an order (|authz| NULL) or an
 * authorization. */
static int fetch(wr_acme *a, wr__acme_job *j, const char *url, wr_acme_order *order,
                 wr_acme_authz *authz) {
  wr_http_response resp;
  int rv = post(a, j, url, NULL, 0, &resp);
  if (rv == WR_OK && resp.status != 200) {
    problem(j, url, &resp);
    rv = WR_ERR_PROTO;
  } else if (rv == WR_OK) {
    const char *b = (const char *)resp.body;
    rv = order ? wr_acme_parse_order(b, resp.body_len, order)
               : wr_acme_parse_authz(b, resp.body_len, a->dns01 ? "dns-01" : "http-01", authz);
    if (rv == WR_ERR_NOTFOUND) seterr(j, "the CA offers no %s challenge", a->dns01 ? "dns-01" : "http-01");
    else if (rv != WR_OK) seterr(j, "%s: not a valid ACME answer", url);
  }
  wr_http_response_free(&resp);
  return rv;
}

/* POSTs |pay| (its reference is taken: released here) to |url| and wants a
 * 200: otherwise the CA's problem is reported as |what|, WR_ERR_DENIED. */
static int post_want_200(wr_acme *a, wr__acme_job *j, const char *url, json_t *pay,
                         const char *what) {
  wr_http_response resp;
  int rv = post(a, j, url, pay, 0, &resp);
  json_decref(pay);
  if (rv == WR_OK && resp.status != 200) {
    problem(j, what, &resp);
    rv = WR_ERR_DENIED;
  }
  wr_http_response_free(&resp);
  return rv;
}

/* Publishes the answer, tells the CA, waits for its verdict, withdraws. */
static int solve(wr_acme *a, wr__acme_job *j, const char *url, wr_acme_authz *z) {
  char ka[WR_ACME_KEYAUTH_MAX + 1], txt[WR_ACME_THUMB_LEN + 1], key[WR_ACME_NAME_MAX + 20];
  int rv = wr_acme_key_authorization(a->w.key, z->token, ka, sizeof(ka));
  if (rv != WR_OK) return rv;
  if (a->dns01) {
    wr_acme_dns01_value(ka, txt);
    snprintf(key, sizeof(key), "_acme-challenge.%s", z->identifier);
    rv = wr__acme_publish(a, 1, key, txt);
  } else {
    snprintf(key, sizeof(key), "%s", z->token);
    rv = wr__acme_publish(a, 0, key, ka);
  }
  if (rv != WR_OK) {
    seterr(j, "too many challenges at once");
    return rv;
  }
  rv = post_want_200(a, j, z->chall_url, json_object(), "the challenge");
  for (int i = 0; rv == WR_OK && i < MAX_POLLS; i++) {
    if ((rv = fetch(a, j, url, NULL, z)) != WR_OK) break;
    if (z->status == WR_ACME_VALID) break;
    if (z->status != WR_ACME_PENDING) {
      seterr(j, "%s: authorization %s: %s", z->identifier, wr_acme_status_name(z->status),
             z->chall_error[0] ? z->chall_error : "(no detail)");
      rv = WR_ERR_DENIED;
    } else {
      rv = poll_wait(a);
    }
  }
  if (rv == WR_OK && z->status != WR_ACME_VALID) {
    seterr(j, "%s: the CA did not validate in time", z->identifier);
    rv = WR_ERR_IO;
  }
  wr__acme_withdraw(a, key);
  return rv;
}

static int authorize(wr_acme *a, wr__acme_job *j, const wr_acme_order *o) {
  for (size_t i = 0; i < o->n_authz; i++) {
    wr_acme_authz z;
    int rv = fetch(a, j, o->authz[i], NULL, &z);
    if (rv != WR_OK) return rv;
    if (z.status == WR_ACME_VALID) continue; /* reused */
    if (z.status != WR_ACME_PENDING) {
      seterr(j, "%s: authorization is %s", z.identifier, wr_acme_status_name(z.status));
      return WR_ERR_DENIED;
    }
    if ((rv = solve(a, j, o->authz[i], &z)) != WR_OK) return rv;
  }
  return WR_OK;
}

static int new_order(wr_acme *a, wr__acme_job *j, char *url, wr_acme_order *o) {
  wr_http_response resp;
  json_t *pay = json_pack("{s:[{s:s,s:s}]}", "identifiers", "type", "dns", "value", j->host);
  int rv = post(a, j, a->w.dir.new_order, pay, 0, &resp);
  json_decref(pay);
  if (rv == WR_OK) {
    const char *loc = wr_http_response_header(&resp, "Location");
    if (resp.status != 201) {
      problem(j, "newOrder", &resp);
      rv = WR_ERR_DENIED;
    } else if (!loc || strlen(loc) > WR_ACME_URL_MAX ||
               wr_acme_parse_order((const char *)resp.body, resp.body_len, o) != WR_OK) {
      seterr(j, "newOrder: not a valid order");
      rv = WR_ERR_PROTO;
    } else {
      snprintf(url, WR_ACME_URL_MAX + 1, "%s", loc);
    }
  }
  wr_http_response_free(&resp);
  return rv;
}

/* Finalizes with a CSR for a new key (*key_pem) and waits for "valid". */
static int finalize(wr_acme *a, wr__acme_job *j, const char *url, wr_acme_order *o,
                    char **key_pem) {
  char *csr = NULL;
  const char *names[1] = {j->host};
  int rv = wr_acme_csr(names, 1, key_pem, &csr);
  if (rv != WR_OK) {
    seterr(j, "cannot make a CSR: %s", wr_strerror(rv));
    return rv;
  }
  json_t *pay = json_pack("{s:s}", "csr", csr);
  free(csr);
  rv = post_want_200(a, j, o->finalize, pay, "finalize");
  for (int i = 0; rv == WR_OK && i < MAX_POLLS; i++) {
    if ((rv = fetch(a, j, url, o, NULL)) != WR_OK) break;
    if (o->status == WR_ACME_VALID && o->certificate[0]) break;
    if (o->status != WR_ACME_PROCESSING && o->status != WR_ACME_READY) {
      seterr(j, "the order became %s", wr_acme_status_name(o->status));
      rv = WR_ERR_DENIED;
    } else {
      rv = poll_wait(a);
    }
  }
  if (rv == WR_OK && !o->certificate[0]) {
    seterr(j, "the CA did not issue in time");
    rv = WR_ERR_IO;
  }
  return rv;
}

/* Downloads the chain, checks it against |key_pem| and writes both. */
static int download(wr_acme *a, wr__acme_job *j, const char *url, const char *key_pem) {
  char cp[4400], kp[4400], dir[4200], err[256] = "";
  wr_http_response resp;
  wr_tls_creds *creds = NULL;
  int64_t nb = 0;
  int rv = post(a, j, url, NULL, 0, &resp);
  if (rv == WR_OK && resp.status != 200) {
    problem(j, "the certificate", &resp);
    rv = WR_ERR_PROTO;
  }
  const char *chain = rv == WR_OK ? (const char *)resp.body : NULL;
  if (rv == WR_OK && (wr_tls_creds_server_mem(chain, key_pem, &creds, err, sizeof(err)) != WR_OK ||
                      wr__acme_validity(chain, &nb, &j->not_after) != WR_OK)) {
    seterr(j, "the certificate the CA sent is not usable: %s", err);
    rv = WR_ERR_CRYPTO;
  }
  wr_tls_creds_free(creds);
  if (rv == WR_OK) {
    snprintf(dir, sizeof(dir), "%s/" WR_CERTS_ACME_DIR, a->data_dir);
    wr__acme_cert_paths(a->data_dir, j->host, cp, kp, sizeof(cp));
    /* The key first, so a certificate on disk always has its key. */
    if (wr_mkdirs(dir, 0700) != WR_OK ||
        wr_file_write(kp, key_pem, strlen(key_pem), 0600, 0) != WR_OK ||
        wr_file_write(cp, chain, strlen(chain), 0644, 0) != WR_OK) {
      seterr(j, "cannot write %s", cp);
      rv = WR_ERR_IO;
    }
  }
  wr_http_response_free(&resp);
  return rv;
}

int wr__acme_order(wr_acme *a, wr__acme_job *j) {
  char url[WR_ACME_URL_MAX + 1], *key_pem = NULL;
  wr_acme_order o;
  int rv;
  if ((rv = load_key(a, j)) != WR_OK || (rv = get_directory(a, j)) != WR_OK ||
      (rv = account(a, j)) != WR_OK || (rv = new_order(a, j, url, &o)) != WR_OK)
    return rv;
  if (o.status == WR_ACME_PENDING && (rv = authorize(a, j, &o)) != WR_OK) return rv;
  if (cancelled(a)) return WR_ERR_INTERNAL;
  rv = finalize(a, j, url, &o, &key_pem);
  if (rv == WR_OK) rv = download(a, j, o.certificate, key_pem);
  if (key_pem) {
    explicit_bzero(key_pem, strlen(key_pem));
    free(key_pem);
  }
  if (rv != WR_OK && !j->err[0]) seterr(j, "%s", wr_strerror(rv));
  /* A failure may come from a stale account or directory: start afresh. */
  if (rv != WR_OK) {
    a->w.kid[0] = '\0';
    a->w.have_dir = 0;
  }
  return rv;
}

void wr__acme_worker_reset(wr_acme *a) {
  wr_acme_key_free(a->w.key);
  a->w.key = NULL;
}
