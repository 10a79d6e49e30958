/* cloudflared's config.yml (protocol.md 8.4), read with libyaml into a small
 * tree that remembers the line of every node, so every error and warning can
 * say "config.yml:7: ingress[1].service: ..." (file as the user named it,
 * 1-based line, key path, reason).
 *
 * The loader only understands the document's shape. It splits the top level
 * into
 *  - structured keys kept as trees for their owners: `ingress`,
 *    `warp-routing`, `originRequest` (see connector/ingress.h), and `tunnel`;
 *  - every other key, which is a command-line flag name (urfave/cli altsrc):
 *    wr_config_apply_opts() merges those into a wr_opts bag underneath the
 *    command line and the environment, or warns that the key is unknown.
 *
 * The same tree can be built from JSON (`ingress validate --json`, remote
 * configuration), so one validator serves both; JSON nodes have line 0.
 *
 * Input is bounded: WR_CONFIG_MAX_FILE bytes, WR_CONFIG_MAX_DEPTH levels of
 * nesting, WR_CONFIG_MAX_NODES nodes counting every alias expansion (so
 * "billion laughs" documents fail early), 10000 items in a list and 1000
 * keys in a map. Scalars containing NUL are refused,
 * which lets every consumer use plain C strings.
 *
 * Memory: out-of-memory aborts (the policy outside the codecs, mem.h). */
#ifndef WR_CONFIG_H
#define WR_CONFIG_H
#include <stddef.h>

#include "lib/opts.h"

#define WR_CONFIG_MAX_FILE (1u << 20)
#define WR_CONFIG_MAX_DEPTH 64
#define WR_CONFIG_MAX_NODES 100000

/* --- a bump allocator for trees that die together ----------------------- */

typedef struct wr_arena_chunk wr_arena_chunk;
typedef struct wr_arena {
  wr_arena_chunk *head;
} wr_arena;

/* Zeroed memory that lives until wr_arena_free(); never NULL (aborts). */
void *wr_arena_alloc(wr_arena *a, size_t n);
char *wr_arena_strndup(wr_arena *a, const char *s, size_t len);
char *wr_arena_strdup(wr_arena *a, const char *s);
void wr_arena_free(wr_arena *a);

/* --- the document tree -------------------------------------------------- */

typedef enum wr_ynode_kind {
  WR_YNODE_NULL = 0, /* `~`, `null`, an empty value, or JSON null */
  WR_YNODE_SCALAR,   /* everything else that is not a collection */
  WR_YNODE_SEQ,
  WR_YNODE_MAP
} wr_ynode_kind;

typedef struct wr_ynode wr_ynode;
typedef struct wr_ypair {
  const wr_ynode *key; /* always a scalar */
  const wr_ynode *val;
} wr_ypair;

struct wr_ynode {
  wr_ynode_kind kind;
  unsigned line;  /* 1-based; 0 when the tree came from JSON */
  int plain;      /* scalar was unquoted (YAML plain style, JSON number/bool) */
  const char *str; /* scalar text, NUL-terminated (never NULL for scalars) */
  size_t len;
  size_t n;                    /* items of a sequence, pairs of a map */
  const wr_ynode *const *items; /* sequence */
  const wr_ypair *pairs;       /* map, in document order; `<<` merges applied */
  size_t weight;               /* nodes in this subtree (bounds DAG walks) */
};

/* The value of |key| in map |map| (NULL if |map| is not a map or lacks it).
 * With |icase| the key compares case-insensitively (Go's encoding/json). */
const wr_ynode *wr_ynode_get(const wr_ynode *map, const char *key, int icase);
/* Human name of a node's kind for messages: "a string", "a list", "a map"... */
const char *wr_ynode_kind_name(const wr_ynode *n);
/* YAML 1.1/1.2 booleans as yaml.v3 accepts them into a bool (true/false in
 * any case, yes/no, on/off, y/n). Returns 0 or WR_ERR_INVAL. */
int wr_ynode_bool(const wr_ynode *n, int *out);

/* --- loaded configuration ----------------------------------------------- */

typedef struct wr_config {
  const char *source;  /* file name as given, or e.g. "--json" */
  int is_json;         /* keys then match case-insensitively, as in Go */
  const wr_ynode *root;           /* a map, or NULL for an empty document */
  const char *tunnel;             /* `tunnel:` value or NULL */
  const wr_ynode *ingress;        /* `ingress:` node or NULL */
  const wr_ynode *warp_routing;   /* `warp-routing:` node or NULL */
  const wr_ynode *origin_request; /* top-level `originRequest:` or NULL */
  char **warnings;                /* "file:line: message" texts, in order */
  size_t n_warnings;
  wr_arena arena;
} wr_config;

/* Parses YAML text (at most WR_CONFIG_MAX_FILE bytes) into a new config.
 * |source| names the input in messages. Only the first document counts, as
 * with cloudflared. Returns 0, or WR_ERR_CONFIG (syntax, limits, a non-map
 * root, a bad `tunnel:`; *out stays NULL) with the reason in |err| as
 * "source:line: reason". Never logs. */
int wr_config_parse(const char *data, size_t len, const char *source, wr_config **out,
                    char *err, size_t errlen);
/* The same for a JSON object (`{"ingress":[...], "originRequest":{...},
 * "warp-routing":{...}}`); top-level key names match case-insensitively and
 * "warpRouting" is accepted for "warp-routing". */
int wr_config_parse_json(const char *data, size_t len, const char *source, wr_config **out,
                         char *err, size_t errlen);
/* Reads |path| and parses it with |path| as the source name. Returns 0,
 * WR_ERR_IO (cannot read: "path: No such file or directory"), WR_ERR_LIMIT
 * (file too big) or WR_ERR_CONFIG. */
int wr_config_load(const char *path, wr_config **out, char *err, size_t errlen);
void wr_config_free(wr_config *cfg);

/* The first existing config.yml / config.yaml in cloudflared's default
 * directories (credentials.h wr_default_config_dirs; for each directory,
 * config.yml before config.yaml). Returns a new string, or NULL. */
char *wr_config_find_default(void);

/* Merges the non-structured top-level keys into |opts| with WR_SRC_CONFIG, so
 * command-line and environment values still win. Lists (edge, tag,
 * features...) append every item; booleans become "true"/"false"; other
 * scalars are passed as written after checking them against the flag's kind.
 * Keys that are no flag of the current command get a warning appended to
 * cfg->warnings. Returns 0, or WR_ERR_CONFIG for a value of the wrong shape
 * or kind ("config.yml:4: retries: expected an integer, found \"x\""). */
int wr_config_apply_opts(wr_config *cfg, wr_opts *opts, char *err, size_t errlen);

/* What most commands want: loads --config (an error if it cannot be read)
 * or else the default file, applies it to |opts| and logs its warnings.
 * Returns 0 with *out set, WR_ERR_NOTFOUND with *out NULL when there is no
 * --config and no default file (not an error for `tunnel run`), or an error
 * from wr_config_load / wr_config_apply_opts with the reason in |err|. */
int wr_config_load_opts(wr_opts *opts, wr_config **out, char *err, size_t errlen);

/* Appends a warning "source[:line]: [keypath: ]message" to cfg->warnings. */
void wr_config_warn(wr_config *cfg, unsigned line, const char *keypath, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Formats the canonical error text "source[:line]: [keypath: ]reason" into
 * |err| (line 0 and an empty or NULL keypath are left out). */
void wr_config_errorf(char *err, size_t errlen, const char *source, unsigned line,
                      const char *keypath, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
