#!/usr/bin/env bash
# Create .venv and install spp-cls with the pinned, tested dependency set (requirements/constraints.txt).
# Idempotent: does nothing when .venv already holds this exact set. PYTHON=python3.11 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.spp-cls-installed"
want=$(cat requirements/constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up $VENV (pinned dependencies from requirements/constraints.txt)..."
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
echo "setup done: $("$VENV/bin/python" -c 'import torch, torchvision, timm, pytorch_lightning as pl; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, lightning {pl.__version__}")')"
