#!/bin/sh
# Writes C arrays of the given files to stdout, one per file, named after the
# file with [^A-Za-z0-9] as '_' and prefixed "asset_" (dash.js ->
# asset_dash_js, with asset_dash_js_len): the dashboard's front end compiled
# into warren-edge (src/edge/dash.c includes the output). od is POSIX, so
# nothing beyond the base system is needed.
set -eu
for f in "$@"; do
  n=asset_$(basename "$f" | tr -c 'A-Za-z0-9\n' '_')
  echo "static const unsigned char ${n}[] = {"
  od -An -v -tx1 "$f" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' -e '/^$/d'
  echo "};"
  echo "static const size_t ${n}_len = sizeof(${n});"
done
