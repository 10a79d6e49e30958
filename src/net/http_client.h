/* A small HTTP/1.1 client for one-shot calls from command-line tools: the
 * management commands (`warren tunnel create|list|...`) and the login poll.
 * Each wr_http_do() call runs its own libuv loop to completion, so it blocks
 * the calling thread: never call it from a thread that runs another loop.
 *
 * Built on net/conn.h (TCP with optional TLS, Go-style dial errors) and
 * proto/http1.h (strict response parsing, chunked decoding). One request
 * per connection ("Connection: close"); no redirects, no proxies, no
 * compression (no Accept-Encoding is sent), no HTTP/2.
 *
 * Bounds: the response head is limited by the HTTP/1 parser (32 KiB, 100
 * fields), the body by |max_body|; the whole exchange (resolve, connect,
 * TLS, request, response) by |timeout_ms|, like Go's http.Client.Timeout.
 *
 * https:// verifies the server against |ca_file| or, when it is NULL, the
 * system trust store; as with Go on Linux, $SSL_CERT_FILE replaces the
 * system store when set. The name checked is the URL's host.
 *
 * Errors are reported as Go's net/http client reports them, so messages
 * match cloudflared's:
 *   Get "http://127.0.0.1:1/x": dial tcp 127.0.0.1:1: connect: connection refused
 *   Get "http://h/x": context deadline exceeded (Client.Timeout exceeded while awaiting headers)
 *   Post "https://h/x": tls: certificate signed by unknown authority
 *   Get "http://h/x": EOF */
#ifndef WR_NET_HTTP_CLIENT_H
#define WR_NET_HTTP_CLIENT_H
#include <stddef.h>
#include <stdint.h>

#include "proto/httpmeta.h" /* wr_http_header */

#define WR_HTTP_CLIENT_DEFAULT_TIMEOUT_MS 15000u
#define WR_HTTP_CLIENT_DEFAULT_MAX_BODY (8u << 20)

typedef struct wr_http_request {
  const char *method;            /* a token: "GET", "POST", ... */
  const char *url;               /* http:// or https://, path and query already escaped */
  const wr_http_header *headers; /* extra fields; Host, Content-Length and
                                  * Connection are set by the client and
                                  * must not be given */
  size_t nheaders;
  const uint8_t *body;           /* NULL: no body (POST/PUT/PATCH still get
                                  * "Content-Length: 0", as Go sends) */
  size_t body_len;
  uint64_t timeout_ms;           /* 0: WR_HTTP_CLIENT_DEFAULT_TIMEOUT_MS */
  size_t max_body;               /* 0: WR_HTTP_CLIENT_DEFAULT_MAX_BODY */
  const char *ca_file;           /* https trust anchors (PEM); NULL: system */
  const char *connect_to;        /* "host:port" (IPv6 in brackets) to connect to
                                  * instead of the URL's, like curl's
                                  * --connect-to: Host, SNI and the name
                                  * verified stay the URL's. NULL: the URL's */
} wr_http_request;

typedef struct wr_http_response {
  int status;                    /* 100..999, never 1xx (those are skipped) */
  wr_http_header *headers;       /* names and values: NUL-terminated C strings in |head| */
  size_t nheaders;
  uint8_t *body;                 /* NUL-terminated (not counted); never NULL on success */
  size_t body_len;
  char *head;                    /* private: storage of the fields */
} wr_http_response;

/* Performs the request and fills |resp| (which the caller frees with
 * wr_http_response_free, also after an error). Any HTTP status is WR_OK.
 * Returns:
 *   WR_OK
 *   WR_ERR_INVAL  bad request: unparsable or unsupported URL, method not a
 *                 token, a forbidden or invalid field
 *   WR_ERR_IO     transport failure: resolve, connect, reset, early EOF
 *   WR_ERR_CRYPTO TLS failure (handshake, verification, trust file)
 *   WR_ERR_PROTO  the server's response is not valid HTTP/1.x
 *   WR_ERR_LIMIT  response head or body larger than allowed
 *   WR_AGAIN      never; a timeout is WR_ERR_IO with the Go text above
 * |err| gets the Go-style message on error. */
int wr_http_do(const wr_http_request *req, wr_http_response *resp, char *err, size_t errlen);
void wr_http_response_free(wr_http_response *resp);
/* The value of the last field |name| (any case), NUL-terminated, or NULL. */
const char *wr_http_response_header(const wr_http_response *resp, const char *name);

/* ---- URLs ------------------------------------------------------------------- */

typedef struct wr_url {
  int https;         /* 0: http, 1: https */
  char host[256];    /* name or address, without IPv6 brackets */
  uint16_t port;     /* explicit or the scheme's default */
  char authority[272]; /* host[:port] as written in the URL (the Host field) */
  const char *path;  /* points into the parsed string: "/a/b?q" ("" if absent) */
} wr_url;

/* Parses an absolute http(s) URL (no user info). Returns WR_OK or
 * WR_ERR_INVAL. |out->path| points into |url|. */
int wr_url_parse(const char *url, wr_url *out);

/* Percent-encoding as Go's net/url does it. Bytes outside [A-Za-z0-9-_.~]
 * become %XX (upper-case hex) except:
 *   WR_URL_QUERY    (url.QueryEscape): a space becomes '+';
 *   WR_URL_SEGMENT  (url.PathEscape): "$&+:=@" stay;
 *   WR_URL_PATH     (how url.URL.String() escapes a Path): "$&+,/:;=@" stay.
 * Writes the NUL-terminated result to |out| and returns its length, or
 * WR_ERR_LIMIT if |cap| is too small. */
typedef enum wr_url_escape_mode { WR_URL_QUERY, WR_URL_SEGMENT, WR_URL_PATH } wr_url_escape_mode;
int wr_url_escape(const char *s, wr_url_escape_mode mode, char *out, size_t cap);

#endif
