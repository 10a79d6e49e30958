#!/usr/bin/env bash
# Runs every unit-test binary in $1, each in its own process with a timeout,
# and prints one summary line. Exit status is non-zero if any suite failed.
set -u
dir=${1:?usage: run-unit.sh DIR}
pass=0; fail=0; failed=()
for t in "$dir"/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  if (cd "$(dirname "$0")/.." && timeout 120 "$t" >"$dir/$name.log" 2>&1); then
    pass=$((pass+1)); echo "PASS $name ($(grep -c '\[       OK \]' "$dir/$name.log") cases)"
  else
    fail=$((fail+1)); failed+=("$name"); echo "FAIL $name"; tail -n 40 "$dir/$name.log"
  fi
done
echo "unit: $pass suites passed, $fail failed${failed:+: ${failed[*]}}"
[ "$fail" -eq 0 ]
