"""Plans and small tables of the lungtrial.stats tests of the analysis plan, ANCOVA, Table 1 and Table 3
(the demo's arm names, the visit windows of config/config.yaml, the R fixtures in tests/fixtures/r)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lungtrial import stats


REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "r"
VISITS = {"baseline": [-3, 1], "day7": [5, 10], "day14": [11, 18], "day28": [24, 35]}
REF, TRT = "control", "UC-MSC"


def plan_of(*outcomes, **options):
    return stats.load_plan({"outcomes": list(outcomes), **options}, VISITS)


PRIMARY = {"name": "lesion", "type": "imaging", "column": "pct_opacity", "label": "Lesion change", "role": "primary",
           "visits": ["day28"]}


def _censored_labs() -> pd.DataFrame:
    """IL-6 of six subjects at baseline (day -1) and day 7: two baselines below the limit <2."""
    ids = list("abcdef")
    base = pd.DataFrame({"subject_id": ids, "arm": [REF] * 3 + [TRT] * 3, "visit": "baseline", "study_day": -1.0,
                         "value": [2.0, 2.0, 8.0, 4.0, 6.0, 10.0], "censored": ["<", "<", "", "", "", ""]})
    day7 = base.assign(visit="day7", study_day=7.0, value=[3.0, 5.0, 9.0, 6.0, 9.0, 12.0], censored="")
    return pd.concat([base, day7], ignore_index=True).assign(analyte="il6", analyte_label="IL-6", unit="pg/mL")
