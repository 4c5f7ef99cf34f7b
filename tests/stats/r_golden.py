"""Golden values from R for the lungtrial.stats tests (computed by tests/fixtures/r/make_golden.R; R is
not needed here): the fixture folder, its tables and the tolerances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


FIX = Path(__file__).resolve().parents[1] / "fixtures" / "r"
P_ABS = 5e-4  # p values to 3 decimals
REL = 1e-6  # estimates


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(FIX / name)


def _close(ours: float, theirs: float, rel: float) -> bool:
    if not np.isfinite(theirs) or not np.isfinite(ours):
        return (np.isnan(theirs) and np.isnan(ours)) or ours == theirs
    return ours == pytest.approx(theirs, rel=rel, abs=1e-12)


def _two_sample_sets():
    two = _read("two_sample.csv")
    return {
        s: (d.loc[d["group"] == "x", "value"].to_numpy(float), d.loc[d["group"] == "y", "value"].to_numpy(float))
        for s, d in two.groupby("set", sort=False)
    }
