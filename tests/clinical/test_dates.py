"""Tests for lungtrial.clinical._dates: ISO dates as the sheets write them."""

from __future__ import annotations

import pandas as pd
import pytest

from lungtrial.clinical._dates import _is_iso_date, _iso_dates


def test_iso_dates_read_dates_and_local_times():
    got = _iso_dates(pd.Series(["2020-02-17", " 2020-02-17 06:30 ", "2020-02-17T06:30:15", "2020-02-17 06:30:15.5"]))
    expected = ["2020-02-17", "2020-02-17 06:30", "2020-02-17 06:30:15", "2020-02-17 06:30:15.5"]
    assert got.tolist() == [pd.Timestamp(t) for t in expected]


def test_anything_else_is_missing():
    texts = ["", None, "2020-02-30", "2020/02/17", "2020-02", "17.02.2020", "2020-02-17T06:30+01:00", "20200217"]
    got = _iso_dates(pd.Series(texts, dtype=object))
    assert got.isna().all() and len(got) == len(texts)


@pytest.mark.parametrize(
    "text, ok",
    [
        ("2020-02-17", True),
        ("2020-02-17 06:30", True),
        (" 2020-02-29 ", True),  # a leap day, spaces around
        ("2021-02-29", False),  # not a calendar date
        ("2020-13-01", False),
        ("2020/02/17", False),
        ("2020-02-17Z", False),
        ("", False),
        (None, True),  # not text: left to other checks
        (3.5, True),
    ],
)
def test_is_iso_date(text, ok):
    assert _is_iso_date(text) is ok
