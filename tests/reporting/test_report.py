"""The experiments report on hand-made run directories (tests/reporting/factory.py): no training."""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path

import pytest
import yaml

from spp_cls.reporting import build_report, discover
from spp_cls.reporting.__main__ import main
from spp_cls.reporting.curves import val_curve
from spp_cls.reporting.groups import choose_source, group_runs, paired_gains, result_sets
from spp_cls.reporting.paper import TABLE2, paper_error
from spp_cls.reporting.runs import PROTOCOLS
from tests.reporting.factory import make_run, write_evaluation

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table(markdown: str, title: str) -> list[list[str]]:
    """The cells of the markdown table that follows the line starting with ``title`` (header first)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
        elif rows:
            break
    return [rows[0]] + rows[2:]


def row(rows: list[list[str]], first: str) -> list[str]:
    return next(r for r in rows if r[0] == first)


def three_arm_sweep(root: Path, **extra) -> None:
    """ZF-5: no SPP seeds 0-3 and SPP single-size seeds 0-2 (seed 3 of the SPP arm is missing)."""
    for seed, (t1, t5) in enumerate([(0.36, 0.14), (0.35, 0.13), (0.37, 0.15), (0.40, 0.16)]):
        make_run(root / f"base{seed}", spp=False, seed=seed, top1=t1, top5=t5, **extra)
    for seed, (t1, t5) in enumerate([(0.30, 0.10), (0.32, 0.11), (0.34, 0.12)]):
        make_run(root / f"spp{seed}", seed=seed, top1=t1, top5=t5, **extra)


def test_seed_groups_mean_and_sample_std(tmp_path: Path) -> None:
    for seed, (t1, t5) in enumerate([(0.30, 0.10), (0.32, 0.11), (0.34, 0.15)]):
        make_run(tmp_path / "sweep" / str(seed), seed=seed, top1=t1, top5=t5, task=f"task{seed}")
    make_run(tmp_path / "other", seed=0, lr=0.02, top1=0.5)  # another learning rate: another experiment
    groups = group_runs(discover([tmp_path]).runs)
    assert sorted(len(g.runs) for g in groups) == [1, 3]
    group = next(g for g in groups if len(g.runs) == 3)
    top1, top5 = group.stats("val")
    assert (top1.mean, top1.std, top1.n) == (pytest.approx(32.0), pytest.approx(2.0), 3)
    assert (top5.mean, top5.std, top5.n) == (pytest.approx(12.0), pytest.approx(math.sqrt(7.0)), 3)
    sets = result_sets(groups)
    assert [dict(key)["optim.lr"] for key, _ in sets] == ["0.01", "0.02"]
    report = build_report([tmp_path])
    assert "32.00 ± 2.00 (3)" in report.markdown and "12.00 ± 2.65 (3)" in report.markdown
    assert "50.00 (1)" in report.markdown and "`optim.lr=0.02`" in report.markdown


def test_paired_differences_per_seed(tmp_path: Path) -> None:
    three_arm_sweep(tmp_path)
    groups = group_runs(discover([tmp_path]).runs)
    base, spp = (next(g for g in groups if g.arm == arm) for arm in ("no_spp", "single"))
    gains = paired_gains(base, spp, "val")
    assert [g.seed for g in gains] == [0, 1, 2]  # seed 3 has no SPP run: not paired
    assert [round(g.top1, 6) for g in gains] == [6.0, 3.0, 3.0]
    assert [round(g.top5, 6) for g in gains] == [4.0, 2.0, 3.0]
    gains_table = table(build_report([tmp_path]).markdown, "**SPP vs no SPP")
    assert row(gains_table, "ZF-5") == [
        "ZF-5",
        "SPP single-size",
        "0: +6.00, 1: +3.00, 2: +3.00",
        "+4.00 ± 1.73 (3)",
        "+1.01",
        "0: +4.00, 1: +2.00, 2: +3.00",
        "+3.00 ± 1.00 (3)",
        "+0.62",
    ]


def test_partial_sweep_lists_running_and_failed_runs_and_leaves_them_out(tmp_path: Path) -> None:
    make_run(tmp_path / "0", seed=0, top1=0.30)
    make_run(tmp_path / "1", seed=1, top1=0.34)
    make_run(tmp_path / "2", seed=2, status="failed")
    make_run(tmp_path / "3", seed=3, status="running", curve=[0.9, 0.8])
    restarted = make_run(tmp_path / "4", seed=4, status="failed")
    with (restarted / "train.log").open("a") as log:  # resumed after the error (ckpt_path=auto)
        log.write("[2026-11-21 11:00:00,000][spp_cls.cli.train][INFO] - run directory: x\n")
    bad_config = make_run(tmp_path / "5", seed=5, status="running")
    with (bad_config / "train.log").open("a") as log:  # a user-fixable error: one ERROR line, no traceback
        log.write(
            "[2026-11-21 10:00:01,000][spp_cls.cli.errors][ERROR] - invalid config:\n  - data.train_sizes: "
            "a no-SPP model takes one size\n"
        )
    runs = discover([tmp_path]).runs
    assert [(r.path.name, r.status) for r in runs] == [
        ("0", "done"),
        ("1", "done"),
        ("2", "failed"),
        ("3", "running"),
        ("4", "running"),
        ("5", "failed"),
    ]
    assert runs[2].detail == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert runs[5].detail == "invalid config: - data.train_sizes: a no-SPP model takes one size"
    markdown = build_report([tmp_path]).markdown
    assert row(table(markdown, "**Table 2, top-1"), "(b) SPP single-size")[1] == "32.00 ± 2.83 (2)†"
    runs_table = table(markdown, "| run |")
    assert row(runs_table, "2")[5:7] == ["failed", "0/3"] and "CUDA out of memory" in row(runs_table, "2")[-1]
    assert row(runs_table, "3")[5:8] == ["running", "2/3", "–"]
    assert "Not done: `2` failed" in markdown


def test_several_dirs_make_one_report(tmp_path: Path, capsys) -> None:
    for seed, t1 in enumerate([0.30, 0.32]):
        make_run(tmp_path / "sweep_a" / "multiruns" / "t" / str(seed), seed=seed, top1=t1)
    make_run(tmp_path / "sweep_b" / "runs" / "t", seed=2, top1=0.34)
    assert main([str(tmp_path / "sweep_a"), str(tmp_path / "sweep_b")]) == 0
    out = capsys.readouterr().out
    assert "32.00 ± 2.00 (3)" in out and "sweep_b/runs/t" in out
    written = tmp_path / "sweep_a" / "report"
    assert (written / "report.md").read_text().count("sweep_a/multiruns/t/") == 2
    rows = list(csv.DictReader(io.StringIO((written / "report.csv").read_text())))
    assert [(r["arm"], r["n"], r["seeds"]) for r in rows] == [("single", "3", "0 1 2")]


def test_paper_numbers_in_the_table2_cells(tmp_path: Path) -> None:
    for i, (arch, spp, sizes, schedule, pyramid) in enumerate(
        [
            ("zf5", False, None, "alternate", (6, 3, 2, 1)),
            ("zf5", True, None, "alternate", (6, 3, 2, 1)),
            ("zf5", True, [224, 180], "alternate", (6, 3, 2, 1)),
            ("overfeat7", False, None, "alternate", (6, 3, 2, 1)),
            ("overfeat7", True, None, "alternate", (6, 3, 2, 1)),
            ("overfeat7", True, [224, 180], "alternate", (6, 3, 2, 1)),
            ("zf5", True, None, "alternate", (4, 3, 2, 1)),
            ("overfeat7", True, [224, 180], "random", (6, 3, 2, 1)),
        ]
    ):
        make_run(
            tmp_path / str(i),
            arch=arch,
            spp=spp,
            train_sizes=sizes,
            schedule=schedule,
            pyramid=pyramid,
            top1=0.30,
            top5=0.10,
        )
    markdown = build_report([tmp_path]).markdown
    top1, top5 = table(markdown, "**Table 2, top-1"), table(markdown, "**Table 2, top-5")
    assert top1[0] == ["top-1 error %", "ZF-5 ours", "paper", "Δ", "Overfeat-7 ours", "paper", "Δ"]
    assert row(top1, "(a) no SPP") == ["(a) no SPP", "30.00 (1)", "35.99", "-5.99", "30.00 (1)", "32.01", "-2.01"]
    assert row(top1, "(b) SPP single-size")[2::3] == ["34.98", "30.36"]
    assert row(top1, "(c) SPP multi-size")[2::3] == ["34.60", "29.68"]
    assert row(top5, "(b) SPP single-size")[2::3] == ["14.14", "11.12"]
    assert row(top5, "(c) SPP multi-size") == [
        "(c) SPP multi-size",
        "10.00 (1)",
        "13.64",
        "-3.64",
        "10.00 (1)",
        "10.95",
        "-0.95",
    ]
    extras = table(markdown, "**Pyramid and random-size")
    assert extras[1][:6] == ["ZF-5", "SPP single-size", "{4,3,2,1}", "30.00 (1)", "35.06", "-5.06"]
    assert extras[2][1:5] + extras[2][7:8] == ["SPP random-size", "{6,3,2,1}", "30.00 (1)", "30.06", "10.96"]
    assert len(TABLE2) == 12 and paper_error("convnet5", "multi", (6, 3, 2, 1)).top5 == 13.33
    assert paper_error("zf5", "single", (2, 1)) is None


def test_csv_has_one_row_per_group(tmp_path: Path) -> None:
    three_arm_sweep(tmp_path)
    build_report([tmp_path]).write(tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "report.csv").read_text())))
    assert [(r["arch"], r["arm"], r["pyramid"], r["n"], r["runs"]) for r in rows] == [
        ("zf5", "no_spp", "-", "4", "4"),
        ("zf5", "single", "{6,3,2,1}", "3", "3"),
    ]
    spp = rows[1]
    keys = (
        "source",
        "top1_mean",
        "top1_std",
        "top5_mean",
        "top5_std",
        "paper_top1",
        "paper_top5",
        "diff_top1",
        "diff_top5",
        "gain_top1_mean",
        "gain_top1_std",
        "gain_n",
        "paper_gain_top1",
    )
    assert {k: spp[k] for k in keys} == {
        "source": "val",
        "top1_mean": "32.0000",
        "top1_std": "2.0000",
        "top5_mean": "11.0000",
        "top5_std": "1.0000",
        "paper_top1": "34.9800",
        "paper_top5": "14.1400",
        "diff_top1": "-2.9800",
        "diff_top5": "-3.1400",
        "gain_top1_mean": "4.0000",
        "gain_top1_std": "1.7321",
        "gain_n": "3",
        "paper_gain_top1": "1.0100",
    }
    assert rows[0]["gain_top1_mean"] == "" and rows[0]["paper_top1"] == "35.9900"


def test_figures_are_written_and_embedded(tmp_path: Path) -> None:
    for seed in range(2):
        make_run(tmp_path / f"base{seed}", spp=False, seed=seed, curve=[0.9, 0.6 + seed / 10, 0.5])
        make_run(tmp_path / f"spp{seed}", seed=seed, curve=[0.9, 0.5, 0.4 + seed / 10])
        make_run(tmp_path / f"multi{seed}", seed=seed, train_sizes=[224, 180], curve=[0.9, 0.5, 0.3])
    run = discover([tmp_path]).runs[0]
    curve = val_curve(run)  # the validation of best.ckpt after training (epoch 3 in the CSV) is left out
    assert [e for e, _ in curve] == [1, 2, 3] and curve[1][1] == pytest.approx(60.0)
    report = build_report([tmp_path])
    paths = report.write(tmp_path / "out")
    png = tmp_path / "out" / "val_top1_zf5.png"
    assert png in paths and png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5000
    assert "![ZF-5: validation top-1 error per epoch](val_top1_zf5.png)" in report.markdown
    assert "![" not in report.text()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_tensorboard_curve(tmp_path: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    run_dir = make_run(tmp_path / "run", epochs=2)
    epochs = [(9, "epoch", 0), (9, "val/top1_err", 0.5), (19, "epoch", 1), (19, "val/top1_err", 0.4)]
    revalidation = [(20, "epoch", 2), (20, "val/top1_err", 0.3)]  # of best.ckpt, after training: left out
    for folder, points in (("a", epochs), ("b", revalidation)):
        writer = EventFileWriter(str(run_dir / "tensorboard" / folder))
        for step, tag, value in points:
            writer.add_event(
                Event(
                    wall_time=time.time(),
                    step=step,
                    summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]),
                )
            )
        writer.close()
    curve = val_curve(discover([tmp_path]).runs[0])
    assert [(e, round(v, 3)) for e, v in curve] == [(1, 50.0), (2, 40.0)]


def test_metric_source_choice_and_fallback(tmp_path: Path) -> None:
    both = {"ten_view": (0.20, 0.05), "center": (0.25, 0.07), "full": (0.24, 0.06)}
    for seed in range(3):
        make_run(tmp_path / str(seed), seed=seed, top1=0.3, evals=both if seed < 2 else {"center": (0.27, 0.08)})
    make_run(tmp_path / "noeval", seed=3, top1=0.3)  # no evaluation at all
    runs = discover([tmp_path]).runs
    assert choose_source(group_runs(runs[:2])) == "ten_view"
    assert choose_source(group_runs(runs[:3])) == "center"  # seed 2 has no ten_view evaluation
    assert choose_source(group_runs(runs)) == "val"  # seed 3 has no evaluation
    assert choose_source(group_runs(runs), "full") == "full"
    markdown = build_report([tmp_path]).markdown
    assert (
        "**Metric: `val`**" in markdown
        and row(table(markdown, "**Table 2, top-1"), "(b) SPP single-size")[1] == "30.00 ± 0.00 (4)"
    )
    (tmp_path / "noeval" / "metrics.json").unlink()
    (tmp_path / "noeval" / "train.log").write_text("Traceback (most recent call last):\nValueError: x\n")
    markdown = build_report([tmp_path]).markdown
    assert "**Metric: `center`**" in markdown and "`ten_view` is missing for 1" in markdown
    assert row(table(markdown, "**Table 2, top-1"), "(b) SPP single-size")[1] == "25.67 ± 1.15 (3)†"
    forced = build_report([tmp_path], protocol="full").markdown
    assert "**Metric: `full`** (--protocol)" in forced and "2 of 3 (group, seed) samples have it" in forced
    assert row(table(forced, "**Table 2, top-1"), "(b) SPP single-size")[1] == "24.00 ± 0.00 (2)†"


def test_not_imagenet_is_said_and_the_paper_still_shown(tmp_path: Path) -> None:
    make_run(tmp_path / "0", data="synthetic", crop=128, top1=0.05)
    markdown = build_report([tmp_path]).markdown
    assert "**Not ImageNet.**" in markdown and "not a reproduction check" in markdown
    assert row(table(markdown, "**Table 2, top-1"), "(b) SPP single-size")[1:] == ["5.00 (1)", "34.98", "-29.98"]
    assert row(table(markdown, "**Setting vs the paper's"), "crop") == ["crop", "128", "224"]
    imagenet = tmp_path / "imagenet"
    make_run(imagenet / "0")
    assert "Not ImageNet" not in build_report([imagenet]).markdown


def test_tables_3_and_4_from_evaluations(tmp_path: Path) -> None:
    for seed in range(2):
        evals = {
            "ten_view": (0.30 + seed / 100, 0.11),
            "center": (0.33 + seed / 100, 0.13),
            "full": (0.32 + seed / 100, 0.12),
            "multiview_96": (0.285 + seed / 100, 0.095),
            "multiview": (0.28 + seed / 100, 0.09),
        }
        make_run(
            tmp_path / f"o7_{seed}",
            arch="overfeat7",
            train_sizes=[224, 180],
            seed=seed,
            evals=evals,
            eval_views={"multiview_96": 96.0},
        )
    markdown = build_report([tmp_path]).markdown
    t3 = row(table(markdown, "**Table 3"), "Overfeat-7, SPP multi-size")
    assert t3 == [
        "Overfeat-7, SPP multi-size",
        "33.50 ± 0.71 (2)",
        "32.57",
        "+0.93",
        "32.50 ± 0.71 (2)",
        "31.25",
        "+1.25",
        "-1.00 ± 0.00 (2)",
        "-1.32",
    ]
    t4 = table(markdown, "**Table 4")
    assert [r[0] for r in t4[1:]] == [
        "10 views (`ten_view`)",
        "6 scales (`multiview_96`)",
        "6 scales + 2 full (`multiview`)",
    ]
    ten = row(t4, "10 views (`ten_view`)")
    assert ten[1:5] + ten[9:] == ["10.0", "10", "30.50 ± 0.71 (2)", "29.68", "–", "–", "–", "–"]
    views96 = row(t4, "6 scales (`multiview_96`)")
    assert views96[1:3] + views96[6:8] + views96[11:] == [
        "96.0",
        "96",
        "9.50 ± 0.00 (2)",
        "9.36",
        "+1.50 ± 0.00 (2)",
        "+1.59",
    ]
    assert row(t4, "6 scales + 2 full (`multiview`)") == [
        "6 scales + 2 full (`multiview`)",
        "98.0",
        "98",
        "28.50 ± 0.71 (2)",
        "27.86",
        "+0.64",
        "9.00 ± 0.00 (2)",
        "9.14",
        "-0.14",
        "+2.00 ± 0.00 (2)",
        "+1.82",
        "+2.00 ± 0.00 (2)",
        "+1.81",
    ]


def test_table4_finds_the_paper_by_the_test_setting_not_the_view_count(tmp_path: Path) -> None:
    """Square images get 6 fewer views at the smallest scale (93.6 views on a set with a fifth square): the paper's
    98-view number still applies; a one-scale test and a setting that is not the paper's get none."""
    evals = {"ten_view": (0.30, 0.11), "multiview_18": (0.29, 0.10), "multiview": (0.28, 0.09)}
    run = make_run(
        tmp_path / "o7",
        arch="overfeat7",
        train_sizes=[224, 180],
        evals=evals,
        eval_views={"multiview": 93.6},
        eval_checkpoint="last",
    )
    t4 = table(build_report([tmp_path]).markdown, "**Table 4")
    assert row(t4, "6 scales + 2 full (`multiview`)")[1:5] == ["93.6", "98", "28.00 (1)", "27.86"]
    assert row(t4, "1 scale (`multiview_18`)")[1:5] == ["18.0", "–", "29.00 (1)", "–"]

    # evaluate.py runs with their own protocol.multiview (in their .hydra/config.yaml): newer, so they count
    cases = (("no_full", {"full_views": False}, 94.0), ("three", {"scales": [256, 300, 360]}, 56.0))
    for name, settings, views in cases:
        folder = tmp_path / "evaluate" / name
        write_evaluation(folder, run / "checkpoints" / "last.ckpt", {"multiview": (0.27, 0.08)}, {"multiview": views})
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"protocols": ["multiview"], "protocol": {"multiview": settings}})
        )
        stamp = time.time() + 10
        os.utime(folder / "metrics.json", (stamp, stamp))
        t4 = table(build_report([tmp_path / "o7", folder]).markdown, "**Table 4")
        found = [r for r in t4[1:] if "`multiview`" in r[0]][0]
        if name == "no_full":  # the 96-view setting: the paper gives top-5 only
            assert found[:5] + found[6:8] == [
                "6 scales (`multiview`)",
                "94.0",
                "96",
                "27.00 (1)",
                "–",
                "8.00 (1)",
                "9.36",
            ]
        else:
            assert found[:5] == ["3 scales + 2 full (`multiview`)", "56.0", "–", "27.00 (1)", "–"]
        (folder / "metrics.json").unlink()


def test_the_report_says_which_checkpoint_each_number_comes_from(tmp_path: Path) -> None:
    final = tmp_path / "final"
    for seed in range(2):
        make_run(final / f"base{seed}", spp=False, seed=seed, eval_checkpoint="last", evals={"center": (0.4, 0.1)})
        make_run(final / f"spp{seed}", seed=seed, eval_checkpoint="last", evals={"center": (0.3, 0.1)})
    markdown = build_report([final]).markdown
    assert "**Checkpoint: numbers from the final model of each run**" in markdown and "Warning" not in markdown
    runs = table(markdown, "## Runs")
    assert runs[0][8:10] == ["tested", "evaluations (checkpoint)"]
    assert row(runs, "spp0")[8:10] == ["last", "center (last)"]

    mixed = tmp_path / "mixed"
    make_run(mixed / "new", seed=0, eval_checkpoint="last")
    make_run(mixed / "chosen", seed=1, eval_checkpoint="best")
    make_run(mixed / "old", seed=2)  # metrics.json from before eval_checkpoint: it tested best.ckpt
    markdown = build_report([mixed]).markdown
    assert (
        "> **Warning: selected on the split they report.** 2 of 3 (group, seed) samples come from the best checkpoint"
    ) in markdown
    assert "1 of them from runs older than `eval_checkpoint`" in markdown and "1 from the final model" in markdown
    runs = table(markdown, "## Runs")
    assert [row(runs, name)[8] for name in ("new", "chosen", "old")] == [
        "last",
        "best",
        "best (run before `eval_checkpoint`)",
    ]

    # an evaluate.py run of best.ckpt is a best-checkpoint number whatever the training run tested
    write_evaluation(mixed / "evaluate" / "t", mixed / "new" / "checkpoints" / "best.ckpt", {"center": (0.2, 0.1)})
    assert row(table(build_report([mixed]).markdown, "## Runs"), "new")[8:10] == ["last", "center (best)"]


def test_the_settings_table_lists_every_departure_from_the_paper(tmp_path: Path) -> None:
    small = {
        "model": {"width": 0.5, "fc_dim": 1024, "dropout": 0.3, "lrn": "within_channel", "lrn_input_scale": 1.0},
        "data": {"batch_size": 64, "train_crop": "random", "normalization": "channel", "std": [0.229, 0.224, 0.225]},
        "optim": {
            "scheduler": "step",
            "lr_factor": 0.1,
            "step_milestones": [30, 60],
            "base_batch_size": 128,
            "lr_scaling": "linear",
            "weight_decay": 5e-4,
        },
        "trainer": {"accumulate_grad_batches": 1},
    }
    make_run(tmp_path / "small" / "base", spp=False, crop=112, config=small, metrics={"bins": 4, "fc6_inputs": 512})
    make_run(
        tmp_path / "small" / "spp",
        crop=112,
        config=small,
        train_sizes=[112, 95],
        metrics={"bins": 50, "fc6_inputs": 6400},
        eval_checkpoint="last",
    )
    markdown = build_report([tmp_path / "small"]).markdown
    rows = {r[0]: r[1:] for r in table(markdown, "**Setting vs the paper's")[1:]}
    assert rows["crop"] == ["112", "224"] and rows["width (× Table 1's channels)"] == ["0.5", "1.0"]
    assert rows["fc6/fc7"] == ["1024", "4096"] and rows["dropout"] == ["0.3", "0.5"]
    assert rows["training crop"] == ["random position (`random`)", "center or 4 corners (`five`)"]
    assert rows["schedule"] == ["÷10 at epochs [30, 60] (step)", "÷10 on plateau, 2 times"]
    assert rows["batch at learning rate"] == ["64 at 0.005", "128 at 0.01"]
    assert rows["normalisation"] == ["per-channel mean/std (`channel`)", "per-pixel mean image (`mean_image`)"]
    assert rows["LRN"] == [
        "within_channel, input scale 1 (inert: Caffe's α on normalised input)",
        "within_channel on 0–255 input (input scale 57.6 here: 255 × data.std)",
    ]
    assert rows["SPP multi-size sizes"] == ["[112, 95]", "[224, 180]"] and rows["epochs"] == ["ZF-5 3", "ZF-5 70"]
    assert rows["ZF-5 no SPP: bins / fc6 input"] == ["4 / 512", "36 / 9,216"]
    assert rows["ZF-5 SPP multi-size: bins / fc6 input"] == ["50 / 6,400", "50 / 12,800"]
    assert "As in the paper: resize (short side), momentum, weight decay, recipe." in markdown

    paper_like = {
        "model": {"lrn": "within_channel", "lrn_input_scale": 57.63},
        "data": {"batch_size": 128, "train_crop": "five", "normalization": "mean_image", "std": [0.229, 0.224, 0.225]},
        "optim": {
            "scheduler": "plateau",
            "lr_factor": 0.1,
            "lr_drops": 2,
            "base_batch_size": 128,
            "lr_scaling": "linear",
            "weight_decay": 5e-4,
        },
    }
    make_run(
        tmp_path / "paper" / "base", spp=False, epochs=70, config=paper_like, metrics={"bins": 36, "fc6_inputs": 9216}
    )
    make_run(
        tmp_path / "paper" / "spp",
        epochs=70,
        config=paper_like,
        pyramid=(4, 3, 2, 1),
        metrics={"bins": 30, "fc6_inputs": 7680, "lrn_input_scale": 57.63},
    )
    markdown = build_report([tmp_path / "paper"]).markdown
    assert "**Setting vs the paper's**" not in markdown
    assert (
        "**Setting: as the paper's** in crop, resize (short side), training crop, width (× Table 1's channels), "
        "fc6/fc7, dropout, momentum, weight decay, normalisation, recipe, schedule, batch at learning rate, epochs, "
        "LRN, ZF-5 no SPP: bins / fc6 input, ZF-5 SPP single-size {4,3,2,1}: bins / fc6 input."
    ) in markdown


def test_evaluations_are_matched_to_their_runs(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "train" / "0", evals={"center": (0.5, 0.2)})
    newer = write_evaluation(
        tmp_path / "evaluate" / "runs" / "t1", run_dir / "checkpoints" / "best.ckpt", {"center": (0.4, 0.1)}
    )
    os.utime(newer, (time.time() + 10, time.time() + 10))
    copied = "/elsewhere/outputs/train/0/checkpoints/best.ckpt"  # trained on another machine, copied here
    write_evaluation(tmp_path / "evaluate" / "runs" / "t2", copied, {"full": (0.3, 0.1)})
    write_evaluation(run_dir / "ensemble", [str(run_dir / "a.ckpt"), str(run_dir / "b.ckpt")], {"center": (0.1, 0.0)})
    found = discover([tmp_path])
    (run,) = found.runs
    assert len(run.evaluations) == 3 and run.protocols() == ["center", "full"]
    assert run.error("center").top1 == pytest.approx(40.0)  # the newer of two evaluations
    assert found.unmatched_evaluations == [run_dir / "ensemble" / "metrics.json"]


def test_runs_with_one_seed_are_one_sample_each_metric_from_the_newest(tmp_path: Path) -> None:
    table2 = make_run(tmp_path / "table2" / "0", top1=0.5, evals={"center": (0.40, 0.1), "ten_view": (0.35, 0.1)})
    make_run(tmp_path / "table3" / "0", top1=0.3, evals={"center": (0.41, 0.1), "full": (0.39, 0.1)}, task="table3")
    os.utime(table2 / "metrics.json", (1, 1))  # the table2 run finished first
    (group,) = group_runs(discover([tmp_path]).runs)
    assert [r.path.parent.name for r in group.counted] == ["table3"]
    assert [r.path.parent.name for r in group.repeated] == ["table2"]
    assert {p: round(group.errors(p)[0].top1, 6) for p in ("val", "center", "ten_view", "full")} == {
        "val": 30.0,
        "center": 41.0,
        "ten_view": 35.0,
        "full": 39.0,
    }
    markdown = build_report([tmp_path]).markdown
    assert "**Metric: `ten_view`**" in markdown and "1 of 1 (group, seed) samples" in markdown
    table3 = row(table(markdown, "**Table 3"), "ZF-5, SPP single-size")
    assert table3[1:5] == ["41.00 (1)", "38.01", "+2.99", "39.00 (1)"]
    assert "seed also in a newer run: each metric from the newest run that has it" in markdown


def test_cli_report_plain_and_nothing(tmp_path: Path, capsys) -> None:
    make_run(tmp_path / "0", evals={"center": (0.2, 0.05)})
    assert main([str(tmp_path), "--out", str(tmp_path / "rep"), "--protocol", "center"]) == 0
    out = capsys.readouterr().out
    assert "**Metric: `center`** (--protocol)" in out and "| (b) SPP single-size | 20.00 (1) |" in out
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["report.csv", "report.md"]
    assert main([str(tmp_path), "--plain"]) == 0 and "center" in capsys.readouterr().out
    assert main([str(tmp_path / "empty")]) == 1


def test_single_size_and_baseline_join_each_multi_size_variant(tmp_path: Path) -> None:
    make_run(tmp_path / "base", spp=False, top1=0.36)
    make_run(tmp_path / "single", top1=0.34)
    make_run(tmp_path / "multi180", train_sizes=[224, 180], top1=0.33)
    make_run(tmp_path / "multi160", train_sizes=[224, 160], top1=0.32)
    sets = result_sets(group_runs(discover([tmp_path]).runs))
    assert [dict(key).get("data.train_sizes") for key, _ in sets] == ["[224, 160]", "[224, 180]"]
    assert [[(g.arm, g.runs[0].path.name) for g in groups] for _, groups in sets] == [
        [("no_spp", "base"), ("single", "single"), ("multi", "multi160")],
        [("no_spp", "base"), ("single", "single"), ("multi", "multi180")],
    ]
    markdown = build_report([tmp_path]).markdown
    assert "## Results 1 of 2" in markdown and "`data.train_sizes=[224, 160]`" in markdown


def test_every_evaluate_protocol_is_known() -> None:
    from spp_cls.evaluation.protocols import PROTOCOLS as EVALUATE_PROTOCOLS

    assert set(PROTOCOLS) == set(EVALUATE_PROTOCOLS)


def test_configs_saved_by_hydra_are_resolved(tmp_path: Path) -> None:
    """A .hydra/config.yaml as Hydra saves it (interpolations and the project's resolvers unresolved): the report
    reads the values the run had, as OmegaConf resolves them (whatever ``spp_*`` resolvers the config uses)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from spp_cls.config import register_configs
    from tests.helpers import REPO

    register_configs()
    jobs = {
        "multi": ["arm=spp_multi"],
        "random": ["arm=spp_random", "model=overfeat7"],
        "embedded": ["arm=spp_multi", "scale=embedded"],
    }
    expected = {}
    with initialize_config_dir(config_dir=str(Path(REPO) / "conf"), version_base="1.3"):
        for name, overrides in jobs.items():
            cfg = compose("train", overrides=["experiment=table2", "data.root=/data/imagenet", *overrides])
            run_dir = make_run(tmp_path / name)
            (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
            expected[name] = (OmegaConf.to_container(cfg.data.train_sizes, resolve=True), cfg.model.lrn_input_scale)
    runs = {r.path.name: r for r in discover([tmp_path]).runs}
    assert "${" in (tmp_path / "multi" / ".hydra" / "config.yaml").read_text()
    assert (runs["multi"].arm, runs["multi"].train_sizes, runs["multi"].get("trainer.max_epochs")) == (
        "multi",
        [224, 180],
        70,
    )
    assert (runs["random"].arm, runs["random"].train_sizes, runs["random"].get("trainer.max_epochs")) == (
        "random",
        [180, 224],
        90,
    )
    small = expected["embedded"][0]
    assert (runs["embedded"].train_sizes, runs["embedded"].data_name) == (small, "synthetic") and small[0] == 112
    assert all(runs[n].get("model.lrn_input_scale") == pytest.approx(expected[n][1]) for n in jobs)
    assert runs["multi"].get("paths.output_dir").startswith("${")  # needs a running Hydra job: left as written
    markdown = build_report([tmp_path]).markdown
    assert "${" not in markdown.split("## Runs")[0]
    embedded = next(t for t in markdown.split("## Results")[1:] if "synthetic" in t.splitlines()[0])
    assert row(table(embedded, "**Setting vs the paper's"), "SPP multi-size sizes") == [
        "SPP multi-size sizes",
        str(small),
        "[224, 180]",
    ]


def test_the_settings_table_names_the_modern_recipes_switches(tmp_path: Path) -> None:
    modern = {
        "optim": {
            "name": "adamw",
            "scheduler": "cosine",
            "warmup_epochs": 5,
            "label_smoothing": 0.1,
            "mixup_alpha": 0.8,
            "cutmix_alpha": 1.0,
        },
        "data": {"auto_augment": "randaugment"},
        "callbacks": {"ema": {"decay": 0.9999}},
        "eval_weights": "ema",
    }
    make_run(tmp_path / "modern" / "spp", config=modern)
    rows = {r[0]: r[1:] for r in table(build_report([tmp_path / "modern"]).markdown, "**Setting vs the paper's")[1:]}
    assert rows["recipe"] == [
        "AdamW, label smoothing 0.1, MixUp 0.8, CutMix 1, RandAugment, EMA 0.9999 (tested: ema)",
        "SGD",
    ]
    assert rows["schedule"][0] == "5 warmup epochs, then cosine to 0 (per step)"
