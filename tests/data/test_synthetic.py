"""The embedded data set: deterministic, in the ImageNet folder layout, and rebuilt when half-written."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spp_cls.data import synthetic, synthetic_scenes
from spp_cls.data.folder import check_layout
from spp_cls.data.synthetic import MARKER, SyntheticSpec, ensure_synthetic_dataset, is_complete
from spp_cls.io import host_name

SPEC = SyntheticSpec(num_classes=3, train_per_class=4, val_per_class=2, min_short_side=40, max_short_side=70)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def test_layout_sizes_and_aspect_ratios(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", SPEC)
    assert check_layout(root, ("train", "val"), 3) == ["00_disk", "01_square", "02_triangle"]
    assert len(list((root / "train").rglob("*.jpg"))) == 12 and len(list((root / "val").rglob("*.jpg"))) == 6
    sizes = set()
    for path in root.rglob("*.jpg"):
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert 40 <= min(img.size) <= 70
            sizes.add(img.size)
    assert len(sizes) > 10  # varied sizes, both orientations
    assert any(w > h for w, h in sizes) and any(h > w for w, h in sizes)


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path: Path) -> None:
    a = digest(ensure_synthetic_dataset(tmp_path / "a", SPEC))
    b = digest(ensure_synthetic_dataset(tmp_path / "b", SPEC))
    c = digest(ensure_synthetic_dataset(tmp_path / "c", SyntheticSpec(**{**SPEC.__dict__, "seed": 1})))
    assert a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


def test_complete_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", SPEC)
    monkeypatch.setattr(synthetic, "generate", lambda *a: pytest.fail("regenerated a complete cache"))
    assert ensure_synthetic_dataset(root, SPEC) == root


def test_interrupted_generation_is_detected_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = digest(ensure_synthetic_dataset(tmp_path / "fresh", SPEC))
    root = tmp_path / "syn"
    real = synthetic._image_bytes
    calls = {"n": 0}

    def dies_midway(*args: object) -> bytes:
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(synthetic, "_image_bytes", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_dataset(root, SPEC)
    assert not root.exists() and not list(tmp_path.glob(".syn.tmp-*"))  # nothing half-written anywhere
    monkeypatch.setattr(synthetic, "_image_bytes", real)
    # a half-written cache of the earlier protocol (generated in place): marker, some images, no manifest
    (root / "train" / "00_disk").mkdir(parents=True)
    (root / MARKER).write_text("generation started\n")
    (root / "train" / "00_disk" / "00000.jpg").write_bytes(b"\xff\xd8 cut")
    assert not is_complete(root, SPEC)
    ensure_synthetic_dataset(root, SPEC)
    assert is_complete(root, SPEC) and digest(root) == fresh


def test_folder_of_a_killed_generation_is_removed(tmp_path: Path) -> None:
    """``kill -9`` leaves the temporary folder of a generation behind; the next generation removes it."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".syn.tmp-{host_name()}-{gone.stdout.strip()}-0123abcd"
    (leftover / "train").mkdir(parents=True)
    (leftover / MARKER).write_text("generation started\n")
    assert is_complete(ensure_synthetic_dataset(tmp_path / "syn", SPEC), SPEC)
    assert not leftover.exists() and not list(tmp_path.glob(".syn.tmp-*"))


def _refuse_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")  # e.g. Lustre mounted without -o flock

    monkeypatch.setattr(fcntl, "flock", refuse)


@pytest.mark.parametrize("locks", [True, False], ids=["locks", "no_locks"])
def test_concurrent_generations_leave_one_complete_data_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, locks: bool
) -> None:
    """Nodes sharing a cache folder all ask for the data set at once (over a stale cache of another spec).
    With locks one generates and the others reuse its result; without (a file system that refuses them)
    each generates into its own temporary folder and the first finished one is moved into place. Either way
    the data set is whole and byte-identical to a lone generation, and nothing is left behind. Threads stand
    in for the processes: each takes the lock through its own open file, as a process does."""
    reference = digest(ensure_synthetic_dataset(tmp_path / "reference", SPEC))
    root = ensure_synthetic_dataset(tmp_path / "shared" / "syn", SyntheticSpec(**{**SPEC.__dict__, "val_per_class": 3}))
    if not locks:
        _refuse_locks(monkeypatch)
    generations = []
    real_generate = synthetic.generate
    monkeypatch.setattr(synthetic, "generate", lambda *args: generations.append(1) or real_generate(*args))
    start = threading.Barrier(3)

    def ask() -> Path:
        start.wait(timeout=60)
        return ensure_synthetic_dataset(root, SPEC)

    with ThreadPoolExecutor(3) as pool:
        results = [f.result(timeout=300) for f in [pool.submit(ask) for _ in range(3)]]
    assert results == [root] * 3 and is_complete(root, SPEC) and digest(root) == reference
    assert len(generations) == 1 if locks else 1 <= len(generations) <= 3
    assert sorted(p.name for p in root.parent.iterdir()) == [".syn.lock", "syn"]  # no temporary or old folder


def test_truncated_file_or_changed_spec_triggers_rebuild(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", SPEC)
    victim = next(root.rglob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:100])
    assert not is_complete(root, SPEC)
    ensure_synthetic_dataset(root, SPEC)
    assert is_complete(root, SPEC)
    other = SyntheticSpec(**{**SPEC.__dict__, "val_per_class": 3})
    assert not is_complete(root, other)
    ensure_synthetic_dataset(root, other)
    assert is_complete(root, other) and len(list((root / "val").rglob("*.jpg"))) == 9


def test_foreign_folder_is_never_overwritten(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not generated by spp-cls"):
        ensure_synthetic_dataset(root, SPEC)
    assert (root / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_classes=0),
        dict(num_classes=synthetic_scenes.MAX_CLASSES + 1),
        dict(train_per_class=0),
        dict(min_short_side=8),
    ],
)
def test_bad_specs_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticSpec(**kwargs)


@pytest.mark.parametrize("label", range(len(synthetic_scenes.CLASSES)))
def test_every_class_draws_inside_small_and_elongated_images(label: int) -> None:
    background_only = np.random.default_rng(0)
    for width, height in ((40, 40), (40, 72), (72, 40), (160, 112)):
        rng = np.random.default_rng([label, width, height])
        image = synthetic_scenes.draw_scene(rng, label, width, height)
        assert image.size == (width, height) and image.mode == "RGB"
    layout = synthetic_scenes.CLASSES[label][1]
    for width, height in ((40, 72), (160, 112)):
        box_w, box_h = layout.size(background_only, width, height)
        assert 0 < box_w <= width and 0 < box_h <= height  # the target always fits, so it is never cut at drawing


def test_relations_span_the_image_height_and_differ_only_in_order() -> None:
    above, below = (dict(synthetic_scenes.CLASSES)[name] for name in ("disk_above_square", "square_above_disk"))
    assert above.tall and below.tall and above.aspect == below.aspect
    assert [box for _, box in above.parts] == [box for _, box in below.parts]
    assert [p for p, _ in above.parts] == [p for p, _ in reversed(below.parts)]
    heights = [above.size(np.random.default_rng(i), 200, 120)[1] / 120 for i in range(50)]
    assert min(heights) >= synthetic_scenes.RELATION_SPAN[0] and max(heights) <= synthetic_scenes.RELATION_SPAN[1]


def test_images_have_exact_photo_aspect_ratios_so_resized_sizes_repeat() -> None:
    spec = SyntheticSpec(min_short_side=112, max_short_side=160, max_aspect=1.6)
    sizes = [synthetic.image_size(spec, np.random.default_rng(i)) for i in range(300)]
    resized = set()
    for width, height in sizes:
        short, long = min(width, height), max(width, height)
        assert 112 <= short <= 160 and (long, short) != (0, 0)
        assert any(long * q == short * p for p, q in synthetic.ASPECTS if p / q <= 1.6)
        resized.add((round(128 * width / short), round(128 * height / short)))
    assert len(resized) == 9  # 5 ratios up to 1.6, two orientations, one square: the full-image size groups
