#!/usr/bin/env bash
# rlhf sft | rm | dpo from the command line, as a user runs them: an HF model directory with a
# tokenizer (tests/fixtures/text/tokenizers/qwen2) and TRL-format JSONL files. Checks the
# outputs, a recipe, exact resume after kill -9, and clear errors for bad input.
set -euo pipefail
RLHF="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TOK="$ROOT/tests/fixtures/text/tokenizers/qwen2"
PREFS="$ROOT/tests/fixtures/trl/prefs.jsonl"

"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --out "$tmp/base" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/base/"

# SFT on the three TRL layouts (prompt/completion, text, messages through the chat template).
for i in 1 2 3 4 5 6 7 8; do
  cat >> "$tmp/sft.jsonl" <<JSONL
{"prompt": "What color is the sky $i ?", "completion": " The sky is blue ."}
{"text": "Name a fruit . An apple $i ."}
{"messages": [{"role": "user", "content": "Say hello $i ."}, {"role": "assistant", "content": " Hello !"}]}
JSONL
done
"$RLHF" sft --model "$tmp/base" --data "$tmp/sft.jsonl" --out "$tmp/sft" --per-device-train-batch-size 8 \
  --num-train-epochs 3 --learning-rate 3e-3 --max-length 64 --logging-steps 100 > "$tmp/sft.log"
first=$(head -1 "$tmp/sft/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -1 "$tmp/sft/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v f="$first" -v l="$last" 'BEGIN { exit !(l < 0.85 * f) }' || fail "sft loss did not go down: $first -> $last"
[[ -s "$tmp/sft/model.safetensors" && -s "$tmp/sft/tokenizer.json" ]] || fail "sft outputs"

# Reward model: a sequence classifier with TRL's metric names.
"$RLHF" rm --model "$tmp/base" --data "$PREFS" --out "$tmp/rm" --per-device-train-batch-size 4 --max-steps 4 \
  --learning-rate 1e-3 --max-length 64 > "$tmp/rm.log"
grep -q '"architectures": \[' "$tmp/rm/config.json" && grep -q ForSequenceClassification "$tmp/rm/config.json" \
  || fail "rm config"
grep -q '"accuracy"' "$tmp/rm/metrics.jsonl" && grep -q '"margin"' "$tmp/rm/metrics.jsonl" || fail "rm metrics"

# DPO from a recipe, with evaluation, checkpoints, and a run killed and resumed.
cat > "$tmp/dpo.yaml" <<YAML
loss_type: [sigmoid, sft]
loss_weights: [1.0, 0.5]
beta: 0.1
per_device_train_batch_size: 4
max_steps: 200
learning_rate: 1.0e-3
lr_scheduler_type: cosine
warmup_ratio: 0.1
max_length: 64
eval_steps: 100
save_steps: 20
logging_steps: 100
threads: 1
YAML
dpo_args=(dpo --config "$tmp/dpo.yaml" --model "$tmp/base" --data "$PREFS" --eval-data "$PREFS")
"$RLHF" "${dpo_args[@]}" --out "$tmp/dpo" > "$tmp/dpo.log"
for k in rewards/chosen rewards/rejected rewards/accuracies rewards/margins logps/chosen logps/rejected eval_loss; do
  grep -q "\"$k\"" "$tmp/dpo/metrics.jsonl" || fail "dpo metric $k missing"
done
grep -q '"loss-type": "command line"\|"loss-type": ".*dpo.yaml:1"' "$tmp/dpo/manifest.json" || fail "manifest provenance"
"$RLHF" "${dpo_args[@]}" --out "$tmp/killed" > /dev/null &  # the binary itself, so kill -9 reaches it
pid=$!
for _ in $(seq 1 600); do [[ -d "$tmp/killed/checkpoint-20" ]] && break; sleep 0.05; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
[[ -d "$tmp/killed/checkpoint-20" ]] || fail "no checkpoint before the kill"
[[ ! -f "$tmp/killed/model.safetensors" ]] || fail "the run finished before it could be killed; make it longer"
"$RLHF" "${dpo_args[@]}" --out "$tmp/killed" --resume > "$tmp/resume.log"
grep -q "resumed from" "$tmp/resume.log" || fail "dpo did not resume"
cmp -s "$tmp/dpo/model.safetensors" "$tmp/killed/model.safetensors" || fail "resumed dpo weights differ"

# Evaluation of the reward model and of the DPO policy's implicit reward on the same pairs.
"$RLHF" eval --data "$PREFS" --reward-model "$tmp/rm" --policy "$tmp/dpo" --ref-model "$tmp/base" --max-length 64 \
  --out "$tmp/eval.json" --scores-out "$tmp/scores.jsonl" > "$tmp/eval.log"
grep -q "implicit_reward" "$tmp/eval.log" && grep -q "margin correlation" "$tmp/eval.log" || fail "eval output"
grep -q '"auc"' "$tmp/eval.json" && grep -q '"spearman"' "$tmp/eval.json" || fail "eval json"
[[ $(grep -c '"reward_model".*"policy_logps".*"implicit_reward"' "$tmp/scores.jsonl") -eq $(grep -c . "$PREFS") ]] \
  || fail "eval --scores-out: one row per pair"
# The trained DPO policy orders its own training pairs better than chance.
acc=$(sed -n '/"implicit_reward"/,/}/s/.*"accuracy": \([0-9.e-]*\).*/\1/p' "$tmp/eval.json")
awk -v a="$acc" 'BEGIN { exit !(a > 0.6) }' || fail "implicit-reward accuracy $acc after DPO"

# KTO on TRL's unpaired layout: the loss falls, TRL's KTO metrics are logged, z0 ("kl") leaves 0.
"$RLHF" kto --model "$tmp/base" --data "$ROOT/tests/fixtures/trl/unpaired.jsonl" --out "$tmp/kto" \
  --per-device-train-batch-size 4 --max-steps 30 --learning-rate 1e-3 --max-length 64 > "$tmp/kto.log"
for k in kl rewards/chosen rewards/rejected rewards/margins logps/chosen logps/rejected logits/chosen; do
  tail -1 "$tmp/kto/metrics.jsonl" | grep -q "\"$k\"" || fail "kto metric $k missing"
done
metric() { tail -1 "$1" | sed "s|.*\"$2\":\([0-9.e+-]*\).*|\1|"; }
awk -v l="$(metric "$tmp/kto/metrics.jsonl" loss)" -v kl="$(metric "$tmp/kto/metrics.jsonl" kl)" \
  'BEGIN { exit !(l < 0.45 && kl > 0) }' || fail "kto did not learn: $(tail -1 "$tmp/kto/metrics.jsonl")"

# Ranked data (scores with ties, and explicit rankings): Plackett-Luce and K-wise reward models,
# listwise DPO. Each learns to order the four completions of every prompt.
for i in $(seq 0 23); do
  c=(red green blue yellow black white); c1=${c[$((i % 6))]}; c2=${c[$(((i + 1) % 6))]}
  if (( i % 2 == 0 )); then
    printf '{"prompt": "What color is item %d ?", "completions": [" It is %s .", " It is %s , I think .", " Maybe %s .", " No idea ."], "scores": [4, 3, %d, 1]}\n' \
      "$i" "$c1" "$c1" "$c2" $(( i % 4 == 0 ? 3 : 2 )) >> "$tmp/ranked.jsonl"
  else
    printf '{"prompt": "What color is item %d ?", "completions": [" No idea .", " Maybe %s .", " It is %s , I think .", " It is %s ."], "ranking": [3, 2, 1, 0]}\n' \
      "$i" "$c2" "$c1" "$c1" >> "$tmp/ranked.jsonl"
  fi
done
for loss in plackett_luce kwise; do
  "$RLHF" rm --model "$tmp/base" --data "$tmp/ranked.jsonl" --loss "$loss" --out "$tmp/rm_$loss" \
    --per-device-train-batch-size 4 --max-steps 30 --learning-rate 1e-3 --max-length 64 > "$tmp/rm_$loss.log"
  grep -q "24 rankings" "$tmp/rm_$loss.log" && grep -q "6 rows with tied scores" "$tmp/rm_$loss.log" \
    || fail "rm $loss data summary: $(cat "$tmp/rm_$loss.log")"
  awk -v a="$(metric "$tmp/rm_$loss/metrics.jsonl" accuracy)" 'BEGIN { exit !(a > 0.9) }' \
    || fail "rm $loss accuracy: $(tail -1 "$tmp/rm_$loss/metrics.jsonl")"
done
"$RLHF" dpo --model "$tmp/base" --data "$tmp/ranked.jsonl" --loss-type listwise --out "$tmp/listwise" \
  --per-device-train-batch-size 4 --max-steps 30 --learning-rate 1e-3 --max-length 64 > "$tmp/listwise.log"
awk -v a="$(metric "$tmp/listwise/metrics.jsonl" rewards/accuracies)" 'BEGIN { exit !(a > 0.7) }' \
  || fail "listwise DPO accuracy: $(tail -1 "$tmp/listwise/metrics.jsonl")"
# Batches of 3 from 2 rankings span epoch boundaries, so a ranking sits in one batch twice.
head -2 "$tmp/ranked.jsonl" > "$tmp/ranked2.jsonl"
"$RLHF" dpo --model "$tmp/base" --data "$tmp/ranked2.jsonl" --loss-type listwise --out "$tmp/listwise5" \
  --per-device-train-batch-size 3 --max-steps 4 --max-length 64 > "$tmp/listwise5.log" 2>&1 \
  || fail "listwise DPO, batches across epochs: $(tail -2 "$tmp/listwise5.log")"
"$RLHF" rm --model "$tmp/base" --data "$tmp/ranked2.jsonl" --loss plackett_luce --out "$tmp/rm5" \
  --per-device-train-batch-size 3 --max-steps 4 --max-length 64 > "$tmp/rm5.log" 2>&1 \
  || fail "PL reward model, batches across epochs: $(tail -2 "$tmp/rm5.log")"

# Bad input: a named error and exit code 2.
printf '{"prompt": "a", "chosen": 3, "rejected": "b"}\n' > "$tmp/bad.jsonl"
set +e
out=$("$RLHF" dpo --model "$tmp/base" --data "$tmp/bad.jsonl" --out "$tmp/bad" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"bad.jsonl:1"*"chosen"* ]] || fail "bad row: rc=$rc $out"
set +e
out=$("$RLHF" dpo --model "$tmp/base" --data "$PREFS" --out "$tmp/bad2" --loss-type sigmod 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"sigmod"* ]] || fail "bad loss type: rc=$rc $out"
set +e
out=$("$RLHF" dpo --model "$tmp/base" --data "$tmp/ranked.jsonl" --out "$tmp/bad3" --loss-type listwise,sigmoid 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"listwise"* ]] || fail "listwise combined: rc=$rc $out"
printf '{"prompt": "a", "completion": "b", "label": true}\n{"prompt": "a", "completion": "b"}\n' > "$tmp/bad_kto.jsonl"
set +e
out=$("$RLHF" kto --model "$tmp/base" --data "$tmp/bad_kto.jsonl" --out "$tmp/bad4" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"bad_kto.jsonl:2"*"label"* ]] || fail "kto missing label: rc=$rc $out"
set +e
out=$("$RLHF" rm --model "$tmp/base" --data "$PREFS" --out "$tmp/bad5" --loss plackett 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"plackett"* ]] || fail "bad rm loss: rc=$rc $out"

# GPT-2's learned positions end at n_positions (256 for the tiny preset): with the default
# --max-length (1024), long rows are truncated to the table (a note says so) instead of failing.
"$RLHF" init-model --family gpt2 --preset tiny --vocab-size 2048 --out "$tmp/gpt2" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/gpt2/"
long=$(printf 'one two three four five six seven eight nine ten %.0s' $(seq 1 60))
for i in 1 2 3 4; do
  printf '{"prompt": "Count %s:", "chosen": " %s", "rejected": " %s stop"}\n' "$i" "$long" "$long" >> "$tmp/long.jsonl"
  printf '{"prompt": "Say %s:", "chosen": " yes", "rejected": " no"}\n' "$i" >> "$tmp/long.jsonl"
done
for cmd in sft dpo; do
  data="$tmp/long.jsonl"
  [[ $cmd == sft ]] && data="$tmp/sft.jsonl"
  "$RLHF" $cmd --model "$tmp/gpt2" --data "$data" --out "$tmp/gpt2-$cmd" --max-steps 2 \
    --per-device-train-batch-size 4 > "$tmp/gpt2-$cmd.log" 2>&1 || fail "gpt2 $cmd: $(tail -3 "$tmp/gpt2-$cmd.log")"
  grep -q "capped at 256 tokens" "$tmp/gpt2-$cmd.log" || fail "gpt2 $cmd: no note on the position cap"
done
python3 - "$tmp/gpt2-dpo/manifest.json" <<'PY' || fail "gpt2 dpo: the long pairs were not truncated"
import json, sys
c = json.load(open(sys.argv[1]))["data"]["collate"]
assert c["truncated_sequences"] == 8 and c["kept"] == 8, c
PY
"$RLHF" eval --policy "$tmp/gpt2-dpo" --ref-model "$tmp/gpt2" --data "$tmp/long.jsonl" > "$tmp/gpt2-eval.log" 2>&1 \
  || fail "gpt2 eval: $(tail -3 "$tmp/gpt2-eval.log")"
grep -q "capped at 256 tokens" "$tmp/gpt2-eval.log" && grep -q "accuracy" "$tmp/gpt2-eval.log" || fail "gpt2 eval output"

# A learning rate that drives the weights to Inf: the run stops (exit 4) before saving them.
set +e
out=$("$RLHF" sft --model "$tmp/gpt2" --data "$tmp/sft.jsonl" --out "$tmp/diverged" --max-steps 1 \
  --learning-rate 1e38 2>&1); rc=$?
set -e
[[ $rc -eq 4 && $out == *"refusing to save"*"NaN or Inf"* && ! -e "$tmp/diverged/model.safetensors" ]] \
  || fail "diverged sft: rc=$rc $out"

# eval --reward-model on a causal LM (no trained score head) is refused, not scored by a random head.
set +e
out=$("$RLHF" eval --reward-model "$tmp/base" --data "$PREFS" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"has no score head"* ]] || fail "eval of a model without a score head: rc=$rc $out"

# An update that overflows mid-run (warm-up: lr 0 at step 1, then 5e38): the run stops at step 2
# (exit 4), naming the step and a tensor; checkpoint-1 stays, nothing of step 2 is written.
set +e
out=$("$RLHF" sft --model "$tmp/gpt2" --data "$tmp/sft.jsonl" --out "$tmp/overflow" --max-steps 3 --save-steps 1 \
  --warmup-steps 2 --learning-rate 1e39 2>&1); rc=$?
set -e
[[ $rc -eq 4 && $out == *"step 2: the optimizer step made"*"non-finite (first: "* && -d "$tmp/overflow/checkpoint-1" \
  && ! -e "$tmp/overflow/checkpoint-2" && ! -e "$tmp/overflow/model.safetensors" ]] \
  || fail "overflowing sft: rc=$rc $out $(ls "$tmp/overflow")"
echo "1 passed, 0 failed"
