#!/usr/bin/env bash
# Tokenizer encode throughput, rlhf.cpp next to Hugging Face `tokenizers`, one thread each, on the
# same generated 50 MB corpus and the llama3-style fixture tokenizer (Split with the Llama-3 regex
# + byte-level BPE, ignore_merges). HF runs encode_batch over chunks of 1000 lines (its fastest
# single-thread path) and, for reference, encode() once per line; ours encodes once per line.
# Both print an FNV-1a checksum of all ids: equal checksums mean identical output.
#
#   bench/run_tokenizer_bench.sh [BUILD_DIR]      (MB=50 TOKENIZER=tests/fixtures/text/tokenizers/llama3)
# Needs the build and a Python with `tokenizers` (PY=..., default /work/refvenv/bin/python, then
# reference/.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MB=${MB:-50}
TOK=${TOKENIZER:-tests/fixtures/text/tokenizers/llama3}
PY=${PY:-}
if [[ -z $PY ]]; then
  for p in /work/refvenv/bin/python reference/.venv/bin/python; do
    if [[ -x $p ]]; then PY=$p; break; fi
  done
fi
CORPUS=${CORPUS:-$BUILD/tokenizer_corpus_${MB}mb.txt}
if [[ ! -f $CORPUS ]]; then
  python3 bench/tokenizers_encode.py --make-corpus "$CORPUS" --mb "$MB"
fi
echo "# corpus: $CORPUS ($(wc -c <"$CORPUS") bytes), tokenizer: $TOK, one thread"
"$BUILD/tokenizer_encode" --corpus "$CORPUS" --tokenizer "$TOK" --passes 2
if [[ -n $PY ]]; then
  export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
  "$PY" bench/tokenizers_encode.py --corpus "$CORPUS" --tokenizer "$TOK" --mode batch
  "$PY" bench/tokenizers_encode.py --corpus "$CORPUS" --tokenizer "$TOK" --mode lines
else
  echo "# (no Python with tokenizers: set PY=... for the Hugging Face baseline)"
fi
