#!/usr/bin/env bash
# The main job: set up (if needed), train ZF-5 with and without SPP on the embedded data set, evaluate both
# checkpoints with evaluate.py (center crop; the SPP model also full image and multi-view on feature maps)
# and print their top-1/top-5 errors side by side.
# Extra arguments are Hydra overrides for both training runs, e.g. trainer.max_epochs=4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
sweep="outputs/demo/$(date +%Y-%m-%d_%H-%M-%S)"
start=$(date +%s)
"$PY" train.py -m experiment=demo model.spp=true,false "hydra.sweep.dir=$sweep" "$@"
for run in "$sweep"/*/; do
  protocols="[center]"  # the full-image and feature-map protocols need an SPP model
  if grep -q "model.spp=true" "${run}.hydra/overrides.yaml"; then protocols="[center,full,multiview]"; fi
  "$PY" evaluate.py "ckpt_path=${run}checkpoints/best.ckpt" "protocols=$protocols" "hydra.run.dir=${run}eval"
done
echo
echo "ZF-5 with vs without SPP on the embedded data set (validation split; top-1 / top-5 error %):"
"$PY" -m spp_cls.reporting "$sweep" --columns
echo "(training and evaluation took $(( $(date +%s) - start ))s; runs are in $sweep)"
