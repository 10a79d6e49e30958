#!/usr/bin/env bash
# Runs each libFuzzer binary in $1 for $2 seconds over its seed corpus
# (tests/fuzz/corpus/<name>/, copied so the checked-in seeds stay unchanged).
set -u
dir=${1:?}; secs=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
fail=0
for f in "$dir"/fuzz_*; do
  [ -x "$f" ] || continue
  n=$(basename "$f"); work="$root/build/fuzz/corpus/$n"
  mkdir -p "$work"
  [ -d "$root/tests/fuzz/corpus/$n" ] && cp -n "$root/tests/fuzz/corpus/$n"/* "$work"/ 2>/dev/null
  if "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
       -artifact_prefix="$root/build/fuzz/$n-" "$work" >"$root/build/fuzz/$n.log" 2>&1; then
    echo "FUZZ OK   $n: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$root/build/fuzz/$n.log" | tail -1)"
  else
    fail=1; echo "FUZZ FAIL $n"; tail -n 30 "$root/build/fuzz/$n.log"
  fi
done
exit $fail
