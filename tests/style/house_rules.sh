#!/usr/bin/env bash
# House rules that a reader of the code relies on, checked on the source tree:
# - the training loops and the command line read as named phases: no function above 150 lines in
#   src/train and src/cli (scripts/function_lengths.py);
# - the code stands on its own: no source file cites a document outside the repository (the
#   formulas and definitions it relies on are in docs/), in comments and in printed text alike.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 scripts/function_lengths.py --limit 150 src/train src/cli
outside=$(grep -rnE '\.\./shared/|(^|[^/a-z_])(DESIGN|ALGORITHMS|TESTBED|RELIABILITY|DATASETS|STYLE)\.md' src || true)
if [[ -n $outside ]]; then
  echo "FAIL: sources cite documents outside the repository (use docs/):"
  echo "$outside"
  exit 1
fi
echo "no source cites a document outside the repository"
