"""Clinical tables written through lungtrial.io as CSV and Parquet (times of day, censored values, coverage)."""

from __future__ import annotations

import pandas as pd

from lungtrial import clinical, io

from clinical_sheets import read


def test_write_table_csv_and_parquet(tmp_path, subjects, catalog):
    # day 0 at 08:30, before a first dose at 09:00: the baseline value
    labs, _ = read(tmp_path, subjects, catalog, "S1,2020-02-03 08:30,CRP,<1,mg/L", first_dose_day=0.375)
    io.write_table(labs, tmp_path / "out" / "labs.csv", tmp_path / "out" / "labs.parquet")
    text = (tmp_path / "out" / "labs.csv").read_text()
    assert "2020-02-03 08:30" in text
    back = pd.read_parquet(tmp_path / "out" / "labs.parquet")
    pd.testing.assert_frame_equal(back, labs, check_dtype=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labs.csv", "labs.parquet"]
    coverage = clinical.lab_coverage(labs)
    assert coverage[["visit", "n_subjects", "n_censored"]].values.tolist() == [["any", 1, 1], ["baseline", 1, 1]]
