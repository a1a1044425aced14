"""``python -m spp_cls.reporting DIR [DIR ...] [--out OUTDIR] [--protocol P]``: the experiments report of every
training run below the DIRs (status, seed groups with mean ± std, paired SPP gains, the paper's Tables 2-4
beside ours, figures) into OUTDIR (default DIR/report/: report.md, report.csv, PNGs), its tables also printed.

``--plain`` / ``--columns``: only the evaluate.py results below the DIRs as a plain table (a row per model and
protocol, or a row per model and a column per protocol). Without training runs below the DIRs the plain table
is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spp_cls.reporting.report import REPORT_MD, build_report
from spp_cls.reporting.runs import SOURCES
from spp_cls.reporting.table import collect_results, format_columns, format_table


def _plain(dirs: list[str], columns: bool) -> int:
    rows = [row for root in dirs for row in collect_results(root)]
    if not rows:
        print(f"no evaluation results (metrics.json from evaluate.py) below {', '.join(dirs)}", file=sys.stderr)
        return 1
    print(format_columns(rows) if columns else format_table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spp_cls.reporting", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run or sweep directories (searched at any depth)")
    parser.add_argument("--out", help="where the report goes (default: the first DIR/report)")
    parser.add_argument(
        "--protocol",
        choices=SOURCES,
        help="metric source of the tables: an evaluate.py protocol, or val (the training run's final "
        "validation); default per table: ten_view if every run has it, else center, else val",
    )
    style = parser.add_mutually_exclusive_group()
    style.add_argument("--plain", action="store_true", help="only the table of evaluate.py results, a row per protocol")
    style.add_argument(
        "--columns", action="store_true", help="only the table of evaluate.py results, protocols as columns"
    )
    args = parser.parse_args(argv)
    if args.plain or args.columns:
        return _plain(args.dirs, args.columns)
    report = build_report(args.dirs, args.protocol)
    if report.runs == 0:
        print(
            f"no training runs (.hydra/config.yaml) below {', '.join(args.dirs)}; the evaluation results:",
            file=sys.stderr,
        )
        return _plain(args.dirs, columns=False)
    out = Path(args.out) if args.out else Path(args.dirs[0]) / "report"
    paths = report.write(out)
    print(report.text())
    print(f"wrote {out / REPORT_MD} and {len(paths) - 1} more file(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
