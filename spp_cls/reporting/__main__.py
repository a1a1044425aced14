"""``python -m spp_cls.reporting DIR``: print the evaluation results found below DIR as a table."""

from __future__ import annotations

import argparse
import sys

from spp_cls.reporting.table import collect_results, format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", help="a run or sweep directory holding evaluate.py results")
    args = parser.parse_args(argv)
    rows = collect_results(args.root)
    if not rows:
        print(f"no evaluation results (metrics.json from evaluate.py) below {args.root}", file=sys.stderr)
        return 1
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
