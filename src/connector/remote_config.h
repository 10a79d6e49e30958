/* Remote configuration (protocol.md 5.3): the edge's updateConfiguration,
 * applied as cloudflared 2023.7.3's Orchestrator.UpdateConfig does:
 *
 *  - a version not newer than the current one (initially -1) changes
 *    nothing and answers {latestAppliedVersion = current, err = ""};
 *  - otherwise the JSON {"ingress": [...], "warp-routing": {...},
 *    "originRequest": {...}} (durations in whole seconds) is parsed and
 *    validated like a config file; on failure the answer is {current,
 *    err = why} and nothing changes; an empty ingress becomes the default
 *    "503 for everything" rule; warp-routing absent means disabled;
 *  - on success the new rules (and warp-routing) go to the |apply|
 *    callback, which takes them (the connector's wr_connector_set_ingress:
 *    new streams use them at once, live streams keep theirs, and a replaced
 *    set is freed when its last stream ends), and the answer is
 *    {version, ""}. */
#ifndef WR_CONNECTOR_REMOTE_CONFIG_H
#define WR_CONNECTOR_REMOTE_CONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "connector/ingress.h"
#include "connector/rpc_server.h"

typedef struct wr_remote_config wr_remote_config;

/* Takes a new set of rules (ownership passes to the callee). */
typedef void (*wr_remote_config_apply_fn)(void *user, wr_ingress *ing);

wr_remote_config *wr_remote_config_new(wr_remote_config_apply_fn apply, void *user);
void wr_remote_config_free(wr_remote_config *rc);

/* Applies an update (see above). Returns latestAppliedVersion; |err| is ""
 * unless the update was refused. */
int32_t wr_remote_config_update(wr_remote_config *rc, int32_t version, const uint8_t *json,
                                size_t len, char *err, size_t errlen);
int32_t wr_remote_config_version(const wr_remote_config *rc);
/* Fills the ConfigurationManager callbacks of |svc|. */
void wr_remote_config_services(wr_remote_config *rc, wr_rpc_services *svc);

#endif
