/* Results as cloudflared prints them with `-o json` and `-o yaml`: a tree
 * of Go values (objects keep their key order, as Go structs do) encoded
 * to a string
 *  - as Go's json.Encoder with SetIndent("", "  "): HTML-safe escaping
 *    (<, >, & as \u003c …), invalid UTF-8 as \ufffd, "[]"/"{}" for empty
 *    collections, a final newline;
 *  - as gopkg.in/yaml.v3's Encoder: four-space indentation except that a
 *    collection inside a sequence item is indented by two (past the "- "),
 *    strings quoted only when yaml.v3 would (yaml.c). Not reproduced:
 *    yaml.v3 folds quoted strings longer than 80 columns, writes
 *    multi-line strings as literal blocks and writes other line breaks
 *    (CR, NEL, U+2028, U+2029) raw inside single quotes, re-indenting the
 *    line after; we write all of these as one double-quoted line with the
 *    breaks escaped, which reads back the same (a raw break with text but
 *    no indentation after it could start a line with "---", which ends
 *    the document). A string that ends in such breaks goes out as yaml.v3
 *    writes it.
 *
 * The JSON and YAML shapes of one Go struct differ (json tags vs yaml.v3's
 * lower-cased field names, nil slices as null vs []), so the builders in
 * tunnels.h, routes.h and vnets.h take the encoding they build for.
 *
 * Nodes live in a wr_arena (lib/config.h) and die with it; the encoders
 * return malloc'ed strings. Out-of-memory aborts. */
#ifndef WR_CFAPI_RENDER_H
#define WR_CFAPI_RENDER_H
#include "cfapi/time.h"
#include "lib/config.h"
#include "lib/encoding.h"

typedef enum wr_cfapi_enc { WR_CFAPI_JSON, WR_CFAPI_YAML } wr_cfapi_enc;

typedef struct wr_cfapi_node wr_cfapi_node;

wr_cfapi_node *wr_cfapi_node_obj(wr_arena *a);
wr_cfapi_node *wr_cfapi_node_arr(wr_arena *a);
wr_cfapi_node *wr_cfapi_node_str(wr_arena *a, const char *s);        /* NULL reads as "" */
wr_cfapi_node *wr_cfapi_node_time(wr_arena *a, const wr_cfapi_time *t); /* RFC3339Nano; plain in YAML */
wr_cfapi_node *wr_cfapi_node_bool(wr_arena *a, int b);
wr_cfapi_node *wr_cfapi_node_int(wr_arena *a, long long v);
wr_cfapi_node *wr_cfapi_node_null(wr_arena *a);
wr_cfapi_node *wr_cfapi_node_uuid(wr_arena *a, const wr_uuid *u);
/* An empty array, or null when |is_null| and |enc| is JSON (a nil Go
 * slice: encoding/json writes null, yaml.v3 writes []). */
wr_cfapi_node *wr_cfapi_node_slice(wr_arena *a, int is_null, wr_cfapi_enc enc);
/* Appends to an object (keys kept in order, copied) or an array; returns |v|. */
wr_cfapi_node *wr_cfapi_node_put(wr_cfapi_node *obj, const char *key, wr_cfapi_node *v);
wr_cfapi_node *wr_cfapi_node_push(wr_cfapi_node *arr, wr_cfapi_node *v);

/* The encoded document, newline-terminated. Caller frees. */
char *wr_cfapi_render(const wr_cfapi_node *v, wr_cfapi_enc enc);
char *wr_cfapi_render_json(const wr_cfapi_node *v);
char *wr_cfapi_render_yaml(const wr_cfapi_node *v);

#endif
