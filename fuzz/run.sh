#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang under ASan and UBSan (in build-fuzz/), runs the
# parsers' unit tests under the same sanitizers (sanitized_parser_tests), then runs each target
# for SECONDS_PER_TARGET seconds (default 60) on a scratch copy of its committed seed corpus
# (fuzz/corpus/<target>/, never modified). Exits non-zero on any finding: a crash, a sanitizer
# report, a leak, an uncaught exception other than InputError, a slow input (-timeout) or an
# out-of-memory (-rss_limit_mb); the reproducer is left in build-fuzz/findings/<target>/.
#
# Installs what it needs first (scripts/setup.sh --fuzz: clang, libclang-rt-14-dev for libFuzzer
# and the sanitizer runtimes, libomp-14-dev for OpenMP under clang).
#   fuzz/run.sh 300          # five minutes per target
#   FUZZ_TARGETS="jinja" fuzz/run.sh 60
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets="${FUZZ_TARGETS:-jinja safetensors config tokenizer jsonl}"
build=build-fuzz
scripts/setup.sh --fuzz --no-build

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DRLHF_FUZZ=ON \
  -DRLHF_BUILD_TESTS=OFF -DRLHF_BUILD_BENCH=OFF >/dev/null
for t in $targets; do
  cmake --build "$build" -j"$(nproc)" --target "fuzz_$t"
done
# First the parsers' unit tests under the same sanitizers.
cmake --build "$build" -j"$(nproc)" --target sanitized_parser_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$build/sanitized_parser_tests" --gtest_brief=1

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
