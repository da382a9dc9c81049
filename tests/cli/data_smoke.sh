#!/usr/bin/env bash
# CLI smoke test of `rlhf data`: every tool's --help, one run of each on a tiny dataset with
# checked outputs, and clear errors (exit code 2, file:line) for bad input.
set -euo pipefail
RLHF="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$RLHF" --help | grep -q "^  data " || fail "rlhf --help lists data"
"$RLHF" data --help | grep -q "decontaminate" || fail "data --help lists tools"
for t in stats clean decontaminate binarize noise pairs; do
  "$RLHF" data "$t" --help | grep -q -- "--in" || fail "data $t --help"
done

cat > "$tmp/prefs.jsonl" <<'JSONL'
{"prompt":"Name a mammal that lays eggs.","chosen":" The platypus.","rejected":" The bat.","score_chosen":8.0,"score_rejected":2.0}
{"prompt":"Name a mammal that lays eggs.","chosen":" The platypus.","rejected":" The bat.","score_chosen":8.0,"score_rejected":2.0}
{"prompt":"Do goldfish have a three-second memory?","chosen":" No.","rejected":" Yes."}
{"prompt":"q","chosen":" same","rejected":" same"}
{"chosen":"\n\nHuman: Hi\n\nAssistant: Hello!","rejected":"\n\nHuman: Hi\n\nAssistant: Go away."}
JSONL
gzip -c "$tmp/prefs.jsonl" > "$tmp/prefs.jsonl.gz"

"$RLHF" data stats --in "$tmp/prefs.jsonl.gz" --summary "$tmp/stats.json" > "$tmp/stats.txt" || fail "stats"
grep -q "lengths in words" "$tmp/stats.txt" || fail "stats human summary"
grep -q '"duplicate_pairs": 1' "$tmp/stats.json" || fail "stats duplicate_pairs"
grep -q '"identical_pairs": 1' "$tmp/stats.json" || fail "stats identical_pairs"
"$RLHF" data stats --in "$tmp/prefs.jsonl" --summary - 2>/dev/null | grep -q '"tool": "stats"' || fail "stats to stdout"
fixtures="$(dirname "$0")/../fixtures/text/tokenizers/gpt2"
if [[ -d $fixtures ]]; then
  "$RLHF" data stats --in "$tmp/prefs.jsonl" --tokenizer "$fixtures" --summary - 2>/dev/null |
    grep -q '"length_unit": "tokens"' || fail "stats --tokenizer"
fi

"$RLHF" data clean --in "$tmp/prefs.jsonl" --out "$tmp/clean.jsonl" > /dev/null || fail "clean"
[[ $(wc -l < "$tmp/clean.jsonl") -eq 3 ]] || fail "clean kept $(wc -l < "$tmp/clean.jsonl") rows, want 3"
grep -q '"duplicate": 1' "$tmp/clean.jsonl.summary.json" || fail "clean summary"

echo '{"question":"Do goldfish have a three-second memory?"}' > "$tmp/bench.jsonl"
"$RLHF" data decontaminate --in "$tmp/clean.jsonl" --out "$tmp/decon.jsonl" --benchmark "$tmp/bench.jsonl" \
  --field question > /dev/null || fail "decontaminate"
[[ $(wc -l < "$tmp/decon.jsonl") -eq 2 ]] || fail "decontaminate kept $(wc -l < "$tmp/decon.jsonl") rows, want 2"
grep -q '"how":"exact"' "$tmp/decon.jsonl.matches.jsonl" || fail "decontaminate matches"

"$RLHF" data noise --in "$tmp/decon.jsonl" --out "$tmp/noise.jsonl" --fraction 0.5 --seed 3 > /dev/null || fail "noise"
grep -q '"flipped": 1' "$tmp/noise.jsonl.summary.json" || fail "noise flipped count"

cat > "$tmp/ranked.jsonl" <<'JSONL'
{"prompt":"q","completions":[" a"," b"," c"],"scores":[1,3,2]}
JSONL
"$RLHF" data binarize --in "$tmp/ranked.jsonl" --out "$tmp/bin.jsonl" --strategy all-pairs > /dev/null || fail "binarize"
[[ $(wc -l < "$tmp/bin.jsonl") -eq 3 ]] || fail "binarize pairs"
cat > "$tmp/samples.jsonl" <<'JSONL'
{"prompt":"2+2?","completion":" 4","reward":1}
{"prompt":"2+2?","completion":" 5","reward":0}
JSONL
"$RLHF" data pairs --in "$tmp/samples.jsonl" --out "$tmp/pairs.zst" > /dev/null || fail "pairs"
grep -q '"written": 1' "$tmp/pairs.zst.summary.json" || fail "pairs written"

# Bad input: exit code 2, file:line[:column] in the message; skip mode counts.
printf '%s\n' '{"prompt":"p","chosen":" a","rejected":" b"}' '{"prompt":"p","chosen":3,"rejected":" b"}' > "$tmp/bad.jsonl"
set +e
out=$("$RLHF" data stats --in "$tmp/bad.jsonl" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"bad.jsonl:2: field 'chosen': expected a string or a list of messages, got number"* ]] ||
  fail "bad row: rc=$rc $out"
"$RLHF" data stats --in "$tmp/bad.jsonl" --skip-bad-rows --summary - 2>/dev/null | grep -q '"skipped_bad": 1' ||
  fail "skip mode"
set +e
out=$("$RLHF" data frobnicate 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"unknown tool 'frobnicate'"* ]] || fail "unknown tool: rc=$rc $out"
echo "1 passed, 0 failed"
