#!/usr/bin/env bash
# rlhf generate as a user runs it: a tiny Qwen2 with a real tokenizer and chat template, TRL
# prompt-only JSONL (text and messages), sampling options from flags and a recipe. Checks the
# rows, that the output does not depend on --batch-size/--threads, stop tokens and strings, and
# clear errors for bad input.
set -euo pipefail
RLHF="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TOK="$ROOT/tests/fixtures/text/tokenizers/qwen2"
PY=python3

"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --max-positions 64 \
  --out "$tmp/m" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/m/"
cat > "$tmp/prompts.jsonl" <<'JSONL'
{"prompt": "The sky is", "answer": "blue"}
{"prompt": [{"role": "user", "content": "Name a fruit."}]}
{"prompt": "One, two,"}
JSONL

"$RLHF" generate --model "$tmp/m" --prompts "$tmp/prompts.jsonl" --out "$tmp/out.jsonl" --temperature 0.9 \
  --top-p 0.95 --top-k 50 --max-new-tokens 8 --num-return-sequences 2 --seed 3 > "$tmp/gen.log" \
  || fail "generate: $(cat "$tmp/gen.log")"
grep -q "3 prompts x 2 -> 6 completions" "$tmp/gen.log" || fail "summary: $(cat "$tmp/gen.log")"
$PY - "$tmp/out.jsonl" <<'PY' || fail "output rows"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 6, len(rows)
for i, r in enumerate(rows):
    for k in ("prompt", "completion", "completion_ids", "finish_reason", "sample_index", "sum_logprob"):
        assert k in r, (i, k)
    assert r["sample_index"] == i % 2
    assert 1 <= len(r["completion_ids"]) <= 8
    assert r["finish_reason"] in ("eos", "stop", "length")
    assert r["finish_reason"] != "length" or len(r["completion_ids"]) == 8
    assert r["sum_logprob"] < 0
assert rows[0]["prompt"] == "The sky is" and rows[0]["answer"] == "blue" and isinstance(rows[0]["completion"], str)
assert rows[2]["prompt"] == [{"role": "user", "content": "Name a fruit."}]
assert rows[2]["completion"][0]["role"] == "assistant"
assert rows[0]["completion_ids"] != rows[1]["completion_ids"] or rows[2]["completion_ids"] != rows[3]["completion_ids"]
PY

# Same seed, other batch size and thread count: the same file. A recipe gives the same options.
"$RLHF" generate --model "$tmp/m" --prompts "$tmp/prompts.jsonl" --out "$tmp/out2.jsonl" --temperature 0.9 \
  --top-p 0.95 --top-k 50 --max-new-tokens 8 --num-return-sequences 2 --seed 3 --batch-size 2 --threads 1 >/dev/null
# (Log-probs may differ in the last bits: BLAS rounds a row differently in a smaller batch.)
same_samples() {
  $PY - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b)
for x, y in zip(a, b):
    assert abs(x.pop("sum_logprob") - y.pop("sum_logprob")) < 1e-4 and x == y, (x, y)
PY
}
same_samples "$tmp/out.jsonl" "$tmp/out2.jsonl" || fail "output depends on --batch-size/--threads"
printf 'temperature: 0.9\ntop_p: 0.95\ntop_k: 50\nmax_new_tokens: 8\nnum_return_sequences: 2\nseed: 3\n' > "$tmp/r.yaml"
"$RLHF" generate --config "$tmp/r.yaml" --model "$tmp/m" --prompts "$tmp/prompts.jsonl" --out "$tmp/out3.jsonl" >/dev/null
cmp -s "$tmp/out.jsonl" "$tmp/out3.jsonl" || fail "recipe differs from flags"

# Greedy: both samples equal; a stop token ends the completion and is kept in the ids only.
"$RLHF" generate --model "$tmp/m" --prompts "$tmp/prompts.jsonl" --out "$tmp/g.jsonl" --temperature 0 \
  --max-new-tokens 6 --num-return-sequences 2 >/dev/null
first=$($PY -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['completion_ids'][0])" "$tmp/g.jsonl")
"$RLHF" generate --model "$tmp/m" --prompts "$tmp/prompts.jsonl" --out "$tmp/s.jsonl" --temperature 0 \
  --max-new-tokens 6 --stop-token-ids "$first" >/dev/null
$PY - "$tmp/g.jsonl" "$tmp/s.jsonl" <<'PY' || fail "greedy / stop token"
import json, sys
g = [json.loads(l) for l in open(sys.argv[1])]
s = [json.loads(l) for l in open(sys.argv[2])]
assert g[0]["completion_ids"] == g[1]["completion_ids"] and g[0]["completion"] == g[1]["completion"]
assert s[0]["completion_ids"] == g[0]["completion_ids"][:1] and s[0]["finish_reason"] == "stop", s[0]
assert s[0]["completion"] == "", s[0]
PY
# A stop string: the text ends before it, finish_reason "stop" (when the greedy text contains it).
stop=$($PY -c "import json,sys; t=json.loads(open(sys.argv[1]).readline())['completion']; print(t[len(t)//2:len(t)//2+1])" "$tmp/g.jsonl")
if [[ -n "$stop" && "$stop" != "," && "$stop" != "\\" ]]; then
  "$RLHF" generate --model "$tmp/m" --prompts "$tmp/prompts.jsonl" --out "$tmp/ss.jsonl" --temperature 0 \
    --max-new-tokens 6 --stop "$stop" >/dev/null
  $PY - "$tmp/g.jsonl" "$tmp/ss.jsonl" "$stop" <<'PY' || fail "stop string '$stop'"
import json, sys
g = json.loads(open(sys.argv[1]).readline())
s = json.loads(open(sys.argv[2]).readline())
stop = sys.argv[3]
assert s["finish_reason"] == "stop", s
assert s["completion"] == g["completion"][: g["completion"].index(stop)], (s, g)
assert stop not in s["completion"]
PY
fi

# Bad input: a prompt longer than the context names the file and line; --skip-bad-rows counts it.
long=$($PY -c "print(' '.join('w%d' % i for i in range(200)))")
{ echo '{"prompt": "ok"}'; echo "{\"prompt\": \"$long\"}"; echo '{"prompt": "fine"}'; } > "$tmp/long.jsonl"
set +e
out=$("$RLHF" generate --model "$tmp/m" --prompts "$tmp/long.jsonl" --out "$tmp/x.jsonl" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"long.jsonl:2:"*"context is 64"* ]] || fail "long prompt: rc=$rc $out"
[[ ! -e "$tmp/x.jsonl" ]] || fail "output written despite the error"
"$RLHF" generate --model "$tmp/m" --prompts "$tmp/long.jsonl" --out "$tmp/x.jsonl" --skip-bad-rows \
  --max-new-tokens 4 > "$tmp/skip.log"
grep -q "skipped 1 rows" "$tmp/skip.log" || fail "skip summary: $(cat "$tmp/skip.log")"
[[ $(wc -l < "$tmp/x.jsonl") -eq 2 ]] || fail "skip-bad-rows output rows"
printf '{"prompt": "a"}\n{"question": "b"}\n' > "$tmp/bad.jsonl"
set +e
out=$("$RLHF" generate --model "$tmp/m" --prompts "$tmp/bad.jsonl" --out "$tmp/y.jsonl" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"bad.jsonl:2"* ]] || fail "row without prompt: rc=$rc $out"
for bad in "--top-p 1.5:top_p" "--temperature -1:temperature" "--min-p 2:min_p" "--max-new-tokens 0:max_new_tokens" \
           "--num-return-sequences 0:samples per prompt" "--temperature abc:--temperature expects a number" \
           "--stop-token-ids 99999:--stop-token-ids expects token ids" "--batch-size 0:batch size"; do
  flag=${bad%%:*}; want=${bad#*:}
  set +e
  out=$("$RLHF" generate --model "$tmp/m" --prompts "$tmp/prompts.jsonl" --out "$tmp/z.jsonl" $flag 2>&1); rc=$?
  set -e
  [[ $rc -eq 2 && $out == *"$want"* ]] || fail "$flag: rc=$rc $out"
done
echo "1 passed, 0 failed"
