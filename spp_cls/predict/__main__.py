"""``python -m spp_cls.predict MODEL IMAGE_OR_DIR... [--topk 5] [--protocol center|full|multiview] [--json OUT]``:
the top-k classes of images of any size, by a training checkpoint or a program exported by spp_cls.export.

MODEL: a training checkpoint (weights-only load; it holds the run's data settings and class index) or an
``.onnx``/``.pt2`` file (its run's settings from ``--run CKPT_OR_RUN_DIR``, else ImageNet's defaults). Images are
decoded by content; directories are read recursively (files with an image extension), in batches. The views are
a test protocol's (``center``: the center crop; ``full``: the whole image at the test size, SPP models only;
``multiview``: the paper's multi-scale views pooled on the feature maps, checkpoints of SPP models only).

Exit status: 0 when at least one image was predicted (unreadable ones are reported on stderr and skipped), 1 when
none could be read, 2 for a problem with the model or the arguments (one line on stderr).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Optional

import torch
from tqdm import tqdm

from spp_cls.data.normalize import BatchNormalizer
from spp_cls.evaluation.protocols import PROTOCOLS, TestProtocol, build_protocol
from spp_cls.lightning.ema import EVAL_WEIGHTS
from spp_cls.predict.classes import class_index
from spp_cls.predict.errors import PredictError
from spp_cls.predict.exported import ExportedNet, needs_feature_maps
from spp_cls.predict.images import batches, image_files
from spp_cls.predict.model import LoadedModel, load_model
from spp_cls.predict.output import (
    check_writable,
    passed_over_line,
    prediction_line,
    skip_line,
    skip_record,
    write_json,
)
from spp_cls.predict.scoring import Scorer


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spp_cls.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", metavar="MODEL", help="training checkpoint, or a .onnx / .pt2 from spp_cls.export")
    parser.add_argument("images", metavar="IMAGE_OR_DIR", nargs="+", help="image files and directories of them")
    parser.add_argument("--topk", type=int, default=5, help="classes shown per image (default 5)")
    parser.add_argument("--protocol", default="center", choices=sorted(PROTOCOLS), help="the views (default center)")
    parser.add_argument("--json", metavar="OUT", help="write one JSON record per image (JSON Lines) to OUT")
    parser.add_argument("--run", metavar="CKPT_OR_RUN_DIR", help="an exported model's run: its data settings, classes")
    parser.add_argument(
        "--weights",
        choices=EVAL_WEIGHTS,
        help="a checkpoint of a run with callbacks=ema: its EMA (the default) or its raw weights, as eval_weights",
    )
    parser.add_argument("--classes", metavar="FILE", help="class index file, one label per line (e.g. classes.txt)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--workers", type=int, default=min(4, (os.cpu_count() or 1) - 1), help="loader processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    args = parser.parse_args(argv)
    if args.topk < 1 or args.batch_size < 1 or args.workers < 0:
        parser.error("--topk and --batch-size must be >= 1 and --workers >= 0")
    return args


def check_input_size(protocol: TestProtocol, loaded: LoadedModel, crop: int) -> None:
    """Refuse a protocol whose views a network built for one input size cannot take: the whole-image protocols
    (any size) and the crop protocols when their crop (the run's ``data.crop_size``) is not that size."""
    fixed = getattr(loaded.net, "fixed_input_size", None)
    if fixed is None:
        return
    exported = isinstance(loaded.net, ExportedNet)
    sized = loaded.name if exported else f"{loaded.name} ({fixed[0]}x{fixed[1]})"  # a program's name says its size
    if protocol.needs_spp and exported:
        raise PredictError(
            f"protocol {protocol.name} feeds whole images of any size, but {sized} takes one input size; "
            "export an SPP model with --dynamic, or use --protocol center"
        )
    if not protocol.needs_spp and tuple(fixed) != (crop, crop):
        hint = "; export it at that size, or an SPP model with --dynamic" if exported else ""
        raise PredictError(
            f"protocol {protocol.name} feeds {crop}x{crop} crops (the run's data.crop_size), but {sized} takes "
            f"one input size{hint}"
        )


def build_scorer(loaded: LoadedModel, args: argparse.Namespace) -> Scorer:
    """The protocol, normaliser and class index for ``loaded``; a PredictError for any of them that does not fit."""
    if isinstance(loaded.net, ExportedNet) and needs_feature_maps(args.protocol):
        raise PredictError(
            f"protocol {args.protocol} pools views on the feature maps, which an exported program does not expose; "
            "give the training checkpoint"
        )
    settings = loaded.settings
    try:
        protocol = build_protocol(args.protocol, settings.data, settings.protocol)
        check_input_size(protocol, loaded, settings.data.crop_size)
        protocol.check_model(loaded.net, loaded.name)
        normalizer = BatchNormalizer(settings.data)
    except (ValueError, FileNotFoundError) as err:
        raise PredictError(str(err).splitlines()[0]) from err
    classes, names = class_index(loaded.num_classes, settings.classes, args.classes, loaded.name)
    return Scorer(loaded, protocol, normalizer, classes, names, args.topk, torch.device(args.device))


def predict(args: argparse.Namespace) -> int:
    if args.json:
        check_writable(args.json)  # before the model and the images: their results would be lost at the end
    loaded = load_model(args.model, torch.device(args.device), args.run, args.weights)
    scorer = build_scorer(loaded, args)
    passed_over: list[str] = []
    files = image_files(args.images, passed_over)
    if passed_over:
        print(passed_over_line(passed_over), file=sys.stderr)
    if not files:
        print(f"no image files in {' '.join(args.images)}", file=sys.stderr)
        return 1
    logging.getLogger("spp_cls.data.folder").setLevel(logging.ERROR)  # skipped files are reported below
    settings = loaded.settings.data
    records: list[dict[str, Any]] = []
    predicted = skipped = 0
    start = time.monotonic()
    with tqdm(total=len(files), unit="img", disable=not sys.stderr.isatty(), file=sys.stderr) as progress:
        for batch in batches(files, scorer.protocol.view(), settings, args.batch_size, args.workers):
            for bad in batch.skipped:
                progress.write(skip_line(bad), file=sys.stderr)
                records.append(skip_record(bad))
            for prediction in scorer.predict(batch, files):
                progress.write(prediction_line(prediction), file=sys.stdout)
                records.append(prediction.record())
            predicted, skipped = predicted + len(batch.positions), skipped + len(batch.skipped)
            progress.update(len(batch.positions) + len(batch.skipped))
    if args.json:
        order = {path: i for i, path in reversed(list(enumerate(files)))}  # a file given twice: its first place
        write_json(args.json, sorted(records, key=lambda record: order[record["path"]]))
    rate = (predicted + skipped) / max(time.monotonic() - start, 1e-9)  # reading, decoding and scoring
    print(
        f"{predicted} images predicted by {loaded.name} ({args.protocol}), {skipped} skipped, {rate:.1f} images/s",
        file=sys.stderr,
    )
    return 0 if predicted else 1


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return predict(args)
    except PredictError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
