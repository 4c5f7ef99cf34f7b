"""Writing tables: CSV and Parquet, atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lungtrial.wfutil import atomic_path


def write_table(table: pd.DataFrame, *paths: str | Path) -> None:
    """Write a table to each path, as CSV (``.csv``) or Parquet (``.parquet``, pyarrow), atomically.

    In a CSV, date columns are written ``YYYY-MM-DD`` (``YYYY-MM-DD HH:MM`` when any value has a time of day)
    and missing values as empty cells; Parquet keeps the column types.
    """
    text = table.copy()
    for col in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[col]):
            times = text[col].dropna()
            fmt = "%Y-%m-%d" if (times == times.dt.normalize()).all() else "%Y-%m-%d %H:%M"
            text[col] = text[col].dt.strftime(fmt)
    for path in map(Path, paths):
        if path.suffix not in (".csv", ".parquet"):
            raise ValueError(f"{path}: expected a .csv or .parquet file name")
        with atomic_path(path) as tmp:
            if path.suffix == ".csv":
                text.to_csv(tmp, index=False)
            else:
                table.to_parquet(tmp, index=False, engine="pyarrow")
