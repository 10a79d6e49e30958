/* Internals of the ingress module (connector/ingress.h) shared by its files:
 * ingress.c (rules, services, origin settings) and ingress_regex.c (path
 * patterns). Not an interface for other modules. */
#ifndef WR_CONNECTOR_INGRESS_INT_H
#define WR_CONNECTOR_INGRESS_INT_H
#include <stddef.h>

/* Translates the Go RE2 path pattern |re| into POSIX ERE for
 * regcomp(REG_EXTENDED | REG_NOSUB [| REG_ICASE]) in |out| (|cap| bytes,
 * NUL-terminated; 12 per input byte plus 16 is always enough for the
 * expansions). Sets *icase for a leading "(?i)". Returns 0, or -1 with
 * *why naming what is refused (an RE2-only construct, a backreference, a
 * malformed or too large pattern). */
int wr__ingress_regex_translate(const char *re, char *out, size_t cap, int *icase,
                                const char **why);

#endif
