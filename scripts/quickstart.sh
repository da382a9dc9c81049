#!/usr/bin/env bash
# The main job: set up, build, and run the demonstration (a tiny model trained on generated
# data, loss going down, an HF checkpoint written to runs/quickstart/lm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rm -rf runs/quickstart
./build/rlhf init-model --family llama --preset tiny --out runs/quickstart/init
./build/rlhf lm --config recipes/lm-tiny.yaml --model runs/quickstart/init --out runs/quickstart/lm
