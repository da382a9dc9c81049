#!/usr/bin/env bash
# Installs the build dependencies (Debian 12 packages only) and builds rlhf into build/.
#   --tests    also what only the tests use (python3 for their checks, chromium to render the
#              bench report headless), and build with the tests' fault-injection hooks
#   --fuzz     also clang with libFuzzer and the sanitizer runtimes, and clang's OpenMP (fuzz/)
#   --no-build install only
# Idempotent: apt-get is skipped when every package is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake git libopenblas-openmp-dev nlohmann-json3-dev libgtest-dev libgmock-dev
          libbenchmark-dev libyaml-cpp-dev libzstd-dev zlib1g-dev libopenmpi-dev openmpi-bin libpcre2-dev pkg-config)
build=1
hooks=OFF  # the fault-injection hooks only in the test script's build
for arg in "$@"; do
  case "$arg" in
    --tests) PACKAGES+=(python3 chromium); hooks=ON ;;
    --fuzz) PACKAGES+=(clang libclang-rt-14-dev libomp-14-dev) ;;
    --no-build) build=0 ;;
    *) echo "usage: $0 [--tests] [--fuzz] [--no-build]" >&2; exit 2 ;;
  esac
done
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

((build)) || exit 0
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRLHF_TEST_HOOKS="$hooks" >/dev/null
cmake --build build -j"$(nproc)"
