/* warren-edge store migrate --from DIR --to DSN: copies an edge's SQLite
 * store (DIR/warren.db) into an empty PostgreSQL database, whose schema
 * wr_store_open creates. The SQLite file is only read. */
#include <stdio.h>
#include <stdlib.h>

#include "cmd/commands.h"
#include "cmd/edge_int.h"
#include "edge/db.h"
#include "edge/store.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/opts.h"

int wr_cmd_edge_store_migrate(const wr_cmd *cmd, wr_opts *o, int argc, char **argv) {
  const char *from = wr_opts_get(o, "from"), *to = wr_opts_get(o, "to");
  char path[4096], err[WR_STORE_ERRMSG_MAX], shown[256];
  wr_store *src = NULL, *dst = NULL;
  size_t rows = 0;
  int rv = WR_EXIT_FAIL;
  (void)cmd;
  if (argc > 0) return wr__edge_fail("store migrate takes no arguments (got \"%s\")", argv[0]);
  if (!from || !*from || !to || !*to)
    return wr__edge_fail("store migrate needs --from DIR (a data directory) and --to DSN "
                         "(a PostgreSQL connection string)");
  if (!wr_db_target_is_pg(to))
    return wr__edge_fail("--to must be a PostgreSQL connection string (postgres://... or "
                         "host=... dbname=...)");
  snprintf(path, sizeof(path), "%s/warren.db", from);
  if (!wr_file_exists(path))
    return wr__edge_fail("%s is not a warren-edge data directory (it has no warren.db)", from);
  if (wr_store_open(path, 0, &src, err, sizeof(err)) != WR_OK) return wr__edge_fail("%s", err);
  if (wr_store_open(to, 0, &dst, err, sizeof(err)) != WR_OK) {
    wr__edge_fail("%s", err);
    goto out;
  }
  if (wr_store_copy(src, dst, &rows) != WR_OK) {
    wr__edge_fail("%s", wr_store_errmsg(dst));
    goto out;
  }
  printf("Copied %zu rows from %s to %s\n", rows, path, wr_db_target_redact(to, shown, sizeof(shown)));
  printf("Start the edge with --store (or WARREN_STORE) set to that database; %s is left as it was.\n",
         path);
  rv = WR_EXIT_OK;
out:
  wr_store_close(dst);
  wr_store_close(src);
  return rv;
}
