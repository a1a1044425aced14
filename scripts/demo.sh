#!/usr/bin/env bash
# The main job: set up (if needed), train ZF-5 with and without SPP on the embedded data set, evaluate both
# checkpoints with evaluate.py and print their top-1/top-5 errors side by side.
# Extra arguments are Hydra overrides for both training runs, e.g. trainer.max_epochs=4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
sweep="outputs/demo/$(date +%Y-%m-%d_%H-%M-%S)"
start=$(date +%s)
"$PY" train.py -m experiment=demo model.spp=true,false "hydra.sweep.dir=$sweep" "$@"
for run in "$sweep"/*/; do
  "$PY" evaluate.py "ckpt_path=${run}checkpoints/best.ckpt" "hydra.run.dir=${run}eval_center"
done
echo
echo "ZF-5 with vs without SPP on the embedded data set (validation split, center crop):"
"$PY" -m spp_cls.reporting "$sweep"
echo "(training and evaluation took $(( $(date +%s) - start ))s; runs are in $sweep)"
