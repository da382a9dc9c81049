#!/usr/bin/env bash
# Runs the training-step benchmark side by side: our GEMM's peak, rlhf.cpp, PyTorch eager.
# Two shapes: GPT-2 small (12 x 768, vocab 50257) and a 4-layer 256-wide model, batch 4 x 256,
# 2 threads. Needs the build (scripts/setup.sh) and the reference venv (reference/setup_venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-3}
PY=reference/.venv/bin/python
# The same OpenMP settings on both sides: idle workers sleep rather than spin.
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), OMP_WAIT_POLICY=PASSIVE"
for shape in "--layers 12 --hidden 768 --heads 12" "--layers 4 --hidden 256 --heads 4"; do
  echo "# shape: $shape --vocab 50257 --batch 4 --seq 256 --threads 2"
  ./build/train_step $shape --vocab 50257 --batch 4 --seq 256 --steps "$STEPS" --warmup 1 --threads 2
  if [[ -x $PY ]]; then
    $PY bench/pytorch_step.py $shape --vocab 50257 --batch 4 --seq 256 \
      --steps "$STEPS" --warmup 1 --threads 2
  else
    echo "# (no reference venv: run reference/setup_venv.sh for the PyTorch baseline)"
  fi
done
