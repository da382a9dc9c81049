#!/usr/bin/env bash
# The main job: set up, build, and run the benchmark on the built-in testbed (quick profile:
# every direct and RL method on every question, nano models, no downloads). Writes
# bench-out/results.json and bench-out/report.html; rerunning resumes from the cached stages.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
./build/rlhf bench --profile quick --out bench-out
