"""Tests for lungtrial.stats._mixed_choices: the mixed models' choices and the table's leading columns."""

from __future__ import annotations

import subprocess
import sys

from lungtrial import stats
from lungtrial.stats import _mixed_choices as choices


def test_every_covariance_is_a_random_effect_or_a_residual_structure():
    assert set(choices.COVARIANCES) == set(choices.RANDOM_EFFECTS) | set(choices.RESIDUAL_COVARIANCES)
    assert not set(choices.RANDOM_EFFECTS) & set(choices.RESIDUAL_COVARIANCES)
    assert list(choices.COVARIANCES)[:2] == list(choices.RANDOM_EFFECTS)
    assert set(choices.DF_METHODS) == {"satterthwaite", "between-within", "residual"}
    assert choices.TIMES == ("visit", "continuous")


def test_table_columns():
    assert len(set(choices.COLUMNS)) == len(choices.COLUMNS)
    assert choices.COLUMNS[:3] == ["outcome", "transform", "time"]
    assert {"estimate", "se", "df", "ci_low", "ci_high", "p_value"} <= set(choices.COLUMNS)


def test_re_exported_by_stats():
    assert stats.COVARIANCES is choices.COVARIANCES and stats.RESIDUAL_COVARIANCES is choices.RESIDUAL_COVARIANCES


def test_importing_the_choices_costs_no_numpy():
    code = "import sys, lungtrial.stats._mixed_choices; print(sorted({'numpy', 'scipy', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
