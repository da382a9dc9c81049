#!/usr/bin/env bash
# Every model family through the CLI, as a user meets it: `rlhf init-model --family F --preset
# tiny` with a word-level tokenizer, a few SFT steps (the loss must fall and stay finite),
# `rlhf generate` from the result, and the saved model reloaded for DPO and a reward model.
# Also: --help lists every family, an unknown family is an error naming the supported ones, and
# the real-model presets write their model's shape. KEEP=1 keeps the temporary directory.
set -euo pipefail
RLHF="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
PY=python3
export OMP_NUM_THREADS=1  # tiny models: threads would only add overhead

FAMILIES="gpt2 llama qwen2 mistral qwen3 smollm3 olmo2 gemma2 gemma3_text phi3"

# --help lists every family; an unknown one is refused with the list.
"$RLHF" init-model --help > "$tmp/help.txt"
for fam in $FAMILIES; do
  grep -q -- "$fam" "$tmp/help.txt" || fail "init-model --help does not list $fam"
done
if "$RLHF" init-model --family falcon --out "$tmp/bad" > "$tmp/bad.log" 2>&1; then fail "--family falcon accepted"; fi
grep -q "falcon" "$tmp/bad.log" && grep -q "supported families: $(echo $FAMILIES | sed 's/ /, /g')" "$tmp/bad.log" \
  || fail "unknown family error: $(cat "$tmp/bad.log")"
[[ ! -e "$tmp/bad" ]] || fail "a refused init-model wrote its directory"

# A real model's preset belongs to its family.
for pf in qwen3-0.6b:qwen3 smollm3-3b:smollm3 olmo2-1b:olmo2 gemma3-1b:gemma3_text gemma2-2b:gemma2 phi3-mini:phi3; do
  if "$RLHF" init-model --preset "${pf%%:*}" --family llama --out "$tmp/bad" > "$tmp/bad.log" 2>&1; then
    fail "--preset ${pf%%:*} --family llama accepted"
  fi
  grep -q "is a ${pf##*:} shape" "$tmp/bad.log" || fail "preset/family error: $(cat "$tmp/bad.log")"
done
# Qwen3-0.6B's shape (one layer and a small vocabulary, to keep the file small): head_dim 128
# although hidden / heads is 64, which Qwen3Config would also default to.
"$RLHF" init-model --preset qwen3-0.6b --layers 1 --vocab-size 512 --out "$tmp/q06" > /dev/null
$PY - "$tmp/q06/config.json" <<'PY' || fail "qwen3-0.6b config"
import json, sys
c = json.load(open(sys.argv[1]))
want = {"model_type": "qwen3", "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8,
        "head_dim": 128, "intermediate_size": 3072, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
        "tie_word_embeddings": True, "max_position_embeddings": 40960, "num_hidden_layers": 1, "vocab_size": 512}
for k, v in want.items():
    assert c.get(k) == v, (k, c.get(k), v)
assert c["eos_token_id"] < 512, "a real preset's token ids must not outlive its vocabulary"
PY
rm -rf "$tmp/q06"
if "$RLHF" init-model --family llama --sliding-window 4 --out "$tmp/bad" > "$tmp/bad.log" 2>&1; then
  fail "--sliding-window accepted for llama"
fi
grep -q "sliding-window is for mistral, gemma2, gemma3_text and phi3" "$tmp/bad.log" || fail "window error: $(cat "$tmp/bad.log")"

# The word-level tokenizer of the testbed's models, with its special tokens named.
mkdir "$tmp/tok"
cp "$ROOT/tests/fixtures/text/wordlevel/tokenizer.json" "$tmp/tok/"
echo '{"eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}' > "$tmp/tok/tokenizer_config.json"
for i in 1 2 3 4; do
  cat >> "$tmp/sft.jsonl" <<'JSONL'
{"prompt": "the cat", "completion": " sat on the mat ."}
{"prompt": "a dog", "completion": " ran !"}
JSONL
done
cat > "$tmp/prefs.jsonl" <<'JSONL'
{"prompt": "the cat", "chosen": " sat on the mat .", "rejected": " ran ?"}
{"prompt": "a dog", "chosen": " ran !", "rejected": " sat on 42 ."}
{"prompt": "hello", "chosen": " world !", "rejected": " mat mat"}
{"prompt": "it's", "chosen": " a cat .", "rejected": " 日本 ,"}
JSONL
printf '{"prompt": "the cat"}\n{"prompt": "hello world"}\n' > "$tmp/prompts.jsonl"

# metrics.jsonl: every logged loss finite; with "falls", the last below the first.
check_metrics() {
  $PY - "$1" "$2" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l and '"eval_loss"' not in l]
losses = [r["loss"] for r in rows]
assert len(losses) >= 2, losses
assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses), losses
for r in rows:
    for k, v in r.items():
        assert not isinstance(v, float) or math.isfinite(v), (k, v)
if sys.argv[2] == "falls":
    assert losses[-1] < 0.9 * losses[0], losses
PY
}

for fam in $FAMILIES; do
  d="$tmp/$fam"
  args=(); [[ $fam == gpt2 ]] || args=(--kv-heads 2)
  [[ $fam != gemma* ]] || args+=(--sliding-window 4)  # shorter than the test's sequences, so that it binds
  "$RLHF" init-model --family "$fam" --preset tiny "${args[@]}" --tokenizer "$tmp/tok" --out "$d/base" > "$d.init.log" \
    || fail "$fam: init-model: $(cat "$d.init.log")"
  $PY - "$d/base/config.json" "$fam" <<'PY' || fail "$fam: config.json"
import json, sys
c, fam = json.load(open(sys.argv[1])), sys.argv[2]
assert c["model_type"] == fam, c["model_type"]
assert c["vocab_size"] == 26 and c["eos_token_id"] == 1 and c["pad_token_id"] == 0, c
assert c["bos_token_id"] is None, c  # the tokenizer has none
if fam == "qwen3":
    assert c["head_dim"] == 16, c  # Qwen3Config would default an absent head_dim to 128
if fam == "smollm3":
    assert c["no_rope_layers"] == [1, 0], c  # the tiny model has a NoPE layer
if fam.startswith("gemma"):  # one sliding and one global layer
    assert c["layer_types"] == ["sliding_attention", "full_attention"] and c["sliding_window"] == 4, c
    assert c["head_dim"] == 16 and c["hidden_activation"] == "gelu_pytorch_tanh", c
if fam != "gpt2":
    assert c["num_key_value_heads"] == 2, c
PY

  "$RLHF" sft --model "$d/base" --data "$tmp/sft.jsonl" --out "$d/sft" --per-device-train-batch-size 4 \
    --max-steps 8 --learning-rate 1e-2 --max-length 16 > "$d.sft.log" 2>&1 || fail "$fam: sft: $(cat "$d.sft.log")"
  for f in model.safetensors config.json tokenizer.json; do [[ -s "$d/sft/$f" ]] || fail "$fam: sft wrote no $f"; done
  check_metrics "$d/sft/metrics.jsonl" falls || fail "$fam: sft metrics: $(cat "$d/sft/metrics.jsonl")"

  "$RLHF" generate --model "$d/sft" --prompts "$tmp/prompts.jsonl" --out "$d/gen.jsonl" --temperature 0 \
    --max-new-tokens 4 > "$d.gen.log" 2>&1 || fail "$fam: generate: $(cat "$d.gen.log")"
  $PY - "$d/gen.jsonl" <<'PY' || fail "$fam: generate rows"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
for r in rows:
    assert 1 <= len(r["completion_ids"]) <= 4 and all(0 <= t < 26 for t in r["completion_ids"]), r
    assert isinstance(r["completion"], str) and math.isfinite(r["sum_logprob"]) and r["sum_logprob"] <= 0, r
PY

  # The saved model loads again: DPO and a reward model train from it and save.
  "$RLHF" dpo --model "$d/sft" --data "$tmp/prefs.jsonl" --out "$d/dpo" --per-device-train-batch-size 2 \
    --max-steps 3 --learning-rate 1e-3 --max-length 16 > "$d.dpo.log" 2>&1 || fail "$fam: dpo: $(cat "$d.dpo.log")"
  [[ -s "$d/dpo/model.safetensors" ]] || fail "$fam: dpo outputs"
  check_metrics "$d/dpo/metrics.jsonl" finite || fail "$fam: dpo metrics: $(cat "$d/dpo/metrics.jsonl")"
  "$RLHF" rm --model "$d/sft" --data "$tmp/prefs.jsonl" --out "$d/rm" --per-device-train-batch-size 2 \
    --max-steps 3 --learning-rate 1e-3 --max-length 16 > "$d.rm.log" 2>&1 || fail "$fam: rm: $(cat "$d.rm.log")"
  grep -q ForSequenceClassification "$d/rm/config.json" || fail "$fam: rm config"
  check_metrics "$d/rm/metrics.jsonl" finite || fail "$fam: rm metrics: $(cat "$d/rm/metrics.jsonl")"
  echo "ok $fam"
done
echo "families: all passed"
