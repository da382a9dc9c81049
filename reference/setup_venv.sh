#!/usr/bin/env bash
# Create reference/.venv (git-ignored) with the pinned reference requirements.
# Idempotent: if the venv exists and already satisfies requirements.txt, nothing is installed.
#
#   reference/setup_venv.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu reference/setup_venv.sh   # CPU-only torch wheel
#   PYTHON=python3.11 reference/setup_venv.sh
#
# The one implementation for every reference venv: reference/setup_ppo_venv.sh calls it with
#   --requirements FILE  the pinned requirements (default reference/requirements.txt)
#   --venv DIR           where the venv lives (default reference/.venv)
#   --link PATH          also make PATH a symlink to DIR, for a venv outside the tree (default: none);
#                        if PATH exists and is neither a symlink nor DIR itself, stop
#   --venv-var NAME      the variable that chooses DIR, named in that error (default: none)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
link=""
venv_var=""
req="$here/requirements.txt"
py="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
  case "$1" in
    --requirements) req="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    --link) link="$2"; shift 2 ;;
    --venv-var) venv_var="$2"; shift 2 ;;
    *) echo "usage: $0 [--requirements FILE] [--venv DIR] [--link PATH] [--venv-var NAME]" >&2; exit 2 ;;
  esac
done

# how messages name a path: reference/... when it is in this folder
show() {
  case "$1" in
    "$here"/*) echo "reference/${1#"$here"/}" ;;
    *) echo "$1" ;;
  esac
}
# with a link: "/work/x-venv ... (reference/.venv-x -> /work/x-venv)"; without: "reference/.venv ..."
if [ -n "$link" ]; then
  name="$venv"
  note=" ($(show "$link") -> $venv)"
else
  name="$(show "$venv")"
  note=""
fi

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

link_venv() {
  [ -n "$link" ] || return 0
  if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$venv" "$link"
  elif [ "$(cd "$link" && pwd -P)" != "$(cd "$venv" && pwd -P)" ]; then
    echo "$link exists and is not a symlink to $venv: remove it or set ${venv_var:-the venv directory}=$link" >&2
    exit 1
  fi
}

if satisfied; then
  link_venv
  echo "$name already satisfies $(basename "$req")$note"
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
link_venv
echo "$name ready$note"
