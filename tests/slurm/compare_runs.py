"""Check that two runs of the workflow produced the same result tables.

    python tests/slurm/compare_runs.py RUN_A/results RUN_B/results

Every CSV and Parquet file under either results folder is compared: both runs must have the same set of tables,
and each pair must hold the same columns, the same rows in the same order and equal values (floats to a relative
tolerance of 1e-9, which only forgives the last bits of a different summation order). Pictures and NIfTI masks
are not compared: their bytes carry timestamps. Exits 1 and lists the differences when the runs disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet")


def result_tables(root: Path) -> set[Path]:
    """Paths (relative to ``root``) of every CSV and Parquet table under ``root``, hidden files excluded."""
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.suffix in TABLE_SUFFIXES and not any(part.startswith(".") for part in p.parts)
    }


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def table_difference(a: Path, b: Path, rtol: float = 1e-9) -> str | None:
    """None when the tables in files ``a`` and ``b`` are equal, else a one-paragraph description."""
    if a.read_bytes() == b.read_bytes():
        return None
    try:
        pd.testing.assert_frame_equal(_read(a), _read(b), check_exact=False, rtol=rtol, atol=0.0)
    except AssertionError as e:
        return str(e)
    return None


def compare_results(a: Path, b: Path) -> list[str]:
    """Differences between the tables of results folders ``a`` and ``b``; empty when they agree."""
    tables_a, tables_b = result_tables(a), result_tables(b)
    problems = [f"only in {a}: {p}" for p in sorted(tables_a - tables_b)]
    problems += [f"only in {b}: {p}" for p in sorted(tables_b - tables_a)]
    for rel in sorted(tables_a & tables_b):
        diff = table_difference(a / rel, b / rel)
        if diff is not None:
            problems.append(f"{rel} differs:\n{diff}")
    if not tables_a & tables_b:
        problems.append("no result tables to compare")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_a", type=Path)
    parser.add_argument("results_b", type=Path)
    args = parser.parse_args(argv)
    problems = compare_results(args.results_a, args.results_b)
    for problem in problems:
        print(problem, file=sys.stderr)
    n = len(result_tables(args.results_a) & result_tables(args.results_b))
    print(f"compared {n} tables: {'differences found' if problems else 'all equal'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
