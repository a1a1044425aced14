"""Flat validation folders labelled by the files people have; the same labels as class folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spp_cls.data import val_labels
from spp_cls.data.folder import list_class_folder_files, list_classes
from spp_cls.data.val_labels import list_flat_split, read_val_labels


@pytest.fixture()
def flat(tiny_data: Path, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    """tiny_data's val split flattened into ILSVRC2012_val_<n>.JPEG files, with the truth per file name."""
    classes = list_classes(tiny_data / "train")
    folder = tmp_path / "val"
    folder.mkdir()
    truth = {}
    for n, (path, label) in enumerate(list_class_folder_files(tiny_data / "val", classes), start=1):
        name = f"ILSVRC2012_val_{n:08d}.JPEG"
        shutil.copy(path, folder / name)
        truth[name] = classes[label]
    return folder, classes, truth


def _as_labels(samples: list[tuple[str, int]], classes: list[str]) -> dict[str, str]:
    return {Path(p).name: classes[label] for p, label in samples}


def test_kaggle_csv(flat: tuple[Path, list[str], dict[str, str]], tmp_path: Path) -> None:
    folder, classes, truth = flat
    rows = [f"{Path(n).stem},{wnid} 1 2 30 40 {wnid} 5 6 7 8" for n, wnid in reversed(truth.items())]
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    assert _as_labels(list_flat_split(folder, tmp_path / "LOC_val_solution.csv", classes), classes) == truth


def test_name_label_pairs_with_names_or_sorted_indices(
    flat: tuple[Path, list[str], dict[str, str]], tmp_path: Path
) -> None:
    folder, classes, truth = flat
    (tmp_path / "names.txt").write_text("".join(f"{n} {w}\n" for n, w in truth.items()))
    assert _as_labels(list_flat_split(folder, tmp_path / "names.txt", classes), classes) == truth
    (tmp_path / "val.txt").write_text("".join(f"{n} {classes.index(w)}\n" for n, w in truth.items()))
    with pytest.raises(ValueError, match="data.val_label_map=sorted"):
        list_flat_split(folder, tmp_path / "val.txt", classes)
    assert _as_labels(list_flat_split(folder, tmp_path / "val.txt", classes, "sorted"), classes) == truth


def test_devkit_ground_truth_with_its_synset_map(flat: tuple[Path, list[str], dict[str, str]], tmp_path: Path) -> None:
    folder, classes, truth = flat
    devkit_order = list(reversed(classes))  # the devkit numbers synsets in its own order, from 1
    (tmp_path / "map_clsloc.txt").write_text("".join(f"{w} {i} name_{i}\n" for i, w in enumerate(devkit_order, 1)))
    ground_truth = [devkit_order.index(truth[n]) + 1 for n in sorted(truth)]
    (tmp_path / "gt.txt").write_text("".join(f"{i}\n" for i in ground_truth))
    labels = list_flat_split(folder, tmp_path / "gt.txt", classes, str(tmp_path / "map_clsloc.txt"))
    assert _as_labels(labels, classes) == truth


def test_missing_labels_and_classes_are_named(flat: tuple[Path, list[str], dict[str, str]], tmp_path: Path) -> None:
    folder, classes, truth = flat
    partial = list(truth.items())[:-1]
    (tmp_path / "partial.txt").write_text("".join(f"{n} {w}\n" for n, w in partial))
    with pytest.raises(ValueError, match="1 images .* have no label"):
        list_flat_split(folder, tmp_path / "partial.txt", classes)
    wrong = {n: ("n99999999" if w == classes[0] else w) for n, w in truth.items()}
    (tmp_path / "wrong.txt").write_text("".join(f"{n} {w}\n" for n, w in wrong.items()))
    with pytest.raises(ValueError, match=f"in the training classes but not in .*{classes[0]}.*n99999999"):
        list_flat_split(folder, tmp_path / "wrong.txt", classes)


class NoScanList(list):
    """A list of names that refuses membership tests: each one is a scan of the whole list, and one per
    image makes labelling quadratic in the number of images."""

    def __contains__(self, item: object) -> bool:
        raise AssertionError(f"membership test against the list of {len(self)} image names")

    def index(self, *args: object) -> int:
        raise AssertionError("index() scans the list of image names")


@pytest.mark.parametrize("form", ["csv", "pairs", "one_per_line"])
def test_labelling_never_scans_the_name_list(
    flat: tuple[Path, list[str], dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    folder, classes, truth = flat
    ordered = sorted(truth)
    path = tmp_path / "labels"
    if form == "csv":
        path.write_text("ImageId,PredictionString\n" + "".join(f"{Path(n).stem},{truth[n]} 1 2 3 4\n" for n in ordered))
    elif form == "pairs":
        path.write_text("".join(f"{n} {truth[n]}\n" for n in ordered))
    else:
        path.write_text("".join(f"{classes.index(truth[n])}\n" for n in ordered))
    assert read_val_labels(path, NoScanList(ordered), classes, "sorted") == truth
    monkeypatch.setattr(val_labels, "list_flat_names", lambda *args: NoScanList(ordered))
    assert _as_labels(list_flat_split(folder, path, classes, "sorted"), classes) == truth
