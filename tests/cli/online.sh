#!/usr/bin/env bash
# rlhf ppo | apa | reinforce | rloo | grpo | online-dpo | best-of-n from the command line, as a
# user runs them: a tiny HF model with a tokenizer, a prompt-only JSONL file and programmatic
# reward specs. Checks TRL's metric names, the outputs, exact resume from a checkpoint, and
# clear errors for bad input. (That each method raises the reward is tests/train/test_online_trainer.cpp.)
set -euo pipefail
RLHF="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TOK="$ROOT/tests/fixtures/text/tokenizers/qwen2"
export OMP_NUM_THREADS=1

"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --out "$tmp/base" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/base/"
for i in $(seq 0 15); do echo "{\"prompt\": \"Say a color $i :\", \"answer\": \"blue\"}"; done > "$tmp/prompts.jsonl"
common=(--model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=4):tokens" --reward "0.5*eos"
        --max-new-tokens 6 --prompts-per-step 4 --max-steps 3 --learning-rate 1e-3 --max-length 64)

for cmd in ppo apa reinforce rloo grpo online-dpo; do
  extra=()
  [[ $cmd == grpo ]] && extra=(--num-generations 4 --beta 0.04)
  "$RLHF" "$cmd" "${common[@]}" "${extra[@]}" --out "$tmp/$cmd" > "$tmp/$cmd.log" || fail "$cmd: $(cat "$tmp/$cmd.log")"
  [[ $(grep -c '"step"' "$tmp/$cmd/metrics.jsonl") -eq 3 ]] || fail "$cmd: metrics lines"
  for k in loss grad_norm objective/kl objective/scores objective/entropy kl/k1 kl/k3 completions/mean_length \
           val/num_eos_tokens rewards/length/mean rewards/eos/mean learning_rate; do
    tail -1 "$tmp/$cmd/metrics.jsonl" | grep -q "\"$k\"" || fail "$cmd: metric $k missing"
  done
  [[ -s "$tmp/$cmd/model.safetensors" && -s "$tmp/$cmd/tokenizer.json" && -s "$tmp/$cmd/manifest.json" ]] \
    || fail "$cmd outputs"
  grep -q "score.weight" "$tmp/$cmd/model.safetensors" && fail "$cmd: the value head was exported"
  true
done
for k in policy/approxkl_avg policy/clipfrac_avg loss/policy_avg loss/value_avg val/clipfrac_avg objective/rlhf_reward; do
  tail -1 "$tmp/ppo/metrics.jsonl" | grep -q "\"$k\"" || fail "ppo: metric $k missing"
done
tail -1 "$tmp/grpo/metrics.jsonl" | grep -q '"frac_reward_zero_std"' || fail "grpo: frac_reward_zero_std"
# GRPO with beta 0 (TRL's default) never reads the reference, so it logs no KL.
"$RLHF" grpo "${common[@]}" --num-generations 4 --out "$tmp/grpo0" > /dev/null
tail -1 "$tmp/grpo0/metrics.jsonl" | grep -q '"kl/k1"' && fail "grpo beta 0 logged a KL"
tail -1 "$tmp/online-dpo/metrics.jsonl" | grep -q '"rewards/margins"' || fail "online-dpo: rewards/margins"

# TRL's score placement (--score-placement trl_after_eos, PPO and APA): a copy of the base model
# whose generation config stops at 200 more ids, so that completions end early and get the extra
# value slot. The option lands in the manifest, from the command line and from a recipe; a bad
# value, or the option for a method without values, exits 2 naming it.
mkdir "$tmp/stops"
cp "$tmp/base/"* "$tmp/stops/"
echo "{\"eos_token_id\": [$(seq -s, 100 299)]}" > "$tmp/stops/generation_config.json"
"$RLHF" ppo "${common[@]}" --model "$tmp/stops" --score-placement trl_after_eos --out "$tmp/ppo_trl" > "$tmp/ppo_trl.log" \
  || fail "ppo trl_after_eos: $(cat "$tmp/ppo_trl.log")"
grep -q '"score-placement": "trl_after_eos"' "$tmp/ppo_trl/manifest.json" || fail "ppo trl_after_eos: manifest"
head -1 "$tmp/ppo_trl/metrics.jsonl" | grep -q '"val/num_eos_tokens":0.0' && fail "ppo trl_after_eos: no completion stopped early"
grep -q '"loss/value_avg"' "$tmp/ppo_trl/metrics.jsonl" || fail "ppo trl_after_eos: metrics"
printf 'score_placement: trl_after_eos\n' > "$tmp/trl.yaml"
"$RLHF" apa "${common[@]}" --model "$tmp/stops" --config "$tmp/trl.yaml" --out "$tmp/apa_trl" > "$tmp/apa_trl.log" \
  || fail "apa trl_after_eos from a recipe: $(cat "$tmp/apa_trl.log")"
grep -q '"score-placement": "trl_after_eos"' "$tmp/apa_trl/manifest.json" || fail "apa trl_after_eos: manifest"
grep -q '"score-placement": "last_token"' "$tmp/ppo/manifest.json" || fail "ppo: default score placement in the manifest"
set +e
out=$("$RLHF" ppo "${common[@]}" --score-placement after_eos --out "$tmp/bad_placement" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"score_placement 'after_eos'"*"last_token or trl_after_eos"* ]] || fail "bad score placement: rc=$rc $out"
set +e
out=$("$RLHF" rloo "${common[@]}" --score-placement trl_after_eos --out "$tmp/bad_placement" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"--score-placement"* ]] || fail "score placement for rloo: rc=$rc $out"

# A reward model (scalar head, the policy's tokenizer) as the reward source, from a recipe.
"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --score-head --out "$tmp/rm" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/rm/"
"$RLHF" ppo --config "$ROOT/recipes/ppo-tiny.yaml" --model "$tmp/base" --data "$tmp/prompts.jsonl" \
  --reward "rm:$tmp/rm" --max-steps 2 --out "$tmp/ppo_rm" > "$tmp/ppo_rm.log" || fail "ppo with rm: $(cat "$tmp/ppo_rm.log")"
tail -1 "$tmp/ppo_rm/metrics.jsonl" | grep -q '"rewards/rm/mean"' || fail "ppo with rm: metrics"
grep -q '"rm:' "$tmp/ppo_rm/manifest.json" || fail "ppo with rm: manifest"

# Exact resume: a run with a checkpoint at step 2, resumed after its final model is removed,
# ends with the same weights as the straight run.
# The PPO run uses a separate critic initialised from the reward model.
"$RLHF" ppo "${common[@]}" --max-steps 4 --save-steps 2 --adaptive-kl --kl-target 0.1 --critic "$tmp/rm" \
  --out "$tmp/straight" > /dev/null
[[ -s "$tmp/straight/critic/model.safetensors" && -d "$tmp/straight/critic/checkpoint-2" ]] || fail "critic outputs"
cp -r "$tmp/straight" "$tmp/again"
rm "$tmp/again/model.safetensors" "$tmp/again/critic/model.safetensors"
"$RLHF" ppo "${common[@]}" --max-steps 4 --save-steps 2 --adaptive-kl --kl-target 0.1 --critic "$tmp/rm" \
  --out "$tmp/again" --resume \
  > "$tmp/resume.log"
grep -q "resumed from" "$tmp/resume.log" || fail "ppo did not resume: $(cat "$tmp/resume.log")"
cmp -s "$tmp/straight/model.safetensors" "$tmp/again/model.safetensors" || fail "resumed ppo weights differ"
cmp -s "$tmp/straight/critic/model.safetensors" "$tmp/again/critic/model.safetensors" || fail "resumed critic differs"
cmp -s <(cut -d, -f1-400 "$tmp/straight/metrics.jsonl") <(cut -d, -f1-400 "$tmp/again/metrics.jsonl") \
  || fail "resumed ppo metrics differ"

# A reference with another tokenizer would score other tokens: refused, naming it.
"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --out "$tmp/other_tok" >/dev/null
cp "$ROOT/tests/fixtures/text/tokenizers/gpt2/tokenizer.json" "$tmp/other_tok/"
set +e
out=$("$RLHF" grpo "${common[@]}" --num-generations 4 --beta 0.04 --ref-model "$tmp/other_tok" --out "$tmp/bad_ref" 2>&1)
rc=$?
set -e
[[ $rc -eq 2 && $out == *"--ref-model $tmp/other_tok: its tokenizer"* ]] || fail "reference tokenizer: rc=$rc $out"

# SIGTERM stops an online run after its step with the policy's and the critic's checkpoints of that
# step written (tests/cli/resume.sh resumes one exactly), exit code 143.
"$RLHF" ppo "${common[@]}" --max-steps 100000 --save-steps 100000 --critic "$tmp/rm" --out "$tmp/sigterm" \
  > "$tmp/sigterm.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [[ $(cat "$tmp/sigterm/metrics.jsonl" 2>/dev/null | wc -l) -ge 2 ]] && break
  sleep 0.05
done
kill -TERM "$pid"
set +e; wait "$pid"; rc=$?; set -e
step=$(sed -n 's/^stopped by SIGTERM after step \([0-9]*\);.*/\1/p' "$tmp/sigterm.log")
[[ $rc -eq 143 && -n $step ]] || fail "ppo SIGTERM: exit $rc: $(cat "$tmp/sigterm.log")"
[[ -d "$tmp/sigterm/checkpoint-$step" && -d "$tmp/sigterm/critic/checkpoint-$step" ]] \
  || fail "ppo SIGTERM: no checkpoints of step $step"

# --save-rollouts: every training sample in rollouts.jsonl (4 steps x 4 prompts x 4 samples, in
# step order; the model that stops early, so that finish reasons and scores vary), scored as the
# step's objective/scores averaged them, the flag in the manifest;
# `rlhf data pairs` turns the file into preference pairs (a null score is counted, not an error)
# that `rlhf dpo` trains on;
# a run resumed from its step-2 checkpoint, after the lost run's rows of steps 3 and 4, ends with
# the straight run's file. Without the flag there is no file.
grpo_args=("${common[@]}" --model "$tmp/stops" --num-generations 4 --max-steps 4 --save-steps 2 --save-rollouts)
"$RLHF" grpo "${grpo_args[@]}" --out "$tmp/rollouts" > "$tmp/rollouts.log" || fail "--save-rollouts: $(cat "$tmp/rollouts.log")"
rows="$tmp/rollouts/rollouts.jsonl"
[[ $(wc -l < "$rows") -eq 64 ]] || fail "--save-rollouts: $(wc -l < "$rows") rows, expected 64"
[[ $(sed 's/^{"step":\([0-9]*\),.*/\1/' "$rows" | uniq -c | awk '{printf "%s:%s ", $2, $1}') == "1:16 2:16 3:16 4:16 " ]] \
  || fail "--save-rollouts: rows per step"
grep -vqE '^\{"step":[1-4],"prompt":"Say a color [0-9]+ :","completion":"([^"\\]|\\.)*","score":-?[0-9.e+-]+,"finish_reason":"(eos|stop|length)"\}$' \
  "$rows" && fail "--save-rollouts: a row not in the documented layout: $(head -1 "$rows")"
grep -q '"finish_reason":"eos"' "$rows" && grep -q '"finish_reason":"length"' "$rows" || fail "--save-rollouts: finish reasons"
grep -q '"save-rollouts": "true"' "$tmp/rollouts/manifest.json" || fail "--save-rollouts: manifest"
[[ -e "$tmp/grpo/rollouts.jsonl" ]] && fail "a run without --save-rollouts wrote rollouts.jsonl"
for step in 1 4; do
  mean=$(grep "^{\"step\":$step," "$rows" | sed 's/.*"score":\([^,]*\),.*/\1/' | awk '{ s += $1 } END { printf "%.6f", s / NR }')
  logged=$(grep -E "\"step\":$step[,}]" "$tmp/rollouts/metrics.jsonl" | sed 's/.*"objective\/scores":\([^,}]*\).*/\1/')
  awk -v a="$mean" -v b="$logged" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' \
    || fail "--save-rollouts: step $step scores average $mean, objective/scores is $logged"
done
"$RLHF" data pairs --in "$rows" --out "$tmp/pairs.jsonl" --strategy best-vs-worst > /dev/null || fail "data pairs on rollouts"
written=$(sed -n 's/.*"written": \([0-9]*\).*/\1/p' "$tmp/pairs.jsonl.summary.json")
[[ $written -gt 0 && $written -eq $(wc -l < "$tmp/pairs.jsonl") ]] || fail "data pairs on rollouts: $written pairs"
head -1 "$tmp/pairs.jsonl" | grep -qE '^\{"prompt":"Say a color [0-9]+ :","chosen":.*"rejected":' || fail "pairs layout"
"$RLHF" dpo --model "$tmp/base" --data "$tmp/pairs.jsonl" --max-steps 1 --per-device-train-batch-size 4 --max-length 64 \
  --out "$tmp/dpo_rollouts" > "$tmp/dpo_rollouts.log" 2>&1 || fail "dpo on the rollouts' pairs: $(cat "$tmp/dpo_rollouts.log")"
# The first non-blank completion's score nulled (blank completions are dropped before their score is read).
awk '!done && /"completion":" *[A-Za-z0-9]/ { sub(/"score":[^,]*,/, "\"score\":null,"); done = 1 } 1' "$rows" \
  > "$tmp/null_score.jsonl"
"$RLHF" data pairs --in "$tmp/null_score.jsonl" --out "$tmp/pairs_null.jsonl" > /dev/null || fail "data pairs: null score"
grep -q '"unscored_completions": 1' "$tmp/pairs_null.jsonl.summary.json" || fail "data pairs: null score not counted"
# Conversational prompts: the prompt's messages, and the completion as one assistant message.
for i in $(seq 0 3); do echo "{\"prompt\": [{\"role\": \"user\", \"content\": \"Say a color $i\"}]}"; done > "$tmp/chat.jsonl"
"$RLHF" rloo "${common[@]}" --data "$tmp/chat.jsonl" --num-generations 4 --max-steps 1 --max-length 128 --save-rollouts \
  --out "$tmp/chat_rollouts" > /dev/null || fail "--save-rollouts with conversational prompts"
head -1 "$tmp/chat_rollouts/rollouts.jsonl" |
  grep -qE '^\{"step":1,"prompt":\[\{"role":"user","content":"Say a color [0-3]"\}\],"completion":\[\{"role":"assistant",' \
  || fail "conversational rollouts layout: $(head -1 "$tmp/chat_rollouts/rollouts.jsonl")"
"$RLHF" data pairs --in "$tmp/chat_rollouts/rollouts.jsonl" --out "$tmp/chat_pairs.jsonl" > /dev/null \
  || fail "data pairs on conversational rollouts"
cp -r "$tmp/rollouts" "$tmp/rollouts_again"
rm "$tmp/rollouts_again/model.safetensors"
"$RLHF" grpo "${grpo_args[@]}" --out "$tmp/rollouts_again" --resume > "$tmp/rollouts_resume.log"
grep -q "resumed from .*checkpoint-2" "$tmp/rollouts_resume.log" || fail "--save-rollouts: no resume"
cmp -s "$rows" "$tmp/rollouts_again/rollouts.jsonl" || fail "--save-rollouts: the resumed run's rollouts differ"

# Evaluation samples and best-of-n.
"$RLHF" rloo "${common[@]}" --eval-data "$tmp/prompts.jsonl" --eval-steps 3 --out "$tmp/evald" > "$tmp/evald.log"
grep -q "eval_objective/scores" "$tmp/evald/metrics.jsonl" && [[ -s "$tmp/evald/samples.jsonl" ]] \
  || fail "eval metrics / samples"
"$RLHF" best-of-n --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=4):tokens" --n 4 \
  --max-new-tokens 6 --out "$tmp/best.jsonl" > "$tmp/best.log"
[[ $(grep -c '"score"' "$tmp/best.jsonl") -eq 16 ]] || fail "best-of-n rows"
awk '/mean best score/ { split($0, a, "mean best score "); split(a[2], b, ","); split($0, c, "mean score ");
     exit !(b[1] + 0 >= c[2] + 0) }' "$tmp/best.log" || fail "best-of-n: best below mean: $(cat "$tmp/best.log")"

# Iterative DPO: rounds of sampling, best-vs-worst labels and offline DPO.
"$RLHF" iterative-dpo --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=10):chars" \
  --num-generations 4 --rounds 2 --max-new-tokens 6 --learning-rate 1e-3 --per-device-train-batch-size 4 \
  --max-length 64 --out "$tmp/iterative" > "$tmp/iterative.log"
[[ $(grep -c '"train/loss"' "$tmp/iterative/metrics.jsonl") -eq 2 ]] && grep -q '"pairs":16' "$tmp/iterative/metrics.jsonl" \
  || fail "iterative-dpo rounds: $(cat "$tmp/iterative/metrics.jsonl")"
[[ -s "$tmp/iterative/model.safetensors" ]] || fail "iterative-dpo model"
# Semi-online: 5 of the 16 prompts per round, so at most 5 pairs a round; more than 16 is refused.
"$RLHF" iterative-dpo --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=10):chars" \
  --num-generations 4 --rounds 3 --prompts-per-round 5 --max-new-tokens 6 --learning-rate 1e-3 \
  --per-device-train-batch-size 4 --max-length 64 --out "$tmp/semi" > "$tmp/semi.log"
grep -q "pairs of 5 prompts" "$tmp/semi.log" && [[ $(grep -c '"round"' "$tmp/semi/metrics.jsonl") -eq 3 ]] \
  && ! grep -qE '"pairs":([6-9]|[1-9][0-9])' "$tmp/semi/metrics.jsonl" || fail "iterative-dpo --prompts-per-round: $(cat "$tmp/semi.log")"
set +e
out=$("$RLHF" iterative-dpo --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=10):chars" \
  --prompts-per-round 17 --out "$tmp/semi2" 2>&1); code=$?
set -e
[[ $code -eq 2 && $out == *"17 prompts per round exceed the 16 prompts"* ]] || fail "--prompts-per-round 17: exit $code ($out)"

# The user's own scorer: JSONL on stdin, one score per line (here: 1 when the row's answer field
# arrived, which also checks the prompt row's fields reach the command).
cat > "$tmp/score.sh" <<'SH'
#!/bin/sh
while IFS= read -r line; do
  case "$line" in *'"answer":"blue"'*) echo 1 ;; *) echo 0 ;; esac
done
SH
chmod +x "$tmp/score.sh"
"$RLHF" rloo "${common[@]}" --reward "cmd:$tmp/score.sh" --out "$tmp/cmd" > "$tmp/cmd.log" || fail "cmd reward: $(cat "$tmp/cmd.log")"
tail -1 "$tmp/cmd/metrics.jsonl" | grep -q '"rewards/cmd/mean":1.0' || fail "cmd reward: $(tail -1 "$tmp/cmd/metrics.jsonl")"

# A reward ensemble, --reward-combine min: a length of at least one token is always above
# 2*length(target=3) = -2|len - 3| <= 0, so every sample scores the second source's term and
# objective/scores is twice that source's unweighted mean (a sum would add the mean length).
"$RLHF" grpo --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length:tokens" \
  --reward "2*length(target=3):tokens" --reward-combine min --num-generations 4 --max-new-tokens 6 \
  --prompts-per-step 4 --max-steps 2 --learning-rate 1e-3 --max-length 64 --out "$tmp/ensemble" > "$tmp/ensemble.log" \
  || fail "grpo --reward-combine min: $(cat "$tmp/ensemble.log")"
python3 - "$tmp/ensemble/metrics.jsonl" "$tmp/ensemble/manifest.json" <<'PY' || fail "grpo --reward-combine min: metrics"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
assert len(steps) == 2, steps
for m in steps:
    assert abs(m["objective/scores"] - 2 * m["rewards/length#2/mean"]) < 1e-9, m
    assert m["objective/scores"] < m["rewards/length/mean"] + 2 * m["rewards/length#2/mean"], m
    assert m["rewards/ensemble/argmin_share/length#2"] == 1.0 and m["rewards/ensemble/std"] > 0, m
assert json.load(open(sys.argv[2]))["reward_combine"] == {"mode": "min", "nan": "propagate"}
PY
set +e
out=$("$RLHF" best-of-n --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward eos --reward-combine uwo \
  --out "$tmp/bad_ensemble.jsonl" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"--reward-combine uwo: an ensemble needs at least two --reward sources"* ]] \
  || fail "an ensemble of one source: rc=$rc $out"

# Bad input: named errors, exit code 2, never a hang.
printf '#!/bin/sh\nexit 3\n' > "$tmp/crash.sh"; chmod +x "$tmp/crash.sh"
set +e
out=$(timeout 60 "$RLHF" rloo "${common[@]}" --reward "cmd:$tmp/crash.sh" --out "$tmp/bad1" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"crash.sh"* ]] || fail "crashing reward command: rc=$rc $out"
set +e
out=$("$RLHF" grpo --model "$tmp/base" --data "$tmp/prompts.jsonl" --out "$tmp/bad2" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"--reward"* ]] || fail "missing reward: rc=$rc $out"
set +e
out=$("$RLHF" grpo "${common[@]}" --num-generations 1 --out "$tmp/bad3" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"at least 2 samples"* ]] || fail "grpo with one generation: rc=$rc $out"
printf '{"prompt": "%s"}\n' "$(printf 'word %.0s' $(seq 1 400))" > "$tmp/long.jsonl"
set +e
out=$("$RLHF" rloo "${common[@]}" --data "$tmp/long.jsonl" --out "$tmp/bad4" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"long.jsonl"*"no usable prompts"* ]] || fail "prompt longer than the context: rc=$rc $out"
echo "1 passed, 0 failed"
