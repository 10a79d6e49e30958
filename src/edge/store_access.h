/* The store's Access objects (edge/store.h conventions: WR_OK or a negative
 * WR_ERR_* with the reason in wr_store_errmsg; every change writes an audit
 * row in its transaction).
 *
 * Applications ("app"), their policies ("policy", parent = the app),
 * groups ("group"), service tokens ("service_token") and identity
 * providers ("identity_provider", config.client_secret kept as sent: the
 * edge needs it for the code exchange) are JSON documents
 * in the API's shapes (docs/access.md) in one table, scoped to an account.
 * The store adds "id", "created_at" and "updated_at" (Unix seconds) to the
 * documents it returns. Each kind may have a |lookup| key unique across the
 * edge: an app's domain (host[/path]), a token's client_id. A token's
 * secret is kept as its SHA-256 only.
 *
 * Signing keys are edge-wide rows (kid, PEM, created, retired): the newest
 * unretired key signs; retired keys stay published until pruned. */
#ifndef WR_EDGE_STORE_ACCESS_H
#define WR_EDGE_STORE_ACCESS_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/store.h"

#define WR_STORE_ACCESS_SECRET_HASH_LEN 32

/* Creates an object of |kind| in |account_id| from |doc| (a JSON object,
 * not stolen; its "id", "created_at" and "updated_at" are replaced).
 * |parent|: the app id of a policy (checked to be an app of the account),
 * else NULL. |lookup|: see above, or NULL. |secret_hash|: a token's, or
 * NULL. *out gets the stored document. Errors: WR_ERR_INVAL (unknown kind),
 * WR_ERR_NOTFOUND (no such parent app), WR_ERR_EXISTS (|lookup| taken),
 * WR_ERR_STORE. */
int wr_store_access_create(wr_store *s, const char *actor, const char *account_id, const char *kind,
                           const char *parent, const char *lookup, const uint8_t *secret_hash,
                           const json_t *doc, json_t **out);
/* Replaces the document (and |lookup|, when not NULL) of object |id|.
 * WR_ERR_NOTFOUND when there is no such object of |kind| in the account
 * (with |parent| when not NULL). */
int wr_store_access_update(wr_store *s, const char *actor, const char *account_id, const char *kind,
                           const char *parent, const char *id, const char *lookup, const json_t *doc,
                           json_t **out);
/* Deletes object |id| (an app with its policies). WR_ERR_NOTFOUND. */
int wr_store_access_delete(wr_store *s, const char *actor, const char *account_id, const char *kind,
                           const char *parent, const char *id);
/* One object (*out: its document). WR_ERR_NOTFOUND. */
int wr_store_access_get(wr_store *s, const char *account_id, const char *kind, const char *parent,
                        const char *id, json_t **out);
/* The account's objects of |kind| (of app |parent| for policies), oldest
 * first, as a JSON array. */
int wr_store_access_list(wr_store *s, const char *account_id, const char *kind, const char *parent,
                         json_t **out);

/* For the visitor gate: the apps whose domain is |host| or starts with
 * "|host|/", as {"apps":[app document + "account_id" + "policies":[...]],
 * "groups":{group id: group document}} (the groups of those apps'
 * accounts). No app: an empty "apps" array. */
int wr_store_access_for_host(wr_store *s, const char *host, json_t **out);
/* Checks a service token: WR_OK with its id and account when |client_id|
 * exists, is not expired (its document's "expires_at", Unix seconds, 0 for
 * never) and |secret| hashes to the stored hash (compared in constant
 * time); WR_ERR_DENIED otherwise (the same for every reason). */
int wr_store_access_token_check(wr_store *s, const char *client_id, const char *secret,
                                char id[WR_STORE_UUID_LEN + 1], char account_id[WR_STORE_ID_LEN + 1]);

/* Signing keys, newest first: [{"kid","pem","created_at","retired_at"}]
 * (retired_at 0 for the current key). */
int wr_store_access_keys(wr_store *s, json_t **out);
/* Adds key |kid| as the current one; the previous current keys are retired
 * now (and stay published). Audited as access.key.rotate. */
int wr_store_access_key_add(wr_store *s, const char *actor, const char *kid, const char *pem);
/* Deletes the keys retired before |before| (Unix seconds); *n how many. */
int wr_store_access_keys_prune(wr_store *s, int64_t before, size_t *n);

#endif
