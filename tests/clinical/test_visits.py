"""Tests for lungtrial.clinical._visits: visit windows and one row per window."""

from __future__ import annotations

import pandas as pd
import pytest

from lungtrial import clinical

from clinical_sheets import VISITS


def test_visit_windows_validation():
    assert [w[0] for w in clinical.visit_windows(VISITS)] == ["baseline", "day7", "day14", "day28"]
    with pytest.raises(ValueError, match="overlap"):
        clinical.visit_windows({"a": [0, 5], "b": [5, 9]})
    with pytest.raises(ValueError, match="clinical.visits.a"):
        clinical.visit_windows({"a": [5, 0]})


def test_assign_visits_picks_one_row_per_window():
    windows = clinical.visit_windows(VISITS)
    frame = pd.DataFrame(
        {
            "subject_id": ["A"] * 8 + ["B"] * 2,
            "study_day": [-2.0, 0.3, 1.0, 6.0, 8.0, 19.0, 30.0, 40.0, 1.0, 9.0],
        }
    )
    visits = clinical.assign_visits(frame, windows, by=["subject_id"])
    # dated rows (no time of day): baseline = the last dated on or before day 0, never after the first dose; A's
    # 0.3 is on day 0, B's only row in the window is on day 1 (after the dose: no baseline); day7 = closest to 7,
    # tie 6 vs 8 -> earlier
    assert visits.tolist() == ["", "baseline", "", "day7", "", "", "day28", "", "", "day7"]
    # timed rows with the first dose at 06:00 (0.25): A's 07:12 sample (0.3) follows it, its day -2 one is baseline
    timed = clinical.assign_visits(frame, windows, by=["subject_id"], first_dose_day=0.25)
    assert timed.tolist()[:3] == ["baseline", "", ""]
    prefer = pd.Series([True, False, True, False, True, True, True, True, True, True])
    visits = clinical.assign_visits(frame, windows, by=["subject_id"], prefer=prefer)
    assert visits.tolist()[:5] == ["baseline", "", "", "", "day7"]
