/* The built-in hello_world page; see hello_world.h. */
#include "connector/hello_world.h"

#include <string.h>

#include "lib/err.h"

static int put(wr_buf *out, const char *s) { return wr_buf_append_str(out, s); }

/* Appends |s| with the five HTML special characters escaped and control
 * bytes (other than TAB) shown as U+FFFD, so request bytes can never break
 * out of the markup. */
static int put_escaped(wr_buf *out, const char *s, size_t len) {
  size_t i, run = 0;
  int rv;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    const char *rep = NULL;
    switch (ch) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\'': rep = "&#39;"; break;
    default:
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f) rep = "&#xFFFD;";
      break;
    }
    if (!rep) continue;
    if (i > run && (rv = wr_buf_append(out, s + run, i - run)) != WR_OK) return rv;
    if ((rv = put(out, rep)) != WR_OK) return rv;
    run = i + 1;
  }
  if (len > run) return wr_buf_append(out, s + run, len - run);
  return WR_OK;
}

static int put_row(wr_buf *out, const char *name, size_t name_len, const char *val,
                   size_t val_len) {
  int rv;
  if ((rv = put(out, "      <tr><th>")) != WR_OK) return rv;
  if ((rv = put_escaped(out, name, name_len)) != WR_OK) return rv;
  if ((rv = put(out, "</th><td>")) != WR_OK) return rv;
  if ((rv = put_escaped(out, val, val_len)) != WR_OK) return rv;
  return put(out, "</td></tr>\n");
}

static const char page_head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "  <meta charset=\"utf-8\">\n"
    "  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "  <title>Hello from Warren</title>\n"
    "  <style>\n"
    "    body { font-family: system-ui, -apple-system, sans-serif; margin: 0;\n"
    "           background: #f6f7f9; color: #1d1f23; }\n"
    "    main { max-width: 52rem; margin: 3rem auto; padding: 2rem 2.5rem;\n"
    "           background: #fff; border-radius: 12px;\n"
    "           box-shadow: 0 2px 12px rgba(0,0,0,.08); }\n"
    "    h1 { margin-top: 0; color: #f38020; }\n"
    "    h2 { font-size: 1.1rem; margin-top: 2rem; }\n"
    "    table { border-collapse: collapse; width: 100%; font-size: .92rem; }\n"
    "    th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e6e8eb;\n"
    "             vertical-align: top; word-break: break-all; }\n"
    "    th { width: 30%; font-weight: 600; }\n"
    "    footer { margin-top: 2rem; font-size: .8rem; color: #6b7280; }\n"
    "  </style>\n"
    "</head>\n"
    "<body>\n"
    "<main>\n"
    "  <h1>Congrats! You created a tunnel!</h1>\n"
    "  <p>This page comes from the built-in <code>hello_world</code> origin of the\n"
    "  Warren connector: the request went through the edge and the tunnel, and the\n"
    "  connector answered it. Point an ingress rule at your own service\n"
    "  (for example <code>service: http://localhost:8080</code>) to serve it instead.</p>\n";

int wr_hello_world_page(const wr_hello_request *req, wr_buf *out) {
  const char *version = req->version ? req->version : WR_VERSION;
  int rv;
  size_t i;
  if ((rv = put(out, page_head)) != WR_OK) return rv;
  if ((rv = put(out, "  <h2>Request details</h2>\n  <table>\n")) != WR_OK) return rv;
  if ((rv = put_row(out, "Method", 6, req->method ? req->method : "", req->method_len)) != WR_OK)
    return rv;
  if ((rv = put_row(out, "Host", 4, req->host ? req->host : "", req->host ? req->host_len : 0)) !=
      WR_OK)
    return rv;
  if ((rv = put_row(out, "Path", 4, req->path ? req->path : "/", req->path ? req->path_len : 1)) !=
      WR_OK)
    return rv;
  if ((rv = put(out, "  </table>\n  <h2>Headers</h2>\n  <table>\n")) != WR_OK) return rv;
  for (i = 0; i < req->nheaders; i++) {
    const wr_http_header *h = &req->headers[i];
    if ((rv = put_row(out, h->name, h->name_len, h->value, h->value_len)) != WR_OK) return rv;
  }
  if (req->nheaders == 0 && (rv = put(out, "      <tr><td>(none)</td></tr>\n")) != WR_OK)
    return rv;
  if ((rv = put(out, "  </table>\n  <footer>warren ")) != WR_OK) return rv;
  if ((rv = put_escaped(out, version, strlen(version))) != WR_OK) return rv;
  return put(out, "</footer>\n</main>\n</body>\n</html>\n");
}
