#!/usr/bin/env bash
# The main job: set up (if needed), then the paper's Table 2 question on the embedded data set: ZF-5 (a) without
# SPP (6x6 = 36 bins into fc6), (b) with SPP single-size and (c) SPP multi-size (50 bins), and the 30-bin control,
# 2 seeds each (experiment=demo); every run tests its final model with the center crop and, for SPP, the full
# image; then the report: mean ± std over seeds, the paired SPP - no-SPP difference per seed, the paper's numbers
# beside ours and where the runs depart from the paper's setting (report.md, report.csv, curves).
# Extra arguments are Hydra overrides for every run, e.g. seed=0,1 or trainer.max_epochs=4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
sweep="outputs/demo/$(date +%Y-%m-%d_%H-%M-%S)"
start=$(date +%s)
"$PY" train.py -m experiment=demo "hydra.sweep.dir=$sweep" "$@"
echo
"$PY" -m spp_cls.reporting "$sweep"
echo "(training and evaluation took $(( $(date +%s) - start ))s; runs are in $sweep)"
