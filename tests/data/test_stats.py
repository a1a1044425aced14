"""`python -m spp_cls.data.stats`: statistics checked against analytic values and a brute-force recount."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from PIL import Image

from spp_cls.data.config import DataConfig
from spp_cls.data.folder import SkippingImageFolder, list_class_folder_files, list_classes
from spp_cls.data.normalize import load_mean_image
from spp_cls.data.stats import compute_stats, main, save_stats
from spp_cls.data.transforms import CenterView, lighting_offset

SETTINGS = DataConfig(resize_size=73, crop_size=64)
SMALL = ["--resize-size", "73", "--crop-size", "64"]


@pytest.fixture(scope="module")
def red_blue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/train/{0_red,1_blue}: 4 pure red and 4 pure blue PNGs of mixed shapes (lossless colours)."""
    root = tmp_path_factory.mktemp("red_blue")
    for name, colour in (("0_red", (255, 0, 0)), ("1_blue", (0, 0, 255))):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i, size in enumerate([(100, 80), (80, 100), (90, 90), (120, 80)]):
            Image.new("RGB", size, colour).save(folder / f"{i}.png")
    return root


def test_two_colour_mixture_statistics_are_analytic(red_blue: Path) -> None:
    stats = compute_stats(red_blue / "train", SETTINGS, max_images=None, seed=0, workers=0)
    assert int(stats["count"]) == 8 and int(stats["skipped"]) == 0
    # Every pixel is (1,0,0) or (0,0,1) with probability 1/2: mean (.5,0,.5), std (.5,0,.5),
    # covariance [[.25,0,-.25],[0,0,0],[-.25,0,.25]]: one eigenvalue 0.5 along red - blue, two zeros.
    np.testing.assert_allclose(stats["mean"], [0.5, 0.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(stats["std"], [0.5, 0.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(stats["eigval"], [0.5, 0.0, 0.0], atol=1e-6)
    first = stats["eigvec"][:, 0]  # column j is the eigenvector of eigval[j]
    np.testing.assert_allclose(np.abs(first), [2**-0.5, 0.0, 2**-0.5], atol=1e-6)
    assert first[0] * first[2] < 0
    np.testing.assert_allclose(stats["eigvec"].T @ stats["eigvec"], np.eye(3), atol=1e-6)
    assert stats["mean_image"].shape == (3, 64, 64) and stats["mean_image"].dtype == np.float32
    np.testing.assert_allclose(
        stats["mean_image"], np.broadcast_to(np.array([0.5, 0, 0.5])[:, None, None], (3, 64, 64)), atol=1e-6
    )
    for key in ("mean", "std", "eigval", "eigvec"):
        assert stats[key].dtype == np.float32
    # The lighting, fed these figures, only moves colours along red - blue (the eigvec convention it reads).
    settings = DataConfig(eigval=tuple(stats["eigval"].tolist()), eigvec=tuple(map(tuple, stats["eigvec"].tolist())))
    offset = lighting_offset(settings, random.Random(3)).numpy()
    assert abs(offset[0]) > 1e-3 and abs(offset[1]) < 1e-6 and offset[0] == pytest.approx(-offset[2], abs=1e-6)


def test_statistics_match_a_brute_force_recount(tiny_data: Path) -> None:
    split = tiny_data / "train"
    stats = compute_stats(split, SETTINGS, max_images=12, seed=5, workers=0, batch_size=5)
    assert int(stats["count"]) == 12
    # Recount from the same 12 center views, all pixels in memory at once.
    samples = list_class_folder_files(split, list_classes(split))
    chosen = [samples[i] for i in sorted(random.Random(5).sample(range(len(samples)), 12))]
    dataset = SkippingImageFolder(split, CenterView(SETTINGS), size=64, samples=chosen)
    views = np.stack([dataset[i]["image"].numpy() for i in range(12)]).astype(np.float64) / 255
    pixels = views.transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(stats["mean_image"], views.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["mean"], pixels.mean(1), atol=1e-6)
    np.testing.assert_allclose(stats["std"], pixels.std(1), atol=1e-6)
    cov = np.cov(pixels, bias=True)
    np.testing.assert_allclose(stats["eigval"], np.sort(np.linalg.eigvalsh(cov))[::-1], atol=1e-6)
    assert stats["eigval"][0] > stats["eigval"][1] > stats["eigval"][2] > 0
    vec, val = stats["eigvec"].astype(np.float64), stats["eigval"].astype(np.float64)
    np.testing.assert_allclose(vec @ np.diag(val) @ vec.T, cov, atol=1e-6)


def test_max_images_takes_a_seeded_subset(tiny_data: Path) -> None:
    split = tiny_data / "train"
    a = compute_stats(split, SETTINGS, max_images=5, seed=0, workers=0)
    b = compute_stats(split, SETTINGS, max_images=5, seed=0, workers=0)
    c = compute_stats(split, SETTINGS, max_images=5, seed=1, workers=0)
    assert int(a["count"]) == 5 and int(c["count"]) == 5
    np.testing.assert_array_equal(a["mean_image"], b["mean_image"])
    assert not np.allclose(a["mean_image"], c["mean_image"])
    assert int(compute_stats(split, SETTINGS, max_images=1000, seed=0, workers=0)["count"]) == 64


def test_bad_files_are_skipped_and_counted(red_blue: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(red_blue, root)
    (root / "train" / "0_red" / "garbage.png").write_bytes(b"not an image at all")
    (root / "train" / "1_blue" / "empty.jpg").write_bytes(b"")
    stats = compute_stats(root / "train", SETTINGS, max_images=None, seed=0, workers=0)
    assert int(stats["count"]) == 8 and int(stats["skipped"]) == 2
    np.testing.assert_allclose(stats["mean"], [0.5, 0.0, 0.5], atol=1e-6)


def test_cli_writes_a_loadable_file_and_paste_ready_overrides(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stats" / "train_stats.npz"
    assert main([str(tiny_data), str(out), *SMALL, "--max-images", "20", "--workers", "2"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["train_stats.npz"]  # no temporary file left
    assert load_mean_image(out).shape == (3, 64, 64)
    with np.load(out, allow_pickle=False) as saved:
        stats = {key: saved[key] for key in saved.files}
    assert int(stats["count"]) == 20 and int(stats["skipped"]) == 0
    np.testing.assert_allclose(stats["mean_image"].mean((1, 2)), stats["mean"], atol=1e-5)
    assert stats["eigvec"].shape == (3, 3) and stats["eigval"].shape == (3,)

    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"data.normalization=mean_image data.mean_image={out.resolve()}"
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(lines[:4])}
    for key in ("mean", "std", "eigval", "eigvec"):
        np.testing.assert_allclose(np.array(parsed[f"data.{key}"]), stats[key], atol=1e-5)


def test_save_is_atomic_and_keeps_the_exact_name(tmp_path: Path) -> None:
    out = tmp_path / "stats.bin"  # np.savez would append ".npz" to a file name; the path must stay as given
    out.write_bytes(b"old")
    save_stats(out, {"mean_image": np.zeros((3, 4, 4), np.float32), "count": np.array(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.bin"]
    assert load_mean_image(out).shape == (3, 4, 4)
    with pytest.raises(TypeError, match="pickle"):
        save_stats(out, {"mean_image": np.array([{"a": 1}], dtype=object)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.bin"]
    assert load_mean_image(out).shape == (3, 4, 4)  # the old file is untouched


def test_missing_root_or_split_exits_2(red_blue: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.npz"
    assert main([str(tmp_path / "nowhere"), str(out), *SMALL]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(red_blue), str(out), *SMALL, "--split", "val"]) == 2
    assert "val does not exist" in capsys.readouterr().err
    assert not out.exists()
