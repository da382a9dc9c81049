#!/usr/bin/env bash
# Runs the DPO-step benchmark side by side: rlhf.cpp (bench/dpo_step.cpp, train_offline with the
# sigmoid loss) and TRL's DPOTrainer (bench/trl_dpo_step.py), same model shape, same batch
# (8 pairs, prompt 128 + completion 128 tokens, so 16 sequences of 256 tokens), beta 0.1,
# AdamW lr 1e-6, float32, 2 threads. Two shapes: llama-small (4 layers x 256, vocab 50257) and
# gpt2-small (12 x 768, vocab 50257). Every run is its own process, so peak_rss_mb (ru_maxrss)
# is per implementation and per shape.
#
# TRL runs twice per shape: its default (a reference model held in memory and run in every
# step) and with precompute_ref_log_probs=True (reference log-probs once, before training: the
# scheme rlhf.cpp uses). PRECOMPUTE=0 skips the second run.
#
# This machine has 2 cores: the Python side gets OMP_NUM_THREADS=2 and OMP_WAIT_POLICY=PASSIVE
# (idle OpenMP workers sleep instead of spinning, which would otherwise steal the cores from
# everything else and distort the timings), and both sides use 2 threads.
# The GPT-2-small TRL step takes a minute or more on 2 cores, hence fewer steps there.
#
# BASELINE=DIR also runs DIR/dpo_step (another build, e.g. an older commit's in build-old/) between
# two runs of this build's, to compare builds on the same machine in one run.
# Needs the build (BUILD=build by default; cmake --build <dir> --target dpo_step) and the
# reference venv (reference/setup_venv.sh). Usage: bench/run_dpo_step.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${PY:-reference/.venv/bin/python}
PRECOMPUTE=${PRECOMPUTE:-1}
LLAMA_STEPS=${LLAMA_STEPS:-3}
GPT2_STEPS=${GPT2_STEPS:-2}
export OMP_WAIT_POLICY=PASSIVE

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# git $(git describe --always --dirty 2>/dev/null || echo unknown); load before:$(uptime | sed 's/.*load average://')"
for model in llama-small gpt2-small; do
  if [[ $model == llama-small ]]; then steps=$LLAMA_STEPS; else steps=$GPT2_STEPS; fi
  echo "# model $model: 8 pairs x (128 + 128) tokens, --steps $steps --warmup 1 --threads 2"
  "./$BUILD/dpo_step" --model "$model" --steps "$steps" --warmup 1 --threads 2
  if [[ -n ${BASELINE:-} ]]; then  # another build's dpo_step, then this one again (machine drift)
    echo "# baseline build $BASELINE:"
    "./$BASELINE/dpo_step" --model "$model" --steps "$steps" --warmup 1 --threads 2
    echo "# this build again:"
    "./$BUILD/dpo_step" --model "$model" --steps "$steps" --warmup 1 --threads 2
  fi
  if [[ -x $PY ]]; then
    OMP_NUM_THREADS=2 "$PY" bench/trl_dpo_step.py --model "$model" --steps "$steps" --warmup 1 --threads 2 \
      2> >(grep -v -e FutureWarning -e 'warnings.warn' >&2)
    if [[ $PRECOMPUTE == 1 ]]; then
      OMP_NUM_THREADS=2 "$PY" bench/trl_dpo_step.py --model "$model" --steps "$steps" --warmup 1 --threads 2 \
        --precompute-ref 2> >(grep -v -e FutureWarning -e 'warnings.warn' >&2)
    fi
  else
    echo "# (no reference venv: run reference/setup_venv.sh for the TRL baseline)"
  fi
  echo "# load after $model:$(uptime | sed 's/.*load average://')"
done
