#include "lib/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *wr_strerror(int rv) {
  switch (rv) {
  case WR_OK: return "success";
  case WR_AGAIN: return "try again";
  case WR_ERR_NOMEM: return "out of memory";
  case WR_ERR_INVAL: return "invalid argument";
  case WR_ERR_PROTO: return "protocol error";
  case WR_ERR_BOUNDS: return "out of bounds";
  case WR_ERR_LIMIT: return "limit exceeded";
  case WR_ERR_TRUNC: return "truncated input";
  case WR_ERR_IO: return "I/O error";
  case WR_ERR_NOTFOUND: return "not found";
  case WR_ERR_EXISTS: return "already exists";
  case WR_ERR_CONFIG: return "configuration error";
  case WR_ERR_DENIED: return "permission denied";
  case WR_ERR_STORE: return "store error";
  case WR_ERR_CRYPTO: return "cryptographic error";
  case WR_ERR_UNSUPPORTED: return "not supported";
  case WR_ERR_INTERNAL: return "internal error";
  default: return "unknown error";
  }
}

void wr_set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}
