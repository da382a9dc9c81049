#!/usr/bin/env bash
# Installs the build dependencies (Debian 12 packages only) and builds rlhf into build/.
# --tests also installs what only the tests use (python3 for their checks, chromium to render
# the bench report headless). Idempotent: apt-get is skipped when every package is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake git libopenblas-openmp-dev nlohmann-json3-dev libgtest-dev libgmock-dev
          libbenchmark-dev libyaml-cpp-dev libzstd-dev zlib1g-dev libopenmpi-dev openmpi-bin)
[[ "${1:-}" == --tests ]] && PACKAGES+=(python3 chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
