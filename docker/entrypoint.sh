#!/bin/sh
# Entrypoint of the spp-cls image: `train ARGS` and `evaluate ARGS` run train.py / evaluate.py with ARGS (Hydra
# overrides), any other program in the image runs as given (bash, python -m spp_cls.reporting DIR, ...).
# exec replaces this shell, so docker stop's SIGTERM and Slurm's signals reach python (and Lightning) directly.
# The scripts are found next to this file, not in the working directory: under Apptainer the working directory
# is the host's, and the run directories (outputs/) go there.
set -eu

app_dir=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)

usage() {
    cat <<USAGE
usage: train [HYDRA OVERRIDES...]          python $app_dir/train.py ...  (e.g. train experiment=smoke)
       evaluate ckpt_path=PATH [...]       python $app_dir/evaluate.py ...
       COMMAND [ARGS...]                   any program in the image (e.g. bash, python -m spp_cls.reporting DIR)
USAGE
}

if [ $# -eq 0 ]; then
    usage >&2
    exit 2
fi

case $1 in
    train)
        shift
        exec python "$app_dir/train.py" "$@"
        ;;
    evaluate)
        shift
        exec python "$app_dir/evaluate.py" "$@"
        ;;
    help | -h | --help)
        usage
        exit 0
        ;;
esac

if command -v "$1" >/dev/null 2>&1; then
    exec "$@"
fi
echo "spp-cls: unknown command '$1' (Hydra overrides go after train or evaluate, e.g. train data=imagenet)" >&2
usage >&2
exit 2
