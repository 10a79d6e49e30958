/* The login pages' text codecs (login_int.h): the parsers of request input
 * (form and query fields, percent-encoding, the callback URL's key, the
 * cookie, the root-level poll path), which see attacker-controlled bytes
 * and are fuzzed (tests/fuzz/fuzz_login.c), and the encoders of what the
 * pages and logs say (URL components, log-safe copies, the key's short
 * name). No state, no I/O. */
#include <arpa/inet.h>
#include <string.h>

#include "edge/login.h"
#include "edge/login_int.h"
#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/log.h"

#define CLOUDFLARED_KEY_LEN 44 /* 32 bytes, URL-safe base64 with padding */

/* ---- parsers ---------------------------------------------------------------------- */

static int key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '=';
}

int wr_login_key_valid(const char *key, size_t len) {
  if (!key || len < WR_LOGIN_KEY_MIN || len > WR_LOGIN_KEY_MAX) return 0;
  for (size_t i = 0; i < len; i++)
    if (!key_char(key[i])) return 0;
  return 1;
}


/* Finds |name| in application/x-www-form-urlencoded |data| (also a query
 * string) and decodes the first value. Returns its length, -1 if absent, -2
 * if malformed or too long for |out|. */
int wr__login_form_get(const char *data, size_t len, const char *name, int flags, char *out,
                       size_t outsz) {
  size_t nlen = strlen(name), i = 0;
  if (!data) data = "", len = 0;
  while (i <= len) {
    size_t end = i;
    while (end < len && data[end] != '&') end++;
    const char *eq = memchr(data + i, '=', end - i);
    size_t klen = eq ? (size_t)(eq - (data + i)) : end - i;
    if (klen == nlen && memcmp(data + i, name, nlen) == 0) {
      const char *v = eq ? eq + 1 : data + end;
      int n = wr_pct_decode(v, (size_t)(data + end - v), WR_PCT_PLUS | flags, out, outsz);
      return n < 0 ? -2 : n;
    }
    i = end + 1;
  }
  return -1;
}

/* The key at the end of a callback URL: after the last '/', without any
 * query or fragment, percent-decoded (cloudflared's '=' arrives as-is, a
 * browser may send %3D). Returns WR_OK or WR_ERR_INVAL. */
int wr__login_callback_key(const char *cb, char key[WR_LOGIN_KEY_MAX + 1]) {
  size_t len = strcspn(cb, "?#");
  const char *slash = NULL;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)cb[i];
    if (c <= 0x20 || c >= 0x7f) return WR_ERR_INVAL;
    if (c == '/') slash = cb + i;
  }
  if (!slash) return WR_ERR_INVAL;
  int n = wr_pct_decode(slash + 1, (size_t)(cb + len - slash - 1), 0, key, WR_LOGIN_KEY_MAX + 1);
  if (n < 0 || !wr_login_key_valid(key, (size_t)n)) return WR_ERR_INVAL;
  return WR_OK;
}

/* The key of a root-level poll (/KEY), cloudflared's shape exactly. */
int wr__login_root_key(const char *path) {
  char key[WR_LOGIN_KEY_MAX + 1];
  if (path[0] != '/') return 0;
  int n = wr_pct_decode(path + 1, strlen(path + 1), 0, key, sizeof(key));
  if (n != CLOUDFLARED_KEY_LEN || key[CLOUDFLARED_KEY_LEN - 1] != '=') return 0;
  for (int i = 0; i < CLOUDFLARED_KEY_LEN - 1; i++)
    if (!key_char(key[i]) || key[i] == '=') return 0;
  return 1;
}

int wr__login_cookie_next(const char **pp, const char *end, char id[WR__LOGIN_SID_LEN + 1]) {
  static const char name[] = WR__LOGIN_COOKIE_NAME "=";
  const char *p = *pp;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ';')) p++;
    const char *e = p;
    while (e < end && *e != ';') e++;
    if ((size_t)(e - p) == sizeof(name) - 1 + WR__LOGIN_SID_LEN && memcmp(p, name, sizeof(name) - 1) == 0) {
      memcpy(id, p + sizeof(name) - 1, WR__LOGIN_SID_LEN);
      id[WR__LOGIN_SID_LEN] = '\0';
      *pp = e;
      return 1;
    }
    p = e;
  }
  *pp = p;
  return 0;
}

int wr__login_next_ok(const char *next) {
  size_t n = strlen(next);
  if (n == 0 || n > WR__LOGIN_NEXT_MAX || next[0] != '/' || next[1] == '/') return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)next[i] <= 0x20 || (unsigned char)next[i] >= 0x7f || next[i] == '\\') return 0;
  return 1;
}

/* ---- encoders ----------------------------------------------------------------------- */

/* A copy of |in| safe for one log line: bounded, control bytes as '?'. */
const char *wr__login_logsafe(const char *in, char *buf, size_t size) {
  return wr_log_safe(in, buf, size);
}

const char *wr__login_peer_ip(const wr_httpd_req *req, char *buf, size_t size) {
  const struct sockaddr_storage *ss = &req->peer;
  buf[0] = '\0';
  if (ss->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)size);
  else if (ss->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)size);
  return buf[0] ? buf : "?";
}

void wr__login_key_fingerprint(const char *key, char fp[WR__LOGIN_FP_LEN + 1]) {
  size_t n = strnlen(key, WR__LOGIN_FP_LEN);
  memcpy(fp, key, n);
  fp[n] = '\0';
}
