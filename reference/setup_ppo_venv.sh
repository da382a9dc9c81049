#!/usr/bin/env bash
# Create the second reference venv, for TRL's PPOTrainer (bench/trl_ppo_step.py), with the pinned
# requirements-ppo.txt (TRL 1.12.0: the newest TRL with a PPOTrainer; see reference/README.md).
# The venv lives outside the tree (PPO_VENV, default /work/trl-ppo-venv) and reference/.venv-ppo
# (git-ignored) is a symlink to it. Idempotent: if the venv exists and already satisfies
# requirements-ppo.txt, nothing is installed. The work is reference/setup_venv.sh's.
#
#   reference/setup_ppo_venv.sh
#   PPO_VENV=$HOME/venvs/trl-ppo reference/setup_ppo_venv.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu reference/setup_ppo_venv.sh   # CPU-only torch wheel
#   PYTHON=python3.11 reference/setup_ppo_venv.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/setup_venv.sh" --requirements "$here/requirements-ppo.txt" --venv "${PPO_VENV:-/work/trl-ppo-venv}" \
  --link "$here/.venv-ppo" --venv-var PPO_VENV
