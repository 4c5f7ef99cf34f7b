"""Small data sets of the lungtrial.stats tests computed by hand: arms named with spaces and symbols,
subjects with survival times, a simulated longitudinal trial and visit data, and a plan on two visits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungtrial import stats


REF, TRT = "control arm", "Arm B+"  # arm names with spaces and symbols: nothing may depend on the demo's names

# Freireich et al. (1963) leukaemia remission data; textbook log-rank chi-square 16.79 (Kleinbaum & Klein)
MP6 = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
MP6_EVENT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
PLACEBO = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]


def _subjects() -> pd.DataFrame:
    rows = []
    for i, (dur, ev) in enumerate(zip(MP6, MP6_EVENT)):
        rows.append({"subject_id": f"T{i:02d}", "arm": TRT, "days_to_discharge": dur, "discharged": bool(ev)})
    for i, dur in enumerate(PLACEBO):
        rows.append({"subject_id": f"R{i:02d}", "arm": REF, "days_to_discharge": dur, "discharged": "true"})
    df = pd.DataFrame(rows)
    df["length_of_stay_days"] = df["days_to_discharge"] + 1
    df["fever"] = ["true", "false"] * 21
    df["age"] = np.arange(42) + 30
    df["sex"] = ["F", "M", "M"] * 14
    return df


VISITS = {"baseline": [-3, 1], "day7": [5, 10]}


def _plan(*outcomes: dict, **options: object) -> stats.Plan:
    """A plan with the given outcomes besides a primary imaging endpoint (the plan needs exactly one primary)."""
    primary = {"name": "opacity", "type": "imaging", "column": "pct_opacity", "label": "Opacity change",
               "role": "primary", "visits": ["day7"]}
    return stats.load_plan({"outcomes": [primary, *outcomes], **options}, VISITS)


def _simulated_longitudinal(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(30):
        arm = TRT if i % 2 else REF
        b0 = 20 + rng.normal(0, 3)
        slope = -1.0 if arm == TRT else -0.5
        for day in (0, 7, 14, 28):
            rows.append({"subject_id": f"S{i}", "arm": arm, "study_day": day, "y": b0 + slope * day + rng.normal(0, 1)})
    return pd.DataFrame(rows)


def _visit_data(seed: int = 5) -> pd.DataFrame:
    """20 subjects x 4 visits with a variance that grows over the visits (an unstructured covariance)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(20):
        b = rng.normal(0, 2)
        for k, (visit, day) in enumerate((("baseline", 0), ("day7", 7), ("day14", 14), ("day28", 28))):
            rows.append({"subject_id": f"S{i:02d}", "arm": TRT if i % 2 else REF, "visit": visit, "study_day": day,
                         "y": 10 + b * (1 + k) + rng.normal(0, 1 + k)})
    return pd.DataFrame(rows)
