"""Plots build from small hand-made tidy tables and write non-empty PNG and SVG files."""

import numpy as np
import pandas as pd
import pytest

from lungtrial import io, plots, stats

REF, TRT = "standard care", "Cells/high dose"  # unusual arm names on purpose
VISITS = {"baseline": 0, "day7": 7, "day14": 14}


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(5)
    subj, scans, labs = [], [], []
    for i in range(8):
        arm = TRT if i % 2 else REF
        sid = f"S{i:02d}"
        los = 18 + i
        subj.append(
            {
                "subject_id": sid,
                "arm": arm,
                "admission_date": "2020-02-01",
                "day0_date": "2020-02-03",
                "discharge_date": "" if i == 7 else f"2020-02-{1 + los:02d}",
                "mechanical_ventilation": i == 2,
                "days_to_discharge": los - 2,
                "discharged": i != 7,
                "days_to_symptom_resolution": 5 + i,
                "symptom_resolved": i != 3,
            }
        )
        start = 30 + rng.normal(0, 5)
        for visit, day in VISITS.items():
            op = max(start - day * (1.5 if arm == TRT else 0.8) + rng.normal(0, 1), 0.5)
            status = "excluded" if (i, visit) == (4, "day14") else "ok"
            scans.append(
                {
                    "scan_id": f"{sid}-{day}",
                    "subject_id": sid,
                    "arm": arm,
                    "study_day": day - i % 2,  # a baseline CT is on or before day 0 (before the first dose)
                    "visit": visit,
                    "status": status,
                    "pct_opacity": op,
                    "pct_consolidation": op / 4,
                    "pao2_fio2": 420 - 6 * op,
                    "pao2_fio2_censored": ">" if op < 2 else "",
                }
            )
            for analyte, label, unit, value in (
                ("crp", "CRP", "mg/L", np.exp(rng.normal(2, 1.2))),
                ("lymphocytes", "Lymphocytes", "10^9/L", 1 + day / 20),
            ):
                cens = "<" if analyte == "crp" and value < 3 else ""
                labs.append(
                    {
                        "subject_id": sid,
                        "arm": arm,
                        "study_day": float(day),
                        "visit": visit,
                        "analyte": analyte,
                        "analyte_label": label,
                        "unit": unit,
                        "value": 3.0 if cens else value,
                        "censored": cens,
                    }
                )
    return pd.DataFrame(subj), pd.DataFrame(scans), pd.DataFrame(labs)


ARMS = plots.arm_order(REF, TRT, [REF, TRT])
COLORS = plots.arm_colors(ARMS)


def _check_written(fig, tmp_path, name):
    png, svg = tmp_path / f"{name}.png", tmp_path / f"{name}.svg"
    io.write_figure(fig, str(png), str(svg))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = svg.read_text()
    assert "<svg" in text and len(text) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{name}.png", f"{name}.svg"])  # no temp left
    return text


def test_colours_are_fixed_and_distinct():
    assert ARMS == [REF, TRT]
    assert COLORS == {REF: plots.OKABE_ITO[0], TRT: plots.OKABE_ITO[1]}
    assert plots.arm_order(REF, TRT, ["zeta", TRT, "alpha"]) == [REF, TRT, "alpha", "zeta"]


def test_trajectories(tables, tmp_path):
    _, scans, labs = tables
    long = pd.concat(
        [
            plots.imaging_long(scans, {"pct_opacity": "Opacity, %", "pct_consolidation": "Cons., %"}),
            plots.labs_long(labs),
        ],
        ignore_index=True,
    )
    fig = plots.plot_trajectories(long, ARMS, COLORS, "Imaging and labs")
    text = _check_written(fig, tmp_path, "traj")
    assert f"{REF} (n=4)" in text and f"{TRT} (n=4)" in text


def test_trajectory_axes_follow_the_models_scales(tables):
    _, scans, labs = tables
    data = plots.labs_long(labs)  # no scale given: log where the values are skewed, as the models
    assert data.groupby("panel")["log"].first().to_dict() == {
        "CRP, mg/L": stats.is_skewed(data.loc[data["panel"] == "CRP, mg/L", "value"]), "Lymphocytes, 10^9/L": False}
    fixed = plots.labs_long(labs, scales={"crp": "linear", "lymphocytes": "log"})
    assert fixed.groupby("panel")["log"].first().to_dict() == {"CRP, mg/L": False, "Lymphocytes, 10^9/L": True}
    img = plots.imaging_long(scans, {"pct_opacity": "Opacity, %", "pct_consolidation": "Cons., %"},
                             {"pct_consolidation": "log"})
    assert img.groupby("panel")["log"].first().to_dict() == {"Opacity, %": False, "Cons., %": True}
    fig = plots.plot_trajectories(pd.concat([fixed, img], ignore_index=True), ARMS, COLORS, "Scales")
    scales = {ax.get_title(): ax.get_yscale() for ax in fig.axes if ax.get_title()}
    assert scales == {"CRP, mg/L": "linear", "Lymphocytes, 10^9/L": "log", "Opacity, %": "linear", "Cons., %": "log"}
    assert len(data) == len(labs)


def test_empty_plan_gives_a_figure_saying_so(tmp_path):
    long = plots.imaging_long(pd.DataFrame(columns=["subject_id", "arm", "study_day", "visit"]), {})
    fig = plots.plot_trajectories(long, ARMS, COLORS, "CT opacity")
    assert "nothing to plot" in _check_written(fig, tmp_path, "empty")


def test_change_by_visit(tables, tmp_path):
    _, scans, _ = tables
    change = stats.change_from_baseline(scans, ["pct_opacity", "pct_consolidation"], list(VISITS))
    assert len(change) == 2 * (8 + 7)  # one excluded day-14 scan
    fig = plots.plot_change_by_visit(change, ["day7", "day14"], ARMS, COLORS, stats.IMAGING_ENDPOINTS)
    _check_written(fig, tmp_path, "change")


def test_opacity_vs_pf(tables, tmp_path):
    _, scans, _ = tables
    fig = plots.plot_opacity_vs_lab(scans, ARMS, COLORS)
    text = _check_written(fig, tmp_path, "pf")
    assert "rho=-1.00" in text  # PaO2/FiO2 was made a decreasing function of opacity
    fig = plots.plot_opacity_vs_lab(scans.drop(columns=["pao2_fio2", "pao2_fio2_censored"]), ARMS, COLORS)
    (tmp_path / "none").mkdir()
    assert "no PaO2/FiO2" in _check_written(fig, tmp_path / "none", "pf")


def test_swimmer(tables, tmp_path):
    subj, scans, _ = tables
    fig = plots.plot_swimmer(subj, scans, ARMS, COLORS, TRT, infusion_days=[0, 3, 6])
    text = _check_written(fig, tmp_path, "swim")
    assert "days 0, 3, 6" in text


def test_kaplan_meier(tables, tmp_path):
    subj, _, _ = tables
    fig = plots.plot_kaplan_meier(subj, ARMS, COLORS, REF, TRT, min_per_arm=3)
    text = _check_written(fig, tmp_path, "km")
    assert "log-rank p=" in text
    fig = plots.plot_kaplan_meier(subj, ARMS, COLORS, REF, TRT, min_per_arm=5)
    few = tmp_path / "few"
    few.mkdir()
    assert "log-rank not tested" in _check_written(fig, few, "km")
