#!/usr/bin/env bash
# Generation throughput side by side: rlhf.cpp's KV-cache sampler (bench/generate.cpp) and
# transformers' generate (bench/hf_generate.py) on the same checkpoint directory, written once by
# `rlhf init-model` (random weights): llama-small (4 layers x 256, vocab 50257) and gpt2-small
# (12 x 768, vocab 50257). Batch 8 prompts x 32 tokens, 64 new tokens each (no EOS), sampling at
# temperature 1 from the full softmax; 2 threads on both sides, OMP_WAIT_POLICY=PASSIVE for
# PyTorch's OpenMP workers. Each side runs in its own process.
#
# Needs the build (BUILD=build by default; cmake --build <dir> --target rlhf generate) and the
# reference venv (reference/setup_venv.sh). Usage: bench/run_generate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${PY:-reference/.venv/bin/python}
RUNS=${RUNS:-3}
export OMP_WAIT_POLICY=PASSIVE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# git $(git describe --always --dirty 2>/dev/null || echo unknown); load before:$(uptime | sed 's/.*load average://')"
"./$BUILD/rlhf" init-model --family llama --preset small --out "$tmp/llama-small" >/dev/null
"./$BUILD/rlhf" init-model --family gpt2 --preset gpt2-small --out "$tmp/gpt2-small" >/dev/null
for model in llama-small gpt2-small; do
  echo "# model $model: batch 8 x prompt 32, 64 new tokens, temperature 1, --runs $RUNS --warmup 1 --threads 2"
  "./$BUILD/generate" --model "$tmp/$model" --batch 8 --prompt 32 --new 64 --runs "$RUNS" --warmup 1 --threads 2
  if [[ -x $PY ]]; then
    OMP_NUM_THREADS=2 "$PY" bench/hf_generate.py --model "$tmp/$model" --batch 8 --prompt 32 --new 64 \
      --runs "$RUNS" --warmup 1 --threads 2 2> >(grep -v -e Warning -e 'warnings.warn' -e 'Loading weights' >&2)
  else
    echo "# (no reference venv: run reference/setup_venv.sh for the transformers baseline)"
  fi
  echo "# load after $model:$(uptime | sed 's/.*load average://')"
done
