"""Tests for lungtrial.demo.design: the demo trial's design (deterministic, the contract, identifiers)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from lungtrial.demo import design
from lungtrial.demo.design import SUBJECT_COLUMNS


def test_design_is_deterministic_and_follows_the_contract():
    a, b = design(n_per_arm=3, seed=7), design(n_per_arm=3, seed=7)
    pd.testing.assert_frame_equal(a.subjects, b.subjects)
    pd.testing.assert_frame_equal(a.scans, b.scans)
    pd.testing.assert_frame_equal(a.courses, b.courses)
    assert not a.subjects.equals(design(n_per_arm=3, seed=8).subjects)
    assert list(a.subjects.columns) == SUBJECT_COLUMNS
    assert a.subjects["subject_id"].tolist() == [f"P{i:02d}" for i in range(1, 7)]
    assert sorted(a.subjects["arm"].value_counts().tolist()) == [3, 3]
    assert {"scan_id", "subject_id", "scan_date", "nominal_day"} <= set(a.scans.columns)
    assert len(a.scans) == 6 * 4
    assert a.scans["scan_id"].str.fullmatch(r"P\d\d-D(00|07|14|28)").all()
    jitter = a.scans["study_day"] - a.scans["nominal_day"]
    assert jitter.abs().max() <= 2
    for col in ("admission_date", "day0_date", "discharge_date"):
        assert a.subjects[col].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    assert (a.subjects["admission_date"] <= a.subjects["day0_date"]).all()
    assert (a.subjects["day0_date"] < a.subjects["discharge_date"]).all()
    assert set(a.subjects["oxygen_support"]) <= {"none", "low-flow", "high-flow"}
    assert set(a.subjects["severity"]) <= {"moderate", "severe"}
    assert not a.subjects.loc[a.subjects["arm"] == "control", "infusion_adverse_event"].any()


def test_default_trial_favours_uc_msc_on_average():
    s = design().subjects
    assert len(s) == 18
    stay = pd.to_datetime(s["discharge_date"]) - pd.to_datetime(s["day0_date"])
    by_arm = s.assign(stay=stay.dt.days).groupby("arm")[["stay", "days_to_symptom_resolution"]].mean()
    assert (by_arm.loc["UC-MSC"] < by_arm.loc["control"]).all()
    # not deterministic per arm: the arms overlap
    res = s.groupby("arm")["days_to_symptom_resolution"]
    assert res.max()["UC-MSC"] > res.min()["control"]


def test_design_and_package_import_are_light():
    code = (
        "import sys, lungtrial.demo, lungtrial.demo.design;"
        "print(sorted(m for m in ('pydicom', 'scipy', 'SimpleITK', 'matplotlib', 'skimage') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_identifiers_differ_between_subjects(trial):
    c = trial.courses
    for col in ("patient_name", "patient_id", "institution", "referring_physician"):
        assert c[col].is_unique
    big = design(n_per_arm=600).courses  # more subjects than name combinations
    for col in ("patient_name", "patient_id", "referring_physician"):
        assert big[col].is_unique
