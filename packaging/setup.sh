#!/usr/bin/env bash
# Sets up .venv with everything Noise Studio needs, idempotently.
#   bash packaging/setup.sh         the app
#   bash packaging/setup.sh --dev   the app plus test and lint tools
#
# torch: an existing torch in .venv is kept. Otherwise, with an NVIDIA GPU the
# default PyPI build (CUDA) is installed; without one, the CPU build 2.13.0 is
# asked for, so that a CPU-only machine never pulls the multi-GB CUDA wheels.
# Set TORCH_SPEC (e.g. "torch==2.5.1") and/or TORCH_INDEX_URL (e.g. PyTorch's
# CPU or cu124 wheel index) to choose another build.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    spec=${TORCH_SPEC:-torch}
  else
    spec=${TORCH_SPEC:-torch==2.13.0}
  fi
  echo "setup: installing $spec"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${pip[@]}" "$spec" --index-url "$TORCH_INDEX_URL"
  else
    "${pip[@]}" "$spec"
  fi
fi

stamp=".venv/.noise-studio-installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Noise Studio and its dependencies"
  "${pip[@]}" -e ".$extras"
  touch "$stamp"
fi

# Qt's runtime libraries, on a bare Debian/Ubuntu machine.
if ! QT_QPA_PLATFORM=offscreen .venv/bin/python -c "from PySide6 import QtGui" >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Qt's system libraries"
    apt-get update -qq && apt-get install -y -qq libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 \
      libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 >/dev/null
  else
    echo "setup: Qt cannot load; install libegl1 libgl1 libxkbcommon0 libfontconfig1 (see README)" >&2
  fi
fi
