/* Warren's one integer error space (STYLE.md 1.4).
 * 0 is success, WR_AGAIN means "not an error, try again later", every other
 * negative value is an error. Functions document which codes they return. */
#ifndef WR_ERR_H
#define WR_ERR_H

#define WR_OK 0
#define WR_AGAIN (-1)         /* need more input / output space; re-arm */
#define WR_ERR_NOMEM (-2)     /* allocation failed */
#define WR_ERR_INVAL (-3)     /* invalid argument from the caller */
#define WR_ERR_PROTO (-4)     /* peer sent bytes that break the protocol */
#define WR_ERR_BOUNDS (-5)    /* a pointer or length points outside its buffer */
#define WR_ERR_LIMIT (-6)     /* a configured limit (size, depth, count) was hit */
#define WR_ERR_TRUNC (-7)     /* input ended early */
#define WR_ERR_IO (-8)        /* a system call failed; errno has details */
#define WR_ERR_NOTFOUND (-9)  /* the thing asked for does not exist */
#define WR_ERR_EXISTS (-10)   /* the thing to create already exists */
#define WR_ERR_CONFIG (-11)   /* configuration error; the message says where */
#define WR_ERR_DENIED (-12)   /* authentication or permission refused */
#define WR_ERR_STORE (-13)    /* database error */
#define WR_ERR_CRYPTO (-14)   /* TLS / certificate / key operation failed */
#define WR_ERR_UNSUPPORTED (-15) /* valid but not supported by this build */
#define WR_ERR_INTERNAL (-16) /* a bug: an invariant did not hold */

/* Returns a short static English description of |rv|. */
const char *wr_strerror(int rv);

/* Fatal errors end the connection (or process) that hit them; WR_AGAIN and
 * WR_OK are not fatal. */
static inline int wr_err_is_fatal(int rv) { return rv < WR_AGAIN; }

#include <stddef.h>

/* Formats a reason into the caller's buffer |err| of |errlen| bytes
 * (truncated to fit; nothing when |err| is NULL or |errlen| 0). Never
 * fails; callable from anywhere, callbacks included. */
void wr_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
