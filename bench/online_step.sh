#!/usr/bin/env bash
# Online RL throughput, side by side: `rlhf rloo` / `rlhf grpo` / `rlhf ppo` (the CLI as users run it)
# against TRL 1.16's RLOOTrainer / GRPOTrainer (bench/trl_online_step.py) and TRL 1.12's PPOTrainer
# (bench/trl_ppo_step.py; see PPO below), on CPU, in one run.
#
# Model: `rlhf init-model --family qwen2 --preset small --vocab-size 2048` (4 layers x 256, 4 heads,
# MLP 704, tied embeddings, 3.7M parameters) with the Qwen2 fixture tokenizer (2000 BPE tokens +
# 5 specials), edited by `trl_online_step.py prepare` so that EOS (and every special/unused id) is
# never sampled: every completion runs to exactly --max-new-tokens on both sides (both check it).
# See that script's docstring for the edit and for TRL's settings. Both sides load the same files.
#
# Per step: 8 prompts (18 tokens each, no padding) x 4 generations = 32 episodes, 64 new tokens
# each (2048 completion tokens), temperature 1, no top-k/top-p; one rollout -> one optimizer step
# (num_iterations 1, one mini-batch / steps_per_generation 1, no gradient accumulation); AdamW,
# lr 1e-6, clip 1.0, float32. Reward -|chars - 100| of the completion text (rlhf
# `length(target=100):chars`; TRL: the same function in Python) so rewards differ within a group
# and the update is not a no-op. RLOO: beta 0.05 on both (a reference model runs every step); GRPO:
# beta 0 on both (no reference model), loss "dapo", group reward scaling (both defaults).
# Everything else at each tool's defaults (rlhf: --max-length 1024 rows, --generate-batch-size 32).
#
# PPO (METHODS=ppo): `rlhf ppo` against TRL 1.12.0's PPOTrainer (trl.experimental.ppo, the newest TRL
# that has one; bench/trl_ppo_step.py, run by PPO_PY from the second venv reference/.venv-ppo made by
# reference/setup_ppo_venv.sh; transformers 5.24.0, torch 2.15.0). The same policy and prompts, plus a
# reward model `rlhf init-model --family qwen2 --preset small --vocab-size 2048 --score-head
# --tokenizer <fixture> --seed 1` (Qwen2ForSequenceClassification, num_labels 1): TRL's reward_model
# is that directory and its value_model a second load of it; rlhf `--reward rm:RM --critic RM` (a
# separate critic initialised from the RM). A reference model runs every step on both sides. Per step:
# 32 prompts x 1 generation = 32 episodes, generated together (TRL per_device_train_batch_size 32,
# local_rollout_forward_batch_size 32; rlhf --prompts-per-step 32 --generate-batch-size 32), 64 new
# tokens each (2048 completion tokens), temperature 1 (TRL's default is 0.7: set), no stop token
# and no missing-EOS penalty (the model never samples EOS; both sides check every completion has 64
# tokens); 4 PPO epochs of one mini-batch of 32 (4 optimizer steps per step, no gradient
# accumulation); kl_coef 0.05 with the k1 estimator (fixed), vf_coef 0.1, cliprange 0.2,
# cliprange_value 0.2, gamma 1, lam 0.95, advantages whitened, rewards not; the score on the last
# completion token (rlhf --score-placement trl_after_eos, TRL's convention); AdamW lr 1e-6 with
# linear decay over the run for policy and critic alike, no gradient clipping (TRL's PPO loop never
# clips, so rlhf --max-grad-norm 0); float32; 2 threads. See bench/trl_ppo_step.py's docstring.
#
# Timing: wall time between consecutive per-step events after WARMUP steps -- for rlhf the
# "<method> step i/N" progress lines (it prints one as each step ends; the time to them is taken
# here as they arrive), for TRL consecutive on_step_end callbacks. Both include everything done
# per step (sampling, rewards, old/reference log-probs, forward/backward, optimizer, logging).
# cpu_s_per_step (user+system of the process, all threads) is reported for both too: it moves less
# than wall time when other work shares the cores.
#
# 2 cores: both sides use 2 threads (rlhf --threads 2; torch.set_num_threads(2)) and
# OMP_WAIT_POLICY=PASSIVE (idle OpenMP workers sleep instead of spinning; rlhf's kernels use
# libgomp too). ACTIVE=1 adds an rlhf run with libgomp's default (spinning) policy.
# BASELINE=DIR adds runs of another build's rlhf (DIR/rlhf, e.g. an older commit built into
# build-old/), between two runs of this build, and prints this build's speed relative to it.
# WAIT_POLICY=default runs both sides with their OpenMP runtime's default policy instead (on an
# idle machine both are faster so; on a shared one both suffer).
#
# Needs the build (BUILD=build: the `rlhf` target) and the reference venv (reference/setup_venv.sh);
# METHODS with ppo also the PPO venv (reference/setup_ppo_venv.sh; PPO_PY=reference/.venv-ppo/bin/python).
# Usage: bench/online_step.sh   [STEPS=5 WARMUP=1 METHODS="rloo grpo ppo" ACTIVE=0 WAIT_POLICY=PASSIVE]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
PY=${PY:-reference/.venv/bin/python}
PPO_PY=${PPO_PY:-reference/.venv-ppo/bin/python}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-1}
METHODS=${METHODS:-rloo grpo ppo}
ACTIVE=${ACTIVE:-0}
WAIT_POLICY=${WAIT_POLICY:-PASSIVE}
PROMPTS=8 GENS=4 NEW=64 THREADS=2
PPO_PROMPTS=32  # ppo: 32 prompts x 1 generation = 32 episodes per step, like rloo/grpo's 8 x 4
RLHF="$ROOT/$BUILD/rlhf"
[[ -x $RLHF ]] || { echo "no $RLHF: cmake --build $BUILD --target rlhf" >&2; exit 1; }
BASELINE_RLHF=""
if [[ -n ${BASELINE:-} ]]; then
  BASELINE_RLHF="$ROOT/$BASELINE/rlhf"
  [[ -x $BASELINE_RLHF ]] || { echo "no $BASELINE_RLHF (BASELINE: another build directory)" >&2; exit 1; }
fi
[[ -x $PY ]] || { echo "no $PY: run reference/setup_venv.sh" >&2; exit 1; }
for method in $METHODS; do
  case $method in
    rloo|grpo) ;;
    ppo) [[ -x $PPO_PY ]] || { echo "no $PPO_PY: run reference/setup_ppo_venv.sh (or leave ppo out of METHODS)" >&2; exit 1; } ;;
    *) echo "METHODS: expected rloo, grpo or ppo, got '$method'" >&2; exit 2 ;;
  esac
done
case $WAIT_POLICY in
  PASSIVE) export OMP_WAIT_POLICY=PASSIVE ;;
  default) unset OMP_WAIT_POLICY ;;
  *) echo "WAIT_POLICY: expected PASSIVE or default, got '$WAIT_POLICY'" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
load() { uptime | sed 's/.*load average: *//'; }

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# git $(git describe --always --dirty 2>/dev/null || echo unknown); $PROMPTS prompts x $GENS generations x $NEW new tokens per step, --steps $STEPS after $WARMUP warm-up, $THREADS threads, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset (runtime default)}"
"$RLHF" init-model --family qwen2 --preset small --vocab-size 2048 --out "$tmp/model" >/dev/null
"$PY" bench/trl_online_step.py prepare "$tmp/model" --tokenizer tests/fixtures/text/tokenizers/qwen2 2>&1 | sed 's/^/# /'
if [[ " $METHODS " == *" ppo "* ]]; then
  echo "# ppo: $PPO_PROMPTS prompts x 1 generation x $NEW new tokens per step, 4 PPO epochs of 1 mini-batch; reward model and critic: the same --score-head model"
  "$RLHF" init-model --family qwen2 --preset small --vocab-size 2048 --score-head \
    --tokenizer tests/fixtures/text/tokenizers/qwen2 --seed 1 --out "$tmp/rm" >/dev/null
fi

# rlhf_run METHOD LABEL: one `rlhf METHOD` run, one JSON line
rlhf_run() {
  local method=$1 label=$2 exe=${3:-$RLHF} out="$tmp/out_$1_$2" fifo="$tmp/fifo" envs=() args episodes
  [[ $label == active ]] && envs=(-u OMP_WAIT_POLICY)
  if [[ $method == ppo ]]; then
    # TRL PPOTrainer's settings (bench/trl_ppo_step.py), each given explicitly
    args=(--reward "rm:$tmp/rm" --critic "$tmp/rm" --score-placement trl_after_eos --max-new-tokens $NEW
          --prompts-per-step $PPO_PROMPTS --num-generations 1 --generate-batch-size $PPO_PROMPTS
          --num-mini-batches 1 --num-ppo-epochs 4 --temperature 1.0 --kl-coef 0.05 --kl-estimator k1
          --missing-eos-penalty 0 --vf-coef 0.1 --cliprange 0.2 --cliprange-value 0.2 --gamma 1 --lam 0.95
          --max-grad-norm 0)
    episodes=$PPO_PROMPTS
  else
    args=(--reward "length(target=100):chars" --max-new-tokens $NEW --prompts-per-step $PROMPTS
          --num-generations $GENS)
    episodes=$((PROMPTS * GENS))
  fi
  local load_before; load_before=$(load)
  rm -f "$fifo"; mkfifo "$fifo"
  env "${envs[@]}" "$exe" "$method" --model "$tmp/model" --data "$tmp/model/prompts.jsonl" --out "$out" \
    "${args[@]}" --max-steps $((WARMUP + STEPS)) --learning-rate 1e-6 --threads $THREADS \
    --logging-steps 1 > "$fifo" 2> "$tmp/rlhf.err" &
  local pid=$! t0 c0 tick; tick=$(getconf CLK_TCK)
  t0=$(date +%s.%N); c0=0
  local times=() cpus=() line now cpu
  while IFS= read -r line; do
    now=$(date +%s.%N)
    cpu=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    if [[ $line =~ ^$method\ step\ [0-9]+/ ]]; then
      times+=("$(echo "$now - $t0" | bc -l)"); cpus+=("$(echo "($cpu - $c0) / $tick" | bc -l)")
      t0=$now; c0=$cpu
    fi
  done < "$fifo"
  wait $pid || { echo "rlhf $method failed: $(cat "$tmp/rlhf.err")" >&2; exit 1; }
  [[ ${#times[@]} -eq $((WARMUP + STEPS)) ]] || { echo "rlhf $method: ${#times[@]} step lines" >&2; exit 1; }
  local lens; lens=$(grep -o '"completions/min_length":[0-9.]*' "$out/metrics.jsonl" | cut -d: -f2 | sort -u | tr '\n' ' ')
  [[ $lens == "$NEW.0 " || $lens == "$NEW " ]] || { echo "rlhf $method: completions shorter than $NEW: $lens" >&2; exit 1; }
  python3 - "$method" "$label" "$WARMUP" "$episodes" "$NEW" "$load_before" "${times[*]}" "${cpus[*]}" <<'EOF'
import json, sys
method, label, warmup, episodes, new, load, times, cpus = sys.argv[1:]
warmup, episodes, new = int(warmup), int(episodes), int(new)
t = [float(x) for x in times.split()]; c = [float(x) for x in cpus.split()]
mean = sum(t[warmup:]) / len(t[warmup:])
print(json.dumps({"impl": "rlhf", "method": method, "variant": label,
                  "episodes_per_s": round(episodes / mean, 2), "tokens_per_s": round(episodes * new / mean, 1),
                  "step_s": round(mean, 3), "step_s_each": [round(x, 3) for x in t[warmup:]],
                  "cpu_s_per_step": round(sum(c[warmup:]) / len(c[warmup:]), 3),
                  "first_step_s_incl_startup": [round(x, 3) for x in t[:warmup]],
                  "episodes_per_step": episodes, "completion_tokens_per_step": episodes * new,
                  "load_before": load}))
EOF
}

for method in $METHODS; do
  echo "# $method: load before rlhf: $(load)"
  r=$(rlhf_run "$method" "${WAIT_POLICY,,}"); echo "$r"  # passive or default
  if [[ $ACTIVE == 1 ]]; then
    r2=$(rlhf_run "$method" active); echo "$r2"
  fi
  if [[ -n $BASELINE_RLHF ]]; then
    # the other build, then this one again: a drift of the machine shows as a change between them
    b=$(rlhf_run "$method" baseline "$BASELINE_RLHF"); echo "$b"
    r3=$(rlhf_run "$method" "${WAIT_POLICY,,}"); echo "$r3"
    python3 -c '
import json, sys
a, b, c = (json.loads(x) for x in sys.argv[1:])
print("# {m}: this build {sa} / {sc} s/step, baseline {sb} s/step: {r:.3f}x the baseline".format(
      m=a["method"], sa=a["step_s"], sc=c["step_s"], sb=b["step_s"], r=b["step_s"] / ((a["step_s"] + c["step_s"]) / 2)))
' "$r" "$b" "$r3"
  fi
  echo "# $method: load before TRL: $(load)"
  if [[ $method == ppo ]]; then
    t=$(OMP_NUM_THREADS=$THREADS "$PPO_PY" bench/trl_ppo_step.py --model "$tmp/model" --reward-model "$tmp/rm" \
        --steps "$STEPS" --warmup "$WARMUP" --threads $THREADS --prompts-per-step $PPO_PROMPTS \
        --max-new-tokens $NEW 2> "$tmp/trl.err") \
      || { cat "$tmp/trl.err" >&2; exit 1; }
  else
    t=$(OMP_NUM_THREADS=$THREADS "$PY" bench/trl_online_step.py run --method "$method" --model "$tmp/model" \
        --steps "$STEPS" --warmup "$WARMUP" --threads $THREADS --prompts-per-step $PROMPTS \
        --num-generations $GENS --max-new-tokens $NEW 2> "$tmp/trl.err") \
      || { cat "$tmp/trl.err" >&2; exit 1; }
  fi
  echo "$t"
  python3 -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
f = "{method}: rlhf {ea} episodes/s ({ta} tok/s, {sa} s/step, cpu {ca} s/step) vs TRL {eb} episodes/s ({tb} tok/s, {sb} s/step, cpu {cb} s/step): {r:.2f}x"
print("# " + f.format(method=a["method"], ea=a["episodes_per_s"], ta=a["tokens_per_s"], sa=a["step_s"], ca=a["cpu_s_per_step"],
      eb=b["episodes_per_s"], tb=b["tokens_per_s"], sb=b["step_s"], cb=b["cpu_s_per_step"], r=a["episodes_per_s"] / b["episodes_per_s"]))
' "$r" "$t"
  echo "# $method: load after: $(load)"
done
