"""``python -m spp_cls.reporting DIR [--columns]``: the evaluation results below DIR as a table (a row per
model and protocol, or with --columns a row per model and a column per protocol)."""

from __future__ import annotations

import argparse
import sys

from spp_cls.reporting.table import collect_results, format_columns, format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", help="a run or sweep directory holding evaluate.py results")
    parser.add_argument("--columns", action="store_true", help="one line per model, the protocols as columns")
    args = parser.parse_args(argv)
    rows = collect_results(args.root)
    if not rows:
        print(f"no evaluation results (metrics.json from evaluate.py) below {args.root}", file=sys.stderr)
        return 1
    print(format_columns(rows) if args.columns else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
