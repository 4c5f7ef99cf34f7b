"""Writing tables: CSV and Parquet, atomically (:func:`lungtrial.io.write_table`, the clinical tables' writer)."""

from __future__ import annotations

from lungtrial.io import write_table

__all__ = ["write_table"]
