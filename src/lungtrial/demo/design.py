"""Layout of the demo trial: subjects, their disease course, scan dates and scanner protocols.

Modelled on the phase 1 UC-MSC COVID-19 trial (Meng et al. 2020): ``2 * n_per_arm`` patients, half receiving
umbilical-cord mesenchymal stem cells (infusions on days 0, 3 and 6), half standard care (``control``). Everything
is deterministic from ``seed``. This module imports only numpy, pandas and the sheet's columns
(:mod:`lungtrial.clinical._columns`): the workflow calls :func:`design` while it builds its job graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lungtrial.clinical._columns import SHEET_SUBJECT_COLUMNS

__all__ = ["Design", "design", "opacity_course", "ARMS", "INFUSION_DAYS", "SUBJECT_COLUMNS"]

ARMS = ("UC-MSC", "control")
INFUSION_DAYS = (0, 3, 6)
"""Study days of the treatment arm's infusions (day 0 is the first); the workflow's default of config
``stats.infusion_days``."""
SUBJECT_COLUMNS = list(SHEET_SUBJECT_COLUMNS)
"""Columns of the demo's subjects sheet: those of the subjects sheet's schema (lungtrial.clinical), in order."""

_FAMILY = ["Quillby", "Marrowind", "Tasselhoff", "Brindlecombe", "Okonkwe", "Vantreese", "Haldorsk", "Pemberlin",
           "Castellaro", "Jurnovic", "Feldspar", "Ashgrove", "Lindqvarn", "Moravetz", "Ostrander", "Kellerbach",
           "Yarbury", "Drummelow", "Sandoval-Ruiz", "Threlkeld"]
_GIVEN = ["Ada", "Bram", "Cleo", "Dov", "Esme", "Fenn", "Gita", "Hugo", "Ines", "Joss", "Kira", "Lev", "Mina", "Nils",
          "Oona", "Pax", "Quin", "Rhea", "Sol", "Tove"]
_TOWN = ["Northmere", "Eastbrook", "Southvale", "Westharrow", "Lakeside", "Hillcrest"]
_KIND = ["General Hospital", "University Hospital", "Infirmary", "Medical Centre"]

# scanner protocols: (RescaleIntercept, signed pixels); padding only with signed pixels
PROTOCOLS = ((-1024.0, False), (-1024.0, True), (-1000.0, False), (0.0, True))


@dataclass(frozen=True)
class Design:
    """The demo trial's layout.

    ``subjects``: one row per subject with the subjects-sheet columns (dates as ISO strings, booleans as bool).
    ``scans``: ``scan_id, subject_id, scan_date, nominal_day`` plus ``study_day`` and the scanner protocol of each
    scan (slice thickness level, matrix level, field of view, rescale, padding, extra series, pose, noise, seeds).
    ``courses``: per subject (index ``subject_id``) the opacity course, body size, seeds and the made-up
    identifiers planted into the DICOM headers.
    """

    subjects: pd.DataFrame
    scans: pd.DataFrame
    courses: pd.DataFrame
    seed: int


def opacity_course(course: pd.Series | dict, day: float) -> tuple[float, float]:
    """Ground-glass and consolidation burden (percent of lung volume) of one subject on study ``day``.

    The burden rises to ``peak_pct`` on ``peak_day`` (Gaussian rise of width ``rise_days``), then decays
    exponentially with time constant ``decay_days`` towards ``residual_pct``. The consolidated share is largest at
    the peak (``consolidation_share``) and shrinks with the burden.
    """
    peak, tp = float(course["peak_pct"]), float(course["peak_day"])
    if day < tp:
        total = peak * float(np.exp(-(((day - tp) / float(course["rise_days"])) ** 2)))
    else:
        res = float(course["residual_pct"])
        total = res + (peak - res) * float(np.exp(-(day - tp) / float(course["decay_days"])))
    share = float(course["consolidation_share"]) * (total / peak) ** 1.5 if peak > 0 else 0.0
    return total * (1.0 - share), total * share


def _person(order: np.ndarray, i: int, prefix: str = "") -> str:
    """Made-up DICOM person name number ``i`` (family^given[^middle[^prefix]]), unique for any number of people."""
    c = int(order[i % len(order)])
    rounds = i // len(order)
    middle = f"{'ABCDEFGHJKLMNPRSTUVWXYZ'[(rounds - 1) % 23]}{rounds // 24}" if rounds else ""
    parts = [_FAMILY[c % len(_FAMILY)], _GIVEN[c // len(_FAMILY) % len(_GIVEN)], middle, prefix]
    while not parts[-1]:
        parts.pop()
    return "^".join(parts)


def _iso(d: pd.Timestamp) -> str:
    return d.strftime("%Y-%m-%d")


def design(
    n_per_arm: int = 9,
    seed: int = 20200,
    timepoints: tuple[int, ...] = (0, 7, 14, 28),
    start_date: str = "2020-02-01",
) -> Design:
    """Lay out the demo trial (cheap: no images are made).

    Parameters
    ----------
    n_per_arm : int
        Subjects per arm (``UC-MSC`` and ``control``).
    seed : int
        Seed of everything random; the same seed gives the same trial.
    timepoints : tuple of int
        Nominal study days of the CT scans; actual days are jittered by up to two days (a baseline scan on day
        ``0`` is taken on day ``-1`` or ``0``).
    start_date : str
        ISO date of the first admission.
    """
    if n_per_arm < 1:
        raise ValueError(f"n_per_arm must be at least 1, got {n_per_arm}")
    rng = np.random.default_rng([seed, 1])
    n = 2 * n_per_arm
    width = max(2, len(str(n)))
    ids = [f"P{i + 1:0{width}d}" for i in range(n)]
    arms = np.array([ARMS[0]] * n_per_arm + [ARMS[1]] * n_per_arm)[rng.permutation(n)]
    treated = arms == ARMS[0]

    enrolment_days = int(min(365, max(28, 1.5 * n)))  # recruitment period, at most a year
    admission = pd.Timestamp(start_date) + pd.to_timedelta(np.sort(rng.integers(0, enrolment_days, n)), unit="D")
    day0 = admission + pd.to_timedelta(rng.integers(1, 4, n), unit="D")
    age = np.clip(np.round(rng.normal(48, 12, n)), 22, 75).astype(int)
    sex = np.where(rng.random(n) < 0.55, "M", "F")
    severe = rng.random(n) < 0.4
    # disease course: UC-MSC resolves faster on average, with wide overlap between arms
    # peak opacity (percent of lung volume): moderate and severe, not critical, pneumonia
    peak_pct = np.where(severe, rng.lognormal(np.log(21), 0.3, n), rng.lognormal(np.log(10), 0.35, n))
    peak_pct = np.clip(peak_pct, 3.0, 40.0)
    peak_day = rng.uniform(6.0, 10.0, n)
    rise_days = rng.uniform(9.0, 13.0, n)
    decay_days = np.where(treated, rng.lognormal(np.log(6.5), 0.35, n), rng.lognormal(np.log(10.0), 0.35, n))
    residual_pct = peak_pct * rng.uniform(0.0, 0.06, n) * np.where(rng.random(n) < 0.3, 0.0, 1.0)
    consolidation_share = np.where(severe, rng.uniform(0.2, 0.35, n), rng.uniform(0.08, 0.22, n))

    mech = severe & (rng.random(n) < np.where(treated, 0.15, 0.35))
    oxygen = np.where(mech, "high-flow",
                      np.where(severe, np.where(rng.random(n) < 0.5, "high-flow", "low-flow"),
                               np.where(rng.random(n) < 0.4, "none", "low-flow")))
    fever = rng.random(n) < 0.8
    cough = rng.random(n) < 0.7
    dyspnoea = rng.random(n) < np.where(severe, 0.85, 0.35)
    resolution = np.clip(np.round(0.5 * peak_day + 1.1 * decay_days + rng.normal(0, 2.0, n)), 2, 40).astype(int)
    stay = np.clip(np.round(10 + 1.3 * decay_days + 4 * severe + 6 * mech + rng.normal(0, 3.0, n)), 7, 45)
    discharge = day0 + pd.to_timedelta(stay.astype(int), unit="D")
    infusion_ae = np.zeros(n, bool)  # transient fever after an infusion in about a fifth of the treated
    infusion_ae[rng.choice(np.flatnonzero(treated), max(1, round(0.2 * n_per_arm)), replace=False)] = True

    subjects = pd.DataFrame({
        "subject_id": ids,
        "arm": arms,
        "admission_date": [_iso(d) for d in admission],
        "day0_date": [_iso(d) for d in day0],
        "discharge_date": [_iso(d) for d in discharge],
        "age": age,
        "sex": sex,
        "severity": np.where(severe, "severe", "moderate"),
        "mechanical_ventilation": mech,
        "oxygen_support": oxygen,
        "fever": fever,
        "cough": cough,
        "dyspnoea": dyspnoea,
        "days_to_symptom_resolution": resolution,
        "infusion_adverse_event": infusion_ae,
    })[SUBJECT_COLUMNS]

    male = sex == "M"
    combos = rng.permutation(len(_FAMILY) * len(_GIVEN))
    places = rng.permutation(len(_TOWN) * len(_KIND))
    doctors = rng.permutation(len(_FAMILY) * len(_GIVEN))
    courses = pd.DataFrame({
        "subject_id": ids,
        "peak_pct": peak_pct,
        "peak_day": peak_day,
        "rise_days": rise_days,
        "decay_days": decay_days,
        "residual_pct": residual_pct,
        "consolidation_share": consolidation_share,
        "onset_day": -rng.uniform(4.0, 9.0, n),
        "body_width_mm": np.where(male, 335, 305) * rng.uniform(0.92, 1.08, n),
        "body_depth_mm": np.where(male, 232, 215) * rng.uniform(0.93, 1.07, n),
        "lung_scale": np.where(male, 1.0, 0.92) * rng.uniform(0.94, 1.05, n),
        "anatomy_seed": rng.integers(0, 2**31, n),
        "lesion_seed": rng.integers(0, 2**31, n),
        "lab_seed": rng.integers(0, 2**31, n),
        "patient_name": [_person(combos, i) for i in range(n)],
        "patient_id": [f"H{v:07d}" for v in rng.choice(10**7, n, replace=False)],
        "birth_date": [_iso(d - pd.Timedelta(days=int(365.25 * a + rng.integers(0, 365))))
                       for d, a in zip(admission, age)],
        "institution": [f"{_TOWN[c % len(_TOWN)]} {_KIND[c // len(_TOWN) % len(_KIND)]}"
                        for c in np.resize(places, n)],
        "referring_physician": [_person(doctors, i, prefix="Dr") for i in range(n)],
    }).set_index("subject_id", drop=False)

    rows = []
    for i, sid in enumerate(ids):
        for t in timepoints:
            jitter = int(rng.integers(-1, 1)) if t == 0 else int(rng.integers(-2, 3))
            day = int(t) + jitter
            proto = int(rng.integers(0, len(PROTOCOLS)))
            intercept, signed = PROTOCOLS[proto]
            thickness_level = int(rng.integers(0, 4))
            rows.append({
                "scan_id": f"{sid}-D{int(t):02d}",
                "subject_id": sid,
                "scan_date": _iso(day0[i] + pd.Timedelta(days=day)),
                "nominal_day": int(t),
                "study_day": day,
                "thickness_level": thickness_level,
                "matrix_level": int(rng.integers(0, 3)),
                "fov_mm": float(rng.uniform(340.0, 380.0)),
                "rescale_intercept": intercept,
                "signed_pixels": signed,
                "padding": bool(signed and rng.random() < 0.6),
                "localizer": bool(rng.random() < 0.4),
                "thick_series": bool(thickness_level <= 1 and rng.random() < 0.6),
                "superior_first": bool(rng.random() < 0.5),
                "rotation_deg": float(np.clip(rng.normal(0.0, 2.0), -5.0, 5.0)),
                "offset_x_mm": float(rng.uniform(-10.0, 10.0)),
                "offset_y_mm": float(rng.uniform(-12.0, 8.0)),
                "noise_hu": float(rng.uniform(15.0, 25.0)),
                "psf_sigma_mm": float(rng.uniform(0.7, 1.0)),
                "scan_seed": int(rng.integers(0, 2**31)),
                "accession_number": f"A{int(rng.integers(10**7, 10**8))}",
            })
    scans = pd.DataFrame(rows)
    return Design(subjects=subjects, scans=scans, courses=courses, seed=int(seed))
