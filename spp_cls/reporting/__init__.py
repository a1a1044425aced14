"""Reports of the experiments: the run folders below some directories, grouped over seeds and set beside the
paper's tables (``python -m spp_cls.reporting DIR ...``), and the plain table of evaluate.py results."""

from spp_cls.reporting.report import Report, build_report
from spp_cls.reporting.runs import Run, discover
from spp_cls.reporting.table import collect_results, format_columns, format_table

__all__ = ["Report", "Run", "build_report", "collect_results", "discover", "format_columns", "format_table"]
