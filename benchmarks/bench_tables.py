"""The table stages on large synthetic trials: the clinical stage and the statistics and plots (prints figures).

``clinical``
    Reads and validates a long-form lab file of ``--subjects`` subjects x 12 analytes x ``--samples`` values
    (:func:`lungtrial.clinical.read_labs`, 2 % of the values censored), then builds the scans table with the nearest
    lab values (:func:`lungtrial.clinical.scan_table`, 4 scans per subject): rows, seconds, peak memory so far.
``stats``
    Builds tidy tables with the clinical stage's columns (subjects, labs, scans; 4 visits, 10 analytes) for each of
    ``--sizes`` subjects per arm, then times the :mod:`lungtrial.stats` comparisons (binary, continuous, imaging
    change, survival with the Cox model, the mixed models: visit factor with Satterthwaite df, study day with random
    slopes, visit factor with nlme's df) and each :mod:`lungtrial.plots` figure (PNG + SVG written to a temporary
    folder) as the workflow's scripts call them: seconds per step, then peak memory.

Run: ``python benchmarks/bench_tables.py clinical [--subjects 2000] [--samples 10]``,
``python benchmarks/bench_tables.py stats [--sizes 9 100 1000]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _harness as h
import numpy as np
import pandas as pd

# ------------------------------------------------------------------------------------------------------ clinical

LAB_ANALYTES = [
    ("Lymphocyte count", "10^9/L"), ("CRP", "mg/L"), ("IL-6", "pg/mL"), ("TNF-alpha", "pg/mL"), ("IL-10", "pg/mL"),
    ("D-dimer", "ug/mL FEU"), ("ALT", "U/L"), ("AST", "U/L"), ("Creatinine", "umol/L"), ("PaO2/FiO2", "mmHg"),
    ("IgG", "AU/mL"), ("IgM", "AU/mL"),
]  # fmt: skip
LAB_VISITS = {"baseline": [-3, 1], "day7": [5, 10], "day14": [11, 18], "day28": [24, 35]}


def clinical(args: argparse.Namespace) -> None:
    from lungtrial import clinical

    n, rng = args.subjects, np.random.default_rng(0)
    ids = [f"S{i:05d}" for i in range(n)]
    day0 = pd.Timestamp("2020-02-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "arm": rng.choice(["A", "B"], n),
            "admission_date": (day0 - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
            "day0_date": day0.strftime("%Y-%m-%d"),
            "discharge_date": (day0 + pd.Timedelta(days=20)).strftime("%Y-%m-%d"),
        }
    )
    days = np.linspace(0, 28, args.samples).round().astype(int)
    rows = [
        (s, d0 + pd.Timedelta(days=int(d), hours=7), a, u)
        for s, d0 in zip(ids, day0)
        for d in days
        for a, u in LAB_ANALYTES
    ]
    labs = pd.DataFrame(rows, columns=["subject_id", "datetime", "analyte", "unit"])
    values = rng.lognormal(1, 1, len(labs)).round(2).astype(str)
    values[rng.random(len(labs)) < 0.02] = "<0.5"
    labs["value"] = values
    scans = pd.DataFrame(
        [
            (f"{s}-{d}", s, (d0 + pd.Timedelta(days=d)).strftime("%Y-%m-%d"), "ok", 10.0)
            for s, d0 in zip(ids, day0)
            for d in (0, 7, 14, 28)
        ],
        columns=["scan_id", "subject_id", "scan_date", "status", "pct_opacity"],
    )
    resources = h.REPO / "resources"
    with tempfile.TemporaryDirectory() as tmp:
        subjects.to_csv(f"{tmp}/subjects.csv", index=False)
        labs[["subject_id", "datetime", "analyte", "value", "unit"]].to_csv(f"{tmp}/labs.csv", index=False)
        catalog = clinical.load_catalog(resources / "units.csv", resources / "analytes.csv")
        with h.clock() as c:
            subj = clinical.read_subjects(f"{tmp}/subjects.csv")
            table, _ = clinical.read_labs([f"{tmp}/labs.csv"], subj, catalog, visits=LAB_VISITS)
        print(f"read_labs: {len(table)} lab rows, {n} subjects: {c.wall:.1f} s, peak RSS {h.peak_rss_mb():.0f} MB")
        seconds, joined = h.timed(clinical.scan_table, scans, subj, table, LAB_VISITS, window_days=2)
        print(f"scan_table: {len(joined)} scans x {len(LAB_ANALYTES)} analytes: {seconds:.1f} s, "
              f"peak RSS {h.peak_rss_mb():.0f} MB")  # fmt: skip


# --------------------------------------------------------------------------------------------------------- stats

REF, TRT = "control", "treatment"
VISITS = {"baseline": 0, "day7": 7, "day14": 14, "day28": 28}
ANALYTES = ("lymphocytes", "crp", "il6", "tnf_alpha", "il10", "d_dimer", "alt", "ast", "creatinine", "pao2_fio2")


def tables(n_per_arm: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Synthetic subjects, labs and scans tables (clinical-stage columns) for ``n_per_arm`` subjects per arm."""
    rng = np.random.default_rng(seed)
    n = 2 * n_per_arm
    ids = [f"S{i:05d}" for i in range(n)]
    arm = np.where(np.arange(n) % 2, TRT, REF)
    day0 = pd.Timestamp("2020-02-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    stay = rng.integers(8, 35, n).astype(float)
    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "arm": arm,
            "admission_date": day0 - pd.to_timedelta(rng.integers(0, 3, n), unit="D"),
            "day0_date": day0,
            "age": rng.integers(25, 80, n).astype(float),
            "sex": rng.choice(["F", "M"], n),
            "severity": rng.choice(["moderate", "severe"], n),
            "mechanical_ventilation": rng.random(n) < 0.1,
            "oxygen_support": rng.choice(["none", "low-flow", "high-flow"], n),
            "fever": rng.random(n) < 0.7,
            "cough": rng.random(n) < 0.6,
            "dyspnoea": rng.random(n) < 0.5,
            "infusion_adverse_event": rng.random(n) < 0.05,
            "days_to_symptom_resolution": rng.integers(3, 25, n).astype(float),
            "length_of_stay_days": stay + 1,
            "days_to_discharge": stay,
            "discharged": rng.random(n) < 0.95,
            "symptom_resolved": rng.random(n) < 0.9,
        }
    )
    base = rng.uniform(5, 40, n)
    scans = pd.DataFrame(
        [
            {
                "scan_id": f"{s}-{v}",
                "subject_id": s,
                "arm": a,
                "study_day": d,
                "visit": v,
                "status": "ok",
                "lung_volume_ml": 4000.0,
                "pct_opacity": max(b * np.exp(-d / 15) + rng.normal(0, 2), 0.1),
                "pct_consolidation": max(b * np.exp(-d / 15) / 4 + rng.normal(0, 0.5), 0.0),
                "pct_ground_glass": b / 2,
                "severity_score": b / 3,
                "pao2_fio2": 450 - 5 * b + rng.normal(0, 20),
                "pao2_fio2_censored": "",
            }
            for s, a, b in zip(ids, arm, base)
            for v, d in VISITS.items()
        ]
    )
    lab_rows = []
    for slug in ANALYTES:
        level = rng.lognormal(2, 1, n)
        for v, d in VISITS.items():
            value = level * np.exp(-d / 20) * rng.lognormal(0, 0.3, n)
            lab_rows.append(
                pd.DataFrame(
                    {
                        "subject_id": ids,
                        "arm": arm,
                        "datetime": day0 + pd.Timedelta(days=d),
                        "study_day": float(d),
                        "visit": v,
                        "analyte": slug,
                        "analyte_label": slug,
                        "value": value,
                        "censored": np.where(value < 1, "<", ""),
                        "unit": "u",
                    }
                )
            )
    labs = pd.concat(lab_rows, ignore_index=True)
    labs.loc[labs["censored"] == "<", "value"] = 1.0
    return subjects, labs, scans


def stats(args: argparse.Namespace) -> None:
    from lungtrial import io, plots, stats
    from lungtrial.demo.design import INFUSION_DAYS

    print(f"{'per arm':>8} {'step':<22} {'seconds':>8}")
    for n in args.sizes:
        subjects, labs, scans = tables(n)
        arms = [REF, TRT]
        colors = plots.arm_colors(arms)
        visits = list(VISITS)
        change = stats.change_from_baseline(scans, list(stats.IMAGING_ENDPOINTS), visits)
        fever = subjects["fever"].astype(bool)
        arm = subjects["arm"]
        steps = {
            "compare_binary": lambda: stats.compare_binary(fever[arm == REF], fever[arm == TRT], REF, TRT, 3),
            "compare_continuous": lambda: stats.compare_continuous(
                subjects.loc[arm == REF, "age"], subjects.loc[arm == TRT, "age"], REF, TRT, 3
            ),
            "imaging_change": lambda: stats.imaging_change(scans, visits, REF, TRT, 3),
            "survival": lambda: stats.survival(subjects, REF, TRT, 3),
            "mixed_models_visit": lambda: stats.mixed_models(scans, labs, REF, TRT, 3, time="visit", visits=visits),
            "mixed_models_slope": lambda: stats.mixed_models(
                scans, labs, REF, TRT, 3, time="continuous", random_slope=True, visits=visits
            ),
            "mixed_models_nlme_df": lambda: stats.mixed_models(
                scans, labs, REF, TRT, 3, time="visit", df_method="between-within", visits=visits
            ),
            "plot_trajectories": lambda: plots.plot_trajectories(plots.labs_long(labs), arms, colors, "Labs"),
            "plot_change": lambda: plots.plot_change_by_visit(
                change, visits[1:], arms, colors, stats.IMAGING_ENDPOINTS
            ),
            "plot_swimmer": lambda: plots.plot_swimmer(subjects, scans, arms, colors, TRT, INFUSION_DAYS),
            "plot_kaplan_meier": lambda: plots.plot_kaplan_meier(subjects, arms, colors, REF, TRT, 3),
        }
        with tempfile.TemporaryDirectory() as tmp:
            for name, step in steps.items():
                with h.clock() as c:
                    result = step()
                    if name.startswith("plot_"):
                        io.write_figure(result, str(Path(tmp) / f"{name}.png"), str(Path(tmp) / f"{name}.svg"))
                print(f"{n:>8} {name:<22} {c.wall:>8.2f}", flush=True)
    print(f"peak RSS {h.peak_rss_mb():.0f} MiB")


# ---------------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser, add_tool = h.tool_parser(__doc__)
    tool = add_tool("clinical", "read and validate the labs and build the scans table of a large trial")
    tool.add_argument("--subjects", type=int, default=2000)
    tool.add_argument("--samples", type=int, default=10, help="values per analyte and subject (default 10)")
    tool = add_tool("stats", "statistics and plots on synthetic tidy tables of growing trial size")
    tool.add_argument("--sizes", type=int, nargs="+", default=[9, 100, 1000], help="subjects per arm")
    args = parser.parse_args(argv)
    {"clinical": clinical, "stats": stats}[args.tool](args)


if __name__ == "__main__":
    main()
