"""``python -m spp_cls.predict``: a checkpoint and its ONNX export agree on every image's top-1 (center and full);
``--json`` records; unreadable files reported and skipped; one-line errors for what cannot be predicted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spp_cls.checkpointing import load_safe, save_atomic
from spp_cls.export import save_export
from spp_cls.export.checkpoint import load_trained_model
from spp_cls.predict.__main__ import main
from tests.predict.conftest import CLASSES, CROP, SIZES


def predict(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args] + ["--workers", "0"])
    out, err = capsys.readouterr()
    return code, out, err


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # the ONNX export
@pytest.mark.parametrize("protocol", ["center", "full"])
def test_checkpoint_and_onnx_give_the_same_top1(
    models: dict[str, Path],
    onnx_model: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    protocol: str,
) -> None:
    models = {**models, "onnx": onnx_model}
    for name in ("ckpt", "onnx"):
        run = ["--run", models["ckpt"]] if name == "onnx" else []
        code, _, err = predict(
            capsys, models[name], images, "--protocol", protocol, "--json", tmp_path / f"{name}.jsonl", *run
        )
        assert code == 0, err
        assert f"{len(SIZES)} images predicted" in err and "1 skipped" in err
    by_ckpt, by_onnx = records(tmp_path / "ckpt.jsonl"), records(tmp_path / "onnx.jsonl")
    assert [r["path"] for r in by_ckpt] == [r["path"] for r in by_onnx]
    read = [(a, b) for a, b in zip(by_ckpt, by_onnx) if "error" not in a]
    assert len(read) == len(SIZES)
    assert [a["classes"][0] for a, _ in read] == [b["classes"][0] for _, b in read]
    assert len({a["classes"][0] for a, _ in read}) > 1, "the images should not all get one class"
    for a, b in read:
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-4)


def test_json_records_and_printed_lines(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_file = tmp_path / "out.jsonl"
    code, out, err = predict(capsys, models["ckpt"], images, "--topk", "3", "--json", out_file)
    assert code == 0
    found = records(out_file)
    paths = sorted(str(p) for p in images.rglob("*") if p.is_file())
    assert [r["path"] for r in found] == paths  # every file once, in the order they were read (sorted)
    broken = next(r for r in found if r["path"].endswith("broken.jpg"))
    assert set(broken) == {"path", "error"}
    assert f"skipped {broken['path']}" in err
    for record in (r for r in found if "error" not in r):
        assert set(record) == {"path", "classes", "names", "indices", "probabilities"}
        assert len(record["classes"]) == 3 and record["probabilities"] == sorted(record["probabilities"], reverse=True)
        assert record["classes"] == [CLASSES[i] for i in record["indices"]]
        readable = {"n01440764": "tench", "n01443537": "goldfish"}
        assert record["names"] == [readable.get(c, c) for c in record["classes"]]
        assert 0 < sum(record["probabilities"]) <= 1 + 1e-5
    assert len(out.splitlines()) == len(SIZES)
    assert all("\t" in line and line.split("\t")[0] in paths for line in out.splitlines())


def test_multiview_on_the_spp_checkpoint(models: dict[str, Path], images: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = predict(
        capsys, models["ckpt"], images / "img0.jpg", images / "img3.jpg", "--protocol", "multiview"
    )
    assert code == 0, err
    assert len(out.splitlines()) == 2 and "(multiview)" in err


def test_odd_file_names_print_and_files_passed_over_are_reported(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A file name that is not UTF-8 crashed the printing (a strict stdout refuses its surrogates) and lost the
    JSON; files without an image extension in a folder were left out without a word."""
    folder = tmp_path / "odd"
    folder.mkdir()
    odd = os.fsdecode(bytes(folder) + b"/caf\xe9.jpg")
    shutil.copy(images / "img0.jpg", odd)
    shutil.copy(images / "img0.jpg", folder / "anim.gif")
    code, out, err = predict(capsys, models["ckpt"], folder, "--json", tmp_path / "odd.jsonl")
    assert code == 0, err
    assert out.startswith(f"{folder}/caf\\xe9.jpg\t")
    assert f"passed over 1 file(s) without an image extension in the folders ({folder / 'anim.gif'})" in err
    (record,) = records(tmp_path / "odd.jsonl")
    assert record["path"] == odd  # the JSON keeps the name itself (escaped by json), as os.fsdecode gives it


def test_unreadable_images_only_exit_1(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = predict(capsys, models["ckpt"], images / "broken.jpg", tmp_path / "missing.jpg")
    assert code == 1 and out == ""
    assert "0 images predicted" in err and "2 skipped" in err and "missing.jpg" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert predict(capsys, models["ckpt"], empty)[0] == 1


@pytest.mark.parametrize(
    "model, extra, words",
    [
        ("missing.ckpt", [], "model not found:"),
        ("image", [], "is neither a training checkpoint nor an exported model (.onnx, .pt2)"),
        ("image.onnx", [], "is not a readable ONNX model"),
        ("image.ONNX", [], "is not a readable ONNX model"),  # the suffix in any case
        ("image.pt2", [], "is not a torch.export program"),
        ("ckpt", ["--classes", "three.txt"], "three.txt has 3 classes but zf5_spp has 4 outputs"),
        pytest.param(
            "onnx",
            ["--classes", "three.txt"],
            "three.txt has 3 classes but spp.onnx (any size) has 4 outputs",
            marks=pytest.mark.slow,  # the ONNX export
        ),
        pytest.param(
            "onnx",
            ["--protocol", "multiview"],
            "protocol multiview pools views on the feature maps",
            marks=pytest.mark.slow,
        ),
        ("fixed", ["--protocol", "full"], "protocol full feeds whole images of any size, which only an SPP model"),
    ],
)
def test_errors_are_one_line(
    request: pytest.FixtureRequest,
    models: dict[str, Path],
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    model: str,
    extra: list[str],
    words: str,
) -> None:
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    for suffix in ("", ".onnx", ".ONNX", ".pt2"):
        (tmp_path / f"image{suffix}").write_bytes((images / "img0.jpg").read_bytes())
    if model == "onnx":
        models = {**models, "onnx": request.getfixturevalue("onnx_model")}
    path = models[model] if model in models else tmp_path / model
    extra = [str(tmp_path / e) if e.endswith(".txt") else e for e in extra]
    code, out, err = predict(capsys, path, images, *extra)
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if not line.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err


@pytest.mark.slow  # the torch.export of the network
def test_a_pt2_program_gives_the_checkpoints_top1(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model, _ = load_trained_model(models["ckpt"])
    program = save_export(model, tmp_path / "spp.pt2", CROP, CROP, dynamic=True)
    assert predict(capsys, models["ckpt"], images, "--json", tmp_path / "ckpt.jsonl")[0] == 0
    code, _, err = predict(capsys, program, images, "--run", models["ckpt"], "--json", tmp_path / "pt2.jsonl")
    assert code == 0, err
    read = [
        (a, b) for a, b in zip(records(tmp_path / "ckpt.jsonl"), records(tmp_path / "pt2.jsonl")) if "error" not in a
    ]
    assert len(read) == len(SIZES) and all(a["indices"] == b["indices"] for a, b in read)


@pytest.mark.slow  # the ONNX export
@pytest.mark.parametrize("protocol", ["full", "full_flip"])
def test_a_fixed_size_program_refuses_whole_images(
    models: dict[str, Path], fixed_onnx: Path, images: Path, capsys: pytest.CaptureFixture, protocol: str
) -> None:
    for run in ([], ["--run", models["fixed"]]):
        code, out, err = predict(capsys, fixed_onnx, images, "--protocol", protocol, *run)
        assert code == 2 and out == ""
        lines = [line for line in err.splitlines() if not line.startswith("note:")]
        assert lines == [
            f"error: protocol {protocol} feeds whole images of any size, but fixed.onnx ({CROP}x{CROP}) takes one "
            "input size; export an SPP model with --dynamic, or use --protocol center"
        ], err


@pytest.mark.slow  # the ONNX export
@pytest.mark.parametrize("protocol", ["center", "ten_view"])
def test_a_fixed_size_program_predicts_crops_of_its_size(
    models: dict[str, Path],
    fixed_onnx: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    protocol: str,
) -> None:
    assert predict(capsys, models["fixed"], images, "--protocol", protocol, "--json", tmp_path / "ckpt.jsonl")[0] == 0
    code, _, err = predict(
        capsys, fixed_onnx, images, "--protocol", protocol, "--run", models["fixed"], "--json", tmp_path / "onnx.jsonl"
    )
    assert code == 0, err
    assert f"{len(SIZES)} images predicted by fixed.onnx ({CROP}x{CROP}) ({protocol})" in err
    read = [
        (a, b) for a, b in zip(records(tmp_path / "ckpt.jsonl"), records(tmp_path / "onnx.jsonl")) if "error" not in a
    ]
    assert len(read) == len(SIZES) and all(a["indices"][0] == b["indices"][0] for a, b in read)


@pytest.mark.parametrize("protocol", ["center", "ten_view"])
def test_crops_of_another_size_than_the_programs_are_refused(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture, protocol: str
) -> None:
    """An SPP model exported without --dynamic at a size that is not its run's square crop: a non-square program
    (the default crop is its height) and one larger than the run's crop (``--run``)."""
    model, _ = load_trained_model(models["ckpt"])
    for height, width, run in [(CROP, CROP + 16, []), (CROP + 16, CROP + 16, ["--run", models["ckpt"]])]:
        program = save_export(model, tmp_path / "spp.pt2", height, width, dynamic=False)
        code, out, err = predict(capsys, program, images, "--protocol", protocol, *run)
        assert code == 2 and out == ""
        crop = CROP if run else height
        lines = [line for line in err.splitlines() if not line.startswith("note:")]
        assert lines == [
            f"error: protocol {protocol} feeds {crop}x{crop} crops (the run's data.crop_size), but spp.pt2 "
            f"({height}x{width}) takes one input size; export it at that size, or an SPP model with --dynamic"
        ], err


def test_an_unwritable_json_output_fails_before_any_image(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_dir").mkdir()
    for out_file, words in [
        (tmp_path / "a_file" / "out.jsonl", f"--json {tmp_path / 'a_file' / 'out.jsonl'}: cannot write there ("),
        (tmp_path / "a_dir", f"--json {tmp_path / 'a_dir'} is a directory; give a file name"),
    ]:
        code, out, err = predict(capsys, models["ckpt"], images, "--json", out_file)
        assert code == 2 and out == ""  # no image was predicted, only to lose its result
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {words}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]
    nested = tmp_path / "new" / "folder" / "out.jsonl"  # a folder that does not exist yet is made
    assert predict(capsys, models["ckpt"], images, "--json", nested)[0] == 0
    assert len(records(nested)) == len(SIZES) + 1
    assert sorted(p.name for p in nested.parent.iterdir()) == ["out.jsonl"]  # the writability probe left nothing


def test_a_mean_image_run_needs_its_mean_image_file(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """data.normalization=mean_image: the file the run recorded (data.mean_image) is read; without it, one line."""
    checkpoint = load_safe(models["ckpt"])
    data = checkpoint["hyper_parameters"]["run_config"]["data"]
    mean_file = tmp_path / "mean.npz"
    data.update(normalization="mean_image", mean_image=str(mean_file))
    save_atomic(checkpoint, tmp_path / "mean.ckpt")
    code, out, err = predict(capsys, tmp_path / "mean.ckpt", images / "img0.jpg")
    assert code == 2 and out == ""
    assert err == f"error: mean image file {mean_file} does not exist (make it with `python -m spp_cls.data.stats`)\n"
    np.savez(mean_file, mean_image=np.full((3, 8, 8), 0.5, dtype=np.float32))
    code, out, err = predict(capsys, tmp_path / "mean.ckpt", images / "img0.jpg")
    assert code == 0 and out.startswith(str(images / "img0.jpg")), err


def _ema_checkpoint(source: Path, target: Path) -> None:
    """``source`` as a run with ``callbacks=ema`` writes it: ``state_dict`` the average (here the source's
    weights), the raw weights beside it (here with fc8's class rows rotated by one, so their top-1 differs)."""
    checkpoint = load_safe(source)
    raw = dict(checkpoint["state_dict"])
    for key in ("model.fc8.weight", "model.fc8.bias"):
        raw[key] = raw[key].roll(1, dims=0)
    checkpoint.update(current_model_state=raw, averaging_state={"n_averaged": 7})
    save_atomic(checkpoint, target)


def test_weights_picks_the_ema_or_the_raw_weights_of_a_checkpoint(
    models: dict[str, Path], images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ema = tmp_path / "ema.ckpt"
    _ema_checkpoint(models["ckpt"], ema)
    top1: dict[str, list[int]] = {}
    for label, ckpt, extra in (
        ("plain", models["ckpt"], []),
        ("default", ema, []),
        ("ema", ema, ["--weights", "ema"]),
        ("raw", ema, ["--weights", "raw"]),
    ):
        out = tmp_path / f"{label}.jsonl"
        assert predict(capsys, ckpt, images, "--json", out, *extra)[0] == 0
        top1[label] = [r["indices"][0] for r in records(out) if "error" not in r]
    assert top1["default"] == top1["ema"] == top1["plain"]  # the average, as evaluate.py's eval_weights=ema
    assert top1["raw"] == [(i + 1) % len(CLASSES) for i in top1["plain"]]  # the raw weights' rotated rows
    raw_bias = load_safe(ema)["current_model_state"]["model.fc8.bias"]
    exported, _ = load_trained_model(ema, "raw")  # what export --weights raw writes
    assert torch.equal(exported.state_dict()["fc8.bias"], raw_bias)
    # written before the EMA's first update (older versions left the setup copy in state_dict): the raw weights
    checkpoint = load_safe(ema)
    checkpoint["averaging_state"]["n_averaged"] = 0
    save_atomic(checkpoint, ema)
    assert torch.equal(load_trained_model(ema)[0].state_dict()["fc8.bias"], raw_bias)


def test_weights_is_refused_for_an_exported_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    program = tmp_path / "model.onnx"
    program.write_bytes(b"not read: the option is refused first")
    code, _, err = predict(capsys, program, tmp_path, "--weights", "raw")
    assert code == 2 and err.strip().splitlines() == [
        "error: --weights is for training checkpoints; an exported model holds the weights it was exported with "
        "(python -m spp_cls.export --weights)"
    ]
