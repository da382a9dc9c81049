#!/usr/bin/env bash
# Set up, build and run the whole test suite (unit tests, fixtures parity, CLI smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
cd build
OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE ctest --output-on-failure -j2
