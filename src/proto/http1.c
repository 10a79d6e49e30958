/* HTTP/1.1 heads and chunked framing (RFC 9112); see http1.h for the rules.
 *
 * Parsing a head is two passes over at most max_head bytes: find_head_end()
 * locates the empty line while rejecting bare CR/LF and counting lines (so
 * limits trip before any field is looked at), then the lines are split and
 * validated. Callers re-parse from the start when more bytes arrive; the
 * head is bounded, so this stays cheap (net/httpd.c also waits for the end
 * of the head before calling). */
#include "proto/http1.h"

#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"

/* ---- character classes ---------------------------------------------------- */

static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar / SP / HTAB (RFC 9110 5.5): no control characters but HTAB,
 * no DEL; obs-text (>= 0x80) is allowed. */
static int is_text(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* |a|/|n| equals the NUL-terminated |b|, ASCII case-insensitively. */
static int ieq(const char *a, size_t n, const char *b) {
  size_t i = 0;
  for (; i < n; i++)
    if (b[i] == '\0' || lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
  return b[i] == '\0';
}

static int text_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_text((unsigned char)s[i])) return 0;
  return 1;
}

/* ---- lists ----------------------------------------------------------------- */

/* Iterates the elements of a comma-separated list: returns 1 and the next
 * element (OWS trimmed, possibly empty) in *e and *elen, or 0 at the end. */
static int list_next(const char *v, size_t n, size_t *pos, const char **e, size_t *elen) {
  size_t i = *pos;
  if (i > n) return 0;
  size_t start = i;
  while (i < n && v[i] != ',') i++;
  size_t end = i;
  while (start < end && is_ows((unsigned char)v[start])) start++;
  while (end > start && is_ows((unsigned char)v[end - 1])) end--;
  *e = v + start;
  *elen = end - start;
  *pos = i + 1; /* past the comma, or n + 1 at the end */
  return 1;
}

int wr_http1_has_token(const char *value, size_t len, const char *token) {
  size_t pos = 0, elen;
  const char *e;
  if (!value) return 0;
  while (list_next(value, len, &pos, &e, &elen))
    if (ieq(e, elen, token)) return 1;
  return 0;
}

int wr_http1_is_hop_by_hop(const char *name, size_t len) {
  static const char *const hop[] = {"connection", "keep-alive", "proxy-connection",
                                    "proxy-authenticate", "proxy-authorization", "te",
                                    "trailer", "transfer-encoding", "upgrade"};
  for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if (ieq(name, len, hop[i])) return 1;
  return 0;
}

const char *wr_http1_find(const wr_http1_head *h, const char *name, size_t *len) {
  for (size_t i = h->nheaders; i-- > 0;)
    if (ieq(h->headers[i].name, h->headers[i].name_len, name)) {
      if (len) *len = h->headers[i].value_len;
      return h->headers[i].value;
    }
  if (len) *len = 0;
  return NULL;
}

/* ---- heads ----------------------------------------------------------------- */

static void limits_get(const wr_http1_limits *l, size_t cap, size_t *max_head, size_t *max_fields) {
  *max_head = l && l->max_head ? l->max_head : WR_HTTP1_DEFAULT_MAX_HEAD;
  *max_fields = l && l->max_headers ? l->max_headers : WR_HTTP1_DEFAULT_MAX_HEADERS;
  if (*max_fields > cap) *max_fields = cap;
}

/* Finds the empty line ending the head that starts at |start|. The head may
 * use at most |budget| bytes and |max_fields| field lines. Every LF must
 * follow a CR and every CR precede an LF; checking that here, on the raw
 * bytes, means no later step can disagree about where a line ends. Returns
 * WR_OK (*end just past the empty line), WR_AGAIN, WR_ERR_PROTO or
 * WR_ERR_LIMIT. */
static int find_head_end(const uint8_t *buf, size_t len, size_t start, size_t budget,
                         size_t max_fields, size_t *end) {
  size_t line_start = start, lines = 0;
  for (size_t i = start; i < len; i++) {
    if (i - start >= budget) return WR_ERR_LIMIT;
    if (buf[i] == '\r') {
      if (i + 1 < len && buf[i + 1] != '\n') return WR_ERR_PROTO;
    } else if (buf[i] == '\n') {
      if (i == start || buf[i - 1] != '\r') return WR_ERR_PROTO;
      if (i - 1 == line_start) {
        *end = i + 1;
        return WR_OK;
      }
      if (++lines > max_fields + 1) return WR_ERR_LIMIT; /* + the start line */
      line_start = i + 1;
    }
  }
  return WR_AGAIN;
}

/* Length of the line at |p| up to (not including) its CRLF. The head, which
 * ends at |end|, was validated by find_head_end(): every CR starts a CRLF. */
static size_t line_len(const uint8_t *p, const uint8_t *end) {
  const uint8_t *cr = memchr(p, '\r', (size_t)(end - p));
  return cr ? (size_t)(cr - p) : (size_t)(end - p);
}

/* "HTTP/1.0" or "HTTP/1.1" -> minor, else -1. */
static int parse_version(const uint8_t *p, size_t n) {
  if (n != 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1')) return -1;
  return p[7] - '0';
}

/* Splits and checks the field lines in [p, end) (end points at the final
 * CRLF). */
static int parse_fields(const uint8_t *p, const uint8_t *end, wr_http_header *hdrs,
                        wr_http1_head *out) {
  size_t n = 0;
  while (p < end) {
    size_t ll = line_len(p, end), i = 0;
    /* A field line starting with whitespace is obs-fold (or, first in the
     * section, a smuggling trick: RFC 9112 2.2): both refused. */
    while (i < ll && is_tchar(p[i])) i++;
    if (i == 0 || i == ll || p[i] != ':') return WR_ERR_PROTO;
    size_t vs = i + 1, ve = ll;
    while (vs < ve && is_ows(p[vs])) vs++;
    while (ve > vs && is_ows(p[ve - 1])) ve--;
    if (!text_ok((const char *)p + vs, ve - vs)) return WR_ERR_PROTO;
    hdrs[n].name = (const char *)p;
    hdrs[n].name_len = i;
    hdrs[n].value = (const char *)p + vs;
    hdrs[n].value_len = ve - vs;
    n++;
    p += ll + 2;
  }
  out->headers = hdrs;
  out->nheaders = n;
  return WR_OK;
}

/* Merges one Content-Length value (a list of equal decimal numbers) into
 * *cl. */
static int merge_content_length(const char *v, size_t n, int *have, uint64_t *cl) {
  size_t pos = 0, elen;
  const char *e;
  while (list_next(v, n, &pos, &e, &elen)) {
    uint64_t x = 0;
    if (elen == 0 || elen > 18) return WR_ERR_PROTO; /* 18 digits cannot overflow */
    for (size_t i = 0; i < elen; i++) {
      if (e[i] < '0' || e[i] > '9') return WR_ERR_PROTO;
      x = x * 10 + (uint64_t)(e[i] - '0');
    }
    if (*have && x != *cl) return WR_ERR_PROTO;
    *have = 1;
    *cl = x;
  }
  return WR_OK;
}

/* The framing-relevant fields, gathered in one pass. */
typedef struct fields {
  int host_count, have_cl, te_count, te_chunked, conn_close, conn_keep_alive, conn_upgrade;
  int has_upgrade, upgrade_websocket, expect_continue;
  uint64_t cl;
  const char *host;
  size_t host_len;
} fields;

static int scan_fields(const wr_http1_head *h, fields *f) {
  memset(f, 0, sizeof(*f));
  size_t te_elems = 0;
  for (size_t i = 0; i < h->nheaders; i++) {
    const wr_http_header *x = &h->headers[i];
    const char *v = x->value;
    size_t vn = x->value_len;
    if (ieq(x->name, x->name_len, "host")) {
      f->host_count++;
      f->host = v;
      f->host_len = vn;
    } else if (ieq(x->name, x->name_len, "content-length")) {
      if (merge_content_length(v, vn, &f->have_cl, &f->cl) != WR_OK) return WR_ERR_PROTO;
    } else if (ieq(x->name, x->name_len, "transfer-encoding")) {
      /* Only a lone "chunked" is accepted (as Go's net/http and nginx do):
       * any other coding we could not undo, and "chunked" twice or not last
       * is a known smuggling vector. Empty list elements are ignored. */
      size_t pos = 0, elen;
      const char *e;
      f->te_count++;
      while (list_next(v, vn, &pos, &e, &elen)) {
        if (elen == 0) continue;
        te_elems++;
        if (!ieq(e, elen, "chunked")) return WR_ERR_PROTO;
      }
    } else if (ieq(x->name, x->name_len, "connection")) {
      f->conn_close |= wr_http1_has_token(v, vn, "close");
      f->conn_keep_alive |= wr_http1_has_token(v, vn, "keep-alive");
      f->conn_upgrade |= wr_http1_has_token(v, vn, "upgrade");
    } else if (ieq(x->name, x->name_len, "upgrade")) {
      f->has_upgrade = 1;
      f->upgrade_websocket = wr_http1_has_token(v, vn, "websocket");
    } else if (ieq(x->name, x->name_len, "expect")) {
      f->expect_continue = ieq(v, vn, "100-continue");
    }
  }
  if (f->te_count) {
    if (te_elems != 1) return WR_ERR_PROTO;
    f->te_chunked = 1;
  }
  return WR_OK;
}

static void set_common(wr_http1_head *h, const fields *f) {
  h->keep_alive = !f->conn_close && (h->minor == 1 || f->conn_keep_alive);
  h->upgrade = f->conn_upgrade && f->has_upgrade;
  h->websocket = h->upgrade && f->upgrade_websocket;
  h->content_length = f->have_cl ? f->cl : 0;
}

static void head_clear(wr_http1_head *out) { memset(out, 0, sizeof(*out)); }

/* Leading empty lines before a request line (RFC 9112 2.2) are skipped;
 * they count against max_head so that a peer cannot make the caller buffer
 * them without bound. Sets *pos to the first byte of the request line;
 * returns WR_OK, WR_AGAIN, WR_ERR_PROTO (bare CR or LF) or WR_ERR_LIMIT. */
static int skip_empty_lines(const uint8_t *buf, size_t len, size_t max_head, size_t *pos) {
  size_t p = 0;
  while (p < len && buf[p] == '\r') {
    if (p + 1 == len) return p + 1 > max_head ? WR_ERR_LIMIT : WR_AGAIN;
    if (buf[p + 1] != '\n') return WR_ERR_PROTO;
    p += 2;
    if (p >= max_head) return WR_ERR_LIMIT;
  }
  if (p < len && buf[p] == '\n') return WR_ERR_PROTO;
  *pos = p;
  return WR_OK;
}

/* request-line = method SP request-target SP HTTP-version, |ll| bytes at
 * |l| without the CRLF. */
static int parse_request_line(const uint8_t *l, size_t ll, wr_http1_head *out) {
  size_t i = 0, t;
  while (i < ll && is_tchar(l[i])) i++;
  if (i == 0 || i == ll || l[i] != ' ') return WR_ERR_PROTO;
  out->method = (const char *)l;
  out->method_len = i;
  t = ++i;
  /* Any visible byte (obs-text included, as Go accepts); no CTL, SP, DEL. */
  while (i < ll && l[i] > 0x20 && l[i] != 0x7f) i++;
  if (i == t || i == ll || l[i] != ' ') return WR_ERR_PROTO;
  out->target = (const char *)l + t;
  out->target_len = i - t;
  if ((out->minor = parse_version(l + i + 1, ll - i - 1)) < 0) return WR_ERR_PROTO;
  return WR_OK;
}

/* Host and body framing of a request from its scanned fields. */
static int request_framing(wr_http1_head *out, const fields *f) {
  if (f->host_count > 1 || (f->host_count == 0 && out->minor == 1)) return WR_ERR_PROTO;
  /* Both framings at once, or chunked on HTTP/1.0 (RFC 9112 6.1: faulty
   * framing), is how requests get smuggled past a front end. */
  if (f->te_count && (f->have_cl || out->minor == 0)) return WR_ERR_PROTO;
  set_common(out, f);
  out->host = f->host;
  out->host_len = f->host_len;
  out->expect_continue = f->expect_continue;
  if (f->te_chunked)
    out->body = WR_HTTP1_BODY_CHUNKED;
  else if (f->have_cl && f->cl > 0)
    out->body = WR_HTTP1_BODY_LENGTH;
  else
    out->body = WR_HTTP1_BODY_NONE;
  return WR_OK;
}

int wr_http1_parse_request(const uint8_t *buf, size_t len, const wr_http1_limits *limits,
                           wr_http_header *hdrs, size_t cap, wr_http1_head *out,
                           size_t *consumed) {
  size_t max_head, max_fields, p = 0, end;
  fields f;
  int rv;
  limits_get(limits, cap, &max_head, &max_fields);
  head_clear(out);
  if ((rv = skip_empty_lines(buf, len, max_head, &p)) != WR_OK) return rv;
  rv = find_head_end(buf, len, p, max_head - p, max_fields, &end);
  if (rv != WR_OK) return rv;

  const uint8_t *l = buf + p;
  size_t ll = line_len(l, buf + end);
  if ((rv = parse_request_line(l, ll, out)) != WR_OK) return rv;
  rv = parse_fields(l + ll + 2, buf + end - 2, hdrs, out);
  if (rv != WR_OK) return rv;
  if ((rv = scan_fields(out, &f)) != WR_OK) return rv;
  if ((rv = request_framing(out, &f)) != WR_OK) return rv;
  *consumed = end;
  return WR_OK;
}

/* status-line = HTTP-version SP 3DIGIT SP [reason], |ll| bytes at |buf|
 * without the CRLF; "HTTP/1.1 200" without the second SP is accepted too
 * (Go and curl do). */
static int parse_status_line(const uint8_t *buf, size_t ll, wr_http1_head *out) {
  if (ll < 12 || (out->minor = parse_version(buf, 8)) < 0 || buf[8] != ' ') return WR_ERR_PROTO;
  const uint8_t *s = buf + 9;
  if (s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
    return WR_ERR_PROTO;
  out->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  if (ll > 12) {
    if (s[3] != ' ' || !text_ok((const char *)s + 4, ll - 13)) return WR_ERR_PROTO;
    out->reason = (const char *)s + 4;
    out->reason_len = ll - 13;
  } else {
    out->reason = (const char *)s + 3;
  }
  return WR_OK;
}

/* How the body of a response to |req_method| is delimited (RFC 9112 6.3). */
static void response_framing(wr_http1_head *out, fields *f, const char *req_method) {
  /* HTTP/1.0 has no transfer codings: ignore the field (as Go does) and
   * delimit by length or EOF. */
  if (out->minor == 0) f->te_chunked = f->te_count = 0;
  set_common(out, f);
  int st = out->status;
  int is_head = req_method && strcmp(req_method, "HEAD") == 0;
  int is_connect = req_method && strcmp(req_method, "CONNECT") == 0;
  if (is_head || st < 200 || st == 204 || st == 304 || (is_connect && st < 300)) {
    out->body = WR_HTTP1_BODY_NONE;
  } else if (f->te_chunked) {
    out->body = WR_HTTP1_BODY_CHUNKED;
    /* RFC 9112 6.3 rule 3: Content-Length alongside is ignored, but the
     * sender is suspect; do not reuse the connection. */
    if (f->have_cl) out->keep_alive = 0;
  } else if (f->have_cl) {
    out->body = f->cl ? WR_HTTP1_BODY_LENGTH : WR_HTTP1_BODY_NONE;
  } else {
    out->body = WR_HTTP1_BODY_EOF;
    out->keep_alive = 0;
  }
}

int wr_http1_parse_response(const uint8_t *buf, size_t len, const char *req_method,
                            const wr_http1_limits *limits, wr_http_header *hdrs, size_t cap,
                            wr_http1_head *out, size_t *consumed) {
  size_t max_head, max_fields, end;
  fields f;
  int rv;
  limits_get(limits, cap, &max_head, &max_fields);
  head_clear(out);
  if ((rv = find_head_end(buf, len, 0, max_head, max_fields, &end)) != WR_OK) return rv;
  size_t ll = line_len(buf, buf + end);
  if ((rv = parse_status_line(buf, ll, out)) != WR_OK) return rv;
  rv = parse_fields(buf + ll + 2, buf + end - 2, hdrs, out);
  if (rv != WR_OK) return rv;
  if ((rv = scan_fields(out, &f)) != WR_OK) return rv;
  response_framing(out, &f, req_method);
  *consumed = end;
  return WR_OK;
}

/* ---- chunked decoding ------------------------------------------------------ */

/* Ordered: ch_count() relies on the size-line states coming first and the
 * trailer states last. */
enum chunk_state {
  CH_SIZE = 0,  /* start of a chunk-size line: a hex digit must come */
  CH_SIZE_MORE, /* in the hex digits */
  CH_SIZE_WS,   /* BWS after the size: only more BWS or ';' may follow */
  CH_EXT,       /* in chunk extensions (skipped): until CR */
  CH_SIZE_LF,   /* CR of the size line seen */
  CH_DATA,      /* in chunk data, c->remaining bytes left */
  CH_DATA_CR,   /* data done: CR must come */
  CH_DATA_LF,   /* CR after data seen */
  CH_TR_START,  /* start of a trailer line (or the final CRLF) */
  CH_TR_NAME,   /* in a trailer field name */
  CH_TR_VALUE,  /* in a trailer field value: until CR */
  CH_TR_LF,     /* CR of a trailer line seen */
  CH_END_LF,    /* CR of the final empty line seen */
  CH_DONE,      /* finished; nothing more is consumed */
  CH_ERROR      /* a previous call failed; the stream is unusable */
};

void wr_http1_chunked_init(wr_http1_chunked *c) { memset(c, 0, sizeof(*c)); }

/* One handler per state (or per kind of state, given the state that
 * follows): it takes the byte |b| seen in c->state, moves c->state on and
 * returns WR_OK, or WR_ERR_PROTO. ch_step() dispatches with
 * a switch rather than a table of function pointers so that the compiler
 * inlines the handlers: the framing bytes between data runs cost what they
 * did as one big switch (an indirect call per byte was 40 % slower). */
static int ch_digit(wr_http1_chunked *c, int v) {
  /* c->line counts this line's bytes, all digits so far. */
  if (c->line > 15) return WR_ERR_PROTO;
  c->remaining = c->remaining << 4 | (uint64_t)v;
  c->state = CH_SIZE_MORE;
  return WR_OK;
}

static int ch_size(wr_http1_chunked *c, unsigned char b) {
  int v = wr_hex_digit(b);
  return v >= 0 ? ch_digit(c, v) : WR_ERR_PROTO;
}

static int ch_size_more(wr_http1_chunked *c, unsigned char b) {
  int v = wr_hex_digit(b);
  if (v >= 0) return ch_digit(c, v);
  if (b == ';')
    c->state = CH_EXT;
  else if (is_ows(b))
    c->state = CH_SIZE_WS;
  else if (b == '\r')
    c->state = CH_SIZE_LF;
  else
    return WR_ERR_PROTO;
  return WR_OK;
}

/* |b| must be |want|; then the machine moves to |next|. */
static int ch_expect(wr_http1_chunked *c, unsigned char b, unsigned char want, int next) {
  if (b != want) return WR_ERR_PROTO;
  c->state = next;
  return WR_OK;
}

/* A run of bytes that |allowed| admits, ended by |end|, which moves the
 * machine to |next|: BWS after a size (ended by ';'), a trailer field name
 * (by ':'), and text up to a CR: chunk extensions (not interpreted, only kept
 * free of CTLs so that the CRLF ending the line is unambiguous) and trailer
 * field values. */
static int ch_run_until(wr_http1_chunked *c, unsigned char b, int (*allowed)(unsigned char),
                        unsigned char end, int next) {
  if (b == end)
    c->state = next;
  else if (!allowed(b))
    return WR_ERR_PROTO;
  return WR_OK;
}

/* The LF ending a size line (then data, or the trailer section after the
 * last chunk) or a data line (then the next size line): a new line count
 * starts. */
static int ch_line_lf(wr_http1_chunked *c, unsigned char b, int next) {
  int rv = ch_expect(c, b, '\n', next);
  if (rv == WR_OK) c->line = 0;
  return rv;
}

static int ch_tr_start(wr_http1_chunked *c, unsigned char b) {
  if (b == '\r')
    c->state = CH_END_LF;
  else if (is_tchar(b)) /* not SP/HTAB: no obs-fold */
    c->state = CH_TR_NAME;
  else
    return WR_ERR_PROTO;
  return WR_OK;
}

static int ch_end_lf(wr_http1_chunked *c, unsigned char b) {
  int rv = ch_expect(c, b, '\n', CH_DONE);
  if (rv == WR_OK) c->done = 1;
  return rv;
}

static int ch_step(wr_http1_chunked *c, unsigned char b) {
  switch (c->state) {
  case CH_SIZE: return ch_size(c, b);
  case CH_SIZE_MORE: return ch_size_more(c, b);
  case CH_SIZE_WS: return ch_run_until(c, b, is_ows, ';', CH_EXT);
  case CH_EXT: return ch_run_until(c, b, is_text, '\r', CH_SIZE_LF);
  case CH_SIZE_LF: return ch_line_lf(c, b, c->remaining ? CH_DATA : CH_TR_START);
  case CH_DATA_CR: return ch_expect(c, b, '\r', CH_DATA_LF);
  case CH_DATA_LF: return ch_line_lf(c, b, CH_SIZE);
  case CH_TR_START: return ch_tr_start(c, b);
  case CH_TR_NAME: return ch_run_until(c, b, is_tchar, ':', CH_TR_VALUE);
  case CH_TR_VALUE: return ch_run_until(c, b, is_text, '\r', CH_TR_LF);
  case CH_TR_LF: return ch_expect(c, b, '\n', CH_TR_START);
  case CH_END_LF: return ch_end_lf(c, b);
  default: return WR_ERR_PROTO; /* CH_DATA, CH_DONE, CH_ERROR never get here */
  }
}

/* Counts one framing byte against the bound of its part of the body (the
 * enum is ordered: size-line states first, trailer states last). Returns
 * WR_OK or WR_ERR_LIMIT. */
static int ch_count(wr_http1_chunked *c) {
  if (c->state <= CH_SIZE_LF) return ++c->line > WR_HTTP1_MAX_CHUNK_LINE ? WR_ERR_LIMIT : WR_OK;
  if (c->state >= CH_TR_START)
    return ++c->trailer > WR_HTTP1_DEFAULT_MAX_HEAD ? WR_ERR_LIMIT : WR_OK;
  return WR_OK;
}

/* In state CH_DATA, of |avail| bytes: takes what the chunk has left and
 * returns the length of that run. */
static size_t ch_data_run(wr_http1_chunked *c, size_t avail) {
  size_t run = avail;
  if ((uint64_t)run > c->remaining) run = (size_t)c->remaining;
  c->remaining -= run;
  if (c->remaining == 0) c->state = CH_DATA_CR;
  return run;
}

int wr_http1_chunked_decode(wr_http1_chunked *c, const uint8_t *in, size_t len,
                            size_t *consumed, size_t *data_off, size_t *data_len) {
  size_t i = 0;
  int have_run = 0, rv = WR_OK;
  *data_off = *data_len = 0;
  if (c->state == CH_ERROR) {
    *consumed = 0;
    return WR_ERR_PROTO;
  }
  while (i < len && c->state != CH_DONE) {
    if (c->state == CH_DATA) {
      if (have_run) break; /* one data run per call */
      size_t run = ch_data_run(c, len - i);
      *data_off = i;
      *data_len = run;
      have_run = 1;
      i += run;
      continue;
    }
    if ((rv = ch_count(c)) != WR_OK) goto fail;
    /* The byte is consumed even when it is refused. */
    if ((rv = ch_step(c, in[i++])) != WR_OK) goto fail;
  }
  *consumed = i;
  return WR_OK;
fail:
  c->state = CH_ERROR;
  *consumed = i;
  *data_off = *data_len = 0;
  return rv;
}

/* ---- serialisation ---------------------------------------------------------- */

/* Fields must be what a strict parser accepts: a token name and a value
 * without CTLs but HTAB (so no CR/LF injection, no NUL truncation). */
static int fields_ok(const wr_http_header *hdrs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!wr_httpmeta_is_token(hdrs[i].name, hdrs[i].name_len) ||
        !text_ok(hdrs[i].value, hdrs[i].value_len))
      return 0;
  return 1;
}

static int append_fields(wr_buf *out, const wr_http_header *hdrs, size_t n) {
  int rv = WR_OK;
  for (size_t i = 0; i < n && rv == WR_OK; i++) {
    rv = wr_buf_append(out, hdrs[i].name, hdrs[i].name_len);
    if (rv == WR_OK) rv = wr_buf_append(out, ": ", 2);
    if (rv == WR_OK) rv = wr_buf_append(out, hdrs[i].value, hdrs[i].value_len);
    if (rv == WR_OK) rv = wr_buf_append(out, "\r\n", 2);
  }
  if (rv == WR_OK) rv = wr_buf_append(out, "\r\n", 2);
  return rv;
}

int wr_http1_write_response_head(wr_buf *out, int status, const char *reason,
                                 const wr_http_header *hdrs, size_t n) {
  size_t old = out->len;
  int rv;
  if (status < 100 || status > 999) return WR_ERR_INVAL;
  if (!reason) reason = wr_http1_reason(status);
  if (!text_ok(reason, strlen(reason)) || !fields_ok(hdrs, n)) return WR_ERR_INVAL;
  rv = wr_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
  if (rv == WR_OK) rv = append_fields(out, hdrs, n);
  if (rv != WR_OK) out->len = old;
  return rv;
}

int wr_http1_write_request_head(wr_buf *out, const char *method, size_t method_len,
                                const char *target, size_t target_len,
                                const wr_http_header *hdrs, size_t n) {
  size_t old = out->len;
  int rv;
  if (!wr_httpmeta_is_token(method, method_len) || target_len == 0 || !fields_ok(hdrs, n))
    return WR_ERR_INVAL;
  for (size_t i = 0; i < target_len; i++)
    if ((unsigned char)target[i] <= 0x20 || target[i] == 0x7f) return WR_ERR_INVAL;
  rv = wr_buf_append(out, method, method_len);
  if (rv == WR_OK) rv = wr_buf_append(out, " ", 1);
  if (rv == WR_OK) rv = wr_buf_append(out, target, target_len);
  if (rv == WR_OK) rv = wr_buf_append(out, " HTTP/1.1\r\n", 11);
  if (rv == WR_OK) rv = append_fields(out, hdrs, n);
  if (rv != WR_OK) out->len = old;
  return rv;
}

size_t wr_http1_chunk_header(uint64_t n, char *out) {
  char tmp[16], d[2];
  size_t k = 0, o = 0;
  do {
    wr_hex_byte((uint8_t)(n & 15), 0, d);
    tmp[k++] = d[1];
    n >>= 4;
  } while (n);
  while (k) out[o++] = tmp[--k];
  out[o++] = '\r';
  out[o++] = '\n';
  out[o] = '\0';
  return o;
}

const char *wr_http1_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 103: return "Early Hints";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 203: return "Non-Authoritative Information";
  case 204: return "No Content";
  case 205: return "Reset Content";
  case 206: return "Partial Content";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 425: return "Too Early";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}
