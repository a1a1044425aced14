#!/usr/bin/env bash
# The GPU checks of spp-cls, for a machine with an NVIDIA GPU (two where present: then DDP and kill-and-resume on
# 2 GPUs too), in at most 10 minutes: PASS/FAIL rows and the figures of the README's Speed section, as a Markdown
# table naming the device, printed at the end and written to outputs/gpu_check/<time>/gpu_check.md (each check's
# log beside it). What each check does and its tolerance: scripts/gpu_check.py.
#   bash scripts/gpu_check.sh [--budget-s 600] [--only step graphs protocols throughput loader ddp resume] [--out DIR]
# Sets up .venv first (scripts/setup.sh: CUDA=12 for the CUDA 12 set; unset, an existing .venv keeps its set),
# unless PYTHON names the interpreter to use.
# Without an NVIDIA GPU it prints one line and exits 0, having run (and installed) nothing. Exit 1: a check failed,
# or torch cannot use the GPU that nvidia-smi lists (one line naming the driver and the way out, e.g. CUDA=12).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L > /dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi missing or failing); nothing run"
  exit 0
fi
if [[ -z ${PYTHON:-} ]]; then
  bash scripts/setup.sh
  PYTHON=.venv/bin/python
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
