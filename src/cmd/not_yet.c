#include <stdio.h>

#include "cmd/commands.h"

int wr_cmd_not_yet(const wr_cmd *cmd, wr_opts *opts, int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr,
          "%s: \"%s\" is not implemented yet in this version of Warren; "
          "see README.md for what works today\n",
          opts->prog, cmd->name);
  return WR_EXIT_FAIL;
}
