"""``python -m spp_cls.export CKPT OUT.{pt2,onnx} [--height H --width W] [--dynamic]``: a training checkpoint's
network as a torch.export program (.pt2, ``torch.export.load``) or an ONNX model (.onnx, for ONNX Runtime).

``--weights raw`` exports the raw weights of a run that kept an EMA (default ``ema``, as ``eval_weights``).
The example input is H x W (default: the run's training crop). ``--dynamic`` (SPP models only) makes height
and width dynamic from the smallest size whose last conv map is 2x2; the batch is always dynamic. The
program's input is a float batch (N, 3, H, W), normalised as in training; its output is the logits.
"""

from __future__ import annotations

import argparse
import sys

from spp_cls.checkpointing import CheckpointError
from spp_cls.export.checkpoint import load_trained_model
from spp_cls.export.programs import FORMATS, min_dynamic_side, save_export
from spp_cls.lightning.ema import EVAL_WEIGHTS
from spp_cls.models import model_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spp_cls.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt", metavar="CKPT", help="checkpoint written by train.py")
    parser.add_argument("out", metavar="OUT", help=f"output file, by its suffix one of {', '.join(FORMATS)}")
    parser.add_argument("--height", type=int, help="example input height (default: the training crop)")
    parser.add_argument("--width", type=int, help="example input width (default: the training crop)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic height and width (SPP models)")
    parser.add_argument(
        "--weights",
        choices=EVAL_WEIGHTS,
        default="ema",
        help="a checkpoint of a run with callbacks=ema: its EMA (default) or its raw weights, as eval_weights",
    )
    args = parser.parse_args(argv)
    if not args.out.endswith(FORMATS):
        parser.error(f"OUT must end in one of {', '.join(FORMATS)}; got {args.out}")
    try:
        model, crop = load_trained_model(args.ckpt, args.weights)
        height, width = args.height or crop, args.width or crop
        path = save_export(model, args.out, height, width, args.dynamic)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sides = f"height and width >= {min_dynamic_side(model)}" if args.dynamic else f"{height}x{width}"
    name = model_name(model.arch.name, model.spp)
    print(f"wrote {path}: {name}, input (N, 3, H, W) with any N and {sides}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
