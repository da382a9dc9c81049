#!/usr/bin/env bash
# Create the second reference venv, for TRL's PPOTrainer (bench/trl_ppo_step.py), with the pinned
# requirements-ppo.txt (TRL 1.12.0: the newest TRL with a PPOTrainer; see reference/README.md).
# The venv lives outside the tree (PPO_VENV, default /work/trl-ppo-venv) and reference/.venv-ppo
# (git-ignored) is a symlink to it. Idempotent: if the venv exists and already satisfies
# requirements-ppo.txt, nothing is installed.
#
#   reference/setup_ppo_venv.sh
#   PPO_VENV=$HOME/venvs/trl-ppo reference/setup_ppo_venv.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu reference/setup_ppo_venv.sh   # CPU-only torch wheel
#   PYTHON=python3.11 reference/setup_ppo_venv.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PPO_VENV:-/work/trl-ppo-venv}"
link="$here/.venv-ppo"
req="$here/requirements-ppo.txt"
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

link_venv() {
  if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$venv" "$link"
  elif [ "$(cd "$link" && pwd -P)" != "$(cd "$venv" && pwd -P)" ]; then
    echo "$link exists and is not a symlink to $venv: remove it or set PPO_VENV=$link" >&2
    exit 1
  fi
}

if satisfied; then
  link_venv
  echo "$venv already satisfies requirements-ppo.txt (reference/.venv-ppo -> $venv)"
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
echo "$venv ready (reference/.venv-ppo -> $venv)"
