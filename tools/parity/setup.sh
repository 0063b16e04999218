#!/usr/bin/env bash
# Creates the throwaway Python virtualenv that the parity fixtures (tools/parity/*.py) and
# `just bench-models` use: PyTorch (CPU wheels), transformers, safetensors, segment-anything-hq,
# timm, from PyPI. Nothing here is needed to build or test visprompt: the fixtures it makes are
# checked in.
#
# Usage: tools/parity/setup.sh [VENV_DIR]
#   VENV_DIR defaults to $PARITY_VENV, else ~/.cache/visprompt/parity-venv (outside the repository).
# Then:  $VENV_DIR/bin/python tools/parity/encoders.py
#        PARITY_VENV=$VENV_DIR just bench-models
set -euo pipefail

venv="${1:-${PARITY_VENV:-$HOME/.cache/visprompt/parity-venv}}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating virtualenv $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade pip >/dev/null
# CPU-only PyTorch keeps the download small; the parity fixtures and the benchmark run on the CPU.
# Where that index cannot be reached (a machine that sees only PyPI), PyPI's wheels do the same.
"$venv/bin/python" -m pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision \
    || "$venv/bin/python" -m pip install torch torchvision
"$venv/bin/python" -m pip install "transformers>=5" safetensors segment-anything-hq timm pillow numpy scipy
"$venv/bin/python" - <<'PY'
import torch, transformers
print(f"parity venv ready: torch {torch.__version__}, transformers {transformers.__version__}")
PY
echo "export PARITY_VENV=$venv"
