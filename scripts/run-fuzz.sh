#!/usr/bin/env bash
# Runs each libFuzzer binary in $1 for $2 seconds over its seed corpus.
#
#   scripts/run-fuzz.sh DIR SECONDS          # make fuzz / make check
#   scripts/run-fuzz.sh DIR SECONDS merge    # make fuzz-corpus
#
# The checked-in seeds (tests/fuzz/corpus/<name>/) are copied into a work
# corpus under build/fuzz/corpus/<name>/, which is what the fuzzer grows, so
# a plain run never modifies the source tree. With "merge", the work corpus
# is afterwards merged back into tests/fuzz/corpus/<name>/ with -merge=1:
# only inputs that add coverage to the checked-in corpus are copied (named by
# their SHA-1), nothing is deleted; review and commit them.
# tests/fuzz/<name>.dict, when present, is passed as the dictionary.
# FUZZ_TARGETS="fuzz_a fuzz_b" limits the run to those targets.
set -u
dir=${1:?}; secs=${2:-30}; mode=${3:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
fail=0
for f in "$dir"/fuzz_*; do
  [ -x "$f" ] || continue
  n=$(basename "$f")
  if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $n "* ]]; then continue; fi
  work="$root/build/fuzz/corpus/$n"; seeds="$root/tests/fuzz/corpus/$n"
  mkdir -p "$work"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null
  dict=(); [ -f "$root/tests/fuzz/$n.dict" ] && dict=(-dict="$root/tests/fuzz/$n.dict")
  if "$f" "${dict[@]}" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
       -artifact_prefix="$root/build/fuzz/$n-" "$work" >"$root/build/fuzz/$n.log" 2>&1; then
    echo "FUZZ OK   $n: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$root/build/fuzz/$n.log" | tail -1)"
  else
    fail=1; echo "FUZZ FAIL $n"; tail -n 30 "$root/build/fuzz/$n.log"
    continue
  fi
  if [ "$mode" = merge ]; then
    mkdir -p "$seeds"
    before=$(ls "$seeds" | wc -l)
    if "$f" "${dict[@]}" -merge=1 -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
         "$seeds" "$work" >"$root/build/fuzz/$n.merge.log" 2>&1; then
      echo "MERGE     $n: $before -> $(ls "$seeds" | wc -l) inputs in tests/fuzz/corpus/$n"
    else
      fail=1; echo "MERGE FAIL $n"; tail -n 30 "$root/build/fuzz/$n.merge.log"
    fi
  fi
done
exit $fail
