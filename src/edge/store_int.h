/* Internals of the store shared by its source files (edge/store.h is
 * the interface; nothing outside src/edge/store*.c includes this header).
 *
 * Who owns what:
 *   store.c           the handle: open/close, the schema and its migrations,
 *                     errors (serr/dberr), the statement helpers (prepf,
 *                     execf, step_row), transactions, ids, text checks,
 *                     result arrays, wr_store_ping
 *   store_accounts.c  accounts, users, passwords, API tokens
 *   store_tunnels.c   tunnel names, tunnels, tunnel queries, connections
 *   store_routes.c    DNS routes (hostname -> tunnel), CIDR helpers, virtual
 *                     networks, IP routes
 *   store_dns.c       DNS names, zones, the zone of a hostname, DNS record
 *                     expiry (edge/dns.h)
 *   store_devices.c   WireGuard devices: address pools, policies (their
 *                     text form), revocation, the edge's statistics
 *   store_audit.c     audit rows (written inside the caller's transaction)
 *                     and audit queries
 *
 * Functions here are wr__store_*: cross-file internals, not API. Errors
 * follow store.h: WR_OK or a negative WR_ERR_* with the message left in
 * s->errmsg (wr_store_errmsg). */
#ifndef WR_EDGE_STORE_INT_H
#define WR_EDGE_STORE_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "edge/db.h"
#include "edge/store.h"

struct wr_store {
  wr_db *db; /* SQLite or PostgreSQL (edge/db.h) */
  int64_t (*now)(void *user);
  void *now_user;
  char errmsg[WR_STORE_ERRMSG_MAX];
  int unavailable; /* the last error was the database being unreachable */
};

/* --- errors (store.c) ----------------------------------------------------- */

/* Formats the store's message and returns |rv|. */
__attribute__((format(printf, 3, 4))) int wr__store_serr(wr_store *s, int rv, const char *fmt, ...);
/* The connection's last database error as our code and message ("what: ..."). */
int wr__store_dberr(wr_store *s, const char *what);
/* |in| bounded and with control bytes shown as '?', for messages. */
const char *wr__store_quote(const char *in, char *buf, size_t size);

/* --- small helpers (store.c) ---------------------------------------------- */

int64_t wr__store_now(wr_store *s);
int wr__store_new_hex_id(wr_store *s, char out[WR_STORE_ID_LEN + 1]);
int wr__store_new_uuid(wr_store *s, char out[WR_STORE_UUID_LEN + 1]);
/* Canonical lower-case form of a UUID argument, or WR_ERR_INVAL. */
int wr__store_canon_uuid(wr_store *s, const char *in, char out[WR_STORE_UUID_LEN + 1],
                         const char *what);
int wr__store_utf8_ok(const char *str, size_t len);
int wr__store_has_ctl(const char *str);
/* 1..max bytes of UTF-8 without control characters. */
int wr__store_check_text(wr_store *s, const char *what, const char *v, size_t max);
void wr__store_copy_str(char *dst, size_t size, const char *src);
void wr__store_col_copy(wr_db_stmt *st, int i, char *dst, size_t size);
/* Makes room for one more element (amortised doubling). */
void *wr__store_grow(void *arr, size_t n, size_t *cap, size_t size);
/* Appends a zeroed element to a result array and evaluates to its address. */
#define PUSH(arr, n, cap)                                                                          \
  ((arr) = wr__store_grow((arr), (n), &(cap), sizeof(*(arr))),                                    \
   memset(&(arr)[(n)], 0, sizeof(*(arr))), &(arr)[(n)++])
/* Fills |row| (zeroed) from the current row of |st|. */
typedef void (*wr__store_row_fn)(wr_db_stmt *st, void *row);
/* How wr__store_read_cols stores one result column in a row's field. */
typedef enum wr__store_col_kind {
  WR__COL_TEXT,    /* char[]: the text, truncated to the field ("" for NULL) */
  WR__COL_INT64,   /* int64_t (or uint64_t, the same bits) */
  WR__COL_INT,     /* int: (int) of the integer */
  WR__COL_UINT,    /* unsigned: (unsigned) of the integer */
  WR__COL_BOOL,    /* int: 1 if (int) of the integer is not 0, else 0 */
  WR__COL_NOTNULL, /* int: 1 if the column is not NULL, else 0 */
  WR__COL_SKIP,    /* the reader handles this column itself */
} wr__store_col_kind;
/* Column i of a row table: its kind and the field (offset, size) it fills. */
typedef struct wr__store_col {
  wr__store_col_kind kind;
  size_t off, size;
} wr__store_col;
/* Whether a field of |size| bytes can hold a column of |kind|: the numeric
 * kinds are written with memcpy of their own width, so a table that names a
 * field of another width does not compile (the array size below goes
 * negative) instead of writing past it. */
#define WR__COL_FITS(kind, size)                                                                   \
  ((kind) == WR__COL_TEXT || (kind) == WR__COL_SKIP ||                                             \
   ((kind) == WR__COL_INT64 ? (size) == sizeof(int64_t)                                            \
                            : (kind) == WR__COL_UINT ? (size) == sizeof(unsigned) : (size) == sizeof(int)))
#define WR__COL(kind, type, field)                                                                 \
  {(kind),                                                                                         \
   offsetof(type, field) +                                                                         \
       0 * sizeof(char[WR__COL_FITS((kind), sizeof(((type *)0)->field)) ? 1 : -1]),                \
   sizeof(((type *)0)->field)}
/* Sets the fields of |row| named by |cols| (|cols[i]| for result column i)
 * from the current row of |st|; other fields keep their values. Cannot
 * fail. */
void wr__store_read_cols(wr_db_stmt *st, const wr__store_col *cols, size_t ncols, void *row);
/* A wr__store_row_fn |name| that reads the static table |cols| (no more). */
#define WR__STORE_ROW_READER(name, cols)                                                           \
  static void name(wr_db_stmt *st, void *row) {                                                    \
    wr__store_read_cols(st, (cols), sizeof(cols) / sizeof((cols)[0]), row);                        \
  }
/* A wr__store_row_fn |name| that clears the whole row (a |type|) first and
 * then reads the static table |cols|: for readers that wr__store_one hands
 * the caller's struct. Has external linkage unless written after static. */
#define WR__STORE_ROW_READER_CLEARED(name, type, cols)                                             \
  void name(wr_db_stmt *st, void *row) {                                                           \
    memset(row, 0, sizeof(type));                                                                  \
    wr__store_read_cols(st, (cols), sizeof(cols) / sizeof((cols)[0]), row);                        \
  }
/* The list queries' loop: steps |st| to its end, each row read by |read|
 * into a new element of |size| bytes, then finalizes |st|. Returns the
 * array (caller frees; NULL for no rows) with *n its length and *rv WR_OK;
 * on a database error NULL, *n 0 and *rv the code of wr__store_dberr(s,
 * |what|). */
void *wr__store_rows(wr_store *s, wr_db_stmt *st, const char *what, size_t size,
                     wr__store_row_fn read, size_t *n, int *rv);

/* --- statements and transactions (store.c) -------------------------------- */

/* Prepares |sql| and binds |fmt| ('s' text or NULL, 'i' int64, 'b' blob +
 * size_t). On failure *st is NULL. */
int wr__store_prepf(wr_store *s, wr_db_stmt **st, const char *sql, const char *fmt, ...);
/* A list query: wr__store_prepf's |sql| and |fmt|, then wr__store_rows.
 * Returns the array (NULL on failure or for no rows) with *n its length
 * and *rv WR_OK or the error (its message in the store). */
void *wr__store_list(wr_store *s, int *rv, size_t *n, const char *what, size_t size,
                     wr__store_row_fn read, const char *sql, const char *fmt, ...);
/* A one-row lookup: wr__store_prepf's |sql| and |fmt|, the first row read
 * into |out| by |read| (NULL: not read). Returns WR_OK, WR_ERR_NOTFOUND (with the message
 * |missing|, a literal format with one %s for |key| quoted, or none when
 * |missing| is NULL) or the error of preparing or stepping (|what| in its
 * message). */
int wr__store_one(wr_store *s, const char *what, wr__store_row_fn read, void *out,
                  const char *missing, const char *key, const char *sql, const char *fmt, ...);
/* The lookup of one row by a UUID argument: |id| in canonical form
 * (wr__store_canon_uuid, |id_what| naming it) as the only parameter of
 * |sql|, then as wr__store_one with |id| as the key of |missing|. */
int wr__store_get_uuid(wr_store *s, const char *id, const char *id_what, const char *what,
                       wr__store_row_fn read, void *out, const char *missing, const char *sql);
/* A query that always returns one row (a count, an aggregate, a function
 * call): wr__store_prepf's |sql| and |fmt|, the row read into |out| by
 * |read| (NULL: not read). Returns WR_OK, WR_ERR_STORE with the message
 * "|none|: no result" (|none| NULL: |what|) when no row came back, or the
 * error of preparing or stepping (|what| in its message). */
int wr__store_agg(wr_store *s, const char *what, const char *none, wr__store_row_fn read,
                  void *out, const char *sql, const char *fmt, ...);
/* A wr__store_row_fn: the integer of column 0 into the int64_t at |n|. */
void wr__store_read_int64(wr_db_stmt *st, void *n);
/* Runs a statement that returns no rows; |changes| may be NULL. */
int wr__store_execf(wr_store *s, int *changes, const char *what, const char *sql, const char *fmt,
                    ...);
/* WR_OK with a row current, WR_ERR_NOTFOUND (message left to the caller) or
 * WR_ERR_STORE. */
int wr__store_step_row(wr_store *s, wr_db_stmt *st, const char *what);
/* Lock spaces of wr__store_xact_lock ("wrn", "wrc" in ASCII). */
#define WR__STORE_LOCK_ACCOUNT 7828078
#define WR__STORE_LOCK_TUNNEL_CONNS 7828067
/* Waits, inside the caller's transaction, for the other transactions that
 * hold lock (|space|, |key|) (case-insensitive) and holds it until the
 * transaction ends: PostgreSQL's transaction-scoped advisory lock. A no-op
 * on SQLite, whose BEGIN IMMEDIATE already serialises every writer. WR_OK
 * or WR_ERR_STORE (|what| names the step). */
int wr__store_xact_lock(wr_store *s, int space, const char *key, const char *what);
/* A per-account limit, inside the caller's transaction, so that it holds
 * for writers on several edges: waits for the account's other limited
 * writers (PostgreSQL: a transaction-scoped advisory lock per account;
 * SQLite's BEGIN IMMEDIATE already serialises every writer), then counts
 * with |count_sql| (one parameter: the account id) and returns
 * WR_ERR_LIMIT ("this account already has N |what|, the limit of this
 * edge") when the count is at |max| or above; WR_OK; WR_ERR_STORE. |max|
 * 0: no limit (and no lock). */
int wr__store_account_cap(wr_store *s, const char *account_id, size_t max, const char *count_sql,
                          const char *what);
/* BEGIN (IMMEDIATE on SQLite). */
int wr__store_tx_begin(wr_store *s);
/* Commits if |rv| is WR_OK, rolls back otherwise; returns the final result. */
int wr__store_tx_end(wr_store *s, int rv);

/* --- names (store_tunnels.c) ---------------------------------------------- */

/* wr_store_check_tunnel_name for the name of a tunnel, a virtual network
 * or a device: WR_OK or WR_ERR_INVAL with the reason, after "|what|: "
 * unless |what| is NULL. */
int wr__store_check_name(wr_store *s, const char *what, const char *name);

/* Tunnel |id|, not deleted and, unless |account_id| is NULL, of that
 * account: WR_OK, WR_ERR_NOTFOUND (none, or another account's),
 * WR_ERR_INVAL (deleted, or |id| not a UUID) or WR_ERR_STORE. */
int wr__store_tunnel_live(wr_store *s, const char *account_id, const char *id, wr_tunnel *out);

/* --- audit (store_audit.c) ------------------------------------------------ */

/* Writes one audit row inside the caller's transaction; takes ownership of
 * |detail| (NULL: jansson could not build it). */
int wr__store_audit_insert(wr_store *s, const char *actor, const char *account_id,
                           const char *action, const char *ttype, const char *tid, json_t *detail);

/* --- routes (store_routes.c) --------------------------------------------- */

/* Fills |r| from columns 0..7 of a route query (ROUTE_SELECT's order: id,
 * account, zone id, zone name, hostname, tunnel id, tunnel name, created). */
void wr__store_read_route(wr_db_stmt *st, void *row); /* a wr_route */

/* Virtual network |id|, not deleted and, unless |account_id| is NULL, of
 * that account: WR_OK, WR_ERR_NOTFOUND (none, or another account's),
 * WR_ERR_INVAL (deleted, or |id| not a UUID) or WR_ERR_STORE. */
int wr__store_vnet_live(wr_store *s, const char *account_id, const char *id, wr_vnet *out);

/* --- zones (store_dns.c) -------------------------------------------------- */

/* 1 if |host| is a proper subdomain of |zone|. */
int wr__store_host_in_zone(const char *host, const char *zone);
/* The most specific zone of the edge containing |host|; |apex| is set when
 * |host| is the zone name. WR_ERR_NOTFOUND without a message. */
int wr__store_zone_for_host(wr_store *s, const char *host, wr_zone *out, int *apex);
/* The account's zone names, comma separated, for messages. */
void wr__store_account_zone_names(wr_store *s, const char *account_id, char *buf, size_t size);

#endif
