"""Dates as the sheets write them: ISO ``YYYY-MM-DD`` with an optional local time, anything else missing."""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd

_ISO_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"


def _iso_dates(series: pd.Series) -> pd.Series:
    """Text -> Timestamp, NaT where empty, not a calendar date (``2020-02-30``) or not written ``YYYY-MM-DD`` with
    an optional local time ``HH:MM[:SS]`` (``2020/02/17``, ``2020-02``, ``17.02.2020`` and time zones are NaT)."""
    text = series.astype("string").str.strip()
    return pd.to_datetime(text.where(text.str.fullmatch(_ISO_DATE_RE).fillna(False)), errors="coerce", format="ISO8601")


def _is_iso_date(text: object) -> bool:
    """Whether one text is a date :func:`_iso_dates` reads (a real calendar date, ``YYYY-MM-DD`` with an optional
    local time); non-text values are left to other checks (True)."""
    if not isinstance(text, str):
        return True
    text = text.strip()
    if not re.fullmatch(_ISO_DATE_RE, text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
