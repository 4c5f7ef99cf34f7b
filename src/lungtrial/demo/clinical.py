"""Clinical sheets of the demo trial: subjects, labs (long form, with realistic mess) and adverse events.

Lab values follow each subject's lung-opacity course (:func:`lungtrial.demo.design.opacity_course`): lymphocytes
and PaO2/FiO2 fall and CRP, IL-6 and D-dimer rise with the opacity burden; IgG rises after symptom onset. The mess a
lab parser has to handle is planted deterministically: censored values (``<1.5`` for IL-6, ``<0.5`` for IL-10, one
``>1000``), one empty value, a few lymphocyte rows in ``10*9/L`` and one subject's CRP in ``mg/dL``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_csv
from .design import INFUSION_DAYS, SUBJECT_COLUMNS, Design, opacity_course

__all__ = [
    "write_clinical", "labs_table", "adverse_events_table", "subjects_table", "LAB_UNITS", "LAB_DAYS", "OXYGEN_LEVELS",
]

LAB_UNITS = {
    "Lymphocyte count": "10^9/L",
    "CRP": "mg/L",
    "IL-6": "pg/mL",
    "TNF-alpha": "pg/mL",
    "IL-10": "pg/mL",
    "D-dimer": "ug/mL FEU",
    "ALT": "U/L",
    "AST": "U/L",
    "Creatinine": "umol/L",
    "PaO2/FiO2": "mmHg",
    "IgG": "AU/mL",
    "IgM": "AU/mL",
}
# nominal lab days (study days); the first is the day before day 0, follow-up on day 28 even after discharge
LAB_DAYS = (-1, 3, 7, 14, 21, 28)
_DECIMALS = {"Lymphocyte count": 2, "CRP": 1, "IL-6": 1, "TNF-alpha": 1, "IL-10": 2, "D-dimer": 2, "ALT": 0,
             "AST": 0, "Creatinine": 0, "PaO2/FiO2": 0, "IgG": 1, "IgM": 1}


def _fmt(value: float, analyte: str) -> str:
    return f"{value:.{_DECIMALS[analyte]}f}"


def _values(course: pd.Series, sex: str, day: float, rng: np.random.Generator) -> dict[str, float]:
    """True lab values of one subject on one study day."""
    ggo, cons = opacity_course(course, day)
    s = min(1.0, (ggo + 2.0 * cons) / 40.0)  # inflammation index 0..1
    ln = rng.lognormal
    since_onset = day - float(course["onset_day"])
    return {
        "Lymphocyte count": max(0.15, 1.9 - 1.4 * s + rng.normal(0, 0.15)),
        "CRP": (2.0 + 130.0 * s**1.2) * ln(0, 0.25),
        "IL-6": (1.0 + 70.0 * s**1.5) * ln(0, 0.4),
        "TNF-alpha": (5.0 + 12.0 * s) * ln(0, 0.2),
        "IL-10": (0.6 + 9.0 * s) * ln(0, 0.45),
        "D-dimer": (0.25 + 3.5 * s**1.3) * ln(0, 0.3),
        "ALT": (22.0 + 35.0 * s) * ln(0, 0.25),
        "AST": (24.0 + 40.0 * s) * ln(0, 0.2),
        "Creatinine": (78.0 if sex == "M" else 62.0) * ln(0, 0.12),
        "PaO2/FiO2": float(np.clip(460.0 - 330.0 * s + rng.normal(0, 25.0), 70.0, 520.0)),
        "IgG": (2.0 + 160.0 / (1.0 + np.exp(-(since_onset - 16.0) / 3.5))) * ln(0, 0.15),
        "IgM": (3.0 + 70.0 * np.exp(-(((since_onset - 13.0) / 7.0) ** 2))) * ln(0, 0.2),
    }


OXYGEN_LEVELS = ("none", "low-flow", "high-flow", "mechanical ventilation")
"""Levels of ``oxygen_support`` in the demo subjects sheet: the highest support a subject received."""


def subjects_table(design: Design) -> pd.DataFrame:
    """The subjects sheet as written (booleans as ``true``/``false``).

    Besides the design's columns it carries the rows a trial reports as binary outcomes (as the model trial's
    Table 3): ``oxygen_support`` is the highest support received (one of :data:`OXYGEN_LEVELS`, mechanical
    ventilation above high-flow), ``low_flow_oxygen`` and ``high_flow_oxygen`` whether that support was ever given
    (a subject stepped up to a higher level had often received the lower one first) and ``fatigue``;
    ``days_to_death`` is the study day of death, empty for a subject alive at the last contact: every demo subject
    is discharged alive, as in the model trial (the plan's ``death_column``). Deterministic from the design's seed.
    """
    out = design.subjects[SUBJECT_COLUMNS].copy()
    rng = np.random.default_rng([design.seed, 6])
    n = len(out)
    mech = out["mechanical_ventilation"].to_numpy(bool)
    highest = np.where(mech, "mechanical ventilation", out["oxygen_support"].to_numpy(str))
    u_low, u_high, u_fatigue = rng.random(n), rng.random(n), rng.random(n)
    out["oxygen_support"] = highest
    out["low_flow_oxygen"] = (highest == "low-flow") | (np.isin(highest, OXYGEN_LEVELS[2:]) & (u_low < 0.7))
    out["high_flow_oxygen"] = (highest == "high-flow") | (mech & (u_high < 0.8))
    out["fatigue"] = u_fatigue < np.where(out["severity"].to_numpy(str) == "severe", 0.65, 0.45)
    out["days_to_death"] = ""
    for col in out.columns:
        if out[col].dtype == bool:
            out[col] = np.where(out[col], "true", "false")
    return out


def labs_table(design: Design) -> pd.DataFrame:
    """Labs in long form: ``subject_id, datetime, analyte, value, unit`` (``value`` as text)."""
    rng = np.random.default_rng([design.seed, 3])
    subjects = design.subjects.set_index("subject_id")
    rows = []
    for sid, course in design.courses.iterrows():
        subj = subjects.loc[sid]
        day0 = pd.Timestamp(subj["day0_date"])
        first = (pd.Timestamp(subj["admission_date"]) - day0).days
        last = (pd.Timestamp(subj["discharge_date"]) - day0).days
        srng = np.random.default_rng([int(course["lab_seed"]), 5])
        for nominal in LAB_DAYS:
            day = nominal if nominal in (-1, 28) else nominal + int(srng.integers(-1, 2))
            day = max(day, first)
            if day > last and nominal != 28:
                continue
            when = day0 + pd.Timedelta(days=day, minutes=int(srng.integers(6 * 60, 8 * 60 + 45)))
            for analyte, value in _values(course, subj["sex"], day, srng).items():
                rows.append({"subject_id": sid, "datetime": when.strftime("%Y-%m-%dT%H:%M:%S"),
                             "analyte": analyte, "value": float(value), "unit": LAB_UNITS[analyte]})
    labs = pd.DataFrame(rows)
    text = [_fmt(v, a) for v, a in zip(labs["value"], labs["analyte"])]

    def censor(analyte: str, limit: float, at_least: int) -> None:
        idx = labs.index[labs["analyte"] == analyte]
        low = [i for i in idx if labs.at[i, "value"] < limit]
        if len(low) < at_least:  # the lowest values are reported below the detection limit
            low = list(labs.loc[idx, "value"].nsmallest(at_least).index)
        for i in low:
            text[i] = f"<{limit:g}"

    censor("IL-6", 1.5, 2)
    censor("IL-10", 0.5, 2)
    il6 = labs.index[labs["analyte"] == "IL-6"]
    text[labs.loc[il6, "value"].idxmax()] = ">1000"  # above the assay's range
    labs["value"] = text
    # unit mess: one subject's CRP in mg/dL, a few lymphocyte rows spelled 10*9/L, one value missing
    crp_subject = rng.choice(labs["subject_id"].unique())
    crp = labs.index[(labs["analyte"] == "CRP") & (labs["subject_id"] == crp_subject)]
    labs.loc[crp, "value"] = [f"{float(v) / 10:.2f}" for v in labs.loc[crp, "value"]]
    labs.loc[crp, "unit"] = "mg/dL"
    lym = labs.index[labs["analyte"] == "Lymphocyte count"]
    labs.loc[rng.choice(lym, size=min(3, len(lym)), replace=False), "unit"] = "10*9/L"
    plain = labs.index[~labs["value"].str.match(r"[<>]") & (labs["analyte"] == "ALT")]
    labs.loc[rng.choice(plain), "value"] = ""
    return labs.sort_values(["subject_id", "datetime", "analyte"], kind="stable").reset_index(drop=True)


def adverse_events_table(design: Design) -> pd.DataFrame:
    """Adverse events: ``subject_id, day, term, grade, related_to_infusion`` (a few rows)."""
    rng = np.random.default_rng([design.seed, 4])
    rows = []
    for _, subj in design.subjects.iterrows():
        if subj["infusion_adverse_event"]:
            rows.append({"subject_id": subj["subject_id"], "day": int(rng.choice(INFUSION_DAYS)),
                         "term": "Transient fever", "grade": 1, "related_to_infusion": True})
        if rng.random() < 0.3:
            term, grade = [("Diarrhoea", 1), ("ALT increased", 2), ("Rash", 1), ("Hypokalaemia", 2),
                           ("Insomnia", 1)][int(rng.integers(0, 5))]
            rows.append({"subject_id": subj["subject_id"], "day": int(rng.integers(1, 21)), "term": term,
                         "grade": grade, "related_to_infusion": False})
        if subj["mechanical_ventilation"]:
            rows.append({"subject_id": subj["subject_id"], "day": int(rng.integers(2, 9)),
                         "term": "Respiratory failure", "grade": 4, "related_to_infusion": False})
    ae = pd.DataFrame(rows, columns=["subject_id", "day", "term", "grade", "related_to_infusion"])
    ae["related_to_infusion"] = np.where(ae["related_to_infusion"].astype(bool), "true", "false")
    return ae.sort_values(["subject_id", "day"], kind="stable").reset_index(drop=True)


def write_clinical(design: Design, outdir: str | Path) -> None:
    """Write ``subjects.csv``, ``labs.csv`` and ``adverse_events.csv`` of the demo trial into ``outdir``, each
    atomically (:func:`lungtrial.io.write_csv`)."""
    outdir = Path(outdir)
    write_csv(subjects_table(design), outdir / "subjects.csv")
    write_csv(labs_table(design), outdir / "labs.csv")
    write_csv(adverse_events_table(design), outdir / "adverse_events.csv")
