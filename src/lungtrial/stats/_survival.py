"""Time to event as R's survival package reports it: Kaplan-Meier median, Cox hazard ratio, cumulative incidence.

Durations are in days. ``events`` are booleans (event observed, else censored) except in
:func:`cumulative_incidence`, where they are event codes (0 censored, 1 the event of interest, 2 a competing
event such as death). lifelines does the estimation; what R's survival computes differently by default is
reproduced here: the median of a curve lying flat at exactly 0.5 (the midpoint of the flat stretch) and
simultaneous competing events at the same time (no random jitter). Gray's test of equal cumulative incidence
(:func:`gray_test`), which no Python library provides, follows R's cmprsk.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

TOLERANCE = math.sqrt(np.finfo(float).eps)
"""survival's ``quantile.survfit(tolerance=)``: a curve within this of 0.5 counts as lying at 0.5."""


def survival_quantile(times: Sequence[float], surv: Sequence[float], p: float = 0.5) -> float:
    """The time by which a proportion ``p`` has had the event, as R's ``quantile.survfit`` (survival 3.x).

    ``times`` are the curve's times in increasing order and ``surv`` the survival just after each (a
    Kaplan-Meier curve or one of its confidence limits). The quantile is the first time the curve falls to
    ``1 - p`` or below; where the curve lies flat at exactly ``1 - p`` (within :data:`TOLERANCE`) it is the
    midpoint between the start of that flat stretch and the next time the curve drops (or the last time of
    the curve when it never drops again). NaN when the curve never reaches ``1 - p``.
    """
    x = np.concatenate([[0.0], np.asarray(times, dtype=float)])
    y = np.concatenate([[0.0], 1.0 - np.asarray(surv, dtype=float)])
    keep = np.isfinite(y)
    if not keep.any() or np.nanmax(y) < p - TOLERANCE:  # R: max(y) < p, with lifelines' rounding allowed for
        return math.nan
    xmax = x[-1]
    first = ~pd.Series(y).duplicated().to_numpy()
    x, y = x[first], y[first]
    n = y.size

    def step_index(yy: np.ndarray) -> float:
        # R's approx(yy, 1:n, p, method="constant", f=1): i where yy[i-1] < p <= yy[i]; NA outside the range
        valid = np.isfinite(yy)
        yv, iv = yy[valid], np.arange(n)[valid]
        if yv.size == 0 or p < yv[0] or p > yv[-1]:
            return math.nan
        return float(iv[int(np.searchsorted(yv, p, side="left"))])

    i1, i2 = step_index(y + TOLERANCE), step_index(y - TOLERANCE)
    if p == 0:
        return float(x[0])
    if np.isfinite(y[-1]) and abs(p - y[-1]) < TOLERANCE and np.isfinite(i1):
        return float((x[int(i1)] + xmax) / 2)
    if not (np.isfinite(i1) and np.isfinite(i2)):
        return math.nan
    return float((x[int(i1)] + x[int(i2)]) / 2)


def km_median(
    durations: Sequence[float], events: Sequence[bool], confidence: float = 0.95
) -> tuple[float, float, float]:
    """Kaplan-Meier median time to event and its confidence limits, as R's ``survfit(conf.type="log-log")``.

    Parameters
    ----------
    durations : sequence of float
        Days to event or censoring.
    events : sequence of bool
        True where the event was observed.
    confidence : float
        Level of the pointwise band (Greenwood variance, log-log transform: lifelines' band) whose crossings
        of 0.5 give the limits.

    Returns
    -------
    median, low, high : float
        Days; NaN where the curve (or the band's limit) does not fall to 0.5.
    """
    from lifelines import KaplanMeierFitter

    d = np.asarray(durations, dtype=float)
    if d.size == 0:
        return (math.nan, math.nan, math.nan)
    kmf = KaplanMeierFitter(alpha=1.0 - confidence).fit(d, np.asarray(events, dtype=bool))
    times = kmf.survival_function_.index.to_numpy(dtype=float)
    surv = kmf.survival_function_.iloc[:, 0].to_numpy(dtype=float)
    ci = kmf.confidence_interval_survival_function_
    lower, upper = ci.iloc[:, 0].to_numpy(dtype=float), ci.iloc[:, 1].to_numpy(dtype=float)
    # lifelines' curve starts with (0, 1), which R's lacks; survival_quantile drops it as a repeat of its own start
    return (survival_quantile(times, surv), survival_quantile(times, lower), survival_quantile(times, upper))


def cox_hazard_ratio(
    durations: Sequence[float],
    events: Sequence[bool],
    treated: Sequence[bool],
    confidence: float = 0.95,
) -> dict[str, object]:
    """Hazard ratio treated vs reference from a Cox model with Efron ties (lifelines ``CoxPHFitter``, = R ``coxph``).

    Parameters
    ----------
    durations : sequence of float
        Days to event or censoring.
    events : sequence of bool
        True where the event was observed.
    treated : sequence of bool
        True for the treatment arm, false for the reference arm.
    confidence : float
        Level of the Wald interval ``exp(beta +/- z * se)``.

    Returns
    -------
    dict
        ``hazard_ratio, hr_ci_low, hr_ci_high`` (ratio, unitless), ``log_hr, log_hr_se``, ``hr_p_value`` (Wald,
        two-sided, as ``summary(coxph)``), ``hr_method`` and ``hr_note``. NaN with the reason in ``hr_note``
        where the ratio cannot be estimated: an arm without subjects, no events, or arms that separate
        (:func:`cox_separation`: an arm without events, or every event of one arm after the other arm has left
        the risk set), where the partial likelihood has no finite maximum. R's ``coxph`` then warns that the
        coefficient may be infinite and prints a meaningless ratio (such as 3e-10) with the interval 0 to Inf.
    """
    from lifelines import CoxPHFitter

    d = _cox_frame(durations, events, treated)
    out: dict[str, object] = {
        "hazard_ratio": math.nan,
        "hr_ci_low": math.nan,
        "hr_ci_high": math.nan,
        "log_hr": math.nan,
        "log_hr_se": math.nan,
        "hr_p_value": math.nan,
        "hr_method": "Cox proportional hazards, Efron ties, Wald CI and p",
        "hr_note": "",
    }
    problems = [
        f"no subjects in the {name} arm"
        for flag, name in ((1.0, "treatment"), (0.0, "reference"))
        if not (d["treated"] == flag).any()
    ]
    if not problems:
        problems = [why for why in [_separation(d)] if why]
    if problems:
        out["hr_note"] = "hazard ratio not estimable: " + ", ".join(problems)
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # lifelines stops when the Newton decrement is below `precision` without taking that last step (1e-7
        # in the log hazard ratio by default); this runs Newton-Raphson to the maximum, where R's coxph ends.
        cph = CoxPHFitter(alpha=1.0 - confidence).fit(
            d, duration_col="duration", event_col="event", fit_options={"precision": 1e-20, "r_precision": 1e-15}
        )
    s = cph.summary.loc["treated"]
    out |= {
        "hazard_ratio": float(s["exp(coef)"]),
        "hr_ci_low": float(np.exp(s["coef lower " + _pct(confidence)])),
        "hr_ci_high": float(np.exp(s["coef upper " + _pct(confidence)])),
        "log_hr": float(s["coef"]),
        "log_hr_se": float(s["se(coef)"]),
        "hr_p_value": float(s["p"]),
    }
    return out


def cox_separation(durations: Sequence[float], events: Sequence[bool], treated: Sequence[bool]) -> str:
    """Why a Cox model of one binary covariate (the arm) has no finite estimate; ``""`` when it has one.

    With the arm as the only covariate the partial likelihood keeps rising as the log hazard ratio goes to
    +infinity exactly when every reference-arm event happens while no treatment-arm subject is at risk (at risk at
    time t: duration >= t), and to -infinity when every treatment-arm event happens while no reference-arm subject
    is at risk; an arm without events is the simplest case of each. Then no maximum exists (monotone likelihood,
    Bryson and Johnson 1981) and any number an optimiser stops at is arbitrary.

    Returns
    -------
    str
        ``""``, ``"no events"``, or the reason with the direction, e.g. ``"no events in the treatment arm (the
        ratio tends to 0)"``.
    """
    d = _cox_frame(durations, events, treated)
    return _separation(d)


def _cox_frame(durations: Sequence[float], events: Sequence[bool], treated: Sequence[bool]) -> pd.DataFrame:
    """Columns duration (float), event (0/1) and treated (0.0/1.0), rows with a missing value left out."""
    return pd.DataFrame(
        {
            "duration": np.asarray(durations, dtype=float),
            "event": np.asarray(events, dtype=bool).astype(int),
            "treated": np.asarray(treated, dtype=bool).astype(float),
        }
    ).dropna()


def _separation(d: pd.DataFrame) -> str:
    if d["event"].sum() == 0:
        return "no events"
    reasons = []
    arms = ((1.0, "treatment", "reference", "0"), (0.0, "reference", "treatment", "infinity"))
    for flag, name, other, direction in arms:
        event_times = d.loc[(d["treated"] == flag) & (d["event"] == 1), "duration"]
        others = d.loc[d["treated"] != flag, "duration"]
        if event_times.empty:
            reasons.append(f"no events in the {name} arm (the ratio tends to {direction})")
        elif others.max() < event_times.min():
            reasons.append(
                f"every {name}-arm event occurs after the last {other}-arm subject left the risk set: the arms "
                f"separate (the ratio tends to {direction})"
            )
    return "; ".join(reasons)


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def cumulative_incidence(
    durations: Sequence[float],
    events: Sequence[int],
    event_of_interest: int = 1,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Aalen-Johansen cumulative incidence of one event type with competing events (lifelines ``AalenJohansenFitter``).

    The incidence at each time is the sum over earlier event times of ``S(t-) * d_k(t) / n(t)``, ``S`` the
    Kaplan-Meier probability of no event of any type: events of different types at the same time are taken
    together, as R's ``survfit(Surv(time, factor(status)) ~ 1)`` does (lifelines would otherwise jitter tied
    times at random).

    Parameters
    ----------
    durations : sequence of float
        Days to the first event or censoring.
    events : sequence of int
        0 censored, otherwise the event type (e.g. 1 discharge, 2 death).
    event_of_interest : int
        The event type whose incidence is estimated.
    confidence : float
        Level of the pointwise interval (lifelines: Greenwood-type variance, log-log transform).

    Returns
    -------
    pandas.DataFrame
        Columns ``time`` (days, 0 and every observed time), ``incidence`` (proportion 0-1), ``ci_low``,
        ``ci_high``.
    """
    from lifelines import AalenJohansenFitter

    class _TiesTogether(AalenJohansenFitter):
        # The estimator's formula takes simultaneous events together; no jitter is needed for it.
        @staticmethod
        def _check_for_duplicates(durations, events):
            return False

    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0) of the band before the first event
        ajf = _TiesTogether(alpha=1.0 - confidence, calculate_variance=True).fit(d, e, event_of_interest)
    cif = ajf.cumulative_density_.iloc[:, 0]
    ci = ajf.confidence_interval_cumulative_density_
    limits = ci.to_numpy(dtype=float)  # two columns whose labels do not say which limit is which
    out = pd.DataFrame(
        {
            "time": cif.index.to_numpy(dtype=float),
            "incidence": cif.to_numpy(dtype=float),
            "ci_low": np.min(limits, axis=1),
            "ci_high": np.max(limits, axis=1),
        }
    )
    return out.reset_index(drop=True)


def gray_test(
    durations: Sequence[float],
    events: Sequence[int],
    groups: Sequence[object],
    event_of_interest: int = 1,
    rho: float = 0.0,
) -> dict[str, float]:
    """Gray's K-sample test of equal cumulative incidence of one event type with competing events, as R's
    ``cmprsk::cuminc`` computes it.

    Neither lifelines nor scikit-survival has it; this follows Gray (1988, Ann Stat 16:1141-1154) as cmprsk's
    Fortran routine ``crstm`` implements it (one stratum): a score per group comparing the group's
    subdistribution hazard with the pooled one, weighted by ``(1 - F(t-))^rho`` (F the pooled cumulative
    incidence), and Gray's variance of the scores; the statistic ``s' V^-1 s`` of the first K - 1 groups is
    chi-square with K - 1 df under equal incidence.

    Parameters
    ----------
    durations : sequence of float
        Days to the first event or to censoring.
    events : sequence of int
        0 censored, otherwise the event type; every type other than ``event_of_interest`` competes.
    groups : sequence
        Group of each subject (e.g. the arm); at least two groups.
    event_of_interest : int
        The event type whose cumulative incidence is compared.
    rho : float
        Power of the weight; 0 (cuminc's default) weighs like the log-rank test.

    Returns
    -------
    dict
        ``statistic`` (chi-square), ``df`` (K - 1) and ``p_value``; NaN without any event of interest or when
        the variance is singular (cuminc then reports -1).
    """
    from scipy import stats as sps

    t = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=int)
    g = pd.Series(list(groups), dtype="object").astype(str).to_numpy()
    ok = np.isfinite(t)
    t, e, g = t[ok], e[ok], g[ok]
    names = sorted(set(g))
    ng = len(names)
    out = {"statistic": math.nan, "df": float(max(ng - 1, 0)), "p_value": math.nan}
    if ng < 2 or not np.any(e == event_of_interest):
        return out
    cause = np.where(e == 0, 0, np.where(e == event_of_interest, 1, 2))
    gi = np.searchsorted(names, g)
    order = np.argsort(t, kind="stable")
    t, cause, gi = t[order], cause[order], gi[order]
    ng1 = ng - 1
    rs = np.bincount(gi, minlength=ng).astype(float)  # at risk per group
    s = np.zeros(ng1)
    v = np.zeros((ng1, ng1))
    f1m, f1 = np.zeros(ng), np.zeros(ng)  # cumulative incidence per group, left and right continuous
    skmm, skm = np.ones(ng), np.ones(ng)  # Kaplan-Meier of any event per group, left and right continuous
    v3, v2, c = np.zeros(ng), np.zeros((ng1, ng)), np.zeros((ng, ng))
    fm = f = 0.0
    for when in np.unique(t):
        at = t == when
        d = np.zeros((3, ng))
        np.add.at(d, (cause[at], gi[at]), 1.0)
        nd1, nd2 = d[1].sum(), d[2].sum()
        if nd1 or nd2:
            live = rs > 0
            skm = np.where(live, skmm * (rs - d[1] - d[2]) / np.where(live, rs, 1.0), skm)
            f1 = np.where(live, f1m + skmm * d[1] / np.where(live, rs, 1.0), f1)
            tr = float(np.sum(rs[live] / skmm[live]))  # sum of the groups' h_r
            tq = float(np.sum(rs[live] * (1.0 - f1m[live]) / skmm[live]))  # sum of the groups' R_r
            f = fm + nd1 / tr
            fb = (1.0 - fm) ** rho
            a = np.zeros((ng, ng))
            for i in np.flatnonzero(live):
                t1 = rs[i] / skmm[i]
                a[i, i] = fb * t1 * (1.0 - t1 / tr)
                c[i, i] += a[i, i] * nd1 / (tr * (1.0 - fm))
                for j in range(i + 1, ng):
                    if rs[j] > 0:
                        a[i, j] = a[j, i] = -fb * t1 * rs[j] / (skmm[j] * tr)
                        c[i, j] += a[i, j] * nd1 / (tr * (1.0 - fm))
                        c[j, i] = c[i, j]
            for i in range(ng1):
                if rs[i] > 0:
                    s[i] += fb * (d[1, i] - nd1 * rs[i] * (1.0 - f1m[i]) / (skmm[i] * tq))
            if nd1 > 0:
                for k in np.flatnonzero(live):
                    t4 = 1.0 - (1.0 - f) / skm[k] if skm[k] > 0 else 1.0
                    t5 = 1.0 - (nd1 - 1.0) / (tr * skmm[k] - 1.0) if nd1 > 1 else 1.0
                    t3 = t5 * skmm[k] * nd1 / (tr * rs[k])
                    v3[k] += t4 * t4 * t3
                    t1 = a[:ng1, k] - t4 * c[:ng1, k]
                    v2[:, k] += t1 * t4 * t3
                    v += np.outer(t1, t1) * t3
            if nd2 > 0:
                for k in np.flatnonzero((skm > 0) & (d[2] > 0)):
                    t4 = (1.0 - f) / skm[k]
                    t5 = 1.0 - (d[2, k] - 1.0) / (rs[k] - 1.0) if d[2, k] > 1 else 1.0
                    t3 = t5 * skmm[k] ** 2 * d[2, k] / rs[k] ** 2
                    v3[k] += t4 * t4 * t3
                    t1 = t4 * c[:ng1, k]
                    v2[:, k] -= t1 * t4 * t3
                    v += np.outer(t1, t1) * t3
        rs -= d.sum(axis=0)
        fm, f1m, skmm = f, f1.copy(), skm.copy()
    v += (c[:ng1] * v3) @ c[:ng1].T + c[:ng1] @ v2.T + v2 @ c[:ng1].T
    try:
        stat = float(s @ np.linalg.solve(v, s))
    except np.linalg.LinAlgError:
        return out
    return out | {"statistic": stat, "p_value": float(sps.chi2.sf(stat, ng1))}
