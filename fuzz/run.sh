#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang under ASan and UBSan (in build-fuzz/) and runs
# each for SECONDS_PER_TARGET seconds (default 60) on a scratch copy of its committed seed corpus
# (fuzz/corpus/<target>/, never modified). Exits non-zero on any finding: a crash, a sanitizer
# report, a leak, an uncaught exception other than InputError, a slow input (-timeout) or an
# out-of-memory (-rss_limit_mb); the reproducer is left in build-fuzz/findings/<target>/.
#
# Needs, besides scripts/setup.sh's packages: clang, libclang-rt-14-dev (libFuzzer and the
# sanitizer runtimes) and libomp-14-dev (OpenMP for clang).
#   fuzz/run.sh 300          # five minutes per target
#   FUZZ_TARGETS="jinja" fuzz/run.sh 60
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets="${FUZZ_TARGETS:-jinja safetensors config tokenizer jsonl}"
build=build-fuzz

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DRLHF_FUZZ=ON \
  -DRLHF_BUILD_TESTS=OFF -DRLHF_BUILD_BENCH=OFF >/dev/null
for t in $targets; do
  cmake --build "$build" -j"$(nproc)" --target "fuzz_$t"
done

status=0
for t in $targets; do
  work="$build/corpus/$t"
  findings="$build/findings/$t"
  rm -rf "$work" && mkdir -p "$work" "$findings"
  cp fuzz/corpus/"$t"/* "$work"/
  echo "fuzz_$t: ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$build/fuzz_$t" "$work" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$findings/" -print_final_stats=1 >"$build/fuzz_$t.log" 2>&1; then
    echo "FINDING in fuzz_$t: see $build/fuzz_$t.log and $findings/"
    tail -40 "$build/fuzz_$t.log"
    status=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$build/fuzz_$t.log" | sed "s/^/  /" || true
done
exit "$status"
