"""Workflow tests of the analysis plan: trials given by config and sheets only, run through Snakemake.

1. The model trial's Table 3 (Meng et al. 2020): a subjects sheet with its counts gives its binary p values through
   the workflow, with odds ratios as R's fisher.test (tests/fixtures/r/fisher_table3.R).
2. A second trial with other arms, outcomes, visits and primary endpoint (a lab's change from baseline by ANCOVA on
   the log scale), where a lab value taken after the first dose on day 0 must not become baseline, and a death
   competes with the time to recovery; each subject with a CT has it again at week 2 (a copy), registered onto
   the baseline CT, and the change maps' new-lesion volume is an exploratory endpoint of the plan.

Both share two tiny CT studies (one per arm) and run only the statistics tables' targets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "r"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
TARGETS = ["results/stats/outcomes.csv", "results/stats/primary_endpoint.csv"]


def snakemake(workdir: Path, *args: str) -> None:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


@pytest.fixture(scope="module")
def dicom(tmp_path_factory) -> list[Path]:
    """Two tiny CT studies (baseline scans of a two-subject demo trial)."""
    from lungtrial.demo import generate_trial

    root = tmp_path_factory.mktemp("ct")
    generate_trial(root, size="tiny", n_per_arm=1, timepoints=(0,))
    scans = pd.read_csv(root / "scans.csv", dtype=str)
    return [root / d for d in scans["dicom_dir"]]


def trial_config(workdir: Path, analysis: dict, visits: dict, arms: tuple[str, str], labs: list[str]) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"] = False
    config["sheets"] = {"subjects": "subjects.csv", "scans": "scans.csv", "labs": labs, "adverse_events": ""}
    config["clinical"]["visits"] = visits
    config["stats"].update(reference_arm=arms[0], treatment_arm=arms[1], min_per_arm=3)
    config["analysis"] = analysis
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def scans_sheet(workdir: Path, dicom: list[Path], subjects: list[str], dates: list[str]) -> None:
    for i, folder in enumerate(dicom):
        shutil.copytree(folder, workdir / "ct" / f"s{i}")
    earlier = [subjects[:k].count(s) for k, s in enumerate(subjects)]  # a subject's later scans: -CT2, -CT3, ...
    pd.DataFrame(
        {"scan_id": [f"{s}-CT{n + 1 if n else ''}" for s, n in zip(subjects, earlier)], "subject_id": subjects,
         "scan_date": dates,
         "dicom_dir": [f"ct/s{i}" for i in range(len(dicom))]}
    ).to_csv(workdir / "scans.csv", index=False)


# ------------------------------------------------------------------------------------ 1. Table 3 of the trial
@pytest.fixture(scope="module")
def table3_run(tmp_path_factory, dicom) -> Path:
    expected = pd.read_csv(FIXTURES / "fisher_table3_expected.csv")
    workdir = tmp_path_factory.mktemp("table3")
    ids = [f"T{i}" for i in range(1, 10)] + [f"C{i}" for i in range(1, 10)]
    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "arm": ["UC-MSC"] * 9 + ["control"] * 9,
            "admission_date": "2020-02-01",
            "day0_date": "2020-02-03",
            "discharge_date": "2020-02-24",
        }
    )
    for r in expected.itertuples():
        subjects[r.outcome] = np.where(
            [i < r.events_treatment for i in range(9)] + [i < r.events_reference for i in range(9)], "true", "false"
        )
    subjects.to_csv(workdir / "subjects.csv", index=False)
    scans_sheet(workdir, dicom, ["T1", "C1"], ["2020-02-03", "2020-02-03"])
    (workdir / "labs.csv").write_text(
        "subject_id,datetime,analyte,value,unit\n" + "".join(f"{s},2020-02-02 07:00,CRP,{10 + i},mg/L\n"
                                                             for i, s in enumerate(ids))
    )
    outcomes = [
        {"name": r.outcome, "type": "binary", "column": r.outcome, "label": r.outcome.replace("_", " "),
         "role": "primary" if r.outcome == "mechanical_ventilation" else "exploratory", "family": "table3"}
        for r in expected.itertuples()
    ]
    outcomes[0]["family"] = "primary"
    analysis = {"visits": ["baseline"], "multiplicity": {"method": "holm"}, "outcomes": outcomes}
    trial_config(workdir, analysis, {"baseline": [-3, 0]}, ("control", "UC-MSC"), ["labs.csv"])
    snakemake(workdir, "--cores", "2", *TARGETS, "results/stats/binary_outcomes.csv")
    return workdir


def test_table3_p_values_and_odds_ratios_through_the_workflow(table3_run):
    expected = pd.read_csv(FIXTURES / "fisher_table3_expected.csv").set_index("outcome")
    binary = pd.read_csv(table3_run / "results/stats/binary_outcomes.csv").set_index("outcome")
    assert list(binary.index) == list(expected.index)  # primary first, then as declared
    assert binary.loc["mechanical_ventilation", "role"] == "primary"
    assert (binary.drop(index="mechanical_ventilation")["role"] == "exploratory").all()
    assert binary["p_value"].round(3).tolist() == expected["published_p"].tolist()
    np.testing.assert_allclose(binary["p_value"], expected["p_value"], rtol=1e-9)
    assert binary["summary_treatment"].tolist()[0] == "1/9 (11%)"
    # odds ratio treatment vs reference and its exact interval: R's conditional maximum-likelihood estimate, found
    # by uniroot to an absolute tolerance of 1.2e-4 (R is no closer than that)
    for ours, r in (("odds_ratio", "odds_ratio"), ("or_ci_low", "ci_low"), ("or_ci_high", "ci_high")):
        np.testing.assert_allclose(binary[ours], expected[r], rtol=1e-3, atol=1.3e-4, err_msg=ours)
    outcomes = pd.read_csv(table3_run / "results/stats/outcomes.csv").set_index("outcome")
    np.testing.assert_allclose(outcomes.loc[expected.index, "ci_high"], expected["ci_high"], rtol=1e-3)
    # Holm within the exploratory family of six, raw and adjusted side by side
    others = binary.drop(index="mechanical_ventilation")
    assert (others["adjustment"] == "Holm, 6 tests in family").all()
    assert (others["p_adjusted"] >= others["p_value"] - 1e-12).all()
    primary = pd.read_csv(table3_run / "results/stats/primary_endpoint.csv")
    assert primary["outcome"].tolist() == ["mechanical_ventilation"]
    assert primary.loc[0, "p_adjusted"] == pytest.approx(primary.loc[0, "p_value"])


# -------------------------------------------------------------------- 2. another trial, by config and sheets
@pytest.fixture(scope="module")
def second_trial(tmp_path_factory, dicom) -> Path:
    workdir = tmp_path_factory.mktemp("second")
    rng = np.random.default_rng(5)
    n = 10
    ids = [f"S{i:02d}" for i in range(1, n + 1)]
    arms = ["drug" if i % 2 else "placebo" for i in range(n)]
    recovered = rng.random(n) < 0.7
    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "arm": arms,
            "admission_date": "2021-03-01",
            "day0_date": "2021-03-02",
            "discharge_date": "2021-03-20",
            "readmitted": np.where(rng.random(n) < 0.3, "yes", "no"),
            "exacerbations": rng.integers(0, 4, n),
            "days_to_recovery": np.where(recovered, rng.integers(5, 20, n), 21),
            "recovered": np.where(recovered, "true", "false"),
        }
    )
    # one subject who did not recover died on day 10: death competes with recovery
    subjects["death_day"] = ""
    subjects.loc[int(np.flatnonzero(~recovered)[0]), "death_day"] = "10"
    subjects.to_csv(workdir / "subjects.csv", index=False)
    # the same two studies again at week 2 (day 14): one change-map pair per subject, registered onto day 0
    scans_sheet(workdir, dicom * 2, [ids[0], ids[1]] * 2, ["2021-03-02"] * 2 + ["2021-03-16"] * 2)
    rows = []
    for i, s in enumerate(ids):
        base = float(np.exp(rng.normal(3.5, 0.4)))
        factor = 0.4 if arms[i] == "drug" else 0.8
        rows.append((s, "2021-03-01 07:30", "CRP", f"{base:.1f}"))  # day -1: the baseline
        rows.append((s, "2021-03-02 12:00", "CRP", "999"))  # day 0 after the 08:00 dose: never baseline
        rows.append((s, "2021-03-16 08:00", "CRP", f"{base * factor * np.exp(rng.normal(0, 0.2)):.1f}"))
    (workdir / "labs.csv").write_text(
        "subject_id,datetime,analyte,value,unit\n" + "".join(f"{s},{t},{a},{v},mg/L\n" for s, t, a, v in rows)
    )
    analysis = {
        "visits": ["screening", "week2"],
        "first_dose_time": "08:00",
        "death_column": "death_day",
        "multiplicity": {"method": "benjamini-hochberg"},
        "outcomes": [
            {"name": "crp_change", "type": "continuous", "analyte": "crp", "at": "week2", "analysis": "ancova",
             "scale": "log", "label": "CRP, baseline to week 2", "role": "primary", "unit": "ratio"},
            {"name": "readmission", "type": "binary", "column": "readmitted", "level": "yes", "label": "Readmitted",
             "role": "secondary"},
            {"name": "exacerbations", "type": "count", "column": "exacerbations", "label": "Exacerbations",
             "role": "secondary"},
            {"name": "recovery", "type": "time-to-event", "column": "days_to_recovery", "event": "recovered",
             "label": "Time to recovery", "unit": "days", "role": "exploratory"},
            {"name": "new_lesions", "type": "imaging", "source": "change", "column": "new_lesion_ml",
             "label": "New-lesion volume (change map)", "unit": "mL", "family": "change_maps"},
        ],
    }
    visits = {"screening": [-2, 0], "week1": [5, 9], "week2": [12, 16]}
    trial_config(workdir, analysis, visits, ("placebo", "drug"), ["labs.csv"])
    snakemake(workdir, "--cores", "2", *TARGETS, "results/stats/competing_risk.csv", *SECOND_TRIAL_MODELS_AND_PLOTS)
    return workdir


SECOND_TRIAL_MODELS_AND_PLOTS = [
    "results/stats/mixed_models.csv",
    "results/plots/trajectories_imaging.png",
    "results/plots/change_from_baseline.png",
    "results/plots/trajectories_labs.png",
]


def test_second_trial_runs_from_config_and_sheets_only(second_trial):
    outcomes = pd.read_csv(second_trial / "results/stats/outcomes.csv")
    assert outcomes["outcome"].tolist() == ["crp_change", "readmission", "exacerbations", "recovery", "new_lesions"]
    assert outcomes["role"].tolist() == ["primary", "secondary", "secondary", "exploratory", "exploratory"]
    tested = outcomes.loc[outcomes["outcome"] != "new_lesions"]
    assert tested["p_value"].notna().all(), tested[["outcome", "note"]]
    primary = pd.read_csv(second_trial / "results/stats/primary_endpoint.csv").iloc[0]
    assert primary["test"].startswith("ANCOVA") and primary["visit"] == "week2"
    assert primary["n_reference"] == 5 and primary["n_treatment"] == 5
    assert 0.2 < primary["estimate"] < 1.0 and primary["ci_low"] < primary["estimate"] < primary["ci_high"]
    # the 999 drawn after the dose on day 0 is not baseline: it would make every change a steep fall
    labs = pd.read_csv(second_trial / "results/tables/labs.csv")
    assert set(labs.loc[labs["value"] == 999, "visit"].fillna("")) == {""}
    assert set(labs.loc[labs["visit"] == "screening", "study_day"]) == {-0.6875}
    secondary = outcomes.loc[outcomes["role"] == "secondary"]
    assert (secondary["adjustment"] == "Benjamini-Hochberg (false discovery rate), 2 tests in family").all()
    # death as a competing event of recovery: Aalen-Johansen per arm, the death on day 10 counted once
    competing = pd.read_csv(second_trial / "results/stats/competing_risk.csv")
    assert set(competing["outcome"]) == {"recovery"} and set(competing["arm"]) == {"placebo", "drug"}
    assert competing["n_death"].sum() == 1 and competing.loc[competing["n_death"] == 1, "time"].tolist() == [10.0]
    last = competing.groupby("arm").tail(1)
    assert last["death_incidence"].max() > 0 and (last["incidence"] + last["death_incidence"] <= 1 + 1e-12).all()


def test_second_trial_models_and_plots_take_the_plan_only(second_trial):
    """The plan has no imaging outcome from the scans table: no imaging metric is modelled (the library's default
    metrics are not put in its place), the lab is, and the imaging plots say there is nothing to plot."""
    models = pd.read_csv(second_trial / "results/stats/mixed_models.csv")
    assert set(models["outcome"]) == {"crp"}
    assert set(models["time"]) == {"visit", "continuous"}
    for target in SECOND_TRIAL_MODELS_AND_PLOTS[1:]:
        png = second_trial / target
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target
        assert "nothing to plot" in png.with_suffix(".svg").read_text() or "labs" in target, target


def test_change_map_endpoint_in_the_statistics(second_trial):
    """The change table is an input of the statistics when the plan has a change-map endpoint: its pairs (one per
    arm here, too few for a test) give the endpoint's row at week 2, in its own family."""
    change = pd.read_csv(second_trial / "results/imaging/change.csv")
    assert change["followup_scan"].tolist() == ["S01-CT2", "S02-CT2"] and (change["status"] == "ok").all()
    assert set(change["visit"]) == {"week2"} and "registration_s" not in change.columns
    rows = pd.read_csv(second_trial / "results/stats/imaging_change.csv", keep_default_na=False, na_values=[""])
    row = rows.loc[rows["outcome"] == "new_lesions"].iloc[0]
    assert (row["source"], row["visit"], row["analysis"], row["family"]) == ("change", "week2", "mann-whitney",
                                                                             "change_maps")
    assert (row["n_reference"], row["n_treatment"]) == (1, 1) and "not tested" in row["note"]
    outcomes = pd.read_csv(second_trial / "results/stats/outcomes.csv").set_index("outcome")
    assert outcomes.loc["new_lesions", "unit"] == "mL" and outcomes.loc["new_lesions", "type"] == "imaging"
