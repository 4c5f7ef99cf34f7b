"""Per-arm plots of the trial: trajectories, change from baseline, opacity vs PaO2/FiO2, swimmer, Kaplan-Meier.

Every function takes the tidy tables of the clinical stage (pandas DataFrames), the arms in display order and
their colours (:func:`arm_colors`, Okabe-Ito, colour-blind safe; one fixed colour per arm in every figure) and
returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state, no display needed). Legends
give the number of subjects per arm. Write figures with :func:`lungtrial.io.write_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats as sps

from lungtrial import stats
from lungtrial.stats import DEFAULT_CENSOR_RULE, censor_values

OKABE_ITO: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
"""Okabe & Ito (2008) colour-blind-safe palette, ordered for contrast between the first two (two-arm trials)."""

EXPLORATORY = "Exploratory analysis"
MAX_SWIMMER_HEIGHT_IN = 40.0
"""Height cap of the swimmer plot (inches): large trials get thinner rows instead of a giant figure."""
MAX_SWIMMER_LABELS = 80
"""Above this many subjects the swimmer plot drops the subject labels."""


def arm_order(reference: str, treatment: str, present: Sequence[str] = ()) -> list[str]:
    """Arms in display order: reference, treatment, then any other arm found in the data (sorted)."""
    others = sorted({str(a) for a in present} - {reference, treatment})
    return [reference, treatment, *others]


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """One fixed Okabe-Ito colour per arm, by position in ``arms`` (use :func:`arm_order` so it never changes)."""
    return {arm: OKABE_ITO[i % len(OKABE_ITO)] for i, arm in enumerate(arms)}


def arms_and_colors(frame: pd.DataFrame, reference: str, treatment: str) -> tuple[list[str], dict[str, str]]:
    """Display order (:func:`arm_order`) of the arms in ``frame["arm"]`` and their fixed colours."""
    arms = arm_order(reference, treatment, frame["arm"].dropna().astype(str).unique())
    return arms, arm_colors(arms)


def _n_label(arm: str, frame: pd.DataFrame) -> str:
    return f"{arm} (n={frame.loc[frame['arm'].astype(str) == arm, 'subject_id'].nunique()})"


def _grid(n_panels: int, ncols: int, panel_size: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def fmt_p(p: float) -> str:
    """A p value for a label: ``p=0.021`` (two significant figures), ``p<0.001``, or ``p=NA``."""
    if not np.isfinite(p):
        return "p=NA"
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _mean_ci(values: np.ndarray, confidence: float = 0.95, log: bool = False) -> tuple[float, float, float]:
    """Mean and t-based CI; with ``log`` the geometric mean and its CI (computed on the log scale)."""
    v = values[np.isfinite(values) & (values > 0)] if log else values[np.isfinite(values)]
    if log:
        v = np.log(v)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    half = math.nan
    if v.size >= 2:
        half = float(sps.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    out = (mean, mean - half, mean + half)
    return tuple(math.exp(x) for x in out) if log else out


def _plain_log_axis(ax) -> None:
    """Log y axis labelled with plain numbers (0.5, 2, 100); the 2 and 5 minor ticks too on narrow ranges."""
    ax.set_yscale("log")
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    if high / low < 100:
        ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(plain)
    else:
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def imaging_long(
    scans: pd.DataFrame, metrics: Mapping[str, str], scales: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Measured scans in long form for :func:`plot_trajectories`: subject_id, arm, study_day, visit, panel, value,
    censored, log.

    ``metrics`` maps scan-table columns to panel titles (with unit). ``scales`` maps a metric to its prespecified
    scale (``"log"`` or ``"linear"``; the analysis plan's, :meth:`lungtrial.stats.Plan.model_scales`); a metric not
    in it is linear, as in the mixed models. ``log`` (bool) is true on the rows of a log-scale metric.
    """
    scales = dict(scales or {})
    ok = scans.loc[scans["status"] == "ok"] if "status" in scans.columns else scans
    parts = [
        ok[["subject_id", "arm", "study_day", "visit"]].assign(
            panel=title, value=pd.to_numeric(ok[col], "coerce"), censored="", log=scales.get(col) == "log"
        )
        for col, title in metrics.items()
        if col in ok.columns
    ]
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["subject_id", "arm", "study_day", "visit", "panel", "value", "censored", "log"])
    )


def labs_long(
    labs: pd.DataFrame, censor_rule: str = DEFAULT_CENSOR_RULE, scales: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Lab values in long form for :func:`plot_trajectories`; one panel per analyte titled ``label, unit``.

    Censored values become numbers by ``censor_rule`` (:func:`lungtrial.stats.censor_values`), the rule the
    models use; rows the rule leaves out (``"exclude"``) are dropped. ``log`` (bool, per analyte) follows the
    scale the mixed models use (:func:`lungtrial.stats.mixed_models`): the prespecified one in ``scales``
    (analyte -> ``"log"`` or ``"linear"``; the analysis plan's, :meth:`lungtrial.stats.Plan.model_scales`), else
    log when the analyte's values are skewed (:func:`lungtrial.stats.is_skewed`).
    """
    scales = dict(scales or {})
    d = labs.loc[labs["value"].notna()]
    d = d.assign(
        panel=d["analyte_label"].astype(str) + ", " + d["unit"].astype(str),
        censored=d["censored"].fillna("").astype(str),
        value=censor_values(d["value"], d["censored"], censor_rule),
    )
    log = {
        analyte: scales[str(analyte)] == "log" if str(analyte) in scales else stats.is_skewed(v)
        for analyte, v in d.groupby("analyte", sort=False)["value"]
    }
    d = d.assign(log=d["analyte"].map(log).fillna(False).astype(bool))
    return d.loc[d["value"].notna(), ["subject_id", "arm", "study_day", "visit", "panel", "value", "censored", "log"]]


def plot_trajectories(
    long: pd.DataFrame,
    arms: Sequence[str],
    colors: Mapping[str, str],
    title: str,
    ncols: int = 3,
    confidence: float = 0.95,
) -> Figure:
    """Each subject's thin line over study day and each arm's mean with its confidence band by nominal visit.

    ``long`` has subject_id, arm, study_day (days from day 0), visit (nominal visit or empty), panel, value and
    censored (``""``, ``"<"``, ``">"``; censored values are drawn where the censoring rule puts them, see
    :func:`labs_long`, as open down/up triangles).
    The arm mean and its t-based ``confidence`` interval are computed per visit across subjects and drawn at
    the arm's median study day of that visit. A panel whose rows have ``log`` true (the models' scale, see
    :func:`labs_long`, :func:`imaging_long`) uses a log y axis and the geometric mean with its CI; without a
    ``log`` column, a panel whose positive values are strongly skewed (:func:`lungtrial.stats.is_skewed`) does.
    """
    panels = list(dict.fromkeys(long["panel"]))
    fig, axes = _grid(max(len(panels), 1), ncols)
    if not panels:
        axes[0].text(0.5, 0.5, "nothing to plot", ha="center", transform=axes[0].transAxes)
    line_alpha = float(np.clip(10.0 / max(long["subject_id"].nunique(), 1), 0.05, 0.35))  # fainter when many
    any_log = False
    for ax, panel in zip(axes, panels):
        d = long.loc[long["panel"] == panel].sort_values("study_day")
        log = bool(d["log"].iloc[0]) if "log" in d.columns else stats.is_skewed(d["value"])
        any_log |= log
        for arm in arms:
            a = d.loc[d["arm"].astype(str) == arm]
            if a.empty:
                continue
            c = colors[arm]
            lines = [s[["study_day", "value"]].to_numpy(float) for _, s in a.groupby("subject_id")]
            ax.add_collection(LineCollection(lines, colors=c, linewidths=0.6, alpha=line_alpha))
            cens = a["censored"].astype(str)
            for flag, marker in (("<", "v"), (">", "^")):
                p = a.loc[cens == flag]
                ax.scatter(p["study_day"], p["value"], marker=marker, facecolors="none", edgecolors=c, s=28, lw=1)
            by_visit = a.loc[a["visit"].fillna("").astype(str) != ""]
            if not by_visit.empty:
                summary = [
                    (float(v["study_day"].median()), *_mean_ci(v["value"].to_numpy(float), confidence, log))
                    for _, v in by_visit.groupby("visit", sort=False)
                ]
                x, mean, lo, hi = (np.array(col) for col in zip(*sorted(summary)))
                ax.plot(x, mean, color=c, lw=2.2, marker="o", ms=4)
                ax.fill_between(x, lo, hi, color=c, alpha=0.18, lw=0)
        ax.autoscale_view()
        if log:
            _plain_log_axis(ax)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("study day")
        ax.axvline(0, color="0.6", lw=0.6, ls=":")
    handles = [Line2D([], [], color=colors[a], lw=2.2, marker="o", label=_n_label(a, long)) for a in arms]
    flags = set(long["censored"].astype(str))
    handles += [
        Line2D([], [], ls="", marker=marker, mfc="none", mec="0.3", label=label)
        for flag, marker, label in (("<", "v", "below limit (<)"), (">", "^", "above limit (>)"))
        if flag in flags
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=9, frameon=False)
    mean = "arm mean (geometric on log axes)" if any_log else "arm mean"
    fig.suptitle(f"{title}: subjects (thin), {mean} with {confidence:.0%} CI by visit. {EXPLORATORY}.", fontsize=11)
    return fig


def plot_change_by_visit(
    change: pd.DataFrame,
    visits: Sequence[str],
    arms: Sequence[str],
    colors: Mapping[str, str],
    labels: Mapping[str, str],
    ylabel: str = "change from baseline, percentage points",
    seed: int = 0,
) -> Figure:
    """Box plots with jittered points of the change from baseline per visit and arm, one panel per metric.

    ``change`` is the output of :func:`lungtrial.stats.change_from_baseline` (change in the metric's unit);
    ``visits`` are the later visits in order; ``labels`` maps metric to panel title; ``ylabel`` names the
    change and its unit. Jitter is horizontal only and reproducible (``seed``).
    """
    metrics = [m for m in labels if m in set(change["metric"])]
    fig, axes = _grid(max(len(metrics), 1), 2, (5.5, 3.6))
    if not metrics:
        axes[0].text(0.5, 0.5, "nothing to plot", ha="center", transform=axes[0].transAxes)
    rng = np.random.default_rng(seed)
    width = 0.8 / max(len(arms), 1)
    for ax, metric in zip(axes, metrics):
        d = change.loc[change["metric"] == metric]
        for j, arm in enumerate(arms):
            c = colors[arm]
            for i, visit in enumerate(visits):
                v = d.loc[(d["arm"].astype(str) == arm) & (d["visit"] == visit), "change"].to_numpy(float)
                if v.size == 0:
                    continue
                pos = i + (j - (len(arms) - 1) / 2) * width
                ax.boxplot(
                    v,
                    positions=[pos],
                    widths=width * 0.8,
                    showfliers=False,
                    patch_artist=True,
                    boxprops={"facecolor": c, "alpha": 0.3, "edgecolor": c},
                    medianprops={"color": c, "lw": 2},
                    whiskerprops={"color": c},
                    capprops={"color": c},
                )
                ax.scatter(pos + rng.uniform(-width * 0.25, width * 0.25, v.size), v, color=c, s=14, zorder=3)
        ax.axhline(0, color="0.5", lw=0.7, ls="--")
        ax.set_xticks(range(len(visits)), list(visits))
        ax.set_xlim(-0.6, len(visits) - 0.4)
        ax.set_title(labels[metric], fontsize=10)
        ax.set_ylabel(ylabel)
    handles = [Line2D([], [], color=colors[a], marker="s", ls="", ms=8, label=_n_label(a, change)) for a in arms]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle(f"Change from baseline by visit and arm. {EXPLORATORY}.", fontsize=11)
    return fig


def plot_opacity_vs_lab(
    scans: pd.DataFrame,
    arms: Sequence[str],
    colors: Mapping[str, str],
    lab: str = "pao2_fio2",
    lab_label: str = "PaO2/FiO2, mmHg",
    metric: str = "pct_opacity",
    metric_label: str = "Opacity, % of lung",
    censor_rule: str = DEFAULT_CENSOR_RULE,
) -> Figure:
    """Scatter of an imaging metric against the lab value joined to each scan, by arm, with Spearman rho and p.

    ``scans`` is the scans table (lab values joined within the lab window, columns ``lab`` and
    ``<lab>_censored``); censored lab values are drawn as open markers where ``censor_rule`` puts them
    (:func:`lungtrial.stats.censor_values`, the rule the models use). Without any pair of values (e.g. the
    lab was not measured) the figure says so.
    """
    ok = scans.loc[scans["status"] == "ok"] if "status" in scans.columns else scans
    x = pd.to_numeric(ok[lab], errors="coerce") if lab in ok.columns else pd.Series(math.nan, ok.index)
    if f"{lab}_censored" in ok.columns:
        x = censor_values(x, ok[f"{lab}_censored"], censor_rule)
    d = ok.assign(x=x, y=pd.to_numeric(ok[metric], errors="coerce"))
    d = d.dropna(subset=["x", "y"])
    cens = d[f"{lab}_censored"].fillna("").astype(str) if f"{lab}_censored" in d.columns else pd.Series("", d.index)
    fig = Figure(figsize=(6.0, 4.6), layout="constrained")
    ax = fig.subplots()
    for arm in arms:
        sel = d["arm"].astype(str) == arm
        a = d.loc[sel]
        if a.empty:
            continue
        c = colors[arm]
        plain = cens[sel] == ""
        ax.scatter(a.loc[plain, "x"], a.loc[plain, "y"], color=c, s=22, alpha=0.85)
        ax.scatter(a.loc[~plain, "x"], a.loc[~plain, "y"], facecolors="none", edgecolors=c, s=22)
        rho, p = sps.spearmanr(a["x"], a["y"]) if len(a) >= 3 else (math.nan, math.nan)
        ax.scatter([], [], color=c, label=f"{_n_label(arm, a)}, {len(a)} scans: rho={rho:.2f}, {fmt_p(p)}")
    rho, p = sps.spearmanr(d["x"], d["y"]) if len(d) >= 3 else (math.nan, math.nan)
    ax.set_xlabel(lab_label)
    ax.set_ylabel(metric_label)
    if d.empty:
        ax.text(0.5, 0.5, f"no {lab_label} values joined to measured scans", ha="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8, frameon=False, title="Spearman by arm", title_fontsize=8)
    ax.set_title(f"{metric_label} vs {lab_label} (all scans: rho={rho:.2f}, {fmt_p(p)}). {EXPLORATORY}.", fontsize=9)
    return fig


def plot_swimmer(
    subjects: pd.DataFrame,
    scans: pd.DataFrame,
    arms: Sequence[str],
    colors: Mapping[str, str],
    treatment: str,
    infusion_days: Sequence[float],
) -> Figure:
    """One bar per subject from admission to discharge (days relative to day 0), grouped by arm.

    Marks: infusions of the treatment arm on ``infusion_days`` (days from day 0, triangles above the bar);
    scans at their ``study_day`` (filled: measured, open: excluded); mechanical ventilation (a diamond at
    admission: the subjects table gives no ventilation dates); discharge (a square) or, when not discharged,
    an arrowhead at the end of follow-up (``days_to_discharge``).
    """
    s = subjects.copy()
    day0 = pd.to_datetime(s["day0_date"])
    s["start"] = (pd.to_datetime(s["admission_date"]) - day0).dt.days.astype(float)
    s["end"] = pd.to_numeric(s["days_to_discharge"], errors="coerce")
    s["discharged_"] = stats.as_bool(s["discharged"]).fillna(False).astype(bool)
    s["vent"] = stats.as_bool(s["mechanical_ventilation"]).fillna(False).astype(bool)
    s["arm"] = s["arm"].astype(str)
    rank = {a: i for i, a in enumerate(arms)}
    s = s.loc[s["arm"].isin(rank)].assign(_r=lambda f: f["arm"].map(rank))
    s = s.sort_values(["_r", "end", "subject_id"], ascending=[False, False, False]).reset_index(drop=True)
    fig = Figure(figsize=(7.5, min(1.2 + 0.3 * len(s), MAX_SWIMMER_HEIGHT_IN)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(s), dtype=float)
    colour = s["arm"].map(colors).tolist()
    size = 22.0 if len(s) <= MAX_SWIMMER_LABELS else 6.0
    ax.barh(y, s["end"] - s["start"], left=s["start"], height=0.55, color=colour, alpha=0.45, edgecolor=colour)
    treated = y[(s["arm"] == treatment).to_numpy()]
    days = np.asarray(infusion_days, dtype=float)
    ax.scatter(
        np.tile(days, treated.size),
        np.repeat(treated + 0.36, days.size),
        marker="v",
        color="black",
        s=size * 0.9,
        zorder=5,
    )
    row_of = pd.Series(y, index=s["subject_id"].to_numpy())
    sc = scans.loc[scans["subject_id"].isin(row_of.index)]
    ok = (sc["status"] == "ok").to_numpy() if "status" in sc.columns else np.ones(len(sc), bool)
    sc_y = sc["subject_id"].map(row_of).to_numpy(float)
    sc_c = sc["subject_id"].map(s.set_index("subject_id")["arm"]).map(colors).to_numpy()
    ax.scatter(
        sc["study_day"].to_numpy(float)[ok],
        sc_y[ok],
        marker="o",
        c=list(sc_c[ok]),
        edgecolors="black",
        s=size,
        zorder=4,
    )
    ax.scatter(
        sc["study_day"].to_numpy(float)[~ok],
        sc_y[~ok],
        marker="o",
        facecolors="white",
        edgecolors="black",
        s=size,
        zorder=4,
    )
    vent = s["vent"].to_numpy()
    ax.scatter(s["start"].to_numpy()[vent], y[vent], marker="D", color="black", s=size * 1.1, zorder=4)
    ended = np.isfinite(s["end"].to_numpy())
    out = ended & s["discharged_"].to_numpy()
    ax.scatter(s["end"].to_numpy()[out], y[out], marker="s", color="black", s=size * 1.1, zorder=4)
    still = ended & ~s["discharged_"].to_numpy()
    ax.scatter(s["end"].to_numpy()[still] + 0.6, y[still], marker=">", color="black", s=size * 1.1, zorder=4)
    if len(s) <= MAX_SWIMMER_LABELS:
        ax.set_yticks(range(len(s)), s["subject_id"].astype(str), fontsize=7)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(s)} subjects")
    sc_days = pd.to_numeric(scans.loc[scans["subject_id"].isin(s["subject_id"]), "study_day"], errors="coerce")
    ax.set_xlim(
        np.nanmin([s["start"].min(), sc_days.min(), *infusion_days, 0.0]) - 1.5,
        np.nanmax([s["end"].max(), sc_days.max(), 0.0]) + 3.0,
    )
    ax.axvline(0, color="0.5", lw=0.7, ls=":")
    ax.set_xlabel("days from day 0")
    days = ", ".join(f"{d:g}" for d in infusion_days)
    handles = [Line2D([], [], color=colors[a], lw=6, alpha=0.45, label=_n_label(a, s)) for a in arms]
    handles += [
        Line2D([], [], ls="", marker="v", color="black", label=f"infusion ({treatment}: days {days})"),
        Line2D([], [], ls="", marker="o", mfc="0.6", mec="black", label="CT scan"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="CT scan excluded"),
        Line2D([], [], ls="", marker="D", color="black", label="mechanical ventilation"),
        Line2D([], [], ls="", marker="s", color="black", label="discharge"),
        Line2D([], [], ls="", marker=">", color="black", label="not discharged (censored)"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set_title(f"Hospital stay, infusions and scans per subject. {EXPLORATORY}.", fontsize=10)
    return fig


def plot_kaplan_meier(
    subjects: pd.DataFrame,
    arms: Sequence[str],
    colors: Mapping[str, str],
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    endpoints: Mapping[str, tuple[str, str, str]] | None = None,
) -> Figure:
    """Kaplan-Meier curves by arm for each time-to-event endpoint in ``subjects``.

    ``endpoints`` maps names to (label, duration column in days from day 0, event column): the analysis plan's
    (:meth:`lungtrial.stats.Plan.time_to_event`), default :data:`lungtrial.stats.SURVIVAL_ENDPOINTS`.

    The y axis is the proportion still without the event (symptoms not resolved, not discharged); bands are
    the ``confidence`` intervals, ticks mark censored subjects; the title gives the log-rank p of
    ``treatment`` vs ``reference`` (or why it was not tested).
    """
    known = stats.SURVIVAL_ENDPOINTS if endpoints is None else endpoints
    shown = [e for e, (_, dur, ev) in known.items() if dur in subjects.columns and ev in subjects.columns]
    table = stats.survival(subjects, reference, treatment, min_per_arm, confidence, known).set_index("endpoint")
    fig, axes = _grid(max(len(shown), 1), 2, (5.0, 3.8))
    for ax, endpoint in zip(axes, shown):
        d = stats.survival_data(subjects, endpoint, known)
        for arm in arms:
            a = d.loc[d["arm"] == arm]
            if a.empty:
                continue
            c = colors[arm]
            km = stats.kaplan_meier(a["duration"], a["event"], confidence)
            t = np.concatenate([[0.0], km["time"].to_numpy()])
            ax.step(
                t,
                np.concatenate([[1.0], km["survival"]]),
                where="post",
                color=c,
                lw=2,
                label=f"{arm} (n={len(a)}, events={int(a['event'].sum())})",
            )
            ax.fill_between(
                t,
                np.concatenate([[1.0], km["ci_low"]]),
                np.concatenate([[1.0], km["ci_high"]]),
                step="post",
                color=c,
                alpha=0.15,
                lw=0,
            )
            cens = a.loc[~a["event"], "duration"].to_numpy(float)
            at = np.interp(cens, km["time"], km["survival"])  # curve is flat at censoring times
            ax.scatter(cens, at, marker="|", color=c, s=60, zorder=3)
        row = table.loc[endpoint]
        test = f"log-rank {fmt_p(row['p_value'])}" if np.isfinite(row["p_value"]) else "log-rank not tested"
        label = known[endpoint][0]
        ax.set_title(f"{label} ({test})", fontsize=10)
        ax.set_xlabel("days from day 0")
        ax.set_ylabel("proportion without event")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(f"Kaplan-Meier by arm ({confidence:.0%} CI bands). {EXPLORATORY}.", fontsize=11)
    return fig


def plot_change_endpoints(
    change: pd.DataFrame,
    visits: Sequence[str],
    arms: Sequence[str],
    colors: Mapping[str, str],
    seed: int = 0,
) -> Figure:
    """The change-map endpoints by visit and arm (box + jittered points): resolved fraction (% of the baseline
    opacity) and new-lesion volume (mL), from the change table (:func:`lungtrial.imaging.change.change_table`;
    pairs whose status is not ok are left out). ``visits`` are the visits after baseline, in order."""
    ok = change.loc[change["status"] == "ok"]
    labels = {
        "resolved_fraction": "Resolved fraction of the baseline opacity (%)",
        "new_lesion_ml": "New-lesion volume (mL)",
    }
    long = ok.melt(
        id_vars=["subject_id", "arm", "visit"], value_vars=list(labels), var_name="metric", value_name="change"
    ).dropna(subset=["change"])
    shown = [v for v in visits if v in set(long["visit"])] or list(visits)
    fig = plot_change_by_visit(long, shown, arms, colors, labels, ylabel="", seed=seed)
    for ax, unit in zip(fig.axes, ("% of baseline opacity", "mL")):
        ax.set_ylabel(unit)
    n_out = int((change["status"] != "ok").sum())
    left_out = f"; {n_out} pair(s) not compared left out" if n_out else ""
    fig.suptitle(f"Change maps against each subject's baseline CT, by visit and arm{left_out}. {EXPLORATORY}.",
                 fontsize=11)
    return fig
