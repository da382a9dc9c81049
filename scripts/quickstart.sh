#!/usr/bin/env bash
# The main job: set up, build, and run the demonstration (a tiny model trained on generated
# data, loss going down, an HF checkpoint written to runs/quickstart/lm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rm -rf runs/quickstart
./build/rlhf init-model --family llama --preset tiny --out runs/quickstart/init
./build/rlhf lm --model runs/quickstart/init --synthetic --out runs/quickstart/lm \
  --seq-len 64 --batch-size 8 --max-steps 60 --learning-rate 3e-3 --warmup-steps 5 --log-every 10
