/* Shared helpers for the cmocka unit suites. Each tests/unit/test_*.c is its
 * own binary; run them from the repository root (scripts/run-unit.sh does). */
#ifndef WR_UNIT_H
#define WR_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/mem.h"

/* Reads tests/vectors/<name> (e.g. "quic/http-get.from-edge.bin"); fails the
 * test if it cannot. The caller frees the result. */
uint8_t *unit_read_vector(const char *name, size_t *len);
/* Decodes a hex string (whitespace ignored); caller frees. */
uint8_t *unit_hex(const char *hex, size_t *len);

/* An allocator that fails the Nth allocation (0-based) and counts calls, for
 * "fail every allocation in turn" loops (STYLE.md 1.6). */
typedef struct unit_failmem {
  wr_mem mem;
  long fail_at;   /* -1: never fail */
  long calls;
  long live;      /* allocations not yet freed */
} unit_failmem;
void unit_failmem_init(unit_failmem *fm, long fail_at);

/* A temporary directory holding a test PKI: ca.pem, other-ca.pem (an
 * unrelated CA, for "unknown authority" cases), and cert.pem + key.pem, a
 * leaf signed by ca.pem with common name |cn|, the DNS names |dns| and the
 * address 127.0.0.1. Paths are absolute. Returns 0, or -1 after printing
 * why. */
typedef struct unit_pki {
  char dir[64], ca[128], other_ca[128], cert[128], key[128];
} unit_pki;
int unit_pki_make(unit_pki *p, const char *prefix, const char *cn, const char *const *dns,
                  size_t ndns);
/* Removes the four files; the directory goes too if nothing else is left. */
void unit_pki_remove(unit_pki *p);

/* "/tmp/<prefix>-XXXXXX" made with mkdtemp into |dir| (|size| bytes).
 * Returns |dir|, or NULL (errno set) if it cannot. */
char *unit_tmpdir(char *dir, size_t size, const char *prefix);
/* Removes |path| and, if it is a directory, everything below it (without
 * following links), like `rm -rf`. Returns 0, or -1 if something is left. */
int unit_rm_rf(const char *path);
/* Writes |text| to |path| (fopen "w": created with the umask's mode, or
 * truncated); fails the test if it cannot. */
void unit_write_file(const char *path, const char *text);

/* A new store for a test: a temporary directory (unit_tmpdir) in |dir| and
 * its warren.db, created, in |path| (NULL: not wanted). Returns 0 with *s
 * open, or -1 after printing why. unit_rm_rf(dir) removes it all after
 * wr_store_close. */
struct wr_store;
int unit_store_new(const char *prefix, char *dir, size_t dirsize, char *path, size_t pathsize,
                   struct wr_store **s);
/* Makes unit_store_new create each store as a fresh database on the
 * PostgreSQL server of |dsn| (a "key=value" connection string, as
 * tests/tools/pg_tmp.sh prints) instead of a SQLite file; |path| is then
 * that database's connection string. NULL goes back to SQLite. Without a
 * call, the environment's WARREN_TEST_PG_ALL (a connection string) does the
 * same for every suite. */
void unit_store_use_pg(const char *dsn);
/* A fresh, empty database on that server: its connection string in |out|.
 * Returns 0, or -1 after printing why. */
int unit_pg_new_db(char *out, size_t size);
/* Runs |sql| (no parameters) on the database of |conninfo|; 0 on success. */
int unit_pg_exec(const char *conninfo, const char *sql);

#endif
