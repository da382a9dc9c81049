#!/usr/bin/env bash
# --backend as a user runs it: rlhf sft, dpo, grpo and rloo (scored by a reward model, which runs
# on the same backend) for 3 steps on a tiny model give the same metrics on the cpu and the
# reference backends (1e-4 relative at step 1, before any optimizer step changed the weights; 1e-3
# after, the AdamW steps amplifying rounding), generate and eval run on the reference backend, and
# an unknown backend is an error naming the known ones.
set -euo pipefail
RLHF="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TOK="$ROOT/tests/fixtures/text/tokenizers/qwen2"
PREFS="$ROOT/tests/fixtures/trl/prefs.jsonl"
export OMP_NUM_THREADS=2

"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --out "$tmp/base" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/base/"
"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --score-head --tokenizer "$TOK" \
  --seed 1 --out "$tmp/rm" >/dev/null
for i in 1 2 3 4 5 6 7 8; do
  echo "{\"prompt\": \"What color is the sky $i ?\", \"completion\": \" The sky is blue .\"}"
done > "$tmp/sft.jsonl"
for i in $(seq 0 7); do echo "{\"prompt\": \"Say a color $i :\"}"; done > "$tmp/prompts.jsonl"

run() {  # run NAME ARGS...: the command on both backends, metrics compared
  local name=$1; shift
  for be in cpu reference; do
    "$RLHF" "$@" --backend $be --out "$tmp/$name-$be" > "$tmp/$name-$be.log" 2>&1 ||
      fail "$name --backend $be: $(tail -5 "$tmp/$name-$be.log")"
  done
  python3 - "$name" "$tmp/$name-cpu/metrics.jsonl" "$tmp/$name-reference/metrics.jsonl" <<'PY' || fail "$name: metrics differ"
import json, sys
name, a, b = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])], [json.loads(l) for l in open(sys.argv[3])]
assert len(a) == len(b) == 3, (len(a), len(b))
timing = ("seconds", "per_second", "_time")
worst = 0.0
for x, y in zip(a, b):
    assert x.keys() == y.keys(), (x.keys() ^ y.keys())
    tol = 1e-4 if x["step"] == 1 else 1e-3
    for k, v in x.items():
        if not isinstance(v, float) or any(t in k for t in timing):
            continue
        # as the TRL replays: relative to max(|x|, 1e-2); accuracies flip on near-zero rewards
        rel = abs(v - y[k]) / max(abs(v), 1e-2)
        if k.startswith("rewards/accuracies") and x["step"] == 1:
            continue
        worst = max(worst, rel)
        if rel > tol:
            print(f"FAIL: {name} step {x['step']} {k}: cpu {v} vs reference {y[k]} (relative {rel:.2e} > {tol})")
            sys.exit(1)
print(f"{name}: cpu and reference agree over 3 steps (worst relative difference {worst:.1e})")
PY
}

run sft sft --model "$tmp/base" --data "$tmp/sft.jsonl" --per-device-train-batch-size 4 --max-steps 3 \
  --learning-rate 3e-3 --max-length 64
run dpo dpo --model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 3 \
  --learning-rate 1e-3 --max-length 64
run grpo grpo --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "length(target=4):tokens" \
  --num-generations 4 --beta 0.04 --max-new-tokens 6 --prompts-per-step 2 --max-steps 3 --learning-rate 1e-3 \
  --max-length 64

run rloo rloo --model "$tmp/base" --data "$tmp/prompts.jsonl" --reward "rm:$tmp/rm" \
  --num-generations 2 --max-new-tokens 6 --prompts-per-step 2 --max-steps 3 --learning-rate 1e-3 --max-length 64

"$RLHF" generate --model "$tmp/base" --prompts "$tmp/prompts.jsonl" --out "$tmp/gen.jsonl" --max-new-tokens 5 \
  --temperature 0 --backend reference > /dev/null || fail "generate --backend reference"
"$RLHF" generate --model "$tmp/base" --prompts "$tmp/prompts.jsonl" --out "$tmp/gen-cpu.jsonl" --max-new-tokens 5 \
  --temperature 0 > /dev/null || fail "generate"
python3 - "$tmp/gen.jsonl" "$tmp/gen-cpu.jsonl" <<'PY' || fail "greedy completions differ between backends"
import json, sys
a = [json.loads(l)["completion_ids"] for l in open(sys.argv[1])]
b = [json.loads(l)["completion_ids"] for l in open(sys.argv[2])]
assert len(a) == 8 and a == b, (a, b)
print("generate: the same greedy completions on both backends")
PY
"$RLHF" eval --data "$PREFS" --policy "$tmp/dpo-reference" --ref-model "$tmp/base" --beta 0.1 --max-length 64 \
  --backend reference > "$tmp/eval.log" || fail "eval --backend reference: $(tail -5 "$tmp/eval.log")"
grep -q "accuracy" "$tmp/eval.log" || fail "eval --backend reference printed no accuracy"

out=$("$RLHF" sft --model "$tmp/base" --data "$tmp/sft.jsonl" --out "$tmp/bad" --backend gpu 2>&1) && fail "--backend gpu accepted"
grep -q "cpu" <<<"$out" && grep -q "reference" <<<"$out" || fail "unknown backend error does not name the known ones: $out"
echo "backend CLI checks passed"
