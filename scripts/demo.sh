#!/usr/bin/env bash
# The main job: set up (if needed), train ZF-5 with and without SPP on the embedded data set, test both best
# checkpoints (center crop; the SPP model also full image and multi-view on feature maps) and print their
# top-1/top-5 errors side by side.
# Extra arguments are Hydra overrides for both training runs, e.g. trainer.max_epochs=4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
sweep="outputs/demo/$(date +%Y-%m-%d_%H-%M-%S)"
start=$(date +%s)
# each run tests its best checkpoint after training (into <run>/eval): center crop, and for the SPP model also the
# full image and multi-view on feature maps (evaluate_protocols skips those for the no-SPP model)
"$PY" train.py -m experiment=demo model.spp=true,false "evaluate_protocols=[center,full,multiview]" \
  "hydra.sweep.dir=$sweep" "$@"
echo
echo "ZF-5 with vs without SPP on the embedded data set (validation split; top-1 / top-5 error %):"
"$PY" -m spp_cls.reporting "$sweep" --columns
echo "(training and evaluation took $(( $(date +%s) - start ))s; runs are in $sweep)"
