/* Certificates by SNI; see certs.h. */
#include "edge/certs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "edge/certs_int.h"
#include "edge/pki.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/hash.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/xasprintf.h"
#include "proto/tls_hello.h"

/* ---- certificate facts ------------------------------------------------------- */

static int is_id(const char *s) {
  if (strlen(s) != WR_CERTS_ID_LEN) return 0;
  for (int i = 0; i < WR_CERTS_ID_LEN; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  }
  return 1;
}

static void add_name(wr_cert_info *info, const char *name, size_t len) {
  if (info->n_names >= WR_CERTS_MAX_NAMES || len > WR_CERTS_NAME_MAX) return;
  char *dst = info->names[info->n_names];
  for (size_t i = 0; i < len; i++)
    dst[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] + 32) : name[i];
  if (len && dst[len - 1] == '.') len--;
  dst[len] = '\0';
  info->n_names++;
}

/* The names of |crt|: DNS SANs, else the CN. Returns 0, or -1 for a name
 * that is not a valid DNS name. */
static int crt_names(gnutls_x509_crt_t crt, wr_cert_info *info) {
  for (unsigned i = 0;; i++) {
    char name[WR_CERTS_NAME_MAX + 2];
    size_t len = sizeof(name) - 1;
    int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &len, NULL);
    if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) break;
    if (type == GNUTLS_E_SHORT_MEMORY_BUFFER) return -1;
    if (type < 0 || type != GNUTLS_SAN_DNSNAME) continue;
    add_name(info, name, len);
  }
  if (info->n_names == 0) {
    char cn[WR_CERTS_NAME_MAX + 2];
    size_t len = sizeof(cn) - 1;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) == 0)
      add_name(info, cn, len);
  }
  if (info->n_names == 0) return -1;
  for (size_t i = 0; i < info->n_names; i++)
    if (!wr_tls_name_valid(info->names[i], 1)) return -1;
  return 0;
}

/* Fills |info| (but id and uploaded_at) from the first certificate of
 * |pem|. */
static int info_from_pem(const char *pem, wr_cert_info *info, char *err, size_t errlen) {
  gnutls_x509_crt_t crt;
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
  memset(info->names, 0, sizeof(info->names));
  info->n_names = 0;
  if (gnutls_x509_crt_init(&crt) < 0) return WR_ERR_NOMEM;
  int g = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
  if (g < 0) {
    snprintf(err, errlen, "the certificate does not parse: %s", gnutls_strerror(g));
    gnutls_x509_crt_deinit(crt);
    return WR_ERR_CRYPTO;
  }
  int rv = WR_OK;
  if (crt_names(crt, info) != 0) {
    snprintf(err, errlen, "the certificate has no name or a name that is not a DNS name");
    rv = WR_ERR_INVAL;
  }
  size_t il = sizeof(info->issuer);
  if (gnutls_x509_crt_get_issuer_dn(crt, info->issuer, &il) < 0) info->issuer[0] = '\0';
  int alg = gnutls_x509_crt_get_signature_algorithm(crt);
  const char *an = alg == GNUTLS_SIGN_ECDSA_SHA256   ? "ECDSAWithSHA256"
                   : alg == GNUTLS_SIGN_ECDSA_SHA384 ? "ECDSAWithSHA384"
                   : alg == GNUTLS_SIGN_RSA_SHA256   ? "SHA256WithRSA"
                   : alg == GNUTLS_SIGN_RSA_SHA384   ? "SHA384WithRSA"
                   : alg == GNUTLS_SIGN_EDDSA_ED25519 ? "Ed25519"
                                                      : gnutls_sign_get_name(alg);
  snprintf(info->signature, sizeof(info->signature), "%s", an ? an : "unknown");
  info->not_before = gnutls_x509_crt_get_activation_time(crt);
  info->not_after = gnutls_x509_crt_get_expiration_time(crt);
  gnutls_x509_crt_deinit(crt);
  return rv;
}

int wr_cert_info_in_zone(const wr_cert_info *info, const char *zone) {
  size_t zl = strlen(zone);
  for (size_t i = 0; i < info->n_names; i++) {
    const char *n = info->names[i];
    size_t nl = strlen(n);
    if (strcasecmp(n, zone) == 0) return 1;
    if (nl > zl && n[nl - zl - 1] == '.' && strcasecmp(n + nl - zl, zone) == 0) return 1;
  }
  return 0;
}

/* ---- files --------------------------------------------------------------------- */

static void path_of(char *buf, size_t n, const char *dir, const char *id, const char *ext) {
  snprintf(buf, n, "%s/" WR_CERTS_DIR "/%s.%s", dir, id, ext);
}

static int new_id(char out[WR_CERTS_ID_LEN + 1]) {
  uint8_t b[16];
  if (wr_random_bytes(b, sizeof(b)) != 0) return WR_ERR_IO;
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  snprintf(out, WR_CERTS_ID_LEN + 1,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  return WR_OK;
}

/* The key must belong to the certificate: GnuTLS checks it as it loads the
 * pair, as it will when serving. */
static int check_pair(const char *cert_pem, const char *key_pem, char *err, size_t errlen) {
  wr_tls_creds *c = NULL;
  int rv = wr_tls_creds_server_mem(cert_pem, key_pem, &c, err, errlen);
  wr_tls_creds_free(c);
  return rv;
}

int wr_certs_add(const char *data_dir, const char *cert_pem, const char *key_pem,
                 wr_cert_info *info, char *err, size_t errlen) {
  wr_cert_info tmp;
  char dir[4096], kp[4200], cp[4200];
  if (!info) info = &tmp;
  memset(info, 0, sizeof(*info));
  int rv = info_from_pem(cert_pem, info, err, errlen);
  if (rv != WR_OK) return rv;
  if ((rv = check_pair(cert_pem, key_pem, err, errlen)) != WR_OK) return rv;
  snprintf(dir, sizeof(dir), "%s/" WR_CERTS_DIR, data_dir);
  if (wr_mkdirs(dir, 0700) != WR_OK || new_id(info->id) != WR_OK) {
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    return WR_ERR_IO;
  }
  path_of(kp, sizeof(kp), data_dir, info->id, "key");
  path_of(cp, sizeof(cp), data_dir, info->id, "pem");
  /* The key first, so a certificate on disk always has its key. */
  if (wr_file_write(kp, key_pem, strlen(key_pem), 0600, 1) != WR_OK ||
      wr_file_write(cp, cert_pem, strlen(cert_pem), 0644, 1) != WR_OK) {
    snprintf(err, errlen, "cannot write %s: %s", cp, strerror(errno));
    unlink(kp);
    return WR_ERR_IO;
  }
  info->uploaded_at = time(NULL);
  return WR_OK;
}

static int info_load(const char *data_dir, const char *id, wr_cert_info *out) {
  char cp[4200], kp[4200], err[256];
  char *pem = NULL;
  struct stat st;
  path_of(cp, sizeof(cp), data_dir, id, "pem");
  path_of(kp, sizeof(kp), data_dir, id, "key");
  if (stat(kp, &st) != 0) return WR_ERR_NOTFOUND;
  if (wr_file_read(cp, MAX_PEM, &pem, NULL) != WR_OK) return WR_ERR_NOTFOUND;
  memset(out, 0, sizeof(*out));
  int rv = info_from_pem(pem, out, err, sizeof(err));
  free(pem);
  snprintf(out->id, sizeof(out->id), "%s", id);
  out->uploaded_at = st.st_mtime;
  return rv;
}

int wr_certs_get(const char *data_dir, const char *id, wr_cert_info *out) {
  if (!is_id(id)) return WR_ERR_NOTFOUND;
  int rv = info_load(data_dir, id, out);
  return rv == WR_OK ? WR_OK : WR_ERR_NOTFOUND;
}

static int info_cmp(const void *a, const void *b) {
  const wr_cert_info *x = a, *y = b;
  int c = strcmp(x->names[0], y->names[0]);
  return c ? c : strcmp(x->id, y->id);
}

/* The ids of DIR/certs/<id>.pem, in |ids| (malloc'd). */
static size_t scan_ids(const char *data_dir, char (**ids)[WR_CERTS_ID_LEN + 1]) {
  char dir[4096];
  size_t n = 0, cap = 0;
  *ids = NULL;
  snprintf(dir, sizeof(dir), "%s/" WR_CERTS_DIR, data_dir);
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l != WR_CERTS_ID_LEN + 4 || strcmp(de->d_name + WR_CERTS_ID_LEN, ".pem") != 0) continue;
    char id[WR_CERTS_ID_LEN + 1];
    memcpy(id, de->d_name, WR_CERTS_ID_LEN);
    id[WR_CERTS_ID_LEN] = '\0';
    if (!is_id(id)) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      *ids = wr_xrealloc(*ids, cap * sizeof(**ids));
    }
    memcpy((*ids)[n++], id, sizeof(id));
  }
  closedir(d);
  return n;
}

int wr_certs_list(const char *data_dir, wr_cert_info **out, size_t *n) {
  char(*ids)[WR_CERTS_ID_LEN + 1];
  size_t k = scan_ids(data_dir, &ids), m = 0;
  *out = wr_xcalloc(k ? k : 1, sizeof(**out));
  for (size_t i = 0; i < k; i++)
    if (info_load(data_dir, ids[i], &(*out)[m]) == WR_OK) m++;
  free(ids);
  qsort(*out, m, sizeof(**out), info_cmp);
  *n = m;
  return WR_OK;
}

static size_t table_names(const cert_table *t, char ***out);

int wr_certs_list_acme(const char *data_dir, wr_cert_info **out, size_t *n) {
  char dir[4200], cp[4500], err[256], **names, *pem = NULL;
  cert_table t = {.dir = dir, .by_host = 1};
  struct stat st;
  size_t m = 0;
  snprintf(dir, sizeof(dir), "%s/" WR_CERTS_ACME_DIR, data_dir);
  size_t k = table_names(&t, &names);
  *out = wr_xcalloc(k ? k : 1, sizeof(**out));
  for (size_t i = 0; i < k; i++) {
    snprintf(cp, sizeof(cp), "%s/%s.pem", dir, names[i]);
    if (wr_file_read(cp, MAX_PEM, &pem, NULL) == WR_OK &&
        info_from_pem(pem, &(*out)[m], err, sizeof(err)) == WR_OK) {
      (*out)[m].uploaded_at = stat(cp, &st) == 0 ? st.st_mtime : 0;
      m++;
    }
    free(pem);
    pem = NULL;
    free(names[i]);
  }
  free(names);
  qsort(*out, m, sizeof(**out), info_cmp);
  *n = m;
  return WR_OK;
}

int wr_certs_delete(const char *data_dir, const char *id) {
  char cp[4200], kp[4200];
  if (!is_id(id)) return WR_ERR_INVAL;
  path_of(cp, sizeof(cp), data_dir, id, "pem");
  path_of(kp, sizeof(kp), data_dir, id, "key");
  /* The certificate first: a key without its certificate is never served. */
  if (unlink(cp) != 0) return errno == ENOENT ? WR_ERR_NOTFOUND : WR_ERR_IO;
  if (unlink(kp) != 0 && errno != ENOENT) return WR_ERR_IO;
  return WR_OK;
}

/* ---- runtime: references ------------------------------------------------------- */

wr_tls_creds *wr_cert_creds(const wr_cert *r) { return r->creds; }
int wr_cert_uploaded(const wr_cert *r) { return r->uploaded; }
const char *wr_cert_source(const wr_cert *r) {
  return r->uploaded ? "uploaded" : r->acme ? "ACME" : "edge CA";
}

void wr_cert_release(wr_cert *r) {
  if (!r || --r->refs > 0) return;
  wr_tls_creds_free(r->creds);
  free(r);
}

wr_cert *wr__cert_ref(wr_cert *r) {
  r->refs++;
  return r;
}

/* ---- runtime: uploaded and ACME --------------------------------------------------- */

/* Loads |cp| and |kp| (the key is wiped from memory after use). |what|
 * names it in warnings. */
static wr_cert *load_pair(const char *cp, const char *kp, const char *what) {
  char err[256];
  char *cert = NULL, *key = NULL;
  wr_cert_info info;
  wr_cert *r = NULL;
  if (wr_file_read(cp, MAX_PEM, &cert, NULL) != WR_OK ||
      wr_file_read(kp, MAX_PEM, &key, NULL) != WR_OK) {
    wr_warn("%s: cannot read its files", what);
    goto out;
  }
  memset(&info, 0, sizeof(info));
  r = wr_xcalloc(1, sizeof(*r));
  if (info_from_pem(cert, &info, err, sizeof(err)) != WR_OK ||
      wr_tls_creds_server_mem(cert, key, &r->creds, err, sizeof(err)) != WR_OK) {
    wr_warn("%s skipped: %s", what, err);
    free(r);
    r = NULL;
    goto out;
  }
  r->refs = 1;
  r->uploaded = 1;
  r->not_after = info.not_after;
  r->n_names = info.n_names;
  memcpy(r->names, info.names, sizeof(r->names));
out:
  free(cert);
  if (key) {
    explicit_bzero(key, strlen(key));
    free(key);
  }
  return r;
}

static void table_drop(cert_table *t) {
  for (size_t i = 0; i < t->n; i++) wr_cert_release(t->ents[i]);
  free(t->ents);
  t->ents = NULL;
  t->n = 0;
}

/* The base names of |t|'s *.pem files (malloc'd, each malloc'd). */
static size_t table_names(const cert_table *t, char ***out) {
  size_t n = 0, cap = 0;
  *out = NULL;
  DIR *d = opendir(t->dir);
  if (!d) return 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l <= 4 || strcmp(de->d_name + l - 4, ".pem") != 0) continue;
    char *base = wr_xstrndup(de->d_name, l - 4);
    if (t->by_host ? !wr_tls_name_valid(base, 0) : !is_id(base)) {
      free(base);
      continue;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      *out = wr_xrealloc(*out, cap * sizeof(**out));
    }
    (*out)[n++] = base;
  }
  closedir(d);
  return n;
}

/* The entry loaded from file |base|, or NULL. */
static wr_cert *table_find_file(const cert_table *t, const char *base) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->ents[i]->file, base) == 0) return t->ents[i];
  return NULL;
}

/* Rereads every pair. A pair that does not load while it did before (its
 * two files are being replaced: the ACME renewal writes the key, then the
 * chain) keeps its old credentials, and the directory is read again on
 * the next check. Returns 1 when such a pair was kept. */
static int table_rescan(cert_table *t) {
  char **names;
  size_t k = table_names(t, &names);
  int kept = 0;
  wr_cert **ents = wr_xcalloc(k ? k : 1, sizeof(*ents));
  size_t n = 0;
  for (size_t i = 0; i < k; i++) {
    char cp[4200], kp[4200], what[300];
    snprintf(cp, sizeof(cp), "%s/%s.pem", t->dir, names[i]);
    snprintf(kp, sizeof(kp), "%s/%s.key", t->dir, names[i]);
    snprintf(what, sizeof(what), "%s certificate %s", t->by_host ? "ACME" : "uploaded", names[i]);
    wr_cert *r = load_pair(cp, kp, what), *old;
    if (r) {
      r->uploaded = !t->by_host;
      r->acme = t->by_host;
      snprintf(r->file, sizeof(r->file), "%s", names[i]);
      ents[n++] = r;
    } else if ((old = table_find_file(t, names[i])) && !old->carried) {
      old->carried = 1; /* once: a pair still broken a second later goes */
      ents[n++] = wr__cert_ref(old);
      kept = 1;
    }
    free(names[i]);
  }
  free(names);
  table_drop(t);
  t->ents = ents;
  t->n = n;
  return kept;
}

/* Rescans when the directory changed (checked at most once a second). */
static void table_maybe_rescan(cert_table *t) {
  time_t now = time(NULL);
  if (now - t->last_scan < RESCAN_S && t->last_scan) return;
  t->last_scan = now;
  struct stat st;
  struct timespec m = {0, 0};
  if (stat(t->dir, &st) == 0) m = st.st_mtim;
  if (m.tv_sec == t->mtime.tv_sec && m.tv_nsec == t->mtime.tv_nsec) return;
  t->mtime = m;
  if (table_rescan(t)) t->mtime.tv_sec = t->mtime.tv_nsec = 0; /* read again */
}

/* The best certificate of |t| for |host|: an exact name over a wildcard,
 * then the one that expires last. */
static wr_cert *table_pick(cert_table *t, const char *host) {
  table_maybe_rescan(t);
  wr_cert *best = NULL;
  int best_exact = 0;
  for (size_t i = 0; i < t->n; i++) {
    wr_cert *r = t->ents[i];
    for (size_t j = 0; j < r->n_names; j++) {
      if (!wr_tls_name_match(r->names[j], host)) continue;
      int exact = r->names[j][0] != '*';
      if (!best || exact > best_exact || (exact == best_exact && r->not_after > best->not_after)) {
        best = r;
        best_exact = exact;
      }
    }
  }
  return best ? wr__cert_ref(best) : NULL;
}

wr_cert *wr_certs_uploaded(wr_certs *c, const char *host) { return table_pick(&c->up, host); }

wr_cert *wr_certs_acme(wr_certs *c, const char *host) {
  wr_cert *r = table_pick(&c->acme, host);
  if (r && r->not_after && r->not_after <= time(NULL)) { /* expired: not worth showing */
    wr_cert_release(r);
    return NULL;
  }
  return r;
}

int wr_certs_open(const char *data_dir, wr_certs **out, char *err, size_t errlen) {
  wr_certs *c = wr_xcalloc(1, sizeof(*c));
  int rv = wr_pki_load_pair(data_dir, WR_PKI_CA_CERT, WR_PKI_CA_KEY, &c->ca, err, errlen);
  if (rv != WR_OK) {
    free(c);
    return rv;
  }
  c->dir = wr_xstrdup(data_dir);
  const char *delay = getenv("WARREN_TEST_SIGN_DELAY_MS");
  long ms = delay ? strtol(delay, NULL, 10) : 0;
  c->delay_ms = ms > 0 && ms < 600000 ? (unsigned)ms : 0;
  c->up.dir = wr_xasprintf("%s/" WR_CERTS_DIR, data_dir);
  c->acme.dir = wr_xasprintf("%s/" WR_CERTS_ACME_DIR, data_dir);
  c->acme.by_host = 1;
  table_maybe_rescan(&c->up);
  table_maybe_rescan(&c->acme);
  *out = c;
  return WR_OK;
}

void wr__certs_destroy(wr_certs *c) {
  wr_pem_pair_free(&c->ca);
  free(c);
}

void wr_certs_free(wr_certs *c) {
  if (!c) return;
  table_drop(&c->up);
  table_drop(&c->acme);
  wr__certs_issue_free(c);
  free(c->dir);
  free(c->up.dir);
  free(c->acme.dir);
  c->dir = c->up.dir = c->acme.dir = NULL;
  c->freeing = 1;
  if (!c->running) wr__certs_destroy(c); /* else when the last signing job is back */
}
