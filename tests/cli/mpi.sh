#!/usr/bin/env bash
# Data parallelism on MPI, as a user launches it (mpirun -np 2 on this 2-core machine): 2 ranks
# with per-rank batch B train like 1 process with gradient accumulation 2 x B (sft, dpo and lm;
# and, for DPO's per-pair mean, like batch 2B): same loss curve and, through rlhf eval's log-probs,
# the same weights, to fp32 tolerance; the same for RLOO and for PPO with TRL's score placement
# (online: 2 ranks x B prompts per step against 1 process with 2B prompts, and with 2B in 2
# micro-batches). A failing rank stops every rank; a NaN on one rank stops every rank naming it
# and the step, and the last checkpoint resumes; a resume with another number of ranks is
# refused; a killed rank fails the job and its checkpoint resumes exactly; --save-rollouts is
# refused on more than one rank.
set -euo pipefail
RLHF="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TOK="$ROOT/tests/fixtures/text/tokenizers/qwen2"
PREFS="$ROOT/tests/fixtures/trl/prefs.jsonl"
MPIRUN=(mpirun --oversubscribe -np 2)
[[ $(id -u) -eq 0 ]] && MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Containers often forbid the cross-process memory copy Open MPI's shared-memory transport tries
# first (CMA needs ptrace rights); plain copies work everywhere.
export OMPI_MCA_btl_vader_single_copy_mechanism=none

"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --out "$tmp/base" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/base/"

# Column `key` of every metrics line, one value per line.
column() { sed -n "s|.*\"$2\":\\([0-9.e+-]*\\).*|\\1|p" "$1"; }
# Every pair of values agrees to `tol` relative (of max(1e-3, |b|)).
same() {
  paste <(printf '%s\n' "$1") <(printf '%s\n' "$2") |
    awk -v tol="$3" '{ d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2; if (s < 1e-3) s = 1e-3;
                       if (d > tol * s) { print "differs: " $1 " vs " $2; bad = 1 } n++ }
                     END { exit bad || n == 0 }'
}
logps() {
  "$RLHF" eval --data "$PREFS" --policy "$1" --ref-model "$tmp/base" --max-length 256 --scores-out "$1.scores" >/dev/null
  sed 's/.*"policy_logps":{"chosen":\([0-9.e+-]*\),"rejected":\([0-9.e+-]*\)}.*/\1\n\2/' "$1.scores"
}

for task in dpo sft; do
  data="$PREFS"
  if [[ $task == sft ]]; then
    data="$tmp/sft.jsonl"
    for i in $(seq 1 16); do echo "{\"prompt\": \"Say $i :\", \"completion\": \" number $i , twice $i $i .\"}"; done > "$data"
  fi
  args=(--model "$tmp/base" --data "$data" --per-device-train-batch-size 2 --max-steps 6 --learning-rate 1e-3
        --lr-scheduler-type constant --max-length 64 --threads 1)
  "${MPIRUN[@]}" "$RLHF" "$task" "${args[@]}" --out "$tmp/$task-dp2" > "$tmp/$task-dp2.log" 2>&1 \
    || fail "$task under mpirun: $(cat "$tmp/$task-dp2.log")"
  grep -q '"ranks": 2' "$tmp/$task-dp2/manifest.json" || fail "$task manifest: ranks"
  "$RLHF" "$task" "${args[@]}" --gradient-accumulation-steps 2 --out "$tmp/$task-acc2" > /dev/null
  [[ $(grep -c . "$tmp/$task-dp2/metrics.jsonl") -eq 6 ]] || fail "$task: rank 0 alone writes the metrics"
  same "$(column "$tmp/$task-dp2/metrics.jsonl" loss)" "$(column "$tmp/$task-acc2/metrics.jsonl" loss)" 1e-5 \
    || fail "$task: 2 ranks vs accumulation 2: loss curves differ"
  same "$(column "$tmp/$task-dp2/metrics.jsonl" grad_norm)" "$(column "$tmp/$task-acc2/metrics.jsonl" grad_norm)" 1e-4 \
    || fail "$task: grad norms differ"
  same "$(logps "$tmp/$task-dp2")" "$(logps "$tmp/$task-acc2")" 1e-5 || fail "$task: final weights differ"
done
# lm weighs every token of a step alike over the ranks, so 2 ranks of B rows are 1 process with
# 2 micro-batches of B.
largs=(--model "$tmp/base" --synthetic --synthetic-docs 200 --seq-len 32 --batch-size 2 --max-steps 6
       --learning-rate 1e-3 --lr-scheduler-type constant --threads 1)
"${MPIRUN[@]}" "$RLHF" lm "${largs[@]}" --out "$tmp/lm-dp2" > "$tmp/lm-dp2.log" 2>&1 || fail "lm under mpirun: $(cat "$tmp/lm-dp2.log")"
"$RLHF" lm "${largs[@]}" --grad-accum 2 --out "$tmp/lm-acc2" > /dev/null
grep -q '"ranks": 2' "$tmp/lm-dp2/manifest.json" || fail "lm manifest: ranks"
same "$(column "$tmp/lm-dp2/metrics.jsonl" loss)" "$(column "$tmp/lm-acc2/metrics.jsonl" loss)" 1e-5 \
  || fail "lm: 2 ranks vs accumulation 2: loss curves differ"
same "$(column "$tmp/lm-dp2/metrics.jsonl" grad_norm)" "$(column "$tmp/lm-acc2/metrics.jsonl" grad_norm)" 1e-4 \
  || fail "lm: grad norms differ"
same "$(logps "$tmp/lm-dp2")" "$(logps "$tmp/lm-acc2")" 1e-5 || fail "lm: final weights differ"

# DPO's loss is a mean over pairs, so batch 2B on one process is the same run too.
"$RLHF" dpo --model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 4 --max-steps 6 --learning-rate 1e-3 \
  --lr-scheduler-type constant --max-length 64 --threads 1 --out "$tmp/dpo-b4" > /dev/null
same "$(column "$tmp/dpo-dp2/metrics.jsonl" loss)" "$(column "$tmp/dpo-b4/metrics.jsonl" loss)" 1e-5 \
  || fail "dpo: 2 ranks vs batch 2B: loss curves differ"

# ZeRO-1 (AdamW moments sharded over the ranks) gives the plain data-parallel weights bit for bit,
# also across a checkpoint (saved whole) and a resume.
zargs=(--model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 6 --save-steps 3
       --learning-rate 1e-3 --lr-scheduler-type constant --max-length 64 --threads 1)
"${MPIRUN[@]}" "$RLHF" dpo "${zargs[@]}" --out "$tmp/plain" > /dev/null 2>&1 || fail "plain 2-rank dpo"
"${MPIRUN[@]}" "$RLHF" dpo "${zargs[@]}" --zero1 --out "$tmp/zero1" > "$tmp/zero1.log" 2>&1 || fail "zero1: $(cat "$tmp/zero1.log")"
grep -q "ZeRO-1: AdamW moments" "$tmp/zero1.log" || fail "zero1: memory per rank not reported"
cmp -s "$tmp/plain/model.safetensors" "$tmp/zero1/model.safetensors" || fail "zero1 weights differ from plain DP"
cmp -s "$tmp/plain/checkpoint-3/optimizer.safetensors" "$tmp/zero1/checkpoint-3/optimizer.safetensors" \
  || fail "zero1 checkpoint's optimizer state differs"
rm "$tmp/zero1/model.safetensors"
"${MPIRUN[@]}" "$RLHF" dpo "${zargs[@]}" --zero1 --out "$tmp/zero1" --resume > /dev/null 2>&1 || fail "zero1 resume"
cmp -s "$tmp/plain/model.safetensors" "$tmp/zero1/model.safetensors" || fail "resumed zero1 weights differ"

# A resume with a different number of ranks is refused, naming the setting.
"${MPIRUN[@]}" "$RLHF" dpo --model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 4 \
  --save-steps 2 --max-length 64 --threads 1 --out "$tmp/ckpt" > /dev/null 2>&1 || fail "dpo with checkpoints"
rm "$tmp/ckpt/model.safetensors"
set +e
out=$("$RLHF" dpo --model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 4 --save-steps 2 \
  --max-length 64 --threads 1 --out "$tmp/ckpt" --resume 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"ranks"* ]] || fail "resume on 1 rank of a 2-rank run: rc=$rc $out"

# kill -9 of one rank mid-run ends the whole job with a non-zero exit; its last checkpoint is
# valid, and resuming it on 2 ranks ends with the same weights, byte for byte, as a run that was
# never interrupted (the reduction order is fixed).
long=(--model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 300 --save-steps 20
      --learning-rate 1e-4 --max-length 64 --threads 1)
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --out "$tmp/whole" > /dev/null 2>&1 || fail "uninterrupted 2-rank run"
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --out "$tmp/killed" > /dev/null 2>&1 &
job=$!
for _ in $(seq 1 600); do [[ -d "$tmp/killed/checkpoint-20" ]] && break; sleep 0.05; done
victim=$(pgrep -f -n "^$RLHF dpo .*$tmp/killed" || true)  # a rank, not mpirun
[[ -n $victim ]] || fail "no rank process found to kill"
kill -9 "$victim"
set +e
timeout 60 tail --pid="$job" -f /dev/null; wait "$job"; rc=$?
set -e
[[ -d "$tmp/killed/checkpoint-20" && ! -f "$tmp/killed/model.safetensors" ]] \
  || fail "the 2-rank run was not killed after its first checkpoint; make it longer"
[[ $rc -ne 0 ]] || fail "killing one rank did not fail the job"
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --out "$tmp/killed" --resume > "$tmp/resumed.log" 2>&1 \
  || fail "resume on 2 ranks: $(cat "$tmp/resumed.log")"
cmp -s "$tmp/whole/model.safetensors" "$tmp/killed/model.safetensors" || fail "resumed 2-rank weights differ"

# A hung rank (SIGSTOP) stops the job after --dist-timeout: the waiting rank names itself and the
# step; no process is left behind, and the last checkpoint still resumes.
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --dist-timeout 3 --out "$tmp/hung" > "$tmp/hung.log" 2>&1 &
job=$!
for _ in $(seq 1 600); do [[ -d "$tmp/hung/checkpoint-20" ]] && break; sleep 0.05; done
victim=$(pgrep -f -n "^$RLHF dpo .*$tmp/hung" || true)
[[ -n $victim ]] || fail "no rank process found to stop"
kill -STOP "$victim"
set +e
timeout 60 tail --pid="$job" -f /dev/null; wait "$job"; rc=$?
set -e
pgrep -f "^$RLHF dpo .*$tmp/hung" > /dev/null && { pkill -9 -f "^$RLHF dpo .*$tmp/hung"; fail "ranks left after the hang"; }
[[ $rc -ne 0 ]] && grep -q "a collective did not complete in 3 s at step" "$tmp/hung.log" \
  || fail "hung rank: rc=$rc $(tail -5 "$tmp/hung.log")"
rm -rf "$tmp/hung/model.safetensors"
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --dist-timeout 3 --out "$tmp/hung" --resume > "$tmp/hung-resumed.log" 2>&1 \
  || fail "resume after the hang: $(tail -5 "$tmp/hung-resumed.log")"
cmp -s "$tmp/whole/model.safetensors" "$tmp/hung/model.safetensors" || fail "weights after resuming the hung run differ"

# A NaN loss on one rank (the test hook RLHF_TEST_NAN_RANK/STEP, src/train/faults.h, compiled with
# -DRLHF_TEST_HOOKS=ON as scripts/test.sh builds; without it this part fails) stops every
# rank before the optimizer step with a non-zero exit and a message naming the rank and the step;
# the last checkpoint stays valid and resumes to the uninterrupted run's weights, byte for byte.
nan_env=(-x RLHF_TEST_NAN_RANK=1 -x RLHF_TEST_NAN_STEP=5)
set +e
out=$(timeout 60 "${MPIRUN[@]}" "${nan_env[@]}" "$RLHF" dpo "${zargs[@]}" --out "$tmp/nan" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 && $out == *"step 5: non-finite loss on rank 1"* ]] || fail "dpo NaN on rank 1: rc=$rc $out"
[[ -d "$tmp/nan/checkpoint-3" && ! -d "$tmp/nan/checkpoint-6" && ! -f "$tmp/nan/model.safetensors" ]] \
  || fail "dpo NaN: outputs $(ls "$tmp/nan")"
pgrep -f "^$RLHF dpo .*$tmp/nan" > /dev/null && fail "ranks left after the NaN"
"${MPIRUN[@]}" "$RLHF" dpo "${zargs[@]}" --out "$tmp/nan" --resume > "$tmp/nan-resumed.log" 2>&1 \
  || fail "resume after the NaN: $(tail -5 "$tmp/nan-resumed.log")"
cmp -s "$tmp/plain/model.safetensors" "$tmp/nan/model.safetensors" || fail "weights after resuming the NaN run differ"

# ---- The online methods under mpirun ----
for i in $(seq 0 15); do echo "{\"prompt\": \"Say a color $i :\", \"answer\": \"blue\"}"; done > "$tmp/prompts.jsonl"
oargs=(--model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=12):chars" --max-new-tokens 6
       --max-steps 4 --learning-rate 1e-3 --lr-scheduler-type constant --max-length 64 --threads 1)
# RLOO: 2 ranks x 2 prompts (x 2 samples) per step against 1 process with 4 prompts, and with 4
# prompts in 2 micro-batches; two passes of two minibatches, so that the global minibatches mix
# the ranks' samples. Each rank samples its own prompts with their own seeds; the advantages
# (leave-one-out baselines) are computed over the gathered batch; the gradients are summed.
rargs=("${oargs[@]}" --num-iterations 2 --num-mini-batches 2)
"${MPIRUN[@]}" "$RLHF" rloo "${rargs[@]}" --prompts-per-step 2 --out "$tmp/rloo-dp2" > "$tmp/rloo-dp2.log" 2>&1 \
  || fail "rloo under mpirun: $(cat "$tmp/rloo-dp2.log")"
grep -q '"ranks": 2' "$tmp/rloo-dp2/manifest.json" || fail "rloo manifest: ranks"
[[ $(grep -c . "$tmp/rloo-dp2/metrics.jsonl") -eq 4 ]] || fail "rloo: rank 0 alone writes the metrics"
"$RLHF" rloo "${rargs[@]}" --prompts-per-step 4 --out "$tmp/rloo-b4" > /dev/null
"$RLHF" rloo "${rargs[@]}" --prompts-per-step 4 --micro-batches 2 --out "$tmp/rloo-mb2" > /dev/null
for ref in rloo-b4 rloo-mb2; do
  same "$(column "$tmp/rloo-dp2/metrics.jsonl" objective/scores)" "$(column "$tmp/$ref/metrics.jsonl" objective/scores)" 1e-6 \
    || fail "rloo: 2 ranks vs $ref: scores differ (different samples)"
  same "$(column "$tmp/rloo-dp2/metrics.jsonl" loss)" "$(column "$tmp/$ref/metrics.jsonl" loss)" 1e-4 \
    || fail "rloo: 2 ranks vs $ref: loss curves differ"
  same "$(column "$tmp/rloo-dp2/metrics.jsonl" grad_norm)" "$(column "$tmp/$ref/metrics.jsonl" grad_norm)" 1e-5 \
    || fail "rloo: 2 ranks vs $ref: grad norms differ"
  same "$(logps "$tmp/rloo-dp2")" "$(logps "$tmp/$ref")" 1e-5 || fail "rloo: 2 ranks vs $ref: final weights differ"
done

# PPO with TRL's score placement: completions that stop early (a generation config with 200 more
# stop ids) have an extra value slot, so a rank's (or a micro-batch's) share of the value loss is
# its share of the value slots, not of the tokens. 2 ranks x 2 prompts against 1 process with 4
# prompts, and with 4 in 2 micro-batches.
mkdir "$tmp/stops"
cp "$tmp/base/"* "$tmp/stops/"
echo "{\"eos_token_id\": [$(seq -s, 100 299)]}" > "$tmp/stops/generation_config.json"
pargs=("${oargs[@]}" --model "$tmp/stops" --score-placement trl_after_eos --num-ppo-epochs 2 --num-mini-batches 2)
"${MPIRUN[@]}" "$RLHF" ppo "${pargs[@]}" --prompts-per-step 2 --out "$tmp/trl-dp2" > "$tmp/trl-dp2.log" 2>&1 \
  || fail "ppo trl_after_eos under mpirun: $(cat "$tmp/trl-dp2.log")"
head -1 "$tmp/trl-dp2/metrics.jsonl" | grep -q '"val/num_eos_tokens":0.0' && fail "ppo trl_after_eos: no early stop"
"$RLHF" ppo "${pargs[@]}" --prompts-per-step 4 --out "$tmp/trl-b4" > /dev/null
"$RLHF" ppo "${pargs[@]}" --prompts-per-step 4 --micro-batches 2 --out "$tmp/trl-mb2" > /dev/null
for ref in trl-b4 trl-mb2; do
  same "$(column "$tmp/trl-dp2/metrics.jsonl" objective/scores)" "$(column "$tmp/$ref/metrics.jsonl" objective/scores)" 1e-6 \
    || fail "ppo trl_after_eos: 2 ranks vs $ref: scores differ (different samples)"
  for k in loss loss/value_avg; do
    same "$(column "$tmp/trl-dp2/metrics.jsonl" $k)" "$(column "$tmp/$ref/metrics.jsonl" $k)" 1e-4 \
      || fail "ppo trl_after_eos: 2 ranks vs $ref: $k differs"
  done
  same "$(column "$tmp/trl-dp2/metrics.jsonl" grad_norm)" "$(column "$tmp/$ref/metrics.jsonl" grad_norm)" 1e-5 \
    || fail "ppo trl_after_eos: 2 ranks vs $ref: grad norms differ"
  same "$(logps "$tmp/trl-dp2")" "$(logps "$tmp/$ref")" 1e-5 || fail "ppo trl_after_eos: 2 ranks vs $ref: final weights differ"
done

# Every other online method (PPO with whitened rewards and the adaptive KL controller, APA,
# REINFORCE with its moving baseline, GRPO, online DPO) on 2 ranks x 2 prompts trains like 1
# process with 4 prompts: the same samples, loss curve, grad norms and final weights. A
# checkpointed 2-rank run resumes to the same weights, byte for byte (the samples of a step
# depend on the step and the prompt alone).
for cmd in ppo apa reinforce grpo online-dpo; do
  extra=()
  [[ $cmd == grpo ]] && extra=(--num-generations 4 --beta 0.04)
  [[ $cmd == ppo ]] && extra=(--whiten-rewards --adaptive-kl --kl-target 0.1 --num-mini-batches 2)
  "${MPIRUN[@]}" "$RLHF" "$cmd" "${oargs[@]}" "${extra[@]}" --prompts-per-step 2 --save-steps 2 --out "$tmp/$cmd-dp2" \
    > "$tmp/$cmd-dp2.log" 2>&1 || fail "$cmd under mpirun: $(tail -5 "$tmp/$cmd-dp2.log")"
  [[ $(grep -c '"step"' "$tmp/$cmd-dp2/metrics.jsonl") -eq 4 && -s "$tmp/$cmd-dp2/model.safetensors" ]] \
    || fail "$cmd under mpirun: outputs"
  "$RLHF" "$cmd" "${oargs[@]}" "${extra[@]}" --prompts-per-step 4 --out "$tmp/$cmd-b4" > /dev/null
  same "$(column "$tmp/$cmd-dp2/metrics.jsonl" objective/scores)" "$(column "$tmp/$cmd-b4/metrics.jsonl" objective/scores)" \
    1e-6 || fail "$cmd: 2 ranks vs 1 process: scores differ (different samples)"
  same "$(column "$tmp/$cmd-dp2/metrics.jsonl" loss)" "$(column "$tmp/$cmd-b4/metrics.jsonl" loss)" 1e-4 \
    || fail "$cmd: 2 ranks vs 1 process: loss curves differ"
  same "$(column "$tmp/$cmd-dp2/metrics.jsonl" grad_norm)" "$(column "$tmp/$cmd-b4/metrics.jsonl" grad_norm)" 1e-5 \
    || fail "$cmd: 2 ranks vs 1 process: grad norms differ"
  same "$(logps "$tmp/$cmd-dp2")" "$(logps "$tmp/$cmd-b4")" 1e-5 || fail "$cmd: 2 ranks vs 1 process: final weights differ"
done
cp -r "$tmp/ppo-dp2" "$tmp/ppo-again"
rm "$tmp/ppo-again/model.safetensors"
"${MPIRUN[@]}" "$RLHF" ppo "${oargs[@]}" --whiten-rewards --adaptive-kl --kl-target 0.1 --num-mini-batches 2 \
  --prompts-per-step 2 --save-steps 2 --out "$tmp/ppo-again" --resume > "$tmp/ppo-again.log" 2>&1 \
  || fail "ppo resume on 2 ranks: $(tail -5 "$tmp/ppo-again.log")"
cmp -s "$tmp/ppo-dp2/model.safetensors" "$tmp/ppo-again/model.safetensors" || fail "resumed 2-rank ppo weights differ"
rm "$tmp/ppo-again/model.safetensors"
set +e
out=$("$RLHF" ppo "${oargs[@]}" --whiten-rewards --adaptive-kl --kl-target 0.1 --num-mini-batches 2 \
  --prompts-per-step 2 --save-steps 2 --out "$tmp/ppo-again" --resume 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"ranks"* ]] || fail "online resume on 1 rank of a 2-rank run: rc=$rc $out"
# --save-rollouts needs one process (each rank holds only its own samples): refused, naming it.
set +e
out=$("${MPIRUN[@]}" "$RLHF" grpo "${oargs[@]}" --num-generations 4 --prompts-per-step 2 --save-rollouts \
  --out "$tmp/rollouts-dp2" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $out == *"--save-rollouts needs a single process"* && ! -e "$tmp/rollouts-dp2" ]] \
  || fail "--save-rollouts on 2 ranks: rc=$rc $out"

# best-of-n: each rank samples its slice of the prompts, rank 0 writes every row in prompt order.
bargs=(--model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=12):chars" --n 4 --max-new-tokens 6
       --threads 1)
"${MPIRUN[@]}" "$RLHF" best-of-n "${bargs[@]}" --out "$tmp/best2.jsonl" > "$tmp/best2.log" 2>&1 \
  || fail "best-of-n under mpirun: $(tail -5 "$tmp/best2.log")"
"$RLHF" best-of-n "${bargs[@]}" --out "$tmp/best1.jsonl" > "$tmp/best1.log"
[[ $(grep -c '"score"' "$tmp/best2.jsonl") -eq 16 && "$(cat "$tmp/best2.log")" == "$(cat "$tmp/best1.log")" ]] \
  || fail "best-of-n on 2 ranks: $(cat "$tmp/best2.log") vs $(cat "$tmp/best1.log")"
same "$(sed 's/.*"score":\([0-9.e+-]*\).*/\1/' "$tmp/best2.jsonl")" "$(sed 's/.*"score":\([0-9.e+-]*\).*/\1/' "$tmp/best1.jsonl")" 1e-6 \
  || fail "best-of-n: 2 ranks' rows differ"
# iterative DPO: sampling split over the ranks, the rounds' DPO data-parallel (per-device batch 2
# on 2 ranks against 4 on one process; DPO's loss is a mean over pairs).
iargs=(--model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=12):chars" --num-generations 4
       --rounds 2 --max-new-tokens 6 --learning-rate 1e-3 --max-length 64 --threads 1)
"${MPIRUN[@]}" "$RLHF" iterative-dpo "${iargs[@]}" --per-device-train-batch-size 2 --out "$tmp/it2" > "$tmp/it2.log" 2>&1 \
  || fail "iterative-dpo under mpirun: $(tail -5 "$tmp/it2.log")"
"$RLHF" iterative-dpo "${iargs[@]}" --per-device-train-batch-size 4 --out "$tmp/it1" > /dev/null
same "$(column "$tmp/it2/metrics.jsonl" train/loss)" "$(column "$tmp/it1/metrics.jsonl" train/loss)" 1e-5 \
  || fail "iterative-dpo: 2 ranks vs batch 2B: losses differ"
same "$(logps "$tmp/it2")" "$(logps "$tmp/it1")" 1e-5 || fail "iterative-dpo: final weights differ"

# A NaN loss on rank 1 at step 3 of a 2-rank RLOO run: every rank stops naming it; checkpoint-2
# resumes to the uninterrupted run's weights.
cargs=("${oargs[@]}" --prompts-per-step 2 --save-steps 2)
"${MPIRUN[@]}" "$RLHF" rloo "${cargs[@]}" --out "$tmp/rloo-whole" > /dev/null 2>&1 || fail "2-rank rloo with checkpoints"
set +e
out=$(timeout 60 "${MPIRUN[@]}" -x RLHF_TEST_NAN_RANK=1 -x RLHF_TEST_NAN_STEP=3 "$RLHF" rloo "${cargs[@]}" \
  --out "$tmp/rloo-nan" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 && $out == *"step 3: non-finite loss on rank 1"* ]] || fail "rloo NaN on rank 1: rc=$rc $out"
[[ -d "$tmp/rloo-nan/checkpoint-2" && ! -f "$tmp/rloo-nan/model.safetensors" ]] || fail "rloo NaN: outputs"
"${MPIRUN[@]}" "$RLHF" rloo "${cargs[@]}" --out "$tmp/rloo-nan" --resume > "$tmp/rloo-nan.log" 2>&1 \
  || fail "rloo resume after the NaN: $(tail -5 "$tmp/rloo-nan.log")"
cmp -s "$tmp/rloo-whole/model.safetensors" "$tmp/rloo-nan/model.safetensors" || fail "rloo weights after the NaN resume differ"

# An error on the ranks stops all of them with a non-zero exit, never a hang.
printf '{"prompt": "a", "chosen": 3, "rejected": "b"}\n' > "$tmp/bad.jsonl"
set +e
out=$(timeout 60 "${MPIRUN[@]}" "$RLHF" dpo --model "$tmp/base" --data "$tmp/bad.jsonl" --out "$tmp/bad" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 && $out == *"bad.jsonl:1"* ]] || fail "bad input under mpirun: rc=$rc $out"
set +e
out=$(timeout 60 "${MPIRUN[@]}" "$RLHF" generate --model "$tmp/base" --prompts "$tmp/prompts.jsonl" --out "$tmp/gen.jsonl" 2>&1)
rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 && $out == *"does not run data-parallel"* ]] || fail "generate under mpirun: rc=$rc $out"
echo "1 passed, 0 failed"
