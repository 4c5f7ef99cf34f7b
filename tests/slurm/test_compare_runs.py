"""The result comparison used by run_demo_on_slurm.sh."""

from __future__ import annotations

import pandas as pd

from compare_runs import compare_results, main


def write_tables(root, value=1.0, extra=False):
    frame = pd.DataFrame({"scan_id": ["A", "B"], "pct_opacity": [value, 2.5], "reason": ["", "too thick"]})
    (root / "imaging").mkdir(parents=True)
    frame.to_csv(root / "imaging" / "metrics.csv", index=False)
    frame.to_parquet(root / "imaging" / "metrics.parquet")
    (root / "imaging" / "qc.png").write_bytes(value.hex().encode())  # pictures are not compared
    if extra:
        frame.to_csv(root / "imaging" / "extra.csv", index=False)


def test_equal_runs(tmp_path, capsys):
    write_tables(tmp_path / "a")
    write_tables(tmp_path / "b")
    assert compare_results(tmp_path / "a", tmp_path / "b") == []
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "compared 2 tables: all equal" in capsys.readouterr().out


def test_last_bit_float_noise_is_equal(tmp_path):
    write_tables(tmp_path / "a", value=0.1 + 0.2)
    write_tables(tmp_path / "b", value=0.3)
    assert compare_results(tmp_path / "a", tmp_path / "b") == []


def test_different_value_and_missing_table(tmp_path):
    write_tables(tmp_path / "a", value=1.0, extra=True)
    write_tables(tmp_path / "b", value=1.001)
    problems = compare_results(tmp_path / "a", tmp_path / "b")
    assert any("only in" in p and "extra.csv" in p for p in problems)
    assert any(p.startswith("imaging/metrics.csv differs") for p in problems)
    assert any(p.startswith("imaging/metrics.parquet differs") for p in problems)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1


def test_no_tables_is_a_failure(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert compare_results(tmp_path / "a", tmp_path / "b") == ["no result tables to compare"]
