"""Tables of evaluation results gathered from run directories."""

from spp_cls.reporting.table import collect_results, format_columns, format_table

__all__ = ["collect_results", "format_columns", "format_table"]
