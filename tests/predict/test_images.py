"""Which files ``python -m spp_cls.predict`` reads from its IMAGE_OR_DIR arguments."""

from __future__ import annotations

import os
from pathlib import Path

from spp_cls.predict.images import image_files


def _touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def test_folders_are_read_recursively_with_image_extensions_only_in_sorted_order(tmp_path: Path) -> None:
    names = ("b/2.JPEG", "a/deep/1.png", "0.jpg")
    expected = [_touch(tmp_path / name) for name in names]
    _touch(tmp_path / "a" / "notes.txt")
    assert image_files([str(tmp_path)]) == sorted(expected)


def test_file_arguments_are_kept_whatever_their_name_and_missing_ones_stay(tmp_path: Path) -> None:
    named = _touch(tmp_path / "photo.dat")
    missing = str(tmp_path / "gone.jpg")
    assert image_files([named, missing]) == [named, missing]  # decoding decides; a missing file is reported


def test_symlinked_folders_are_followed_once_and_links_to_ancestors_do_not_loop(tmp_path: Path) -> None:
    shared = tmp_path / "elsewhere" / "birds"
    bird = _touch(shared / "b.jpg")
    root = tmp_path / "test_set"
    real = _touch(root / "cats" / "c.jpg")
    os.symlink(shared, root / "birds")  # a folder assembled from a link: read
    os.symlink(root / "cats", root / "cats_again")  # a second name for a folder already read: passed over
    os.symlink(root, root / "cats" / "loop")  # a link to an ancestor: would never end
    os.symlink(tmp_path / "nowhere.jpg", root / "dangling.jpg")  # listed; reading it fails and is reported
    assert Path(bird).is_file()
    assert image_files([str(root)]) == sorted([str(root / "birds" / "b.jpg"), real, str(root / "dangling.jpg")])
