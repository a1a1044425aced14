#!/usr/bin/env bash
# Create .venv and install spp-cls with a pinned, tested dependency set, chosen by the CUDA of the torch build:
#   bash scripts/setup.sh            CUDA 13 (default): requirements/constraints.txt, torch 2.14.1 from PyPI (CUDA 13.0);
#                                    needs an NVIDIA driver >= 580; also what CI and docker/Dockerfile use
#   CUDA=12 bash scripts/setup.sh    CUDA 12: requirements/constraints-cu12.txt, torch/torchvision +cu12x builds from
#                                    the PyTorch index named by the torch pin's label; driver >= 525.60.13 (535-570 ok)
#   DRY_RUN=1 bash scripts/setup.sh  print the commands instead of running them
# Idempotent: does nothing when .venv already holds this exact set; without CUDA, an existing .venv keeps the CUDA
# set it was made with (so scripts that call this one never swap a working CUDA 12 set for CUDA 13); switching
# CUDA explicitly recreates .venv.
# PYTHON=python3.11 picks the interpreter, VENV the folder, TORCH_INDEX_URL where the CUDA 12 wheels come from.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
DRY_RUN=${DRY_RUN:-}
stamp="$VENV/.spp-cls-installed"
have=$(cat "$stamp" 2>/dev/null || true)
had_cuda=cuda=13  # stamps written before the CUDA choice existed are of the CUDA 13 set
if [[ $have == *" cuda="* ]]; then
  had_cuda=${have##* }
fi
if [[ -z ${CUDA:-} && -n $have ]]; then
  CUDA=${had_cuda#cuda=}
fi
CUDA=${CUDA:-13}

run() {
  if [[ -n $DRY_RUN ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

case $CUDA in
  13)
    constraints=requirements/constraints.txt
    index=()
    ;;
  12)
    constraints=requirements/constraints-cu12.txt
    # the local label of the torch pin (torch==2.14.1+cu126) names the PyTorch index that has that build
    label=$(sed -n 's/^torch==[^+]*+\(cu[0-9]*\).*/\1/p' "$constraints")
    if [[ -z $label ]]; then
      echo "setup: no torch==X+cu12x pin in $constraints" >&2
      exit 2
    fi
    index=(--extra-index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/$label}")
    ;;
  *)
    echo "setup: CUDA=$CUDA: choose CUDA=13 (the default; NVIDIA driver >= 580) or CUDA=12 (driver >= 525.60.13)" >&2
    exit 2
    ;;
esac

want="$(cat "$constraints" pyproject.toml | sha256sum | cut -c1-16) cuda=$CUDA"
if [[ -z $DRY_RUN && $have == "$want" ]]; then
  exit 0
fi
clear=()
if [[ -n $have && $had_cuda != "cuda=$CUDA" ]]; then
  clear=(--clear)  # another torch build: start from an empty venv rather than mix CUDA libraries
fi
echo "setting up $VENV (CUDA $CUDA, pinned dependencies from $constraints)..."
run "$PYTHON" -m venv "${clear[@]}" "$VENV"
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
run "$VENV/bin/python" -m pip install --quiet -c "$constraints" "${index[@]}" -e ".[dev]"
if [[ -n $DRY_RUN ]]; then
  exit 0
fi
echo "$want" > "$stamp"
echo "setup done: $("$VENV/bin/python" -c 'import torch, torchvision, timm, pytorch_lightning as pl; print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), torchvision {torchvision.__version__}, timm {timm.__version__}, lightning {pl.__version__}")')"
