#!/usr/bin/env bash
# CLI smoke test: --version/--help, init-model for every family, a short lm run whose loss
# must go down, and clear errors for bad input.
set -euo pipefail
RLHF="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Each output goes to a file before grep reads it: `rlhf ... | grep -q` under pipefail fails
# whenever grep exits at its match before rlhf has written the rest (SIGPIPE), as happens under load.
prints() { local pattern="$1"; shift; "$RLHF" "$@" > "$tmp/out.txt" && grep -q -- "$pattern" "$tmp/out.txt"; }
prints "^rlhf " --version || fail "--version"
prints "init-model" --help || fail "--help lists commands"
prints "--learning-rate" lm --help || fail "lm --help"
prints "--family" init-model --help || fail "init-model --help"
for cmd in sft rm dpo eval data; do
  prints "usage: rlhf $cmd" $cmd --help || fail "$cmd --help"
done

for fam in gpt2 llama qwen2 mistral; do
  "$RLHF" init-model --family "$fam" --preset tiny --kv-heads $([[ $fam == gpt2 ]] && echo 4 || echo 2) \
    --out "$tmp/$fam" >/dev/null || fail "init-model $fam"
  [[ -s "$tmp/$fam/model.safetensors" && -s "$tmp/$fam/config.json" ]] || fail "init-model $fam files"
done

# A model for a given tokenizer: its files copied, its vocabulary size and special-token ids.
TOK="$(cd "$(dirname "$0")/../fixtures/text/tokenizers/qwen2" && pwd)"
"$RLHF" init-model --family qwen2 --preset tiny --kv-heads 2 --tokenizer "$TOK" --out "$tmp/withtok" >/dev/null ||
  fail "init-model --tokenizer"
cmp -s "$TOK/tokenizer.json" "$tmp/withtok/tokenizer.json" || fail "init-model --tokenizer: tokenizer.json not copied"
python3 - "$tmp/withtok/config.json" "$TOK/tokenizer.json" <<'PY' || fail "init-model --tokenizer: config ids"
import json, sys
c, t = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ids = {a["content"]: a["id"] for a in t["added_tokens"]}
size = max(max(t["model"]["vocab"].values()), max(ids.values())) + 1
assert c["vocab_size"] == size, (c["vocab_size"], size)
assert c["eos_token_id"] == ids["<|im_end|>"] and c["pad_token_id"] == ids["<|endoftext|>"], c
PY

"$RLHF" lm --model "$tmp/llama" --synthetic --out "$tmp/run" --seq-len 32 --batch-size 8 --max-steps 60 \
  --learning-rate 1e-2 --log-every 60 > "$tmp/lm.log" || { cat "$tmp/lm.log"; fail "lm run"; }
first=$(head -1 "$tmp/run/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -1 "$tmp/run/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v f="$first" -v l="$last" 'BEGIN { exit !(l < 0.7 * f) }' || fail "loss did not go down: $first -> $last"
[[ $(wc -l < "$tmp/run/metrics.jsonl") -eq 60 ]] || fail "metrics.jsonl should have 60 lines"
[[ -s "$tmp/run/model.safetensors" && -s "$tmp/run/manifest.json" ]] || fail "lm outputs"

# Bad input: exit code 2 and a message naming the problem.
set +e
out=$("$RLHF" lm --model "$tmp/llama" --synthetic --out "$tmp/x" --max-steps abc 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"--max-steps expects an integer"* ]] || fail "bad integer flag: rc=$rc $out"
printf '1 2 3\n4 x 6\n' > "$tmp/bad.txt"
set +e
out=$("$RLHF" lm --model "$tmp/llama" --data "$tmp/bad.txt" --out "$tmp/y" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"bad.txt:2:3"* ]] || fail "bad token file: rc=$rc $out"
set +e
out=$("$RLHF" lm --model "$tmp/nonexistent" --synthetic --out "$tmp/z" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $out == *"nonexistent"* ]] || fail "missing model dir: rc=$rc $out"
# Every recipe parses for its command (the file name's first word; rm-ranked is rm): its keys
# are the command's options, so only the required --model is missing.
for recipe in "$(dirname "$0")"/../../recipes/*.yaml; do
  name=$(basename "$recipe" .yaml)
  cmd=${name%%-*}
  [[ $name == zephyr-dpo ]] && cmd=dpo
  set +e
  out=$("$RLHF" "$cmd" --config "$recipe" 2>&1); rc=$?
  set -e
  [[ $rc -eq 2 && $out == *"--model is required"* ]] || fail "recipe $name for rlhf $cmd: rc=$rc $out"
done
echo "1 passed, 0 failed"
