/* Placeholder until the ingress module lands: replaced by the real handlers. */
#include "cmd/commands.h"
int wr_cmd_ingress_validate(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
int wr_cmd_ingress_rule(const wr_cmd *c, wr_opts *o, int n, char **v) { return wr_cmd_not_yet(c, o, n, v); }
