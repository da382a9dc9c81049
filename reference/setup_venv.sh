#!/usr/bin/env bash
# Create reference/.venv (git-ignored) with the pinned reference requirements.
# Idempotent: if the venv exists and already satisfies requirements.txt, nothing is installed.
#
#   reference/setup_venv.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu reference/setup_venv.sh   # CPU-only torch wheel
#   PYTHON=python3.11 reference/setup_venv.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
py="${PYTHON:-python3}"

satisfied() {
  [ -x "$venv/bin/python" ] || return 1
  "$venv/bin/python" - "$req" <<'PY'
import sys, re
from importlib import metadata
ok = True
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = re.split(r"==", line, maxsplit=1)
    try:
        have = metadata.version(name).split("+", 1)[0]   # 2.15.0+cu132 satisfies ==2.15.0
    except metadata.PackageNotFoundError:
        have = None
    if have != want:
        print(f"  {name}: have {have}, want {want}")
        ok = False
sys.exit(0 if ok else 1)
PY
}

if satisfied; then
  echo "reference/.venv already satisfies requirements.txt"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade pip
extra=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  extra+=(--extra-index-url "$TORCH_INDEX_URL")
fi
"$venv/bin/python" -m pip install "${extra[@]}" -r "$req"
satisfied
echo "reference/.venv ready"
