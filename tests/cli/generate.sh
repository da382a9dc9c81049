#!/usr/bin/env bash
# rlhf generate from the command line (work in progress, see issue 5).
set -euo pipefail
RLHF="$1"
"$RLHF" generate --help | grep -q "usage: rlhf generate" || { echo "FAIL: generate --help"; exit 1; }
echo "1 passed, 0 failed"
