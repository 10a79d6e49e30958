/* Login pages and transfer endpoint (src/edge/login.c), served by a real
 * wr_httpd on 127.0.0.1:0 in the test's uv loop and driven by a client on a
 * helper thread with blocking sockets, as in test_httpd.c. The client keeps
 * its own connection to the store (SQLite WAL) to check tokens; the login
 * object uses the fixture's connection on the loop thread.
 *
 * The clock the login object sees is the monotonic clock plus an offset the
 * client can advance, so expiry and lockouts are tested without waiting.
 * The client can send from any loopback address (127.0.0.2, ...), which the
 * throttles see as distinct sources. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "edge/login.h"
#include "edge/login_int.h"
#include "edge/password.h"
#include "edge/pki.h"
#include "edge/store.h"
#include "lib/credentials.h"
#include "lib/err.h"
#include "net/httpd.h"
#include "unit.h"

#define PASSWORD "correct horse battery"
#define KEY "uIizRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1s="
#define KEY2 "bbbbRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1s="
#define CF_CALLBACK "https%3A%2F%2Flogin.cloudflareaccess.org%2F"
#define TTL_MS 600000

typedef struct fx {
  char dir[64];
  char db[128];
  wr_store *s;
  wr_account acct, acct2;
  wr_zone zone, zone2, foreign;
  wr_user alice, ci, admin, slow;

  uv_loop_t loop;
  wr_httpd *h;
  wr_login *login;
  wr_login_config cfg;
  int on_store_thread;        /* run the pages' store calls on a store thread */
  wr_store_async *async;
  int port;
  uv_async_t done;
  _Atomic uint64_t offset_ms; /* added to the clock by the client */
  const char *from;           /* client's source address; NULL: 127.0.0.1 */
  int frozen;                 /* the clock stands still but for offset_ms */
  void (*client)(struct fx *);
  char fail[1024];
} fx;

/* ---- fixture (main thread) ------------------------------------------------------ */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t test_clock(void *user) {
  fx *f = user;
  /* Frozen: only the client's offset moves it, so a delay of 1 s is 1 s
   * however slow the machine. */
  if (f->frozen) return 1000000000 + atomic_load(&f->offset_ms);
  return mono_ms() + atomic_load(&f->offset_ms);
}

/* Hashes are made once per iteration count (PASSWORD only): the slow one
 * takes about a second. */
static const char *cached_hash(unsigned iter) {
  static char fast[WR_PASSWORD_ENCODED_MAX], slow[WR_PASSWORD_ENCODED_MAX];
  char *h = iter == WR_PASSWORD_MIN_ITERATIONS ? fast : slow;
  if (!h[0]) assert_int_equal(wr_password_hash(PASSWORD, strlen(PASSWORD), iter, h), WR_OK);
  return h;
}

static void add_user(fx *f, const wr_account *a, const char *email, unsigned iter, int service,
                     wr_user *out) {
  const char *hash = iter ? cached_hash(iter) : NULL;
  assert_int_equal(wr_store_user_create(f->s, "test", a->id, email, hash, service, out), WR_OK);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  char err[256];
  if (unit_store_new("wr-login", f->dir, sizeof(f->dir), f->db, sizeof(f->db), &f->s) != 0) return -1;
  if (wr_store_account_create(f->s, "test", "example.test", &f->acct) != WR_OK ||
      wr_store_zone_create(f->s, "test", f->acct.id, "example.test", &f->zone) != WR_OK ||
      wr_store_zone_create(f->s, "test", f->acct.id, "other.test", &f->zone2) != WR_OK ||
      wr_store_account_create(f->s, "test", "foreign", &f->acct2) != WR_OK ||
      wr_store_zone_create(f->s, "test", f->acct2.id, "foreign.test", &f->foreign) != WR_OK)
    return -1;
  add_user(f, &f->acct, "alice@example.test", WR_PASSWORD_MIN_ITERATIONS, 0, &f->alice);
  add_user(f, &f->acct, "ci@example.test", WR_PASSWORD_MIN_ITERATIONS, 1, &f->ci);
  add_user(f, &f->acct, "admin@example.test", 0, 0, &f->admin);
  /* Slow enough (~1 s) that a second request reliably arrives meanwhile. */
  add_user(f, &f->acct, "slow@example.test", 3000000, 0, &f->slow);
  if (wr_pki_init_dir(f->dir, "example.test", err, sizeof(err)) != WR_OK) {
    fprintf(stderr, "pki: %s\n", err);
    return -1;
  }
  f->cfg.poll_hold_ms = 300;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  return unit_store_drop(f->s, f->dir, f);
}

static void handler(wr_httpd *h, wr_httpd_req *req, void *user) {
  fx *f = user;
  (void)h;
  if (strcmp(req->path, "/test/stats") == 0 && f->login) {
    /* The counters, read on the loop thread that owns them. */
    wr_login_stats st;
    char body[256];
    wr_login_get_stats(f->login, &st);
    int n = snprintf(body, sizeof(body), "checks=%llu waited=%llu throttled=%llu refused=%llu locks=%llu\n",
                     (unsigned long long)st.checks, (unsigned long long)st.waited,
                     (unsigned long long)st.throttled, (unsigned long long)st.refused,
                     (unsigned long long)st.locks);
    wr_httpd_respond_simple(req, 200, "text/plain", body, (size_t)n);
    return;
  }
  if (strcmp(req->path, "/test/free-login") == 0) {
    wr_login_free(f->login);
    f->login = NULL;
    wr_httpd_respond_simple(req, 200, "text/plain", "freed\n", 6);
    return;
  }
  if (f->login && wr_login_handle(f->login, req)) return;
  wr_httpd_respond_simple(req, 404, "text/plain", "not a login path\n", 17);
}

static void on_done(uv_async_t *a) {
  fx *f = a->data;
  wr_login_free(f->login);
  f->login = NULL;
  wr_httpd_free(f->h);
  wr_store_async_free(f->async); /* after the login pages: it answers their jobs still out */
  f->async = NULL;
  uv_close((uv_handle_t *)&f->done, NULL);
}

static void *client_main(void *arg) {
  fx *f = arg;
  f->client(f);
  uv_async_send(&f->done);
  return NULL;
}

static void run(fx *f, void (*client)(fx *)) {
  char url[64];
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->port = unit_httpd_listen(&f->loop, NULL, handler, f, &f->h);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->port);
  f->cfg.loop = &f->loop;
  f->cfg.store = f->s;
  f->cfg.data_dir = f->dir;
  f->cfg.public_url = url;
  f->cfg.now_ms = test_clock;
  f->cfg.now_user = f;
  if (f->on_store_thread) {
    char err[256];
    assert_int_equal(wr_store_async_new(&f->loop, f->db, &f->async, err, sizeof(err)), WR_OK);
  }
  f->cfg.async = f->async;
  assert_int_equal(wr_login_new(&f->cfg, &f->login), WR_OK);
  assert_int_equal(uv_async_init(&f->loop, &f->done, on_done), 0);
  f->done.data = f;
  f->client = client;
  unit_loop_with_client(&f->loop, client_main, f, f->fail);
}

/* ---- client side (helper thread) ----------------------------------------------- */

#define CHK(f, cond) UNIT_CHK((f)->fail, cond)
/* The same with the response's status and the start of its body. */
#define CHKR(f, r, cond)                                                                               \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      if (!(f)->fail[0])                                                                               \
        snprintf((f)->fail, sizeof((f)->fail), "%s:%d: %s (status %d, body %.600s)", __FILE__,         \
                 __LINE__, #cond, (r)->status, (r)->body ? (r)->body : "");                            \
      return;                                                                                          \
    }                                                                                                  \
  } while (0)

#define RBUF (1u << 20)

typedef struct resp {
  int status;
  char head[16384];
  char *body;
  size_t body_len;
} resp;

static void resp_free(resp *r) {
  free(r->body);
  memset(r, 0, sizeof(*r));
}

static int cl_connect(fx *f) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  struct timeval tv = {.tv_sec = 10};
  int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (f->from) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, f->from, &src.sin_addr) != 1 || bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends one request (Connection: close). Returns the fd or -1. */
static int send_req(fx *f, const char *method, const char *target, const char *cookie, const char *body) {
  char head[8192];
  int fd = cl_connect(f), n;
  size_t blen = body ? strlen(body) : 0;
  if (fd < 0) return -1;
  n = snprintf(head, sizeof(head),
               "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s%s%s"
               "Content-Length: %zu\r\n\r\n",
               method, target, f->port, cookie ? "Cookie: other=1; warren_login=" : "",
               cookie ? cookie : "", cookie ? "\r\n" : "",
               body ? "Content-Type: application/x-www-form-urlencoded\r\n" : "", blen);
  if (send(fd, head, (size_t)n, MSG_NOSIGNAL) != n ||
      (blen && send(fd, body, blen, MSG_NOSIGNAL) != (ssize_t)blen)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads the response on |fd| and closes it. 0 or -1. */
static int read_resp(int fd, const char *method, resp *r) {
  char *buf = malloc(RBUF);
  size_t len = 0, used = 0;
  wr_http_header hdrs[64];
  wr_http1_head h;
  int rv;
  memset(r, 0, sizeof(*r));
  for (;;) {
    rv = wr_http1_parse_response((uint8_t *)buf, len, method, NULL, hdrs, 64, &h, &used);
    if (rv != WR_AGAIN) break;
    ssize_t k = recv(fd, buf + len, RBUF - len, 0);
    if (k <= 0) {
      rv = -1;
      break;
    }
    len += (size_t)k;
  }
  if (rv != WR_OK || used >= sizeof(r->head)) goto fail;
  r->status = h.status;
  memcpy(r->head, buf, used);
  size_t blen = h.body == WR_HTTP1_BODY_LENGTH ? (size_t)h.content_length : 0;
  while (len < used + blen) {
    ssize_t k = recv(fd, buf + len, RBUF - len, 0);
    if (k <= 0) goto fail;
    len += (size_t)k;
  }
  r->body = malloc(blen + 1);
  memcpy(r->body, buf + used, blen);
  r->body[blen] = '\0';
  r->body_len = blen;
  free(buf);
  close(fd);
  return 0;
fail:
  free(buf);
  close(fd);
  return -1;
}

static int http(fx *f, const char *method, const char *target, const char *cookie, const char *body,
                resp *r) {
  int fd = send_req(f, method, target, cookie, body);
  memset(r, 0, sizeof(*r));
  if (fd < 0) return -1;
  return read_resp(fd, method, r);
}

/* The value of field |name| (first one), or "" . */
static const char *hdr(const resp *r, const char *name, char *out, size_t size) {
  char pat[64];
  snprintf(pat, sizeof(pat), "\r\n%s: ", name);
  const char *p = strcasestr(r->head, pat);
  out[0] = '\0';
  if (!p) return out;
  p += strlen(pat);
  size_t n = strcspn(p, "\r");
  if (n >= size) n = size - 1;
  memcpy(out, p, n);
  out[n] = '\0';
  return out;
}

/* The session id a response set, or "" . */
static void new_cookie(const resp *r, char out[64]) {
  char v[512];
  hdr(r, "Set-Cookie", v, sizeof(v));
  out[0] = '\0';
  if (strncmp(v, "warren_login=", 13) == 0) {
    size_t n = strcspn(v + 13, ";");
    if (n < 64) {
      memcpy(out, v + 13, n);
      out[n] = '\0';
    }
  }
}

/* The value of attribute value="..." after |marker| in the body. */
static int attr_after(const resp *r, const char *marker, char *out, size_t size) {
  const char *p = r->body ? strstr(r->body, marker) : NULL;
  if (!p) return -1;
  p = strstr(p, "value=\"");
  if (!p) return -1;
  p += 7;
  size_t n = strcspn(p, "\"");
  if (n >= size) return -1;
  memcpy(out, p, n);
  out[n] = '\0';
  return 0;
}

static int body_has(const resp *r, const char *s) { return r->body && strstr(r->body, s) != NULL; }

/* Frees |r| and returns |ok|; when it is 0, first records in f->fail (unless
 * it already holds a failure) |what| and the answer's status and start of
 * body, as CHKR does. */
static int answer_ok(fx *f, int ok, resp *r, const char *what) {
  if (!ok && !f->fail[0])
    snprintf(f->fail, sizeof(f->fail), "%.300s (status %d, body %.600s)", what, r->status,
             r->body ? r->body : "");
  resp_free(r);
  return ok;
}

/* http(), whose answer must have |status| and, unless |says| is NULL, a body
 * holding |says|; the answer is freed. Returns 1 if so, else 0 with the
 * failure recorded (answer_ok). For CHK. */
static int answers(fx *f, const char *method, const char *target, const char *cookie,
                   const char *body, int status, const char *says) {
  resp r;
  char what[512];
  int ok = http(f, method, target, cookie, body, &r) == 0 && r.status == status &&
           (!says || body_has(&r, says));
  snprintf(what, sizeof(what), "%s %.200s: want %d %.200s", method, target, status, says ? says : "");
  return answer_ok(f, ok, &r, what);
}

static void sleep_ms(int ms) { poll(NULL, 0, ms); }

/* 1 if nothing has arrived on |fd| within |ms|. */
static int quiet(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) == 0;
}

/* Undoes the page's escaping of an attribute value, in place. */
static void html_unescape(char *s) {
  static const struct { const char *ent; char c; } ents[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}};
  char *o = s;
  while (*s) {
    size_t i, n = sizeof(ents) / sizeof(ents[0]);
    for (i = 0; i < n; i++)
      if (strncmp(s, ents[i].ent, strlen(ents[i].ent)) == 0) break;
    if (i < n) {
      *o++ = ents[i].c;
      s += strlen(ents[i].ent);
    } else {
      *o++ = *s++;
    }
  }
  *o = '\0';
}

/* A browser session from GET |target| to the zone picker: cookie and csrf. */
typedef struct browser {
  char cookie[64];
  char csrf[64];
  char zone_id[40];
} browser;

/* Opens |target|, signs in as |email|; expects |want| (303 on success).
 * Returns 0 when the outcome matched. *r is left for inspection. */
static int sign_in(fx *f, browser *b, const char *target, const char *email, const char *pw,
                   resp *r) {
  char body[8192], c[64];
  if (http(f, "GET", target, b->cookie[0] ? b->cookie : NULL, NULL, r) != 0 || r->status != 200) return -1;
  new_cookie(r, c);
  if (c[0]) snprintf(b->cookie, sizeof(b->cookie), "%s", c);
  if (attr_after(r, "name=\"csrf\"", b->csrf, sizeof(b->csrf)) != 0) return -2;
  char cb[1200] = "";
  attr_after(r, "name=\"callback\"", cb, sizeof(cb));
  html_unescape(cb);
  /* The hidden callback goes back as the browser would send it. */
  char enc[3600], *o = enc;
  for (const char *p = cb; *p; p++) o += sprintf(o, "%%%02X", (unsigned char)*p);
  *o = '\0';
  snprintf(body, sizeof(body), "csrf=%s&callback=%s&email=%s&password=%s", b->csrf, enc, email, pw);
  resp_free(r);
  if (http(f, "POST", WR_LOGIN_PATH "/signin", b->cookie, body, r) != 0) return -3;
  new_cookie(r, c);
  if (c[0]) snprintf(b->cookie, sizeof(b->cookie), "%s", c);
  return 0;
}

/* sign_in, then the answer's status (-1: the sign-in did not get that
 * far); the response is freed. */
static int sign_in_status(fx *f, browser *b, const char *target, const char *email,
                          const char *pw) {
  resp r = {0};
  int status = sign_in(f, b, target, email, pw, &r) == 0 ? r.status : -1;
  resp_free(&r);
  return status;
}

/* Signs in from |target| as alice@example.test; the answer's Location goes
 * into |loc| (|size| bytes) when it is a 303. Returns its status (-1: the
 * sign-in did not get that far); the response is freed. */
static int alice_signs_in(fx *f, browser *b, const char *target, char *loc, size_t size) {
  resp r = {0};
  int status = sign_in(f, b, target, "alice%40example.test", PASSWORD, &r) == 0 ? r.status : -1;
  if (status == 303) hdr(&r, "Location", loc, size);
  resp_free(&r);
  return status;
}

/* A fresh session's form: cookie and csrf. 0 or -1. */
static int new_form(fx *f, browser *b) {
  resp r = {0};
  int rv = http(f, "GET", WR_LOGIN_PATH, NULL, NULL, &r);
  if (rv == 0) {
    new_cookie(&r, b->cookie);
    rv = b->cookie[0] && attr_after(&r, "name=\"csrf\"", b->csrf, sizeof(b->csrf)) == 0 ? 0 : -1;
  }
  resp_free(&r);
  return rv;
}

/* The status of a plain GET of |path| (-1: no answer); the response is
 * freed. */
static int get_status(fx *f, const char *path) {
  resp r = {0};
  int status = http(f, "GET", path, NULL, NULL, &r) == 0 ? r.status : -1;
  resp_free(&r);
  return status;
}

/* Follows a successful sign-in to the zone picker and authorizes |zone|. */
static int authorize(fx *f, browser *b, const char *location, const char *zone_name, const char *cb_enc,
                     resp *r) {
  char body[2048], marker[128];
  if (http(f, "GET", location, b->cookie, NULL, r) != 0 || r->status != 200) return -1;
  if (attr_after(r, "name=\"csrf\"", b->csrf, sizeof(b->csrf)) != 0) return -2;
  snprintf(marker, sizeof(marker), "id=\"zone-%s\"", zone_name);
  if (attr_after(r, marker, b->zone_id, sizeof(b->zone_id)) != 0) return -3;
  snprintf(body, sizeof(body), "csrf=%s&callback=%s&zone=%s", b->csrf, cb_enc ? cb_enc : "", b->zone_id);
  resp_free(r);
  return http(f, "POST", WR_LOGIN_PATH "/authorize", b->cookie, body, r) != 0 ? -4 : 0;
}

/* authorize(), whose answer must be 303 (the zone granted); the answer is
 * freed. Returns 1 if so, else 0 with the failure recorded (answer_ok). For
 * CHK. */
static int authorized(fx *f, browser *b, const char *location, const char *zone_name,
                      const char *cb_enc) {
  resp r;
  int ok = authorize(f, b, location, zone_name, cb_enc, &r) == 0 && r.status == 303;
  return answer_ok(f, ok, &r, zone_name);
}

/* Checks a cert.pem body: parses, has the origin certificate and key, and its
 * token is live for |zone| in a store connection of the client's own. */
static int check_pem(fx *f, const char *pem, const wr_zone *zone, wr_origin_cert *oc) {
  char err[256];
  wr_store *s = NULL;
  wr_api_token k;
  int rv = -1;
  if (wr_origin_cert_parse(pem, strlen(pem), oc, err, sizeof(err)) != WR_OK) return -1;
  if (strcmp(oc->zone_id, zone->id) != 0 || strcmp(oc->account_id, zone->account_id) != 0) return -2;
  if (!strstr(pem, "-----BEGIN CERTIFICATE-----") || !strstr(pem, "-----BEGIN PRIVATE KEY-----")) return -3;
  if (wr_store_open(f->db, 0, &s, err, sizeof(err)) != WR_OK) return -4;
  if (wr_store_token_verify(s, oc->api_token, &k) == WR_OK && strcmp(k.zone_id, zone->id) == 0 &&
      strcmp(k.user_id, f->alice.id) == 0)
    rv = 0;
  wr_store_close(s);
  return rv;
}

/* ---- the tests ------------------------------------------------------------------ */

static void client_full_flow(fx *f) {
  browser b = {0};
  resp r = {0}, poll_r = {0}, dl = {0};
  char loc[2048], old_cookie[64];
  wr_origin_cert oc;
  const char *target = WR_LOGIN_PATH "?aud=&callback=" CF_CALLBACK KEY;

  /* The CLI polls first and waits. */
  int pfd = send_req(f, "GET", WR_LOGIN_TRANSFER_PREFIX KEY, NULL, NULL);
  CHK(f, pfd >= 0);

  /* The page names the request by the start of its key. */
  CHK(f, http(f, "GET", target, NULL, NULL, &r) == 0);
  CHKR(f, &r, r.status == 200 && body_has(&r, "id=\"signin\"") && body_has(&r, ">uIizRArA<"));
  CHKR(f, &r, strstr(r.head, "HttpOnly") && strstr(r.head, "SameSite=Lax") && strstr(r.head, "Path=/;"));
  CHKR(f, &r, strstr(r.head, "Content-Security-Policy: default-src 'none'") && strstr(r.head, "X-Frame-Options: DENY"));
  resp_free(&r);

  /* Wrong password: the form again, with the email kept and an error. */
  CHK(f, sign_in(f, &b, target, "alice%40example.test", "wrong+password", &r) == 0);
  CHKR(f, &r, r.status == 403 && body_has(&r, "Wrong email or password.") &&
                  body_has(&r, "value=\"alice@example.test\""));
  resp_free(&r);

  /* Right password: 303 back to the page, with a new session id. */
  snprintf(old_cookie, sizeof(old_cookie), "%s", b.cookie);
  CHK(f, sign_in(f, &b, target, "Alice%40Example.test", "correct+horse+battery", &r) == 0);
  CHKR(f, &r, r.status == 303);
  CHK(f, strcmp(old_cookie, b.cookie) != 0);
  hdr(&r, "Location", loc, sizeof(loc));
  CHK(f, strcmp(loc, WR_LOGIN_PATH "?aud=&callback=https%3A%2F%2Flogin.cloudflareaccess.org%2F"
                    "uIizRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1s%3D") == 0);
  resp_free(&r);

  /* The id from before the sign-in is worth nothing now. */
  CHK(f, http(f, "GET", target, old_cookie, NULL, &r) == 0);
  CHKR(f, &r, r.status == 200 && body_has(&r, "id=\"signin\"") && !body_has(&r, "id=\"authorize\""));
  resp_free(&r);

  /* Zones of her account only; pick example.test. */
  CHK(f, http(f, "GET", loc, b.cookie, NULL, &r) == 0);
  CHKR(f, &r, body_has(&r, "id=\"zone-example.test\"") && body_has(&r, "id=\"zone-other.test\"") &&
                  !body_has(&r, "foreign.test") && body_has(&r, "alice@example.test"));
  resp_free(&r);
  CHK(f, authorize(f, &b, loc, "example.test", CF_CALLBACK KEY, &r) == 0);
  CHKR(f, &r, r.status == 303);
  CHK(f, strcmp(hdr(&r, "Location", loc, sizeof(loc)), WR_LOGIN_PATH "/done") == 0);
  resp_free(&r);

  /* The waiting poll gets cert.pem. On a loaded machine the flow above can
   * outlast the fixture's 300 ms hold: then, as cloudflared does, poll
   * again (the certificate waits for the next poll). */
  CHK(f, read_resp(pfd, "GET", &poll_r) == 0);
  for (int tries = 0; poll_r.status == 404 && body_has(&poll_r, "waiting") && tries < 20; tries++) {
    resp_free(&poll_r);
    CHK(f, http(f, "GET", WR_LOGIN_TRANSFER_PREFIX KEY, NULL, NULL, &poll_r) == 0);
  }
  CHKR(f, &poll_r, poll_r.status == 200 && strstr(poll_r.head, "application/x-pem-file"));
  CHK(f, check_pem(f, poll_r.body, &f->zone, &oc) == 0);

  /* Exactly once: the next poll waits and ends with 404. */
  uint64_t t0 = mono_ms();
  CHK(f, http(f, "GET", WR_LOGIN_TRANSFER_PREFIX KEY, NULL, NULL, &r) == 0);
  CHKR(f, &r, r.status == 404 && mono_ms() - t0 >= 250);
  resp_free(&r);

  /* Success page, and the same cert.pem as a download. */
  CHK(f, http(f, "GET", WR_LOGIN_PATH "/done", b.cookie, NULL, &r) == 0);
  CHKR(f, &r, r.status == 200 && body_has(&r, "id=\"success\"") && body_has(&r, "id=\"cli\"") &&
                  body_has(&r, "href=\"/argotunnel/cert.pem\"") && body_has(&r, "/client/v4"));
  resp_free(&r);
  CHK(f, http(f, "GET", WR_LOGIN_PATH "/cert.pem", b.cookie, NULL, &dl) == 0);
  CHKR(f, &dl, dl.status == 200 && strstr(dl.head, "attachment; filename=\"cert.pem\"") &&
                   strstr(dl.head, "Cache-Control: no-store"));
  CHK(f, strcmp(dl.body, poll_r.body) == 0);
  /* Not for anyone else. */
  CHK(f, http(f, "GET", WR_LOGIN_PATH "/cert.pem", NULL, NULL, &r) == 0);
  CHKR(f, &r, r.status == 404 && !body_has(&r, "BEGIN"));
  resp_free(&r);

  /* The same request cannot be authorized twice. */
  CHK(f, authorize(f, &b, WR_LOGIN_PATH "?aud=&callback=" CF_CALLBACK KEY, "other.test", CF_CALLBACK KEY, &r) == 0);
  CHKR(f, &r, r.status == 409);
  resp_free(&r);

  /* Rolling her token makes the cert.pem useless. */
  {
    char err[256], tok[WR_STORE_TOKEN_LEN + 1];
    wr_store *s = NULL;
    size_t n = 0;
    CHK(f, wr_store_open(f->db, 0, &s, err, sizeof(err)) == WR_OK);
    int ok = wr_store_token_verify(s, oc.api_token, NULL) == WR_OK &&
             wr_store_token_roll(s, "test", f->alice.id, NULL, tok, NULL, &n) == WR_OK && n == 1 &&
             wr_store_token_verify(s, oc.api_token, NULL) == WR_ERR_DENIED &&
             wr_store_token_verify(s, tok, NULL) == WR_OK;
    /* The login is in the audit log. */
    wr_audit *rows = NULL;
    size_t nr = 0;
    int audited = 0;
    if (wr_store_audit_list(s, f->acct.id, 10, &rows, &nr) == WR_OK)
      for (size_t i = 0; i < nr; i++)
        audited |= strcmp(rows[i].action, "user.login") == 0 && strcmp(rows[i].actor, "login:alice@example.test") == 0 &&
                   strstr(rows[i].detail, "\"via\":\"cli\"") != NULL;
    wr_store_audit_free(rows, nr);
    wr_store_close(s);
    CHK(f, ok);
    CHK(f, audited);
  }
  resp_free(&poll_r);
  resp_free(&dl);
}

static void test_full_flow(void **state) { run(*state, client_full_flow); }

/* The same with a store thread: the reads, the API token and the audit row
 * are written there, and the cert.pem is handed out once its token exists. */
static void test_full_flow_on_a_store_thread(void **state) {
  fx *f = *state;
  f->on_store_thread = 1;
  run(f, client_full_flow);
}

/* A cert.pem made before the CLI polls waits for it; the root-level path
 * cloudflared would use (login.cloudflareaccess.org pointed here) works. */
static void client_late_poll_and_root_path(fx *f) {
  browser b = {0};
  resp r = {0};
  wr_origin_cert oc;
  char loc[2048];
  const char *target = WR_LOGIN_PATH "?aud=&callback=" CF_CALLBACK KEY2;
  CHK(f, alice_signs_in(f, &b, target, loc, sizeof(loc)) == 303);
  CHK(f, authorized(f, &b, loc, "other.test", CF_CALLBACK KEY2));
  CHK(f, http(f, "GET", "/" KEY2, NULL, NULL, &r) == 0);
  CHKR(f, &r, r.status == 200);
  CHK(f, check_pem(f, r.body, &f->zone2, &oc) == 0);
  resp_free(&r);
  CHK(f, get_status(f, WR_LOGIN_TRANSFER_PREFIX KEY2) == 404);
  /* '=' percent-encoded is the same key. */
  CHK(f, get_status(f, WR_LOGIN_TRANSFER_PREFIX "bbbbRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1s%3D") == 404);
}

static void test_late_poll_and_root_path(void **state) { run(*state, client_late_poll_and_root_path); }

/* Without a callback: sign in, pick, download (the real cloudflared's way). */
static void client_download_only(fx *f) {
  browser b = {0};
  resp r = {0};
  wr_origin_cert oc;
  char loc[2048];
  CHK(f, alice_signs_in(f, &b, WR_LOGIN_PATH, loc, sizeof(loc)) == 303);
  CHK(f, strcmp(loc, WR_LOGIN_PATH) == 0);
  CHK(f, authorized(f, &b, loc, "example.test", NULL));
  CHK(f, http(f, "GET", WR_LOGIN_PATH "/done", b.cookie, NULL, &r) == 0);
  CHKR(f, &r, r.status == 200 && body_has(&r, "id=\"success\"") && !body_has(&r, "id=\"cli\""));
  resp_free(&r);
  CHK(f, http(f, "GET", WR_LOGIN_PATH "/cert.pem", b.cookie, NULL, &r) == 0);
  CHKR(f, &r, r.status == 200);
  CHK(f, check_pem(f, r.body, &f->zone, &oc) == 0);
  resp_free(&r);
  /* Sign out: the session and its cert.pem are gone. */
  char body[128];
  CHK(f, http(f, "GET", WR_LOGIN_PATH "/done", b.cookie, NULL, &r) == 0);
  CHK(f, attr_after(&r, "name=\"csrf\"", b.csrf, sizeof(b.csrf)) == 0);
  resp_free(&r);
  snprintf(body, sizeof(body), "csrf=%s", b.csrf);
  CHK(f, http(f, "POST", WR_LOGIN_PATH "/signout", b.cookie, body, &r) == 0);
  CHKR(f, &r, r.status == 303 && strstr(r.head, "Max-Age=0"));
  resp_free(&r);
  CHK(f, answers(f, "GET", WR_LOGIN_PATH "/cert.pem", b.cookie, NULL, 404, NULL));
}

static void test_download_only(void **state) { run(*state, client_download_only); }

/* Service users, users without a password and unknown emails are refused;
 * only the service user's refusal (after a right password) says why. */
static void client_refusals(fx *f) {
  browser b = {0};
  resp r = {0};
  static const struct {
    const char *email, *pw, *says, *not_says; /* not_says NULL: not checked */
  } refused[] = {
      {"ci%40example.test", PASSWORD, "service account", NULL},
      {"ci%40example.test", "nope", "Wrong email or password.", "service"},
      {"admin%40example.test", PASSWORD, "Wrong email or password.", NULL},
      {"nobody%40example.test", PASSWORD, "Wrong email or password.", NULL},
      {"", PASSWORD, "Enter your email", NULL},
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    CHK(f, sign_in(f, &b, WR_LOGIN_PATH, refused[i].email, refused[i].pw, &r) == 0);
    CHKR(f, &r, r.status == 403 && body_has(&r, refused[i].says) &&
                    !(refused[i].not_says && body_has(&r, refused[i].not_says)));
    resp_free(&r);
  }

  /* A zone of another account, or none, is not accepted. */
  char loc[2048], body[512];
  CHK(f, alice_signs_in(f, &b, WR_LOGIN_PATH, loc, sizeof(loc)) == 303);
  CHK(f, http(f, "GET", loc, b.cookie, NULL, &r) == 0);
  CHK(f, attr_after(&r, "name=\"csrf\"", b.csrf, sizeof(b.csrf)) == 0);
  resp_free(&r);
  snprintf(body, sizeof(body), "csrf=%s&zone=%s", b.csrf, f->foreign.id);
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/authorize", b.cookie, body, 400,
                 "Choose one of the zones"));
  snprintf(body, sizeof(body), "csrf=%s", b.csrf);
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/authorize", b.cookie, body, 400, NULL));
}

static void test_refusals(void **state) { run(*state, client_refusals); }

/* Forms need the session's cookie and CSRF token; methods, paths, keys and
 * callbacks are checked. */
static void client_csrf_and_bad_requests(fx *f) {
  resp r = {0};
  browser b = {0};
  char body[512];
  CHK(f, new_form(f, &b) == 0);

  /* No cookie: a fresh form, nothing checked. */
  snprintf(body, sizeof(body), "csrf=%s&email=alice%%40example.test&password=%s", b.csrf, "correct+horse+battery");
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/signin", NULL, body, 403, "session expired"));
  /* Wrong or missing token. */
  snprintf(body, sizeof(body), "csrf=%.42sX&email=alice%%40example.test&password=x", b.csrf);
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/signin", b.cookie, body, 403, "out of date"));
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/signin", b.cookie, "email=a%40b.c&password=x", 403,
                 "out of date"));
  /* Not signed in. */
  snprintf(body, sizeof(body), "csrf=%s&zone=%s", b.csrf, f->zone.id);
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/authorize", b.cookie, body, 403, "sign in first"));

  static const struct {
    const char *method, *target;
    int status;
    const char *needle;
  } cases[] = {
      {"GET", WR_LOGIN_PATH "/signin", 405, "method"},
      {"PUT", WR_LOGIN_PATH, 405, "method"},
      {"HEAD", WR_LOGIN_TRANSFER_PREFIX KEY, 405, ""},
      {"POST", WR_LOGIN_TRANSFER_PREFIX KEY, 405, "method"},
      {"GET", WR_LOGIN_PATH "/nothing-here", 404, "no such page"},
      {"GET", WR_LOGIN_TRANSFER_PREFIX "short", 400, "invalid login key"},
      {"GET", WR_LOGIN_TRANSFER_PREFIX "has%2Fslash0123456789abcdef", 400, "invalid login key"},
      {"GET", WR_LOGIN_PATH "?aud=&callback=nokey", 400, "malformed"},
      {"GET", WR_LOGIN_PATH "?aud=&callback=https%3A%2F%2Fx%2Fbad%20key%20with%20spaces", 400, "malformed"},
      {"GET", WR_LOGIN_PATH "?aud=&callback=https%3A%2F%2Fx%2F%ZZ", 400, "malformed"},
      {"GET", WR_LOGIN_PATH "?aud=someapp&callback=" CF_CALLBACK KEY, 400, "Access"},
      {"GET", WR_LOGIN_PATH "/done", 404, "sign in first"},
      /* Not ours: the handler declines and the test server answers. */
      {"GET", "/client/v4/accounts", 404, "not a login path"},
      {"GET", "/argotunnelx", 404, "not a login path"},
      {"GET", "/" "uIizRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1sx", 404, "not a login path"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    CHK(f, http(f, cases[i].method, cases[i].target, NULL, NULL, &r) == 0);
    if (r.status != cases[i].status || !body_has(&r, cases[i].needle)) {
      snprintf(f->fail, sizeof(f->fail), "%s %s: status %d, body %.300s", cases[i].method,
               cases[i].target, r.status, r.body ? r.body : "");
      resp_free(&r);
      return;
    }
    resp_free(&r);
  }
}

static void test_csrf_and_bad_requests(void **state) { run(*state, client_csrf_and_bad_requests); }

/* Whatever a request carries comes back escaped. */
static void client_escaping(fx *f) {
  browser b = {0};
  resp r = {0};
  /* A callback with markup before the key, and an email with markup. */
  const char *target = WR_LOGIN_PATH "?aud=&callback=https%3A%2F%2Fx%2F%22%3E%3Cb%3Eboom%2F" KEY;
  CHK(f, sign_in(f, &b, target, "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E%40x.test", "pw", &r) == 0);
  CHKR(f, &r, r.status == 403);
  CHKR(f, &r, !body_has(&r, "<script>") && body_has(&r, "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@x.test"));
  CHKR(f, &r, !body_has(&r, "<b>boom") && body_has(&r, "&quot;&gt;&lt;b&gt;boom"));
  resp_free(&r);
}

static void test_escaping(void **state) { run(*state, client_escaping); }

/* Sessions and undelivered certificates expire. */
static void client_expiry(fx *f) {
  browser b = {0};
  char loc[2048];
  const char *target = WR_LOGIN_PATH "?aud=&callback=" CF_CALLBACK KEY;
  CHK(f, alice_signs_in(f, &b, target, loc, sizeof(loc)) == 303);
  CHK(f, authorized(f, &b, loc, "example.test", CF_CALLBACK KEY));
  atomic_fetch_add(&f->offset_ms, (uint64_t)TTL_MS + 1000);
  /* The certificate is gone for the poll, the session for the browser. */
  CHK(f, get_status(f, WR_LOGIN_TRANSFER_PREFIX KEY) == 404);
  CHK(f, answers(f, "GET", WR_LOGIN_PATH "/cert.pem", b.cookie, NULL, 404, NULL));
  CHK(f, answers(f, "GET", target, b.cookie, NULL, 200, "id=\"signin\""));
}

static void test_expiry(void **state) { run(*state, client_expiry); }

/* Held polls are bounded; a newer poll for a key answers the older one. */
static void client_waiter_limits(fx *f) {
  resp r = {0};
  int a = send_req(f, "GET", WR_LOGIN_TRANSFER_PREFIX KEY, NULL, NULL);
  CHK(f, a >= 0);
  sleep_ms(50);
  CHK(f, quiet(a, 50));
  int a2 = send_req(f, "GET", WR_LOGIN_TRANSFER_PREFIX KEY, NULL, NULL);
  CHK(f, a2 >= 0);
  CHK(f, read_resp(a, "GET", &r) == 0); /* replaced at once */
  CHKR(f, &r, r.status == 404 && body_has(&r, "replaced"));
  resp_free(&r);
  int c = send_req(f, "GET", WR_LOGIN_TRANSFER_PREFIX KEY2, NULL, NULL);
  CHK(f, c >= 0);
  sleep_ms(50);
  CHK(f, get_status(f, WR_LOGIN_TRANSFER_PREFIX "cccccccccccccccccccccccccccccccccccccccccccc") == 429);
  CHK(f, read_resp(a2, "GET", &r) == 0);
  CHKR(f, &r, r.status == 404 && body_has(&r, "waiting"));
  resp_free(&r);
  CHK(f, read_resp(c, "GET", &r) == 0);
  CHKR(f, &r, r.status == 404);
  resp_free(&r);
}

static void test_waiter_limits(void **state) {
  fx *f = *state;
  f->cfg.max_waiters = 2;
  f->cfg.poll_hold_ms = 1500;
  run(f, client_waiter_limits);
}

/* ---- guessing: throttles, fair turns, sessions ----------------------------------- */

typedef struct stats {
  unsigned long long checks, waited, throttled, refused, locks;
} stats;

static int get_stats(fx *f, stats *st) {
  resp r = {0};
  const char *from = f->from;
  f->from = NULL;
  int rv = http(f, "GET", "/test/stats", NULL, NULL, &r);
  f->from = from;
  if (rv == 0 && (r.status != 200 || sscanf(r.body, "checks=%llu waited=%llu throttled=%llu refused=%llu locks=%llu",
                                            &st->checks, &st->waited, &st->throttled, &st->refused, &st->locks) != 5))
    rv = -1;
  resp_free(&r);
  return rv;
}

/* Whether the audit log has |action| for |ttype|:|tid| with |needle| in its
 * detail (NULL: any); copies the row's account id to |account| if given.
 * Reads through a store connection of the client's own. */
static int audit_row(fx *f, const char *action, const char *ttype, const char *tid, const char *needle,
                     char account[WR_STORE_ID_LEN + 1]) {
  char err[256];
  wr_store *s = NULL;
  wr_audit *rows = NULL;
  size_t n = 0;
  int found = 0;
  if (wr_store_open(f->db, 0, &s, err, sizeof(err)) != WR_OK) return 0;
  if (wr_store_audit_list(s, NULL, 0, &rows, &n) == WR_OK)
    for (size_t i = 0; i < n && !found; i++)
      if (!strcmp(rows[i].action, action) && !strcmp(rows[i].target_type, ttype) &&
          !strcmp(rows[i].target_id, tid) && !strcmp(rows[i].actor, "edge") &&
          (!needle || strstr(rows[i].detail, needle))) {
        found = 1;
        if (account) snprintf(account, WR_STORE_ID_LEN + 1, "%s", rows[i].account_id);
      }
  wr_store_audit_free(rows, n);
  wr_store_close(s);
  return found;
}

/* Posts a sign-in of |b|'s session without waiting for the answer: the fd. */
static int send_signin(fx *f, const browser *b, const char *email, const char *pw) {
  char body[512];
  snprintf(body, sizeof(body), "csrf=%s&email=%s&password=%s", b->csrf, email, pw);
  return send_req(f, "POST", WR_LOGIN_PATH "/signin", b->cookie, body);
}

/* (a) Five wrong passwords lock an email: then even the right one is
 * answered 429 at once, without a check, from any source, and an email
 * without a user gets the very same answer. (c) The lockout ends with its
 * delay; the right password then works and ends it in the audit log. */
static void client_lockout(fx *f) {
  browser b = {0}, b2 = {0}, b3 = {0}, nb = {0};
  resp r = {0};
  stats st0, st1;
  char v[64], acct[WR_STORE_ID_LEN + 1];
  for (int i = 0; i < 5; i++) {
    CHK(f, sign_in(f, &b, WR_LOGIN_PATH, "alice%40example.test", "wrong+password", &r) == 0);
    CHKR(f, &r, r.status == 403 && body_has(&r, "Wrong email or password."));
    resp_free(&r);
  }
  CHK(f, get_stats(f, &st0) == 0);
  CHK(f, st0.checks == 5 && st0.locks == 1 && st0.throttled == 0);

  CHK(f, sign_in(f, &b, WR_LOGIN_PATH, "Alice%40Example.test", "correct+horse+battery", &r) == 0);
  CHKR(f, &r, r.status == 429 && body_has(&r, "Too many failed sign-ins; try again in 1 second."));
  CHK(f, strcmp(hdr(&r, "Retry-After", v, sizeof(v)), "1") == 0);
  CHKR(f, &r, body_has(&r, "value=\"Alice@Example.test\"")); /* the form comes back, email kept */
  resp_free(&r);
  f->from = "127.0.0.2";
  CHK(f, sign_in(f, &b2, WR_LOGIN_PATH, "alice%40example.test", "correct+horse+battery", &r) == 0);
  CHKR(f, &r, r.status == 429 && body_has(&r, "Too many failed sign-ins; try again in 1 second."));
  resp_free(&r);
  CHK(f, get_stats(f, &st1) == 0);
  CHK(f, st1.checks == st0.checks && st1.throttled == 2);

  /* nobody@ has no user: the same words, status and wait. */
  f->from = "127.0.0.3";
  for (int i = 0; i < 5; i++) {
    CHK(f, sign_in(f, &nb, WR_LOGIN_PATH, "nobody%40example.test", "wrong+password", &r) == 0);
    CHKR(f, &r, r.status == 403 && body_has(&r, "Wrong email or password."));
    resp_free(&r);
  }
  CHK(f, sign_in(f, &nb, WR_LOGIN_PATH, "nobody%40example.test", "correct+horse+battery", &r) == 0);
  CHKR(f, &r, r.status == 429 && body_has(&r, "Too many failed sign-ins; try again in 1 second."));
  CHK(f, strcmp(hdr(&r, "Retry-After", v, sizeof(v)), "1") == 0);
  resp_free(&r);
  f->from = NULL;

  /* Audited: alice's lockout in her account, with the guesser's source;
   * nobody's edge-wide. */
  CHK(f, audit_row(f, "login.lock", "email", "alice@example.test", "\"source\":\"127.0.0.1\"", acct));
  CHK(f, strcmp(acct, f->acct.id) == 0);
  CHK(f, audit_row(f, "login.lock", "email", "alice@example.test", "\"failures\":5", NULL));
  CHK(f, audit_row(f, "login.lock", "email", "nobody@example.test", "\"retry_after_s\":1", acct));
  CHK(f, acct[0] == '\0');
  CHK(f, !audit_row(f, "login.unlock", "email", "alice@example.test", NULL, NULL));

  /* (c) One second later (virtual): the right password signs her in. */
  atomic_fetch_add(&f->offset_ms, 1000);
  CHK(f, sign_in_status(f, &b3, WR_LOGIN_PATH, "alice%40example.test", "correct+horse+battery") == 303);
  CHK(f, audit_row(f, "login.unlock", "email", "alice@example.test", "\"reason\":\"signed in\"", NULL));
  /* Her count starts over; nobody's delay doubles with its next failure. */
  browser b4 = {0};
  CHK(f, sign_in_status(f, &b4, WR_LOGIN_PATH, "alice%40example.test", "wrong") == 403);
  f->from = "127.0.0.3";
  CHK(f, sign_in_status(f, &nb, WR_LOGIN_PATH, "nobody%40example.test", "wrong+password") == 403);
  CHK(f, sign_in(f, &nb, WR_LOGIN_PATH, "nobody%40example.test", "correct+horse+battery", &r) == 0);
  CHKR(f, &r, r.status == 429 && body_has(&r, "try again in 2 seconds."));
  CHK(f, strcmp(hdr(&r, "Retry-After", v, sizeof(v)), "2") == 0);
  resp_free(&r);
  /* Long delays are said in minutes. */
  atomic_fetch_add(&f->offset_ms, 2000);
  for (int i = 0; i < 6; i++) { /* delays 4 s ... 128 s */
    uint64_t wait = 4000u << i;
    CHK(f, sign_in_status(f, &nb, WR_LOGIN_PATH, "nobody%40example.test", "wrong+password") == 403);
    if (i < 5) atomic_fetch_add(&f->offset_ms, wait);
  }
  CHK(f, sign_in(f, &nb, WR_LOGIN_PATH, "nobody%40example.test", "correct+horse+battery", &r) == 0);
  CHKR(f, &r, r.status == 429 && body_has(&r, "try again in 3 minutes."));
  resp_free(&r);

  /* An email with a newline and a byte that is not UTF-8 is locked all the
   * same, and its audit row holds neither. */
  browser eb = {0};
  f->from = "127.0.0.5";
  for (int i = 0; i < 5; i++) {
    CHK(f, sign_in_status(f, &eb, WR_LOGIN_PATH, "ev%0Ail%FF%40x.test", "wrong+password") == 403);
  }
  CHK(f, sign_in_status(f, &eb, WR_LOGIN_PATH, "ev%0Ail%FF%40x.test", "wrong+password") == 429);
  f->from = NULL;
  CHK(f, audit_row(f, "login.lock", "email", "ev?il?@x.test", "\"email\":\"ev?il?@x.test\"", NULL));
}

static void test_lockout(void **state) {
  fx *f = *state;
  f->frozen = 1;
  run(f, client_lockout);
}

/* (b) One source floods wrong passwords (slow checks, from parallel
 * sessions) while a user elsewhere signs in: the user is served, nobody
 * gets 503, and the flood beyond its source's share gets 429 at once. */
static void client_flood_from_one_source(fx *f) {
  enum { N = 12 };
  browser att[N];
  int fds[N];
  resp r = {0};
  stats st;
  char v[64];
  memset(att, 0, sizeof(att));
  for (int i = 0; i < N; i++) CHK(f, new_form(f, &att[i]) == 0);
  for (int i = 0; i < N; i++) {
    fds[i] = send_signin(f, &att[i], "slow%40example.test", "wrong+password");
    CHK(f, fds[i] >= 0);
  }
  /* Ordering only, no timing asserted: the flood reaches the edge first. */
  sleep_ms(200);
  f->from = "127.0.0.2";
  browser user = {0};
  CHK(f, sign_in_status(f, &user, WR_LOGIN_PATH, "alice%40example.test", "correct+horse+battery") == 303);
  f->from = NULL;
  int wrong = 0, turned_away = 0;
  for (int i = 0; i < N; i++) {
    CHK(f, read_resp(fds[i], "POST", &r) == 0);
    CHKR(f, &r, r.status == 403 || r.status == 429);
    if (r.status == 403) {
      CHKR(f, &r, body_has(&r, "Wrong email or password."));
      wrong++;
    } else {
      CHKR(f, &r, body_has(&r, "Too many sign-ins from your network"));
      CHK(f, hdr(&r, "Retry-After", v, sizeof(v))[0] != '\0');
      turned_away++;
    }
    resp_free(&r);
  }
  /* One running and two waiting for the source; the rest turned away. */
  CHK(f, wrong >= 3 && turned_away >= 1 && wrong + turned_away == N);
  CHK(f, get_stats(f, &st) == 0);
  CHK(f, st.refused == (unsigned long long)turned_away && st.checks == (unsigned long long)wrong + 1);
}

static void test_flood_from_one_source(void **state) { run(*state, client_flood_from_one_source); }

/* Past max_hashing, a check from another source waits for its turn and
 * then runs (it used to get 503). */
static void client_checks_wait_their_turn(fx *f) {
  browser b1 = {0}, b2 = {0};
  resp r = {0};
  stats st;
  CHK(f, new_form(f, &b1) == 0);
  f->from = "127.0.0.2";
  CHK(f, new_form(f, &b2) == 0);
  f->from = NULL;
  int slow = send_signin(f, &b1, "slow%40example.test", "correct+horse+battery");
  CHK(f, slow >= 0);
  sleep_ms(100);
  f->from = "127.0.0.2";
  int fd = send_signin(f, &b2, "alice%40example.test", "correct+horse+battery");
  f->from = NULL;
  CHK(f, fd >= 0);
  CHK(f, read_resp(fd, "POST", &r) == 0);
  CHKR(f, &r, r.status == 303);
  resp_free(&r);
  CHK(f, read_resp(slow, "POST", &r) == 0);
  CHKR(f, &r, r.status == 303);
  resp_free(&r);
  CHK(f, get_stats(f, &st) == 0);
  CHK(f, st.checks == 2 && st.refused == 0 && st.waited == 1);
}

static void test_checks_wait_their_turn(void **state) {
  fx *f = *state;
  f->cfg.max_hashing = 1;
  run(f, client_checks_wait_their_turn);
}

/* One wrong password for each of ten accounts from one source: no email
 * is locked, the source is, for every email; elsewhere all is well. */
static void client_spraying(fx *f) {
  browser b = {0}, b2 = {0};
  resp r = {0};
  stats st;
  char email[64];
  for (int i = 0; i < 10; i++) {
    snprintf(email, sizeof(email), "user%d%%40example.test", i);
    CHK(f, sign_in(f, &b, WR_LOGIN_PATH, email, "Summer2024%21", &r) == 0);
    CHKR(f, &r, r.status == 403 && body_has(&r, "Wrong email or password."));
    resp_free(&r);
  }
  CHK(f, sign_in(f, &b, WR_LOGIN_PATH, "alice%40example.test", "correct+horse+battery", &r) == 0);
  CHKR(f, &r, r.status == 429 && body_has(&r, "Too many failed sign-ins; try again in 1 second."));
  resp_free(&r);
  f->from = "127.0.0.2";
  CHK(f, sign_in_status(f, &b2, WR_LOGIN_PATH, "user3%40example.test", "correct+horse+battery") == 303);
  f->from = NULL;
  CHK(f, audit_row(f, "login.lock", "source", "127.0.0.1", "\"failures\":10", NULL));
  CHK(f, audit_row(f, "login.lock", "source", "127.0.0.1", "\"email\":\"user9@example.test\"", NULL));
  CHK(f, !audit_row(f, "login.lock", "email", "user9@example.test", NULL, NULL));
  CHK(f, get_stats(f, &st) == 0);
  CHK(f, st.locks == 1 && st.throttled == 1 && st.checks == 11);
}

static void test_spraying(void **state) {
  fx *f = *state;
  char email[64];
  wr_user u;
  for (int i = 0; i < 10; i++) {
    snprintf(email, sizeof(email), "user%d@example.test", i);
    add_user(f, &f->acct, email, WR_PASSWORD_MIN_ITERATIONS, 0, &u);
  }
  f->frozen = 1;
  run(f, client_spraying);
}

/* A source asking for form after form replaces its own sessions, not the
 * half-filled form of a user elsewhere. */
static void client_session_churn(fx *f) {
  browser user = {0}, first = {0};
  char body[512];
  f->from = "127.0.0.2";
  CHK(f, new_form(f, &user) == 0);
  f->from = NULL;
  CHK(f, new_form(f, &first) == 0);
  for (int i = 0; i < 200; i++) {
    CHK(f, get_status(f, WR_LOGIN_PATH) == 200);
  }
  f->from = "127.0.0.2";
  snprintf(body, sizeof(body), "csrf=%s&email=alice%%40example.test&password=correct+horse+battery", user.csrf);
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/signin", user.cookie, body, 303, NULL));
  f->from = NULL;
  /* The churning source's own first form is what went. */
  snprintf(body, sizeof(body), "csrf=%s&email=alice%%40example.test&password=correct+horse+battery", first.csrf);
  CHK(f, answers(f, "POST", WR_LOGIN_PATH "/signin", first.cookie, body, 403, "session expired"));
}

static void test_session_churn(void **state) {
  fx *f = *state;
  f->cfg.max_sessions = 32;
  run(f, client_session_churn);
}

/* Freeing the login object answers held polls and running jobs. */
static void client_free_while_busy(fx *f) {
  resp pr = {0}, sr = {0};
  browser b = {0};
  char body[512];
  CHK(f, new_form(f, &b) == 0);
  int p = send_req(f, "GET", WR_LOGIN_TRANSFER_PREFIX KEY, NULL, NULL);
  CHK(f, p >= 0);
  snprintf(body, sizeof(body), "csrf=%s&email=slow%%40example.test&password=correct+horse+battery", b.csrf);
  int s = send_req(f, "POST", WR_LOGIN_PATH "/signin", b.cookie, body);
  CHK(f, s >= 0);
  sleep_ms(100);
  CHK(f, get_status(f, "/test/free-login") == 200);
  CHK(f, read_resp(p, "GET", &pr) == 0);
  CHKR(f, &pr, pr.status == 404 && body_has(&pr, "shutting down"));
  CHK(f, read_resp(s, "POST", &sr) == 0);
  CHKR(f, &sr, sr.status == 503);
  resp_free(&pr);
  resp_free(&sr);
}

static void test_free_while_busy(void **state) {
  fx *f = *state;
  f->cfg.poll_hold_ms = 5000;
  run(f, client_free_while_busy);
}

static void test_urls_and_keys(void **state) {
  (void)state;
  char *u = wr_login_browser_url("http://edge.test:8081/", KEY);
  assert_string_equal(u, "http://edge.test:8081/argotunnel?aud=&callback=http%3A%2F%2Fedge.test%3A8081%2Fargotunnel%2Ftransfer%2F"
                         "uIizRArAF9cJdwUkxdq6MYLYxm55MomCjjDa6sYA_1s%3D");
  free(u);
  u = wr_login_poll_url("http://edge.test:8081", KEY);
  assert_string_equal(u, "http://edge.test:8081/argotunnel/transfer/" KEY);
  free(u);
  assert_null(wr_login_poll_url("http://e", "bad/key0123456789abc"));
  assert_null(wr_login_browser_url("http://e", "short"));
  assert_true(wr_login_key_valid(KEY, strlen(KEY)));
  assert_false(wr_login_key_valid("a+b/c0123456789abcdef", 21));
  assert_false(wr_login_key_valid(NULL, 0));
  /* The sign-in's return path stays on this listener. */
  assert_true(wr__login_next_ok("/dashboard"));
  assert_true(wr__login_next_ok("/dashboard/routes?x=1"));
  assert_false(wr__login_next_ok(""));
  assert_false(wr__login_next_ok("dashboard"));
  assert_false(wr__login_next_ok("//evil.test/"));
  assert_false(wr__login_next_ok("/\\evil.test/"));
  assert_false(wr__login_next_ok("https://evil.test/"));
  assert_false(wr__login_next_ok("/a b"));
  assert_false(wr__login_next_ok("/a\r\nSet-Cookie:x"));
}

/* The store calls login and `warren-edge user` added (store.c's tail). */
static void test_store_user_calls(void **state) {
  fx *f = *state;
  char hash[WR_PASSWORD_ENCODED_MAX], tok[WR_STORE_TOKEN_LEN + 1], tok2[WR_STORE_TOKEN_LEN + 1];
  wr_user *users = NULL, u;
  wr_api_token *toks = NULL, k;
  size_t n = 0, revoked = 9;

  assert_int_equal(wr_store_user_password_hash(f->s, f->alice.id, hash, sizeof(hash)), WR_OK);
  assert_int_equal(wr_password_verify(PASSWORD, strlen(PASSWORD), hash), WR_OK);
  assert_int_equal(wr_store_user_password_hash(f->s, f->alice.id, hash, 10), WR_ERR_LIMIT);
  assert_int_equal(wr_store_user_password_hash(f->s, f->admin.id, hash, sizeof(hash)), WR_ERR_NOTFOUND);
  assert_non_null(strstr(wr_store_errmsg(f->s), "no password"));
  assert_int_equal(wr_store_user_password_hash(f->s, "00000000000000000000000000000000", hash, sizeof(hash)),
                   WR_ERR_NOTFOUND);

  assert_int_equal(wr_store_user_set_password(f->s, "test", f->admin.id, "pbkdf2-sha256$x"), WR_OK);
  assert_int_equal(wr_store_user_get(f->s, f->admin.id, &u), WR_OK);
  assert_true(u.has_password);
  assert_string_equal(u.email, "admin@example.test");
  assert_int_equal(wr_store_user_set_password(f->s, "test", f->admin.id, NULL), WR_OK);
  assert_int_equal(wr_store_user_get(f->s, f->admin.id, &u), WR_OK);
  assert_false(u.has_password);
  assert_int_equal(wr_store_user_set_password(f->s, "test", "00000000000000000000000000000000", NULL),
                   WR_ERR_NOTFOUND);
  assert_int_equal(wr_store_user_get(f->s, "00000000000000000000000000000000", &u), WR_ERR_NOTFOUND);

  assert_int_equal(wr_store_user_list(f->s, f->acct.id, &users, &n), WR_OK);
  assert_int_equal(n, 4);
  assert_string_equal(users[0].email, "admin@example.test"); /* by email */
  assert_string_equal(users[3].email, "slow@example.test");
  assert_true(users[2].is_service); /* admin, alice, ci, slow */
  free(users);
  assert_int_equal(wr_store_user_list(f->s, f->acct2.id, &users, &n), WR_OK);
  assert_int_equal(n, 0);
  free(users);

  /* Two tokens, roll: both revoked, one new live one for the zone. */
  assert_int_equal(wr_store_token_create(f->s, "test", f->alice.id, NULL, tok, NULL), WR_OK);
  assert_int_equal(wr_store_token_create(f->s, "test", f->alice.id, f->zone.id, tok2, NULL), WR_OK);
  assert_int_equal(wr_store_token_list(f->s, f->alice.id, 0, &toks, &n), WR_OK);
  assert_int_equal(n, 2);
  free(toks);
  char fresh[WR_STORE_TOKEN_LEN + 1];
  assert_int_equal(wr_store_token_roll(f->s, "test", f->alice.id, f->zone2.id, fresh, &k, &revoked), WR_OK);
  assert_int_equal(revoked, 2);
  assert_string_equal(k.zone_id, f->zone2.id);
  assert_int_equal(wr_store_token_verify(f->s, tok, NULL), WR_ERR_DENIED);
  assert_int_equal(wr_store_token_verify(f->s, tok2, NULL), WR_ERR_DENIED);
  assert_int_equal(wr_store_token_verify(f->s, fresh, NULL), WR_OK);
  assert_int_equal(wr_store_token_list(f->s, f->alice.id, 0, &toks, &n), WR_OK);
  assert_int_equal(n, 1);
  free(toks);
  assert_int_equal(wr_store_token_list(f->s, f->alice.id, 1, &toks, &n), WR_OK);
  assert_int_equal(n, 3);
  /* (same second: the order among them is by id) */
  assert_int_equal(!toks[0].revoked_at + !toks[1].revoked_at + !toks[2].revoked_at, 1);
  free(toks);
  /* Nothing live: rolling still issues one. A zone of another account or an
   * unknown user changes nothing. */
  assert_int_equal(wr_store_token_roll(f->s, "test", f->ci.id, NULL, fresh, NULL, &revoked), WR_OK);
  assert_int_equal(revoked, 0);
  assert_int_equal(wr_store_token_roll(f->s, "test", f->alice.id, f->foreign.id, fresh, NULL, &revoked),
                   WR_ERR_INVAL);
  assert_string_equal(fresh, "");
  assert_int_equal(wr_store_token_list(f->s, f->alice.id, 0, &toks, &n), WR_OK);
  assert_int_equal(n, 1);
  free(toks);
  assert_int_equal(wr_store_token_roll(f->s, "test", "00000000000000000000000000000000", NULL, fresh, NULL, NULL),
                   WR_ERR_NOTFOUND);

  /* Audited: token.roll with the count, user.password. */
  wr_audit *rows = NULL;
  int rolls = 0, pw = 0;
  assert_int_equal(wr_store_audit_list(f->s, f->acct.id, 0, &rows, &n), WR_OK);
  for (size_t i = 0; i < n; i++) {
    rolls += strcmp(rows[i].action, "token.roll") == 0;
    pw += strcmp(rows[i].action, "user.password") == 0;
    assert_null(strstr(rows[i].detail, "pbkdf2"));
  }
  wr_store_audit_free(rows, n);
  assert_int_equal(rolls, 2);
  assert_int_equal(pw, 2);
}

static void test_new_needs_config(void **state) {
  fx *f = *state;
  wr_login *l = NULL;
  wr_login_config c = {0};
  (void)f;
  assert_int_equal(wr_login_new(&c, &l), WR_ERR_INVAL);
  assert_null(l);
  assert_int_equal(wr_login_new(NULL, &l), WR_ERR_INVAL);
  wr_login_free(NULL);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_FIXTURE(setup, teardown, test_full_flow, test_full_flow_on_a_store_thread,
                               test_late_poll_and_root_path,
                               test_download_only, test_refusals, test_csrf_and_bad_requests,
                               test_escaping, test_expiry, test_waiter_limits, test_lockout,
                               test_flood_from_one_source, test_checks_wait_their_turn,
                               test_spraying, test_session_churn, test_free_while_busy),
                  UNIT_TESTS(test_urls_and_keys),
                  UNIT_FIXTURE(setup, teardown, test_store_user_calls, test_new_needs_config));
}
