#!/usr/bin/env bash
# Create (or update) the project's virtual environment from the pinned files.
#   tools/install.sh [VENV] [PYTHON]
# torch and torchvision are installed first so that no other package pulls a default build:
#   * a machine with an NVIDIA driver (nvidia-smi works) gets the package index's CUDA build;
#   * otherwise CPU wheels: local ones if pip's configured find-links hold them, else the ones
#     from TORCH_CPU_INDEX_URL (PyTorch's CPU wheel index by default); where neither has them
#     (an index that is unreachable), the package index's build, which also runs on the CPU.
# Set TORCH_INSTALL=cuda or TORCH_INSTALL=cpu to override the detection.
set -euo pipefail
venv=${1:-.venv}
python=${2:-python3.11}
torch_pins=("torch==2.14.1" "torchvision==0.29.1")
command -v "$python" >/dev/null 2>&1 || python=python3
cd "$(dirname "$0")/.."

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# pip's output only on failure, without its notes on this machine's empty local index folders.
quiet() {
  local log status=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  [ "$status" = 0 ] || grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
  rm -f "$log"
  return "$status"
}

if ! "$venv/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
  mode=${TORCH_INSTALL:-auto}
  if [ "$mode" = auto ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then mode=cuda; else mode=cpu; fi
  fi
  echo "install: torch ($mode build)"
  if [ "$mode" = cuda ]; then
    quiet "${pip[@]}" install -q "${torch_pins[@]}"
  elif ! "${pip[@]}" install -q --no-index "${torch_pins[@]}" >/dev/null 2>&1 &&
    ! "${pip[@]}" install -q --timeout 15 --retries 1 \
      --index-url "${TORCH_CPU_INDEX_URL:-https://download.pytorch.org/whl/cpu}" "${torch_pins[@]}" >/dev/null 2>&1; then
    echo "install: no CPU build of ${torch_pins[*]} reachable; the package index's build (it runs on the CPU)"
    quiet "${pip[@]}" install -q "${torch_pins[@]}"
  fi
fi

echo "install: project and pinned dependencies (requirements-lock.txt as constraints)"
quiet "${pip[@]}" install -q -c requirements-lock.txt -r requirements-dev.txt -e .
"${pip[@]}" check
