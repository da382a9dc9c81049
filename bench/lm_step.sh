#!/usr/bin/env bash
# rlhf lm step time: one optimizer step of language modelling through the whole command (data
# packing, the offline loop, AdamW), as (time of 1 + STEPS steps - time of 1 step) / STEPS, so
# start-up and saving cancel. Llama 4 layers x 256 wide, 16 rows x 128 tokens per step, 2 threads.
#
#   bash bench/lm_step.sh                 # this build (build/rlhf)
#   BASELINE=DIR bash bench/lm_step.sh    # also DIR/rlhf, between two runs of this build
set -euo pipefail
BUILD=${BUILD:-build}
STEPS=${STEPS:-20}
export OMP_WAIT_POLICY=PASSIVE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# git $(git describe --always --dirty 2>/dev/null || echo unknown); load before:$(uptime | sed 's/.*load average://')"
"./$BUILD/rlhf" init-model --family llama --preset tiny --layers 4 --hidden-size 256 --heads 4 --kv-heads 4 \
  --intermediate-size 688 --max-positions 128 --vocab-size 2048 --out "$tmp/model" > /dev/null

seconds() {  # $1: binary, $2: steps
  local t0 t1
  t0=$(date +%s.%N)
  "$1" lm --model "$tmp/model" --synthetic --out "$tmp/run" --seq-len 128 --batch-size 16 --max-steps "$2" \
    --log-every 100000 --threads 2 > /dev/null
  t1=$(date +%s.%N)
  rm -rf "$tmp/run"
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
per_step() {  # $1: label, $2: binary
  local one many
  one=$(seconds "$2" 1)
  many=$(seconds "$2" $((STEPS + 1)))
  awk -v l="$1" -v a="$one" -v b="$many" -v n="$STEPS" 'BEGIN { printf "%s: %.1f ms/step (%d steps)\n", l, (b - a) * 1000 / n, n }'
}
per_step "this build" "./$BUILD/rlhf"
if [[ -n ${BASELINE:-} ]]; then
  per_step "baseline $BASELINE" "./$BASELINE/rlhf"
  per_step "this build again" "./$BUILD/rlhf"
fi
