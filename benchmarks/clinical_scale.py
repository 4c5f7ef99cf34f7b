"""Time and peak memory of the clinical stage (read and validate labs, build the scans table) on a large trial.

Usage: python benchmarks/clinical_scale.py [n_subjects] [samples_per_analyte]
Prints one line per step: rows, seconds and the process's peak resident memory so far.
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lungtrial import clinical

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ANALYTES = [("Lymphocyte count", "10^9/L"), ("CRP", "mg/L"), ("IL-6", "pg/mL"), ("TNF-alpha", "pg/mL"),
            ("IL-10", "pg/mL"), ("D-dimer", "ug/mL FEU"), ("ALT", "U/L"), ("AST", "U/L"),
            ("Creatinine", "umol/L"), ("PaO2/FiO2", "mmHg"), ("IgG", "AU/mL"), ("IgM", "AU/mL")]
VISITS = {"baseline": [-3, 1], "day7": [5, 10], "day14": [11, 18], "day28": [24, 35]}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(n_subjects: int = 2000, samples: int = 10) -> None:
    rng = np.random.default_rng(0)
    ids = [f"S{i:05d}" for i in range(n_subjects)]
    day0 = pd.Timestamp("2020-02-01") + pd.to_timedelta(rng.integers(0, 300, n_subjects), unit="D")
    subjects = pd.DataFrame({"subject_id": ids, "arm": rng.choice(["A", "B"], n_subjects),
                             "admission_date": (day0 - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
                             "day0_date": day0.strftime("%Y-%m-%d"),
                             "discharge_date": (day0 + pd.Timedelta(days=20)).strftime("%Y-%m-%d")})
    days = np.linspace(0, 28, samples).round().astype(int)
    rows = [(s, d0 + pd.Timedelta(days=int(d), hours=7), a, u) for s, d0 in zip(ids, day0) for d in days
            for a, u in ANALYTES]
    labs = pd.DataFrame(rows, columns=["subject_id", "datetime", "analyte", "unit"])
    values = rng.lognormal(1, 1, len(labs)).round(2).astype(str)
    values[rng.random(len(labs)) < 0.02] = "<0.5"
    labs["value"] = values
    scans = pd.DataFrame([(f"{s}-{d}", s, (d0 + pd.Timedelta(days=d)).strftime("%Y-%m-%d"), "ok", 10.0)
                          for s, d0 in zip(ids, day0) for d in (0, 7, 14, 28)],
                         columns=["scan_id", "subject_id", "scan_date", "status", "pct_opacity"])
    with tempfile.TemporaryDirectory() as tmp:
        subjects.to_csv(f"{tmp}/subjects.csv", index=False)
        labs[["subject_id", "datetime", "analyte", "value", "unit"]].to_csv(f"{tmp}/labs.csv", index=False)
        catalog = clinical.load_catalog(RESOURCES / "units.csv", RESOURCES / "analytes.csv")
        t = time.perf_counter()
        subj = clinical.read_subjects(f"{tmp}/subjects.csv")
        table, _ = clinical.read_labs([f"{tmp}/labs.csv"], subj, catalog, visits=VISITS)
        print(f"read_labs: {len(table)} lab rows, {n_subjects} subjects: "
              f"{time.perf_counter() - t:.1f} s, peak RSS {peak_mb():.0f} MB")
        t = time.perf_counter()
        joined = clinical.scan_table(scans, subj, table, VISITS, window_days=2)
        print(f"scan_table: {len(joined)} scans x {len(ANALYTES)} analytes: "
              f"{time.perf_counter() - t:.1f} s, peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
